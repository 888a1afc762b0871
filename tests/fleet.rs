//! A fleet of real daemons sharing revocations through a real Redis (`redis-server`, started by the tests on
//! a Unix socket in a temporary directory): propagation both ways, unrevocations, kill -9 with Redis down,
//! catch-up after a restart, Redis restarted with and without its data, a new daemon bootstrapping, trimming,
//! expiry, and a malformed entry. Under CI (which installs redis-server) a missing Redis fails the tests.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::daemon::{Daemon, Scratch, ask, start_in, stats, stream_revocations, temp_dir};
use common::process::Stop;
use common::{live_claims, token_with};
use jwtd::Alg;
use serde_json::json;

const REDIS: &str = "redis-server";

fn have_redis() -> bool {
    let found = Command::new(REDIS)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{REDIS} is not installed and CI is set: the fleet tests cannot be skipped in CI"
        );
        eprintln!("\n*** SKIPPED: {REDIS} is not installed (apt-get install redis-server) ***\n");
    }
    found
}

/// A private Redis on `dir/redis.sock`, its data in `dir` (append-only file when `persistent`); with a
/// loopback port too when it is a replica's primary or a replica.
struct Redis {
    dir: PathBuf,
    proc: Option<Stop>,
    /// Its loopback port, and the port of the primary it replicates.
    tcp: Option<(u16, Option<u16>)>,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let mut r = Redis {
            dir: dir.to_path_buf(),
            proc: None,
            tcp: None,
        };
        r.up();
        r
    }

    /// A Redis also on 127.0.0.1:`port` (replication needs TCP), a replica of `primary`'s when given.
    fn start_tcp(dir: &Path, port: u16, primary: Option<u16>) -> Redis {
        let mut r = Redis {
            dir: dir.to_path_buf(),
            proc: None,
            tcp: Some((port, primary)),
        };
        r.up();
        r
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn up(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let mut cmd = Command::new(REDIS);
        match self.tcp {
            None => cmd.args(["--port", "0"]),
            Some((port, primary)) => {
                cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
                if let Some(p) = primary {
                    cmd.args(["--replicaof", "127.0.0.1", &p.to_string()]);
                }
                &mut cmd
            }
        };
        let child = cmd
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.proc = Some(Stop(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.command(&["PING"]).is_err() {
            assert!(Instant::now() < deadline, "redis did not come up");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops Redis (SIGTERM: its append-only file is complete).
    fn down(&mut self) {
        self.proc = None;
        let _ = std::fs::remove_file(self.socket());
    }

    /// Stops Redis and throws its data away: a restart without persistence.
    fn wipe(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(self.dir.join("appendonlydir"));
        let _ = std::fs::remove_file(self.dir.join("dump.rdb"));
    }

    fn command(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(self.url().as_str())?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut con)
    }

    /// `INFO replication`, as text.
    fn replication(&self) -> String {
        match self.command(&["INFO", "replication"]) {
            Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(redis::Value::VerbatimString { text, .. }) => text,
            _ => String::new(),
        }
    }

    fn xlen(&self) -> i64 {
        match self.command(&["XLEN", "jwtd:revocations"]).unwrap() {
            redis::Value::Int(n) => n,
            other => panic!("XLEN answered {other:?}"),
        }
    }
}

/// A daemon of the fleet on `dir/jwtd.sock`, its state in `dir/state`.
fn member(dir: PathBuf, redis: &Redis, extra: &[&str]) -> Daemon {
    member_at(dir, &redis.url(), extra)
}

fn member_at(dir: PathBuf, url: &str, extra: &[&str]) -> Daemon {
    let state = dir.join("state").to_string_lossy().into_owned();
    let mut args = vec![
        "--state-dir",
        &state,
        "--fleet-redis",
        url,
        "--log-level",
        "warn",
    ];
    args.extend_from_slice(extra);
    start_in(dir, &args)
}

fn token(jti: &str) -> String {
    let mut c = live_claims();
    c["jti"] = json!(jti);
    token_with(Alg::HS256, json!({}), &c)
}

fn revoke(d: &Daemon, line: &str) {
    let r = ask(&d.socket, &[line.to_string()]);
    assert!(r[0].starts_with("OK"), "{line}: {r:?}");
}

fn is_revoked(d: &Daemon, jti: &str) -> bool {
    let r = ask(&d.socket, &[format!("VERIFY {}", token(jti))]);
    match r[0].as_str() {
        s if s.starts_with("ERR revoked") => true,
        s if s.starts_with("OK") => false,
        other => panic!("VERIFY answered {other:?}"),
    }
}

/// Waits (up to 20 s) until `d` sees `jti` as `revoked`.
fn converge(d: &Daemon, jti: &str, revoked: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while is_revoked(d, jti) != revoked {
        assert!(
            Instant::now() < deadline,
            "{}: {jti} is still {}",
            d.dir.display(),
            if revoked { "accepted" } else { "revoked" }
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn fleet_stat(d: &Daemon, key: &str) -> serde_json::Value {
    stats(&d.socket)["fleet"][key].clone()
}

#[test]
fn revocations_and_unrevocations_reach_every_daemon() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-three");
    let redis = Redis::start(&dir.join("redis"));
    let a = member(temp_dir("fleet-a"), &redis, &[]);
    let b = member(temp_dir("fleet-b"), &redis, &[]);
    let c = member(temp_dir("fleet-c"), &redis, &[]);
    for d in [&a, &b, &c] {
        common::process::wait_until("the fleet link", || fleet_stat(d, "connected") == true);
    }
    // Each daemon revokes one; every daemon enforces all three, cached verdicts included.
    for d in [&a, &b, &c] {
        assert!(!is_revoked(d, "from-a"), "a clean token is cached first");
    }
    revoke(&a, "REVOKE JTI from-a 0");
    revoke(&b, "REVOKE JTI from-b 0");
    revoke(&c, &format!("REVOKE TOKEN {}", token("from-c")));
    for d in [&a, &b, &c] {
        converge(d, "from-a", true);
        converge(d, "from-b", true);
        converge(d, "from-c", true);
    }
    // "Log out everywhere" travels too.
    let mut alice = live_claims();
    alice["sub"] = json!("alice");
    alice["iat"] = json!(1_700_000_000);
    let alice = token_with(Alg::HS256, json!({}), &alice);
    revoke(&b, "REVOKE SUB alice 1800000000");
    for d in [&a, &c] {
        common::process::wait_until("the subject rule", || {
            ask(&d.socket, &[format!("VERIFY {alice}")])[0].starts_with("ERR revoked")
        });
    }
    // An unrevocation on another daemon than the revoking one lifts it everywhere.
    revoke(&c, "UNREVOKE JTI from-a");
    for d in [&a, &b, &c] {
        converge(d, "from-a", false);
    }
    // 1,000 revocations from A, one at a time: all arrive; the lag is in B's and C's histograms.
    let count = |d: &Daemon, key: &str| fleet_stat(d, key).as_u64().unwrap();
    let batches_before = [
        count(&a, "publish_batches"),
        count(&b, "read_batches"),
        count(&c, "read_batches"),
    ];
    let started = Instant::now();
    let mut s = UnixStream::connect(&a.socket).unwrap();
    let mut replies = BufReader::new(s.try_clone().unwrap());
    for i in 0..1000 {
        writeln!(s, "REVOKE JTI bulk-{i} 0").unwrap();
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        assert!(line.starts_with("OK"), "{line}");
    }
    for d in [&b, &c] {
        converge(d, "bulk-999", true);
        assert!(is_revoked(d, "bulk-0") && is_revoked(d, "bulk-500"));
        let f = stats(&d.socket)["fleet"].clone();
        eprintln!(
            "propagation lag on {}: p50 <= {} ms, p99 <= {} ms (histogram bounds)",
            d.dir.display(),
            f["lag_ms_p50"],
            f["lag_ms_p99"]
        );
        assert!(f["applied"].as_u64().unwrap() >= 1003, "{f}");
        let metrics = common::daemon::http(&d.socket, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(metrics.contains("jwtd_fleet_propagation_lag_seconds_count"));
        assert!(metrics.contains("jwtd_fleet_connected 1"));
    }
    assert_eq!(fleet_stat(&a, "outbox"), 0);
    assert!(fleet_stat(&a, "published").as_u64().unwrap() >= 1001);
    // Paced: however fast the revocations came, A sent at most one pipeline, and B and C read at most once,
    // per pacing interval — the link's wake-ups are bounded by time, not by the revocation rate.
    let most = (started.elapsed().as_micros() / jwtd::fleet::link::PACE.as_micros()) as u64 + 2;
    let batches = [
        count(&a, "publish_batches") - batches_before[0],
        count(&b, "read_batches") - batches_before[1],
        count(&c, "read_batches") - batches_before[2],
    ];
    eprintln!(
        "1,000 revocations: A's pipelines, B's and C's reads {batches:?}, at most {most} each"
    );
    assert!(
        batches.iter().all(|&n| n >= 1 && n <= most),
        "{batches:?} > {most}"
    );
}

/// Kills `d` with SIGKILL after about `after` of streaming revocations at it; the jtis it acknowledged.
fn revoke_then_kill(d: Daemon, tag: &str, after: Duration) -> (PathBuf, Vec<String>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let socket = d.socket.clone();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (socket, acked, tag) = (socket.clone(), acked.clone(), format!("{tag}{w}"));
            std::thread::spawn(move || stream_revocations(&socket, &tag, 16, &acked))
        })
        .collect();
    std::thread::sleep(after);
    let dir = d.kill_9();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the kill"
    );
    (dir, acked)
}

/// Which of `jtis` `d` holds revoked (one pipelined exchange).
fn revoked_set(d: &Daemon, jtis: &[String]) -> Vec<bool> {
    let lines: Vec<String> = jtis
        .iter()
        .map(|j| format!("VERIFY {}", token(j)))
        .collect();
    ask(&d.socket, &lines)
        .iter()
        .map(|r| r.starts_with("ERR revoked"))
        .collect()
}

fn converge_all(d: &Daemon, jtis: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = revoked_set(d, jtis).iter().filter(|r| !**r).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {missing} of {} acknowledged revocations never arrived",
            d.dir.display(),
            jtis.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_while_revoking_loses_nothing_even_with_redis_down() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-kill");
    let mut redis = Redis::start(&dir.join("redis"));
    let b = member(temp_dir("fleet-kill-b"), &redis, &[]);
    // Redis up at the kill: what A acknowledged is in the stream or in its outbox.
    let a = member(temp_dir("fleet-kill-a"), &redis, &[]);
    let (a_dir, mut acked) = revoke_then_kill(a, "up", Duration::from_millis(300));
    // Redis down at the kill: the outbox is only on A's disk.
    redis.down();
    let a = member(a_dir, &redis, &[]);
    let (a_dir, down) = revoke_then_kill(a, "down", Duration::from_millis(300));
    acked.extend(down);
    // Redis back, A back: B gets every acknowledged revocation, and so does A.
    redis.up();
    let a = member(a_dir, &redis, &[]);
    converge_all(&b, &acked);
    converge_all(&a, &acked);
    common::process::wait_until("A's outbox to empty", || fleet_stat(&a, "outbox") == 0);
    eprintln!("{} acknowledged revocations, all on B", acked.len());
}

#[test]
fn a_daemon_that_was_down_catches_up_once() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-catchup");
    let redis = Redis::start(&dir.join("redis"));
    let a = member(temp_dir("fleet-cu-a"), &redis, &[]);
    let b = member(temp_dir("fleet-cu-b"), &redis, &[]);
    revoke(&a, "REVOKE JTI before 0");
    converge(&b, "before", true);
    let b_dir = b.kill_9();
    let missed: Vec<String> = (0..50).map(|i| format!("missed-{i}")).collect();
    for j in &missed {
        revoke(&a, &format!("REVOKE JTI {j} 0"));
    }
    revoke(&a, "UNREVOKE JTI before");
    let b = member(b_dir, &redis, &[]);
    converge_all(&b, &missed);
    converge(&b, "before", false);
    assert_eq!(
        fleet_stat(&b, "applied"),
        51,
        "each missed operation applied once"
    );
    // Restarted again, B resumes after what it applied: nothing is applied twice.
    let b = member(b.kill_9(), &redis, &[]);
    common::process::wait_until("B's link", || fleet_stat(&b, "connected") == true);
    revoke(&a, "REVOKE JTI marker 0");
    converge(&b, "marker", true);
    assert_eq!(fleet_stat(&b, "applied"), 1, "only the new revocation");
    assert!(!is_revoked(&b, "before"));
}

#[test]
fn redis_restarts_with_and_without_its_data_and_a_new_daemon_bootstraps() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-redis-restart");
    let mut redis = Redis::start(&dir.join("redis"));
    let a = member(temp_dir("fleet-rr-a"), &redis, &[]);
    let b = member(temp_dir("fleet-rr-b"), &redis, &[]);
    let c = member(temp_dir("fleet-rr-c"), &redis, &[]);
    revoke(&a, "REVOKE JTI first 0");
    converge(&c, "first", true);
    // Redis down: revoking still works locally (an acknowledgement that waited on Redis would never come:
    // the exchange's read timeout fails the test); B and C converge once it is back.
    redis.down();
    revoke(&a, "REVOKE JTI while-down 0");
    assert!(is_revoked(&a, "while-down"));
    common::process::wait_until("A to notice", || fleet_stat(&a, "connected") == false);
    assert_eq!(fleet_stat(&a, "outbox"), 1);
    redis.up();
    converge(&b, "while-down", true);
    converge(&c, "while-down", true);
    assert_eq!(fleet_stat(&b, "resets"), 0, "Redis kept its data: no reset");
    // Redis back without its data: every daemon notices and re-publishes what it holds.
    redis.wipe();
    redis.up();
    for d in [&a, &b, &c] {
        common::process::wait_until("the reset to be noticed", || {
            fleet_stat(d, "resets").as_u64() >= Some(1)
        });
    }
    revoke(&b, "REVOKE JTI after-reset 0");
    converge(&a, "after-reset", true);
    converge(&c, "after-reset", true);
    // A new daemon with an empty state directory gets every live rule from the new stream.
    let d = member(temp_dir("fleet-rr-d"), &redis, &[]);
    for j in ["first", "while-down", "after-reset"] {
        converge(&d, j, true);
    }
    assert!(!is_revoked(&d, "never"));
}

#[test]
fn trimming_keeps_every_live_rule_for_a_new_daemon_and_expired_rules_go() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-trim");
    let redis = Redis::start(&dir.join("redis"));
    let a = member(temp_dir("fleet-trim-a"), &redis, &["--fleet-keep", "1"]);
    for i in 0..10 {
        revoke(&a, &format!("REVOKE JTI gone-{i} 0"));
        revoke(&a, &format!("UNREVOKE JTI gone-{i}"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    revoke(&a, "REVOKE JTI live 0");
    // A rule whose token expired long ago (more than the 7-day retention): dropped by every daemon.
    let old = common::daemon::unix_now() - 8 * 86_400;
    revoke(&a, &format!("REVOKE JTI expired {old}"));
    common::process::wait_until("the stream to be trimmed", || redis.xlen() <= 2);
    let b = member(temp_dir("fleet-trim-b"), &redis, &[]);
    converge(&b, "live", true);
    assert!(!is_revoked(&b, "gone-3"));
    // The expired rule reached B, and B drops it like A does at its next start.
    let listed = |d: &Daemon| ask(&d.socket, &["REVOCATIONS LIST 100".to_string()])[0].clone();
    common::process::wait_until("B to apply", || fleet_stat(&b, "applied") == 2);
    let b = member(b.kill_9(), &redis, &[]);
    let a = member(a.kill_9(), &redis, &["--fleet-keep", "1"]);
    for d in [&a, &b] {
        let l = listed(d);
        assert!(l.contains("\"live\"") && !l.contains("\"expired\""), "{l}");
    }
}

#[test]
fn a_malformed_entry_is_skipped_and_counted() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-malformed");
    let redis = Redis::start(&dir.join("redis"));
    let a = member(temp_dir("fleet-mf-a"), &redis, &[]);
    let b = member(temp_dir("fleet-mf-b"), &redis, &[]);
    common::process::wait_until("B's link", || fleet_stat(&b, "connected") == true);
    for bad in [
        vec!["v", "1", "origin", "zz"],
        vec!["v", "9", "anything", "x"],
        vec![
            "v",
            "1",
            "origin",
            "00112233445566778899aabbccddeeff",
            "seq",
            "01",
            "op",
            "revoke",
        ],
    ] {
        let mut args = vec!["XADD", "jwtd:revocations", "*"];
        args.extend(bad);
        redis.command(&args).unwrap();
    }
    revoke(&a, "REVOKE JTI good 0");
    converge(&b, "good", true);
    assert_eq!(fleet_stat(&b, "malformed"), 3);
    assert!(b.ping() && a.ping());
}

#[test]
fn a_password_never_goes_on_the_command_line_and_a_fleet_needs_a_state_dir() {
    let out = common::jwtd(
        &[
            "serve",
            "--keys",
            &common::data("keys/HS256.public.jwks").to_string_lossy(),
            "--state-dir",
            &temp_dir("fleet-pw").to_string_lossy(),
            "--fleet-redis",
            "redis://:hunter2@127.0.0.1:1",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("password-file") && !err.contains("hunter2"),
        "{err}"
    );
    let out = common::jwtd(
        &[
            "serve",
            "--keys",
            &common::data("keys/HS256.public.jwks").to_string_lossy(),
            "--fleet-redis",
            "redis://127.0.0.1:1",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("state directory"),
        "{err}"
    );
}

#[test]
fn rediss_with_a_private_ca_and_a_password_from_a_file() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-tls");
    let pki = common::idp::pki(&["127.0.0.1"]);
    let write = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    };
    let (ca, cert, key) = (
        write("ca.pem", &pki.ca_pem),
        write("cert.pem", &pki.cert_pem),
        write("key.pem", &pki.key_pem),
    );
    let password = "fleet-s3cret-7d1e";
    let pw = write("pw", &format!("{password}\n"));
    let wrong = write("wrong", "not-it\n");
    let port = common::process::free_port();
    let child = Command::new(REDIS)
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
        ])
        .args([
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--requirepass",
            password,
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&*dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _redis = Stop(child);
    common::process::wait_until("redis over TLS", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let url = format!("rediss://127.0.0.1:{port}");
    let tls = [
        "--fleet-redis-ca-file",
        &ca,
        "--fleet-redis-password-file",
        &pw,
    ];
    let a = member_at(temp_dir("fleet-tls-a"), &url, &tls);
    let b = member_at(temp_dir("fleet-tls-b"), &url, &tls);
    revoke(&a, "REVOKE JTI over-tls 0");
    converge(&b, "over-tls", true);
    let s = stats(&b.socket).to_string();
    assert!(!s.contains(password), "{s}");
    // A wrong password, and the right one without the private CA: no link, and the daemon serves anyway.
    let c = member_at(
        temp_dir("fleet-tls-c"),
        &url,
        &[
            "--fleet-redis-ca-file",
            &ca,
            "--fleet-redis-password-file",
            &wrong,
        ],
    );
    let d = member_at(
        temp_dir("fleet-tls-d"),
        &url,
        &["--fleet-redis-password-file", &pw],
    );
    for x in [&c, &d] {
        common::process::wait_until("a refused link", || {
            fleet_stat(x, "disconnects").as_u64() >= Some(1)
        });
        assert_eq!(fleet_stat(x, "connected"), false);
        assert!(!is_revoked(x, "over-tls") && x.ping());
    }
}

#[test]
fn a_revoke_and_an_unrevoke_made_apart_end_the_same_on_every_daemon() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-order");
    let mut redis = Redis::start(&dir.join("redis"));
    let a = member(temp_dir("fleet-order-a"), &redis, &[]);
    let b = member(temp_dir("fleet-order-b"), &redis, &[]);
    let c = member(temp_dir("fleet-order-c"), &redis, &[]);
    revoke(&a, "REVOKE JTI contested 0");
    for d in [&b, &c] {
        converge(d, "contested", true);
    }
    // Cut off from each other, A revokes again and B unrevokes; both reach the stream later, in some order.
    redis.down();
    for d in [&a, &b] {
        common::process::wait_until("the link to drop", || fleet_stat(d, "connected") == false);
    }
    revoke(&a, "REVOKE JTI contested 4102444800");
    revoke(&b, "UNREVOKE JTI contested");
    redis.up();
    for d in [&a, &b] {
        common::process::wait_until("the outbox to empty", || {
            fleet_stat(d, "connected") == true && fleet_stat(d, "outbox") == 0
        });
    }
    // Whatever the stream's order, all three end in it: the same answer everywhere.
    common::process::wait_until("every daemon to agree", || {
        let seen: Vec<bool> = [&a, &b, &c]
            .iter()
            .map(|d| is_revoked(d, "contested"))
            .collect();
        seen.iter().all(|&s| s == seen[0])
    });
    let order = redis
        .command(&["XRANGE", "jwtd:revocations", "-", "+"])
        .unwrap();
    eprintln!(
        "final: revoked = {}; stream: {order:?}",
        is_revoked(&c, "contested")
    );
}

/// Sessions shared by the fleet (docs/SESSIONS.md, "Fleets"): with one issuing key and one session key, a
/// family issued on A is refreshed on B; A then knows the token B rotated away from, and presenting it
/// again (after the grace interval) ends the family on every daemon, its access tokens included.
#[test]
fn sessions_are_refreshed_anywhere_and_end_everywhere() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-sessions");
    let redis = Redis::start(&dir.join("redis"));
    let key = dir.join("k1.jwk");
    let status = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["keygen", "--alg", "ES256", "--kid", "s1", "--private-out"])
        .arg(&key)
        .arg("--public-out")
        .arg(dir.join("k1.pub.json"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let session_key = dir.join("session.key");
    std::fs::write(&session_key, format!("{}\n", "5a".repeat(32))).unwrap();
    let (key, session_key) = (key.display().to_string(), session_key.display().to_string());
    let extra = [
        "--issuer-key",
        &key,
        "--iss",
        "https://sessions.example",
        "--session-key-file",
        &session_key,
        "--refresh-reuse-grace",
        "1",
    ];
    let a = member(temp_dir("fleet-sessions-a"), &redis, &extra);
    let b = member(temp_dir("fleet-sessions-b"), &redis, &extra);
    for d in [&a, &b] {
        common::process::wait_until("the fleet link", || fleet_stat(d, "connected") == true);
    }
    let json = |line: &str| -> serde_json::Value {
        serde_json::from_str(line.strip_prefix("OK ").unwrap_or_else(|| panic!("{line}"))).unwrap()
    };
    let one = |d: &Daemon, line: String| ask(&d.socket, &[line]).remove(0);
    let first = json(&one(&a, "ISSUE sub=alice&client_id=web".into()));
    let rt0 = first["refresh_token"].as_str().unwrap().to_string();
    common::process::wait_until("the family on B", || {
        stats(&b.socket)["sessions"]["families"] == 1
    });
    // Refreshed on B, which never saw the login.
    let second = json(&one(&b, format!("REFRESH {rt0} web")));
    let rt1 = second["refresh_token"].as_str().unwrap().to_string();
    for at in [&first, &second] {
        let v = one(
            &a,
            format!("VERIFY {}", at["access_token"].as_str().unwrap()),
        );
        assert!(v.starts_with("OK "), "{v}");
    }
    // After the grace interval, rt0 on A is a reuse: A learnt of B's rotation through the stream.
    std::thread::sleep(Duration::from_millis(1200));
    let reuse = one(&a, format!("REFRESH {rt0} web"));
    assert!(reuse.contains("already used"), "{reuse}");
    // The family ends on B too, and both access tokens are refused by both daemons.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = one(&b, format!("REFRESH {rt1} web"));
        if r.starts_with("ERR invalid_grant") {
            break;
        }
        assert!(r.starts_with("ERR") || r.starts_with("OK"), "{r}");
        assert!(Instant::now() < deadline, "B still rotates: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for d in [&a, &b] {
        for at in [&first, &second] {
            let v = one(
                d,
                format!("VERIFY {}", at["access_token"].as_str().unwrap()),
            );
            assert!(v.starts_with("ERR revoked"), "{v}");
        }
    }
}

/// `jwtd bench --versus-arg=--fleet-redis=…`, as docs/BENCHMARKS.md measures a fleet daemon against a
/// standalone one: both sides' replies are judged (B's revocations are enforced while it publishes them), B
/// really is a fleet member (its revocations are in the stream, and a daemon of the fleet applied them), and
/// A is not (nothing of it in the stream).
#[test]
fn the_bench_measures_a_fleet_daemon_against_a_standalone_one_in_one_run() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-versus");
    let redis = Redis::start(&dir.join("redis"));
    let peer = member(temp_dir("fleet-versus-peer"), &redis, &[]);
    common::process::wait_until("the fleet link", || fleet_stat(&peer, "connected") == true);
    let json = dir.join("versus.json");
    let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args([
            "bench",
            "--tokens",
            "2000",
            "--duration",
            "1",
            "--warmup",
            "0",
        ])
        .args([
            "--revoke-during",
            "50",
            "--rounds",
            "2",
            "--connections",
            "4",
            "--quiet",
        ])
        .arg(format!("--versus-arg=--fleet-redis={}", redis.url()))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("throughput B/A per round: median"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for round in report["versus"]["rounds"].as_array().unwrap() {
        assert_eq!(round["a_wrong"], 0, "{round}");
        assert_eq!(round["b_wrong"], 0, "{round}");
    }
    // B: the corpus's 20 revocations before the run and 50 in each of its 2 slices, in the stream (but the
    // last few, when the bench stopped B within a pacing interval of them) and applied by the peer; A revoked
    // the same tokens on its own, and none of that reached the stream (it would hold up to 240 entries).
    let published = redis.xlen();
    assert!((100..=120).contains(&published), "{published}");
    common::process::wait_until("the peer applies B's revocations", || {
        fleet_stat(&peer, "applied") == published
    });
}

/// `--fleet-min-replicas 1`: a revocation counts as published (leaves the outbox) only once a replica holds
/// it (Redis `WAIT`), so a failover to that replica loses none. With the replica gone, the primary still
/// serves the entry to the fleet at once, but the origin keeps it in its outbox and counts the short waits;
/// once a replica is back and in sync, it is published.
#[test]
fn with_min_replicas_a_revocation_is_published_only_once_a_replica_holds_it() {
    if !have_redis() {
        return;
    }
    let dir = Scratch::new("fleet-replica");
    let (primary_port, replica_port) = (common::process::free_port(), common::process::free_port());
    let primary = Redis::start_tcp(&dir.join("primary"), primary_port, None);
    let replica_dir = dir.join("replica");
    let mut replica = Redis::start_tcp(&replica_dir, replica_port, Some(primary_port));
    common::process::wait_until("the replica in sync", || {
        replica.replication().contains("master_link_status:up")
    });
    let a = member_at(
        temp_dir("fleet-replica-a"),
        &primary.url(),
        &["--fleet-min-replicas", "1"],
    );
    let b = member(temp_dir("fleet-replica-b"), &primary, &[]);
    for d in [&a, &b] {
        common::process::wait_until("the fleet link", || fleet_stat(d, "connected") == true);
    }
    revoke(&a, "REVOKE JTI replicated 0");
    converge(&b, "replicated", true);
    common::process::wait_until("published", || fleet_stat(&a, "outbox") == 0);
    assert_eq!(replica.xlen(), 1, "published means the replica holds it");
    assert_eq!(fleet_stat(&a, "replica_timeouts"), 0);

    replica.down();
    common::process::wait_until("the primary sees its replica gone", || {
        primary.replication().contains("connected_slaves:0")
    });
    revoke(&a, "REVOKE JTI unreplicated 0");
    converge(&b, "unreplicated", true);
    common::process::wait_until("a short wait counted", || {
        fleet_stat(&a, "replica_timeouts").as_u64().unwrap() >= 1
    });
    assert_eq!(
        fleet_stat(&a, "outbox"),
        1,
        "not published while no replica holds it"
    );
    let metrics = common::daemon::http(&a.socket, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        metrics.contains("jwtd_fleet_replica_timeouts_total "),
        "{metrics}"
    );

    replica.up();
    common::process::wait_until("published once the replica is back", || {
        fleet_stat(&a, "outbox") == 0
    });
    assert_eq!(replica.xlen(), 2);
    assert!(is_revoked(&b, "unreplicated") && is_revoked(&a, "replicated"));
}
