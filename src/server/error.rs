//! What can stop the daemon from starting or reloading: its socket, its settings, its randomness.

use std::io;
use std::path::PathBuf;

/// An error of the daemon's setup (the socket, admin uids, the cache key, a reload).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A live daemon answers on the socket path.
    #[error("{}: another daemon is answering on this socket; stop it or choose another socket path", path.display())]
    SocketInUse { path: PathBuf },
    /// Something that is not a socket is at the socket path.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    /// A step of binding the socket failed.
    #[error("{}: {step}: {source}", path.display())]
    Socket {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("/etc/group: {0}")]
    GroupFile(#[source] io::Error),
    #[error("no group named {0:?} in /etc/group")]
    UnknownGroup(String),
    /// The overflow uid cannot be an admin (see [`super::overflow_uid`]).
    #[error(
        "admin uid {0} is the overflow uid (nobody), which SO_PEERCRED also reports for every peer from a \
         user namespace without a mapping; it can never be an admin"
    )]
    OverflowAdmin(u32),
    #[error("no randomness for the cache key: {0}")]
    NoRandomness(#[source] getrandom::Error),
    #[error("reloading is not configured")]
    ReloadNotConfigured,
    /// The reloader refused the new keys or configuration (everything running stays).
    #[error("{0}")]
    Reload(#[source] Box<dyn std::error::Error + Send + Sync>),
}
