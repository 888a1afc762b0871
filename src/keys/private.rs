//! Private JWKs for `jwtd sign` and `jwtd keygen`: reading one into a [`SigningKey`], writing one (and its
//! public half) out.

use serde_json::{Map, Value, json};

use crate::alg::{Alg, Family};
use crate::crypto::sign::{Private, SigningKey};
use crate::jws::b64;

/// Why a private key could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateKeyError {
    /// Nothing in the key says which algorithm it signs with (an RSA PEM, a JWK without `alg`): the caller
    /// must give one.
    NeedsAlg(String),
    /// Not a private key jwtd can sign with.
    Invalid(String),
}

impl std::fmt::Display for PrivateKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivateKeyError::NeedsAlg(why) => {
                write!(f, "{why}: the algorithm must be given with the key")
            }
            PrivateKeyError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for PrivateKeyError {}

impl From<String> for PrivateKeyError {
    fn from(why: String) -> PrivateKeyError {
        PrivateKeyError::Invalid(why)
    }
}

impl From<&str> for PrivateKeyError {
    fn from(why: &str) -> PrivateKeyError {
        PrivateKeyError::Invalid(why.to_string())
    }
}

/// Reads a private key file: a private JWK, or a PKCS#8 PEM (`PRIVATE KEY`). A PEM key needs `default_alg`
/// unless it is EC P-256/P-384 or Ed25519, which are tried in turn.
pub fn signing_key_from_file(
    bytes: &[u8],
    default_alg: Option<Alg>,
) -> Result<(SigningKey, Option<String>), PrivateKeyError> {
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return signing_key_from_jwk(bytes, default_alg);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "PEM is not UTF-8")?;
    let blocks = super::pem::blocks(text)?;
    let [(label, der)] = blocks.as_slice() else {
        return Err(format!("expected exactly one PEM block, found {}", blocks.len()).into());
    };
    if label != "PRIVATE KEY" {
        return Err(format!(
            "PEM block {label:?}: a PKCS#8 \"PRIVATE KEY\" is needed (openssl pkcs8 -topk8 -nocrypt)"
        )
        .into());
    }
    let candidates: Vec<Alg> = match default_alg {
        Some(a) => vec![a],
        None => vec![Alg::ES256, Alg::ES384, Alg::EdDSA],
    };
    let mut last = String::from("no algorithm fits");
    for alg in candidates {
        match SigningKey::from_pkcs8(alg, der) {
            Ok(k) => return Ok((k, None)),
            Err(e) => last = e,
        }
    }
    Err(if default_alg.is_none() {
        PrivateKeyError::NeedsAlg(format!(
            "{last} (and an RSA key does not say its algorithm)"
        ))
    } else {
        PrivateKeyError::Invalid(last)
    })
}

/// Reads a private JWK. Its `alg` (or `default_alg`, or the curve) fixes the signing algorithm.
pub fn signing_key_from_jwk(
    bytes: &[u8],
    default_alg: Option<Alg>,
) -> Result<(SigningKey, Option<String>), PrivateKeyError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("private JWK is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("private JWK must be a JSON object")?;
    let get = |name: &str| -> Result<Vec<u8>, String> {
        let s = obj
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("private JWK has no {name}"))?;
        b64::decode(s.as_bytes()).map_err(|_| format!("private JWK member {name} is not base64url"))
    };
    let kty = obj
        .get("kty")
        .and_then(Value::as_str)
        .ok_or("private JWK has no kty")?;
    let declared = match obj.get("alg").and_then(Value::as_str) {
        Some(a) => Some(a.parse::<Alg>()?),
        None => None,
    };
    let by_curve = obj
        .get("crv")
        .and_then(Value::as_str)
        .and_then(Alg::for_curve);
    let alg = declared
        .or(by_curve)
        .or(default_alg)
        .ok_or_else(|| PrivateKeyError::NeedsAlg("private JWK has no alg".into()))?;
    let private = match (kty, alg.family()) {
        ("oct", Family::Hmac) => Private::Hmac(get("k")?),
        ("RSA", Family::Rsa) => Private::Rsa {
            n: get("n")?,
            e: get("e")?,
            d: get("d")?,
            p: get("p")?,
            q: get("q")?,
            dp: get("dp")?,
            dq: get("dq")?,
            qi: get("qi")?,
        },
        ("EC", Family::Ecdsa) => Private::Ec {
            d: get("d")?,
            x: get("x")?,
            y: get("y")?,
        },
        ("OKP", Family::EdDsa) => Private::Ed25519 {
            d: get("d")?,
            x: get("x")?,
        },
        _ => return Err(format!("kty {kty:?} cannot sign with {alg}").into()),
    };
    let kid = obj.get("kid").and_then(Value::as_str).map(str::to_owned);
    Ok((SigningKey::new(alg, &private)?, kid))
}

/// The private JWK for `private`, bound to `alg`.
pub fn private_jwk(alg: Alg, kid: Option<&str>, private: &Private) -> Value {
    let e = |b: &[u8]| Value::String(b64::encode(b));
    let mut m = Map::new();
    match private {
        Private::Hmac(k) => {
            m.insert("kty".into(), json!("oct"));
            m.insert("k".into(), e(k));
        }
        Private::Rsa {
            n,
            e: ex,
            d,
            p,
            q,
            dp,
            dq,
            qi,
        } => {
            m.insert("kty".into(), json!("RSA"));
            for (name, v) in [
                ("n", n),
                ("e", ex),
                ("d", d),
                ("p", p),
                ("q", q),
                ("dp", dp),
                ("dq", dq),
                ("qi", qi),
            ] {
                m.insert(name.into(), e(v));
            }
        }
        Private::Ec { d, x, y } => {
            m.insert("kty".into(), json!("EC"));
            m.insert("crv".into(), json!(alg.curve()));
            m.insert("x".into(), e(x));
            m.insert("y".into(), e(y));
            m.insert("d".into(), e(d));
        }
        Private::Ed25519 { d, x } => {
            m.insert("kty".into(), json!("OKP"));
            m.insert("crv".into(), json!("Ed25519"));
            m.insert("x".into(), e(x));
            m.insert("d".into(), e(d));
        }
    }
    finish(m, alg, kid)
}

/// The public JWK for `private` (for HMAC, necessarily the secret itself).
pub fn public_jwk(alg: Alg, kid: Option<&str>, private: &Private) -> Value {
    let mut v = private_jwk(alg, kid, private);
    if let Some(m) = v.as_object_mut()
        && !matches!(private, Private::Hmac(_))
    {
        for secret in ["d", "p", "q", "dp", "dq", "qi"] {
            m.remove(secret);
        }
    }
    v
}

fn finish(mut m: Map<String, Value>, alg: Alg, kid: Option<&str>) -> Value {
    m.insert("alg".into(), json!(alg.name()));
    m.insert("use".into(), json!("sig"));
    if let Some(kid) = kid {
        m.insert("kid".into(), json!(kid));
    }
    Value::Object(m)
}
