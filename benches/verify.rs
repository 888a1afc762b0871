//! Full verification per algorithm, side by side on identical tokens (about 300 bytes of claims; iss and
//! aud validated): jwtd, jsonwebtoken 11 (aws-lc-rs backend), jwt-simple (pure Rust), and the floors — the
//! bare signature check on pre-decoded input with ring (parsing its key per call, as ring must for
//! RSA/EC) and with aws-lc-rs (pre-parsed key).
//!
//! `cargo bench --bench verify` measures jwtd on ring; `cargo bench --bench verify --features aws-lc`
//! measures it on aws-lc-rs. Ids: `verify/<ALG>/<implementation>`.

use std::collections::HashSet;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jwt_simple::prelude::{
    self as js, ECDSAP256PublicKeyLike as _, ECDSAP384PublicKeyLike as _, EdDSAPublicKeyLike as _,
    MACLike as _, RSAPublicKeyLike as _,
};
use jwtd::keys::SourceOptions;
use jwtd::keys::pem::{self, PublicKey};
use jwtd::keys::private::signing_key_from_file;
use jwtd::{Alg, KeySet, Limits, Policy, Verifier};
use serde::Deserialize;
use serde_json::json;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

const HMAC_SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret!!";

/// (alg, private key file, public key file) — PEM so that every peer reads the same key.
const CASES: &[(Alg, &str, &str)] = &[
    (Alg::HS256, "", ""),
    (Alg::RS256, "pem/rsa.key.pem", "pem/rsa.pub.pem"),
    (Alg::PS256, "pem/rsa.key.pem", "pem/rsa.pub.pem"),
    (Alg::ES256, "pem/p256.key.pem", "pem/p256.pub.pem"),
    (Alg::ES384, "pem/p384.key.pem", "pem/p384.pub.pem"),
    (Alg::EdDSA, "pem/ed25519.key.pem", "pem/ed25519.pub.pem"),
];

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a service typically deserializes with jsonwebtoken.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: u64,
    iat: u64,
    scope: String,
}

fn claims(now: u64) -> String {
    json!({
        "iss": "https://issuer.bench.example",
        "sub": "user-1234567890",
        "aud": ["api.bench.example"],
        "iat": now,
        "nbf": now,
        "exp": now + 365 * 86400,
        "jti": "4f1c2a9e-6b1d-4d1e-9f8a-0c2b3d4e5f60",
        "scope": "read:items write:items admin:none",
        "email": "someone@example.com",
        "name": "Some One",
        "tenant": "acme-corp",
        "roles": ["reader", "writer"]
    })
    .to_string()
}

fn bench_verify(c: &mut Criterion) {
    let now = now();
    let claims = claims(now);
    for &(alg, private, public) in CASES {
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": "bench"}).to_string();
        let (signer, public_pem) = if alg == Alg::HS256 {
            let jwk = json!({"kty":"oct","alg":"HS256","k": jwtd::jws::b64::encode(HMAC_SECRET)})
                .to_string();
            (
                signing_key_from_file(jwk.as_bytes(), None).unwrap().0,
                String::new(),
            )
        } else {
            let rsa = (alg.family() == jwtd::alg::Family::Rsa).then_some(alg);
            let key = signing_key_from_file(&std::fs::read(data(private)).unwrap(), rsa)
                .unwrap()
                .0;
            (key, std::fs::read_to_string(data(public)).unwrap())
        };
        let token = signer
            .sign_compact(header.as_bytes(), claims.as_bytes())
            .unwrap();

        // jwtd
        let mut keys = KeySet::new();
        let opts = SourceOptions {
            default_alg: Some(alg),
            kid: Some("bench".into()),
        };
        if alg == Alg::HS256 {
            keys.add_secret(HMAC_SECRET, &opts).unwrap();
        } else {
            assert_eq!(keys.add_pem(&public_pem, &opts).unwrap().loaded, 1);
        }
        let policy = Policy {
            issuers: Some(vec!["https://issuer.bench.example".into()]),
            audiences: Some(vec!["api.bench.example".into()]),
            ..Policy::default()
        };
        let jwtd = Verifier::new(keys, policy, Limits::default());
        assert!(jwtd.verify(token.as_bytes(), now).is_ok());

        // jsonwebtoken
        let jt_key = match alg {
            Alg::HS256 => jsonwebtoken::DecodingKey::from_secret(HMAC_SECRET),
            Alg::RS256 | Alg::PS256 => {
                jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap()
            }
            Alg::ES256 | Alg::ES384 => {
                jsonwebtoken::DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap()
            }
            _ => jsonwebtoken::DecodingKey::from_ed_pem(public_pem.as_bytes()).unwrap(),
        };
        let mut jt_val = jsonwebtoken::Validation::new(alg.name().parse().unwrap());
        jt_val.set_issuer(&["https://issuer.bench.example"]);
        jt_val.set_audience(&["api.bench.example"]);
        jt_val.validate_nbf = true;
        assert!(jsonwebtoken::decode::<Claims>(&token, &jt_key, &jt_val).is_ok());

        // jwt-simple
        let js_opts = js::VerificationOptions {
            allowed_issuers: Some(HashSet::from(["https://issuer.bench.example".to_string()])),
            allowed_audiences: Some(HashSet::from(["api.bench.example".to_string()])),
            ..Default::default()
        };
        // Each jwt-simple key type is its own type with the same verify_token method.
        macro_rules! js_verifier {
            ($key:expr) => {{
                let (k, o) = ($key, js_opts.clone());
                Box::new(move |t: &str| {
                    k.verify_token::<js::NoCustomClaims>(t, Some(o.clone()))
                        .is_ok()
                }) as Box<dyn Fn(&str) -> bool>
            }};
        }
        let js_verify = match alg {
            Alg::HS256 => js_verifier!(js::HS256Key::from_bytes(HMAC_SECRET)),
            Alg::RS256 => js_verifier!(js::RS256PublicKey::from_pem(&public_pem).unwrap()),
            Alg::PS256 => js_verifier!(js::PS256PublicKey::from_pem(&public_pem).unwrap()),
            Alg::ES256 => js_verifier!(js::ES256PublicKey::from_pem(&public_pem).unwrap()),
            Alg::ES384 => js_verifier!(js::ES384PublicKey::from_pem(&public_pem).unwrap()),
            _ => js_verifier!(js::Ed25519PublicKey::from_pem(&public_pem).unwrap()),
        };
        assert!(js_verify(&token), "jwt-simple {alg}");

        // Floors: signature only, on pre-decoded input.
        let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
        let sig = jwtd::jws::b64::decode(sig_b64.as_bytes()).unwrap();
        let material = if alg == Alg::HS256 {
            None
        } else {
            let blocks = pem::blocks(&public_pem).unwrap();
            Some(pem::parse_block(&blocks[0].0, &blocks[0].1).unwrap())
        };
        let ring_floor = floor_ring(alg, material.clone());
        let aws_floor = floor_aws(alg, material);
        assert!(ring_floor(signing_input.as_bytes(), &sig));
        assert!(aws_floor(signing_input.as_bytes(), &sig));

        let mut g = c.benchmark_group(format!("verify/{alg}"));
        g.measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .sample_size(50);
        let backend = if cfg!(feature = "aws-lc") {
            "jwtd-aws-lc"
        } else {
            "jwtd"
        };
        g.bench_function(backend, |b| {
            b.iter(|| black_box(jwtd.verify(black_box(token.as_bytes()), now).is_ok()))
        });
        g.bench_function("jsonwebtoken", |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<Claims>(black_box(&token), &jt_key, &jt_val).is_ok(),
                )
            })
        });
        g.bench_function("jwt-simple", |b| {
            b.iter(|| black_box(js_verify(black_box(&token))))
        });
        g.bench_function("floor-ring", |b| {
            b.iter(|| {
                black_box(ring_floor(
                    black_box(signing_input.as_bytes()),
                    black_box(&sig),
                ))
            })
        });
        g.bench_function("floor-aws-lc", |b| {
            b.iter(|| {
                black_box(aws_floor(
                    black_box(signing_input.as_bytes()),
                    black_box(&sig),
                ))
            })
        });
        g.finish();
    }
}

type Floor = Box<dyn Fn(&[u8], &[u8]) -> bool>;

fn floor_ring(alg: Alg, material: Option<PublicKey>) -> Floor {
    use ring::{hmac, signature as s};
    match (alg, material) {
        (Alg::HS256, _) => {
            let k = hmac::Key::new(hmac::HMAC_SHA256, HMAC_SECRET);
            Box::new(move |m, sig| hmac::verify(&k, m, sig).is_ok())
        }
        (_, Some(PublicKey::Rsa { n, e })) => {
            let params = if alg == Alg::RS256 {
                &s::RSA_PKCS1_2048_8192_SHA256
            } else {
                &s::RSA_PSS_2048_8192_SHA256
            };
            Box::new(move |m, sig| {
                s::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(params, m, sig)
                    .is_ok()
            })
        }
        (_, Some(PublicKey::Ec { point, .. })) => {
            let a: &'static dyn s::VerificationAlgorithm = if alg == Alg::ES256 {
                &s::ECDSA_P256_SHA256_FIXED
            } else {
                &s::ECDSA_P384_SHA384_FIXED
            };
            Box::new(move |m, sig| s::UnparsedPublicKey::new(a, &point).verify(m, sig).is_ok())
        }
        (_, Some(PublicKey::Ed25519(x))) => Box::new(move |m, sig| {
            s::UnparsedPublicKey::new(&s::ED25519, &x)
                .verify(m, sig)
                .is_ok()
        }),
        _ => unreachable!(),
    }
}

fn floor_aws(alg: Alg, material: Option<PublicKey>) -> Floor {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::{hmac, signature as s};
    match (alg, material) {
        (Alg::HS256, _) => {
            let k = hmac::Key::new(hmac::HMAC_SHA256, HMAC_SECRET);
            Box::new(move |m, sig| hmac::verify(&k, m, sig).is_ok())
        }
        (_, Some(PublicKey::Rsa { n, e })) => {
            let v: &'static dyn s::VerificationAlgorithm = if alg == Alg::RS256 {
                &s::RSA_PKCS1_2048_8192_SHA256
            } else {
                &s::RSA_PSS_2048_8192_SHA256
            };
            let der = s::RsaPublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .as_der()
            .unwrap();
            let k = s::ParsedPublicKey::new(v, der.as_ref()).unwrap();
            Box::new(move |m, sig| k.verify_sig(m, sig).is_ok())
        }
        (_, Some(PublicKey::Ec { point, .. })) => {
            let v: &'static dyn s::VerificationAlgorithm = if alg == Alg::ES256 {
                &s::ECDSA_P256_SHA256_FIXED
            } else {
                &s::ECDSA_P384_SHA384_FIXED
            };
            let k = s::ParsedPublicKey::new(v, &point).unwrap();
            Box::new(move |m, sig| k.verify_sig(m, sig).is_ok())
        }
        (_, Some(PublicKey::Ed25519(x))) => {
            let k = s::ParsedPublicKey::new(&s::ED25519, &x).unwrap();
            Box::new(move |m, sig| k.verify_sig(m, sig).is_ok())
        }
        _ => unreachable!(),
    }
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
