//! The discovery document (OpenID Connect Discovery 1.0 §3, RFC 8414 §2): only `issuer` and `jwks_uri` are
//! read, with the strict JSON reader (duplicates of either are refused, like everywhere else in jwtd), and
//! `issuer` must equal the configured `iss` exactly (OIDC Discovery §4.3: a document for another issuer is
//! a mix-up, whatever else it says).

use crate::json::{Kind, Reader};

/// The well-known URL of `iss`'s discovery document (OIDC Discovery §4: `iss` + `/.well-known/
/// openid-configuration`, with a trailing `/` of `iss` removed first).
pub fn url(iss: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        iss.trim_end_matches('/')
    )
}

/// Why a discovery document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the discovery document is not valid JSON: {0}")]
    Json(String),
    #[error("the discovery document has no {0}")]
    Missing(&'static str),
    #[error("the discovery document has {0} twice")]
    Duplicate(&'static str),
    #[error("the discovery document's {0} is not a string")]
    NotAString(&'static str),
    #[error("the discovery document is for issuer {found:?}, not the configured {expected:?}")]
    WrongIssuer { expected: String, found: String },
}

/// Reads `body` and returns its `jwks_uri`, checking that its `issuer` is `expected_iss`.
pub fn jwks_uri(body: &[u8], expected_iss: &str) -> Result<String, DiscoveryError> {
    let json = |e: crate::error::Error| DiscoveryError::Json(e.to_string());
    let mut r = Reader::from_bytes(body, 32, "discovery document").map_err(json)?;
    r.begin_document_object("a JSON object").map_err(json)?;
    let (mut issuer, mut jwks_uri) = (None::<String>, None::<String>);
    let mut first = true;
    while let Some(name) = r.next_key(&mut first).map_err(json)? {
        let (slot, field) = match &*name {
            "issuer" => (&mut issuer, "issuer"),
            "jwks_uri" => (&mut jwks_uri, "jwks_uri"),
            _ => {
                r.skip().map_err(json)?;
                continue;
            }
        };
        if slot.is_some() {
            return Err(DiscoveryError::Duplicate(field));
        }
        if r.peek().map_err(json)? != Kind::String {
            return Err(DiscoveryError::NotAString(field));
        }
        *slot = Some(r.string().map_err(json)?.into_owned());
    }
    r.finish().map_err(json)?;
    let issuer = issuer.ok_or(DiscoveryError::Missing("issuer"))?;
    if issuer != expected_iss {
        return Err(DiscoveryError::WrongIssuer {
            expected: expected_iss.to_string(),
            found: issuer,
        });
    }
    jwks_uri.ok_or(DiscoveryError::Missing("jwks_uri"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://login.example.com";

    #[test]
    fn reads_jwks_uri_of_the_configured_issuer_only() {
        let doc = br#"{"issuer":"https://login.example.com","jwks_uri":"https://login.example.com/jwks","scopes_supported":["openid"],"x":{"y":[1,2,{"z":null}]}}"#;
        assert_eq!(
            jwks_uri(doc, ISS).unwrap(),
            "https://login.example.com/jwks"
        );
        // Exact comparison: a trailing slash, case or another host is another issuer.
        for other in [
            "https://login.example.com/",
            "https://LOGIN.example.com",
            "https://evil.example",
        ] {
            let doc = format!(r#"{{"issuer":"{other}","jwks_uri":"https://x/jwks"}}"#);
            assert!(
                matches!(
                    jwks_uri(doc.as_bytes(), ISS),
                    Err(DiscoveryError::WrongIssuer { .. })
                ),
                "{other}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_clean_document() {
        let cases: &[(&[u8], DiscoveryError)] = &[
            (
                br#"{"jwks_uri":"https://x/jwks"}"#,
                DiscoveryError::Missing("issuer"),
            ),
            (
                br#"{"issuer":"https://login.example.com"}"#,
                DiscoveryError::Missing("jwks_uri"),
            ),
            (
                br#"{"issuer":"https://login.example.com","jwks_uri":"a","jwks_uri":"b"}"#,
                DiscoveryError::Duplicate("jwks_uri"),
            ),
            (
                br#"{"issuer":"https://login.example.com","jwks_uri":7}"#,
                DiscoveryError::NotAString("jwks_uri"),
            ),
        ];
        for (doc, want) in cases {
            assert_eq!(jwks_uri(doc, ISS).unwrap_err(), *want);
        }
        for garbage in [&b"<html>"[..], b"[]", b"{\"issuer\":", b"{} trailing", b""] {
            assert!(matches!(
                jwks_uri(garbage, ISS),
                Err(DiscoveryError::Json(_))
            ));
        }
    }

    #[test]
    fn well_known_url() {
        assert_eq!(
            url("https://a.example/tenant/"),
            "https://a.example/tenant/.well-known/openid-configuration"
        );
        assert_eq!(
            url("https://a.example"),
            "https://a.example/.well-known/openid-configuration"
        );
    }
}
