//! Arbitrary bytes as a token, through full verification and the JWS-only path, against a key set holding
//! every algorithm. Must never panic, hang or allocate without bound.
#![no_main]

use std::sync::OnceLock;

use jwtd::{KeySet, Limits, Policy, Verifier};
use libfuzzer_sys::fuzz_target;

const KEYS: &[&str] = &[
    include_str!("../../tests/data/keys/HS256.public.jwks"),
    include_str!("../../tests/data/keys/RS256.public.jwks"),
    include_str!("../../tests/data/keys/PS384.public.jwks"),
    include_str!("../../tests/data/keys/ES256.public.jwks"),
    include_str!("../../tests/data/keys/ES512.public.jwks"),
    include_str!("../../tests/data/keys/EdDSA.public.jwks"),
];

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let mut keys = KeySet::new();
        for k in KEYS {
            keys.add_jwks(k.as_bytes(), None).expect("fuzz keys load");
        }
        let policy = Policy {
            issuers: Some(vec!["https://issuer.test".into()]),
            audiences: Some(vec!["api".into()]),
            required_claims: vec!["scope".into()],
            ..Policy::default()
        };
        Verifier::new(keys, policy, Limits::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let v = verifier();
    if let Ok(ok) = v.verify(data, 1_700_000_000) {
        // A token the fuzzer cannot sign must never verify; reaching here means a forged signature.
        panic!("fuzzer forged a token: {}", ok.claims_json());
    }
    let _ = v.verify_jws(data);
});
