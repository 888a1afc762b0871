//! A quick closed-loop load generator for `jwtd serve` (the full `jwtd bench` is issue 5): C connections,
//! each pipelining D `VERIFY` requests per round trip with `jwtd::client`, for S seconds; prints requests/s.
//!
//! `cargo run --release --example load -- SOCKET TOKEN_FILE [connections=16] [depth=16] [seconds=5]`

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: load SOCKET TOKEN_FILE [connections] [depth] [seconds]");
        std::process::exit(2);
    }
    let socket = args[1].clone();
    let token = std::fs::read_to_string(&args[2])
        .expect("token file")
        .trim()
        .to_string();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (connections, depth, seconds) = (arg(3, 16), arg(4, 16), arg(5, 5));
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let start = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (socket, tokens) = (socket.clone(), vec![token.clone(); depth]);
            std::thread::spawn(move || {
                let mut c = jwtd::client::Client::connect(&socket).expect("connect");
                let (mut ok, mut bad) = (0u64, 0u64);
                while Instant::now() < deadline {
                    for r in c.verify_many(&tokens).expect("verify") {
                        match r {
                            jwtd::client::Reply::Ok(_) => ok += 1,
                            jwtd::client::Reply::Err { .. } => bad += 1,
                        }
                    }
                }
                (ok, bad)
            })
        })
        .collect();
    let (mut ok, mut bad) = (0, 0);
    for t in threads {
        let (o, b) = t.join().expect("thread");
        ok += o;
        bad += b;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "connections={connections} depth={depth}: {:.0} verifications/s ({ok} ok, {bad} rejected in {secs:.1} s)",
        (ok + bad) as f64 / secs
    );
    if bad > 0 {
        std::process::exit(1);
    }
}
