//! The state directory: checked, created private, and locked for the daemon's life.
//!
//! - **Not a symlink**: the directory and the log are refused when they are symbolic links (compaction
//!   renames a new log into the directory; through a link that would leave the link's target stale).
//! - **Private**: created 0700, the log and lock 0600 — revoked subjects and jtis are nobody else's business.
//!   An existing directory that others can read is used, with a warning naming its mode.
//! - **Locked**: `flock` on `lock` in the directory, held until the [`StateDir`] is dropped (the process ends
//!   at the latest). A second daemon on the same directory would compact the shared log from its own memory
//!   and rename over it, and every revocation the first one acknowledged afterwards would go to a deleted
//!   file. It is refused at start, naming the holder's pid.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Writes `bytes` as the file `name` in `dir` (created 0700 if missing) atomically and privately: a
/// temporary file (0600, never through a symlink) is written and fsync'd, renamed over `name`, and the
/// directory fsync'd — a crash leaves the old content or the new, never a mix.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let target = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &target)?;
    File::open(dir)?.sync_all()
}

/// The lock file's name in the state directory.
pub const LOCK: &str = "lock";

/// A checked, locked state directory.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    /// Holds the lock (released when closed).
    _lock: File,
    /// What the checks found worth a warning (for the caller to log).
    pub warnings: Vec<String>,
}

impl StateDir {
    /// Creates (0700) or checks `path`, then takes its lock.
    pub fn open(path: &Path) -> Result<StateDir, StoreError> {
        let shown = path.display();
        let mut warnings = Vec::new();
        match path.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StoreError::Symlink {
                    path: path.to_path_buf(),
                });
            }
            Ok(m) if !m.is_dir() => {
                return Err(StoreError::WrongKind {
                    path: path.to_path_buf(),
                    expected: "directory",
                });
            }
            Ok(m) => {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    warnings.push(format!(
                        "state directory {shown} has mode {mode:o}: other users may read the revoked subjects \
                         and jtis; chmod 700 it"
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(StoreError::on(path))?;
            }
            Err(e) => return Err(StoreError::io(path, e)),
        }
        let lock_path = path.join(LOCK);
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(StoreError::on(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                return Err(StoreError::InUse {
                    path: path.to_path_buf(),
                    holder: holder.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&lock_path, e)),
        }
        // Ours now: say who holds it.
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()));
        let log = path.join(super::log::FILE);
        if let Ok(m) = log.symlink_metadata() {
            let mode = m.permissions().mode() & 0o777;
            if !m.file_type().is_symlink() && mode & 0o077 != 0 {
                warnings.push(format!(
                    "revocation log {} has mode {mode:o}: other users may read it; chmod 600 it",
                    log.display()
                ));
            }
        }
        Ok(StateDir {
            path: path.to_path_buf(),
            _lock: lock,
            warnings,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jwtd-statedir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn created_private_and_locked_until_dropped() {
        let d = dir("lock");
        let first = StateDir::open(&d.join("state")).unwrap();
        let mode = std::fs::metadata(d.join("state"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        let e = StateDir::open(&d.join("state")).unwrap_err();
        assert!(
            matches!(e, StoreError::InUse { holder: Some(pid), .. } if pid == std::process::id()),
            "names the holder: {e:?}"
        );
        assert!(
            e.to_string()
                .contains(&format!("another jwtd (pid {})", std::process::id())),
            "{e}"
        );
        drop(first);
        StateDir::open(&d.join("state")).expect("free again once the holder is gone");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlinks_are_refused_and_wide_modes_warned() {
        let d = dir("links");
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        let e = StateDir::open(&d.join("link")).unwrap_err();
        assert!(matches!(e, StoreError::Symlink { .. }), "{e:?}");
        std::fs::set_permissions(d.join("real"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = StateDir::open(&d.join("real")).unwrap();
        assert!(
            s.warnings.iter().any(|w| w.contains("755")),
            "{:?}",
            s.warnings
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
