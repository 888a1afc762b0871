//! Load against a running daemon over its line protocol, in two models:
//!
//! - **Closed loop** ([`run`]): `connections` connections, each keeping `depth` requests in flight per round
//!   trip (write a batch, read its replies, repeat): the maximum throughput.
//! - **Open loop** ([`run_open`]): requests sent at a fixed total rate whatever the replies do, each one's
//!   latency measured from the moment it was *meant* to be sent — so time spent queued behind a slow server
//!   counts (the coordinated-omission problem that wrk2 fixed).
//!
//! Clients run on a few threads with a single-threaded tokio runtime each: cheap enough that the client does
//! not hide the server's speed. Every reply is checked against the outcome expected for its request (`OK`,
//! or `ERR` with a given code); a benchmark that counted wrong answers as throughput would be worthless, so
//! mismatches are counted and the first few described.

pub mod live;
pub mod tokens;
pub mod zipf;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use tokens::Outcome;

/// What a reply must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// `OK …`
    Ok,
    /// `ERR <code> …`
    Code(&'static str),
    /// Any `ERR`.
    Rejected,
    /// Anything (not checked).
    Any,
    /// `OK …` or `ERR <code> …`.
    OkOr(&'static str),
    /// A token revoked during the run by the [`live::Live`] revocation in this slot: judged by the phase the
    /// revocation was in when the request was sent and when its reply came (see [`live`]).
    Revocable(u32),
}

impl From<Outcome> for Accept {
    fn from(e: Outcome) -> Accept {
        match e {
            Outcome::Ok => Accept::Ok,
            Outcome::Err(code) => Accept::Code(code),
        }
    }
}

/// Requests to send: one line each, with the reply it must get, and the order to send them in.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    lines: Vec<Box<[u8]>>,
    accept: Vec<Accept>,
    /// Indices into `lines`, sent in this order (cycling); empty = `lines` in order.
    order: Vec<u32>,
    /// Revocations issued during the runs, for the requests that accept [`Accept::Revocable`].
    live: Arc<live::Live>,
}

impl Requests {
    /// Adds a `VERIFY` of `token`; `expect_ok` is whether the daemon must accept it.
    pub fn push(&mut self, token: &str, expect_ok: bool) -> io::Result<()> {
        let accept = if expect_ok {
            Accept::Ok
        } else {
            Accept::Rejected
        };
        self.push_verify(token, accept)
    }

    /// Adds a `VERIFY` of `token` that must get `accept`.
    pub fn push_verify(&mut self, token: &str, accept: Accept) -> io::Result<()> {
        if token.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a token must be one non-empty line",
            ));
        }
        self.push_request(&format!("VERIFY {token}"), accept)
    }

    /// Adds any one-line request (`REVOKE JTI x 0`, `PING`); `expect_ok` is whether its reply must be `OK …`
    /// (a `PONG` counts as not OK).
    pub fn push_line(&mut self, line: &str, expect_ok: bool) -> io::Result<()> {
        let accept = if expect_ok {
            Accept::Ok
        } else {
            Accept::Rejected
        };
        self.push_request(line, accept)
    }

    fn push_request(&mut self, line: &str, accept: Accept) -> io::Result<()> {
        if line.contains('\n') || line.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a request must be one non-empty line",
            ));
        }
        self.lines
            .push(format!("{line}\n").into_bytes().into_boxed_slice());
        self.accept.push(accept);
        Ok(())
    }

    /// Sends requests in this order (indices of pushed requests, cycling) instead of push order.
    pub fn set_order(&mut self, order: Vec<u32>) -> io::Result<()> {
        if order.iter().any(|&i| i as usize >= self.lines.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the order names a request that does not exist",
            ));
        }
        self.order = order;
        Ok(())
    }

    /// The revocations that [`Accept::Revocable`] requests refer to (issued with [`live::Live::issue`] while a
    /// run goes on).
    pub fn set_live(&mut self, live: Arc<live::Live>) {
        self.live = live;
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Length of the send order.
    fn order_len(&self) -> usize {
        if self.order.is_empty() {
            self.lines.len()
        } else {
            self.order.len()
        }
    }

    /// The request at position `i` of the send order.
    #[inline]
    fn at(&self, i: usize) -> usize {
        if self.order.is_empty() {
            i
        } else {
            self.order[i] as usize
        }
    }
}

/// Live counters a run updates as it goes (for a progress display).
#[derive(Debug, Default)]
pub struct Progress {
    pub replies: std::sync::atomic::AtomicU64,
    pub mismatches: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn add(&self, replies: u64, mismatches: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.replies.fetch_add(replies, Relaxed);
        if mismatches > 0 {
            self.mismatches.fetch_add(mismatches, Relaxed);
        }
    }
}

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

/// Open loop: a fixed total request rate spread over the connections.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    pub connections: usize,
    /// Requests per second, in all.
    pub rate: f64,
    pub threads: usize,
    pub duration: Duration,
    pub progress: Option<Arc<Progress>>,
}

/// At most this many mismatches are described in a report.
const MISMATCH_SAMPLES: usize = 5;

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub requests: u64,
    pub ok: u64,
    pub rejected: u64,
    /// Replies by outcome: `ok` or the error code.
    pub outcomes: BTreeMap<String, u64>,
    /// Replies whose outcome was not the one expected for the request.
    pub mismatches: u64,
    /// The first few mismatches: what was expected and the start of what came.
    pub mismatch_samples: Vec<String>,
    /// Per-request latency in nanoseconds: closed loop from the batch's write to the reply; open loop from
    /// the request's intended send time to the reply.
    pub latency: Histogram<u64>,
    /// Open loop only: how late the client itself wrote each request after its intended send time, in
    /// nanoseconds (part of `latency`: the client's share of it, sleep granularity and CPU contention).
    pub lateness: Histogram<u64>,
    pub elapsed: Duration,
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 10 minutes, 3 significant digits: constant arguments that hdrhistogram accepts (low ≥ 1,
    // high ≥ 2 × low, 0–5 digits), so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid constant histogram bounds")
}

impl Default for Report {
    fn default() -> Self {
        Report {
            requests: 0,
            ok: 0,
            rejected: 0,
            outcomes: BTreeMap::new(),
            mismatches: 0,
            mismatch_samples: Vec::new(),
            latency: histogram(),
            lateness: histogram(),
            elapsed: Duration::ZERO,
        }
    }
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1), as a duration.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.latency.value_at_quantile(q))
    }

    fn merge(&mut self, o: &Report) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.rejected += o.rejected;
        for (k, v) in &o.outcomes {
            *self.outcomes.entry(k.clone()).or_insert(0) += v;
        }
        self.mismatches += o.mismatches;
        for s in &o.mismatch_samples {
            if self.mismatch_samples.len() < MISMATCH_SAMPLES {
                self.mismatch_samples.push(s.clone());
            }
        }
        let _ = self.latency.add(&o.latency);
        let _ = self.lateness.add(&o.lateness);
        self.elapsed = self.elapsed.max(o.elapsed);
    }

    /// Counts one reply line against what it should be.
    fn reply(&mut self, line: &[u8], accept: Accept, latency: Duration) {
        self.requests += 1;
        let code: &[u8] = if line.starts_with(b"OK") {
            self.ok += 1;
            b"ok"
        } else if let Some(rest) = line.strip_prefix(b"ERR ") {
            self.rejected += 1;
            rest.split(|&b| b == b' ').next().unwrap_or(b"")
        } else {
            line.split(|&b| b == b' ').next().unwrap_or(b"")
        };
        match self
            .outcomes
            .get_mut(std::str::from_utf8(code).unwrap_or("?"))
        {
            Some(n) => *n += 1,
            None => {
                self.outcomes
                    .insert(String::from_utf8_lossy(code).into_owned(), 1);
            }
        }
        let good = match accept {
            Accept::Ok => code == b"ok",
            Accept::Code(c) => line.starts_with(b"ERR ") && code == c.as_bytes(),
            Accept::Rejected => line.starts_with(b"ERR "),
            Accept::Any => true,
            Accept::OkOr(c) => code == b"ok" || (line.starts_with(b"ERR ") && code == c.as_bytes()),
            // Unsettled (callers settle it with `Live::on_reply` first): the permissive reading.
            Accept::Revocable(_) => {
                code == b"ok" || (line.starts_with(b"ERR ") && code == b"revoked")
            }
        };
        if !good {
            self.mismatches += 1;
            if self.mismatch_samples.len() < MISMATCH_SAMPLES {
                self.mismatch_samples.push(format!(
                    "expected {accept:?}, got {:.80}",
                    String::from_utf8_lossy(line)
                ));
            }
        }
        self.latency
            .saturating_record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1));
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
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

/// Waits for the load threads and merges their reports; the run's elapsed time counts from `start`.
fn join_all(
    handles: Vec<std::thread::JoinHandle<io::Result<Report>>>,
    start: Instant,
) -> io::Result<Report> {
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

/// How long a connection with requests outstanding may go without a byte of reply before the run fails
/// (a server that stops answering must not keep `jwtd bench` waiting forever).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest reply line accepted (a server streaming bytes without a newline must not grow the client's
/// memory without bound).
pub const MAX_REPLY: usize = 16 << 20;

/// Reads reply lines into `buf` until `n` have been counted, calling `each(index, line, arrival)`.
struct Replies {
    buf: Vec<u8>,
    filled: usize,
    line_start: usize,
    /// See [`REPLY_TIMEOUT`].
    stall: Duration,
}

impl Replies {
    fn new(stall: Duration) -> Replies {
        Replies {
            buf: vec![0u8; 256 * 1024],
            filled: 0,
            line_start: 0,
            stall,
        }
    }

    /// Reads once (waiting for data) and calls `each` for every complete line; returns how many.
    async fn read<S: AsyncReadExt + Unpin>(
        &mut self,
        stream: &mut S,
        mut each: impl FnMut(&[u8], Instant),
    ) -> io::Result<usize> {
        if self.filled == self.buf.len() {
            if self.line_start > 0 {
                self.buf.copy_within(self.line_start..self.filled, 0);
                self.filled -= self.line_start;
                self.line_start = 0;
            } else {
                // One reply longer than the buffer.
                let len = self.buf.len();
                if len >= MAX_REPLY {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a reply longer than {MAX_REPLY} bytes without a newline"),
                    ));
                }
                self.buf.resize(len * 2, 0);
            }
        }
        let got = tokio::time::timeout(self.stall, stream.read(&mut self.buf[self.filled..]))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no reply for {} s while requests were outstanding: the server stopped answering",
                        self.stall.as_secs_f64()
                    ),
                )
            })??;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "jwtd closed the connection",
            ));
        }
        let arrival = Instant::now();
        let from = self.filled;
        self.filled += got;
        let mut lines = 0;
        for nl in memchr::memchr_iter(b'\n', &self.buf[from..self.filled]) {
            let end = from + nl;
            each(&self.buf[self.line_start..end], arrival);
            self.line_start = end + 1;
            lines += 1;
        }
        if self.line_start == self.filled {
            self.filled = 0;
            self.line_start = 0;
        }
        Ok(lines)
    }
}

/// Where connection `index` of `connections` starts in an order of `len` requests: ⌊index·len/connections⌋.
fn start_of(index: usize, connections: usize, len: usize) -> usize {
    ((index as u128 * len as u128) / connections.max(1) as u128) as usize % len.max(1)
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

/// Runs the open loop against the daemon on `socket`.
///
/// Per client thread, one sender thread writes each connection's requests when they fall due (sleeping
/// between rounds with `std::thread::sleep`, which Linux wakes within ~0.1–0.2 ms, where tokio's timer has
/// 1 ms ticks), and a current-thread runtime reads the replies. A request's latency runs from its intended send
/// time, so a late send — the client's or a full socket's fault — counts against the latency, never hides it.
pub fn run_open(socket: &Path, requests: &Requests, cfg: &OpenLoop) -> io::Result<Report> {
    if requests.is_empty() || cfg.connections == 0 || !(cfg.rate > 0.0 && cfg.rate.is_finite()) {
        return Err(invalid(
            "need at least one request, one connection and a positive rate",
        ));
    }
    let requests = Arc::new(requests.clone());
    let connections = cfg.connections;
    let threads = cfg.threads.clamp(1, connections);
    // Each connection sends every `interval`, connections staggered evenly within it.
    let interval = Duration::from_secs_f64(connections as f64 / cfg.rate);
    let count = (cfg.duration.as_secs_f64() * cfg.rate / connections as f64).ceil() as u64;
    let start = Instant::now() + Duration::from_millis(20);
    let began = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let conns: Vec<usize> = (t..connections).step_by(threads).collect();
            let (socket, requests) = (socket.to_path_buf(), requests.clone());
            let progress = cfg.progress.clone();
            std::thread::spawn(move || -> io::Result<Report> {
                let mut streams = Vec::new();
                for &c in &conns {
                    let s = std::os::unix::net::UnixStream::connect(&socket)?;
                    // For both halves (the flag belongs to the shared open file): the sender never blocks
                    // on one full socket, the reader is driven by tokio.
                    s.set_nonblocking(true)?;
                    let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Accept)>();
                    let schedule = Schedule {
                        first: start + interval.mul_f64(c as f64 / connections as f64),
                        interval,
                        count,
                    };
                    streams.push((c, s, tx, rx, schedule));
                }
                let readers: Vec<_> = streams
                    .iter()
                    .map(|(_, s, _, rx, schedule)| Ok((s.try_clone()?, rx.clone(), schedule.count)))
                    .collect::<io::Result<_>>()?;
                let (progress, live) = (progress.clone(), requests.live.clone());
                // Replies come at the connection's rate: allow for two intervals on top of the timeout.
                let stall = REPLY_TIMEOUT + interval * 2;
                let receiving =
                    std::thread::spawn(move || receive_all(readers, live, progress, stall));
                let sent = send_all(
                    &requests,
                    streams
                        .into_iter()
                        .map(|(c, s, tx, _, schedule)| (c, s, tx, schedule))
                        .collect(),
                    connections,
                );
                let mut report = receiving
                    .join()
                    .map_err(|_| io::Error::other("load receiver panicked"))??;
                report.lateness = sent?;
                Ok(report)
            })
        })
        .collect();
    join_all(handles, began)
}

type Outgoing = (
    usize,
    std::os::unix::net::UnixStream,
    crossbeam_channel::Sender<(Instant, Accept)>,
    Schedule,
);

/// Writes every connection's requests as they fall due, until all are sent.
fn send_all(
    requests: &Requests,
    mut conns: Vec<Outgoing>,
    connections: usize,
) -> io::Result<Histogram<u64>> {
    let mut lateness = histogram();
    let len = requests.order_len();
    let mut next: Vec<usize> = conns
        .iter()
        .map(|(c, ..)| start_of(*c, connections, len))
        .collect();
    let mut sent = vec![0u64; conns.len()];
    // Per connection, bytes due but not yet taken by the socket (it was full): written before anything
    // newer, without holding up the other connections.
    let mut unwritten: Vec<Unwritten> = conns.iter().map(|_| Unwritten::default()).collect();
    loop {
        let now = Instant::now();
        let mut earliest: Option<Instant> = None;
        let mut unfinished = false;
        let mut backlog = false;
        for (j, (_, stream, tx, schedule)) in conns.iter_mut().enumerate() {
            let due = schedule.due_by(now);
            let out = &mut unwritten[j];
            // A server that stays behind leaves requests queued here: at most MAX_UNWRITTEN bytes, then
            // the rest wait (and are counted late by the time they are queued).
            while sent[j] < due && out.pending() < MAX_UNWRITTEN {
                let k = sent[j];
                let i = requests.at(next[j]);
                out.bytes.extend_from_slice(&requests.lines[i]);
                next[j] = (next[j] + 1) % len;
                // Before the write: the reply can only come after its entry is queued.
                let _ = tx.send((schedule.due(k), requests.live.on_send(requests.accept[i])));
                let late = now.saturating_duration_since(schedule.due(k));
                lateness.saturating_record(u64::try_from(late.as_nanos()).unwrap_or(u64::MAX));
                sent[j] += 1;
            }
            out.write_some(stream)?;
            backlog |= !out.is_empty();
            if sent[j] < schedule.count {
                unfinished = true;
                let at = schedule.due(sent[j]);
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        if !unfinished && !backlog {
            return Ok(lateness);
        }
        // Never spin: on a small machine a spinning client steals the server's CPU and turns into
        // millisecond-long scheduler delays. Sleep at least 0.2 ms (wakes after ~0.25–0.3 ms): fewer
        // wake-ups and larger writes cost the client and server less than the lateness they add, and
        // that lateness is counted in every request's latency. (Measured at 330k/s on 2 vCPUs: p99
        // 1.4 ms with 0.1 ms sleeps, 1.1 ms with 0.25 ms, 3.0 ms with 20 µs.)
        let wait = earliest.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        });
        std::thread::sleep(wait.max(Duration::from_micros(200)));
    }
}

/// Most bytes of due requests kept per connection while its socket is full.
const MAX_UNWRITTEN: usize = 1 << 20;

/// Requests due on one connection that its socket has not taken yet.
#[derive(Default)]
struct Unwritten {
    bytes: Vec<u8>,
    /// How much of `bytes` was written.
    done: usize,
}

impl Unwritten {
    fn is_empty(&self) -> bool {
        self.done == self.bytes.len()
    }

    fn pending(&self) -> usize {
        self.bytes.len() - self.done
    }

    /// Writes as much as the (non-blocking) socket takes now: a full socket means the server is behind, and
    /// the latency measured from intended send times will show it.
    fn write_some(&mut self, stream: &mut std::os::unix::net::UnixStream) -> io::Result<()> {
        use std::io::Write as _;
        while !self.is_empty() {
            match stream.write(&self.bytes[self.done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Keep only what is left, so the buffer does not grow with all that was written.
                    if self.done > self.bytes.len() / 2 {
                        self.bytes.drain(..self.done);
                        self.done = 0;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes.clear();
        self.done = 0;
        Ok(())
    }
}

type Incoming = (
    std::os::unix::net::UnixStream,
    crossbeam_channel::Receiver<(Instant, Accept)>,
    u64,
);

/// Reads every connection's replies (on one current-thread runtime) and matches them, in order, with their
/// intended send times.
fn receive_all(
    conns: Vec<Incoming>,
    live: Arc<live::Live>,
    progress: Option<Arc<Progress>>,
    stall: Duration,
) -> io::Result<Report> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for (stream, rx, count) in conns {
            let (progress, live) = (progress.clone(), live.clone());
            stream.set_nonblocking(true)?;
            let mut stream = tokio::net::UnixStream::from_std(stream)?;
            tasks.push(tokio::spawn(async move {
                let mut report = Report::default();
                let mut replies = Replies::new(stall);
                let mut got = 0u64;
                let start = Instant::now();
                while got < count {
                    let mut bad = false;
                    let lines = replies
                        .read(&mut stream, |line, arrival| match rx.try_recv() {
                            Ok((intended, accept)) => report.reply(
                                line,
                                live.on_reply(accept),
                                arrival.saturating_duration_since(intended),
                            ),
                            Err(_) => bad = true,
                        })
                        .await?;
                    if bad {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "more replies than requests",
                        ));
                    }
                    if let Some(p) = &progress {
                        p.add(lines as u64, 0);
                    }
                    got += lines as u64;
                }
                report.elapsed = start.elapsed();
                Ok::<Report, io::Error>(report)
            }));
        }
        let mut total = Report::default();
        for t in tasks {
            total.merge(&t.await.map_err(io::Error::other)??);
        }
        Ok(total)
    })
}

/// When a connection's requests are due: `first + k × interval` for k < count.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub first: Instant,
    pub interval: Duration,
    pub count: u64,
}

impl Schedule {
    /// The intended send time of request `k`.
    pub fn due(&self, k: u64) -> Instant {
        self.first + self.interval.mul_f64(k as f64)
    }

    /// How many requests are due at `now` (all with `due(k) <= now`), capped at `count`.
    pub fn due_by(&self, now: Instant) -> u64 {
        if now < self.first {
            return 0;
        }
        let elapsed = (now - self.first).as_secs_f64();
        let k = (elapsed / self.interval.as_secs_f64()).floor() as u64 + 1;
        // Guard against float rounding at the edge.
        let k = if k > 0 && self.due(k - 1) > now {
            k - 1
        } else {
            k
        };
        k.min(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked_against_codes_and_counted_by_outcome() {
        let mut r = Report::default();
        let ms = Duration::from_millis;
        r.reply(b"OK {\"sub\":\"a\"}", Accept::Ok, ms(1));
        r.reply(b"ERR expired token expired", Accept::Code("expired"), ms(2));
        r.reply(b"ERR revoked x", Accept::Code("expired"), ms(3));
        r.reply(b"ERR bad_signature x", Accept::Rejected, ms(4));
        r.reply(b"PONG", Accept::Any, ms(5));
        r.reply(b"OK {}", Accept::Rejected, ms(6));
        assert_eq!((r.requests, r.ok, r.rejected, r.mismatches), (6, 2, 3, 2));
        assert_eq!(r.outcomes["ok"], 2);
        assert_eq!(r.outcomes["revoked"], 1);
        assert_eq!(r.outcomes["PONG"], 1);
        assert!(
            r.mismatch_samples[0].contains("ERR revoked"),
            "{:?}",
            r.mismatch_samples
        );
        // Percentiles over 1..6 ms.
        assert_eq!(r.quantile(0.5).as_millis(), 3);
        assert!(r.quantile(1.0) >= ms(6) && r.quantile(1.0) < ms(7));
        let mut total = Report::default();
        total.merge(&r);
        total.merge(&r);
        assert_eq!(
            (total.requests, total.mismatches, total.outcomes["ok"]),
            (12, 4, 4)
        );
        assert_eq!(total.latency.len(), 12);
        assert_eq!(total.mismatch_samples.len(), 4);
    }

    #[test]
    fn the_open_loop_schedule_is_due_at_its_intended_times() {
        let first = Instant::now();
        let s = Schedule {
            first,
            interval: Duration::from_micros(250),
            count: 10,
        };
        assert_eq!(s.due_by(first - Duration::from_millis(1)), 0);
        assert_eq!(s.due_by(first), 1);
        assert_eq!(s.due_by(first + Duration::from_micros(249)), 1);
        assert_eq!(s.due_by(first + Duration::from_micros(250)), 2);
        assert_eq!(s.due_by(first + Duration::from_millis(1)), 5);
        assert_eq!(
            s.due_by(first + Duration::from_secs(1)),
            10,
            "capped at count"
        );
        assert_eq!(s.due(4), first + Duration::from_micros(1000));
        for k in 0..10 {
            assert_eq!(
                s.due_by(s.due(k)),
                k + 1,
                "request {k} is due at its own time"
            );
        }
    }

    #[test]
    fn a_budget_of_the_orders_length_covers_it_exactly_once() {
        for (len, connections) in [(94usize, 4usize), (100, 16), (7, 3), (5, 8), (1, 1)] {
            let mut seen = vec![0u32; len];
            for i in 0..connections {
                let (a, c, n) = (i as u128, connections as u128, len as u128);
                let budget = ((a + 1) * n / c - a * n / c) as usize;
                let start = start_of(i, connections, len);
                for k in 0..budget {
                    seen[(start + k) % len] += 1;
                }
            }
            assert!(
                seen.iter().all(|&n| n == 1),
                "{len} over {connections}: {seen:?}"
            );
        }
    }

    #[test]
    fn unwritten_requests_wait_for_a_full_socket_without_growing() {
        use std::io::Read as _;
        let (mut ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut out = Unwritten::default();
        let mut queued = 0usize;
        // Fill the socket until 256 KiB wait here.
        while out.pending() < 256 * 1024 {
            out.bytes.extend_from_slice(&[b'x'; 4096]);
            queued += 4096;
            out.write_some(&mut ours).unwrap();
        }
        // A slow reader: each round it takes 64 KiB and 64 KiB more fall due. The buffer keeps what is
        // pending, not everything ever written.
        let mut read = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        for round in 0..100 {
            theirs.read_exact(&mut chunk).unwrap();
            read += chunk.len();
            out.bytes.extend_from_slice(&[b'y'; 64 * 1024]);
            queued += 64 * 1024;
            out.write_some(&mut ours).unwrap();
            assert!(
                out.bytes.len() <= 2 * out.pending().max(64 * 1024),
                "round {round}: {} bytes held for {} pending",
                out.bytes.len(),
                out.pending()
            );
        }
        // The reader drains the rest: every byte arrives exactly once.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).unwrap();
            all.len()
        });
        while !out.is_empty() {
            out.write_some(&mut ours).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(ours);
        assert_eq!(read + reader.join().unwrap(), queued);
    }

    #[test]
    fn orders_must_name_existing_requests() {
        let mut c = Requests::default();
        c.push_line("PING", false).unwrap();
        assert!(c.set_order(vec![0, 0, 0]).is_ok());
        assert!(c.set_order(vec![1]).is_err());
        assert!(c.push_line("A\nB", true).is_err());
        assert!(c.push_verify("", Accept::Ok).is_err());
    }
}
