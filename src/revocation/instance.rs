//! This daemon's identity in the fleet: 16 random bytes, created once in `state_dir/fleet/instance` (mode
//! 0600) and read back at every start, so that several daemons on one host — each with its own state
//! directory — never collide, and a restart is the same instance (its sequence numbers continue).

use std::path::Path;

use crate::crypto::{hex, unhex};

/// A daemon's identity in the fleet: 16 random bytes, created once in its state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Instance(pub [u8; 16]);

impl Instance {
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    pub fn parse(s: &[u8]) -> Option<Instance> {
        let mut out = [0u8; 16];
        unhex(s, &mut out).then_some(Instance(out))
    }
}

/// The file's name under `state_dir/fleet/`.
pub const FILE: &str = "instance";

/// Reads the instance id kept in `state_dir`, or creates it.
pub fn load_or_create(state_dir: &Path) -> Result<Instance, String> {
    let dir = state_dir.join("fleet");
    let path = dir.join(FILE);
    if path.symlink_metadata().is_ok() {
        let bytes = crate::keys::file::read_regular(&path)?;
        return Instance::parse(bytes.trim_ascii()).ok_or_else(|| {
            format!(
                "{}: not an instance id (32 lower-case hex digits); remove it to make a new one",
                path.display()
            )
        });
    }
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| format!("no randomness for the instance id: {e}"))?;
    let instance = Instance(id);
    super::dir::write_atomic(&dir, FILE, format!("{}\n", instance.hex()).as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_privately_and_kept() {
        let dir = std::env::temp_dir().join(format!("jwtd-instance-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = load_or_create(&dir).unwrap();
        assert_eq!(
            load_or_create(&dir).unwrap(),
            a,
            "the same instance after a restart"
        );
        let file = dir.join("fleet").join(FILE);
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        let other = std::env::temp_dir().join(format!("jwtd-instance-b-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&other);
        std::fs::create_dir_all(&other).unwrap();
        assert_ne!(
            load_or_create(&other).unwrap(),
            a,
            "another state directory, another instance"
        );
        std::fs::write(&file, "junk\n").unwrap();
        assert!(
            load_or_create(&dir)
                .unwrap_err()
                .contains("not an instance id")
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&other);
    }
}
