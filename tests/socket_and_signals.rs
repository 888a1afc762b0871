//! The socket file, signals and shutdown, dev mode and what the logs may say, with a real `jwtd serve`.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;
use jwtd::Alg;

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
    let _ = http(&socket, &verify_request(Some(&expired)));
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
