//! HTTP/1.1 on the daemon's socket: auth subrequests, token sources, the TCP listener, introspection, health and metrics.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::daemon::*;
use common::*;
use jwtd::Alg;

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
    let out = http(&d.socket, &verify_request(Some(&good)));
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
    let out = http(&d.socket, &verify_request(Some(&expired)));
    assert!(out.starts_with("HTTP/1.1 401 "), "{out}");
    assert!(
        out.to_ascii_lowercase().contains(
            "www-authenticate: bearer error=\"invalid_token\", error_description=\"expired\""
        ),
        "{out}"
    );
    assert!(out.contains(r#""code":"expired""#), "{out}");
    // No token: 401 with a bare challenge.
    let out = http(&d.socket, &verify_request(None));
    assert!(out.starts_with("HTTP/1.1 401 "), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("www-authenticate: bearer\r\n"),
        "{out}"
    );
    // Keep-alive and pipelining: two requests in one write, both answered in order on one connection.
    let two = format!(
        "GET /verify HTTP/1.1\r\nHost: jwtd\r\nAuthorization: Bearer {good}\r\n\r\n{}",
        verify_request(Some("garbage"))
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
    let out = talk(verify_request(Some(&valid_token())).as_bytes());
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
