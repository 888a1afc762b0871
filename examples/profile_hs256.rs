//! A profiling harness: verifies one HS256 token (the bench's shape) in a loop.
//! `cargo run --release --example profile_hs256 -- 1000000` under a profiler.
use jwtd::keys::SourceOptions;
use jwtd::{Alg, KeySet, Limits, Policy, Verifier};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let now = 1_700_000_000u64;
    let secret = b"bench-secret-bench-secret-bench-secret!!";
    let claims = serde_json::json!({
        "iss": "https://issuer.bench.example", "sub": "user-1234567890", "aud": ["api.bench.example"],
        "iat": now, "nbf": now, "exp": now + 86400, "jti": "4f1c2a9e-6b1d-4d1e-9f8a-0c2b3d4e5f60",
        "scope": "read:items write:items admin:none", "email": "someone@example.com", "name": "Some One",
        "tenant": "acme-corp", "roles": ["reader", "writer"]
    })
    .to_string();
    let jwk = serde_json::json!({"kty":"oct","alg":"HS256","k": jwtd::jws::b64::encode(secret)})
        .to_string();
    let signer = jwtd::keys::private::signing_key_from_file(jwk.as_bytes(), None)
        .unwrap()
        .0;
    let token = signer
        .sign_compact(
            br#"{"alg":"HS256","typ":"JWT","kid":"bench"}"#,
            claims.as_bytes(),
        )
        .unwrap();
    let mut keys = KeySet::new();
    keys.add_secret(
        secret,
        &SourceOptions {
            default_alg: Some(Alg::HS256),
            kid: Some("bench".into()),
        },
    )
    .unwrap();
    let policy = Policy {
        issuers: Some(vec!["https://issuer.bench.example".into()]),
        audiences: Some(vec!["api.bench.example".into()]),
        ..Policy::default()
    };
    let v = Verifier::new(keys, policy, Limits::default());
    let start = std::time::Instant::now();
    let mut ok = 0u64;
    for _ in 0..n {
        ok += u64::from(
            v.verify(std::hint::black_box(token.as_bytes()), now)
                .is_ok(),
        );
    }
    assert_eq!(ok, n);
    eprintln!(
        "{:.3} µs per verification",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
