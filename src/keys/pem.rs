//! PEM public keys: SubjectPublicKeyInfo (`PUBLIC KEY`: RSA, EC P-256/P-384/P-521, Ed25519) and PKCS#1
//! (`RSA PUBLIC KEY`). The PEM and DER reading is RustCrypto's (`pem-rfc7468`, `der`, `spki`, `pkcs1`):
//! RFC 7468's strict grammar, DER with definite minimal lengths and nothing trailing. This module only
//! finds the blocks in a file and maps what they hold onto the algorithms jwtd knows.

use der::Decode as _;
use der::asn1::ObjectIdentifier;
use spki::SubjectPublicKeyInfoRef;

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

const BEGIN: &str = "-----BEGIN ";

/// Every PEM block in `text`, as `(label, DER)`. Text outside blocks is ignored, as OpenSSL does; each block
/// is decoded by `pem-rfc7468` (any consistent line width, no headers, canonical base64).
pub fn blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let label_end = after.find("-----").ok_or("unterminated PEM BEGIN line")?;
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let body_end = after
            .find(&end_marker)
            .ok_or_else(|| format!("PEM block {label:?} has no END line"))?;
        let block_end = start + BEGIN.len() + body_end + end_marker.len();
        let block = &rest[start..block_end];
        let der = decode_block(block).map_err(|e| format!("PEM block {label:?}: {e}"))?;
        out.push((label.to_string(), der));
        rest = &rest[block_end..];
    }
    Ok(out)
}

fn decode_block(block: &str) -> Result<Vec<u8>, String> {
    let why = |e: pem_rfc7468::Error| match e {
        pem_rfc7468::Error::HeaderDisallowed => {
            "has headers (encrypted?): not supported".to_string()
        }
        pem_rfc7468::Error::Base64(_) => "is not valid base64".to_string(),
        other => format!("is not valid PEM ({other})"),
    };
    // The crate names headers only from `decode`/`decode_vec`, which insist on 64-column lines.
    let why = |e| match e {
        _ if block.lines().any(|l| l.contains(':')) => why(pem_rfc7468::Error::HeaderDisallowed),
        e => why(e),
    };
    let mut decoder = pem_rfc7468::Decoder::new_detect_wrap(block.as_bytes()).map_err(why)?;
    let mut der = Vec::new();
    decoder.decode_to_end(&mut der).map_err(why)?;
    Ok(der)
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

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const CURVES: [(ObjectIdentifier, &str); 3] = [
    (ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"), "P-256"),
    (ObjectIdentifier::new_unwrap("1.3.132.0.34"), "P-384"),
    (ObjectIdentifier::new_unwrap("1.3.132.0.35"), "P-521"),
];

fn der_error(what: &str) -> impl Fn(der::Error) -> String + '_ {
    move |e| format!("{what} is not valid DER: {e}")
}

fn parse_spki(der: &[u8]) -> Result<PublicKey, String> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(der_error("SubjectPublicKeyInfo"))?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or("public key BIT STRING has unused bits")?;
    let params = spki.algorithm.parameters;
    match spki.algorithm.oid {
        OID_RSA => {
            // parameters must be NULL (RFC 3279 §2.3.1)
            if !params.is_some_and(|p| p.is_null()) {
                return Err("RSA parameters must be NULL".into());
            }
            parse_pkcs1(key)
        }
        OID_EC => {
            let curve = params
                .ok_or("EC key without a named curve")?
                .decode_as::<ObjectIdentifier>()
                .map_err(|_| "EC parameters must name a curve".to_string())?;
            let crv = CURVES
                .iter()
                .find(|(oid, _)| *oid == curve)
                .map(|(_, crv)| *crv)
                .ok_or("unsupported EC curve (P-256, P-384 and P-521 are supported)")?;
            if key.first() != Some(&4) {
                return Err("EC point must be uncompressed".into());
            }
            Ok(PublicKey::Ec {
                crv,
                point: key.to_vec(),
            })
        }
        // parameters must be absent (RFC 8410 §3)
        OID_ED25519 if params.is_none() => Ok(PublicKey::Ed25519(key.to_vec())),
        OID_ED25519 => Err("Ed25519 parameters must be absent".into()),
        _ => Err("unsupported public key algorithm in SPKI".into()),
    }
}

fn parse_pkcs1(der: &[u8]) -> Result<PublicKey, String> {
    let key = pkcs1::RsaPublicKeyRef::from_der(der).map_err(der_error("RSA public key"))?;
    Ok(PublicKey::Rsa {
        n: key.modulus.as_bytes().to_vec(),
        e: key.public_exponent.as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_rejects_truncation_trailing_bytes_and_non_minimal_integers() {
        assert!(parse_pkcs1(&[0x30, 0x03, 0x02, 0x01]).is_err());
        assert!(parse_pkcs1(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03, 0x00]).is_err());
        assert_eq!(
            parse_pkcs1(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03]).unwrap(),
            PublicKey::Rsa {
                n: vec![5],
                e: vec![3]
            }
        );
        // 0x00 0x05: a leading zero that is not needed
        assert!(parse_pkcs1(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x05, 0x02, 0x01, 0x03]).is_err());
        // 0x85: negative
        assert!(parse_pkcs1(&[0x30, 0x06, 0x02, 0x01, 0x85, 0x02, 0x01, 0x03]).is_err());
        // 0x81 0x06: a long-form length where the short form fits
        assert!(parse_pkcs1(&[0x30, 0x81, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03]).is_err());
        // indefinite length
        assert!(
            parse_pkcs1(&[0x30, 0x80, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03, 0x00, 0x00]).is_err()
        );
    }

    #[test]
    fn blocks_are_found_among_text_and_decoded_strictly() {
        let b = |body: &str| {
            format!("-----BEGIN RSA PUBLIC KEY-----\n{body}\n-----END RSA PUBLIC KEY-----\n")
        };
        let ok = b("MAYCAQUCAQM=");
        let two = format!("comment\n{ok}between\n{ok}after");
        let found = blocks(&two).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            (
                "RSA PUBLIC KEY".to_string(),
                vec![0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03]
            )
        );
        for bad in [
            "MAYCAQUCAQM",
            "MAYCAQUCAQN=",
            "MAYC AQUCAQM=",
            "Proc-Type: 4,ENCRYPTED\n\nMAYCAQUCAQM=",
        ] {
            assert!(blocks(&b(bad)).is_err(), "{bad:?} was accepted");
        }
        assert!(
            blocks("-----BEGIN PUBLIC KEY-----\nMAYCAQUCAQM=\n")
                .unwrap_err()
                .contains("no END line")
        );
        assert!(
            blocks(&b("Proc-Type: 4,ENCRYPTED\n\nMAYCAQUCAQM="))
                .unwrap_err()
                .contains("headers")
        );
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
