//! Revocation throughput and its effect on verification, against a running `jwtd serve --state-dir …`:
//!
//! 1. `revoke`: C connections pipelining D `REVOKE JTI` requests of distinct jtis for S seconds; every
//!    acknowledgement means the revocation was fsync'd (group commit). Prints acknowledged revocations/s and,
//!    from STATS, the fsyncs they took.
//! 2. `fill N`: adds N distinct jti revocations (as fast as they are acknowledged).
//! 3. `verify TOKEN_FILE`: C×D pipelined VERIFY of the token for S seconds (as `examples/load`).
//! 4. `verify-many KEY_JWK N`: the same with N distinct tokens (distinct jti and sub) signed with the key —
//!    every revocation check then looks at a different part of the Bloom filter and maps.
//!
//! `cargo run --release --example revoke_load -- SOCKET revoke [connections=16] [depth=16] [seconds=5]`
//! `cargo run --release --example revoke_load -- SOCKET fill N`
//! `cargo run --release --example revoke_load -- SOCKET verify TOKEN_FILE [connections] [depth] [seconds]`
//! `cargo run --release --example revoke_load -- SOCKET verify-many KEY_JWK [connections] [depth] [seconds] [N]`

use std::time::Duration;

use jwtd::loadgen::{self, ClosedLoop, Requests};

fn stats(socket: &str) -> serde_json::Value {
    let mut c = jwtd::client::Client::connect(socket).expect("connect");
    serde_json::from_str(&c.stats().expect("STATS")).expect("STATS json")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: revoke_load SOCKET (revoke [c] [d] [s] | fill N | verify TOKEN_FILE [c] [d] [s])"
        );
        std::process::exit(2)
    };
    if args.len() < 3 {
        usage();
    }
    let socket = args[1].clone();
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let prefix = format!("bench-{}", std::process::id());
    match args[2].as_str() {
        "revoke" => {
            let cfg = ClosedLoop {
                connections: num(3, 16),
                depth: num(4, 16),
                duration: Duration::from_secs(num(5, 5) as u64),
                threads: 1,
                max_requests: None,
                progress: None,
            };
            let mut requests = Requests::default();
            for i in 0..2_000_000 {
                requests
                    .push_line(&format!("REVOKE JTI {prefix}-{i} 4102444800"), true)
                    .expect("line");
            }
            let before = stats(&socket)["revocations"]["commits"]
                .as_u64()
                .unwrap_or(0);
            let r = loadgen::run(socket.as_ref(), &requests, &cfg).expect("load");
            let commits = stats(&socket)["revocations"]["commits"]
                .as_u64()
                .unwrap_or(0)
                - before;
            println!(
                "connections={} depth={}: {:.0} acknowledged revocations/s ({} in {:.1} s, {} fsync'd commits, {:.1} per commit, {} failed)",
                cfg.connections,
                cfg.depth,
                r.per_second(),
                r.ok,
                r.elapsed.as_secs_f64(),
                commits,
                r.ok as f64 / commits.max(1) as f64,
                r.rejected
            );
        }
        "fill" => {
            let n = num(3, 1_000_000) as u64;
            let mut requests = Requests::default();
            for i in 0..n {
                requests
                    .push_line(&format!("REVOKE JTI {prefix}-fill-{i} 4102444800"), true)
                    .expect("line");
            }
            let cfg = ClosedLoop {
                connections: 16,
                depth: 64,
                duration: Duration::from_secs(3600),
                threads: 1,
                max_requests: Some(n),
                progress: None,
            };
            let r = loadgen::run(socket.as_ref(), &requests, &cfg).expect("load");
            println!(
                "added {} revocations in {:.1} s ({:.0}/s); the daemon now holds {}",
                r.ok,
                r.elapsed.as_secs_f64(),
                r.per_second(),
                stats(&socket)["revocations"]
            );
        }
        "verify" | "verify-many" => {
            let mut requests = Requests::default();
            if args[2] == "verify" {
                let token = std::fs::read_to_string(args.get(3).unwrap_or_else(|| usage()))
                    .expect("token file");
                requests.push(token.trim(), true).expect("token");
            } else {
                let key = std::fs::read(args.get(3).unwrap_or_else(|| usage())).expect("key file");
                let n: usize = args.get(7).and_then(|s| s.parse().ok()).unwrap_or(10_000);
                let (signer, _) =
                    jwtd::keys::private::signing_key_from_file(&key, None).expect("key");
                let now = jwtd::server::unix_now();
                for i in 0..n {
                    let claims = format!(
                        r#"{{"sub":"user-{i}","aud":"api","exp":{},"iat":{now},"jti":"tok-{i}","scope":"read:item write:item"}}"#,
                        now + 86_400
                    );
                    let t = signer
                        .sign_compact(br#"{"alg":"HS256","typ":"JWT"}"#, claims.as_bytes())
                        .expect("sign");
                    requests.push(&t, true).expect("token");
                }
            }
            let cfg = ClosedLoop {
                connections: num(4, 16),
                depth: num(5, 16),
                duration: Duration::from_secs(num(6, 5) as u64),
                threads: 1,
                max_requests: None,
                progress: None,
            };
            let r = loadgen::run(socket.as_ref(), &requests, &cfg).expect("load");
            println!(
                "{:.0} verifications/s ({} ok, {} unexpected)",
                r.per_second(),
                r.ok,
                r.mismatches
            );
        }
        _ => usage(),
    }
}
