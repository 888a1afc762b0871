//! The line protocol of a real `jwtd serve`: pipelining, protocol errors, the client module, connection limits, slow clients.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::daemon::*;

#[test]
fn pipelined_requests_are_answered_in_order() {
    let d = start("pipeline", &[]);
    let good = valid_token();
    let mut input = String::new();
    let mut expected = Vec::new();
    for i in 0..2000 {
        match i % 4 {
            0 => {
                input.push_str(&format!("VERIFY {good}\n"));
                expected.push("OK ");
            }
            1 => {
                input.push_str("PING\n");
                expected.push("PONG");
            }
            2 => {
                input.push_str("VERIFY not.a.token\n");
                expected.push("ERR bad_base64 ");
            }
            _ => {
                input.push_str(&format!("VERIFY {}x\n", &good[..good.len() - 1]));
                expected.push("ERR ");
            }
        }
    }
    input.push_str("STATS\n");
    let out = exchange(&d.socket, input.as_bytes());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2001);
    for (i, (line, want)) in lines.iter().zip(&expected).enumerate() {
        assert!(
            line.starts_with(want),
            "reply {i}: {line:?} should start with {want:?}"
        );
    }
    let stats: serde_json::Value =
        serde_json::from_str(lines[2000].strip_prefix("STATS ").unwrap()).unwrap();
    assert_eq!(stats["requests"], 2001, "the STATS request counts itself");
    assert_eq!(stats["ok"], 500);
    // Once those batches are written, their latencies are in the histogram.
    let later = exchange(&d.socket, b"STATS\n");
    let later: serde_json::Value =
        serde_json::from_str(later.trim_end().strip_prefix("STATS ").unwrap()).unwrap();
    let (p50, p99) = (&later["latency_us"]["p50"], &later["latency_us"]["p99"]);
    assert!(
        p50.as_u64().is_some() && p50.as_u64() <= p99.as_u64(),
        "{later}"
    );
    let rejected: u64 = stats["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rejected, 1000);
    assert!(stats["rejected"]["bad_base64"].as_u64().unwrap() >= 500);
    assert_eq!(stats["protocol_errors"], 0);
    assert_eq!(stats["connections_open"], 1);
}

#[test]
fn protocol_errors_unknown_verbs_long_lines_and_half_lines() {
    let d = start("errors", &["--max-line", "1000"]);
    // Unknown verbs keep the connection usable.
    let out = exchange(&d.socket, b"HELLO\nping\nPING\n");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "ERR unknown_command expected VERIFY <token>, PING, STATS, RELOAD, REVOKE, UNREVOKE or REVOCATIONS",
            "ERR unknown_command expected VERIFY <token>, PING, STATS, RELOAD, REVOKE, UNREVOKE or REVOCATIONS",
            "PONG"
        ]
    );
    // A line over the limit: answered, then the connection is closed; later lines are not read.
    let mut input = b"PING\n".to_vec();
    input.extend(std::iter::repeat_n(b'A', 5000));
    input.extend_from_slice(b"\nPING\n");
    let out = exchange(&d.socket, &input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "PONG");
    assert!(lines[1].starts_with("ERR too_large "));
    // A half-written last line at EOF is dropped.
    let out = exchange(&d.socket, b"PING\nPIN");
    assert_eq!(out, "PONG\n");
    // The daemon is still healthy.
    assert_eq!(exchange(&d.socket, b"PING\n"), "PONG\n");
}

#[test]
fn the_client_module_pipelines_thousands_in_order() {
    let d = start("client", &[]);
    let good = valid_token();
    let tokens: Vec<String> = (0..5000)
        .map(|i| {
            if i % 3 == 0 {
                good.clone()
            } else {
                format!("bad-{i}")
            }
        })
        .collect();
    let mut c = jwtd::client::Client::connect(&d.socket).unwrap();
    c.ping().unwrap();
    let replies = c.verify_many(&tokens).unwrap();
    assert_eq!(replies.len(), 5000);
    for (i, r) in replies.iter().enumerate() {
        match r {
            jwtd::client::Reply::Ok(claims) => {
                assert!(i % 3 == 0 && claims.contains("user-1234567890"), "{i}")
            }
            jwtd::client::Reply::Err { code, .. } => {
                assert!(i % 3 != 0 && code == "malformed", "{i}: {code}")
            }
        }
    }
    let stats: serde_json::Value = serde_json::from_str(&c.stats().unwrap()).unwrap();
    assert_eq!(stats["ok"], 1667);
}

#[test]
fn connections_beyond_the_limit_are_told_and_closed() {
    let d = start("limit", &["--max-connections", "3"]);
    // Hold three connections open (each proves it is being served). Slots of the start-up probe connections
    // are freed asynchronously, so a refused attempt is retried.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while held.len() < 3 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.write_all(b"PING\n").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        if &buf == b"PONG\n" {
            held.push(s);
        } else {
            assert_eq!(&buf, b"ERR t");
            assert!(Instant::now() < deadline, "slots never freed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let out = exchange(&d.socket, b"PING\n");
    assert!(out.starts_with("ERR too_many_connections "), "{out}");
    // Existing clients keep being served; a freed slot is reusable.
    held[0].write_all(b"PING\n").unwrap();
    let mut buf = [0u8; 5];
    held[0].read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"PONG\n");
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(20);
    while exchange(&d.socket, b"PING\n") != "PONG\n" {
        assert!(Instant::now() < deadline, "slot not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_silent_or_slow_client_does_not_stall_others() {
    let d = start("slow", &[]);
    // One client sends half a request line and stops; another connects and says nothing.
    let mut slow = UnixStream::connect(&d.socket).unwrap();
    slow.write_all(b"GET /verify HT").unwrap();
    let _silent = UnixStream::connect(&d.socket).unwrap();
    for _ in 0..20 {
        assert_eq!(exchange(&d.socket, b"PING\n"), "PONG\n");
    }
    let out = http(&d.socket, &verify_request(Some(&valid_token())));
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
}
