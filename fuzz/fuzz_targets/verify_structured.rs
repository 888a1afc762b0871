//! Structured tokens: header and claims JSON built from `arbitrary` values and *signed* with the keys the
//! verifier trusts, so the fuzzer gets past the signature to the header rules and the claims policy.
//!
//! Checked on every input, besides "no panic":
//! - an accepted token satisfies the policy, re-checked here independently of jwtd's claims code (issuer,
//!   audience, exp/nbf/iat with leeway, required claims, alg = the signing key's alg, no `crit`);
//! - an accepted token's validity window (what the cache trusts) contains `now`;
//! - a token whose signature was altered, or whose header names another algorithm than the key's, is
//!   refused.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use jwtd::crypto::sign::SigningKey;
use jwtd::{KeySet, Limits, Policy, Verifier};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};

/// Signing keys (RSA left out: signing takes a millisecond, and RSA verification has its own suites).
const KEYS: &[(&str, &str)] = &[
    (
        include_str!("../../tests/data/keys/HS256.private.jwk"),
        include_str!("../../tests/data/keys/HS256.public.jwks"),
    ),
    (
        include_str!("../../tests/data/keys/HS384.private.jwk"),
        include_str!("../../tests/data/keys/HS384.public.jwks"),
    ),
    (
        include_str!("../../tests/data/keys/ES256.private.jwk"),
        include_str!("../../tests/data/keys/ES256.public.jwks"),
    ),
    (
        include_str!("../../tests/data/keys/EdDSA.private.jwk"),
        include_str!("../../tests/data/keys/EdDSA.public.jwks"),
    ),
];

const NOW: u64 = 1_700_000_000;
const LEEWAY: u64 = 60;
const ISS: &str = "https://issuer.test";
const AUD: &str = "api";

struct Fixture {
    signers: Vec<(SigningKey, String)>,
    verifier: Verifier,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut keys = KeySet::new();
        let mut signers = Vec::new();
        for (private, public) in KEYS {
            let (signer, kid) =
                jwtd::keys::private::signing_key_from_file(private.as_bytes(), None)
                    .expect("fuzz signing key");
            signers.push((signer, kid.expect("test keys have a kid")));
            keys.add_jwks(public.as_bytes(), None)
                .expect("fuzz keys load");
        }
        let policy = Policy {
            leeway: LEEWAY,
            issuers: Some(vec![ISS.into()]),
            audiences: Some(vec![AUD.into()]),
            required_claims: vec!["scope".into()],
            ..Policy::default()
        };
        Fixture {
            signers,
            verifier: Verifier::new(keys, policy, Limits::default()),
        }
    })
}

/// A JSON value, depth-limited by construction (arrays/objects hold only leaves or one more level).
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A time near NOW: offset in seconds.
    Near(i16),
    Str(String),
    Known(Known),
    Arr(Vec<Leaf>),
    Obj(Vec<(Name, Leaf)>),
}

#[derive(Arbitrary, Debug)]
enum Leaf {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Known(Known),
}

/// Strings the policy cares about.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Known {
    Iss,
    Aud,
    OtherAud,
    Jwt,
    AtJwt,
    None,
    Hs256,
    Es256,
}

impl Known {
    fn text(self) -> &'static str {
        match self {
            Known::Iss => ISS,
            Known::Aud => AUD,
            Known::OtherAud => "other-api",
            Known::Jwt => "JWT",
            Known::AtJwt => "at+jwt",
            Known::None => "none",
            Known::Hs256 => "HS256",
            Known::Es256 => "ES256",
        }
    }
}

/// Member names: the registered and header ones, or anything.
#[derive(Arbitrary, Debug)]
enum Name {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
    Scope,
    Typ,
    Cty,
    Crit,
    Kid,
    Alg,
    B64,
    Jwk,
    Other(String),
}

impl Name {
    fn text(&self) -> &str {
        match self {
            Name::Iss => "iss",
            Name::Sub => "sub",
            Name::Aud => "aud",
            Name::Exp => "exp",
            Name::Nbf => "nbf",
            Name::Iat => "iat",
            Name::Jti => "jti",
            Name::Scope => "scope",
            Name::Typ => "typ",
            Name::Cty => "cty",
            Name::Crit => "crit",
            Name::Kid => "kid",
            Name::Alg => "alg",
            Name::B64 => "b64",
            Name::Jwk => "jwk",
            Name::Other(s) => s,
        }
    }
}

impl Leaf {
    fn value(&self) -> Value {
        match self {
            Leaf::Null => Value::Null,
            Leaf::Bool(b) => Value::Bool(*b),
            Leaf::Int(i) => Value::from(*i),
            Leaf::Str(s) => Value::from(s.as_str()),
            Leaf::Known(k) => Value::from(k.text()),
        }
    }
}

impl Json {
    fn value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Near(d) => Value::from(NOW as i64 + i64::from(*d)),
            Json::Str(s) => Value::from(s.as_str()),
            Json::Known(k) => Value::from(k.text()),
            Json::Arr(items) => Value::Array(items.iter().map(Leaf::value).collect()),
            Json::Obj(members) => Value::Object(
                members
                    .iter()
                    .map(|(n, v)| (n.text().to_string(), v.value()))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Which key signs.
    key: u8,
    /// The header's alg: the key's own, or another name.
    alg: Option<Known>,
    /// The header's kid: the key's own (default), none, or another string.
    kid: Option<Option<String>>,
    header: Vec<(Name, Json)>,
    /// Start from a valid claim set (iss, aud, exp, scope) or from nothing.
    base_claims: bool,
    claims: Vec<(Name, Json)>,
    /// Verify at NOW plus this many seconds.
    skew: i16,
    /// Flip a bit of the signature: (position, bit).
    tamper: Option<(u16, u8)>,
}

fn object(members: &[(Name, Json)], base: Map<String, Value>) -> Map<String, Value> {
    let mut m = base;
    for (n, v) in members {
        m.insert(n.text().to_string(), v.value());
    }
    m
}

fn num(v: Option<&Value>) -> Option<f64> {
    v?.as_f64()
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let (signer, kid) = &f.signers[input.key as usize % f.signers.len()];
    let key_alg = signer.alg().to_string();
    let mut header = Map::new();
    header.insert(
        "alg".into(),
        match input.alg {
            Some(k) => Value::from(k.text()),
            None => Value::from(key_alg.as_str()),
        },
    );
    match &input.kid {
        None => {
            header.insert("kid".into(), Value::from(kid.as_str()));
        }
        Some(Some(other)) => {
            header.insert("kid".into(), Value::from(other.as_str()));
        }
        Some(None) => {}
    }
    let header = object(&input.header, header);
    let mut base = Map::new();
    if input.base_claims {
        base.insert("iss".into(), Value::from(ISS));
        base.insert("aud".into(), Value::from(AUD));
        base.insert("exp".into(), Value::from(NOW + 3600));
        base.insert("scope".into(), Value::from("read"));
    }
    let claims = object(&input.claims, base);
    let (h, c) = (
        serde_json::to_vec(&header).expect("header serializes"),
        serde_json::to_vec(&claims).expect("claims serialize"),
    );
    let Ok(mut token) = signer.sign_compact(&h, &c) else {
        return;
    };
    let mut tampered = false;
    if let Some((pos, bit)) = input.tamper {
        let sig = token.rfind('.').expect("compact token") + 1;
        let len = token.len() - sig;
        if len > 0 {
            let at = sig + pos as usize % len;
            let old = token.as_bytes()[at];
            // Another base64url character: decoding still works, the signature bits change (the last
            // character's low bits may be padding, so skip it).
            const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let new =
                B64[(B64.iter().position(|&b| b == old).unwrap_or(0) + 1 + bit as usize % 63) % 64];
            if at + 1 < token.len() && new != old {
                token.replace_range(at..at + 1, &(new as char).to_string());
                tampered = true;
            }
        }
    }
    let now = (NOW as i64 + i64::from(input.skew)) as u64;
    let Ok(v) = f.verifier.verify(token.as_bytes(), now) else {
        return;
    };
    // Accepted: every rule must hold, checked here from the JSON we signed.
    assert!(!tampered, "a tampered signature verified: {token}");
    assert_eq!(v.alg().to_string(), key_alg, "alg confusion: {header:?}");
    assert_eq!(
        header.get("alg").and_then(Value::as_str),
        Some(key_alg.as_str())
    );
    assert!(!header.contains_key("crit"), "crit accepted: {header:?}");
    assert_eq!(
        claims.get("iss").and_then(Value::as_str),
        Some(ISS),
        "{claims:?}"
    );
    let aud_ok = match claims.get("aud") {
        Some(Value::String(s)) => s == AUD,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(AUD)),
        _ => false,
    };
    assert!(aud_ok, "audience: {claims:?}");
    assert!(claims.contains_key("scope"), "required claim: {claims:?}");
    let exp = num(claims.get("exp")).expect("exp is required and numeric");
    assert!(
        (now as f64) < exp + LEEWAY as f64,
        "expired: now {now}, {claims:?}"
    );
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("numeric nbf");
        assert!(
            nbf <= (now + LEEWAY) as f64,
            "not yet valid: now {now}, {claims:?}"
        );
    }
    if let Some(iat) = claims.get("iat") {
        let iat = iat.as_f64().expect("numeric iat");
        assert!(
            iat <= (now + LEEWAY) as f64,
            "issued in the future: now {now}, {claims:?}"
        );
    }
    // The claims jwtd reports are exactly the (already compact) bytes signed.
    assert_eq!(
        v.claims_json().as_bytes(),
        &c[..],
        "reported claims differ from the signed ones"
    );
    let (start, until) = f.verifier.window(&v, now);
    assert!(
        start <= now && now < until,
        "window [{start}, {until}) misses now {now}"
    );
});
