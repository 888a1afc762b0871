//! Signing and key generation, for `jwtd sign` / `jwtd keygen`, tests, demos and benchmarks.
//! The verifier never uses this module.

// Signing always uses ring (whatever the verification backend): it is off the hot path.
use crate::alg::{Alg, Family};
use ring::{self as backend, hmac, rand, signature};

/// Private key material in JWK terms (RFC 7518 §6), big-endian bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum Private {
    Hmac(Vec<u8>),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        d: Vec<u8>,
        p: Vec<u8>,
        q: Vec<u8>,
        dp: Vec<u8>,
        dq: Vec<u8>,
        qi: Vec<u8>,
    },
    Ec {
        d: Vec<u8>,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Ed25519 {
        d: Vec<u8>,
        x: Vec<u8>,
    },
}

impl std::fmt::Debug for Private {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Private(..)")
    }
}

/// A key that signs with exactly one algorithm.
pub struct SigningKey {
    alg: Alg,
    inner: Inner,
}

enum Inner {
    Hmac(hmac::Key),
    Rsa(signature::RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
    P521(Box<p521::ecdsa::SigningKey>),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.alg)
    }
}

fn random(n: usize) -> Result<Vec<u8>, String> {
    use rand::SecureRandom as _;
    let mut b = vec![0u8; n];
    rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "system random generator failed".to_string())?;
    Ok(b)
}

impl SigningKey {
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Builds a signing key from private material.
    pub fn new(alg: Alg, private: &Private) -> Result<SigningKey, String> {
        let rng = rand::SystemRandom::new();
        let inner = match (alg.family(), private) {
            (Family::Hmac, Private::Hmac(k)) => {
                // Keep the verifier's rule on the signing side too: no short secrets.
                super::PreparedKey::hmac(alg, k)?;
                let h = match alg {
                    Alg::HS256 => hmac::HMAC_SHA256,
                    Alg::HS384 => hmac::HMAC_SHA384,
                    _ => hmac::HMAC_SHA512,
                };
                Inner::Hmac(hmac::Key::new(h, k))
            }
            (
                Family::Rsa,
                Private::Rsa {
                    n,
                    e,
                    d,
                    p,
                    q,
                    dp,
                    dq,
                    qi,
                },
            ) => {
                let comps = backend::rsa::KeyPairComponents {
                    public_key: backend::rsa::PublicKeyComponents { n, e },
                    d,
                    p,
                    q,
                    dP: dp,
                    dQ: dq,
                    qInv: qi,
                };
                let pair = signature::RsaKeyPair::from_components(&comps)
                    .map_err(|e| format!("RSA private key rejected: {e}"))?;
                Inner::Rsa(pair, rsa_encoding(alg))
            }
            (Family::Ecdsa, Private::Ec { d, x, y }) => {
                let mut point = vec![4u8];
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                match alg {
                    Alg::ES512 => {
                        let k = p521::ecdsa::SigningKey::from_slice(d)
                            .map_err(|_| "P-521 private key rejected".to_string())?;
                        Inner::P521(Box::new(k))
                    }
                    _ => {
                        let a = if alg == Alg::ES256 {
                            &signature::ECDSA_P256_SHA256_FIXED_SIGNING
                        } else {
                            &signature::ECDSA_P384_SHA384_FIXED_SIGNING
                        };
                        let pair = signature::EcdsaKeyPair::from_private_key_and_public_key(
                            a, d, &point, &rng,
                        )
                        .map_err(|e| format!("EC private key rejected: {e}"))?;
                        Inner::Ecdsa(pair)
                    }
                }
            }
            (Family::EdDsa, Private::Ed25519 { d, x }) => {
                let pair = signature::Ed25519KeyPair::from_seed_and_public_key(d, x)
                    .map_err(|e| format!("Ed25519 private key rejected: {e}"))?;
                Inner::Ed25519(pair)
            }
            _ => return Err(format!("key material does not fit {alg}")),
        };
        Ok(SigningKey { alg, inner })
    }

    /// Builds a signing key from a PKCS#8 private key (DER). ES512 is not available this way.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<SigningKey, String> {
        let rng = rand::SystemRandom::new();
        let reject = |e: backend::error::KeyRejected| format!("PKCS#8 key rejected for {alg}: {e}");
        let inner = match alg {
            Alg::HS256 | Alg::HS384 | Alg::HS512 => {
                return Err("HMAC secrets are not PKCS#8 keys".into());
            }
            Alg::ES512 => return Err("ES512 keys are read from JWK only".into()),
            Alg::ES256 => Inner::Ecdsa(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &rng,
                )
                .map_err(reject)?,
            ),
            Alg::ES384 => Inner::Ecdsa(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    der,
                    &rng,
                )
                .map_err(reject)?,
            ),
            Alg::EdDSA => Inner::Ed25519(
                signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(reject)?,
            ),
            _ => Inner::Rsa(
                signature::RsaKeyPair::from_pkcs8(der).map_err(reject)?,
                rsa_encoding(alg),
            ),
        };
        Ok(SigningKey { alg, inner })
    }

    /// Generates a fresh key for `alg` (RSA: 2048 bits).
    pub fn generate(alg: Alg) -> Result<(SigningKey, Private), String> {
        let private = match alg.family() {
            Family::Hmac => Private::Hmac(random(alg.size())?),
            Family::EdDsa => {
                let d = random(32)?;
                let pair = signature::Ed25519KeyPair::from_seed_unchecked(&d)
                    .map_err(|e| format!("Ed25519 generation failed: {e}"))?;
                use signature::KeyPair as _;
                let x = pair.public_key().as_ref().to_vec();
                Private::Ed25519 { d, x }
            }
            Family::Ecdsa => generate_ec(alg)?,
            Family::Rsa => generate_rsa()?,
        };
        let key = SigningKey::new(alg, &private)?;
        Ok((key, private))
    }

    /// Signs `message`, returning the JWS signature bytes (ECDSA: fixed-width R||S).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = rand::SystemRandom::new();
        Ok(match &self.inner {
            Inner::Hmac(k) => hmac::sign(k, message).as_ref().to_vec(),
            Inner::Rsa(pair, enc) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(*enc, &rng, message, &mut sig)
                    .map_err(|_| "RSA signing failed".to_string())?;
                sig
            }
            Inner::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map_err(|_| "ECDSA signing failed".to_string())?
                .as_ref()
                .to_vec(),
            Inner::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Inner::P521(k) => {
                use p521::ecdsa::signature::Signer as _;
                let s: p521::ecdsa::Signature = k.sign(message);
                s.to_bytes().to_vec()
            }
        })
    }

    /// A compact JWS over the given header and payload bytes.
    pub fn sign_compact(&self, header_json: &[u8], payload: &[u8]) -> Result<String, String> {
        let mut out = crate::jws::b64::encode(header_json);
        out.push('.');
        out.push_str(&crate::jws::b64::encode(payload));
        let sig = self.sign(out.as_bytes())?;
        out.push('.');
        out.push_str(&crate::jws::b64::encode(&sig));
        Ok(out)
    }
}

fn rsa_encoding(alg: Alg) -> &'static dyn signature::RsaEncoding {
    match alg {
        Alg::RS256 => &signature::RSA_PKCS1_SHA256,
        Alg::RS384 => &signature::RSA_PKCS1_SHA384,
        Alg::RS512 => &signature::RSA_PKCS1_SHA512,
        Alg::PS256 => &signature::RSA_PSS_SHA256,
        Alg::PS384 => &signature::RSA_PSS_SHA384,
        _ => &signature::RSA_PSS_SHA512,
    }
}

fn generate_ec(alg: Alg) -> Result<Private, String> {
    // Draw scalars until one is in [1, n-1]; for P-521 only the low bit of the top byte may be set.
    for _ in 0..64 {
        let mut d = random(alg.size())?;
        if alg == Alg::ES512 {
            d[0] &= 1;
        }
        let point: Option<Box<[u8]>> = match alg {
            Alg::ES256 => p256::SecretKey::from_slice(&d)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes()),
            Alg::ES384 => p384::SecretKey::from_slice(&d)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes()),
            _ => p521::SecretKey::from_slice(&d)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes()),
        };
        if let Some(point) = point {
            let size = alg.size();
            if point.len() == 1 + 2 * size {
                return Ok(Private::Ec {
                    d,
                    x: point[1..1 + size].to_vec(),
                    y: point[1 + size..].to_vec(),
                });
            }
        }
    }
    Err("EC key generation failed".into())
}

fn generate_rsa() -> Result<Private, String> {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    let mut rng = getrandom::SysRng;
    let key =
        rsa::PrivateKey::new(&mut rng, 2048).map_err(|e| format!("RSA generation failed: {e}"))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|e| format!("RSA encoding failed: {e}"))?;
    // RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dP, dQ, qInv } (RFC 8017 A.1.2)
    use der::Decode as _;
    let k = pkcs1::RsaPrivateKeyRef::from_der(der.as_bytes())
        .map_err(|e| format!("RSA encoding failed: {e}"))?;
    let int = |u: der::asn1::UintRef<'_>| u.as_bytes().to_vec();
    Ok(Private::Rsa {
        n: int(k.modulus),
        e: int(k.public_exponent),
        d: int(k.private_exponent),
        p: int(k.prime1),
        q: int(k.prime2),
        dp: int(k.exponent1),
        dq: int(k.exponent2),
        qi: int(k.coefficient),
    })
}
