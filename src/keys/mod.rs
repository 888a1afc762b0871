//! Key sets: JWK / JWKS / PEM / raw HMAC secrets loaded into verification keys, each bound to one
//! algorithm and checked at load. A key the library cannot use is reported by kid and skipped; the rest of
//! its set still loads.

pub mod file;
pub mod jwk;
pub mod pem;
pub mod private;
pub mod roca;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::alg::{Alg, Family};
use crate::crypto::PreparedKey;
use crate::error::{Error, KeyError};
use crate::json;

/// One verification key and the `kid` it answers to (`None`: answers to tokens whose `kid` names no key).
/// Cheap to clone: the prepared key is shared (a key set built from file keys plus fetched keys reuses both).
#[derive(Debug, Clone)]
pub struct Key {
    pub kid: Option<Arc<str>>,
    pub key: Arc<PreparedKey>,
}

impl Key {
    pub fn alg(&self) -> Alg {
        self.key.alg()
    }
}

/// The keys a verifier trusts.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: Vec<Key>,
    /// kids that also named a refused key in the same document: which key the issuer meant is unknowable,
    /// so tokens naming them are refused as ambiguous.
    shadowed: Vec<Arc<str>>,
}

/// What a load did: keys added, keys refused (with the reason, by kid), and notes worth logging.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: usize,
    pub refused: Vec<KeyError>,
    pub warnings: Vec<String>,
}

/// Where a key set's keys come from and how keys without `alg` are bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// Binds keys that carry no `alg` (JWKS keys without `alg`, PEM RSA keys, raw HMAC secrets).
    pub default_alg: Option<Alg>,
    /// The `kid` given to PEM keys and raw secrets (which cannot carry one).
    pub kid: Option<String>,
}

impl KeySet {
    pub fn new() -> KeySet {
        KeySet::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Keeps only the keys for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&Key) -> bool) {
        self.keys.retain(keep);
    }

    /// Adds one prepared key.
    pub fn push(&mut self, key: Key) {
        self.keys.push(key);
    }

    /// Adds every key of `other` (shared, not copied), and its ambiguous kids.
    pub fn extend(&mut self, other: &KeySet) {
        self.keys.extend(other.keys.iter().cloned());
        self.shadowed.extend(other.shadowed.iter().cloned());
    }

    /// Reads a file holding a JWK, a JWKS or PEM public keys (told apart by content).
    pub fn add_file(&mut self, path: &Path, opts: &SourceOptions) -> Result<LoadReport, KeyError> {
        let bytes = file::read_regular(path).map_err(KeyError::Io)?;
        self.add_document(&bytes, opts).map_err(|e| match e {
            KeyError::NotKeys => KeyError::NotKeys,
            e => KeyError::Format(format!("{}: {e}", path.display())),
        })
    }

    /// Adds the keys of a JWK, JWKS or PEM document.
    pub fn add_document(
        &mut self,
        bytes: &[u8],
        opts: &SourceOptions,
    ) -> Result<LoadReport, KeyError> {
        let text = bytes.trim_ascii_start();
        if text.starts_with(b"{") {
            self.add_jwks(bytes, opts.default_alg)
        } else if text.starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| KeyError::Format("PEM is not UTF-8".into()))?;
            self.add_pem(text, opts)
        } else {
            Err(KeyError::NotKeys)
        }
    }

    /// Adds a raw HMAC secret (the bytes as given, no decoding) bound to `opts.default_alg`.
    pub fn add_secret(
        &mut self,
        secret: &[u8],
        opts: &SourceOptions,
    ) -> Result<LoadReport, KeyError> {
        let alg = opts
            .default_alg
            .filter(|a| a.family() == Family::Hmac)
            .ok_or_else(|| {
                KeyError::Format("an HMAC secret needs an HS256/HS384/HS512 alg".into())
            })?;
        let key = PreparedKey::hmac(alg, secret).map_err(|why| KeyError::Refused {
            kid: opts.kid.clone(),
            why,
        })?;
        self.keys.push(Key {
            kid: opts.kid.as_deref().map(Arc::from),
            key: Arc::new(key),
        });
        Ok(LoadReport {
            loaded: 1,
            ..LoadReport::default()
        })
    }

    /// Adds a JWK (`{"kty":…}`) or JWK Set (`{"keys":[…]}`). Refused keys are reported, not fatal; a document
    /// that is not JSON, has duplicate members or has no usable shape is an error.
    pub fn add_jwks(
        &mut self,
        bytes: &[u8],
        default_alg: Option<Alg>,
    ) -> Result<LoadReport, KeyError> {
        json::validate(bytes, 16, "JWKS").map_err(|e| KeyError::Format(e.to_string()))?;
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| KeyError::Format(format!("JWKS: {e}")))?;
        let objs: Vec<&serde_json::Map<String, Value>> = match &doc {
            Value::Object(o) if o.contains_key("keys") => match &o["keys"] {
                Value::Array(a) => a
                    .iter()
                    .map(|k| {
                        k.as_object().ok_or_else(|| {
                            KeyError::Format("JWKS: keys[] holds a non-object".into())
                        })
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(KeyError::Format("JWKS: keys must be an array".into())),
            },
            Value::Object(o) if o.contains_key("kty") => vec![o],
            _ => {
                return Err(KeyError::Format(
                    "neither a JWK (kty) nor a JWK Set (keys)".into(),
                ));
            }
        };
        let mut report = LoadReport::default();
        // A published JWKS must not carry secrets, and a set that mixes secrets with public keys is how
        // key-confusion bugs start: in a mixed set, the symmetric keys are refused.
        let has_public = objs
            .iter()
            .any(|o| o.get("kty").and_then(Value::as_str) != Some("oct"));
        for obj in objs {
            if has_public && obj.get("kty").and_then(Value::as_str) == Some("oct") {
                report.refused.push(KeyError::Refused {
                    kid: obj.get("kid").and_then(Value::as_str).map(str::to_owned),
                    why: "symmetric key in a key set that also holds public keys: refused".into(),
                });
                continue;
            }
            match jwk::load(obj, default_alg) {
                Ok(key) => {
                    self.note_duplicate(&key, &mut report);
                    self.keys.push(key);
                    report.loaded += 1;
                }
                Err(e) => report.refused.push(e),
            }
        }
        for refused in &report.refused {
            if let KeyError::Refused { kid: Some(kid), .. } = refused
                && self
                    .keys
                    .iter()
                    .any(|k| k.kid.as_deref() == Some(kid.as_str()))
            {
                report.warnings.push(format!(
                    "kid {kid:?} also names a refused key: tokens with that kid will be refused as ambiguous"
                ));
                self.shadowed.push(Arc::from(kid.as_str()));
            }
        }
        Ok(report)
    }

    /// Adds every public key in a PEM document. RSA keys need `opts.default_alg`; EC and Ed25519 keys take
    /// their algorithm from the curve.
    pub fn add_pem(&mut self, text: &str, opts: &SourceOptions) -> Result<LoadReport, KeyError> {
        let blocks = pem::blocks(text).map_err(KeyError::Format)?;
        if blocks.is_empty() {
            return Err(KeyError::Format("no PEM block found".into()));
        }
        let mut report = LoadReport::default();
        for (label, der) in blocks {
            let refuse = |why: String| KeyError::Refused {
                kid: opts.kid.clone(),
                why,
            };
            let prepared = pem::parse_block(&label, &der).and_then(|pk| match pk {
                pem::PublicKey::Rsa { n, e } => match opts.default_alg {
                    Some(a) if a.family() == Family::Rsa => PreparedKey::rsa(a, &n, &e),
                    Some(a) => Err(format!("RSA key cannot be used with {a}")),
                    None => {
                        Err("RSA PEM key needs an alg (RS256, PS256, …) for its key set".into())
                    }
                },
                pem::PublicKey::Ec { crv, point } => {
                    let a = Alg::for_curve(crv).ok_or("unsupported curve")?;
                    if let Some(d) = opts.default_alg
                        && d != a
                    {
                        return Err(format!("{crv} key cannot be used with {d}"));
                    }
                    let half = (point.len() - 1) / 2;
                    PreparedKey::ec(a, &point[1..1 + half], &point[1 + half..])
                }
                pem::PublicKey::Ed25519(x) => {
                    if let Some(d) = opts.default_alg
                        && d != Alg::EdDSA
                    {
                        return Err(format!("Ed25519 key cannot be used with {d}"));
                    }
                    PreparedKey::ed25519(&x)
                }
            });
            match prepared {
                Ok(key) => {
                    let key = Key {
                        kid: opts.kid.as_deref().map(Arc::from),
                        key: Arc::new(key),
                    };
                    self.note_duplicate(&key, &mut report);
                    self.keys.push(key);
                    report.loaded += 1;
                }
                Err(why) => report.refused.push(refuse(why)),
            }
        }
        Ok(report)
    }

    fn note_duplicate(&self, key: &Key, report: &mut LoadReport) {
        if let Some(kid) = &key.kid
            && self
                .keys
                .iter()
                .any(|k| k.kid.as_ref() == Some(kid) && k.alg() == key.alg())
        {
            report.warnings.push(format!(
                "kid {kid:?} names more than one {} key: tokens with that kid will be refused as ambiguous",
                key.alg()
            ));
        }
    }

    /// Chooses the key for a token's `alg` and `kid`. The token's alg must equal the key's bound alg.
    ///
    /// With a `kid`: the keys with that kid; if none, the keys without a kid. Without a `kid`: every key.
    /// Among those, exactly one must be bound to `alg`.
    pub fn select(&self, alg: Alg, kid: Option<&str>) -> Result<&Key, Error> {
        if let Some(kid) = kid
            && self.shadowed.iter().any(|s| &**s == kid)
        {
            return Err(Error::AmbiguousKey(format!(
                "kid {kid} also names a key that was refused"
            )));
        }
        let named = |k: &&Key| match kid {
            Some(want) => k.kid.as_deref() == Some(want),
            None => true,
        };
        let by_kid = self.keys.iter().filter(named).count();
        let pool = |k: &&Key| {
            if by_kid > 0 {
                named(k)
            } else {
                k.kid.is_none()
            }
        };
        let mut found: Option<&Key> = None;
        let mut other_alg: Option<Alg> = None;
        let mut matches = 0usize;
        for k in self.keys.iter().filter(pool) {
            if k.alg() == alg {
                matches += 1;
                found.get_or_insert(k);
            } else {
                other_alg.get_or_insert(k.alg());
            }
        }
        match (matches, found) {
            (1, Some(k)) => Ok(k),
            (0, _) => match (kid, other_alg) {
                (Some(_), Some(key_alg)) => Err(Error::AlgMismatch {
                    token: alg.name().to_string(),
                    key: key_alg.name().to_string(),
                }),
                (Some(kid), None) => Err(Error::UnknownKey(format!("kid {kid}"))),
                (None, _) => Err(Error::AlgNotAllowed(alg.name().to_string())),
            },
            (n, _) => Err(Error::AmbiguousKey(match kid {
                Some(kid) => format!("{n} {alg} keys share kid {kid}"),
                None => format!("token has no kid and {n} {alg} keys fit"),
            })),
        }
    }
}
