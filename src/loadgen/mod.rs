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

mod closed;
pub mod live;
mod open;
mod replies;
mod report;
mod requests;
pub mod tokens;
pub mod zipf;

use std::io;
use std::time::Instant;

pub use closed::{ClosedLoop, run};
pub use open::{OpenLoop, Schedule, run_open};
pub use replies::{MAX_REPLY, REPLY_TIMEOUT};
pub use report::Report;
pub use requests::{Accept, Requests};
pub use tokens::Outcome;

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

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
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

/// Where connection `index` of `connections` starts in an order of `len` requests: ⌊index·len/connections⌋.
fn start_of(index: usize, connections: usize, len: usize) -> usize {
    ((index as u128 * len as u128) / connections.max(1) as u128) as usize % len.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
