//! `jwtd demo`: the verifier on an embedded default — a generated key set, sample tokens for every outcome
//! users meet (valid tokens and the classic attacks), and a short throughput run.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use jwtd::crypto::sign::{Private, SigningKey};
use jwtd::{Alg, KeySet, Limits, Policy, Verifier};
use serde_json::json;

use super::{reply_line, unix_now};

#[derive(Args, Debug)]
pub(super) struct DemoArgs {
    /// Verifications per algorithm in the throughput run (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    iterations: u32,
}

struct DemoKey {
    kid: &'static str,
    signer: SigningKey,
    private: Private,
}

fn key(alg: Alg, kid: &'static str) -> Result<DemoKey, String> {
    let (signer, private) = SigningKey::generate(alg)?;
    Ok(DemoKey {
        kid,
        signer,
        private,
    })
}

fn token(
    k: &DemoKey,
    header: serde_json::Value,
    claims: serde_json::Value,
) -> Result<String, String> {
    let mut h = header;
    h["alg"] = json!(k.signer.alg().name());
    h["kid"] = json!(k.kid);
    k.signer
        .sign_compact(h.to_string().as_bytes(), claims.to_string().as_bytes())
}

pub(super) fn run(args: DemoArgs) -> Result<ExitCode, String> {
    let now = unix_now();
    let es = key(Alg::ES256, "demo-es256")?;
    let ed = key(Alg::EdDSA, "demo-eddsa")?;
    let hs = key(Alg::HS256, "demo-hs256")?;
    let attacker = key(Alg::ES256, "demo-es256")?;

    // The verifier's key set: public halves only for the asymmetric keys, each bound to its algorithm.
    let mut keys = KeySet::new();
    for k in [&es, &ed, &hs] {
        let public = jwtd::keys::private::public_jwk(k.signer.alg(), Some(k.kid), &k.private);
        let report = keys
            .add_jwks(public.to_string().as_bytes(), None)
            .map_err(|e| e.to_string())?;
        if report.loaded != 1 {
            return Err(format!(
                "demo key {} did not load: {:?}",
                k.kid, report.refused
            ));
        }
    }
    let policy = Policy {
        issuers: Some(vec!["https://issuer.demo".into()]),
        audiences: Some(vec!["demo-api".into()]),
        ..Policy::default()
    };
    let verifier = Verifier::new(keys, policy, Limits::default());

    let claims = |aud: &str, exp: u64| json!({"iss":"https://issuer.demo","sub":"user-42","aud":aud,"iat":now,"exp":exp,"scope":"read:demo"});
    let typ = json!({"typ":"JWT"});
    let good = claims("demo-api", now + 300);
    let es_ok = token(&es, typ.clone(), good.clone())?;
    let mut samples: Vec<(&str, String)> = vec![
        ("ES256, valid", es_ok.clone()),
        ("EdDSA, valid", token(&ed, typ.clone(), good.clone())?),
        ("HS256, valid", token(&hs, typ.clone(), good.clone())?),
        (
            "ES256, expired an hour ago",
            token(&es, typ.clone(), claims("demo-api", now - 3600))?,
        ),
        (
            "ES256, for another audience",
            token(&es, typ.clone(), claims("other-api", now + 300))?,
        ),
        (
            "ES256, signed by an attacker's key with our kid",
            token(&attacker, typ.clone(), good.clone())?,
        ),
        (
            "ES256, crit header",
            token(&es, json!({"crit":["exp"]}), good.clone())?,
        ),
    ];
    // Payload swapped after signing.
    let parts: Vec<&str> = es_ok.split('.').collect();
    let forged_payload =
        jwtd::jws::b64::encode(claims("demo-api", now + 999_999).to_string().as_bytes());
    samples.push((
        "ES256, payload altered",
        format!("{}.{}.{}", parts[0], forged_payload, parts[2]),
    ));
    // alg none, and HMAC "signed" with the ES256 public key (the classic key-confusion attack).
    let none_header = jwtd::jws::b64::encode(br#"{"alg":"none","typ":"JWT"}"#);
    samples.push(("alg none", format!("{none_header}.{}.", parts[1])));
    if let Private::Ec { x, y, .. } = &es.private {
        let mut public = vec![4u8];
        public.extend_from_slice(x);
        public.extend_from_slice(y);
        let confused = SigningKey::new(Alg::HS256, &Private::Hmac(public))?;
        let h = json!({"alg":"HS256","kid":"demo-es256","typ":"JWT"}).to_string();
        samples.push((
            "HS256 keyed with our ES256 public key",
            confused.sign_compact(h.as_bytes(), good.to_string().as_bytes())?,
        ));
    }
    samples.push((
        "JWE (5 segments)",
        "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d".into(),
    ));

    println!(
        "jwtd demo: a generated key set (ES256, EdDSA, HS256), iss https://issuer.demo, aud demo-api\n"
    );
    for (label, t) in &samples {
        let line = reply_line(
            verifier
                .verify(t.as_bytes(), now)
                .map(|v| v.claims_json().to_owned()),
        );
        println!("{label:<48} {line}");
    }

    if args.iterations > 0 {
        println!(
            "\nthroughput, one thread, {} verifications each:",
            args.iterations
        );
        for (label, t) in samples.iter().take(3) {
            let start = Instant::now();
            let mut ok = 0u32;
            for _ in 0..args.iterations {
                ok += u32::from(verifier.verify(t.as_bytes(), now).is_ok());
            }
            let secs = start.elapsed().as_secs_f64();
            if ok != args.iterations {
                return Err(format!("{label}: {ok} of {} verified", args.iterations));
            }
            println!(
                "  {:<6} {:>10.0} tokens/s  ({:.2} µs each)",
                label.split(',').next().unwrap_or(label),
                f64::from(args.iterations) / secs,
                secs * 1e6 / f64::from(args.iterations)
            );
        }
    }
    println!(
        "\nnext: jwtd keygen --alg ES256 --kid k1 --private-out k1.jwk --public-out jwks.json, then \
         jwtd sign --key k1.jwk … and jwtd verify --keys jwks.json … (README.md, \"CLI\")."
    );
    Ok(ExitCode::SUCCESS)
}
