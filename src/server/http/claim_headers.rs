//! Claims copied into `/verify` answers as headers, for the proxy to forward upstream.

use hyper::header::{HeaderName, HeaderValue};

/// The configured claim headers for a verified token's claims, for the proxy to forward upstream
/// (docs/PROTOCOL.md, "Claims in headers"):
///
/// - every configured header is answered, **empty when the claim is absent** — a proxy that copies it then
///   replaces whatever copy the client sent, instead of letting it through;
/// - a string claim is its text as is (UTF-8 bytes); a number, boolean or null its JSON text;
/// - an array or object is its compact JSON (`["read","write admin"]`): unambiguous, where joining with
///   spaces made `["read","write admin"]` and `["read","write","admin"]` the same header;
/// - a value with a control character (CR, LF, NUL, TAB, DEL…) cannot be a header without being mangled
///   or split: the whole answer is refused (`Err`), never a header left out.
pub(super) fn claim_headers(
    claims: &str,
    wanted: &[(HeaderName, String)],
) -> Result<Vec<(Option<HeaderName>, HeaderValue)>, String> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // Verification refuses any claims document serde_json cannot read (json::MAX_DEPTH_CEILING, number
    // range), so this parse sees exactly what verification saw.
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(claims).map_err(|e| format!("claims unreadable: {e}"))?;
    let mut out = Vec::with_capacity(wanted.len());
    for (name, claim) in wanted {
        let value = match claims.get(claim) {
            None => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        if value.bytes().any(|b| b.is_ascii_control()) {
            return Err(format!(
                "claim {claim:?} holds a control character and cannot be carried in header {name}"
            ));
        }
        let v = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| format!("claim {claim:?} cannot be carried in header {name}"))?;
        out.push((Some(name.clone()), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::parse_header_name;
    use super::*;

    #[test]
    fn claim_headers_are_always_answered_and_unambiguous() {
        let wanted: Vec<(HeaderName, String)> = ["sub", "iss", "roles", "n", "obj", "missing"]
            .iter()
            .map(|c| (parse_header_name(&format!("x-{c}")).unwrap(), c.to_string()))
            .collect();
        let h = claim_headers(
            r#"{"sub":"José","iss":"https://a","roles":["read","write admin"],"n":1.5,"obj":{"a":[1]}}"#,
            &wanted,
        )
        .unwrap();
        let got: Vec<(String, &[u8])> = h
            .iter()
            .map(|(n, v)| (n.as_ref().unwrap().to_string(), v.as_bytes()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("x-sub".into(), "José".as_bytes()),
                ("x-iss".into(), &b"https://a"[..]),
                ("x-roles".into(), &br#"["read","write admin"]"#[..]),
                ("x-n".into(), &b"1.5"[..]),
                ("x-obj".into(), &br#"{"a":[1]}"#[..]),
                ("x-missing".into(), &b""[..]),
            ]
        );
        let other = claim_headers(r#"{"roles":["read","write","admin"]}"#, &wanted[2..3]).unwrap();
        assert_ne!(other[0].1.as_bytes(), br#"["read","write admin"]"#);
        for bad in [
            r#"{"sub":"a\nX-Admin: 1"}"#,
            r#"{"sub":"a\r"}"#,
            r#"{"sub":"a\u0000"}"#,
            r#"{"sub":"a\tb"}"#,
        ] {
            assert!(claim_headers(bad, &wanted[..1]).is_err(), "{bad}");
        }
    }
}
