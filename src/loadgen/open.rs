//! The open loop: requests sent at a fixed total rate whatever the replies do, each one's latency measured
//! from the moment it was *meant* to be sent.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::replies::{REPLY_TIMEOUT, Replies};
use super::report::histogram;
use super::{Accept, Progress, Report, Requests, invalid, join_all, live, start_of};

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
}
