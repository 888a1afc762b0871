//! End to end over a Unix socket: one connection pipelining 16 requests per round trip against the real
//! `jwtd serve` binary, side by side with Redis GET of a 300-byte value at the same depth (Redis is the
//! reference for a small request/response server on a Unix socket). Ids: `daemon/depth16/<case>`; throughput
//! is in requests, so criterion reports requests/s.
//!
//! - `jwtd_verify_hs256`: cache-free HS256 verification of a ~430-byte token (~250 bytes of claims, iss and
//!   aud checked); the reply carries the claims.
//! - `jwtd_ping`: the protocol floor (framing, batching, syscalls) without verification.
//! - `redis_get_300b`: `redis-server` from Debian on a Unix socket; skipped, saying so, when not installed
//!   (`benches/daemon-vs-redis.sh` installs it and runs the multi-connection comparison).
//!
//! Both clients are the same raw loop: one write of 16 requests, then read until 16 replies are complete.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jwtd::Alg;
use jwtd::crypto::sign::{Private, SigningKey};

const DEPTH: usize = 16;
const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret!!";

/// A child process killed on drop, with the directory it used.
struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(socket: &Path) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if UnixStream::connect(socket).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jwtd-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn start_jwtd() -> (Server, PathBuf) {
    let dir = scratch("jwtd");
    std::fs::write(dir.join("secret"), SECRET).expect("secret");
    let socket = dir.join("jwtd.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args([
            "serve",
            "--alg",
            "HS256",
            "--iss",
            "https://idp.example.com",
        ])
        .args(["--aud", "api", "--log-level", "warn", "--secret"])
        .arg(dir.join("secret"))
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start jwtd serve");
    let server = Server { child, dir };
    assert!(wait_for(&socket), "jwtd serve did not start");
    (server, socket)
}

fn start_redis() -> Option<(Server, PathBuf)> {
    let dir = scratch("redis");
    let socket = dir.join("redis.sock");
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--unixsocket",
        ])
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server { child, dir };
    wait_for(&socket).then_some((server, socket))
}

fn token() -> String {
    let exp = jwtd::server::unix_now() + 86_400;
    let claims = format!(
        r#"{{"iss":"https://idp.example.com","sub":"user-1234567890","aud":"api","exp":{exp},"iat":{},"scope":"{}","tenant":"acme"}}"#,
        exp - 86_400,
        ["read:item"; 12].join(" ")
    );
    SigningKey::new(Alg::HS256, &Private::Hmac(SECRET.to_vec()))
        .and_then(|k| k.sign_compact(br#"{"alg":"HS256","typ":"JWT"}"#, claims.as_bytes()))
        .expect("sign")
}

/// Writes `request` (DEPTH requests), then reads until `done(received)` says all replies are in.
fn round_trip(s: &mut UnixStream, request: &[u8], buf: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    s.write_all(request).expect("write");
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    while !done(buf) {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn lines_done(buf: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', buf).count() == DEPTH
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("daemon/depth16");
    g.throughput(Throughput::Elements(DEPTH as u64));
    let mut buf = Vec::new();

    let (_jwtd, socket) = start_jwtd();
    let verify = format!("VERIFY {}\n", token()).repeat(DEPTH).into_bytes();
    let mut s = UnixStream::connect(&socket).expect("connect");
    round_trip(&mut s, &verify, &mut buf, lines_done);
    assert!(
        buf.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with(b"OK ")),
        "jwtd rejected the bench token: {}",
        String::from_utf8_lossy(&buf)
    );
    g.bench_function("jwtd_verify_hs256", |b| {
        b.iter(|| round_trip(&mut s, &verify, &mut buf, lines_done))
    });
    let ping = b"PING\n".repeat(DEPTH);
    g.bench_function("jwtd_ping", |b| {
        b.iter(|| round_trip(&mut s, &ping, &mut buf, lines_done))
    });

    match start_redis() {
        Some((_redis, socket)) => {
            let mut s = UnixStream::connect(&socket).expect("connect to redis");
            let value = "x".repeat(300);
            let set = format!("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$300\r\n{value}\r\n");
            round_trip(&mut s, set.as_bytes(), &mut buf, |b| b.ends_with(b"\r\n"));
            assert_eq!(buf, b"+OK\r\n");
            let get = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
                .repeat(DEPTH)
                .into_bytes();
            // Each reply is "$300\r\n" + 300 bytes + "\r\n".
            let reply_len = 6 + 300 + 2;
            g.bench_function("redis_get_300b", |b| {
                b.iter(|| round_trip(&mut s, &get, &mut buf, |b| b.len() == DEPTH * reply_len))
            });
        }
        None => eprintln!(
            "daemon/depth16/redis_get_300b SKIPPED: redis-server is not installed \
             (apt-get install -y redis-server, or run benches/daemon-vs-redis.sh)"
        ),
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
