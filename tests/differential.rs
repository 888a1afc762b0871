//! Differential property test against `jsonwebtoken` (aws-lc-rs backend): on generated tokens, for every
//! algorithm both implement, both accept the same valid tokens and reject the same tampered or
//! policy-violating ones.
//!
//! jsonwebtoken reads the system clock, so both run at the real current time. Generated times stay clear
//! of the exact leeway boundary, where the two differ by design: RFC 7519 says a token is valid only
//! *before* `exp`; jsonwebtoken also accepts it at `exp + leeway` exactly.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use jwtd::{Alg, Limits, Policy, Verifier};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Every algorithm both implement: jsonwebtoken has no ES512.
fn algs() -> Vec<Alg> {
    Alg::ALL.into_iter().filter(|&a| a != Alg::ES512).collect()
}

fn their_alg(alg: Alg) -> Algorithm {
    alg.name().parse().unwrap()
}

struct Peer {
    key: DecodingKey,
    validation: Validation,
}

fn peer(alg: Alg) -> Peer {
    let jwks: Value = serde_json::from_str(&public_jwks(alg)).unwrap();
    let jwk: Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let mut validation = Validation::new(their_alg(alg));
    validation.set_audience(&["api"]);
    validation.set_issuer(&["https://issuer.test"]);
    validation.validate_nbf = true;
    validation.leeway = 60;
    Peer {
        key: DecodingKey::from_jwk(&jwk).unwrap(),
        validation,
    }
}

fn ours(alg: Alg) -> Verifier {
    let policy = Policy {
        issuers: Some(vec!["https://issuer.test".into()]),
        audiences: Some(vec!["api".into()]),
        leeway: 60,
        ..Policy::default()
    };
    Verifier::new(key_set(&[alg]), policy, Limits::default())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Offsets from now, away from the ±leeway boundary (where a second ticking between the two calls, or the
/// documented boundary difference, would make the answers differ for reasons other than correctness).
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![-100_000i64..-70, -50i64..50, 70i64..100_000]
}

#[derive(Debug, Clone)]
enum Tamper {
    None,
    FlipBit { pos: usize, bit: u8 },
    SwapSignature,
    Truncate(usize),
    DropSegment(usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        3 => Just(Tamper::None),
        4 => (any::<usize>(), 0u8..8).prop_map(|(pos, bit)| Tamper::FlipBit { pos, bit }),
        1 => Just(Tamper::SwapSignature),
        1 => any::<usize>().prop_map(Tamper::Truncate),
        1 => (0usize..3).prop_map(Tamper::DropSegment),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn same_verdicts_as_jsonwebtoken(
        alg_index in 0usize..12,
        exp in offset(),
        nbf in proptest::option::of(offset()),
        aud in prop_oneof![Just(json!("api")), Just(json!(["x", "api"])), Just(json!("web")), Just(json!(["x"]))],
        iss in prop_oneof![3 => Just("https://issuer.test"), 1 => Just("https://other.test")],
        sub in "[a-zA-Z0-9 _\\-\"\\\\é]{0,24}",
        extra in proptest::collection::btree_map("[a-z]{1,8}", any::<i32>(), 0..6),
        how in tamper(),
    ) {
        let alg = algs()[alg_index];
        let t0 = now();
        let at = |off: i64| (t0 as i64 + off) as u64;
        let mut claims = json!({"iss": iss, "sub": sub, "aud": aud, "exp": at(exp), "iat": t0 - 5});
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(at(nbf));
        }
        for (k, v) in &extra {
            // Keep clear of registered names, whose types the generator does not control.
            if !["iss", "sub", "aud", "exp", "nbf", "iat", "jti"].contains(&k.as_str()) {
                claims[k] = json!(v);
            }
        }
        let token = token_with(alg, json!({}), &claims);
        let token = apply(&token, &how);

        let mine = ours(alg).verify(token.as_bytes(), now());
        let p = peer(alg);
        let theirs = jsonwebtoken::decode::<Value>(&token, &p.key, &p.validation);
        prop_assert_eq!(
            mine.is_ok(),
            theirs.is_ok(),
            "{} {:?}: jwtd {:?} vs jsonwebtoken {:?}\nclaims {}",
            alg, how, mine.as_ref().err(), theirs.as_ref().err(), claims
        );
        if let (Ok(m), Ok(t)) = (&mine, &theirs) {
            let m: Value = serde_json::from_str(m.claims_json()).unwrap();
            prop_assert_eq!(&m, &t.claims);
        }
    }
}

fn apply(token: &str, how: &Tamper) -> String {
    let mut bytes = token.as_bytes().to_vec();
    match *how {
        Tamper::None => {}
        Tamper::FlipBit { pos, bit } => {
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        Tamper::SwapSignature => {
            let other = token_with(Alg::HS256, json!({"kid": "x"}), &json!({"exp": 1}));
            let (input, _) = token.rsplit_once('.').unwrap();
            return format!("{input}.{}", other.rsplit_once('.').unwrap().1);
        }
        Tamper::Truncate(n) => {
            let n = n % bytes.len();
            bytes.truncate(n.max(1));
        }
        Tamper::DropSegment(i) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            parts.remove(i);
            return parts.join(".");
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
