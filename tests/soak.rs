//! Soak: a daemon under mixed traffic for a while — valid, invalid and revoked tokens, revocations issued as
//! it runs, clients that disconnect mid-batch, reloads by SIGHUP — must fail no valid request, keep its
//! memory flat and leak no file descriptor.
//!
//! 30 seconds by default (CI); the long run is `JWTD_SOAK_SECS=600 cargo test --release --test soak --
//! --nocapture` (docs/SECURITY.md).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;
use jwtd::Alg;
use jwtd::loadgen::tokens::{self, Spec};
use jwtd::loadgen::zipf::RngExt;
use jwtd::loadgen::{self, ClosedLoop};

fn secs() -> u64 {
    std::env::var("JWTD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

#[test]
fn soak_mixed_traffic_disconnects_reloads_and_revocations() {
    let duration = Duration::from_secs(secs());
    let dir = temp_dir("soak");
    let state = dir.join("state");
    let es = data("keys/ES256.public.jwks");
    let d = start_in(
        dir.clone(),
        &[
            "--keys",
            es.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--log-level",
            "warn",
        ],
    );
    // Tokens signed with the daemon's test keys: 2,000 of them, 5 % invalid in three ways, 2 % revoked
    // before the run, and 1 revocation per second of the run issued while it goes on.
    let spec = Spec {
        tokens: 2_000,
        mix: "HS256=3,ES256=1".parse().unwrap(),
        invalid: 0.05,
        revoked: 0.02,
        live_revocations: secs() as usize,
        audience: "api".into(),
        ..Spec::default()
    };
    let keys = [Alg::HS256, Alg::ES256]
        .into_iter()
        .map(|alg| (signer(alg), format!("test-{alg}")))
        .collect();
    let generated = tokens::generate_with_keys(&spec, jwtd::server::unix_now(), keys).unwrap();
    let mut c = jwtd::client::Client::connect(&d.socket).unwrap();
    for line in &generated.revocations {
        assert!(c.request(line).unwrap().starts_with("OK"), "{line}");
    }
    let order = tokens::sequence(spec.tokens, 1 << 16, 1.0, 7);
    let (requests, live) = generated.requests(order).unwrap();
    let valid: Vec<String> = generated
        .tokens
        .iter()
        .enumerate()
        .filter(|(i, t)| t.outcome == tokens::Outcome::Ok && !generated.live.contains(i))
        .map(|(_, t)| t.text.clone())
        .take(200)
        .collect();

    let fds_before = d.open_fds();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    // The main load: 8 connections × depth 8, every reply checked (revocations during the run included).
    let load = {
        let (socket, requests) = (d.socket.clone(), requests.clone());
        std::thread::spawn(move || {
            loadgen::run(
                &socket,
                &requests,
                &ClosedLoop {
                    connections: 8,
                    depth: 8,
                    threads: 1,
                    duration,
                    max_requests: None,
                    progress: None,
                },
            )
        })
    };
    // Revocations as it runs.
    let revoking = {
        let (socket, live, stop) = (d.socket.clone(), live.clone(), stop.clone());
        std::thread::spawn(move || {
            live.issue(&socket, live.len(), duration, || {
                stop.load(Ordering::Relaxed)
            })
        })
    };
    // Clients that write part of a batch of valid tokens and hang up, or read only some replies.
    let disconnected = Arc::new(AtomicU64::new(0));
    let wrong_partial = Arc::new(AtomicU64::new(0));
    let disconnectors: Vec<_> = (0..3)
        .map(|t| {
            let (socket, stop, valid) = (d.socket.clone(), stop.clone(), valid.clone());
            let (disconnected, wrong) = (disconnected.clone(), wrong_partial.clone());
            std::thread::spawn(move || {
                let mut rng = jwtd::loadgen::zipf::seeded(100 + t);
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = UnixStream::connect(&socket) else {
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let n = 1 + rng.random_range(0..64usize);
                    let mut batch = Vec::new();
                    for _ in 0..n {
                        let tok = &valid[rng.random_range(0..valid.len() as u64) as usize];
                        batch.extend_from_slice(format!("VERIFY {tok}\n").as_bytes());
                    }
                    // Cut the batch anywhere, even mid-line.
                    let cut = rng.random_range(0..batch.len() as u64 + 1) as usize;
                    let _ = s.write_all(&batch[..cut]);
                    if rng.random_range(0..2u8) == 0 {
                        // Read what comes for a moment; every complete reply must be OK.
                        let mut got = vec![0u8; 64 * 1024];
                        std::thread::sleep(Duration::from_millis(rng.random_range(0..5u64)));
                        let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
                        if let Ok(k) = s.read(&mut got) {
                            let text = String::from_utf8_lossy(&got[..k]).into_owned();
                            let complete = text.rsplit_once('\n').map_or("", |(a, _)| a);
                            for line in complete.lines() {
                                if !line.starts_with("OK ") {
                                    wrong.fetch_add(1, Ordering::Relaxed);
                                    eprintln!("a valid token got {line:.80}");
                                }
                            }
                        }
                    }
                    drop(s);
                    disconnected.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Reloads every 2 s; RSS sampled every 250 ms.
    let mut reloads = 0;
    let mut rss: Vec<(Duration, u64)> = Vec::new();
    let mut next_reload = started + Duration::from_secs(2);
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(250));
        rss.push((started.elapsed(), d.rss_kib()));
        if Instant::now() >= next_reload {
            signal(d.pid(), "HUP");
            reloads += 1;
            next_reload += Duration::from_secs(2);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let report = load.join().unwrap().expect("load ran");
    let issued = revoking.join().unwrap().expect("revocations issued");
    for t in disconnectors {
        t.join().unwrap();
    }

    // No failed valid request, no wrong answer of any kind.
    assert_eq!(
        report.mismatches, 0,
        "wrong answers: {:?}",
        report.mismatch_samples
    );
    assert_eq!(wrong_partial.load(Ordering::Relaxed), 0);
    assert!(
        report.outcomes.get("ok").copied().unwrap_or(0) > 1000,
        "{:?}",
        report.outcomes
    );
    for code in ["revoked", "expired", "bad_signature", "wrong_audience"] {
        assert!(
            report.outcomes.contains_key(code),
            "{code}: {:?}",
            report.outcomes
        );
    }
    assert!(issued.acknowledged > 0);
    assert!(reloads >= duration.as_secs() / 2 - 1);
    assert!(disconnected.load(Ordering::Relaxed) > 100);
    // Memory flat after the first third: the last samples within 25 % (+8 MiB) of the early peak.
    let third = duration / 3;
    let early = rss
        .iter()
        .filter(|(t, _)| *t <= third)
        .map(|r| r.1)
        .max()
        .unwrap();
    let late = rss.iter().rev().take(4).map(|r| r.1).max().unwrap();
    eprintln!(
        "soak {:?}: {} requests ({:?}), {} revocations during, {reloads} reloads, {} disconnecting clients; RSS early {early} KiB, late {late} KiB",
        duration,
        report.requests,
        report.outcomes,
        issued.acknowledged,
        disconnected.load(Ordering::Relaxed)
    );
    assert!(
        late <= early + early / 4 + 8 * 1024,
        "RSS grew from {early} KiB to {late} KiB: {rss:?}"
    );
    // Every connection closed: back to the descriptors open before the load.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.open_fds() > fds_before {
        assert!(
            Instant::now() < deadline,
            "file descriptors: {} before, {} after",
            fds_before,
            d.open_fds()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.ping());
}
