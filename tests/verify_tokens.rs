//! Round trips for every algorithm, tampering anywhere, and each classic attack on JWT verifiers.

mod common;

use common::*;
use jwtd::crypto::sign::{Private, SigningKey};
use jwtd::{Alg, Limits, Verifier};
use serde_json::{Value, json};

fn code(v: &Verifier, token: &str) -> &'static str {
    v.verify(token.as_bytes(), NOW).unwrap_err().code()
}

#[test]
fn every_algorithm_round_trips_with_claims_out() {
    let v = verifier(&Alg::ALL, policy());
    for alg in Alg::ALL {
        let t = token(alg);
        let ok = v
            .verify(t.as_bytes(), NOW)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(ok.alg(), alg);
        assert_eq!(ok.kid(), Some(format!("test-{alg}").as_str()));
        assert_eq!(ok.typ(), Some("JWT"));
        assert_eq!(ok.sub(), Some("user-1234567890"));
        assert_eq!(ok.iss(), Some("https://issuer.test"));
        assert_eq!(ok.jti(), Some("4f1c2a9e-6b1d-4d1e-9f8a-0c2b3d4e5f60"));
        assert_eq!(ok.exp(), Some((NOW + 600) as f64));
        let back: Value = serde_json::from_str(ok.claims_json()).unwrap();
        assert_eq!(back, claims());
        assert!(!ok.claims_json().contains('\n'));
        // The JWS-level check agrees and returns the payload bytes.
        let jws = v.verify_jws(t.as_bytes()).unwrap();
        assert_eq!(jws.payload, claims().to_string().into_bytes());
    }
}

#[test]
fn a_flipped_bit_anywhere_is_rejected() {
    let v = verifier(&Alg::ALL, policy());
    for alg in Alg::ALL {
        let t = token(alg).into_bytes();
        // Positive control: the untouched token verifies, so every rejection below is the flip's doing.
        assert!(
            v.verify(&t, NOW).is_ok(),
            "{alg}: the unflipped token must verify"
        );
        let mut signature_checked = 0;
        // Every byte position, one bit each (the low bit keeps most bytes in the base64url alphabet, so the
        // signature check, not only the decoder, is exercised).
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 1;
            let r = v.verify(&bad, NOW);
            assert!(
                r.is_err(),
                "{alg}: flipping bit 0 of byte {i} ({:?}) was accepted",
                bad[i] as char
            );
            signature_checked += usize::from(r.is_err_and(|e| e.code() == "bad_signature"));
        }
        // Most flips keep the token decodable and reach the signature check: the test exercises it, not only
        // the decoder.
        assert!(
            signature_checked > t.len() / 2,
            "{alg}: only {signature_checked} of {} flips reached the signature check",
            t.len()
        );
        // A few higher bits too, on a sample of positions.
        for i in (0..t.len()).step_by(7) {
            for bit in [2u8, 4, 6] {
                let mut bad = t.clone();
                bad[i] ^= 1 << bit;
                assert!(v.verify(&bad, NOW).is_err(), "{alg}: bit {bit} of byte {i}");
            }
        }
    }
}

#[test]
fn alg_none_in_every_spelling_is_refused() {
    let v = verifier(&Alg::ALL, policy());
    let payload = b64(claims().to_string().as_bytes());
    for none in [
        "none",
        "None",
        "NONE",
        "nOnE",
        "NoNe",
        "none ",
        " none",
        "none\u{0000}",
    ] {
        let header = b64(json!({"alg": none, "typ": "JWT"}).to_string().as_bytes());
        for sig in ["", "AAAA", "e30"] {
            let t = format!("{header}.{payload}.{sig}");
            assert_eq!(
                code(&v, &t),
                "alg_not_allowed",
                "{none:?} with signature {sig:?}"
            );
        }
    }
    // Unicode-escaped "none" decodes to none: still refused.
    let header = b64(br#"{"alg":"\u006eone"}"#);
    assert_eq!(code(&v, &format!("{header}.{payload}.")), "alg_not_allowed");
}

#[test]
fn hmac_keyed_with_a_public_key_is_refused() {
    // Key confusion: the attacker takes our RSA / EC public key bytes as an HMAC secret.
    for alg in [Alg::RS256, Alg::PS256, Alg::ES256, Alg::ES384, Alg::EdDSA] {
        let v = verifier(&[alg], policy());
        let jwks: Value = serde_json::from_str(&public_jwks(alg)).unwrap();
        let jwk = &jwks["keys"][0];
        let mut candidates: Vec<Vec<u8>> =
            vec![public_jwks(alg).into_bytes(), jwk.to_string().into_bytes()];
        for member in ["n", "x"] {
            if let Some(s) = jwk[member].as_str() {
                candidates.push(jwtd::jws::b64::decode(s.as_bytes()).unwrap());
            }
        }
        for secret in candidates {
            if secret.len() < 32 {
                continue;
            }
            let forger = SigningKey::new(Alg::HS256, &Private::Hmac(secret)).unwrap();
            let with_kid = raw_token(
                &forger,
                &json!({"alg":"HS256","kid":format!("test-{alg}")}).to_string(),
                &claims().to_string(),
            );
            assert_eq!(code(&v, &with_kid), "alg_mismatch", "{alg}");
            let without_kid = raw_token(&forger, r#"{"alg":"HS256"}"#, &claims().to_string());
            assert_eq!(code(&v, &without_kid), "alg_not_allowed", "{alg}");
        }
    }
}

#[test]
fn a_token_cannot_bring_its_own_key() {
    let v = verifier(&[Alg::ES256], policy());
    // The attacker's own ES256 key, embedded or referenced in every header form.
    let (attacker, private) = SigningKey::generate(Alg::ES256).unwrap();
    let Private::Ec { x, y, .. } = private else {
        unreachable!()
    };
    let jwk = json!({"kty":"EC","crv":"P-256","x":b64(&x),"y":b64(&y)});
    let headers = [
        json!({"alg":"ES256","jwk":jwk}),
        json!({"alg":"ES256","jwk":jwk,"kid":"test-ES256"}),
        json!({"alg":"ES256","jku":"https://attacker.example/jwks.json","kid":"attacker"}),
        json!({"alg":"ES256","x5u":"https://attacker.example/cert.pem","kid":"test-ES256"}),
        json!({"alg":"ES256","x5c":["MIIBszCCAVmgAwIBAgIUZ"],"kid":"test-ES256"}),
    ];
    for h in headers {
        let t = raw_token(&attacker, &h.to_string(), &claims().to_string());
        let err = v.verify(t.as_bytes(), NOW).unwrap_err();
        assert!(
            matches!(err.code(), "bad_signature" | "unknown_key"),
            "{h}: {err}"
        );
    }
}

#[test]
fn kid_is_only_a_lookup_key() {
    let v = verifier(&[Alg::HS256], policy());
    let key = signer(Alg::HS256);
    for kid in [
        "../../../../dev/null",
        "/dev/null",
        "' OR '1'='1",
        "test-HS256' --",
        "test-HS256\u{0000}",
        "https://attacker.example/key",
        "TEST-HS256",
        "",
    ] {
        let t = raw_token(
            &key,
            &json!({"alg":"HS256","kid":kid}).to_string(),
            &claims().to_string(),
        );
        let err = v.verify(t.as_bytes(), NOW).unwrap_err();
        // No key answers to these kids except through an exact match; the set's one key has a kid, so a
        // foreign kid finds nothing.
        assert_eq!(err.code(), "unknown_key", "{kid:?}: {err}");
        assert!(!err.to_string().contains('\n'));
    }
    // The kid must be a string.
    let t = raw_token(
        &key,
        r#"{"alg":"HS256","kid":["test-HS256"]}"#,
        &claims().to_string(),
    );
    assert_eq!(code(&v, &t), "bad_header");
}

#[test]
fn crit_b64_and_duplicates_are_refused() {
    let v = verifier(&[Alg::HS256], policy());
    let key = signer(Alg::HS256);
    let body = claims().to_string();
    let cases = [
        (
            r#"{"alg":"HS256","kid":"test-HS256","crit":["exp"],"exp":1}"#.to_string(),
            "crit_unsupported",
        ),
        (
            r#"{"alg":"HS256","kid":"test-HS256","crit":[]}"#.to_string(),
            "crit_unsupported",
        ),
        (
            r#"{"alg":"HS256","kid":"test-HS256","crit":["b64"],"b64":false}"#.to_string(),
            "crit_unsupported",
        ),
        (
            r#"{"alg":"HS256","kid":"test-HS256","b64":false}"#.to_string(),
            "unsupported_header",
        ),
        (
            r#"{"alg":"HS256","kid":"test-HS256","alg":"HS256"}"#.to_string(),
            "duplicate_member",
        ),
        (
            r#"{"alg":"HS256","kid":"x","kid":"test-HS256"}"#.to_string(),
            "duplicate_member",
        ),
    ];
    for (header, want) in cases {
        let t = raw_token(&key, &header, &body);
        assert_eq!(code(&v, &t), want, "{header}");
    }
    let dup_claims = body.replacen('{', r#"{"sub":"admin","#, 1);
    let t = raw_token(&key, r#"{"alg":"HS256","kid":"test-HS256"}"#, &dup_claims);
    assert_eq!(code(&v, &t), "duplicate_member");
    let nested = body.replacen('{', r#"{"realm":{"roles":["user"],"roles":["admin"]},"#, 1);
    let t = raw_token(&key, r#"{"alg":"HS256","kid":"test-HS256"}"#, &nested);
    assert_eq!(code(&v, &t), "duplicate_member");
}

#[test]
fn psychic_and_der_ecdsa_signatures_are_refused() {
    for alg in [Alg::ES256, Alg::ES384, Alg::ES512] {
        let v = verifier(&[alg], policy());
        let t = token(alg);
        let (signing_input, _) = t.rsplit_once('.').unwrap();
        // CVE-2022-21449: r = s = 0 "verifies" every message in a broken verifier.
        let zeros = b64(&vec![0u8; 2 * alg.size()]);
        assert_eq!(
            code(&v, &format!("{signing_input}.{zeros}")),
            "bad_signature",
            "{alg}"
        );
        // r = s = n-ish garbage of the right length, and an empty signature.
        let ones = b64(&vec![0xffu8; 2 * alg.size()]);
        assert_eq!(
            code(&v, &format!("{signing_input}.{ones}")),
            "bad_signature",
            "{alg}"
        );
        assert_eq!(
            code(&v, &format!("{signing_input}.")),
            "bad_signature",
            "{alg}"
        );
        // The valid signature re-encoded as DER (SEQUENCE of two INTEGERs) is refused: JWS wants R||S.
        let sig = jwtd::jws::b64::decode(t.rsplit_once('.').unwrap().1.as_bytes()).unwrap();
        let der = der_ecdsa(&sig[..alg.size()], &sig[alg.size()..]);
        assert_eq!(
            code(&v, &format!("{signing_input}.{}", b64(&der))),
            "bad_signature",
            "{alg}"
        );
    }
}

fn der_ecdsa(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let v = &v[v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1)..];
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    }
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

#[test]
fn non_canonical_base64_is_refused_in_every_segment() {
    let v = verifier(&[Alg::HS256], policy());
    let t = token(Alg::HS256);
    let parts: Vec<&str> = t.split('.').collect();
    // A segment whose length leaves unused bits: bump the last character's unused bits.
    for seg in 0..3 {
        let s = parts[seg];
        if s.len().is_multiple_of(4) {
            continue;
        }
        let last = s.as_bytes()[s.len() - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.iter().position(|&c| c == last).unwrap();
        let bumped = alphabet[idx | 1] as char;
        if bumped as u8 == last {
            continue;
        }
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        p[seg] = format!("{}{bumped}", &s[..s.len() - 1]);
        let err = v.verify(p.join(".").as_bytes(), NOW).unwrap_err();
        assert_eq!(err.code(), "bad_base64", "segment {seg}: {err}");
    }
    for (seg, junk) in [
        (0, "="),
        (1, "=="),
        (2, "="),
        (1, " "),
        (2, "+"),
        (0, "/"),
        (1, "\n"),
    ] {
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        p[seg].push_str(junk);
        assert!(
            v.verify(p.join(".").as_bytes(), NOW).is_err(),
            "segment {seg} + {junk:?}"
        );
    }
}

#[test]
fn oversized_and_deeply_nested_input_fails_fast() {
    let v = verifier(&[Alg::HS256], policy());
    let huge = "a".repeat(1 << 20);
    assert_eq!(code(&v, &huge), "too_large");
    let huge_token = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"HS256"}"#),
        "A".repeat(1 << 20),
        "A"
    );
    assert_eq!(code(&v, &huge_token), "too_large");
    // Payloads nested 100,000 deep, validly signed, under a generous token cap: refused quickly.

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let key = signer(Alg::HS256);
    let t = raw_token(&key, r#"{"alg":"HS256","kid":"test-HS256"}"#, &deep);
    let roomy = Verifier::new(
        key_set(&[Alg::HS256]),
        policy(),
        Limits {
            max_token_len: 1 << 20,
            ..Limits::default()
        },
    );
    // A top-level array is not a claims object: refused at the first bracket, whatever follows.
    assert_eq!(
        roomy.verify(t.as_bytes(), NOW).unwrap_err().code(),
        "bad_json"
    );
    let deep_obj = format!(
        "{{\"exp\":{},\"a\":{}1{}}}",
        NOW + 60,
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    let t = raw_token(&key, r#"{"alg":"HS256","kid":"test-HS256"}"#, &deep_obj);
    assert_eq!(
        roomy.verify(t.as_bytes(), NOW).unwrap_err().code(),
        "too_deep"
    );
    // A deeply nested header is refused too.
    let deep_header = format!(
        "{{\"alg\":\"HS256\",\"x\":{}0{}}}",
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let t = raw_token(&key, &deep_header, &claims().to_string());
    assert_eq!(code(&v, &t), "too_deep");
}

#[test]
fn jwe_and_json_serialization_have_their_own_codes() {
    let v = verifier(&[Alg::HS256], policy());
    assert_eq!(
        code(&v, "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d"),
        "unsupported_jwe"
    );
    assert_eq!(
        code(&v, r#"{"payload":"e30","signatures":[]}"#),
        "unsupported_serialization"
    );
    assert_eq!(code(&v, "a.b"), "malformed");
    assert_eq!(code(&v, "a.b.c.d"), "malformed");
}

#[test]
fn key_selection_rules() {
    // Two HS256 keys: tokens must name one by kid; without kid the choice is ambiguous.
    let mut keys = key_set(&[Alg::HS256, Alg::ES256]);
    let other = r#"{"kty":"oct","alg":"HS256","kid":"second","k":"c2Vjb25kLXNlY3JldC1zZWNvbmQtc2VjcmV0LXNlY29uZA"}"#;
    assert_eq!(keys.add_jwks(other.as_bytes(), None).unwrap().loaded, 1);
    let v = Verifier::new(keys, policy(), Limits::default());
    assert!(v.verify(token(Alg::HS256).as_bytes(), NOW).is_ok());
    let no_kid = token_with(Alg::HS256, json!({"kid": null}), &claims());
    assert_eq!(code(&v, &no_kid), "ambiguous_key");
    // ES256 without kid: exactly one key fits its alg, accepted.
    let es_no_kid = token_with(Alg::ES256, json!({"kid": null}), &claims());
    assert!(v.verify(es_no_kid.as_bytes(), NOW).is_ok());
    // A kid naming the ES256 key, on an HS256 token.
    let t = raw_token(
        &signer(Alg::HS256),
        r#"{"alg":"HS256","kid":"test-ES256"}"#,
        &claims().to_string(),
    );
    assert_eq!(code(&v, &t), "alg_mismatch");
    // An algorithm no key is bound to.
    assert_eq!(code(&v, &token(Alg::RS256)), "unknown_key");
}

#[test]
fn claims_policy_through_the_verifier() {
    let v = verifier(&[Alg::ES256], policy());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        token_with(Alg::ES256, json!({}), &c)
    };
    assert_eq!(code(&v, &with(&|c| c["exp"] = json!(NOW - 61))), "expired");
    assert_eq!(
        code(&v, &with(&|c| c["nbf"] = json!(NOW + 61))),
        "not_yet_valid"
    );
    assert_eq!(
        code(&v, &with(&|c| c["iss"] = json!("https://evil.test"))),
        "wrong_issuer"
    );
    assert_eq!(
        code(&v, &with(&|c| c["aud"] = json!("nobody"))),
        "wrong_audience"
    );
    assert_eq!(code(&v, &with(&|c| c["exp"] = json!("soon"))), "bad_claim");
    assert_eq!(
        code(
            &v,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })
        ),
        "missing_claim"
    );
    assert_eq!(
        code(
            &v,
            &token_with(Alg::ES256, json!({"typ":"secevent+jwt"}), &claims())
        ),
        "wrong_type"
    );
    assert!(
        v.verify(
            token_with(Alg::ES256, json!({"typ":"at+jwt"}), &claims()).as_bytes(),
            NOW
        )
        .is_ok()
    );
    assert!(
        v.verify(
            token_with(Alg::ES256, json!({"typ":null}), &claims()).as_bytes(),
            NOW
        )
        .is_ok()
    );
    // A payload that is not a claims object.
    let key = signer(Alg::ES256);
    let t = raw_token(&key, r#"{"alg":"ES256","kid":"test-ES256"}"#, "[1,2,3]");
    assert_eq!(code(&v, &t), "bad_json");
    let t = raw_token(&key, r#"{"alg":"ES256","kid":"test-ES256"}"#, "Payload");
    assert_eq!(code(&v, &t), "bad_json");
    // Time rules follow `now`, with no clock involved.
    let t = token(Alg::ES256);
    assert!(v.verify(t.as_bytes(), NOW + 600 + 59).is_ok());
    assert_eq!(
        v.verify(t.as_bytes(), NOW + 600 + 60).unwrap_err().code(),
        "expired"
    );
}
