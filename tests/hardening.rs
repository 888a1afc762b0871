//! Regression tests for the findings of the two attack passes (issue 11): each test is named after what it
//! guards and fails on the code before its fix. Real daemons on Unix sockets in temporary directories.

mod common;

use std::path::Path;

use common::daemon::*;
use common::*;
use jwtd::Alg;
use serde_json::json;

fn verify(socket: &Path, token: &str) -> String {
    ask(socket, &[format!("VERIFY {token}")]).remove(0)
}

/// Starts `jwtd serve` (HS256 test keys) on `socket` with `extra`, expecting it to refuse: its exit code and
/// what it said.
fn serve_refused(socket: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let keys = data("keys/HS256.public.jwks")
        .to_string_lossy()
        .into_owned();
    let socket = socket.to_string_lossy().into_owned();
    let args = [&["serve", "--keys", &keys, "--socket", &socket][..], extra].concat();
    let out = jwtd(&args, None);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A daemon with a state directory trusting the ES256 test key besides the HS256 one.
fn with_state(tag: &str, extra: &[&str]) -> (Daemon, String) {
    let dir = temp_dir(tag);
    let state = dir.join("state").to_string_lossy().into_owned();
    let es = data("keys/ES256.public.jwks")
        .to_string_lossy()
        .into_owned();
    let mut args = vec!["--state-dir", &state, "--keys", &es];
    args.extend_from_slice(extra);
    (start_in(dir, &args), state)
}

/// The ECDSA twin of a valid ES256 signature: (r, n − s), which verifies just as well (JWS does not require
/// low-S, and rejecting high-S would refuse tokens that other issuers legitimately produce).
fn ecdsa_twin(token: &str) -> String {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = jwtd::jws::b64::decode(sig.as_bytes()).unwrap();
    assert_eq!(sig.len(), 64);
    let s = &mut sig[32..];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        s[i] = (d + if d < 0 { 256 } else { 0 }) as u8;
    }
    format!("{input}.{}", b64(&sig))
}

#[test]
fn ecdsa_twin_signatures_cannot_dodge_a_token_revocation() {
    let (d, _) = with_state("ecdsa-twin", &[]);
    let mut c = live_claims();
    c.as_object_mut().unwrap().remove("jti");
    let t = token_with(Alg::ES256, json!({}), &c);
    let twin = ecdsa_twin(&t);
    assert_ne!(t, twin);
    assert!(verify(&d.socket, &t).starts_with("OK "));
    assert!(
        verify(&d.socket, &twin).starts_with("OK "),
        "the twin is a valid signature"
    );
    let r = ask(&d.socket, &[format!("REVOKE TOKEN {t}")]);
    assert_eq!(r[0], r#"OK {"new":true,"revoked":"token"}"#);
    assert!(verify(&d.socket, &t).starts_with("ERR revoked "));
    assert!(
        verify(&d.socket, &twin).starts_with("ERR revoked "),
        "the twin of a revoked token is revoked"
    );
    // Revoking the twin names the same rule.
    let r = ask(&d.socket, &[format!("REVOKE TOKEN {twin}")]);
    assert_eq!(r[0], r#"OK {"new":false,"revoked":"token"}"#);
}

#[test]
fn revoked_tokens_stay_revoked_inside_the_leeway_and_after_a_restart() {
    let (d, state) = with_state("leeway", &["--leeway", "120"]);
    let now = unix_now();
    // Expired 30 s ago: still valid for 90 s under the 120 s leeway.
    let mut with_jti = live_claims();
    with_jti["exp"] = json!(now - 30);
    with_jti["jti"] = json!("leeway-jti");
    let mut no_jti = with_jti.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    let a = token_with(Alg::HS256, json!({}), &with_jti);
    let b = token_with(Alg::HS256, json!({}), &no_jti);
    for t in [&a, &b] {
        assert!(verify(&d.socket, t).starts_with("OK "), "inside the leeway");
        // Twice: the second answer comes from the cache.
        assert!(verify(&d.socket, t).starts_with("OK "));
    }
    let r = ask(
        &d.socket,
        &[format!("REVOKE TOKEN {a}"), format!("REVOKE TOKEN {b}")],
    );
    assert_eq!(r[0], r#"OK {"new":true,"revoked":"jti"}"#);
    assert_eq!(r[1], r#"OK {"new":true,"revoked":"token"}"#);
    for t in [&a, &b] {
        assert!(verify(&d.socket, t).starts_with("ERR revoked "), "{t}");
    }
    // A restart replays the log and drops nothing a token could still use.
    let dir = d.kill_9();
    let es = data("keys/ES256.public.jwks")
        .to_string_lossy()
        .into_owned();
    let d = start_in(
        dir,
        &["--state-dir", &state, "--keys", &es, "--leeway", "120"],
    );
    for t in [&a, &b] {
        assert!(verify(&d.socket, t).starts_with("ERR revoked "), "{t}");
    }
    let r = ask(&d.socket, &["REVOCATIONS".into()]);
    assert_eq!(r[0], r#"OK {"jti":1,"sub":0,"token":1}"#);
}

#[test]
fn a_token_with_an_empty_jti_can_be_revoked() {
    let (d, _) = with_state("empty-jti", &[]);
    let mut c = live_claims();
    c["jti"] = json!("");
    let t = token_with(Alg::HS256, json!({}), &c);
    assert!(verify(&d.socket, &t).starts_with("OK "));
    let r = ask(
        &d.socket,
        &[format!("REVOKE TOKEN {t}"), format!("VERIFY {t}")],
    );
    assert_eq!(r[0], r#"OK {"new":true,"revoked":"token"}"#);
    assert!(r[1].starts_with("ERR revoked "), "{r:?}");
    // A jti rule cannot hold the empty value, and says so.
    let r = ask(&d.socket, &[r#"REVOKE JTI "" 0"#.into()]);
    assert!(r[0].starts_with("ERR bad_request "), "{r:?}");
}

#[test]
fn claims_that_another_reader_would_refuse_do_not_verify() {
    let d = start("one-parse", &[]);
    let key = signer(Alg::HS256);
    let now = unix_now();
    let payload = |extra: &str| {
        format!(
            r#"{{"sub":"s","aud":"api","exp":{},"x":{extra}}}"#,
            now + 600
        )
    };
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"test-HS256"}"#;
    for extra in ["1e400", "-1e400"] {
        let t = raw_token(&key, header, &payload(extra));
        let r = verify(&d.socket, &t);
        assert!(
            r.starts_with("ERR bad_json ") && r.contains("out of range"),
            "{extra}: {r}"
        );
    }
    // Within range: verifies, and every other path reads the same claims.
    let t = raw_token(&key, header, &payload("1e300"));
    assert!(verify(&d.socket, &t).starts_with("OK "));
    // Nesting beyond what serde_json reads cannot be configured.
    let out = jwtd(
        &["verify", "--max-json-depth", "200", "--secret", "-"],
        Some(b"x"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 to 127"));
    let out = jwtd(
        &["verify", "--leeway", "86401", "--secret", "-"],
        Some(b"x"),
    );
    assert_eq!(out.status.code(), Some(2), "a leeway over a day is refused");
}

fn post_revoke(socket: &Path, body: &str) -> String {
    http(
        socket,
        &format!(
            "POST /revoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn http_revoke_builds_a_typed_operation_and_names_a_bad_field() {
    let (d, _) = with_state("revoke-form", &[]);
    let t = valid_token(); // sub user-1234567890, iat 1700000000
    // A subject without its cutoff was once answered 200 with a cutoff of 0 (nothing revoked).
    for (body, field) in [
        ("sub=user-1234567890", "before"),
        ("sub=user-1234567890&until=4102444800", "before"),
        ("sub=user-1234567890&before=", "before"),
        ("sub=user-1234567890&before=soon", "before"),
        ("sub=user-1234567890&before=1700000001&until=later", "until"),
        ("sub=user-1234567890&before=1700000001&exp=5", "exp"),
        ("jti=abc&exp=never", "exp"),
        ("jti=abc&before=1", "before"),
        ("jti=abc&unrevoke=maybe", "unrevoke"),
        ("sub=a&sub=b&before=1", "sub"),
        ("jti=&exp=1", "jti"),
        ("", "exactly one"),
    ] {
        let out = post_revoke(&d.socket, body);
        assert!(out.starts_with("HTTP/1.1 400 "), "{body}: {out}");
        assert!(
            out.contains("invalid_request") && out.contains(field),
            "{body}: {out}"
        );
    }
    assert!(
        verify(&d.socket, &t).starts_with("OK "),
        "nothing was revoked by a refused form"
    );
    // `until` is the rule's end, never its cutoff.
    let out = post_revoke(
        &d.socket,
        "sub=user-1234567890&before=1700000001&until=4102444800",
    );
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert!(verify(&d.socket, &t).starts_with("ERR revoked "));
    let list = ask(&d.socket, &["REVOCATIONS LIST".into()]).remove(0);
    assert!(
        list.contains(r#""before":1700000001"#) && list.contains(r#""expires":4102444800"#),
        "{list}"
    );
    let out = post_revoke(&d.socket, "sub=user-1234567890&unrevoke=1");
    assert!(
        out.ends_with(r#"{"found":true,"unrevoked":"sub"}"#),
        "{out}"
    );
    assert!(verify(&d.socket, &t).starts_with("OK "));
    // jti without exp: kept until removed.
    let out = post_revoke(&d.socket, "jti=4f1c2a9e-6b1d-4d1e-9f8a-0c2b3d4e5f60");
    assert!(out.ends_with(r#"{"new":true,"revoked":"jti"}"#), "{out}");
    assert!(verify(&d.socket, &t).starts_with("ERR revoked "));
}

#[test]
fn an_oversized_unrevoke_is_refused_and_the_daemon_still_restarts() {
    // Long enough to pass the line cap, too long for a log record (65,519 bytes once made a record that
    // replay refused, and every later start exited 2).
    let (d, state) = with_state("unrevoke-huge", &["--max-line", "200000"]);
    let huge = "s".repeat(65_519);
    let r = ask(
        &d.socket,
        &[
            format!("UNREVOKE SUB {huge}"),
            format!("UNREVOKE JTI {huge}"),
            "REVOKE JTI still-here 0".into(),
        ],
    );
    assert!(
        r[0].starts_with("ERR bad_request "),
        "{}",
        &r[0][..80.min(r[0].len())]
    );
    assert!(r[1].starts_with("ERR bad_request "));
    assert!(r[2].starts_with("OK "), "{r:?}");
    let out = post_revoke(&d.socket, &format!("sub={huge}&unrevoke=1"));
    assert!(out.starts_with("HTTP/1.1 400 "), "{}", &out[..80]);
    let dir = d.kill_9();
    let d = start_in(dir, &["--state-dir", &state]);
    let r = ask(&d.socket, &["REVOCATIONS".into()]);
    assert_eq!(r[0], r#"OK {"jti":1,"sub":0,"token":0}"#);
}

#[test]
fn two_daemons_cannot_share_a_state_directory() {
    let (d, state) = with_state("two-daemons", &[]);
    let dir = temp_dir("two-daemons-b");
    let (code, err) = serve_refused(&dir.join("b.sock"), &["--state-dir", &state]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("in use by another jwtd") && err.contains(&format!("pid {}", d.pid())),
        "{err}"
    );
    assert!(
        !dir.join("b.sock").exists(),
        "the second daemon never listened"
    );
    assert!(d.ping());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn state_files_are_private_and_symlinks_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (d, state) = with_state("modes", &[]);
    let r = ask(&d.socket, &["REVOKE SUB alice 1700000000".into()]);
    assert!(r[0].starts_with("OK "));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let state = Path::new(&state);
    assert_eq!(mode(state), 0o700);
    assert_eq!(mode(&state.join("revocations.log")), 0o600);
    drop(d);
    // A symlinked state directory or log is refused at start.
    let dir = temp_dir("symlinks");
    std::fs::create_dir_all(dir.join("real")).unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("state")).unwrap();
    std::fs::create_dir_all(dir.join("s2")).unwrap();
    std::fs::write(dir.join("elsewhere.log"), b"").unwrap();
    std::os::unix::fs::symlink(dir.join("elsewhere.log"), dir.join("s2/revocations.log")).unwrap();
    for (state, what) in [("state", "state directory"), ("s2", "revocations.log")] {
        let (code, err) = serve_refused(
            &dir.join("x.sock"),
            &["--state-dir", &dir.join(state).to_string_lossy()],
        );
        assert_eq!(code, Some(2));
        assert!(err.contains("symbolic link") && err.contains(what), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn get_verify(socket: &Path, headers: &[(&str, &str)]) -> String {
    let mut req = "GET /verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_string();
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    http(socket, &req)
}

fn header_of<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap();
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn duplicate_credentials_are_a_bad_request() {
    let d = start(
        "dup-creds",
        &[
            "--token-cookie",
            "session",
            "--claim-header",
            "X-Jwt-Sub=sub",
        ],
    );
    let t = valid_token();
    let bearer = format!("Bearer {t}");
    let one = get_verify(&d.socket, &[("Authorization", &bearer)]);
    assert!(one.starts_with("HTTP/1.1 200 "), "{one}");
    for headers in [
        vec![
            ("Authorization", bearer.as_str()),
            ("Authorization", "Bearer x"),
        ],
        vec![
            ("Authorization", bearer.as_str()),
            ("Authorization", bearer.as_str()),
        ],
        vec![("Cookie", &*format!("session={t}; session=x"))],
        vec![
            ("Cookie", &*format!("session={t}")),
            ("Cookie", "session=x"),
        ],
    ] {
        let out = get_verify(&d.socket, &headers);
        assert!(out.starts_with("HTTP/1.1 400 "), "{headers:?}: {out}");
        assert!(out.contains("invalid_request"), "{out}");
    }
    let d = start("dup-creds-header", &["--token-header", "X-Token"]);
    let out = get_verify(&d.socket, &[("X-Token", &t), ("X-Token", &t)]);
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
}

#[test]
fn claim_headers_are_always_answered_unambiguous_or_refused() {
    let d = start(
        "claim-headers",
        &[
            "--claim-header",
            "X-Jwt-Sub=sub",
            "--claim-header",
            "X-Jwt-Iss=iss",
            "--claim-header",
            "X-Jwt-Roles=roles",
            "--claim-header",
            "X-Jwt-Tenant=nope",
        ],
    );
    let mut c = live_claims();
    c["roles"] = json!(["read", "write,admin"]);
    let t = token_with(Alg::HS256, json!({}), &c);
    let out = get_verify(&d.socket, &[("Authorization", &format!("Bearer {t}"))]);
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert_eq!(header_of(&out, "x-jwt-sub"), Some("user-1234567890"));
    assert_eq!(header_of(&out, "x-jwt-iss"), Some("https://issuer.test"));
    // Joined with ","; a "," inside an element is encoded, so the two arrays stay apart.
    assert_eq!(header_of(&out, "x-jwt-roles"), Some("read,write%2Cadmin"));
    // Absent claim: the header is still there, empty, so a proxy copying it overwrites a client's copy.
    assert_eq!(header_of(&out, "x-jwt-tenant"), Some(""));
    c["roles"] = json!(["read", "write", "admin"]);
    let t2 = token_with(Alg::HS256, json!({}), &c);
    let out2 = get_verify(&d.socket, &[("Authorization", &format!("Bearer {t2}"))]);
    assert_eq!(header_of(&out2, "x-jwt-roles"), Some("read,write,admin"));
    // Control characters and non-ASCII never reach a header raw: percent-encoded.
    c["sub"] = json!("alice\r\nX-Admin: yes\u{0}é");
    let t3 = token_with(Alg::HS256, json!({}), &c);
    let out3 = get_verify(&d.socket, &[("Authorization", &format!("Bearer {t3}"))]);
    assert!(out3.starts_with("HTTP/1.1 200 "), "{out3}");
    assert_eq!(
        header_of(&out3, "x-jwt-sub"),
        Some("alice%0D%0AX-Admin: yes%00%C3%A9")
    );
    assert!(!out3.contains("X-Admin: yes\r\n"));
    // A value too long for a proxy to forward: refused, never cut or left out.
    c["roles"] = json!((0..500).map(|i| format!("role-{i}")).collect::<Vec<_>>());
    let t4 = token_with(Alg::HS256, json!({}), &c);
    let out4 = get_verify(&d.socket, &[("Authorization", &format!("Bearer {t4}"))]);
    assert!(out4.starts_with("HTTP/1.1 401 "), "{out4}");
    assert!(out4.contains("claim_not_representable"), "{out4}");
    // The defaults carry the issuer beside the subject: sub alone is no identity across issuers.
    let d = start("claim-headers-default", &[]);
    let out = get_verify(&d.socket, &[("Authorization", &format!("Bearer {t}"))]);
    assert_eq!(header_of(&out, "x-jwt-sub"), Some("user-1234567890"));
    assert_eq!(header_of(&out, "x-jwt-iss"), Some("https://issuer.test"));
}

#[test]
fn a_line_of_exactly_max_line_bytes_is_served_with_lf_or_crlf() {
    let d = start("max-line-crlf", &["--max-line", "1000"]);
    let t = valid_token();
    let line = format!("VERIFY {t}");
    // A request of exactly 1000 bytes (an unknown verb: answered, the connection kept), then a VERIFY.
    let exact = format!("X{}", "a".repeat(999));
    assert_eq!(exact.len(), 1000);
    for end in ["\n", "\r\n"] {
        let out = exchange(&d.socket, format!("{exact}{end}{line}{end}").as_bytes());
        let r: Vec<&str> = out.lines().collect();
        assert!(r[0].starts_with("ERR unknown_command "), "{end:?}: {r:?}");
        assert!(r[1].starts_with("OK "), "{end:?}: {r:?}");
        let over = format!("{exact}a{end}");
        let out = exchange(&d.socket, over.as_bytes());
        assert!(out.starts_with("ERR too_large "), "{end:?}: {out}");
    }
}

#[test]
fn bad_http_headers_get_the_documented_status() {
    let dir = temp_dir("bad-headers");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let d = start_in(dir, &["--http-listen", &addr]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            format!(
                "GET /verify HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(33 * 1024)
            )
            .into_bytes(),
            "431",
        ),
        (
            format!(
                "GET /verify HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..101)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>()
            )
            .into_bytes(),
            "431",
        ),
        (
            b"GET /verify HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
            "400",
        ),
    ];
    for (raw, status) in &cases {
        let out = exchange(&d.socket, raw);
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status} ")),
            "unix, want {status}: {:?}",
            &out[..out.len().min(60)]
        );
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        use std::io::{Read, Write};
        s.write_all(raw).unwrap();
        let mut out = vec![0u8; 64];
        let n = s.read(&mut out).unwrap();
        let out = String::from_utf8_lossy(&out[..n]);
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status} ")),
            "tcp, want {status}: {out:?}"
        );
    }
    assert!(d.ping());
}

#[test]
fn sigusr1_sigusr2_and_sigalrm_do_not_stop_the_daemon() {
    let d = start("signals", &[]);
    for sig in ["USR1", "USR2", "ALRM"] {
        signal(d.pid(), sig);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(d.ping(), "after SIG{sig}");
        assert!(d.socket.exists());
    }
}

#[test]
fn a_reload_applies_http_settings_and_names_what_needs_a_restart() {
    let dir = temp_dir("reload-settings");
    let keys = data("keys/HS256.public.jwks");
    let config = |extra: &str| {
        format!(
            "state_dir = \"state\"\nmax_connections = 100\n{extra}\n[http]\ntoken_cookie = \"session\"\n\
             \n[[issuer]]\niss = \"https://issuer.test\"\nkeys = [\"{}\"]\naudiences = [\"api\"]\n",
            keys.display()
        )
    };
    let path = dir.join("jwtd.toml");
    std::fs::write(&path, config("")).unwrap();
    let socket = dir.join("jwtd.sock");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["serve", "--config"])
        .arg(&path)
        .arg("--socket")
        .arg(&socket)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        socket,
        dir: dir.clone(),
    };
    wait_for(&d.socket);
    let t = valid_token();
    let by_cookie = || get_verify(&d.socket, &[("Cookie", &format!("session={t}"))]);
    assert!(by_cookie().starts_with("HTTP/1.1 200 "));
    // The cookie is removed, the state directory and the connection limit changed.
    let body = config("").replace("token_cookie = \"session\"\n", "");
    let body = body
        .replace("state_dir = \"state\"", "state_dir = \"elsewhere\"")
        .replace("max_connections = 100", "max_connections = 200");
    std::fs::write(&path, body).unwrap();
    let r = ask(&d.socket, &["RELOAD".into()]);
    assert_eq!(
        r[0],
        r#"OK {"keys_loaded":1,"reloaded":true,"restart_needed":["max_connections","state_dir"]}"#
    );
    let out = by_cookie();
    assert!(
        out.starts_with("HTTP/1.1 401 "),
        "a removed token_cookie no longer applies: {out}"
    );
    // Nothing else changed: a second reload has nothing new to name (still the running values).
    let r = ask(&d.socket, &["RELOAD".into()]);
    assert!(
        r[0].contains(r#""restart_needed":["max_connections","state_dir"]"#),
        "{r:?}"
    );
}

#[test]
fn fifos_devices_and_huge_files_are_refused_as_key_files_and_nothing_wedges() {
    let dir = temp_dir("fifo-keys");
    let fifo = dir.join("keys.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = dir.join("big.jwks");
    std::fs::write(&big, vec![b' '; (1 << 20) + 1]).unwrap();
    // `jwtd verify` answers at once instead of blocking in open() or eating memory.
    for (path, what) in [
        (fifo.to_string_lossy().into_owned(), "a FIFO"),
        ("/dev/zero".to_string(), "a device"),
        (big.to_string_lossy().into_owned(), "at most"),
    ] {
        let out = jwtd(&["verify", "--keys", &path], Some(b"x.y.z"));
        assert_eq!(out.status.code(), Some(2), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(what), "{path}: {err}");
    }
    // A daemon whose key file becomes a FIFO: the reload fails and says why, later reloads still work, and
    // SIGTERM still stops it.
    let keys = dir.join("keys.jwks");
    std::fs::copy(data("keys/HS256.public.jwks"), &keys).unwrap();
    let d = start_in(dir.clone(), &["--keys", &keys.to_string_lossy()]);
    std::fs::remove_file(&keys).unwrap();
    std::fs::rename(&fifo, &keys).unwrap();
    let r = ask(&d.socket, &["RELOAD".into()]);
    assert!(
        r[0].starts_with("ERR reload_failed ") && r[0].contains("FIFO"),
        "{r:?}"
    );
    signal(d.pid(), "HUP");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(d.ping(), "a reload never wedges the daemon");
    std::fs::remove_file(&keys).unwrap();
    std::fs::copy(data("keys/HS256.public.jwks"), &keys).unwrap();
    let r = ask(&d.socket, &["RELOAD".into()]);
    assert!(r[0].starts_with("OK "), "{r:?}");
    let mut d = d;
    signal(d.pid(), "TERM");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGTERM did not stop the daemon"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!d.socket.exists());
}

/// What a [`FakeServer`] does with each connection.
#[derive(Clone, Copy, PartialEq)]
enum Fake {
    /// Never says anything.
    Silent,
    /// Streams `a`s without a newline until the client goes.
    Stream,
    /// Answers `STATS` like a daemon, then never answers anything else.
    StatsOnly,
}

/// A server on `path` that misbehaves as `mode` says. Stops when dropped.
struct FakeServer {
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeServer {
    fn start(path: std::path::PathBuf, mode: Fake) -> FakeServer {
        use std::io::{BufRead, Write};
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                let s = s.clone();
                std::thread::spawn(move || {
                    conn.set_nonblocking(false).unwrap();
                    let running = || !s.load(std::sync::atomic::Ordering::Relaxed);
                    match mode {
                        Fake::Stream => {
                            let chunk = vec![b'a'; 64 * 1024];
                            while running() && conn.write_all(&chunk).is_ok() {}
                        }
                        Fake::Silent => {
                            while running() {
                                std::thread::sleep(std::time::Duration::from_millis(20));
                            }
                        }
                        Fake::StatsOnly => {
                            let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
                            let mut line = String::new();
                            if r.read_line(&mut line).is_ok() && line == "STATS\n" {
                                let _ = conn.write_all(b"STATS {}\n");
                            }
                            while running() {
                                std::thread::sleep(std::time::Duration::from_millis(20));
                            }
                        }
                    }
                });
            }
        });
        FakeServer { path, stop }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn cli_tools_give_up_on_a_daemon_that_never_answers_or_never_ends_a_line() {
    let dir = temp_dir("cli-timeouts");
    let silent = FakeServer::start(dir.join("silent.sock"), Fake::Silent);
    let started = std::time::Instant::now();
    let out = jwtd(
        &[
            "revoke",
            "--socket",
            &silent.path.to_string_lossy(),
            "--jti",
            "x",
            "--timeout",
            "1",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no reply"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // Bytes without end: refused past the reply cap, memory bounded.
    let streaming = FakeServer::start(dir.join("stream.sock"), Fake::Stream);
    let out = jwtd(
        &[
            "revoke",
            "--socket",
            &streaming.path.to_string_lossy(),
            "--list",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("longer than"), "{err}");
    // jwtd bench against a server that stops answering ends with an error.
    let stalls = FakeServer::start(dir.join("stalls.sock"), Fake::StatsOnly);
    let key = data("keys/ES256.private.jwk")
        .to_string_lossy()
        .into_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args([
            "bench",
            "--quiet",
            "--socket",
            &stalls.path.to_string_lossy(),
            "--signing-key",
            &key,
            "--mix",
            "ES256=1",
            "--tokens",
            "100",
            "--revoked",
            "0",
            "--revoke-during",
            "0",
            "--warmup",
            "0",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped answering"), "{err}");
    drop((silent, streaming, stalls));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keygen_writes_secrets_private_atomically_and_never_through_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("keygen-modes");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let path = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let keygen = |alg: &str, outs: &[&str]| {
        let args = [&["keygen", "--alg", alg, "--kid", "k"][..], outs].concat();
        jwtd(&args, None)
    };
    // An HMAC key's "public" JWKS is the secret: 0600 like the private one.
    let (hs, hs_public) = (path("hs.jwk"), path("hs.jwks"));
    let out = keygen("HS256", &["--private-out", &hs, "--public-out", &hs_public]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&dir.join("hs.jwk")), 0o600);
    assert_eq!(mode(&dir.join("hs.jwks")), 0o600);
    // An existing, world-readable file is replaced by a private one, not written in place.
    std::fs::write(dir.join("old.jwk"), b"old").unwrap();
    std::fs::set_permissions(dir.join("old.jwk"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (old, es_public) = (path("old.jwk"), path("es.jwks"));
    let out = keygen(
        "ES256",
        &["--private-out", &old, "--public-out", &es_public],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&dir.join("old.jwk")), 0o600);
    let written = std::fs::read_to_string(dir.join("old.jwk")).unwrap();
    assert!(written.contains("\"d\""), "{written}");
    assert_eq!(
        mode(&dir.join("es.jwks")),
        0o644,
        "a public key set is public"
    );
    // A symlink is refused, and its target is untouched.
    std::fs::write(dir.join("target"), b"precious").unwrap();
    std::os::unix::fs::symlink(dir.join("target"), dir.join("link.jwk")).unwrap();
    let out = keygen("HS256", &["--private-out", &path("link.jwk")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));
    assert_eq!(std::fs::read(dir.join("target")).unwrap(), b"precious");
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `jwtd serve` (HS256 test keys) on `dir/jwtd.sock` under a wrapper command (`setpriv …`,
/// `prlimit …`), with its stderr piped, and waits for the socket.
fn start_wrapped(dir: &Path, wrapper: &[&str], extra: &[&str]) -> Daemon {
    let socket = dir.join("jwtd.sock");
    let child = std::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(env!("CARGO_BIN_EXE_jwtd"))
        .args(["serve", "--keys"])
        .arg(data("keys/HS256.public.jwks"))
        .arg("--socket")
        .arg(&socket)
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        socket,
        dir: dir.to_path_buf(),
    };
    wait_for(&d.socket);
    d
}

#[test]
fn nobody_is_never_an_admin() {
    let dir = temp_dir("nobody-flag");
    let (code, err) = serve_refused(&dir.join("x.sock"), &["--admin-uid", "65534"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("overflow uid"), "{err}");
    // A daemon really running as nobody: a nobody peer is refused admin commands, root is still an admin.
    let is_root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !is_root || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("*** part of nobody_is_never_an_admin SKIPPED: needs root and setpriv ***");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    const AS_NOBODY: [&str; 5] = [
        "/usr/bin/setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    let d = start_wrapped(&dir, &AS_NOBODY, &["--socket-mode", "666"]);
    let socket = d.socket.clone();
    let as_nobody = std::process::Command::new(AS_NOBODY[0])
        .args(&AS_NOBODY[1..])
        .arg(env!("CARGO_BIN_EXE_jwtd"))
        .args(["revoke", "--list", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(as_nobody.status.code(), Some(1), "{as_nobody:?}");
    assert!(String::from_utf8_lossy(&as_nobody.stdout).contains("ERR forbidden"));
    let r = ask(&d.socket, &["RELOAD".into()]);
    assert!(r[0].starts_with("OK "), "root stays an admin: {r:?}");
}

#[test]
fn connections_beyond_the_open_file_limit_are_told_not_left_waiting() {
    if !Path::new("/usr/bin/prlimit").exists() {
        eprintln!(
            "*** connections_beyond_the_open_file_limit SKIPPED: prlimit (util-linux) missing ***"
        );
        return;
    }
    use std::io::{Read, Write};
    let dir = temp_dir("nofile");
    let mut d = start_wrapped(
        &dir,
        &["/usr/bin/prlimit", "--nofile=164:164"],
        &["--max-connections", "4096"],
    );
    let socket = d.socket.clone();
    // 164 descriptors leave room for 100 connections: the 101st and later are told, not left waiting.
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.write_all(b"PING\n").unwrap();
        let mut buf = [0u8; 5];
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"PONG\n");
        held.push(s);
    }
    let mut extra = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    extra
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut out = String::new();
    let _ = extra.read_to_string(&mut out);
    assert!(out.starts_with("ERR too_many_connections"), "{out:?}");
    drop(held);
    signal(d.pid(), "TERM");
    let mut err = String::new();
    d.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("open-file limit") && err.contains("capped_at=100"),
        "{err}"
    );
}
