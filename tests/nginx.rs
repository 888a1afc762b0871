//! A real nginx (Debian's, installed by `.ci/run`) in front of `jwtd serve` with `auth_request`, on loopback
//! ports: a valid token reaches the upstream with its subject forwarded; an invalid or missing one gets 401.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::*;
use common::*;
use jwtd::Alg;

const NGINX: &str = "/usr/sbin/nginx";

fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    get_with(port, path, token, "")
}

/// A GET with `extra` header lines (each ending in CRLF).
fn get_with(port: u16, path: &str, token: Option<&str>, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{auth}{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

fn nginx_conf(dir: &Path, socket: &Path, port: u16, upstream_port: u16) -> PathBuf {
    let d = dir.display();
    let conf = format!(
        r#"
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    upstream jwtd {{ server unix:{socket}; keepalive 8; }}

    server {{
        listen 127.0.0.1:{upstream_port};
        location / {{ return 200 "upstream reached, user=$http_x_jwt_sub iss=$http_x_jwt_iss\n"; }}
    }}

    server {{
        listen 127.0.0.1:{port};
        location = /_jwt {{
            internal;
            proxy_pass http://jwtd/verify;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location /api/ {{
            auth_request /_jwt;
            auth_request_set $jwt_sub $upstream_http_x_jwt_sub;
            auth_request_set $jwt_iss $upstream_http_x_jwt_iss;
            proxy_set_header X-Jwt-Sub $jwt_sub;
            proxy_set_header X-Jwt-Iss $jwt_iss;
            proxy_pass http://127.0.0.1:{upstream_port};
        }}
    }}
}}
"#,
        socket = socket.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

#[test]
fn nginx_auth_request_in_front_of_jwtd() {
    if !Path::new(NGINX).exists() {
        // In CI the test must not pass by skipping: .ci/run installs nginx, so a missing one is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "{NGINX} is not installed and CI is set: the nginx test cannot be skipped in CI"
        );
        eprintln!(
            "\n*** SKIPPED nginx_auth_request_in_front_of_jwtd: {NGINX} is not installed. \
             .ci/run installs it (apt-get install -y nginx). ***\n"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("jwtd-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("jwtd.sock");
    let _jwtd = Stop(
        Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["serve", "--aud", "api", "--socket-mode", "666", "--keys"])
            .arg(data("keys/HS256.public.jwks"))
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("jwtd", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let (port, upstream_port) = (free_port(), free_port());
    let conf = nginx_conf(&dir, &socket, port, upstream_port);
    let _nginx = Stop(
        Command::new(NGINX)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("nginx", || TcpStream::connect(("127.0.0.1", port)).is_ok());

    let good = common::daemon::valid_token();
    let (status, body) = get(port, "/api/orders", Some(&good));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("upstream reached, user=user-1234567890 iss=https://issuer.test\n"),
        "{body}"
    );
    // A client's own identity headers never reach the upstream: jwtd always answers the claim headers
    // (empty when the claim is absent) and the documented config replaces the client's copies.
    let forged = "X-Jwt-Sub: admin\r\nX-Jwt-Iss: https://evil\r\n";
    let (status, body) = get_with(port, "/api/orders", Some(&good), forged);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("user=user-1234567890 iss=https://issuer.test\n"),
        "{body}"
    );
    let mut no_sub = common::live_claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    let anonymous = token_with(Alg::HS256, serde_json::json!({}), &no_sub);
    let (status, body) = get_with(port, "/api/orders", Some(&anonymous), forged);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("upstream reached, user= iss=https://issuer.test\n"),
        "a forged X-Jwt-Sub passed: {body}"
    );

    let expired = token(Alg::HS256);
    let (status, body) = get(port, "/api/orders", Some(&expired));
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("upstream reached"));
    let (status, _) = get(port, "/api/orders", Some("garbage"));
    assert_eq!(status, 401);
    let (status, _) = get(port, "/api/orders", None);
    assert_eq!(status, 401);
    // Many subrequests in a row over the keepalive upstream.
    for _ in 0..50 {
        assert_eq!(get(port, "/api/orders", Some(&good)).0, 200);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
