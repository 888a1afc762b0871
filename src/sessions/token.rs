//! Refresh tokens and the session key (docs/SESSIONS.md, "Model").
//!
//! A refresh token is 32 random bytes in base64url (43 characters), opaque. Only its keyed digest,
//! `HMAC-SHA256(session_key, "jwtd refresh digest" || token)`, is ever stored, logged (a prefix) or compared.
//! A rotation's successor is derived, not drawn: `base64url(HMAC-SHA256(session_key, "jwtd refresh rotate" ||
//! token || generation))`, so that a client retrying after a lost reply gets the same successor again
//! without any token being kept in clear.

use std::path::Path;

use crate::crypto::{Mac, hex, unhex};

/// A refresh token's keyed digest.
pub type Digest = [u8; 32];

/// Length of a refresh token in characters (32 bytes, base64url without padding).
pub const TOKEN_LEN: usize = 43;

/// The file under `state_dir/sessions/` that holds the session key.
pub const KEY_FILE: &str = "key";

/// The session key: 32 random bytes, created once in the state directory (0600).
#[derive(Debug)]
pub struct SessionKey(Mac);

impl SessionKey {
    /// A key from its bytes (tests).
    pub fn from_bytes(bytes: &[u8; 32]) -> SessionKey {
        SessionKey(Mac::new(bytes))
    }

    /// Reads a key shared by the daemons of a fleet (64 hex digits; `openssl rand -hex 32`).
    pub fn from_file(path: &Path) -> Result<SessionKey, String> {
        let bytes = crate::keys::file::read_regular(path)?;
        let mut key = [0u8; 32];
        if !unhex(bytes.trim_ascii(), &mut key) {
            return Err(format!(
                "{}: not a session key (64 lower-case hex digits, e.g. from `openssl rand -hex 32`)",
                path.display()
            ));
        }
        Ok(SessionKey::from_bytes(&key))
    }

    /// Reads the key kept in `state_dir`, or creates it.
    pub fn load_or_create(state_dir: &Path) -> Result<SessionKey, String> {
        let dir = state_dir.join("sessions");
        let path = dir.join(KEY_FILE);
        if path.symlink_metadata().is_ok() {
            return SessionKey::from_file(&path)
                .map_err(|e| format!("{e}; removing it ends every session"));
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("no randomness for the session key: {e}"))?;
        crate::revocation::dir::write_atomic(&dir, KEY_FILE, format!("{}\n", hex(&key)).as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(SessionKey::from_bytes(&key))
    }

    /// The digest that stands for `token` everywhere.
    pub fn digest(&self, token: &str) -> Digest {
        self.0.sign(&[b"jwtd refresh digest\0", token.as_bytes()])
    }

    /// The refresh token that replaces `token` as generation `generation` of its family.
    pub fn successor(&self, token: &str, generation: u64) -> String {
        let mac = self.0.sign(&[
            b"jwtd refresh rotate\0",
            token.as_bytes(),
            &generation.to_be_bytes(),
        ]);
        crate::jws::b64::encode(&mac)
    }
}

/// A fresh refresh token: 256 random bits.
pub fn new_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for a refresh token: {e}"))?;
    Ok(crate::jws::b64::encode(&b))
}

/// A fresh family id: 128 random bits, hex.
pub fn new_sid() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for a session id: {e}"))?;
    Ok(hex(&b))
}

/// A fresh access-token id: 128 random bits, base64url.
pub fn new_jti() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for a jti: {e}"))?;
    Ok(crate::jws::b64::encode(&b))
}

/// Whether `token` has the shape of a refresh token jwtd issued (43 base64url characters). Anything else
/// is refused before it is digested or looked up.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// How logs name a refresh token: the first 6 bytes of its digest, in hex.
pub fn shown(d: &Digest) -> String {
    hex(&d[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_successors_are_keyed_and_deterministic() {
        let a = SessionKey::from_bytes(&[1; 32]);
        let b = SessionKey::from_bytes(&[2; 32]);
        let t = new_token().unwrap();
        assert!(well_formed(&t), "{t}");
        assert_eq!(a.digest(&t), a.digest(&t));
        assert_ne!(a.digest(&t), b.digest(&t), "another key, another digest");
        let s1 = a.successor(&t, 1);
        assert!(well_formed(&s1));
        assert_eq!(s1, a.successor(&t, 1), "a retry derives the same successor");
        assert_ne!(s1, a.successor(&t, 2));
        assert_ne!(s1, b.successor(&t, 1));
        assert_ne!(a.digest(&s1), a.digest(&t));
    }

    #[test]
    fn only_our_shape_is_well_formed() {
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(42)));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed(&format!("{}=", "a".repeat(42))));
        assert!(!well_formed(&format!("{}é", "a".repeat(41))));
        assert!(well_formed(
            &"-_".repeat(21).chars().chain(['A']).collect::<String>()
        ));
    }

    #[test]
    fn the_key_is_created_once_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("jwtd-session-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let k1 = SessionKey::load_or_create(&dir).unwrap();
        let k2 = SessionKey::load_or_create(&dir).unwrap();
        assert_eq!(
            k1.digest("x"),
            k2.digest("x"),
            "the same key after a restart"
        );
        let file = dir.join("sessions").join(KEY_FILE);
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&file, "junk\n").unwrap();
        assert!(
            SessionKey::load_or_create(&dir)
                .unwrap_err()
                .contains("not a session key")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
