//! Revocation through a real `jwtd serve`: both protocols, admin gating, the CLI, durability across kill -9.

mod common;

use common::daemon::*;
use common::*;
use jwtd::Alg;

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
    assert!(http(&d.socket, &verify_request(Some(&t))).contains("error_description=\"revoked\""));
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
