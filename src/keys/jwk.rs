//! JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037): one JWK object into a verification key bound to one alg.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::alg::{Alg, Family};
use crate::crypto::PreparedKey;
use crate::error::KeyError;
use crate::jws::b64;

use super::Key;

/// Loads one JWK object. `default_alg` binds keys whose JWK has no `alg` (never the token's alg).
pub fn load(obj: &Map<String, Value>, default_alg: Option<Alg>) -> Result<Key, KeyError> {
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(KeyError::Refused {
                kid: None,
                why: "kid must be a string".into(),
            });
        }
    };
    let refuse = |why: String| KeyError::Refused {
        kid: kid.clone(),
        why,
    };
    let key = prepare(obj, default_alg).map_err(refuse)?;
    Ok(Key {
        kid: kid.map(Arc::from),
        key: Arc::new(key),
    })
}

fn prepare(obj: &Map<String, Value>, default_alg: Option<Alg>) -> Result<PreparedKey, String> {
    let kty = str_member(obj, "kty")?.ok_or("missing kty")?;
    if let Some(usage) = str_member(obj, "use")?
        && usage != "sig"
    {
        return Err(format!(
            "use is {usage:?}, not \"sig\": not a signature key"
        ));
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops must be an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("key_ops does not include \"verify\"".into());
        }
    }
    let declared =
        match str_member(obj, "alg")? {
            None => None,
            Some(name) => Some(Alg::from_name(name).ok_or_else(|| {
                format!("alg {name:?} is not a supported JWS signature algorithm")
            })?),
        };
    let family = match kty {
        "oct" => Family::Hmac,
        "RSA" => Family::Rsa,
        "EC" => Family::Ecdsa,
        "OKP" => Family::EdDsa,
        other => return Err(format!("unknown kty {other:?}")),
    };
    // The curve fixes the algorithm for EC and OKP keys; RSA and oct need the JWK's alg or a configured default.
    let crv = str_member(obj, "crv")?;
    let implied = match family {
        Family::Ecdsa | Family::EdDsa => {
            let crv = crv.ok_or("missing crv")?;
            let a = Alg::for_curve(crv).ok_or_else(|| format!("unsupported curve {crv:?}"))?;
            if a.family() != family {
                return Err(format!("curve {crv:?} does not belong to kty {kty:?}"));
            }
            Some(a)
        }
        _ => None,
    };
    let alg = match (declared, implied) {
        (Some(d), Some(i)) if d != i => {
            return Err(format!(
                "alg {d} does not match curve {}",
                crv.unwrap_or("?")
            ));
        }
        (Some(d), _) => d,
        (None, Some(i)) => i,
        (None, None) => match default_alg {
            Some(d) if d.family() == family => d,
            Some(d) => {
                return Err(format!(
                    "has no alg and the key set's default alg {d} does not fit kty {kty:?}"
                ));
            }
            None => {
                return Err(format!(
                    "has no alg: configure a default alg for this key set (kty {kty:?})"
                ));
            }
        },
    };
    if alg.family() != family {
        return Err(format!("alg {alg} cannot be used with kty {kty:?}"));
    }
    match family {
        Family::Hmac => PreparedKey::hmac(alg, &bytes(obj, "k")?),
        Family::Rsa => PreparedKey::rsa(alg, &bytes(obj, "n")?, &bytes(obj, "e")?),
        Family::Ecdsa => PreparedKey::ec(alg, &bytes(obj, "x")?, &bytes(obj, "y")?),
        Family::EdDsa => PreparedKey::ed25519(&bytes(obj, "x")?),
    }
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

fn bytes(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = str_member(obj, name)?.ok_or_else(|| format!("missing {name}"))?;
    b64::decode(s.as_bytes()).map_err(|_| format!("{name} is not canonical unpadded base64url"))
}
