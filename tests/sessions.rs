//! Sessions against a real daemon (docs/SESSIONS.md): issued with the minimal setup (`--issuer-key --iss
//! --aud --state-dir`, no other keys), refreshed over both protocols, reuse detection that ends the family
//! and its access tokens (cache hits included), the grace interval, expiry, client binding, logout, the
//! RFC 6749 error codes, kill -9 during rotations, and no refresh token in logs or STATS.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::daemon::{Daemon, Scratch, ask, exchange, sessions_daemon, temp_dir};

const ISS: &str = "https://sessions.example";

/// A daemon issuing sessions from `dir` (ES256; stderr appended to `dir/stderr` when `log` is set).
fn spawn(dir: &Path, extra: &[&str], log: bool) -> Daemon {
    let stderr = if log {
        Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("stderr"))
                .unwrap(),
        )
    } else {
        Stdio::null()
    };
    sessions_daemon(dir, "ES256", extra, stderr)
}

/// The JSON of an `OK <json>` line, or the `ERR` line as an error.
fn ok(line: &str) -> Result<Value, String> {
    match line.strip_prefix("OK ") {
        Some(json) => Ok(serde_json::from_str(json).unwrap()),
        None => Err(line.to_string()),
    }
}

fn one(socket: &Path, line: String) -> String {
    ask(socket, &[line]).pop().unwrap_or_default()
}

/// `ISSUE` for `sub` (and a client id); the §5.1 answer.
fn issue(socket: &Path, form: &str) -> Value {
    ok(&one(socket, format!("ISSUE {form}"))).expect("issued")
}

fn refresh(socket: &Path, rt: &str, client: Option<&str>) -> Result<Value, String> {
    let line = match client {
        Some(c) => format!("REFRESH {rt} {c}"),
        None => format!("REFRESH {rt}"),
    };
    ok(&one(socket, line))
}

fn verify(socket: &Path, at: &str) -> String {
    one(socket, format!("VERIFY {at}"))
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_string()
}

/// A raw HTTP request on the socket (`Connection: close`); status and body.
fn post(socket: &Path, path: &str, body: &str, headers: &str) -> (u16, String) {
    let content_type = if headers.contains("Content-Type") {
        ""
    } else {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    };
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{content_type}{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    split(&exchange(socket, raw.as_bytes()))
}

fn split(reply: &str) -> (u16, String) {
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn issued_tokens_verify_with_the_minimal_setup_and_rotate_over_both_protocols() {
    let dir = Scratch::new("sessions-basic");
    let d = spawn(&dir, &[], false);
    let first = issue(&d.socket, "sub=alice&client_id=web&scope=read%20write");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 600);
    assert_eq!(first["scope"], "read write");
    let rt0 = s(&first, "refresh_token");
    assert_eq!(rt0.len(), 43, "256 bits, base64url");
    // VERIFY accepts what the daemon issued, with no --keys at all.
    let at0 = s(&first, "access_token");
    let claims = ok(&verify(&d.socket, &at0)).unwrap();
    assert_eq!(claims["iss"], ISS);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "app");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["sid"], first["sid"]);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    let header: Value = serde_json::from_slice(
        &jwtd::jws::b64::decode(at0.split('.').next().unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    // Line protocol rotation, then HTTP /token with the successor.
    let second = refresh(&d.socket, &rt0, Some("web")).unwrap();
    let rt1 = s(&second, "refresh_token");
    assert_ne!(rt1, rt0);
    assert_eq!(second["sid"], first["sid"]);
    let (status, body) = post(
        &d.socket,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={rt1}&client_id=web&scope=read"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let third: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(third["scope"], "read", "a refresh may narrow the scope");
    let claims = ok(&verify(&d.socket, &s(&third, "access_token"))).unwrap();
    assert_eq!(claims["scope"], "read");
    // HTTP /issue from an admin peer (the test runs as the daemon's uid).
    let (status, body) = post(
        &d.socket,
        "/issue",
        "sub=bob&claims=%7B%22role%22%3A%22ops%22%7D&aud=other",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let bob: Value = serde_json::from_str(&body).unwrap();
    assert!(bob.get("scope").is_none(), "no scope asked, none answered");
    let at = s(&bob, "access_token");
    let payload: Value = serde_json::from_slice(
        &jwtd::jws::b64::decode(at.split('.').nth(1).unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(payload["role"], "ops");
    assert_eq!(payload["aud"], "other");
    // The same as JSON, and ISSUE's other spellings.
    let (status, body) = post(
        &d.socket,
        "/issue",
        r#"{"sub":"carol","scope":"read","claims":{"team":"x"}}"#,
        "Content-Type: application/json\r\n",
    );
    assert_eq!(status, 200, "{body}");
    for line in [
        "ISSUE sub=dave client_id=web scope=read",
        r#"ISSUE {"sub":"dave","client_id":"web","scope":"read"}"#,
    ] {
        let v = ok(&one(&d.socket, line.into())).unwrap();
        assert_eq!(v["scope"], "read", "{line}");
    }
    let stats = common::daemon::stats(&d.socket);
    assert_eq!(stats["sessions"]["issued"], 5, "{stats}");
    assert_eq!(stats["sessions"]["rotated"], 2, "{stats}");
    assert_eq!(stats["sessions"]["families"], 5, "{stats}");
}

/// The theft scenario, both ways round: whichever of client and thief refreshes second triggers reuse
/// detection; afterwards both fail, and both access tokens are refused by VERIFY — the cached one (a hit)
/// and one never seen before (a miss).
#[test]
fn a_stolen_refresh_token_ends_the_family_whoever_refreshes_second() {
    let dir = Scratch::new("sessions-theft");
    let d = spawn(&dir, &["--refresh-reuse-grace", "0"], false);
    for thief_first in [false, true] {
        let first = issue(&d.socket, "sub=alice");
        let stolen = s(&first, "refresh_token");
        let at0 = s(&first, "access_token");
        assert!(verify(&d.socket, &at0).starts_with("OK "), "cached now");
        let (first_name, second_name) = if thief_first {
            ("thief", "client")
        } else {
            ("client", "thief")
        };
        let winner = refresh(&d.socket, &stolen, None)
            .unwrap_or_else(|e| panic!("{first_name} refreshes first: {e}"));
        let loser = refresh(&d.socket, &stolen, None).unwrap_err();
        assert!(
            loser.starts_with("ERR invalid_grant") && loser.contains("already used"),
            "{second_name}: {loser}"
        );
        // Both fail from now on: the winner's new refresh token too.
        let e = refresh(&d.socket, &s(&winner, "refresh_token"), None).unwrap_err();
        assert!(e.starts_with("ERR invalid_grant"), "{e}");
        assert!(refresh(&d.socket, &stolen, None).is_err());
        // Access tokens: the cached one (hit) and the winner's, never verified before (miss).
        for at in [at0, s(&winner, "access_token")] {
            let v = verify(&d.socket, &at);
            assert!(v.starts_with("ERR revoked"), "{v}");
        }
    }
    let stats = common::daemon::stats(&d.socket);
    assert_eq!(stats["sessions"]["reused"], 2, "{stats}");
    assert_eq!(stats["revocations"]["sid"], 2, "{stats}");
}

#[test]
fn a_retry_within_the_grace_interval_gets_the_same_successor_and_later_is_a_reuse() {
    let dir = Scratch::new("sessions-grace");
    let d = spawn(&dir, &["--refresh-reuse-grace", "2"], false);
    let first = issue(&d.socket, "sub=alice");
    let rt0 = s(&first, "refresh_token");
    let a = refresh(&d.socket, &rt0, None).unwrap();
    // The reply was lost: the client retries with rt0 and gets the same refresh token (and a usable
    // access token), no second branch.
    let b = refresh(&d.socket, &rt0, None).unwrap();
    assert_eq!(s(&a, "refresh_token"), s(&b, "refresh_token"));
    assert!(verify(&d.socket, &s(&b, "access_token")).starts_with("OK "));
    let stats = common::daemon::stats(&d.socket);
    assert_eq!(stats["sessions"]["retried"], 1, "{stats}");
    assert_eq!(stats["sessions"]["rotated"], 1, "{stats}");
    // The family goes on from that one token.
    let c = refresh(&d.socket, &s(&b, "refresh_token"), None).unwrap();
    // Just outside the grace interval of the last rotation: rt1 again is a reuse.
    std::thread::sleep(Duration::from_millis(2100));
    let e = refresh(&d.socket, &s(&a, "refresh_token"), None).unwrap_err();
    assert!(e.contains("already used"), "{e}");
    assert!(refresh(&d.socket, &s(&c, "refresh_token"), None).is_err());
    assert!(verify(&d.socket, &s(&c, "access_token")).starts_with("ERR revoked"));
}

#[test]
fn idle_and_absolute_lifetimes_end_a_family() {
    let dir = Scratch::new("sessions-expiry");
    let d = spawn(
        &dir,
        &["--refresh-idle", "2", "--refresh-lifetime", "4"],
        false,
    );
    // Idle: unused for 2 s.
    let idle = issue(&d.socket, "sub=idle");
    // Absolute: used every second, still ends 4 s after the login.
    let busy = issue(&d.socket, "sub=busy");
    let mut rt = s(&busy, "refresh_token");
    let mut refreshed = 0;
    let started = std::time::Instant::now();
    let mut idle_checked = false;
    let end = loop {
        std::thread::sleep(Duration::from_millis(900));
        if !idle_checked && started.elapsed() > Duration::from_millis(2100) {
            // Idle for over 2 s (and within its absolute lifetime): ended.
            let e = refresh(&d.socket, &s(&idle, "refresh_token"), None).unwrap_err();
            assert!(e.contains("idle"), "{e}");
            idle_checked = true;
        }
        match refresh(&d.socket, &rt, None) {
            Ok(v) => {
                rt = s(&v, "refresh_token");
                refreshed += 1;
            }
            Err(e) => break e,
        }
        assert!(started.elapsed() < Duration::from_secs(8), "never ended");
    };
    assert!(end.contains("absolute lifetime"), "{end}");
    assert!(refreshed >= 2, "refreshed {refreshed} times before the end");
    assert!(idle_checked);
}

#[test]
fn bound_clients_logout_and_subject_logout() {
    let dir = Scratch::new("sessions-binding");
    let d = spawn(&dir, &[], false);
    let web = issue(&d.socket, "sub=alice&client_id=web");
    let rt = s(&web, "refresh_token");
    for client in [None, Some("mobile")] {
        let e = refresh(&d.socket, &rt, client).unwrap_err();
        assert!(e.starts_with("ERR invalid_client"), "{client:?}: {e}");
    }
    let (status, body) = post(
        &d.socket,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={rt}&client_id=mobile"),
        "",
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_client"
    );
    // HTTP Basic names the client too (its secret is not checked).
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("web:anything");
    let (status, body) = post(
        &d.socket,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={rt}"),
        &format!("Authorization: Basic {basic}\r\n"),
    );
    assert_eq!(
        status, 200,
        "a refusal for another client revoked nothing: {body}"
    );
    let rt = s(&serde_json::from_str(&body).unwrap(), "refresh_token");
    // RFC 7009 logout with the refresh token: 200, the family ends, its access tokens too.
    let at = s(&web, "access_token");
    let (status, body) = post(
        &d.socket,
        "/revoke",
        &format!("token={rt}&token_type_hint=refresh_token"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["revoked"],
        true
    );
    assert!(refresh(&d.socket, &rt, Some("web")).is_err());
    assert!(verify(&d.socket, &at).starts_with("ERR revoked"));
    // An unknown refresh token: 200 as well (RFC 7009 §2.2), nothing revoked.
    let (status, body) = post(
        &d.socket,
        "/revoke",
        &format!("token={}", "x".repeat(43)),
        "",
    );
    assert_eq!((status, body.contains("false")), (200, true), "{body}");
    // LOGOUT on the line protocol, and the admins' REVOKE TOKEN / REVOKE SESSION with a refresh token.
    for verb in ["LOGOUT", "REVOKE TOKEN", "REVOKE SESSION"] {
        let other = issue(&d.socket, "sub=carol");
        let reply = one(&d.socket, format!("{verb} {}", s(&other, "refresh_token")));
        assert!(
            reply.starts_with("OK ") && reply.contains("\"revoked\":true"),
            "{verb}: {reply}"
        );
        assert!(refresh(&d.socket, &s(&other, "refresh_token"), None).is_err());
        assert!(verify(&d.socket, &s(&other, "access_token")).starts_with("ERR revoked"));
    }
    // Log out everywhere: REVOKE SUB ends every family of the subject created before the cutoff.
    let a = issue(&d.socket, "sub=dave");
    let b = issue(&d.socket, "sub=dave");
    let cutoff = common::daemon::unix_now() + 1;
    let reply = one(&d.socket, format!("REVOKE SUB dave {cutoff}"));
    assert!(reply.starts_with("OK"), "{reply}");
    for f in [&a, &b] {
        let e = refresh(&d.socket, &s(f, "refresh_token"), None).unwrap_err();
        assert!(e.contains("ended"), "{e}");
        assert!(verify(&d.socket, &s(f, "access_token")).starts_with("ERR revoked"));
    }
}

#[test]
fn malformed_requests_get_rfc_6749_errors_and_issuing_is_admin_only() {
    let dir = Scratch::new("sessions-errors");
    let port = common::process::free_port();
    let listen = format!("127.0.0.1:{port}");
    let d = spawn(&dir, &["--http-listen", &listen], false);
    let cases: [(&str, &str, u16, &str); 8] = [
        ("/token", "refresh_token=x", 400, "invalid_request"),
        (
            "/token",
            "grant_type=password&username=a",
            400,
            "invalid_request",
        ),
        (
            "/token",
            "grant_type=client_credentials",
            400,
            "unsupported_grant_type",
        ),
        ("/token", "grant_type=refresh_token", 400, "invalid_request"),
        (
            "/token",
            "grant_type=refresh_token&refresh_token=short",
            400,
            "invalid_grant",
        ),
        (
            "/token",
            "grant_type=refresh_token&refresh_token=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            400,
            "invalid_grant",
        ),
        ("/issue", "client_id=web", 400, "invalid_request"),
        (
            "/issue",
            "sub=a&claims=%7B%22sub%22%3A%22b%22%7D",
            400,
            "invalid_request",
        ),
    ];
    for (path, body, want, code) in cases {
        let (status, reply) = post(&d.socket, path, body, "");
        assert_eq!(status, want, "{path} {body}: {reply}");
        let v: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["error"], code, "{path} {body}: {reply}");
        assert!(v["error_description"].is_string());
    }
    let reply = exchange(
        &d.socket,
        b"GET /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    let lines = ask(
        &d.socket,
        &[
            "REFRESH".into(),
            "REFRESH a b c".into(),
            "ISSUE client_id=x".into(),
        ],
    );
    assert!(lines[0].starts_with("ERR"), "{lines:?}");
    assert!(lines[1].starts_with("ERR invalid_request"), "{lines:?}");
    assert!(lines[2].starts_with("ERR invalid_request"), "{lines:?}");
    // TCP peers are never admins: /issue is forbidden there, /token works.
    let tcp = |raw: String| {
        let mut s = std::net::TcpStream::connect(&listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut out);
        split(&out)
    };
    let form = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let (status, body) = tcp(form("/issue", "sub=alice"));
    assert_eq!(status, 403, "{body}");
    let rt = s(&issue(&d.socket, "sub=alice"), "refresh_token");
    let (status, body) = tcp(form(
        "/token",
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    ));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("access_token"));
}

#[test]
fn refresh_tokens_never_reach_logs_or_stats() {
    let dir = Scratch::new("sessions-secrets");
    let d = spawn(
        &dir,
        &["--log-level", "trace", "--refresh-reuse-grace", "0"],
        true,
    );
    let mut secrets = Vec::new();
    let first = issue(&d.socket, "sub=alice&client_id=web");
    secrets.push(s(&first, "refresh_token"));
    let next = refresh(&d.socket, &secrets[0], Some("web")).unwrap();
    secrets.push(s(&next, "refresh_token"));
    let (_, body) = post(
        &d.socket,
        "/token",
        &format!(
            "grant_type=refresh_token&refresh_token={}&client_id=web",
            secrets[1]
        ),
        "",
    );
    secrets.push(s(&serde_json::from_str(&body).unwrap(), "refresh_token"));
    // A reuse (logged at warn) and a refusal.
    assert!(refresh(&d.socket, &secrets[0], Some("web")).is_err());
    assert!(refresh(&d.socket, &secrets[2], Some("other")).is_err());
    let stats = ask(&d.socket, &["STATS".into()]).join("\n");
    let metrics = exchange(
        &d.socket,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        metrics.contains("jwtd_sessions_requests_total{outcome=\"reused\"} 1"),
        "{metrics}"
    );
    drop(d);
    let log = std::fs::read_to_string(dir.join("stderr")).unwrap();
    assert!(log.contains("refresh token reused"), "{log}");
    let state = read_all(&dir.join("state"));
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a refresh token in the log");
        assert!(!stats.contains(secret.as_str()), "a refresh token in STATS");
        assert!(
            !metrics.contains(secret.as_str()),
            "a refresh token in /metrics"
        );
        assert!(
            !state.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a refresh token in the state directory"
        );
    }
}

fn read_all(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(read_all(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.extend(b);
        }
    }
    out
}

/// One client's rotations: the refresh token it holds after each acknowledged rotation, and the ones it
/// used before.
#[derive(Default, Clone)]
struct Chain {
    used: Vec<String>,
    current: String,
    /// A REFRESH was sent and not answered (the kill came in between).
    in_flight: bool,
}

fn rotate_until_killed(socket: PathBuf, chain: Arc<Mutex<Chain>>) {
    let Ok(stream) = UnixStream::connect(&socket) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let rt = chain.lock().unwrap().current.clone();
        chain.lock().unwrap().in_flight = true;
        if writer
            .write_all(format!("REFRESH {rt}\n").as_bytes())
            .is_err()
        {
            return;
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        let v = ok(line.trim_end()).unwrap_or_else(|e| panic!("rotation refused: {e}"));
        let mut c = chain.lock().unwrap();
        let next = s(&v, "refresh_token");
        let old = std::mem::replace(&mut c.current, next);
        c.used.push(old);
        c.in_flight = false;
    }
}

/// kill -9 during a stream of rotations: every acknowledged rotation is there after the restart (the last
/// acknowledged token rotates, or — when its own rotation was in flight — is answered again within the
/// grace interval with the same successor), no used token becomes usable again, and no family forks.
#[test]
fn every_acknowledged_rotation_survives_kill_9() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rotations = 0;
    for iteration in 0..6 {
        let dir = temp_dir(&format!("sessions-crash-{iteration}"));
        let _cleanup = Scratch(dir.clone());
        let d = spawn(
            &dir,
            &["--refresh-reuse-grace", "120", "--log-level", "warn"],
            false,
        );
        let chains: Vec<Arc<Mutex<Chain>>> = (0..4)
            .map(|c| {
                let v = issue(&d.socket, &format!("sub=user{c}"));
                Arc::new(Mutex::new(Chain {
                    current: s(&v, "refresh_token"),
                    ..Chain::default()
                }))
            })
            .collect();
        let clients: Vec<_> = chains
            .iter()
            .map(|c| {
                let (socket, c) = (d.socket.clone(), c.clone());
                std::thread::spawn(move || rotate_until_killed(socket, c))
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 300));
        let mut d = d;
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        for c in clients {
            c.join().unwrap();
        }
        let d = spawn(
            &dir,
            &["--refresh-reuse-grace", "120", "--log-level", "warn"],
            false,
        );
        for chain in &chains {
            let c = chain.lock().unwrap().clone();
            rotations += c.used.len();
            // The last acknowledged token: it rotates (or, if its rotation was durable but unanswered,
            // gets that same successor again). Then the family goes on from exactly one token.
            let next = refresh(&d.socket, &c.current, None).unwrap_or_else(|e| {
                panic!("iteration {iteration}: the last acknowledged token: {e}")
            });
            let again = refresh(&d.socket, &c.current, None).unwrap();
            assert_eq!(
                s(&next, "refresh_token"),
                s(&again, "refresh_token"),
                "one successor, never two branches"
            );
            let after = refresh(&d.socket, &s(&next, "refresh_token"), None).unwrap();
            // A token used two or more rotations ago is a reuse: refused, and the family ends.
            if let Some(old) = c.used.iter().rev().nth(1) {
                let e = refresh(&d.socket, old, None).unwrap_err();
                assert!(e.contains("already used"), "iteration {iteration}: {e}");
                assert!(refresh(&d.socket, &s(&after, "refresh_token"), None).is_err());
            }
        }
        drop(d);
    }
    assert!(
        rotations > 100,
        "only {rotations} rotations were acknowledged"
    );
    eprintln!("{rotations} acknowledged rotations checked after kill -9");
}

/// Every algorithm jwtd signs can issue; RSA and ES512 sign on the blocking pool.
#[test]
fn any_signing_algorithm_issues_tokens_that_verify() {
    for alg in ["RS256", "PS384", "ES512", "EdDSA", "HS256"] {
        let dir = Scratch::new(&format!("sessions-alg-{alg}"));
        let d = sessions_daemon(&dir, alg, &[], Stdio::null());
        let first = issue(&d.socket, "sub=alice");
        let second = refresh(&d.socket, &s(&first, "refresh_token"), None).unwrap();
        for v in [&first, &second] {
            let claims = ok(&verify(&d.socket, &s(v, "access_token")));
            assert!(claims.is_ok(), "{alg}: {claims:?}");
        }
    }
}
