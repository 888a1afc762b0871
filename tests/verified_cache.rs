//! The verified-token cache of a real `jwtd serve`: hits, turning it off, expiry and reloads.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::daemon::*;
use common::*;
use jwtd::Alg;

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
    let out = http(&d.socket, &verify_request(Some(&t)));
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
