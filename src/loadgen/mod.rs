//! Closed-loop load against a running daemon: `connections` connections, each keeping `depth` `VERIFY`
//! requests in flight per round trip (write a batch, read its replies, repeat), on a few client threads with
//! a single-threaded tokio runtime each — cheap enough that the client does not hide the server's speed.
//!
//! Every reply is checked against the outcome expected for its token (`OK` or `ERR`); a benchmark that counts
//! wrong answers as throughput would be worthless, so mismatches are counted separately.

pub mod corpus;
pub mod zipf;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Requests to send, round robin: each is one `VERIFY <token>\n` line and whether it should be accepted.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    lines: Vec<Box<[u8]>>,
    expect_ok: Vec<bool>,
}

impl Corpus {
    /// Adds a token; `expect_ok` is whether the daemon must accept it.
    pub fn push(&mut self, token: &str, expect_ok: bool) -> io::Result<()> {
        if token.contains('\n') || token.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a token must be one non-empty line",
            ));
        }
        let mut line = Vec::with_capacity(token.len() + 8);
        line.extend_from_slice(b"VERIFY ");
        line.extend_from_slice(token.as_bytes());
        line.push(b'\n');
        self.lines.push(line.into_boxed_slice());
        self.expect_ok.push(expect_ok);
        Ok(())
    }

    /// Adds any one-line request (`REVOKE JTI x 0`, `PING`); `expect_ok` is whether its reply must be `OK …`
    /// (a `PONG` counts as not OK).
    pub fn push_line(&mut self, line: &str, expect_ok: bool) -> io::Result<()> {
        if line.contains('\n') || line.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a request must be one non-empty line",
            ));
        }
        self.lines
            .push(format!("{line}\n").into_bytes().into_boxed_slice());
        self.expect_ok.push(expect_ok);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// How hard and how long to push.
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
}

impl Default for ClosedLoop {
    fn default() -> Self {
        ClosedLoop {
            connections: 16,
            depth: 16,
            threads: 1,
            duration: Duration::from_secs(5),
            max_requests: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Report {
    pub requests: u64,
    pub ok: u64,
    pub rejected: u64,
    /// Replies whose outcome was not the one expected for the token.
    pub mismatches: u64,
    pub elapsed: Duration,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, o: &Report) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.rejected += o.rejected;
        self.mismatches += o.mismatches;
        self.elapsed = self.elapsed.max(o.elapsed);
    }
}

/// Runs the closed loop against the daemon on `socket`.
pub fn run(socket: &Path, corpus: &Corpus, cfg: &ClosedLoop) -> io::Result<Report> {
    if corpus.is_empty() || cfg.connections == 0 || cfg.depth == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "need at least one token, one connection and depth 1",
        ));
    }
    let corpus = Arc::new(corpus.clone());
    let threads = cfg.threads.clamp(1, cfg.connections);
    let start = Instant::now();
    let deadline = start + cfg.duration;
    // Each connection gets its share of the request budget.
    let budget = cfg
        .max_requests
        .map(|n| n.div_ceil(cfg.connections as u64).max(1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let conns: Vec<usize> = (t..cfg.connections).step_by(threads).collect();
            let (socket, corpus, depth) = (socket.to_path_buf(), corpus.clone(), cfg.depth);
            let connections = cfg.connections;
            std::thread::spawn(move || -> io::Result<Report> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let tasks: Vec<_> = conns
                        .into_iter()
                        .map(|c| {
                            let (socket, corpus) = (socket.clone(), corpus.clone());
                            tokio::spawn(connection(
                                socket,
                                corpus,
                                c,
                                connections,
                                depth,
                                deadline,
                                budget,
                            ))
                        })
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
    let mut total = Report::default();
    for h in handles {
        total.merge(
            &h.join()
                .map_err(|_| io::Error::other("load thread panicked"))??,
        );
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

async fn connection(
    socket: PathBuf,
    corpus: Arc<Corpus>,
    index: usize,
    connections: usize,
    depth: usize,
    deadline: Instant,
    budget: Option<u64>,
) -> io::Result<Report> {
    let mut stream = tokio::net::UnixStream::connect(&socket).await?;
    let mut report = Report::default();
    // Connections start evenly spread over the corpus (with a request budget, they cover it without overlap).
    let mut next = (index * (corpus.len() / connections.max(1))) % corpus.len();
    let mut request = Vec::with_capacity(depth * 512);
    let mut expected = Vec::with_capacity(depth);
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    while Instant::now() < deadline && budget.is_none_or(|b| report.requests < b) {
        request.clear();
        expected.clear();
        let n = budget.map_or(depth as u64, |b| (b - report.requests).min(depth as u64)) as usize;
        for _ in 0..n {
            request.extend_from_slice(&corpus.lines[next]);
            expected.push(corpus.expect_ok[next]);
            next = (next + 1) % corpus.len();
        }
        stream.write_all(&request).await?;
        // Read until n replies have arrived; look only at each reply's first byte ('O'K or 'E'RR).
        let (mut replies, mut filled, mut line_start) = (0usize, 0usize, 0usize);
        while replies < n {
            if filled == buf.len() {
                if line_start > 0 {
                    // Keep the unfinished reply, drop the counted ones.
                    buf.copy_within(line_start..filled, 0);
                    (filled, line_start) = (filled - line_start, 0);
                } else {
                    // One reply longer than the buffer.
                    buf.resize(buf.len() * 2, 0);
                }
            }
            let got = stream.read(&mut buf[filled..]).await?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "jwtd closed the connection",
                ));
            }
            let from = filled;
            filled += got;
            for nl in memchr::memchr_iter(b'\n', &buf[from..filled]) {
                let ok = buf[line_start] == b'O';
                if ok {
                    report.ok += 1;
                } else {
                    report.rejected += 1;
                }
                if ok != expected[replies] {
                    report.mismatches += 1;
                }
                replies += 1;
                line_start = from + nl + 1;
            }
            if line_start == filled {
                (filled, line_start) = (0, 0);
            } else if replies == n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more replies than requests",
                ));
            }
        }
        report.requests += n as u64;
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
