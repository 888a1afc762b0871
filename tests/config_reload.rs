//! The configuration file and reloads (SIGHUP, RELOAD) of a real `jwtd serve`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;
use jwtd::Alg;

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

/// Key files and the config file are watched: an atomic rename over a key file, and an in-place edit of the
/// config file, reload without a signal; a broken edit keeps the running configuration.
#[test]
fn changed_files_reload_without_a_signal() {
    let dir = temp_dir("watch");
    let keys = dir.join("keys.jwks");
    std::fs::copy(data("keys/HS256.public.jwks"), &keys).unwrap();
    let body = |aud: &str| {
        format!(
            "[[issuer]]\niss = \"https://a.example\"\nkeys = [\"keys.jwks\"]\naudiences = [\"{aud}\"]\n"
        )
    };
    let d = start_config_in(dir.clone(), &body("api"), Stdio::null());
    let hs = issuer_token(Alg::HS256, "https://a.example");
    let es = issuer_token(Alg::ES256, "https://a.example");
    assert!(verify_line(&d.socket, &hs).starts_with("OK "));
    let eventually = |token: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = verify_line(&d.socket, token);
            if a.starts_with(want) || Instant::now() > deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Rotation by atomic rename (write a temporary file, rename it over the key file).
    let tmp = dir.join(".keys.jwks.tmp");
    std::fs::copy(data("keys/ES256.public.jwks"), &tmp).unwrap();
    std::fs::rename(&tmp, &keys).unwrap();
    let a = eventually(&es, "OK ");
    assert!(a.starts_with("OK "), "the renamed-in key: {a}");
    assert!(verify_line(&d.socket, &hs).starts_with("ERR "));
    // An in-place edit of the config file: the audience changes.
    std::fs::write(dir.join("jwtd.toml"), body("other")).unwrap();
    let a = eventually(&es, "ERR wrong_audience");
    assert!(a.starts_with("ERR wrong_audience"), "{a}");
    // A broken edit: logged, and the running configuration stays.
    std::fs::write(dir.join("jwtd.toml"), "not toml [").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(verify_line(&d.socket, &es).starts_with("ERR wrong_audience"));
    std::fs::write(dir.join("jwtd.toml"), body("api")).unwrap();
    assert!(eventually(&es, "OK ").starts_with("OK "));
}
