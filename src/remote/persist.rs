//! The last good key set of each remote source, kept in the state directory so that a daemon restarted
//! while its identity provider is down comes up with keys. One file per source, `jwks/<digest>.json`,
//! written atomically (temporary file, fsync, rename, directory fsync) and private (0600). The file holds
//! the JWKS exactly as fetched: loading it runs the same validation as a fetch.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::fetch::Validators;

/// A persisted key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// Unix seconds of the fetch that brought it (staleness counts from there, across restarts).
    pub fetched_at: u64,
    pub validators: Validators,
    /// The JWKS URL it came from (discovered or configured).
    pub jwks_url: String,
    pub jwks: Vec<u8>,
}

/// Where source `id` (issuer and configured source) is kept under `state_dir`.
pub fn path(state_dir: &Path, id: &str) -> PathBuf {
    let digest = crate::crypto::sha256(id.as_bytes());
    let name = crate::crypto::hex(&digest[..12]);
    state_dir.join("jwks").join(format!("{name}.json"))
}

/// Writes `saved` for source `id` atomically.
pub fn save(state_dir: &Path, id: &str, saved: &Saved) -> std::io::Result<()> {
    let target = path(state_dir, id);
    let dir = target.parent().unwrap_or(state_dir);
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("saved.json");
    let doc = json!({
        "source": id,
        "fetched_at": saved.fetched_at,
        "etag": saved.validators.etag,
        "last_modified": saved.validators.last_modified,
        "jwks_url": saved.jwks_url,
        "jwks": String::from_utf8_lossy(&saved.jwks),
    });
    crate::revocation::dir::write_atomic(dir, name, doc.to_string().as_bytes())
}

/// Reads what was saved for source `id`: `Ok(None)` when nothing was; an error for a file that is not ours
/// (its caller logs it and starts without).
pub fn load(state_dir: &Path, id: &str) -> Result<Option<Saved>, String> {
    let p = path(state_dir, id);
    if !p.exists() {
        return Ok(None);
    }
    let bytes = crate::keys::file::read_regular(&p)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if text("source").as_deref() != Some(id) {
        return Err(format!("{}: saved for another source", p.display()));
    }
    let fetched_at = v
        .get("fetched_at")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{}: no fetched_at", p.display()))?;
    let jwks = text("jwks").ok_or_else(|| format!("{}: no jwks", p.display()))?;
    Ok(Some(Saved {
        fetched_at,
        validators: Validators {
            etag: text("etag"),
            last_modified: text("last_modified"),
        },
        jwks_url: text("jwks_url").unwrap_or_default(),
        jwks: jwks.into_bytes(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_atomically_privately_and_read_back() {
        let dir = std::env::temp_dir().join(format!("jwtd-persist-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let saved = Saved {
            fetched_at: 1_700_000_000,
            validators: Validators {
                etag: Some("\"v1\"".into()),
                last_modified: None,
            },
            jwks_url: "https://idp.example/jwks".into(),
            jwks: br#"{"keys":[]}"#.to_vec(),
        };
        assert_eq!(load(&dir, "a").unwrap(), None);
        save(&dir, "a", &saved).unwrap();
        assert_eq!(load(&dir, "a").unwrap(), Some(saved.clone()));
        let mode = fs::metadata(path(&dir, "a")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(dir.join("jwks")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Overwritten in place; another source's file is another file.
        let newer = Saved {
            fetched_at: 1_700_000_100,
            ..saved
        };
        save(&dir, "a", &newer).unwrap();
        assert_eq!(load(&dir, "a").unwrap(), Some(newer));
        assert_eq!(load(&dir, "b").unwrap(), None);
        // A file that is not ours is an error, not keys.
        fs::write(path(&dir, "b"), b"junk").unwrap();
        assert!(load(&dir, "b").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
