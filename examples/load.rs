//! A quick closed-loop load run against `jwtd serve` (the full `jwtd bench` comes later): C connections, each
//! pipelining D `VERIFY` requests per round trip, for S seconds; prints verifications/s. Every token in
//! TOKEN_FILE (one per line) is expected to be accepted; any other answer fails the run.
//!
//! `cargo run --release --example load -- SOCKET TOKEN_FILE [connections=16] [depth=16] [seconds=5] [threads=1] [rate]`
//!
//! With a rate (requests/s in all) it runs the open loop instead (depth is then unused) and prints latency
//! percentiles measured from each request's intended send time.

use std::time::Duration;

use jwtd::loadgen::{self, ClosedLoop, Requests};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: load SOCKET TOKEN_FILE [connections] [depth] [seconds] [threads]");
        std::process::exit(2);
    }
    let text = std::fs::read_to_string(&args[2]).unwrap_or_else(|e| {
        eprintln!("{}: {e}", args[2]);
        std::process::exit(2)
    });
    let mut requests = Requests::default();
    for t in text.lines().map(str::trim).filter(|t| !t.is_empty()) {
        requests.push(t, true).expect("token");
    }
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let cfg = ClosedLoop {
        connections: arg(3, 16),
        depth: arg(4, 16),
        duration: Duration::from_secs(arg(5, 5) as u64),
        threads: arg(6, 1),
        max_requests: None,
        progress: None,
    };
    let rate: Option<f64> = args.get(7).and_then(|s| s.parse().ok());
    let result = match rate {
        None => loadgen::run(args[1].as_ref(), &requests, &cfg),
        Some(rate) => loadgen::run_open(
            args[1].as_ref(),
            &requests,
            &loadgen::OpenLoop {
                connections: cfg.connections,
                rate,
                threads: cfg.threads,
                duration: cfg.duration,
                progress: None,
            },
        ),
    };
    let r = result.unwrap_or_else(|e| {
        eprintln!("load: {e}");
        std::process::exit(1)
    });
    println!(
        "connections={} depth={} threads={}: {:.0} verifications/s ({} ok, {} rejected, {} unexpected, {:.1} s)",
        cfg.connections,
        cfg.depth,
        cfg.threads,
        r.per_second(),
        r.ok,
        r.rejected,
        r.mismatches,
        r.elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {:?}  p90 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
        r.quantile(0.5),
        r.quantile(0.9),
        r.quantile(0.99),
        r.quantile(0.999),
        r.quantile(1.0)
    );
    if r.mismatches > 0 {
        std::process::exit(1);
    }
}
