//! Abuse of a running daemon, as a security tester would try it: floods of connections, endless lines and
//! headers, slow clients, a client that never reads, garbage on both protocols. Each test asserts that the
//! offenders get a clear answer and are cut off, that memory stays under a stated bound (RSS from /proc),
//! and that well-behaved clients are served throughout. Everything is bounded in time.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;
use jwtd::Alg;

/// Extra resident memory allowed while abused, in KiB. The daemon's own buffers are bounded by the line
/// cap (32 KiB), the read chunk (64 KiB) and one batch of replies per connection; 64 MiB leaves room for
/// allocator slack with a hundred offenders at once.
const RSS_SLACK_KIB: u64 = 64 * 1024;

/// Reads until the daemon closes the connection (or 20 s pass, which fails the caller's assertion).
fn read_until_closed(s: &mut UnixStream) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset after the reply (the daemon closed with our bytes unread) also ends the connection.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// A well-behaved client's check: a valid token verifies on a fresh connection.
fn serves_a_valid_token(d: &Daemon, token: &str) -> bool {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("VERIFY {token}\n").as_bytes()).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    line.starts_with(b"OK ")
}

#[test]
fn a_connection_flood_is_refused_while_existing_clients_are_served() {
    let d = start("flood", &["--max-connections", "32"]);
    let token = valid_token();
    // 16 clients that stay connected and keep working.
    let mut held: Vec<UnixStream> = (0..16)
        .map(|_| {
            let mut s = UnixStream::connect(&d.socket).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"PING\n").unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"PONG\n");
            s
        })
        .collect();
    // 300 more at once, each saying PING and waiting for the end. Each holds its connection until all 300
    // have had their first answer (PONG, or the refusal), so the flood really is at once however slowly the
    // threads start or the daemon accepts on a busy machine: a connect only queues in the backlog, so
    // letting go any earlier would free slots for connections the daemon had not looked at yet.
    let all_answered = std::sync::Arc::new(std::sync::Barrier::new(300));
    let flood: Vec<_> = (0..300)
        .map(|_| {
            let (socket, all_answered) = (d.socket.clone(), all_answered.clone());
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                let _ = s.write_all(b"PING\n");
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut out = Vec::new();
                let mut b = [0u8; 1];
                while matches!(s.read(&mut b), Ok(1)) {
                    out.push(b[0]);
                    if b[0] == b'\n' {
                        break;
                    }
                }
                all_answered.wait();
                let _ = s.shutdown(std::net::Shutdown::Write);
                let (rest, closed) = read_until_closed(&mut s);
                out.extend_from_slice(&rest);
                (out, closed)
            })
        })
        .collect();
    // Meanwhile the held clients are served, over and over.
    for round in 0..20 {
        for s in held.iter_mut() {
            s.write_all(format!("VERIFY {token}\n").as_bytes()).unwrap();
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
                line.push(b[0]);
            }
            assert!(line.starts_with(b"OK "), "round {round}: {line:?}");
        }
    }
    let (mut refused, mut served) = (0, 0);
    for f in flood {
        let (out, closed) = f.join().unwrap();
        assert!(closed, "a flood connection was left open");
        let out = String::from_utf8(out).unwrap();
        if out.starts_with("ERR too_many_connections ") {
            refused += 1;
        } else {
            assert_eq!(out, "PONG\n");
            served += 1;
        }
    }
    // Only 16 slots were free: most of the flood was told and closed.
    assert!(refused >= 300 - 16, "refused {refused}, served {served}");
    // The flood's slots are released asynchronously; the daemon must come back.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !d.ping() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not come back after the flood"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn endless_lines_and_headers_are_cut_off_with_memory_bounded() {
    let d = start("endless", &[]);
    let baseline = d.rss_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), d.pid());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // 50 line-protocol clients and 50 HTTP clients, each sending up to 4 MiB with no end of line.
    let offenders: Vec<_> = (0..100)
        .map(|i| {
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut reader = s.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    let start: &[u8] = if i % 2 == 0 {
                        b"VERIFY "
                    } else {
                        b"GET /verify HTTP/1.1\r\nHost: x\r\nX-Endless: "
                    };
                    let _ = s.write_all(start);
                    let chunk = vec![b'a'; 64 * 1024];
                    for _ in 0..64 {
                        if s.write_all(&chunk).is_err() {
                            return; // cut off
                        }
                    }
                });
                let (out, closed) = read_until_closed(&mut reader);
                let _ = writer.join();
                (i, String::from_utf8_lossy(&out).into_owned(), closed)
            })
        })
        .collect();
    for o in offenders {
        let (i, out, closed) = o.join().unwrap();
        assert!(closed, "offender {i} was never cut off");
        if i % 2 == 0 {
            assert!(out.starts_with("ERR too_large "), "offender {i}: {out:?}");
        } else {
            assert!(
                out.starts_with("HTTP/1.1 431") || out.is_empty(),
                "offender {i}: {out:?}"
            );
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("endless requests: RSS {baseline} KiB before, {peak} KiB at most");
    assert!(
        peak <= baseline + RSS_SLACK_KIB,
        "RSS grew from {baseline} KiB to {peak} KiB under 100 endless requests"
    );
    assert!(d.ping());
    assert!(serves_a_valid_token(&d, &valid_token()));
}

#[test]
fn slow_clients_are_timed_out_without_starving_others() {
    let d = start("slowloris", &["--client-timeout", "1"]);
    let token = valid_token();
    // A byte a second: a request line, HTTP headers, an HTTP body.
    let kinds: [(&[u8], &[u8]); 3] = [
        (b"VERIFY ", b"eyJhbGciOiJIUzI1NiJ9"),
        (b"GET /verify HTTP/1.1\r\nHost: x\r\n", b"X-Slow: aaaaaaaaaaaaaaaaaaaa"),
        (
            b"POST /introspect HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
            b"token=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
    ];
    let slow: Vec<_> = (0..15)
        .map(|i| {
            let (head, drip) = kinds[i % 3];
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                s.write_all(head).unwrap();
                let mut w = s.try_clone().unwrap();
                // Returns how many bytes it got to send before the daemon hung up on it.
                let dripping = std::thread::spawn(move || {
                    for (sent, &b) in drip.iter().enumerate() {
                        std::thread::sleep(Duration::from_secs(1));
                        if w.write_all(&[b]).is_err() {
                            return sent;
                        }
                    }
                    drip.len()
                });
                let (out, closed) = read_until_closed(&mut s);
                let dripped = dripping.join().unwrap();
                (
                    i,
                    String::from_utf8_lossy(&out).into_owned(),
                    closed,
                    (dripped, drip.len()),
                )
            })
        })
        .collect();
    // Meanwhile, others are served.
    for _ in 0..50 {
        assert!(serves_a_valid_token(&d, &token));
    }
    for t in slow {
        let (i, out, closed, (dripped, all)) = t.join().unwrap();
        assert!(closed, "slow client {i} was never cut off");
        // Cut off before it finished: its next byte after the cut found the connection closed.
        assert!(
            dripped < all,
            "slow client {i} sent all {all} bytes unhindered"
        );
        match i % 3 {
            0 => assert!(out.starts_with("ERR timeout "), "{i}: {out:?}"),
            1 => assert!(
                out.is_empty() || out.starts_with("HTTP/1.1 408"),
                "{i}: {out:?}"
            ),
            _ => assert!(out.starts_with("HTTP/1.1 408"), "{i}: {out:?}"),
        }
    }
    // An idle connection between requests is not a slow client: it is kept.
    let mut idle = UnixStream::connect(&d.socket).unwrap();
    idle.write_all(b"PING\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    idle.write_all(b"PING\n").unwrap();
    let mut buf = [0u8; 10];
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    idle.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"PONG\nPONG\n");
}

#[test]
fn a_client_that_never_reads_gets_backpressure_not_memory() {
    let d = start("noread", &[]);
    let token = valid_token();
    let baseline = d.rss_kib();
    let fds = d.open_fds();
    // 100,000 pipelined verifications (~30 MB of replies) on a connection whose replies are never read.
    let mut hog = UnixStream::connect(&d.socket).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let line = format!("VERIFY {token}\n");
    let mut batch = Vec::new();
    for _ in 0..1000 {
        batch.extend_from_slice(line.as_bytes());
    }
    let mut sent = 0;
    for _ in 0..100 {
        // Once the socket buffers are full the daemon stops reading this connection: writes block, and
        // time out here.
        if hog.write_all(&batch).is_err() {
            break;
        }
        sent += 1000;
    }
    assert!(
        sent < 100_000,
        "the daemon buffered every reply of a client that never reads"
    );
    let rss = d.rss_kib();
    eprintln!(
        "never-reading client: {sent} requests taken; RSS {baseline} KiB before, {rss} KiB after"
    );
    assert!(
        rss <= baseline + RSS_SLACK_KIB,
        "RSS grew from {baseline} KiB to {rss} KiB"
    );
    // Others are not affected.
    for _ in 0..100 {
        assert!(serves_a_valid_token(&d, &token));
    }
    // When the hog goes away, so does its connection.
    drop(hog);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.open_fds() > fds {
        assert!(
            Instant::now() < deadline,
            "the hog's connection was never closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.ping());
}

/// Garbage of every kind gets clear errors, never a crash, and the daemon stays healthy.
#[test]
fn garbage_on_both_protocols_gets_clear_errors() {
    let d = start("garbage", &[]);
    let mut rng = jwtd::loadgen::zipf::seeded(42);
    use jwtd::loadgen::zipf::RngExt;
    let mut inputs: Vec<Vec<u8>> = vec![
        b"\0\0\0\0\0\0\0\0\0\0\n".to_vec(),
        b"\xff\xfe\xfd\n\x80\x81\n".to_vec(),
        b"VERIFY \0\0\0\n".to_vec(),
        b"VERIFY a.b.c\nVERIFY ...\nVERIFY \xff.\xff.\xff\n".to_vec(),
        b"    \n\t\n\r\n".to_vec(),
        b"REVOKE\nREVOKE JTI\nREVOKE JTI x notanumber\nUNREVOKE WHAT x\nREVOCATIONS LIST -1\n".to_vec(),
        b"REVOKE SUB \"unterminated 1\n".to_vec(),
        b"PING PING PING\nSTATS now\n".to_vec(),
        b"GET\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /verify HTTP/1.1\r\nNoColonHere\r\n\r\n".to_vec(),
        b"POST /introspect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"POST /introspect HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /introspect HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\ntoken=x".to_vec(),
        b"POST /introspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n".to_vec(),
        b"GET http://evil.example/verify HTTP/1.1\r\nHost: evil\r\n\r\n".to_vec(),
        b"CONNECT jwtd:443 HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /verify HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n\r\n".to_vec(),
        b"GET /verify HTTP/1.1\r\nAuthorization: Bearer a b c\r\nAuthorization: Bearer d\r\n\r\n".to_vec(),
        b"GET /../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for _ in 0..30 {
        let len = rng.random_range(1..=3000usize);
        inputs.push((0..len).map(|_| rng.random::<u8>()).collect());
    }
    for input in &inputs {
        let out = exchange(&d.socket, input);
        let http = [&b"GET "[..], b"POST ", b"CONNECT "]
            .iter()
            .any(|m| input.starts_with(m));
        if http {
            assert!(
                out.is_empty() || out.starts_with("HTTP/1.1 4") || out.starts_with("HTTP/1.0 4"),
                "{:?} → {out:?}",
                String::from_utf8_lossy(input)
            );
        } else {
            // One reply per complete line, each a protocol answer.
            for line in out.lines() {
                assert!(
                    ["ERR ", "OK ", "PONG", "STATS "]
                        .iter()
                        .any(|p| line.starts_with(p)),
                    "{:?} → {line:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        assert!(
            d.ping(),
            "unhealthy after {:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Not a single valid token was harmed.
    assert!(serves_a_valid_token(
        &d,
        &token_with(Alg::HS256, serde_json::json!({}), &live_claims())
    ));
}

/// Junk ES512 tokens: a real header naming the loaded key, a fresh payload each, and a signature whose r and
/// s are in range (so the full P-521 verification runs, ~0.5 ms) but wrong. Each token differs: a cache of
/// failures would not help against them.
fn junk_es512(n: usize, seed: u64) -> Vec<String> {
    let header = b64(br#"{"alg":"ES512","kid":"test-ES512"}"#);
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let payload =
                b64(format!(r#"{{"sub":"junk-{seed}-{i}","exp":4102444800}}"#).as_bytes());
            let mut sig = [0u8; 132];
            for b in sig.iter_mut() {
                *b = next() as u8;
            }
            sig[0] = 0; // r < n
            sig[66] = 0; // s < n
            format!("{header}.{payload}.{}", b64(&sig))
        })
        .collect()
}

#[test]
fn expensive_garbage_does_not_starve_well_behaved_clients() {
    let es512 = data("keys/ES512.public.jwks")
        .to_string_lossy()
        .into_owned();
    let d = start("expensive-garbage", &["--keys", &es512, "--workers", "2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four attackers, each pipelining 64 KiB batches of junk ES512 tokens as fast as they are answered.
    let attackers: Vec<_> = (0..4u64)
        .map(|a| {
            let (socket, stop) = (d.socket.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
                let mut round = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let batch: String = junk_es512(180, a * 1_000_000 + round)
                        .iter()
                        .map(|t| format!("VERIFY {t}\n"))
                        .collect();
                    round += 1;
                    if s.write_all(batch.as_bytes()).is_err() {
                        return;
                    }
                    for _ in 0..180 {
                        let mut line = String::new();
                        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        assert!(line.starts_with("ERR bad_signature"), "{line}");
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A well-behaved client pings on its own connection, one at a time.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut latencies = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        s.write_all(b"PING\n").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"PONG\n");
        latencies.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    latencies.sort();
    let (p50, max) = (latencies[50], latencies[99]);
    eprintln!("PING under 4 expensive-garbage clients: p50 {p50:?}, max {max:?}");
    // The mechanism: batches that used up their slice yielded to the others.
    let mut c = jwtd::client::Client::connect(&d.socket).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    let yields = stats["yields"].as_u64().expect("STATS reports yields");
    assert!(yields > 0, "no batch ever yielded: {stats}");
    // No timing assertion: the latencies above are printed for the record (release build: p50 ~2 ms with
    // the slice, ~360 ms without), but a shared machine's timings do not decide a test.
}
