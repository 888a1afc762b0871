//! PEM public keys: SubjectPublicKeyInfo (`PUBLIC KEY`: RSA, EC P-256/P-384/P-521, Ed25519) and PKCS#1
//! (`RSA PUBLIC KEY`). A strict, minimal DER reader: definite lengths, minimal encodings, nothing trailing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A public key read from PEM, before it is bound to an algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// SEC1 uncompressed point (0x04 || x || y) on the named curve.
    Ec {
        crv: &'static str,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

/// Every PEM block in `text`, as `(label, DER)`. Text outside blocks is ignored, as OpenSSL does.
pub fn blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").ok_or("unterminated PEM BEGIN line")?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or_else(|| format!("PEM block {label:?} has no END line"))?;
        let body: String = body_start[..body_end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if body.contains(':') {
            return Err(format!(
                "PEM block {label:?} has headers (encrypted?): not supported"
            ));
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("PEM block {label:?} is not valid base64: {e}"))?;
        out.push((label.to_string(), der));
        rest = &body_start[body_end + end_marker.len()..];
    }
    Ok(out)
}

/// Parses one PEM block into a public key.
pub fn parse_block(label: &str, der: &[u8]) -> Result<PublicKey, String> {
    match label {
        "PUBLIC KEY" => parse_spki(der),
        "RSA PUBLIC KEY" => parse_pkcs1(der),
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            Err(format!(
                "PEM block {label:?} is a private key: give jwtd the public key (openssl pkey -pubout)"
            ))
        }
        "CERTIFICATE" => Err(
            "PEM certificates are not supported: extract the public key \
             (openssl x509 -pubkey -noout)"
                .into(),
        ),
        other => Err(format!("unsupported PEM block {other:?}")),
    }
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

fn parse_spki(der: &[u8]) -> Result<PublicKey, String> {
    let mut outer = Der::new(der);
    let mut spki = Der::new(outer.expect(0x30)?);
    outer.end()?;
    let mut algid = Der::new(spki.expect(0x30)?);
    let bits = spki.expect(0x03)?;
    spki.end()?;
    let oid = algid.expect(0x06)?;
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err("public key BIT STRING has unused bits".into()),
    };
    if oid == OID_RSA {
        // parameters must be NULL (RFC 3279 §2.3.1)
        if !algid.expect(0x05)?.is_empty() {
            return Err("RSA parameters must be NULL".into());
        }
        algid.end()?;
        parse_pkcs1(key)
    } else if oid == OID_EC {
        let curve = algid.expect(0x06)?;
        algid.end()?;
        let crv = if curve == OID_P256 {
            "P-256"
        } else if curve == OID_P384 {
            "P-384"
        } else if curve == OID_P521 {
            "P-521"
        } else {
            return Err("unsupported EC curve (P-256, P-384 and P-521 are supported)".into());
        };
        if key.first() != Some(&4) {
            return Err("EC point must be uncompressed".into());
        }
        Ok(PublicKey::Ec {
            crv,
            point: key.to_vec(),
        })
    } else if oid == OID_ED25519 {
        algid.end()?;
        Ok(PublicKey::Ed25519(key.to_vec()))
    } else {
        Err("unsupported public key algorithm in SPKI".into())
    }
}

fn parse_pkcs1(der: &[u8]) -> Result<PublicKey, String> {
    let mut outer = Der::new(der);
    let mut seq = Der::new(outer.expect(0x30)?);
    outer.end()?;
    let n = positive_int(seq.expect(0x02)?)?;
    let e = positive_int(seq.expect(0x02)?)?;
    seq.end()?;
    Ok(PublicKey::Rsa {
        n: n.to_vec(),
        e: e.to_vec(),
    })
}

pub(crate) fn positive_int(v: &[u8]) -> Result<&[u8], String> {
    match v {
        [] => Err("empty INTEGER".into()),
        [b, ..] if b & 0x80 != 0 => Err("negative INTEGER".into()),
        [0, b, ..] if b & 0x80 == 0 => Err("non-minimal INTEGER".into()),
        [0, rest @ ..] => Ok(rest),
        _ => Ok(v),
    }
}

/// A cursor over DER TLVs.
pub(crate) struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    /// Reads one TLV with `tag`, returning its contents.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let [t, l0, rest @ ..] = self.rest else {
            return Err("truncated DER".into());
        };
        if *t != tag {
            return Err(format!("DER: expected tag 0x{tag:02x}, found 0x{t:02x}"));
        }
        let (len, rest) = match *l0 {
            l if l < 0x80 => (usize::from(l), rest),
            0x81 => match rest {
                [l, r @ ..] if *l >= 0x80 => (usize::from(*l), r),
                _ => return Err("DER: non-minimal length".into()),
            },
            0x82 => match rest {
                [a, b, r @ ..] if *a != 0 => ((usize::from(*a) << 8) | usize::from(*b), r),
                _ => return Err("DER: non-minimal length".into()),
            },
            _ => return Err("DER: unsupported length form".into()),
        };
        if rest.len() < len {
            return Err("truncated DER".into());
        }
        let (v, r) = rest.split_at(len);
        self.rest = r;
        Ok(v)
    }

    pub(crate) fn end(&self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err("DER: trailing bytes".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_rejects_truncation_and_trailing_bytes() {
        assert!(parse_pkcs1(&[0x30, 0x03, 0x02, 0x01]).is_err());
        assert!(parse_pkcs1(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03, 0x00]).is_err());
        assert_eq!(
            parse_pkcs1(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03]).unwrap(),
            PublicKey::Rsa {
                n: vec![5],
                e: vec![3]
            }
        );
        assert!(parse_pkcs1(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x05, 0x02, 0x01, 0x03]).is_err());
    }

    #[test]
    fn private_keys_and_certificates_get_advice() {
        assert!(
            parse_block("PRIVATE KEY", &[])
                .unwrap_err()
                .contains("-pubout")
        );
        assert!(
            parse_block("CERTIFICATE", &[])
                .unwrap_err()
                .contains("x509")
        );
    }
}
