//! A real nginx (Debian's, installed by `.ci/run`) in front of `jwtd serve`, configured with the recipe of
//! docs/PROTOCOL.md as written (one source: the docs cannot drift from what is tested) — nginx's config and
//! the routes jwtd is given — its workers as the stock `www-data` user and jwtd's socket group set as the
//! recipe says: a valid token reaches the upstream with its subject forwarded; a token without the scope a
//! route asks for gets 403 and the upstream never sees the request, whatever spelling of the path; an invalid
//! or missing one gets 401; without the socket group, 500.

mod common;

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::docs::only_block;
use common::process::*;
use common::*;
use jwtd::Alg;

const NGINX: &str = "/usr/sbin/nginx";

/// The nginx configuration: docs/PROTOCOL.md's recipe as written, with this test's socket, ports and backend
/// (an nginx server that echoes the identity headers it receives), wrapped in the `http` block with temporary
/// paths. `user` is nginx's worker user (`None`: whoever runs the test).
fn nginx_conf(
    dir: &Path,
    socket: &Path,
    port: u16,
    backend_port: u16,
    user: Option<&str>,
) -> PathBuf {
    let recipe = only_block("docs/PROTOCOL.md", "nginx");
    let recipe = substitute(
        &recipe.text,
        "unix:/run/jwtd/jwtd.sock",
        &format!("unix:{}", socket.display()),
    );
    let recipe = substitute(
        &recipe,
        "127.0.0.1:8080",
        &format!("127.0.0.1:{backend_port}"),
    );
    let recipe = substitute(&recipe, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let d = dir.display();
    let user = user.map(|u| format!("user {u};")).unwrap_or_default();
    let conf = format!(
        r#"
daemon off;
master_process on;
{user}
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

    server {{
        listen 127.0.0.1:{backend_port};
        location / {{ return 200 "upstream reached, user=$http_x_jwt_sub iss=$http_x_jwt_iss\n"; }}
    }}

{recipe}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// nginx's stock worker user, when this test can run nginx's workers as it (as root, where Debian's nginx
/// package created it).
fn stock_worker_user() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let exists = Command::new("id")
        .arg("www-data")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (root && exists).then_some("www-data")
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
    let dir = common::daemon::Scratch::new("nginx");
    // nginx's workers must reach the socket through this directory.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.join("jwtd.sock");
    // As the recipe says: the socket stays 0660 and its group is nginx's worker's.
    let user = stock_worker_user();
    // jwtd: the test's issuer, then the routes of the recipe as written.
    let config = recipe_config(&dir);
    let mut jwtd = Command::new(env!("CARGO_BIN_EXE_jwtd"));
    jwtd.args(["serve", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .stderr(Stdio::null());
    match user {
        Some(u) => jwtd.args(["--socket-group", u]),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but this test cannot run nginx's workers as www-data (needs root and the user)"
            );
            eprintln!(
                "\n*** nginx's workers run as this test's user, not www-data (not root, or no www-data user): \
                 the socket group part of the recipe is not exercised. ***\n"
            );
            &mut jwtd
        }
    };
    let _jwtd = Stop(jwtd.spawn().unwrap());
    wait_until("jwtd", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let (port, backend_port) = (free_port(), free_port());
    let conf = nginx_conf(&dir, &socket, port, backend_port, user);
    let _nginx = Stop(
        Command::new(NGINX)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&*dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("nginx", || TcpStream::connect(("127.0.0.1", port)).is_ok());

    let good = common::daemon::valid_token();
    let (status, body) = proxy_get(port, "/api/items", Some(&good), "");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("upstream reached, user=user-1234567890 iss=https://issuer.test\n"),
        "{body}"
    );
    // A client's own identity headers never reach the upstream: jwtd always answers the claim headers
    // (empty when the claim is absent) and the documented config replaces the client's copies.
    let forged = "X-Jwt-Sub: admin\r\nX-Jwt-Iss: https://evil\r\n";
    let (status, body) = proxy_get(port, "/api/items", Some(&good), forged);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("user=user-1234567890 iss=https://issuer.test\n"),
        "{body}"
    );
    let mut no_sub = common::live_claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    let anonymous = token_with(Alg::HS256, serde_json::json!({}), &no_sub);
    let (status, body) = proxy_get(port, "/api/items", Some(&anonymous), forged);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("upstream reached, user= iss=https://issuer.test\n"),
        "a forged X-Jwt-Sub passed: {body}"
    );

    // The routes: a scope per path and method, judged on the request nginx guards, however it is spelled.
    let with_scope = |scope: &str| {
        let mut c = common::live_claims();
        c["scope"] = serde_json::json!(scope);
        token_with(Alg::HS256, serde_json::json!({}), &c)
    };
    let reader = with_scope("read:orders");
    let (status, body) = proxy_get(port, "/api/orders/7", Some(&reader), "");
    assert_eq!(status, 200, "{body}");
    for path in [
        "/api/admin/users",
        "/api/orders/../admin",
        "/api/orders/%2e%2e/admin",
        "/api/Orders/../admin",
    ] {
        let (status, body) = proxy_get(port, path, Some(&reader), "");
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("upstream reached"), "{path}: {body}");
    }
    let (status, body) = proxy_get(
        port,
        "/api/orders/7",
        Some(&reader),
        "X-Original-Method: PUT\r\n",
    );
    assert_eq!(
        status, 200,
        "a client's X-Original-Method is replaced by nginx's: {body}"
    );
    let (status, body) = proxy_get(port, "/api/admin", Some(&with_scope("admin")), "");
    assert_eq!(status, 200, "{body}");
    // A client's X-Forwarded-Uri naming a friendlier path is removed by the recipe: still 403, not a 400 (500).
    let (status, body) = proxy_get(
        port,
        "/api/admin",
        Some(&reader),
        "X-Forwarded-Uri: /api/items\r\nX-Forwarded-Method: GET\r\n",
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = proxy_get(port, "/public/page", None, "");
    assert_eq!(status, 200, "{body}");

    let expired = token(Alg::HS256);
    let (status, body) = proxy_get(port, "/api/items", Some(&expired), "");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("upstream reached"));
    let (status, _) = proxy_get(port, "/api/items", Some("garbage"), "");
    assert_eq!(status, 401);
    let (status, _) = proxy_get(port, "/api/items", None, "");
    assert_eq!(status, 401);
    // Many subrequests in a row over the keepalive upstream.
    for _ in 0..50 {
        assert_eq!(proxy_get(port, "/api/items", Some(&good), "").0, 200);
    }
    if user.is_some() {
        // What the recipe warns of: without the socket group, nginx's worker cannot connect and every
        // protected request answers 500.
        std::os::unix::fs::chown(&socket, None, Some(0)).unwrap();
        let (status, body) = proxy_get(port, "/api/items", Some(&good), "");
        assert_eq!(status, 500, "{body}");
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        assert!(log.contains("Permission denied"), "{log}");
    }
}
