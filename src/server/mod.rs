//! The daemon: a tokio server on a Unix socket answering the line protocol (docs/PROTOCOL.md).
//!
//! `line` is the pure codec, `conn` one connection, `socket` the socket file, `stats` the counters. Shutdown
//! is an injected `CancellationToken`; connections are tracked so shutdown can wait for them.

pub mod conn;
pub mod line;
pub mod socket;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::verify::Verifier;
use stats::Stats;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub verifier: Verifier,
    pub stats: Stats,
    /// Longest accepted request line, in bytes.
    pub max_line: usize,
}

/// Server limits.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_line: usize,
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 32 * 1024,
            max_connections: 4096,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Accepts connections until `shutdown` is cancelled, then waits (up to `drain`) for open connections to
/// finish their current batch.
pub async fn run(
    listener: UnixListener,
    shared: Arc<Shared>,
    config: &Config,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let mut stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(5);
                stream
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning or dying.
                eprintln!("jwtd: accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            shared.stats.connection_refused();
            tracker.spawn(async move {
                let _ = stream
                    .write_all(b"ERR too_many_connections the server is at its connection limit\n")
                    .await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            shared.stats.connection_opened();
            let _ = conn::serve(stream, &shared, &shutdown).await;
            shared.stats.connection_closed();
            drop(permit);
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(drain, tracker.wait()).await;
}
