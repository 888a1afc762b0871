//! What can go wrong with the state directory, the revocation log and its writer.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// An error of the durable revocation list. `Clone`: one failed group commit answers every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// An operation no log record can hold; refused before anything is written.
    #[error("{what} of {len} bytes: a revocation record holds at most {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// A file system operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The state directory or the log is a symbolic link.
    #[error(
        "{} is a symbolic link: the state directory and its log must be real (compaction renames a new \
         log into the directory; through a link the daemon would go on reading a stale file)",
        path.display()
    )]
    Symlink { path: PathBuf },
    /// Something other than a directory (or a regular file, for the log) is in the way.
    #[error("{}: not a {expected}", path.display())]
    WrongKind {
        path: PathBuf,
        expected: &'static str,
    },
    /// Another process holds the state directory's lock.
    #[error(
        "state directory {} is in use by {}: two daemons must not share one state directory",
        path.display(),
        match holder { Some(pid) => format!("another jwtd (pid {pid})"), None => "another process".into() }
    )]
    InUse { path: PathBuf, holder: Option<u32> },
    /// The file is not a revocation log at all.
    #[error("{}: not a jwtd revocation log (bad magic)", path.display())]
    NotALog { path: PathBuf },
    /// A record before the end is damaged: not a torn last write, so the daemon refuses to start.
    #[error("{}: damaged record at offset {offset}: {reason} (not a torn write: refusing to start)", path.display())]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A record is whole (its checksum matches) but says something this version cannot read.
    #[error("{}: bad record at offset {offset}: {reason}", path.display())]
    BadRecord {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The writer thread could not start, or has stopped.
    #[error("the revocation writer has stopped")]
    Stopped,
}

impl StoreError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// A closure for `map_err`: the I/O error happened on `path`.
    pub fn on(path: &std::path::Path) -> impl Fn(io::Error) -> StoreError + '_ {
        move |e| StoreError::io(path, e)
    }
}
