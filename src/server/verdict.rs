//! What the cache keeps for a verified token: the reply's claims, and what a revocation check on a hit
//! needs (`jti`, `sub`, `iat`) without parsing the claims again, which issuer's keys (at which epoch)
//! accepted it, and what it means for each route (so a hit does not parse the claims for the routes
//! either). 72 bytes plus the claims (the `sid` span, for session revocations, took the last 8).

use crate::Verified;
use crate::claims::Text;
use crate::issuers::Stamp;
use crate::routes::Assessment;

/// A cached verification result.
#[derive(Debug)]
pub struct Verdict {
    claims: Box<str>,
    /// `iat` rounded down, plus one; 0 when absent. (Revocation cutoffs are whole seconds, and for a whole
    /// `c`, `iat < c` exactly when `floor(iat) < c`.)
    iat: u32,
    /// The revocation epoch at which this token was last found not revoked (0: never checked).
    clean_at: std::sync::atomic::AtomicU32,
    /// Spans of `claims` (start, len); `NONE` when absent.
    jti: (u16, u16),
    sub: (u16, u16),
    sid: (u16, u16),
    /// The issuer and key epoch that accepted the token: a hit holds only while that epoch is current.
    stamp: Stamp,
    /// The token's standing with each route of the table it was assessed with.
    gate: Assessment,
}

impl Clone for Verdict {
    fn clone(&self) -> Self {
        Verdict {
            claims: self.claims.clone(),
            iat: self.iat,
            clean_at: std::sync::atomic::AtomicU32::new(0),
            jti: self.jti,
            sub: self.sub,
            sid: self.sid,
            stamp: self.stamp,
            gate: self.gate.clone(),
        }
    }
}

const NONE: (u16, u16) = (u16::MAX, u16::MAX);

impl Verdict {
    /// The cacheable form of `v`; `None` when its claims are over 64 KiB or its `jti`/`sub` contain JSON
    /// escapes (rare; such tokens are simply verified every time).
    pub fn new(v: &Verified, stamp: Stamp, gate: Assessment) -> Option<Verdict> {
        let claims = v.claims_json();
        if claims.len() >= usize::from(u16::MAX) {
            return None;
        }
        let span = |t: &Option<Text>| -> Option<(u16, u16)> {
            match t {
                None => Some(NONE),
                Some(Text::Span { start, len }) => {
                    Some((u16::try_from(*start).ok()?, u16::try_from(*len).ok()?))
                }
                Some(Text::Owned(_)) => None,
            }
        };
        let r = v.registered();
        let iat = match r.iat {
            None => 0,
            Some(i) => (i.floor().clamp(-1.0, f64::from(u32::MAX - 1)) + 1.0) as u32,
        };
        Some(Verdict {
            claims: claims.into(),
            iat,
            clean_at: std::sync::atomic::AtomicU32::new(0),
            jti: span(&r.jti)?,
            sub: span(&r.sub)?,
            sid: span(&r.sid)?,
            stamp,
            gate,
        })
    }

    /// The token's standing with the routes, as far as learned.
    pub fn gate(&self) -> &Assessment {
        &self.gate
    }

    /// The claims JSON, compact, as `Verified::claims_json` gave it.
    pub fn claims(&self) -> &str {
        &self.claims
    }

    pub fn jti(&self) -> Option<&str> {
        self.text(self.jti)
    }

    pub fn sub(&self) -> Option<&str> {
        self.text(self.sub)
    }

    pub fn sid(&self) -> Option<&str> {
        self.text(self.sid)
    }

    /// `iat`, rounded down to the second (what revocation cutoffs compare).
    pub fn iat(&self) -> Option<f64> {
        (self.iat != 0).then(|| f64::from(self.iat) - 1.0)
    }

    /// Which issuer and key epoch accepted the token.
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// Whether this token was found not revoked at revocation epoch `epoch`.
    pub fn clean_at(&self, epoch: u32) -> bool {
        self.clean_at.load(std::sync::atomic::Ordering::Relaxed) == epoch
    }

    /// Records that this token was found not revoked at `epoch`.
    pub fn mark_clean(&self, epoch: u32) {
        self.clean_at
            .store(epoch, std::sync::atomic::Ordering::Relaxed);
    }

    /// Heap bytes held besides the struct.
    pub fn heap_size(&self) -> usize {
        self.claims.len()
    }

    fn text(&self, (start, len): (u16, u16)) -> Option<&str> {
        if (start, len) == NONE {
            return None;
        }
        self.claims
            .get(usize::from(start)..usize::from(start) + usize::from(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sign::{Private, SigningKey};
    use crate::keys::SourceOptions;
    use crate::{Alg, KeySet, Limits, Policy, Verifier};

    const STAMP: Stamp = Stamp {
        issuer: 2,
        epoch: 5,
    };

    fn verified(claims: &str) -> Verified {
        let secret = b"0123456789abcdef0123456789abcdef";
        let mut keys = KeySet::new();
        keys.add_secret(
            secret,
            &SourceOptions {
                default_alg: Some(Alg::HS256),
                kid: None,
            },
        )
        .unwrap();
        let v = Verifier::new(
            keys,
            Policy {
                require_exp: false,
                ..Policy::default()
            },
            Limits::default(),
        );
        let t = SigningKey::new(Alg::HS256, &Private::Hmac(secret.to_vec()))
            .unwrap()
            .sign_compact(br#"{"alg":"HS256"}"#, claims.as_bytes())
            .unwrap();
        v.verify(t.as_bytes(), 1000).unwrap()
    }

    #[test]
    fn keeps_claims_and_the_revocation_fields() {
        let v = verified(r#"{"sub":"alice","jti":"j-1","iat":990.5,"x":1}"#);
        let d = Verdict::new(&v, STAMP, Assessment::default()).unwrap();
        assert_eq!(d.claims(), v.claims_json());
        // iat is kept to the second: cutoffs are whole seconds, so `iat < cutoff` does not change.
        assert_eq!(
            (d.sub(), d.jti(), d.iat()),
            (Some("alice"), Some("j-1"), Some(990.0))
        );
        for cutoff in [990.0, 991.0] {
            assert_eq!(990.5 < cutoff, 990.0 < cutoff);
        }
        assert!(d.clean_at(0) && !d.clean_at(7));
        d.mark_clean(7);
        assert!(d.clean_at(7));
        let none = Verdict::new(&verified(r#"{"x":1}"#), STAMP, Assessment::default()).unwrap();
        assert_eq!((none.sub(), none.jti(), none.iat()), (None, None, None));
        // Whitespace in the payload: the spans still point into the compacted claims.
        let spaced = Verdict::new(
            &verified("{ \"x\" : 1 , \"sub\" : \"bob\" }"),
            STAMP,
            Assessment::default(),
        )
        .unwrap();
        assert_eq!(spaced.sub(), Some("bob"));
        // Escaped strings are not cached.
        assert!(
            Verdict::new(
                &verified(r#"{"sub":"a\u0041"}"#),
                STAMP,
                Assessment::default()
            )
            .is_none()
        );
        assert_eq!(std::mem::size_of::<Verdict>(), 72);
        assert_eq!(d.stamp(), STAMP);
    }
}
