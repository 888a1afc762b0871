//! The JOSE header (RFC 7515 §4): parsed once, strictly, into the few facts verification needs.

use std::borrow::Cow;

use crate::alg::Alg;
use crate::error::Error;
use crate::json::{Kind, Members, Reader};

/// The header facts jwtd acts on. Everything else in the header is checked for duplicates and ignored;
/// in particular `jwk`, `jku`, `x5u` and `x5c` are never used: a token cannot bring its own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub alg: Alg,
    /// Only ever a lookup key into the configured key set, never a path, URL or query.
    pub kid: Option<Cow<'a, str>>,
    pub typ: Option<Cow<'a, str>>,
}

impl<'a> Header<'a> {
    /// Parses the decoded header bytes. `max_depth` caps nesting in ignored members.
    pub fn parse(bytes: &'a [u8], max_depth: usize) -> Result<Header<'a>, Error> {
        let mut r = Reader::from_bytes(bytes, max_depth, "header")?;
        r.begin_document_object("a JSON object")?;
        let mut members = Members::default();
        let (mut alg, mut kid, mut typ) = (None, None, None);
        let mut first = true;
        while let Some(name) = r.next_key(&mut first)? {
            // Record the name before reading the value so that it need not live across the value parser.
            let which = match &*name {
                "alg" => Member::Alg,
                "kid" => Member::Kid,
                "typ" => Member::Typ,
                "cty" => Member::Cty,
                // RFC 7515 §4.1.11: a recipient that does not understand every listed extension must reject;
                // jwtd understands none, and an empty list is itself invalid.
                "crit" => return Err(Error::CritUnsupported),
                // RFC 7797 unencoded payloads change what is signed; only meaningful with crit anyway.
                "b64" => return Err(Error::UnsupportedHeader("b64")),
                // A JWE-only member: this is an encrypted token's header, not a JWS one.
                "enc" => return Err(Error::UnsupportedJwe),
                "zip" => return Err(Error::UnsupportedHeader("zip")),
                _ => Member::Other,
            };
            members.insert(name)?;
            match which {
                Member::Alg => alg = Some(string_member(&mut r, "alg")?),
                Member::Kid => kid = Some(string_member(&mut r, "kid")?),
                Member::Typ => typ = Some(string_member(&mut r, "typ")?),
                Member::Cty => {
                    string_member(&mut r, "cty")?;
                }
                Member::Other => r.skip()?,
            }
        }
        r.finish()?;
        let alg_name = alg.ok_or_else(|| Error::BadHeader("header has no alg".into()))?;
        let alg =
            Alg::from_name(&alg_name).ok_or_else(|| Error::AlgNotAllowed(alg_name.into_owned()))?;
        Ok(Header { alg, kid, typ })
    }
}

enum Member {
    Alg,
    Kid,
    Typ,
    Cty,
    Other,
}

fn string_member<'a>(r: &mut Reader<'a>, name: &str) -> Result<Cow<'a, str>, Error> {
    match r.peek()? {
        Kind::String => r.string(),
        other => Err(Error::BadHeader(format!(
            "header member {name} must be a string, not {}",
            other.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(h: &str) -> &'static str {
        Header::parse(h.as_bytes(), 32).unwrap_err().code()
    }

    #[test]
    fn parses_the_facts() {
        let h =
            Header::parse(br#"{"alg":"ES256","kid":"k1","typ":"JWT","x5t":"abc"}"#, 32).unwrap();
        assert_eq!(h.alg, Alg::ES256);
        assert_eq!(h.kid.as_deref(), Some("k1"));
        assert_eq!(h.typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn strict_rules() {
        assert_eq!(code(r#"{"typ":"JWT"}"#), "bad_header");
        assert_eq!(code(r#"{"alg":"none"}"#), "alg_not_allowed");
        assert_eq!(code(r#"{"alg":"hs256"}"#), "alg_not_allowed");
        assert_eq!(code(r#"{"alg":256}"#), "bad_header");
        assert_eq!(code(r#"{"alg":"HS256","kid":7}"#), "bad_header");
        assert_eq!(code(r#"{"alg":"HS256","alg":"none"}"#), "duplicate_member");
        assert_eq!(
            code(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#),
            "crit_unsupported"
        );
        assert_eq!(code(r#"{"alg":"HS256","crit":[]}"#), "crit_unsupported");
        assert_eq!(code(r#"{"alg":"HS256","b64":false}"#), "unsupported_header");
        assert_eq!(
            code(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
            "unsupported_jwe"
        );
        assert_eq!(code(r#"["alg"]"#), "bad_json");
        assert_eq!(code(r#"{"alg":"HS256"} x"#), "bad_json");
        assert_eq!(
            code(r#"{"alg":"HS256","x":{"a":1,"a":2}}"#),
            "duplicate_member"
        );
    }
}
