//! A real Caddy (Debian's 2.6, installed by `.ci/run`) in front of `jwtd serve` with `forward_auth` over the
//! Unix socket, configured with the Caddyfile of docs/PROTOCOL.md as written and the routes of the nginx
//! recipe: a valid token reaches the upstream with its claim headers copied (a client's own copies never
//! pass); a token without the scope a route asks for gets 403 and the upstream never sees the request,
//! whatever spelling of the path; an invalid one gets 401.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::docs::only_block;
use common::process::*;
use common::*;
use jwtd::Alg;

const CADDY: &str = "/usr/bin/caddy";

/// The application behind Caddy: answers every request with the identity headers it received, and counts
/// the requests it saw.
fn backend() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut sub, mut iss, mut line) = (String::new(), String::new(), String::new());
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        match k.to_ascii_lowercase().as_str() {
                            "x-jwt-sub" => sub = v.trim().to_string(),
                            "x-jwt-iss" => iss = v.trim().to_string(),
                            _ => {}
                        }
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let body = format!("upstream reached, user={sub} iss={iss}\n");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, hits)
}

fn with_scope(scope: &str) -> String {
    let mut c = common::live_claims();
    c["scope"] = serde_json::json!(scope);
    token_with(Alg::HS256, serde_json::json!({}), &c)
}

#[test]
fn caddy_forward_auth_in_front_of_jwtd() {
    if !Path::new(CADDY).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CADDY} is not installed and CI is set: the Caddy test cannot be skipped in CI"
        );
        eprintln!(
            "\n*** SKIPPED caddy_forward_auth_in_front_of_jwtd: {CADDY} is not installed (apt-get install -y caddy). ***\n"
        );
        return;
    }
    let dir = common::daemon::Scratch::new("caddy");
    let socket = dir.join("jwtd.sock");
    let config = recipe_config(&dir);
    let _jwtd = Stop(
        Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("jwtd", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let (backend_port, hits) = backend();
    let port = free_port();
    let recipe = only_block("docs/PROTOCOL.md", "caddy").text;
    let recipe = substitute(
        &recipe,
        "unix//run/jwtd/jwtd.sock",
        &format!("unix/{}", socket.display()),
    );
    // Loopback only, any Host.
    let recipe = substitute(
        &recipe,
        "http://:8080 {",
        &format!("http://:{port} {{\n\tbind 127.0.0.1"),
    );
    let recipe = substitute(
        &recipe,
        "127.0.0.1:8081",
        &format!("127.0.0.1:{backend_port}"),
    );
    let caddyfile = dir.join("Caddyfile");
    std::fs::write(&caddyfile, &recipe).unwrap();
    let _caddy = Stop(
        Command::new(CADDY)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("HOME", &*dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("caddy", || TcpStream::connect(("127.0.0.1", port)).is_ok());

    // Allowed: any valid token outside the routes; the claim headers reach the upstream, the client's don't.
    let good = common::daemon::valid_token();
    let forged = "X-Jwt-Sub: admin\r\nX-Jwt-Iss: https://evil\r\n";
    let (status, body) = proxy_get(port, "/api/items", Some(&good), forged);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("upstream reached, user=user-1234567890 iss=https://issuer.test\n"),
        "{body}"
    );
    let reader = with_scope("read:orders");
    let (status, body) = proxy_get(port, "/api/orders/7?x=1", Some(&reader), "");
    assert_eq!(status, 200, "{body}");
    // 403 for the missing scope, whatever the spelling; the upstream never sees these requests.
    let before = hits.load(Ordering::SeqCst);
    for path in [
        "/api/admin",
        "/api/orders/../admin/x",
        "/api/orders/%2e%2e/admin",
        "//api//admin",
    ] {
        let (status, body) = proxy_get(port, path, Some(&reader), "");
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("insufficient_scope"), "{path}: {body}");
    }
    // A client's X-Original-URI naming a friendlier path is removed by the recipe: still judged as /api/admin.
    let (status, body) = proxy_get(
        port,
        "/api/admin",
        Some(&reader),
        "X-Original-URI: /api/items\r\nX-Original-Method: GET\r\n",
    );
    assert_eq!(status, 403, "{body}");
    // Invalid tokens: 401 with jwtd's challenge.
    let (status, body) = proxy_get(port, "/api/items", Some("garbage"), "");
    assert_eq!(status, 401, "{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{body}"
    );
    let (status, _) = proxy_get(port, "/api/items", Some(&token(Alg::HS256)), "");
    assert_eq!(status, 401);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "a refused request reached the upstream"
    );
    let (status, body) = proxy_get(port, "/api/admin", Some(&with_scope("admin")), "");
    assert_eq!(status, 200, "{body}");
}
