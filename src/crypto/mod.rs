//! The only door to the signature backends: an algorithm plus checked key material becomes a
//! [`PreparedKey`], parsed and validated once at load time, then used for every verification.
//!
//! Backends: `ring` by default; `aws-lc-rs` with the `aws-lc` feature (it keeps parsed RSA/EC keys, so it
//! skips ring's per-call key parsing); RustCrypto `p521` for ES512 under ring, which lacks P-521.

pub mod sign;

use crate::alg::{Alg, Family};

#[cfg(feature = "aws-lc")]
use aws_lc_rs as backend;
#[cfg(not(feature = "aws-lc"))]
use ring as backend;

use backend::{hmac, signature};

/// A signature did not verify. Deliberately opaque: the reason is never an oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// A verification key bound to exactly one algorithm, ready to check signatures.
pub struct PreparedKey {
    alg: Alg,
    inner: Inner,
}

enum Inner {
    Hmac(Box<hmac::Key>),
    #[cfg(not(feature = "aws-lc"))]
    Rsa {
        params: &'static signature::RsaParameters,
        n: Box<[u8]>,
        e: Box<[u8]>,
    },
    #[cfg(not(feature = "aws-lc"))]
    Public {
        alg: &'static dyn signature::VerificationAlgorithm,
        bytes: Box<[u8]>,
    },
    #[cfg(feature = "aws-lc")]
    Parsed(signature::ParsedPublicKey),
    #[cfg(not(feature = "aws-lc"))]
    P521(Box<p521::ecdsa::VerifyingKey>),
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (an HMAC key is a secret).
        write!(f, "PreparedKey({})", self.alg)
    }
}

/// RSA moduli jwtd accepts, in bits (RFC 7518 §3.3 requires 2048 at least).
pub const RSA_MIN_BITS: usize = 2048;
pub const RSA_MAX_BITS: usize = 8192;

impl PreparedKey {
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// An HMAC key. Secrets shorter than the hash output are refused (RFC 7518 §3.2).
    pub fn hmac(alg: Alg, secret: &[u8]) -> Result<PreparedKey, String> {
        let h = match alg {
            Alg::HS256 => hmac::HMAC_SHA256,
            Alg::HS384 => hmac::HMAC_SHA384,
            Alg::HS512 => hmac::HMAC_SHA512,
            other => return Err(format!("{other} is not an HMAC algorithm")),
        };
        if secret.len() < alg.size() {
            return Err(format!(
                "HMAC secret is {} bytes; {alg} needs at least {} (RFC 7518 §3.2)",
                secret.len(),
                alg.size()
            ));
        }
        Ok(PreparedKey {
            alg,
            inner: Inner::Hmac(Box::new(hmac::Key::new(h, secret))),
        })
    }

    /// An RSA public key from big-endian modulus and exponent.
    pub fn rsa(alg: Alg, n: &[u8], e: &[u8]) -> Result<PreparedKey, String> {
        if alg.family() != Family::Rsa {
            return Err(format!("{alg} is not an RSA algorithm"));
        }
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = bit_len(n);
        if bits < RSA_MIN_BITS {
            return Err(format!(
                "RSA modulus is {bits} bits; at least {RSA_MIN_BITS} are required"
            ));
        }
        if bits > RSA_MAX_BITS {
            return Err(format!(
                "RSA modulus is {bits} bits; at most {RSA_MAX_BITS} are supported"
            ));
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err("RSA modulus is even".into());
        }
        // The backends accept 3 <= e < 2^33, odd; say so at load time instead of failing every verify.
        let e_val = if e.len() <= 5 {
            e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        } else {
            u64::MAX
        };
        if !(3..(1u64 << 33)).contains(&e_val) || e_val & 1 == 0 {
            return Err("RSA public exponent must be odd, at least 3 and below 2^33".into());
        }
        if crate::keys::roca::is_vulnerable(n) {
            return Err(
                "RSA modulus has the ROCA fingerprint (CVE-2017-15361): the key is weak".into(),
            );
        }
        Self::rsa_backend(alg, n, e)
    }

    /// The verification parameters of an RS*/PS* algorithm (2048 to 8192-bit moduli), the same names in both
    /// backends.
    fn rsa_params(alg: Alg) -> &'static signature::RsaParameters {
        match alg {
            Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            _ => &signature::RSA_PSS_2048_8192_SHA512,
        }
    }

    #[cfg(not(feature = "aws-lc"))]
    fn rsa_backend(alg: Alg, n: &[u8], e: &[u8]) -> Result<PreparedKey, String> {
        let params = Self::rsa_params(alg);
        Ok(PreparedKey {
            alg,
            inner: Inner::Rsa {
                params,
                n: n.into(),
                e: e.into(),
            },
        })
    }

    #[cfg(feature = "aws-lc")]
    fn rsa_backend(alg: Alg, n: &[u8], e: &[u8]) -> Result<PreparedKey, String> {
        use backend::encoding::AsDer;
        let v: &'static dyn signature::VerificationAlgorithm = Self::rsa_params(alg);
        let der = signature::RsaPublicKeyComponents { n, e }
            .as_der()
            .map_err(|_| "RSA key rejected by aws-lc".to_string())?;
        let parsed = signature::ParsedPublicKey::new(v, der.as_ref())
            .map_err(|e| format!("RSA key rejected: {e}"))?;
        Ok(PreparedKey {
            alg,
            inner: Inner::Parsed(parsed),
        })
    }

    /// An ECDSA public key from its affine coordinates; the point is checked to be on the curve now.
    pub fn ec(alg: Alg, x: &[u8], y: &[u8]) -> Result<PreparedKey, String> {
        let size = match alg {
            Alg::ES256 | Alg::ES384 | Alg::ES512 => alg.size(),
            other => return Err(format!("{other} is not an ECDSA algorithm")),
        };
        if x.len() != size || y.len() != size {
            return Err(format!(
                "{} coordinates must be {size} bytes each (got {} and {})",
                alg.curve().unwrap_or("?"),
                x.len(),
                y.len()
            ));
        }
        let mut point = Vec::with_capacity(1 + 2 * size);
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let on_curve = match alg {
            Alg::ES256 => p256::PublicKey::from_sec1_bytes(&point).is_ok(),
            Alg::ES384 => p384::PublicKey::from_sec1_bytes(&point).is_ok(),
            _ => p521::PublicKey::from_sec1_bytes(&point).is_ok(),
        };
        if !on_curve {
            return Err(format!("point is not on {}", alg.curve().unwrap_or("?")));
        }
        Self::public_backend(alg, point)
    }

    /// An Ed25519 public key (RFC 8037 `OKP`, `crv` Ed25519).
    pub fn ed25519(x: &[u8]) -> Result<PreparedKey, String> {
        if x.len() != 32 {
            return Err(format!(
                "Ed25519 public key must be 32 bytes (got {})",
                x.len()
            ));
        }
        Self::public_backend(Alg::EdDSA, x.to_vec())
    }

    #[cfg(not(feature = "aws-lc"))]
    fn public_backend(alg: Alg, bytes: Vec<u8>) -> Result<PreparedKey, String> {
        let v: &'static dyn signature::VerificationAlgorithm = match alg {
            Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Alg::EdDSA => &signature::ED25519,
            _ => {
                let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(&bytes)
                    .map_err(|_| "P-521 point rejected".to_string())?;
                return Ok(PreparedKey {
                    alg,
                    inner: Inner::P521(Box::new(key)),
                });
            }
        };
        Ok(PreparedKey {
            alg,
            inner: Inner::Public {
                alg: v,
                bytes: bytes.into(),
            },
        })
    }

    #[cfg(feature = "aws-lc")]
    fn public_backend(alg: Alg, bytes: Vec<u8>) -> Result<PreparedKey, String> {
        let v: &'static dyn signature::VerificationAlgorithm = match alg {
            Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Alg::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
            _ => &signature::ED25519,
        };
        let parsed =
            signature::ParsedPublicKey::new(v, &bytes).map_err(|e| format!("key rejected: {e}"))?;
        Ok(PreparedKey {
            alg,
            inner: Inner::Parsed(parsed),
        })
    }

    /// Checks `signature` over `message`. The error is deliberately opaque.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), Invalid> {
        match &self.inner {
            Inner::Hmac(key) => hmac::verify(key, message, sig).map_err(|_| Invalid),
            #[cfg(not(feature = "aws-lc"))]
            Inner::Rsa { params, n, e } => signature::RsaPublicKeyComponents { n: &**n, e: &**e }
                .verify(params, message, sig)
                .map_err(|_| Invalid),
            #[cfg(not(feature = "aws-lc"))]
            Inner::Public { alg, bytes } => signature::UnparsedPublicKey::new(*alg, &**bytes)
                .verify(message, sig)
                .map_err(|_| Invalid),
            #[cfg(feature = "aws-lc")]
            Inner::Parsed(key) => key.verify_sig(message, sig).map_err(|_| Invalid),
            #[cfg(not(feature = "aws-lc"))]
            Inner::P521(key) => {
                use p521::ecdsa::signature::Verifier as _;
                // JWS ECDSA signatures are fixed-width R||S (RFC 7518 §3.4); DER is refused by length.
                if sig.len() != 2 * Alg::ES512.size() {
                    return Err(Invalid);
                }
                let s = p521::ecdsa::Signature::from_slice(sig).map_err(|_| Invalid)?;
                key.verify(message, &s).map_err(|_| Invalid)
            }
        }
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = backend::digest::digest(&backend::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// An HMAC-SHA256 key prepared once (the session key: refresh-token digests and successors).
pub struct Mac(hmac::Key);

impl Mac {
    pub fn new(secret: &[u8]) -> Mac {
        Mac(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mac(…)")
    }
}

/// Lower-case hex of `bytes` (digests in file names, logs and the wire).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A short, stable name for a token in logs: the first 12 hex digits of its SHA-256. Logs never carry the
/// token itself (a bearer token in a log is a leaked credential).
pub fn token_digest(token: &[u8]) -> String {
    let d = backend::digest::digest(&backend::digest::SHA256, token);
    hex(&d.as_ref()[..6])
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
    }
}

/// Reads lower-case hex into `out`; false unless `s` is exactly twice as long and all hex digits.
pub fn unhex(s: &[u8], out: &mut [u8]) -> bool {
    if s.len() != out.len() * 2 {
        return false;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, pair) in s.chunks_exact(2).enumerate() {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => out[i] = h << 4 | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_secret_length_enforced() {
        assert!(PreparedKey::hmac(Alg::HS256, &[1; 31]).is_err());
        assert!(PreparedKey::hmac(Alg::HS256, &[1; 32]).is_ok());
        assert!(PreparedKey::hmac(Alg::HS512, &[1; 63]).is_err());
        assert!(PreparedKey::hmac(Alg::RS256, &[1; 64]).is_err());
    }

    #[test]
    fn hmac_verifies_and_rejects() {
        let k = PreparedKey::hmac(Alg::HS256, &[7; 32]).unwrap();
        let tag = backend::hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]), b"msg");
        assert!(k.verify(b"msg", tag.as_ref()).is_ok());
        assert!(k.verify(b"msh", tag.as_ref()).is_err());
        assert!(k.verify(b"msg", &tag.as_ref()[..31]).is_err());
    }

    #[test]
    fn small_rsa_and_bad_exponent_refused() {
        let mut n = vec![0xC5u8; 128];
        n[127] |= 1;
        assert!(
            PreparedKey::rsa(Alg::RS256, &n, &[1, 0, 1])
                .unwrap_err()
                .contains("1024 bits")
        );
        let mut n = vec![0xC5u8; 256];
        n[255] |= 1;
        assert!(PreparedKey::rsa(Alg::RS256, &n, &[1]).is_err());
        assert!(PreparedKey::rsa(Alg::RS256, &n, &[2]).is_err());
    }

    #[test]
    fn ec_point_off_curve_refused() {
        assert!(
            PreparedKey::ec(Alg::ES256, &[1; 32], &[2; 32])
                .unwrap_err()
                .contains("not on")
        );
        assert!(PreparedKey::ec(Alg::ES256, &[1; 31], &[2; 32]).is_err());
    }
}
