//! The `jwtd` binary as users run it: verify from arguments and from stdin, exit codes, keygen → sign →
//! verify, the demo.

mod common;

use std::process::Output;

use common::*;
use jwtd::Alg;

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Asserts exit status 0, showing `what` and the command's stderr otherwise.
fn succeeded(o: &Output, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn path(rel: &str) -> String {
    data(rel).to_string_lossy().into_owned()
}

const NOW_ARG: &str = "1700000000";

#[test]
fn verify_one_token_prints_ok_and_exits_zero() {
    let t = token(Alg::ES256);
    let keys = path("keys/ES256.public.jwks");
    let out = jwtd(
        &[
            "verify",
            "--keys",
            &keys,
            "--iss",
            "https://issuer.test",
            "--aud",
            "api",
            "--now",
            NOW_ARG,
            &t,
        ],
        None,
    );
    succeeded(&out, "");
    let line = stdout(&out);
    assert!(line.starts_with("OK {"), "{line}");
    assert_eq!(line.lines().count(), 1);
    let claims: serde_json::Value =
        serde_json::from_str(line.trim_end().strip_prefix("OK ").unwrap()).unwrap();
    assert_eq!(claims, common::claims());
}

#[test]
fn stdin_gets_exactly_one_line_per_token_in_order() {
    let good = token(Alg::HS256);
    let expired = token_with(Alg::HS256, serde_json::json!({}), &{
        let mut c = common::claims();
        c["exp"] = serde_json::json!(1);
        c
    });
    let huge = "A".repeat(100_000);
    let input = format!("{good}\n{expired}\r\n\n{huge}\nnot-a-token\n{good}");
    let keys = path("keys/HS256.public.jwks");
    let out = jwtd(
        &["verify", "--keys", &keys, "--aud", "api", "--now", NOW_ARG],
        Some(input.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with("OK "));
    assert!(lines[1].starts_with("ERR expired "));
    assert!(lines[2].starts_with("ERR malformed "));
    assert!(lines[3].starts_with("ERR too_large "));
    assert!(lines[4].starts_with("ERR malformed "));
    assert!(
        lines[5].starts_with("OK "),
        "last line without newline still counts"
    );
}

#[test]
fn jws_mode_prints_the_payload_as_base64url() {
    let keys = path("keys/EdDSA.public.jwks");
    let key = signer(Alg::EdDSA);
    let t = raw_token(
        &key,
        r#"{"alg":"EdDSA","kid":"test-EdDSA"}"#,
        "not JSON at all",
    );
    let out = jwtd(&["verify", "--jws", "--keys", &keys, &t], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).trim_end(),
        format!("OK {}", b64(b"not JSON at all"))
    );
    // Without --jws the same token is refused: its payload is not a claims object.
    let out = jwtd(&["verify", "--keys", &keys, &t], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("ERR bad_json "));
}

#[test]
fn usage_and_key_errors_exit_two() {
    let t = token(Alg::HS256);
    let out = jwtd(&["verify", &t], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no verification key: give --keys") && err.contains("serve --dev"),
        "{err}"
    );
    // Keys without "alg" (as identity providers publish them): the error names the fix.
    let dir = std::env::temp_dir().join(format!("jwtd-cli-noalg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("keys/RS256.public.jwks")).unwrap())
            .unwrap();
    for k in jwks["keys"].as_array_mut().unwrap() {
        k.as_object_mut().unwrap().remove("alg");
    }
    let noalg = dir.join("noalg.jwks");
    std::fs::write(&noalg, jwks.to_string()).unwrap();
    let out = jwtd(&["verify", "--keys", noalg.to_str().unwrap(), &t], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("carry no \"alg\"") && err.contains("--alg RS256"),
        "{err}"
    );
    let out = jwtd(
        &[
            "verify",
            "--keys",
            noalg.to_str().unwrap(),
            "--alg",
            "RS256",
            &t,
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "loads with --alg (the HS256 token is then refused)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let out = jwtd(&["verify", "--keys", "/nonexistent/keys.json", &t], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/keys.json"));
    let out = jwtd(&["verify", "--keys", &path("pem/rsa.pub.pem"), &t], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "RSA PEM without --alg leaves no key"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs an alg"));
    let out = jwtd(&["verify", "--alg", "none", "--keys", "x", &t], None);
    assert_eq!(out.status.code(), Some(2));
    let out = jwtd(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keygen_sign_verify_for_every_algorithm() {
    let dir = std::env::temp_dir().join(format!("jwtd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for alg in Alg::ALL {
        let private = dir.join(format!("{alg}.jwk"));
        let public = dir.join(format!("{alg}.jwks"));
        let out = jwtd(
            &[
                "keygen",
                "--alg",
                alg.name(),
                "--kid",
                "k1",
                "--private-out",
                private.to_str().unwrap(),
                "--public-out",
                public.to_str().unwrap(),
            ],
            None,
        );
        succeeded(&out, alg.name());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let claims = r#"{"sub":"u1","exp":1700000600,"aud":"api"}"#;
        let out = jwtd(
            &[
                "sign",
                "--key",
                private.to_str().unwrap(),
                "--claims",
                claims,
            ],
            None,
        );
        succeeded(&out, alg.name());
        let token = stdout(&out).trim_end().to_string();
        let out = jwtd(
            &[
                "verify",
                "--keys",
                public.to_str().unwrap(),
                "--aud",
                "api",
                "--now",
                NOW_ARG,
                &token,
            ],
            None,
        );
        assert_eq!(stdout(&out).trim_end(), format!("OK {claims}"), "{alg}");
    }
    // keygen with no file options prints the private JWK then the public JWKS.
    let out = jwtd(&["keygen", "--alg", "ES256", "--kid", "k2"], None);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let private: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let public: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert!(private["d"].is_string());
    assert!(public["keys"][0]["d"].is_null());
    assert_eq!(public["keys"][0]["kid"], "k2");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn demo_shows_every_outcome() {
    let out = jwtd(&["demo", "--iterations", "10"], None);
    succeeded(&out, "");
    let text = stdout(&out);
    for expect in [
        "OK {",
        "ERR expired",
        "ERR wrong_audience",
        "ERR bad_signature",
        "ERR crit_unsupported",
        "ERR alg_not_allowed",
        "ERR alg_mismatch",
        "ERR unsupported_jwe",
    ] {
        assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
    }
    assert_eq!(text.matches(" OK {").count(), 3, "{text}");
}

#[test]
fn limits_are_configurable_from_the_command_line() {
    let keys = path("keys/HS256.public.jwks");
    let mut c = common::claims();
    c["nested"] = serde_json::json!([[[["deep"]]]]);
    let t = token_with(Alg::HS256, serde_json::json!({}), &c);
    let run = |extra: &[&str]| {
        let mut args = vec!["verify", "--keys", &keys, "--aud", "api", "--now", NOW_ARG];
        args.extend_from_slice(extra);
        args.push(&t);
        stdout(&jwtd(&args, None))
    };
    assert!(run(&[]).starts_with("OK "));
    assert!(run(&["--max-json-depth", "4"]).starts_with("ERR too_deep "));
    assert!(run(&["--max-token-len", "100"]).starts_with("ERR too_large "));
}
