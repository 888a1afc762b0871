//! Claims copied into `/verify` answers as headers, for the proxy to forward upstream (docs/PROTOCOL.md,
//! "Claims in headers"):
//!
//! - every configured header is answered, **empty when the claim is absent** — a proxy that copies it then
//!   replaces whatever copy the client sent, instead of letting it through;
//! - a claim name with dots is a path into nested objects (`address.country`), unless the claims have a
//!   member of exactly that name;
//! - a string is its text; a number, boolean or null its JSON text; an object its compact JSON;
//! - an array: its elements so rendered, joined with the configured separator (default `,`), or the
//!   array's compact JSON when the separator is `json`;
//! - **encoding**: `%`, control characters (CR, LF, NUL, TAB, DEL…), every byte outside ASCII, and in an
//!   element of a joined array the separator itself, are percent-encoded (UTF-8, upper-case hex). Plain
//!   ASCII values arrive unchanged, nothing ever reaches a header raw that could split or mangle it, and any
//!   URL decoder gives back the exact value (split joined arrays first, then decode each element);
//! - a value over [`MAX_VALUE`] bytes once encoded cannot be forwarded reliably (proxies cap the header
//!   section): the answer is refused (`claim_not_representable`), never a header left out or cut;
//! - the whole payload, when configured: the claims JSON as verified, base64url without padding.

use std::fmt::Write as _;

use hyper::header::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::routes::claims::lookup;

/// Longest header value written, in bytes.
pub(super) const MAX_VALUE: usize = 4096;

/// How arrays become header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrays {
    /// Elements joined with this character (printable ASCII, not `%`).
    Join(u8),
    /// The array's compact JSON.
    Json,
}

impl Default for Arrays {
    fn default() -> Arrays {
        Arrays::Join(b',')
    }
}

/// Parses `--claim-array-separator` / `[http] array_separator`: one printable ASCII character but `%`, or
/// `json`.
pub fn parse_arrays(s: &str) -> Result<Arrays, crate::config::InvalidValue> {
    match s.as_bytes() {
        b"json" => Ok(Arrays::Json),
        [b] if (0x20..0x7f).contains(b) && *b != b'%' => Ok(Arrays::Join(*b)),
        _ => Err(crate::config::InvalidValue::new(
            s,
            "expected one printable ASCII character other than % (e.g. \",\" or \" \"), or json",
        )),
    }
}

/// The headers for a verified token's `claims`: one per `wanted` (header, claim), and the whole payload
/// under `payload` when configured. `Err`: a value that cannot be forwarded (the request is refused).
pub(super) fn claim_headers(
    claims: &str,
    wanted: &[(HeaderName, String)],
    arrays: Arrays,
    payload: Option<&HeaderName>,
) -> Result<Vec<(Option<HeaderName>, HeaderValue)>, String> {
    let mut out = Vec::with_capacity(wanted.len() + 1);
    if let Some(name) = payload {
        let encoded = crate::jws::b64::encode(claims.as_bytes());
        let v = HeaderValue::from_str(&encoded).map_err(|e| e.to_string())?;
        out.push((Some(name.clone()), v));
    }
    if wanted.is_empty() {
        return Ok(out);
    }
    // Verification refuses any claims document serde_json cannot read (json::MAX_DEPTH_CEILING, number
    // range), so this parse sees exactly what verification saw.
    let claims: Value =
        serde_json::from_str(claims).map_err(|e| format!("claims unreadable: {e}"))?;
    for (name, claim) in wanted {
        let value = match lookup(&claims, claim) {
            None => String::new(),
            Some(v) => render(v, arrays),
        };
        if value.len() > MAX_VALUE {
            return Err(format!(
                "claim {claim:?} is {} bytes as header {name}, more than {MAX_VALUE}",
                value.len()
            ));
        }
        // Only visible ASCII and spaces remain: always a valid header value.
        let v = HeaderValue::from_str(&value)
            .map_err(|_| format!("claim {claim:?} cannot be carried in header {name}"))?;
        out.push((Some(name.clone()), v));
    }
    Ok(out)
}

/// A claim value as header text (see the module documentation).
fn render(v: &Value, arrays: Arrays) -> String {
    let mut out = String::new();
    match (v, arrays) {
        (Value::Array(items), Arrays::Join(sep)) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(char::from(sep));
                }
                encode_into(&mut out, &scalar(item), Some(sep));
            }
        }
        _ => encode_into(&mut out, &scalar(v), None),
    }
    out
}

/// A string's text; anything else its compact JSON.
fn scalar(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

/// Appends `s`, percent-encoding `%`, controls, non-ASCII bytes and `sep`.
fn encode_into(out: &mut String, s: &str, sep: Option<u8>) {
    for &b in s.as_bytes() {
        if b == b'%' || b.is_ascii_control() || !b.is_ascii() || Some(b) == sep {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_header_name;
    use super::*;

    fn headers(claims: &str, names: &[&str], arrays: Arrays) -> Vec<(String, String)> {
        let wanted: Vec<(HeaderName, String)> = names
            .iter()
            .enumerate()
            .map(|(i, c)| (parse_header_name(&format!("x-{i}")).unwrap(), c.to_string()))
            .collect();
        claim_headers(claims, &wanted, arrays, None)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (n.unwrap().to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn claim_headers_are_always_answered_and_unambiguous() {
        let claims = r#"{"sub":"José","iss":"https://a","roles":["read","write admin"],"n":1.5,"ok":true,"obj":{"a":[1]},"address":{"country":"DE"},"https://x.example/team":"blue"}"#;
        let h = headers(
            claims,
            &[
                "sub",
                "iss",
                "roles",
                "n",
                "ok",
                "obj",
                "missing",
                "address.country",
                "https://x.example/team",
            ],
            Arrays::default(),
        );
        let got: Vec<&str> = h.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            got,
            vec![
                "Jos%C3%A9",
                "https://a",
                "read,write admin",
                "1.5",
                "true",
                r#"{"a":[1]}"#,
                "",
                "DE",
                "blue",
            ]
        );
        assert_eq!(decode(&h[0].1), "José");
        // Arrays as JSON, or joined with another separator.
        let json = headers(claims, &["roles"], Arrays::Json);
        assert_eq!(json[0].1, r#"["read","write admin"]"#);
        let spaced = headers(claims, &["roles"], Arrays::Join(b' '));
        assert_eq!(spaced[0].1, "read write%20admin");
        // An element holding the separator cannot be confused with two elements.
        let tricky = headers(r#"{"r":["a,b","c"]}"#, &["r"], Arrays::default());
        let two = headers(r#"{"r":["a","b","c"]}"#, &["r"], Arrays::default());
        assert_eq!(tricky[0].1, "a%2Cb,c");
        assert_ne!(tricky[0].1, two[0].1);
        let back: Vec<String> = tricky[0].1.split(',').map(decode).collect();
        assert_eq!(back, ["a,b", "c"]);
    }

    #[test]
    fn nothing_reaches_a_header_raw() {
        for (claims, want) in [
            (r#"{"sub":"a\r\nX-Admin: 1"}"#, "a%0D%0AX-Admin: 1"),
            (r#"{"sub":"a\u0000b"}"#, "a%00b"),
            (r#"{"sub":"a\tb\u007f"}"#, "a%09b%7F"),
            (r#"{"sub":"100%"}"#, "100%25"),
            (r#"{"sub":"日本"}"#, "%E6%97%A5%E6%9C%AC"),
        ] {
            let h = headers(claims, &["sub"], Arrays::default());
            assert_eq!(h[0].1, want, "{claims}");
            let v: Value = serde_json::from_str(claims).unwrap();
            assert_eq!(decode(&h[0].1), v["sub"].as_str().unwrap());
        }
        // Too long once encoded: refused, never cut.
        let long =
            serde_json::json!({"groups": (0..2000).map(|i| format!("g{i}")).collect::<Vec<_>>()});
        let wanted = vec![(parse_header_name("x-groups").unwrap(), "groups".to_string())];
        assert!(claim_headers(&long.to_string(), &wanted, Arrays::default(), None).is_err());
    }

    #[test]
    fn the_whole_payload_as_base64url() {
        let claims = r#"{"sub":"a","x":"ü"}"#;
        let name = parse_header_name("x-jwt-payload").unwrap();
        let h = claim_headers(claims, &[], Arrays::default(), Some(&name)).unwrap();
        let v = h[0].1.to_str().unwrap();
        let back = crate::jws::b64::decode(v.as_bytes()).unwrap();
        assert_eq!(back, claims.as_bytes());
    }

    #[test]
    fn array_separators() {
        assert_eq!(parse_arrays(","), Ok(Arrays::Join(b',')));
        assert_eq!(parse_arrays("json"), Ok(Arrays::Json));
        for bad in ["", "%", "ab", "\n", "é"] {
            assert!(parse_arrays(bad).is_err(), "{bad:?}");
        }
    }
}
