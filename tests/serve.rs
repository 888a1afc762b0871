//! `jwtd serve` as users run it: a real daemon process on a Unix socket in a temporary directory, spoken to
//! with plain sockets, pipelined; socket-file ownership rules; clean shutdown on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;
use jwtd::Alg;

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
fn socket_file_rules() {
    // Default mode 0660.
    let d = start("mode", &[]);
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // A second daemon on the same path refuses to start and leaves the first one serving.
    let second = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["serve", "--keys"])
        .arg(data("keys/HS256.public.jwks"))
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another daemon is answering"));
    assert_eq!(exchange(&d.socket, b"PING\n"), "PONG\n");
    drop(d);

    // A stale socket file (its daemon crashed) is replaced.
    let dir = temp_dir("stale");
    let stale = dir.join("jwtd.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let d = start_in(dir, &["--socket-mode", "600"]);
    assert_eq!(exchange(&d.socket, b"PING\n"), "PONG\n");
    assert_eq!(
        std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(d);

    // A regular file is never replaced.
    let dir = temp_dir("file");
    let path = dir.join("jwtd.sock");
    std::fs::write(&path, "precious").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["serve", "--keys"])
        .arg(data("keys/HS256.public.jwks"))
        .arg("--socket")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_shuts_down_cleanly_and_removes_the_socket() {
    let mut d = start("term", &[]);
    assert_eq!(exchange(&d.socket, b"PING\n"), "PONG\n");
    signal(d.child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(!d.socket.exists(), "socket file left behind");
}

/// Sends raw HTTP bytes and reads until the server closes (the last request says `Connection: close`).
fn http(socket: &Path, raw: &str) -> String {
    exchange(socket, raw.as_bytes())
}

fn get_verify(token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET /verify HTTP/1.1\r\nHost: jwtd\r\n{auth}Connection: close\r\n\r\n")
}

#[test]
fn http_verify_for_auth_subrequests() {
    let d = start(
        "http",
        &[
            "--claim-header",
            "X-Jwt-Sub=sub",
            "--claim-header",
            "X-Jwt-Scope=scope",
        ],
    );
    let good = valid_token();
    let out = http(&d.socket, &get_verify(Some(&good)));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("x-jwt-sub: user-1234567890\r\n"), "{out}");
    assert!(
        lower.contains("x-jwt-scope: read:items write:items\r\n"),
        "{out}"
    );
    let body = out.split("\r\n\r\n").nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(claims["sub"], "user-1234567890");

    // Rejected: 401 with the RFC 6750 challenge naming the code, and a JSON body.
    let expired = token(Alg::HS256); // pinned to 2023: expired at the daemon's clock
    let out = http(&d.socket, &get_verify(Some(&expired)));
    assert!(out.starts_with("HTTP/1.1 401 "), "{out}");
    assert!(
        out.to_ascii_lowercase().contains(
            "www-authenticate: bearer error=\"invalid_token\", error_description=\"expired\""
        ),
        "{out}"
    );
    assert!(out.contains(r#""code":"expired""#), "{out}");
    // No token: 401 with a bare challenge.
    let out = http(&d.socket, &get_verify(None));
    assert!(out.starts_with("HTTP/1.1 401 "), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("www-authenticate: bearer\r\n"),
        "{out}"
    );
    // Keep-alive and pipelining: two requests in one write, both answered in order on one connection.
    let two = format!(
        "GET /verify HTTP/1.1\r\nHost: jwtd\r\nAuthorization: Bearer {good}\r\n\r\n{}",
        get_verify(Some("garbage"))
    );
    let out = http(&d.socket, &two);
    // Bodies carry no trailing newline, so find status lines by their prefix anywhere.
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "401"], "{out}");
}

#[test]
fn http_token_from_a_custom_header_or_cookie_on_a_custom_path() {
    let d = start(
        "http-src",
        &[
            "--verify-path",
            "/auth",
            "--token-header",
            "X-Access-Token",
            "--token-cookie",
            "session",
        ],
    );
    let good = valid_token();
    let req = |path: &str, headers: &str| {
        http(
            &d.socket,
            &format!("GET {path} HTTP/1.1\r\nHost: jwtd\r\n{headers}Connection: close\r\n\r\n"),
        )
    };
    let status = |out: &str| out.get(9..12).unwrap_or("").to_string();
    // The header, bare or with a Bearer prefix.
    assert_eq!(
        status(&req("/auth", &format!("X-Access-Token: {good}\r\n"))),
        "200"
    );
    assert_eq!(
        status(&req("/auth", &format!("x-access-token: Bearer {good}\r\n"))),
        "200"
    );
    // The cookie, among others, when the header is absent (Envoy-style path suffix too).
    let cookie = format!("Cookie: theme=dark; session={good}; lang=en\r\n");
    assert_eq!(status(&req("/auth", &cookie)), "200");
    assert_eq!(status(&req("/auth/orders/17?x=1", &cookie)), "200");
    // A present header wins over the cookie: a bad header is not rescued by a good cookie.
    let out = req("/auth", &format!("X-Access-Token: garbage\r\n{cookie}"));
    assert_eq!(status(&out), "401", "{out}");
    assert!(out.contains("error_description="), "{out}");
    // Authorization is no longer where the token is looked for.
    let out = req("/auth", &format!("Authorization: Bearer {good}\r\n"));
    assert_eq!(status(&out), "401", "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("www-authenticate: bearer\r\n"),
        "{out}"
    );
    // An empty token header is a malformed request, not an absent one.
    let out = req("/auth", "X-Access-Token: \r\n");
    assert!(out.contains("invalid_request"), "{out}");
    // The old path and look-alikes are not auth paths.
    assert_eq!(status(&req("/verify", &cookie)), "404");
    assert_eq!(status(&req("/authx", &cookie)), "404");
}

#[test]
fn http_listen_serves_tcp_on_loopback_without_admin_rights() {
    use std::net::{TcpListener, TcpStream};
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _d = start("tcp", &["--http-listen", &addr]);
    let talk = |raw: &[u8]| {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let out = talk(get_verify(Some(&valid_token())).as_bytes());
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(talk(b"PING\n") == "PONG\n");
    // No SO_PEERCRED over TCP: admin commands are refused, even for the daemon's own uid.
    assert!(talk(b"RELOAD\n").starts_with("ERR forbidden "));
}

#[test]
fn a_verify_path_that_would_shadow_the_daemons_endpoints_is_refused() {
    for path in ["/", "/metrics", "relative", "/healthz/x"] {
        let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["serve", "--allow-no-exp", "--verify-path", path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{path}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--verify-path"),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn http_introspection_health_and_metrics() {
    let d = start("http2", &[]);
    let good = valid_token();
    let form = |t: &str| {
        let body = format!("token={t}&token_type_hint=access_token");
        format!(
            "POST /introspect HTTP/1.1\r\nHost: jwtd\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let out = http(&d.socket, &form(&good));
    let body: serde_json::Value =
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "user-1234567890");
    let out = http(&d.socket, &form("not-a-token"));
    assert!(out.ends_with(r#"{"active":false}"#), "{out}");
    let out = http(
        &d.socket,
        "GET /healthz HTTP/1.1\r\nHost: jwtd\r\nConnection: close\r\n\r\n",
    );
    assert!(
        out.starts_with("HTTP/1.1 200 OK") && out.ends_with("ok\n"),
        "{out}"
    );
    let out = http(
        &d.socket,
        "GET /metrics HTTP/1.1\r\nHost: jwtd\r\nConnection: close\r\n\r\n",
    );
    assert!(
        out.contains("jwtd_verifications_total{outcome=\"ok\"} 1\n"),
        "{out}"
    );
    assert!(
        out.contains("jwtd_verifications_total{outcome=\"bad_base64\"} 1\n")
            || out.contains("jwtd_verifications_total{outcome=\"malformed\"} 1\n"),
        "{out}"
    );
    assert!(out.contains("jwtd_keys_loaded 1\n"), "{out}");
    // The latency histogram counted the two introspections and the health check (this request is not done).
    assert!(
        out.contains("jwtd_request_duration_seconds_count 3\n"),
        "{out}"
    );
    assert!(
        out.contains("jwtd_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
        "{out}"
    );
    let out = http(
        &d.socket,
        "GET /nope HTTP/1.1\r\nHost: jwtd\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 404 "), "{out}");
    // Garbage that looks like HTTP gets an HTTP error, and the daemon stays healthy.
    let out = http(&d.socket, "GET /verify HTTP/9.9\r\n\x01\x02\r\n\r\n");
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 4"), "{out}");
    assert_eq!(exchange(&d.socket, b"PING\n"), "PONG\n");
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
    let out = http(&d.socket, &get_verify(Some(&valid_token())));
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("jwtd.toml");
    std::fs::write(&path, body).unwrap();
    path
}

fn start_config(tag: &str, body: &str) -> Daemon {
    start_config_in(temp_dir(tag), body, Stdio::null())
}

/// Writes `body` as `dir/jwtd.toml` and serves it on `dir/jwtd.sock`.
fn start_config_in(dir: PathBuf, body: &str, stderr: Stdio) -> Daemon {
    let config = write_config(&dir, body);
    let socket = dir.join("jwtd.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let d = Daemon { child, socket, dir };
    wait_for(&d.socket);
    d
}

/// Serves issuer `https://a.example` (audience `api`) from a config in `dir` whose key file is a copy of the
/// HS256 test key set in `dir`, so that a test can change it and reload. Returns the daemon and that file.
fn start_issuer_a_with_own_keys(dir: PathBuf, stderr: Stdio) -> (Daemon, PathBuf) {
    let keys = dir.join("keys.jwks");
    std::fs::copy(data("keys/HS256.public.jwks"), &keys).unwrap();
    let body = format!(
        "[[issuer]]\niss = \"https://a.example\"\nkeys = [\"{}\"]\naudiences = [\"api\"]\n",
        keys.display()
    );
    (start_config_in(dir, &body, stderr), keys)
}

/// A token for issuer `iss`, valid at the real clock, signed with the test key of `alg`.
fn issuer_token(alg: Alg, iss: &str) -> String {
    token_with(alg, serde_json::json!({}), &issuer_claims(iss))
}

/// Claims valid at the real clock for issuer `iss`.
fn issuer_claims(iss: &str) -> serde_json::Value {
    serde_json::json!({"iss": iss, "sub": "u1", "aud": "api", "exp": 4_102_444_800u64})
}

fn verify_line(socket: &Path, token: &str) -> String {
    exchange(socket, format!("VERIFY {token}\n").as_bytes())
}

#[test]
fn config_file_routes_tokens_by_issuer() {
    let hs = data("keys/HS256.public.jwks");
    let es = data("keys/ES256.public.jwks");
    let d = start_config(
        "config",
        &format!(
            r#"
            [http]
            verify_path = "/auth"
            token_cookie = "at"
            claim_headers = {{ X-Jwt-Iss = "iss" }}

            [[issuer]]
            iss = "https://a.example"
            keys = ["{}"]
            audiences = ["api"]

            [[issuer]]
            iss = "https://b.example"
            keys = ["{}"]
            audiences = ["api"]
            algorithms = ["ES256"]
            "#,
            hs.display(),
            es.display()
        ),
    );
    let a = issuer_token(Alg::HS256, "https://a.example");
    let b = issuer_token(Alg::ES256, "https://b.example");
    assert!(verify_line(&d.socket, &a).starts_with("OK "), "issuer a");
    assert!(verify_line(&d.socket, &b).starts_with("OK "), "issuer b");
    // An issuer only speaks for its own keys: a token claiming b but signed with a's key.
    let forged = issuer_token(Alg::HS256, "https://b.example");
    let out = verify_line(&d.socket, &forged);
    assert!(
        out.starts_with("ERR unknown_key ") || out.starts_with("ERR alg_not_allowed "),
        "{out}"
    );
    let stranger = issuer_token(Alg::HS256, "https://c.example");
    assert!(verify_line(&d.socket, &stranger).starts_with("ERR unknown_issuer "));
    let mut no_iss = issuer_claims("x");
    no_iss.as_object_mut().unwrap().remove("iss");
    let t = token_with(Alg::HS256, serde_json::json!({}), &no_iss);
    assert!(verify_line(&d.socket, &t).starts_with("ERR unknown_issuer "));
    // The [http] table: path, cookie and claim headers.
    let out = http(
        &d.socket,
        &format!("GET /auth HTTP/1.1\r\nHost: x\r\nCookie: at={b}\r\nConnection: close\r\n\r\n"),
    );
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("x-jwt-iss: https://b.example\r\n"),
        "{out}"
    );
}

#[test]
fn invalid_configs_are_refused_with_file_and_key_path() {
    let dir = temp_dir("badconfig");
    let hs = data("keys/HS256.public.jwks");
    let cases = [
        ("", "at least one issuer"),
        (
            "[[issuer]]\niss = \"x\"\nkeys = []\n",
            "issuer[0].keys: no usable verification key",
        ),
        (
            &format!(
                "[[issuer]]\niss = \"x\"\nkeys = [\"{}\"]\ndefault_alg = \"none\"\n",
                hs.display()
            ),
            "issuer[0].default_alg",
        ),
        (
            &format!(
                "[[issuer]]\niss = \"x\"\nkeys = [\"{}\"]\naudience = [\"api\"]\n",
                hs.display()
            ),
            "unknown field `audience`",
        ),
        (
            "[[issuer]]\niss = \"x\"\nkeys = [\"missing.jwks\"]\n",
            "issuer[0].keys[0]",
        ),
        (
            &format!(
                "socket_mode = \"999\"\n[[issuer]]\niss = \"x\"\nkeys = [\"{}\"]\n",
                hs.display()
            ),
            "socket_mode",
        ),
        ("[[issuer]\n", "jwtd.toml"),
        (
            &format!(
                "client_timeout = 0\n[[issuer]]\niss = \"x\"\nkeys = [\"{}\"]\n",
                hs.display()
            ),
            "client_timeout",
        ),
        (
            &format!(
                "[http]\nverify_path = \"/metrics\"\n[[issuer]]\niss = \"x\"\nkeys = [\"{}\"]\n",
                hs.display()
            ),
            "http.verify_path",
        ),
        (
            &format!(
                "[http]\ntoken_cookie = \"a;b\"\n[[issuer]]\niss = \"x\"\nkeys = [\"{}\"]\n",
                hs.display()
            ),
            "http.token_cookie",
        ),
    ];
    for (body, want) in cases {
        let config = write_config(&dir, body);
        let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(dir.join("never.sock"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body:?}: {err}");
        assert!(
            err.contains(want) && err.contains("jwtd.toml"),
            "{body:?}: expected {want:?} in {err}"
        );
        assert!(!dir.join("never.sock").exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sighup_reloads_keys_and_keeps_serving_on_a_bad_reload() {
    let dir = temp_dir("reload");
    let (mut d, keys) = start_issuer_a_with_own_keys(dir.clone(), Stdio::piped());
    let config = dir.join("jwtd.toml");
    // The daemon's log lines, to know when a (failed) reload has happened.
    let (log_tx, logs) = std::sync::mpsc::channel::<String>();
    let stderr = d.child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = log_tx.send(line);
        }
    });
    let hs = issuer_token(Alg::HS256, "https://a.example");
    let es = issuer_token(Alg::ES256, "https://a.example");
    assert!(verify_line(&d.socket, &hs).starts_with("OK "));
    assert!(verify_line(&d.socket, &es).starts_with("ERR "));

    let hup = |d: &Daemon| signal(d.child.id(), "HUP");
    let reloads = |d: &Daemon| -> u64 {
        let out = exchange(&d.socket, b"STATS\n");
        let v: serde_json::Value =
            serde_json::from_str(out.trim_end().strip_prefix("STATS ").unwrap()).unwrap();
        v["reloads"].as_u64().unwrap()
    };
    let wait_reloads = |d: &Daemon, n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while reloads(d) < n {
            assert!(Instant::now() < deadline, "reload {n} did not happen");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Rotate: the key file now holds the ES256 key.
    std::fs::copy(data("keys/ES256.public.jwks"), &keys).unwrap();
    hup(&d);
    wait_reloads(&d, 1);
    assert!(
        verify_line(&d.socket, &es).starts_with("OK "),
        "new key after reload"
    );
    assert!(
        verify_line(&d.socket, &hs).starts_with("ERR "),
        "old key gone after reload"
    );

    // A broken reload keeps the running configuration.
    std::fs::write(&config, "this is not toml [").unwrap();
    hup(&d);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = logs
            .recv_timeout(Duration::from_secs(20))
            .expect("no log line about the reload");
        if line.contains("reload failed") {
            assert!(
                line.contains("jwtd.toml"),
                "the failure names the file: {line}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failed-reload log line");
    }
    assert_eq!(reloads(&d), 1);
    assert!(
        verify_line(&d.socket, &es).starts_with("OK "),
        "still serving after a failed reload"
    );
}

#[test]
fn dev_mode_generates_keys_once_and_prints_a_working_token() {
    let dir = temp_dir("dev");
    let socket = dir.join("jwtd.sock");
    let data_dir = dir.join("dev-data");
    let run = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["serve", "--dev", "--data-dir"])
            .arg(&data_dir)
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The banner goes to stderr: read lines until the sample token, then stop reading (the pipe closes
        // when `err` drops: the daemon must keep serving with a dead stderr).
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut token = String::new();
        let mut banner = String::new();
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0 {
            banner.push_str(&line);
            if line.starts_with("eyJ") {
                token = line.trim().to_string();
                break;
            }
            line.clear();
        }
        assert!(banner.contains("DEVELOPMENT MODE"), "{banner}");
        wait_for(&socket);
        (child, token)
    };
    let (mut first, token) = run();
    let out = verify_line(&socket, &token);
    assert!(
        out.starts_with("OK ") && out.contains(r#""iss":"https://jwtd.dev""#),
        "{out}"
    );
    let jwks = std::fs::read_to_string(data_dir.join("dev-jwks.json")).unwrap();
    signal(first.id(), "TERM");
    first.wait().unwrap();
    // A second start reuses the same keys.
    let (mut second, token2) = run();
    assert_eq!(
        std::fs::read_to_string(data_dir.join("dev-jwks.json")).unwrap(),
        jwks
    );
    assert!(
        verify_line(&socket, &token).starts_with("OK "),
        "old sample token still verifies"
    );
    assert!(verify_line(&socket, &token2).starts_with("OK "));
    let _ = second.kill();
    let _ = second.wait();
    std::fs::remove_dir_all(&dir).unwrap();
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
fn sigterm_while_clients_pipeline_answers_what_was_received() {
    let mut d = start("term-load", &[]);
    let good = valid_token();
    // A connection that is already being served.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"PING\n").unwrap();
    let mut pong = [0u8; 5];
    s.read_exact(&mut pong).unwrap();
    // 60 requests (about 40 KiB) fit in the socket buffer: once write_all returns they are all with the
    // daemon, and the signal follows at once. The daemon may have answered them before the signal lands
    // (then this checks a clean close) or drains them after it (conn.rs): either way, all 60 are answered.
    let n = 60;
    let batch: String = (0..n).map(|_| format!("VERIFY {good}\n")).collect();
    s.write_all(batch.as_bytes()).unwrap();
    signal(d.child.id(), "TERM");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        n,
        "every fully received request gets its answer"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("OK {") && l.ends_with('}')),
        "{text:.300}"
    );
    let status = d.child.wait().unwrap();
    assert!(status.success());
    assert!(!d.socket.exists());
}

#[test]
fn sigterm_under_a_flood_leaves_no_torn_replies() {
    let mut d = start("term-flood", &[]);
    let good = valid_token();
    let batch: String = (0..3000).map(|_| format!("VERIFY {good}\n")).collect();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = s.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        let _ = writer.write_all(batch.as_bytes());
    });
    let mut first = [0u8; 3];
    s.read_exact(&mut first).unwrap();
    signal(d.child.id(), "TERM");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    w.join().unwrap();
    let text = format!("OK {}", String::from_utf8_lossy(&rest));
    // Requests the daemon never read are not answered; every answer it sent is whole and in order.
    assert!(text.ends_with('\n'), "torn last reply");
    assert!(
        text.lines()
            .all(|l| l.starts_with("OK {") && l.ends_with('}')),
        "{text:.300}"
    );
    assert!(d.child.wait().unwrap().success());
}

#[test]
fn reload_command_is_for_admin_uids_only() {
    let dir = temp_dir("reload-cmd");
    let keys = dir.join("keys.jwks");
    std::fs::copy(data("keys/HS256.public.jwks"), &keys).unwrap();
    let keys_arg = keys.to_string_lossy().into_owned();
    // This test process's uid is the daemon's uid: an admin by default.
    let d = start_in(dir.clone(), &["--keys", &keys_arg]);
    let es = token_with(Alg::ES256, serde_json::json!({}), &live_claims());
    assert!(exchange(&d.socket, format!("VERIFY {es}\n").as_bytes()).starts_with("ERR "));
    std::fs::copy(data("keys/ES256.public.jwks"), &keys).unwrap();
    // RELOAD, then a VERIFY pipelined behind it in the same write: it already sees the new keys.
    let out = exchange(&d.socket, format!("RELOAD\nVERIFY {es}\n").as_bytes());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], r#"OK {"keys_loaded":2,"reloaded":true,"restart_needed":[]}"#,
        "{out}"
    );
    assert!(lines[1].starts_with("OK "), "{out}");
    // A broken key file: the reload fails and says why; the running keys stay.
    std::fs::write(&keys, "{not json").unwrap();
    let out = exchange(&d.socket, format!("RELOAD\nVERIFY {es}\n").as_bytes());
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ERR reload_failed "), "{out}");
    assert!(lines[1].starts_with("OK "), "{out}");
    drop(d);

    // With another admin uid configured, this peer is refused.
    let dir = temp_dir("reload-forbidden");
    let d = start_in(dir, &["--admin-uid", "4294967294"]);
    let out = exchange(&d.socket, b"RELOAD\nPING\n");
    assert_eq!(
        out.lines()
            .next()
            .unwrap()
            .split(' ')
            .take(2)
            .collect::<Vec<_>>(),
        ["ERR", "forbidden"]
    );
    assert!(out.ends_with("PONG\n"));
}

#[test]
fn logs_name_tokens_by_digest_never_by_value() {
    let dir = temp_dir("logs");
    let socket = dir.join("jwtd.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["serve", "--log-level", "debug", "--aud", "api", "--keys"])
        .arg(data("keys/HS256.public.jwks"))
        .arg("--socket")
        .arg(&socket)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&socket);
    let expired = token(Alg::HS256);
    let good = valid_token();
    let out = exchange(
        &socket,
        format!("VERIFY {expired}\nVERIFY {good}\n").as_bytes(),
    );
    assert_eq!(out.lines().count(), 2);
    let _ = http(&socket, &get_verify(Some(&expired)));
    signal(child.id(), "TERM");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let digest = jwtd::crypto::token_digest(expired.as_bytes());
    assert!(logs.contains(&digest) && logs.contains("expired"), "{logs}");
    for t in [&expired, &good] {
        // Neither the token nor any of its segments appears in the logs.
        for segment in t.split('.') {
            assert!(
                !logs.contains(segment),
                "a token segment leaked into the logs:\n{logs}"
            );
        }
    }
}

#[test]
fn reloads_under_load_fail_no_request() {
    let d = start("reload-load", &[]);
    let good = valid_token();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (socket, stop, tokens) = (d.socket.clone(), stop.clone(), vec![good.clone(); 32]);
            std::thread::spawn(move || {
                let mut c = jwtd::client::Client::connect(&socket).unwrap();
                let mut answered = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for r in c.verify_many(&tokens).unwrap() {
                        assert!(
                            matches!(r, jwtd::client::Reply::Ok(_)),
                            "failed during reload: {r:?}"
                        );
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    for _ in 0..20 {
        signal(d.child.id(), "HUP");
        std::thread::sleep(Duration::from_millis(25));
    }
    // Every reload must have landed while the clients kept going.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = exchange(&d.socket, b"STATS\n");
        let v: serde_json::Value =
            serde_json::from_str(stats.trim_end().strip_prefix("STATS ").unwrap()).unwrap();
        if v["reloads"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no reload happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(answered > 0);
}

#[test]
fn socket_group_is_set_or_refused() {
    use std::os::unix::fs::MetadataExt;
    // As root (CI), a group that is not the default one, by name; otherwise our own primary group.
    let me = std::fs::metadata("/proc/self").unwrap();
    let (group, gid) = if me.uid() == 0 {
        ("daemon".to_string(), 1)
    } else {
        (me.gid().to_string(), me.gid())
    };
    let d = start("group", &["--socket-group", &group]);
    assert_eq!(std::fs::metadata(&d.socket).unwrap().gid(), gid);
    drop(d);
    let dir = temp_dir("nogroup");
    let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["serve", "--socket-group", "no-such-group-jwtd", "--keys"])
        .arg(data("keys/HS256.public.jwks"))
        .arg("--socket")
        .arg(dir.join("jwtd.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no group named"));
    assert!(!dir.join("jwtd.sock").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn stats(socket: &Path) -> serde_json::Value {
    let out = exchange(socket, b"STATS\n");
    serde_json::from_str(out.trim_end().strip_prefix("STATS ").unwrap()).unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_token_presented_again_is_answered_from_the_cache() {
    let d = start("cache", &[]);
    let t = valid_token();
    let first = verify_line(&d.socket, &t);
    assert!(first.starts_with("OK "), "{first}");
    assert_eq!(
        verify_line(&d.socket, &t),
        first,
        "the cached answer is the same"
    );
    let s = stats(&d.socket);
    assert_eq!(s["cache"]["misses"], 1, "{s}");
    assert_eq!(s["cache"]["hits"], 1, "{s}");
    assert_eq!(s["cache"]["entries"], 1, "{s}");
    // A tampered copy is a miss, and rejected; failures are not cached.
    let tampered = format!("{}A", &t[..t.len() - 1]);
    for _ in 0..2 {
        assert!(verify_line(&d.socket, &tampered).starts_with("ERR "));
    }
    let s = stats(&d.socket);
    assert_eq!(s["cache"]["hits"], 1, "{s}");
    assert_eq!(s["cache"]["entries"], 1, "{s}");
    // HTTP answers from the same cache.
    let out = http(&d.socket, &get_verify(Some(&t)));
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert_eq!(stats(&d.socket)["cache"]["hits"], 2);
    let out = http(
        &d.socket,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.contains("jwtd_cache_hits_total 2\n"), "{out}");
    assert!(out.contains("jwtd_cache_entries 1\n"), "{out}");
}

#[test]
fn the_cache_can_be_turned_off() {
    let d = start("nocache", &["--cache-entries", "0"]);
    let t = valid_token();
    let first = verify_line(&d.socket, &t);
    assert!(first.starts_with("OK "), "{first}");
    assert_eq!(verify_line(&d.socket, &t), first);
    let s = stats(&d.socket);
    assert!(s["cache"].is_null(), "{s}");
    // Both were verified in full (the STATS request counts itself), and no cache answered either.
    assert_eq!(
        (s["requests"].as_u64(), s["ok"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
}

#[test]
fn a_cached_token_is_never_served_after_its_exp() {
    let d = start("cache-exp", &["--leeway", "0"]);
    let exp = unix_now() + 2;
    let mut c = claims();
    c["exp"] = serde_json::json!(exp);
    c["iat"] = serde_json::json!(exp - 100);
    c["nbf"] = serde_json::json!(exp - 100);
    let t = token_with(Alg::HS256, serde_json::json!({}), &c);
    assert!(verify_line(&d.socket, &t).starts_with("OK "));
    assert!(verify_line(&d.socket, &t).starts_with("OK "));
    assert_eq!(stats(&d.socket)["cache"]["hits"], 1);
    while unix_now() < exp {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = verify_line(&d.socket, &t);
    assert!(out.starts_with("ERR expired "), "{out}");
    assert_eq!(stats(&d.socket)["cache"]["hits"], 1);
}

#[test]
fn a_reload_invalidates_cached_verdicts() {
    let (d, keys) = start_issuer_a_with_own_keys(temp_dir("cache-reload"), Stdio::null());
    let t = issuer_token(Alg::HS256, "https://a.example");
    assert!(verify_line(&d.socket, &t).starts_with("OK "));
    assert!(verify_line(&d.socket, &t).starts_with("OK "));
    assert_eq!(stats(&d.socket)["cache"]["hits"], 1);
    // The HS256 key is withdrawn: the cached verdict must not outlive it.
    std::fs::copy(data("keys/ES256.public.jwks"), &keys).unwrap();
    let out = exchange(&d.socket, format!("RELOAD\nVERIFY {t}\n").as_bytes());
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("\"reloaded\":true"), "{out}");
    assert!(lines[1].starts_with("ERR "), "{out}");
    assert_eq!(stats(&d.socket)["cache"]["hits"], 1);
}

#[test]
fn revocations_apply_at_once_even_to_cached_tokens_and_survive_kill_9() {
    let dir = temp_dir("revoke");
    let state = dir.join("state");
    let state_arg = state.to_string_lossy().into_owned();
    let mut d = start_in(dir.clone(), &["--state-dir", &state_arg]);
    let t = valid_token();
    let jti = claims()["jti"].as_str().unwrap().to_string();
    let mut no_jti = claims();
    no_jti.as_object_mut().unwrap().remove("jti");
    no_jti["exp"] = serde_json::json!(4_102_444_800u64);
    let anon = token_with(Alg::HS256, serde_json::json!({}), &no_jti);
    let v = |tok: &str| format!("VERIFY {tok}");
    let r = ask(
        &d.socket,
        &[
            v(&t),
            v(&t), // from the cache
            format!("REVOKE JTI {jti} 4102444800"),
            v(&t), // a cache hit, revoked
            format!("UNREVOKE JTI {jti}"),
            v(&t),
            "REVOKE SUB user-1234567890 1700000001".into(), // its iat is 1700000000
            v(&t),
            "REVOKE SUB user-1234567890 1699999999".into(), // replaced: issued after the cutoff
            v(&t),
            format!("REVOKE TOKEN {anon}"),
            v(&anon),
            "REVOCATIONS".into(),
        ],
    );
    let expect = [
        "OK {",
        "OK {",
        r#"OK {"new":true,"revoked":"jti"}"#,
        "ERR revoked ",
        r#"OK {"found":true,"unrevoked":"jti"}"#,
        "OK {",
        r#"OK {"new":true,"revoked":"sub"}"#,
        "ERR revoked ",
        r#"OK {"new":false,"revoked":"sub"}"#,
        "OK {",
        r#"OK {"new":true,"revoked":"token"}"#,
        "ERR revoked ",
        r#"OK {"jti":0,"sub":1,"token":1}"#,
    ];
    assert_eq!(r.len(), expect.len(), "{r:#?}");
    for (got, want) in r.iter().zip(expect) {
        assert!(
            got.starts_with(want),
            "{got:?} should start with {want:?}\n{r:#?}"
        );
    }
    // kill -9: no clean shutdown. What was acknowledged is still in force after a restart.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d2 = start_in(dir.clone(), &["--state-dir", &state_arg]);
    let r = ask(
        &d2.socket,
        &[
            v(&anon),
            "REVOKE SUB user-1234567890 1700000001".into(),
            v(&t),
        ],
    );
    assert!(r[0].starts_with("ERR revoked "), "{r:?}");
    assert!(r[2].starts_with("ERR revoked "), "{r:?}");
    drop(d);
}

#[test]
fn revocation_commands_need_an_admin_and_a_state_directory() {
    let d = start("revoke-noadmin", &["--admin-uid", "4000000000"]);
    let r = ask(&d.socket, &["REVOKE JTI x 0".into(), "REVOCATIONS".into()]);
    assert!(r.iter().all(|l| l.starts_with("ERR forbidden ")), "{r:?}");
    let d = start("revoke-nostate", &[]);
    let r = ask(
        &d.socket,
        &["REVOKE JTI x 0".into(), "REVOKE JTI".into(), "PING".into()],
    );
    assert!(r[0].starts_with("ERR revocation_disabled "), "{r:?}");
    assert_eq!(r[2], "PONG");
    let dir = temp_dir("revoke-bad");
    let state = dir.join("state").to_string_lossy().into_owned();
    let d = start_in(dir, &["--state-dir", &state]);
    let r = ask(
        &d.socket,
        &[
            "REVOKE JTI".into(),
            "REVOKE JTI x soon".into(),
            "REVOKE TOKEN nope".into(),
            "REVOKE JTI \"a b\" 0".into(),
            "REVOCATIONS LIST".into(),
        ],
    );
    assert!(
        r[..3].iter().all(|l| l.starts_with("ERR bad_request ")),
        "{r:?}"
    );
    assert!(r[3].starts_with("OK "), "{r:?}");
    assert!(r[4].contains(r#""value":"a b""#), "{r:?}");
}

#[test]
fn http_revoke_is_rfc_7009_style_for_admins() {
    let dir = temp_dir("revoke-http");
    let state = dir.join("state").to_string_lossy().into_owned();
    let d = start_in(dir, &["--state-dir", &state]);
    let post = |body: &str| {
        http(
            &d.socket,
            &format!(
                "POST /revoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let t = valid_token();
    assert!(verify_line(&d.socket, &t).starts_with("OK "));
    let out = post(&format!("token={t}&token_type_hint=access_token"));
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert!(out.ends_with(r#"{"new":true,"revoked":"jti"}"#), "{out}");
    assert!(verify_line(&d.socket, &t).starts_with("ERR revoked "));
    // The HTTP verify path sees it too.
    assert!(http(&d.socket, &get_verify(Some(&t))).contains("error_description=\"revoked\""));
    // Lift it, by jti.
    let jti = claims()["jti"].as_str().unwrap().to_string();
    let out = post(&format!("jti={jti}&unrevoke=1"));
    assert!(
        out.ends_with(r#"{"found":true,"unrevoked":"jti"}"#),
        "{out}"
    );
    assert!(verify_line(&d.socket, &t).starts_with("OK "));
    // Subject with a cutoff; an invalid token is not an error (RFC 7009 §2.2); bad requests are.
    let out = post("sub=user-1234567890&before=1700000001");
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert!(verify_line(&d.socket, &t).starts_with("ERR revoked "));
    let out = post("token=garbage");
    assert!(
        out.starts_with("HTTP/1.1 200 ") && out.contains(r#""revoked":false"#),
        "{out}"
    );
    assert!(post("").starts_with("HTTP/1.1 400 "));
    assert!(post("sub=a&before=soon").starts_with("HTTP/1.1 400 "));
    // Not for others.
    let d2 = start("revoke-http-other", &["--admin-uid", "4000000000"]);
    let out = http(
        &d2.socket,
        "POST /revoke HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoken=x",
    );
    assert!(out.starts_with("HTTP/1.1 403 "), "{out}");
}

#[test]
fn jwtd_revoke_on_the_command_line() {
    let dir = temp_dir("revoke-cli");
    let state = dir.join("state").to_string_lossy().into_owned();
    let d = start_in(dir.clone(), &["--state-dir", &state]);
    let sock = d.socket.to_string_lossy().into_owned();
    let cli = |args: &[&str], stdin: &str| {
        let out = common::jwtd(
            &[&["revoke", "--socket", &sock], args].concat(),
            Some(stdin.as_bytes()),
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    let t = valid_token();
    assert_eq!(cli(&["--token", "-"], &t).0, Some(0));
    assert!(verify_line(&d.socket, &t).starts_with("ERR revoked "));
    let (code, out) = cli(&["--jti", "with space", "--exp", "4102444800"], "");
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = cli(&["--sub", "alice", "--before", "1700000000"], "");
    assert_eq!(
        (code, out.as_str()),
        (Some(0), r#"OK {"new":true,"revoked":"sub"}"#)
    );
    let (code, out) = cli(&["--list"], "");
    assert_eq!(code, Some(0));
    assert!(
        out.contains(r#""total":3"#) && out.contains("with space"),
        "{out}"
    );
    assert_eq!(
        cli(&["--sub", "alice"], "").0,
        Some(2),
        "--sub needs --before"
    );
    assert_eq!(cli(&["--undo", "--sub", "alice"], "").0, Some(0));
    let (code, out) = cli(&["--undo", "--sub", "alice"], "");
    assert_eq!(
        (code, out.as_str()),
        (Some(0), r#"OK {"found":false,"unrevoked":"sub"}"#)
    );
    // Refused by the daemon: exit 1; no daemon: exit 2; nothing to do: a usage error.
    let (code, out) = cli(&["--token", "nonsense"], "");
    assert_eq!(code, Some(1), "{out}");
    drop(d);
    assert_eq!(cli(&["--jti", "x"], "").0, Some(2));
    assert_eq!(cli(&[], "").0, Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_signal_sent_as_soon_as_the_socket_appears_is_handled() {
    // A supervisor may reload (or stop) the daemon the moment its socket exists. A shell loop with builtins
    // only (`[ -S ]`, `kill`) sends SIGHUP within microseconds of the bind; the daemon must survive and serve.
    for round in 0..20 {
        let mut d = spawn_in(temp_dir(&format!("early-signal-{round}")), &[]);
        let script = format!(
            "while [ ! -S '{}' ]; do :; done; kill -HUP {}",
            d.socket.display(),
            d.child.id()
        );
        let sent = Command::new("sh").args(["-c", &script]).status().unwrap();
        assert!(sent.success());
        std::thread::sleep(Duration::from_millis(50));
        if let Some(status) = d.child.try_wait().unwrap() {
            panic!("round {round}: a SIGHUP right after the bind ended the daemon ({status})");
        }
        wait_for(&d.socket);
        assert_eq!(exchange(&d.socket, b"PING\n"), "PONG\n", "round {round}");
    }
}
