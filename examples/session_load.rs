//! Session throughput against a running `jwtd serve --issuer-key … --state-dir …` (docs/BENCHMARKS.md,
//! "Sessions"), as the daemon's own uid (an admin: it issues the families):
//!
//! - `rotate C D S`: C connections, each holding D families, for S seconds: every round writes one
//!   `REFRESH` per family (pipelined) and reads the D answers, which carry the next refresh tokens. Every
//!   answer is a rotation made durable (fsync'd, group commit) before it was sent. Prints acknowledged
//!   rotations/s and, from STATS, the commits they took.
//! - `families N`: issues N families (and prints one access token, for VERIFY benchmarks).
//!
//! `cargo run --release --example session_load -- SOCKET rotate [connections=16] [depth=4] [seconds=5]`
//! `cargo run --release --example session_load -- SOCKET families N`

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn stats(socket: &str) -> serde_json::Value {
    let mut c = jwtd::client::Client::connect(socket).expect("connect");
    serde_json::from_str(&c.stats().expect("STATS")).expect("STATS json")
}

/// The value of `"name":"…"` in a JSON answer (no escapes in the fields read here).
fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\":\"");
    let start = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        + key.len();
    let end = start + json[start..].find('"').expect("end of string");
    &json[start..end]
}

/// Issues `n` families on one connection (pipelined); their refresh tokens, and the last access token.
fn issue(socket: &str, n: usize, tag: &str) -> (Vec<String>, String) {
    let s = UnixStream::connect(socket).expect("connect");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut tokens = Vec::with_capacity(n);
    let mut access = String::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let mut out = String::new();
        for i in chunk {
            out.push_str(&format!(
                "ISSUE sub=user-{tag}-{i}&client_id=bench&scope=read\n"
            ));
        }
        w.write_all(out.as_bytes()).expect("write");
        for _ in chunk {
            let mut line = String::new();
            r.read_line(&mut line).expect("read");
            assert!(line.starts_with("OK "), "ISSUE: {line}");
            tokens.push(field(&line, "refresh_token").to_string());
            access = field(&line, "access_token").to_string();
        }
    }
    (tokens, access)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: session_load SOCKET (rotate [c] [d] [s] | families N)");
        std::process::exit(2)
    };
    if args.len() < 3 {
        usage();
    }
    let socket = args[1].clone();
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match args[2].as_str() {
        "families" => {
            let n = num(3, 1000);
            let started = Instant::now();
            let (_, access) = issue(&socket, n, &format!("f{}", std::process::id()));
            eprintln!(
                "issued {n} families in {:.2} s; the daemon holds {}",
                started.elapsed().as_secs_f64(),
                stats(&socket)["sessions"]
            );
            println!("{access}");
        }
        "rotate" => {
            let (c, d, secs) = (num(3, 16), num(4, 4), num(5, 5) as u64);
            let families: Vec<Vec<String>> = (0..c)
                .map(|i| issue(&socket, d, &format!("r{}-{i}", std::process::id())).0)
                .collect();
            let before = stats(&socket);
            let commits = |v: &serde_json::Value| v["revocations"]["commits"].as_u64().unwrap_or(0);
            let started = Instant::now();
            let until = started + Duration::from_secs(secs);
            let threads: Vec<_> = families
                .into_iter()
                .map(|mut tokens| {
                    let socket = socket.clone();
                    std::thread::spawn(move || {
                        let s = UnixStream::connect(&socket).expect("connect");
                        let mut r = BufReader::new(s.try_clone().expect("clone"));
                        let mut w = s;
                        let mut done = 0u64;
                        let mut out = String::new();
                        let mut line = String::new();
                        while Instant::now() < until {
                            out.clear();
                            for t in &tokens {
                                out.push_str("REFRESH ");
                                out.push_str(t);
                                out.push_str(" bench\n");
                            }
                            w.write_all(out.as_bytes()).expect("write");
                            for t in tokens.iter_mut() {
                                line.clear();
                                r.read_line(&mut line).expect("read");
                                assert!(line.starts_with("OK "), "REFRESH: {line}");
                                *t = field(&line, "refresh_token").to_string();
                                done += 1;
                            }
                        }
                        done
                    })
                })
                .collect();
            let total: u64 = threads.into_iter().map(|t| t.join().expect("client")).sum();
            let elapsed = started.elapsed().as_secs_f64();
            let after = stats(&socket);
            let n = commits(&after) - commits(&before);
            println!(
                "connections={c} depth={d}: {:.0} acknowledged rotations/s ({total} in {elapsed:.1} s, {n} fsync'd commits, {:.1} per commit)",
                total as f64 / elapsed,
                total as f64 / n.max(1) as f64
            );
        }
        _ => usage(),
    }
}
