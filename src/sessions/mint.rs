//! Access tokens (RFC 9068 profile): header `typ: at+jwt` with the issuing key's `kid`; claims `iss`, `sub`,
//! `aud`, `client_id`, `scope`, `iat`, `exp`, `jti`, `sid`, then the family's extra claims.

use serde_json::{Map, Value, json};

use super::View;
use crate::crypto::sign::SigningKey;

/// The issuing key and what every access token it signs says.
pub struct Minter {
    key: SigningKey,
    header: Vec<u8>,
    iss: String,
    lifetime: u64,
    kid: String,
    public_jwk: Value,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("alg", &self.key.alg().name())
            .field("kid", &self.kid)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

/// Claims an issue request's `claims` may not set: jwtd sets them (or they would change what the token
/// means to the verifier).
pub const RESERVED: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "client_id",
    "scope",
    "scp",
    "cnf",
];

impl Minter {
    /// Reads the issuing key: a private JWK (`jwtd keygen --private-out`), any algorithm jwtd signs. Its
    /// public half (without the private members; an `oct` key is its own) is what verifiers trust; a key
    /// without `kid` gets one from the SHA-256 of that public half.
    pub fn from_jwk(bytes: &[u8], iss: String, lifetime: u64) -> Result<Minter, String> {
        let (key, kid) = crate::keys::private::signing_key_from_jwk(bytes, None)
            .map_err(|e| format!("issuing key: {e}"))?;
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("issuing key: {e}"))?;
        let mut public = v
            .as_object()
            .cloned()
            .ok_or("issuing key: not a JSON object")?;
        let oct = public.get("kty").and_then(Value::as_str) == Some("oct");
        if !oct {
            for secret in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
                public.remove(secret);
            }
        }
        public.insert("alg".into(), json!(key.alg().name()));
        public.insert("use".into(), json!("sig"));
        public.remove("key_ops");
        let kid = match kid {
            Some(k) => k,
            None => {
                let canonical = serde_json::to_vec(&Value::Object(public.clone()))
                    .map_err(|e| e.to_string())?;
                crate::crypto::hex(&crate::crypto::sha256(&canonical)[..8])
            }
        };
        public.insert("kid".into(), json!(kid));
        let header =
            serde_json::to_vec(&json!({"alg": key.alg().name(), "typ": "at+jwt", "kid": kid}))
                .map_err(|e| e.to_string())?;
        Ok(Minter {
            key,
            header,
            iss,
            lifetime,
            kid,
            public_jwk: Value::Object(public),
        })
    }

    /// The key verifiers trust (a JWK: public, or the secret of an HMAC key).
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// A signature over `message` (to tell whether a key already trusted under this kid is this key).
    pub fn signature(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.key.sign(message)
    }

    /// Whether a signature takes a millisecond or more (RSA, and ES512 in software).
    pub fn expensive(&self) -> bool {
        matches!(self.key.alg().family(), crate::alg::Family::Rsa)
            || self.key.alg() == crate::alg::Alg::ES512
    }

    /// Seconds an access token lives.
    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }

    /// A signed access token of family `view`, issued at `now`.
    pub fn mint(&self, view: &View, now: u64) -> Result<String, String> {
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.iss));
        claims.insert("sub".into(), json!(view.sub));
        claims.insert("aud".into(), json!(view.aud));
        if let Some(c) = &view.client_id {
            claims.insert("client_id".into(), json!(c));
        }
        if !view.scope.is_empty() {
            claims.insert("scope".into(), json!(view.scope));
        }
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now.saturating_add(self.lifetime)));
        claims.insert("jti".into(), json!(super::token::new_jti()?));
        claims.insert("sid".into(), json!(view.sid));
        if let Some(extra) = &view.claims
            && let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(extra)
        {
            for (k, v) in extra {
                if !RESERVED.contains(&k.as_str()) {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        let payload = serde_json::to_vec(&Value::Object(claims)).map_err(|e| e.to_string())?;
        self.key.sign_compact(&self.header, &payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::Alg;

    fn minter(alg: Alg) -> Minter {
        let (_, private) = SigningKey::generate(alg).unwrap();
        let jwk = crate::keys::private::private_jwk(alg, None, &private);
        Minter::from_jwk(
            &serde_json::to_vec(&jwk).unwrap(),
            "https://s.example".into(),
            600,
        )
        .unwrap()
    }

    #[test]
    fn access_tokens_follow_rfc_9068_and_verify_with_the_public_half() {
        for alg in [Alg::ES256, Alg::EdDSA, Alg::HS256] {
            let m = minter(alg);
            assert!(m.public_jwk().get("d").is_none() || alg == Alg::HS256);
            let view = View {
                sid: "s1".into(),
                sub: "alice".into(),
                client_id: Some("app".into()),
                scope: "read".into(),
                aud: "api".into(),
                claims: Some(r#"{"role":"admin","sub":"mallory","exp":1}"#.into()),
            };
            let token = m.mint(&view, 1_000).unwrap();
            let mut set = crate::keys::KeySet::new();
            set.add_document(
                &serde_json::to_vec(m.public_jwk()).unwrap(),
                &crate::keys::SourceOptions::default(),
            )
            .unwrap();
            let policy = crate::Policy {
                issuers: Some(vec!["https://s.example".into()]),
                audiences: Some(vec!["api".into()]),
                ..crate::Policy::default()
            };
            let v = crate::verify::Verifier::new(set, policy, Default::default());
            let ok = v.verify(token.as_bytes(), 1_001).unwrap();
            assert_eq!(ok.sub(), Some("alice"));
            assert_eq!(ok.sid(), Some("s1"));
            let claims: Value = serde_json::from_str(ok.claims_json()).unwrap();
            assert_eq!(claims["role"], "admin");
            assert_eq!(claims["exp"], 1_600, "extra claims never override ours");
            assert_eq!(claims["client_id"], "app");
            let header: Value = serde_json::from_slice(
                &crate::jws::b64::decode(token.split('.').next().unwrap().as_bytes()).unwrap(),
            )
            .unwrap();
            assert_eq!(header["typ"], "at+jwt");
            assert_eq!(header["kid"], m.kid());
        }
    }
}
