//! The Unix socket file: bound with a large backlog and a chosen mode; a stale file left by a crash is
//! replaced, a socket a live daemon answers on is never taken over; removed again on clean exit.

use super::ServerError;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

/// Connections the kernel queues before `accept`: nginx's plain `proxy_pass` opens one per auth request, and
/// a small backlog turns a burst into 502s.
pub const BACKLOG: i32 = 4096;

/// Removes the socket file when dropped, if it is still the one this process bound.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds `path` with file mode `mode`. Refuses (with a message for the user) when a live daemon answers on
/// it or when it is not a socket.
pub fn bind(
    path: &Path,
    mode: u32,
    group: Option<u32>,
) -> Result<(std::os::unix::net::UnixListener, SocketFile), ServerError> {
    let fail = |step: &'static str, source: io::Error| ServerError::Socket {
        path: path.to_path_buf(),
        step,
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServerError::SocketInUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(|e| fail("cannot remove stale socket", e))?;
        }
        Ok(_) => {
            return Err(ServerError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("stat", e)),
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| fail("socket", e))?;
    let addr = SockAddr::unix(path).map_err(|e| fail("address", e))?;
    socket.bind(&addr).map_err(|e| fail("bind", e))?;
    let ino = std::fs::symlink_metadata(path)
        .map_err(|e| fail("stat", e))?
        .ino();
    let guard = SocketFile {
        path: path.to_path_buf(),
        ino,
    };
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| fail("chgrp", e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail("chmod", e))?;
    socket.listen(BACKLOG).map_err(|e| fail("listen", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| fail("nonblocking", e))?;
    Ok((socket.into(), guard))
}

/// A group name (looked up in /etc/group) or a numeric gid.
pub fn resolve_group(group: &str) -> Result<u32, ServerError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").map_err(ServerError::GroupFile)?;
    groups
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let gid = f.nth(1)?.parse::<u32>().ok()?;
            Some((name, gid))
        })
        .find(|(name, _)| *name == group)
        .map(|(_, gid)| gid)
        .ok_or_else(|| ServerError::UnknownGroup(group.to_string()))
}

/// Descriptors kept back from connections: listeners, the revocation log and lock, key files read by a
/// reload, standard streams, the runtime's own.
pub const RESERVED_FDS: usize = 64;

/// The soft limit on open files (`Max open files` in `/proc/self/limits`); `None` when unlimited or unknown.
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The connection limit that fits in `fd_limit` descriptors: a connection beyond it would not be refused
/// with `ERR too_many_connections` — `accept` itself would fail and the client would wait in the backlog.
/// Returns the limit to use and whether it was lowered.
pub fn fit_connections(max_connections: usize, fd_limit: Option<usize>) -> (usize, bool) {
    match fd_limit {
        Some(fds) if max_connections + RESERVED_FDS > fds => {
            (fds.saturating_sub(RESERVED_FDS).max(1), true)
        }
        _ => (max_connections, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_resolve_by_name_or_number() {
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert_eq!(resolve_group("4242").unwrap(), 4242);
        assert!(matches!(
            resolve_group("no-such-group-jwtd"),
            Err(ServerError::UnknownGroup(name)) if name == "no-such-group-jwtd"
        ));
    }

    #[test]
    fn connections_fit_in_the_descriptor_limit() {
        assert_eq!(
            fit_connections(4096, Some(1024)),
            (1024 - RESERVED_FDS, true)
        );
        assert_eq!(fit_connections(100, Some(1024)), (100, false));
        assert_eq!(fit_connections(4096, None), (4096, false));
        assert_eq!(fit_connections(4096, Some(10)), (1, true));
        assert!(open_file_limit().is_some_and(|n| n > 0));
    }
}
