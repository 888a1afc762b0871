//! Key loading as users meet it: JWKS from real providers (some keys without alg, odd keys mixed in), PEM
//! files of every kind, HMAC secrets, and clear refusals.

mod common;

use common::*;
use jwtd::keys::SourceOptions;
use jwtd::{Alg, KeySet, Limits, Verifier};
use serde_json::{Value, json};

fn opts(alg: Option<Alg>, kid: Option<&str>) -> SourceOptions {
    SourceOptions {
        default_alg: alg,
        kid: kid.map(str::to_owned),
    }
}

#[test]
fn one_odd_key_never_breaks_the_set() {
    let mut doc: Value = serde_json::from_str(&public_jwks(Alg::RS256)).unwrap();
    let good = doc["keys"][0].clone();
    doc["keys"] = json!([
        {"kty":"EC","crv":"secp256k1","kid":"k1","x":"AA","y":"AA"},
        {"kty":"OKP","crv":"X25519","kid":"x25519","x":"AAAA"},
        {"kty":"dunno","kid":"strange"},
        {"kty":"RSA","kid":"tiny","alg":"RS256","n":"AQAB","e":"AQAB"},
        good,
        {"kty":"RSA","kid":"enc","use":"enc","n":good["n"],"e":"AQAB"},
        "not an object either"
    ]);
    let mut keys = KeySet::new();
    // A non-object entry makes the document itself malformed: that is a document error, not a key error.
    let err = keys.add_jwks(doc.to_string().as_bytes(), None).unwrap_err();
    assert!(err.to_string().contains("non-object"), "{err}");
    doc["keys"].as_array_mut().unwrap().pop();
    let report = keys.add_jwks(doc.to_string().as_bytes(), None).unwrap();
    assert_eq!(report.loaded, 1);
    let reasons: Vec<String> = report.refused.iter().map(|e| e.to_string()).collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    for (kid, why) in [
        ("k1", "unsupported curve"),
        ("x25519", "unsupported curve"),
        ("strange", "unknown kty"),
        ("tiny", "bits"),
        ("enc", "not a signature key"),
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(kid) && r.contains(why)),
            "{kid}: {why} not in {reasons:?}"
        );
    }
    let v = Verifier::new(keys, policy(), Limits::default());
    assert!(v.verify(token(Alg::RS256).as_bytes(), NOW).is_ok());
}

#[test]
fn jwks_without_alg_needs_a_configured_default_never_the_tokens() {
    let mut doc: Value = serde_json::from_str(&public_jwks(Alg::RS256)).unwrap();
    doc["keys"][0].as_object_mut().unwrap().remove("alg");
    let text = doc.to_string();
    let mut keys = KeySet::new();
    let r = keys.add_jwks(text.as_bytes(), None).unwrap();
    assert_eq!(r.loaded, 0);
    assert!(
        r.refused[0].to_string().contains("configure a default alg"),
        "{:?}",
        r.refused
    );
    // With a default of RS256 the key verifies RS256 tokens, and only those: a PS256 token signed by the
    // same RSA private key (a different algorithm on the same key) is refused.
    let mut keys = KeySet::new();
    assert_eq!(
        keys.add_jwks(text.as_bytes(), Some(Alg::RS256))
            .unwrap()
            .loaded,
        1
    );
    let v = Verifier::new(keys, policy(), Limits::default());
    assert!(v.verify(token(Alg::RS256).as_bytes(), NOW).is_ok());
    let private: Value =
        serde_json::from_slice(&std::fs::read(data("keys/RS256.private.jwk")).unwrap()).unwrap();
    let mut as_ps = private.clone();
    as_ps["alg"] = json!("PS256");
    let (ps, _) =
        jwtd::keys::private::signing_key_from_jwk(as_ps.to_string().as_bytes(), None).unwrap();
    let t = raw_token(
        &ps,
        r#"{"alg":"PS256","kid":"test-RS256"}"#,
        &claims().to_string(),
    );
    assert_eq!(
        v.verify(t.as_bytes(), NOW).unwrap_err().code(),
        "alg_mismatch"
    );
    // EC keys without alg take it from the curve.
    let mut ec: Value = serde_json::from_str(&public_jwks(Alg::ES384)).unwrap();
    ec["keys"][0].as_object_mut().unwrap().remove("alg");
    let mut keys = KeySet::new();
    assert_eq!(
        keys.add_jwks(ec.to_string().as_bytes(), None)
            .unwrap()
            .loaded,
        1
    );
    assert_eq!(keys.keys()[0].alg(), Alg::ES384);
}

#[test]
fn pem_public_keys_of_every_kind() {
    let cases = [
        ("pem/rsa.pub.pem", Some(Alg::RS256), Alg::RS256),
        ("pem/rsa.pkcs1.pub.pem", Some(Alg::PS384), Alg::PS384),
        ("pem/p256.pub.pem", None, Alg::ES256),
        ("pem/p384.pub.pem", None, Alg::ES384),
        ("pem/p521.pub.pem", None, Alg::ES512),
        ("pem/ed25519.pub.pem", None, Alg::EdDSA),
    ];
    for (file, default_alg, alg) in cases {
        let mut keys = KeySet::new();
        let r = keys
            .add_file(&data(file), &opts(default_alg, Some("pem-key")))
            .unwrap();
        assert_eq!(r.loaded, 1, "{file}: {:?}", r.refused);
        assert_eq!(keys.keys()[0].alg(), alg, "{file}");
        assert_eq!(keys.keys()[0].kid.as_deref(), Some("pem-key"));
    }
    // RSA PEM without an alg: refused with advice.
    let mut keys = KeySet::new();
    let r = keys
        .add_file(&data("pem/rsa.pub.pem"), &opts(None, None))
        .unwrap();
    assert!(
        r.refused[0].to_string().contains("needs an alg"),
        "{:?}",
        r.refused
    );
    // A private key is not a verification key.
    let err = KeySet::new()
        .add_file(&data("pem/p256.key.pem"), &opts(None, None))
        .unwrap();
    assert!(
        err.refused[0].to_string().contains("-pubout"),
        "{:?}",
        err.refused
    );
    // An EC key with a mismatching configured alg.
    let r = KeySet::new()
        .add_file(&data("pem/p256.pub.pem"), &opts(Some(Alg::ES384), None))
        .unwrap();
    assert_eq!(r.loaded, 0);
}

#[test]
fn pem_keys_verify_tokens_signed_by_their_private_halves() {
    use jwtd::keys::private::signing_key_from_file;
    for (private, public, alg) in [
        ("pem/rsa.key.pem", "pem/rsa.pub.pem", Alg::RS256),
        ("pem/rsa.key.pem", "pem/rsa.pkcs1.pub.pem", Alg::PS512),
        ("pem/p256.key.pem", "pem/p256.pub.pem", Alg::ES256),
        ("pem/p384.key.pem", "pem/p384.pub.pem", Alg::ES384),
        ("pem/ed25519.key.pem", "pem/ed25519.pub.pem", Alg::EdDSA),
    ] {
        let mut keys = KeySet::new();
        let default = (alg.family() == jwtd::alg::Family::Rsa).then_some(alg);
        keys.add_file(&data(public), &opts(default, None)).unwrap();
        let v = Verifier::new(keys, policy(), Limits::default());
        let (signer, _) =
            signing_key_from_file(&std::fs::read(data(private)).unwrap(), default).unwrap();
        // PEM keys have no kid: tokens with or without one find them.
        for header in [
            json!({"alg": alg.name()}),
            json!({"alg": alg.name(), "kid": "any"}),
        ] {
            let t = raw_token(&signer, &header.to_string(), &claims().to_string());
            v.verify(t.as_bytes(), NOW)
                .unwrap_or_else(|e| panic!("{private} {header}: {e}"));
        }
    }
}

#[test]
fn hmac_secret_files_and_their_minimum_length() {
    let mut keys = KeySet::new();
    let short = keys
        .add_secret(b"too short", &opts(Some(Alg::HS256), None))
        .unwrap_err();
    assert!(short.to_string().contains("at least 32"), "{short}");
    let no_alg = keys.add_secret(&[7; 64], &opts(None, None)).unwrap_err();
    assert!(no_alg.to_string().contains("HS256"), "{no_alg}");
    assert!(
        keys.add_secret(&[7; 64], &opts(Some(Alg::RS256), None))
            .is_err()
    );
    assert_eq!(
        keys.add_secret(&[7; 48], &opts(Some(Alg::HS384), Some("s")))
            .unwrap()
            .loaded,
        1
    );
    let err = KeySet::new()
        .add_document(b"just some bytes", &opts(None, None))
        .unwrap_err();
    assert!(matches!(err, jwtd::error::KeyError::NotKeys), "{err}");
}

#[test]
fn malformed_key_documents_are_errors_not_panics() {
    for doc in [
        &b"{"[..],
        b"{\"keys\":5}",
        b"{\"keys\":[],\"keys\":[]}",
        b"[]",
        b"{\"kty\":\"RSA\",\"kty\":\"EC\"}",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nMIIB",
    ] {
        let mut keys = KeySet::new();
        match keys.add_document(doc, &opts(Some(Alg::RS256), None)) {
            Err(_) => {}
            Ok(r) => assert_eq!(r.loaded, 0, "{:?}", String::from_utf8_lossy(doc)),
        }
    }
}
