//! Helpers shared by the integration tests: committed test keys (`data/keys/`), signing, verifiers.
#![allow(dead_code)]

pub mod daemon;
pub mod docs;
pub mod idp;
pub mod process;

use std::path::PathBuf;

use jwtd::crypto::sign::SigningKey;
use jwtd::keys::private::signing_key_from_file;
use jwtd::{Alg, KeySet, Limits, Policy, Verifier};
use serde_json::{Value, json};

/// The fixed "now" of every test (2023-11-14T22:13:20Z).
pub const NOW: u64 = 1_700_000_000;

pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// The committed private test key for `alg` (kid `test-<ALG>`).
pub fn signer(alg: Alg) -> SigningKey {
    let bytes = std::fs::read(data(&format!("keys/{alg}.private.jwk"))).unwrap();
    signing_key_from_file(&bytes, None).unwrap().0
}

/// The committed public JWKS for `alg`, as text.
pub fn public_jwks(alg: Alg) -> String {
    std::fs::read_to_string(data(&format!("keys/{alg}.public.jwks"))).unwrap()
}

/// A key set with the public test key of every listed algorithm.
pub fn key_set(algs: &[Alg]) -> KeySet {
    let mut keys = KeySet::new();
    for &alg in algs {
        let r = keys.add_jwks(public_jwks(alg).as_bytes(), None).unwrap();
        assert_eq!(r.loaded, 1, "{alg}: {:?}", r.refused);
    }
    keys
}

pub fn verifier(algs: &[Alg], policy: Policy) -> Verifier {
    Verifier::new(key_set(algs), policy, Limits::default())
}

/// The policy most tests use: issuer and audience checked.
pub fn policy() -> Policy {
    Policy {
        issuers: Some(vec!["https://issuer.test".into()]),
        audiences: Some(vec!["api".into()]),
        ..Policy::default()
    }
}

/// Claims that pass [`policy`] at [`NOW`], about 300 bytes like a real access token.
pub fn claims() -> Value {
    json!({
        "iss": "https://issuer.test",
        "sub": "user-1234567890",
        "aud": ["api", "other"],
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 600,
        "jti": "4f1c2a9e-6b1d-4d1e-9f8a-0c2b3d4e5f60",
        "scope": "read:items write:items",
        "email": "someone@example.com",
        "roles": ["reader", "writer"],
        "tenant": "acme-corp"
    })
}

/// [`claims`] moved to be valid at the real clock (for tests of the daemon, which reads its own clock).
pub fn live_claims() -> Value {
    let mut c = claims();
    for (k, v) in [
        ("iat", 1_700_000_000u64),
        ("nbf", 1_700_000_000),
        ("exp", 4_102_444_800),
    ] {
        c[k] = json!(v);
    }
    c
}

/// Signs `claims` with the test key of `alg`, with header `{"alg","typ":"JWT","kid"}` plus `extra`.
pub fn token_with(alg: Alg, extra: Value, claims: &Value) -> String {
    let mut h = json!({"alg": alg.name(), "typ": "JWT", "kid": format!("test-{alg}")});
    if let (Some(h), Some(extra)) = (h.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                h.remove(k);
            } else {
                h.insert(k.clone(), v.clone());
            }
        }
    }
    signer(alg)
        .sign_compact(h.to_string().as_bytes(), claims.to_string().as_bytes())
        .unwrap()
}

pub fn token(alg: Alg) -> String {
    token_with(alg, json!({}), &claims())
}

/// A compact token from raw header and payload bytes, signed with `key`.
pub fn raw_token(key: &SigningKey, header: &str, payload: &str) -> String {
    key.sign_compact(header.as_bytes(), payload.as_bytes())
        .unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    jwtd::jws::b64::encode(bytes)
}

/// Runs the `jwtd` binary with `args`, feeding it `stdin` (if any), and returns what it did.
pub fn jwtd(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        let bytes = bytes.to_vec();
        // Write from a thread so a large input cannot deadlock against a full stdout pipe.
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut input, &bytes);
        });
    } else {
        drop(input);
    }
    child.wait_with_output().unwrap()
}
