//! The closed loop: `connections` connections, each keeping `depth` requests in flight per round trip
//! (write a batch, read its replies, repeat): the maximum throughput.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::replies::{REPLY_TIMEOUT, Replies};
use super::{Progress, Report, Requests, invalid, join_all, start_of};

/// How hard and how long to push, closed loop.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    pub connections: usize,
    /// Requests in flight per connection (one write, then read that many replies).
    pub depth: usize,
    /// Client threads the connections are spread over.
    pub threads: usize,
    /// Stop after this long…
    pub duration: Duration,
    /// …or after this many requests in all, whichever comes first.
    pub max_requests: Option<u64>,
    pub progress: Option<Arc<Progress>>,
}

impl Default for ClosedLoop {
    fn default() -> Self {
        ClosedLoop {
            connections: 16,
            depth: 16,
            threads: 1,
            duration: Duration::from_secs(5),
            max_requests: None,
            progress: None,
        }
    }
}

/// Runs `per_connection(index)` futures for `connections` connections over `threads` threads, each thread a
/// current-thread runtime, and merges their reports.
fn spread<F, Fut>(connections: usize, threads: usize, per_connection: F) -> io::Result<Report>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = io::Result<Report>> + Send + 'static,
{
    let threads = threads.clamp(1, connections);
    let per_connection = Arc::new(per_connection);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let conns: Vec<usize> = (t..connections).step_by(threads).collect();
            let per_connection = per_connection.clone();
            std::thread::spawn(move || -> io::Result<Report> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let tasks: Vec<_> = conns
                        .into_iter()
                        .map(|c| tokio::spawn(per_connection(c)))
                        .collect();
                    let mut total = Report::default();
                    for t in tasks {
                        total.merge(&t.await.map_err(io::Error::other)??);
                    }
                    Ok(total)
                })
            })
        })
        .collect();
    join_all(handles, start)
}

/// Runs the closed loop against the daemon on `socket`.
pub fn run(socket: &Path, requests: &Requests, cfg: &ClosedLoop) -> io::Result<Report> {
    if requests.is_empty() || cfg.connections == 0 || cfg.depth == 0 {
        return Err(invalid(
            "need at least one request, one connection and depth 1",
        ));
    }
    let requests = Arc::new(requests.clone());
    let deadline = Instant::now() + cfg.duration;
    // The request budget, if any, is shared out exactly: connection i sends ⌊(i+1)n/c⌋ − ⌊in/c⌋.
    let budget = cfg.max_requests;
    let (socket, depth, connections) = (socket.to_path_buf(), cfg.depth, cfg.connections);
    let progress = cfg.progress.clone();
    spread(cfg.connections, cfg.threads, move |index| {
        closed_connection(Closed {
            socket: socket.clone(),
            requests: requests.clone(),
            index,
            connections,
            depth,
            deadline,
            budget,
            progress: progress.clone(),
        })
    })
}

/// One closed-loop connection's part of a run.
struct Closed {
    socket: PathBuf,
    requests: Arc<Requests>,
    index: usize,
    connections: usize,
    depth: usize,
    deadline: Instant,
    /// Requests all connections may send together, if limited.
    budget: Option<u64>,
    progress: Option<Arc<Progress>>,
}

async fn closed_connection(c: Closed) -> io::Result<Report> {
    let Closed {
        socket,
        requests,
        index,
        connections,
        depth,
        deadline,
        budget,
        progress,
    } = c;
    let mut stream = tokio::net::UnixStream::connect(&socket).await?;
    let mut report = Report::default();
    let len = requests.order_len();
    // Connections start evenly spread over the order; with a request budget of the order's length they
    // cover it exactly once between them.
    let mut next = start_of(index, connections, len);
    let budget = budget.map(|n| {
        let (i, c) = (index as u128, connections.max(1) as u128);
        ((i + 1) * n as u128 / c - i * n as u128 / c) as u64
    });
    let mut request = Vec::with_capacity(depth * 512);
    let mut accepts = Vec::with_capacity(depth);
    let mut replies = Replies::new(REPLY_TIMEOUT);
    let start = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < deadline && budget.is_none_or(|b| sent < b) {
        request.clear();
        accepts.clear();
        let n = budget.map_or(depth as u64, |b| (b - sent).min(depth as u64)) as usize;
        for _ in 0..n {
            let i = requests.at(next);
            request.extend_from_slice(&requests.lines[i]);
            accepts.push(requests.live.on_send(requests.accept[i]));
            next = (next + 1) % len;
        }
        let sent_at = Instant::now();
        stream.write_all(&request).await?;
        sent += n as u64;
        let mismatches_before = report.mismatches;
        let mut got = 0;
        while got < n {
            replies
                .read(&mut stream, |line, arrival| {
                    if got < n {
                        report.reply(
                            line,
                            requests.live.on_reply(accepts[got]),
                            arrival - sent_at,
                        );
                    }
                    got += 1;
                })
                .await?;
            if got > n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more replies than requests",
                ));
            }
        }
        if let Some(p) = &progress {
            p.add(n as u64, report.mismatches - mismatches_before);
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
