//! The JOSE header (RFC 7515 §4): parsed once, strictly, into the few facts verification needs.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use crate::alg::Alg;
use crate::error::Error;
use crate::json::{self, CowStr, Depth, Members, Scalar, Slot, StrictIgnore};

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
        let mut slot: Slot = None;
        let depth = Depth::new(max_depth);
        json::parse_with(
            bytes,
            HeaderSeed {
                slot: &mut slot,
                depth,
            },
        )
        .map_err(|e| json::take_error(&mut slot, e, "header"))
    }
}

struct HeaderSeed<'s> {
    slot: &'s mut Slot,
    depth: Depth,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = Header<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Header<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

fn string_member<'de, A: MapAccess<'de>>(
    map: &mut A,
    slot: &mut Slot,
    name: &str,
) -> Result<Cow<'de, str>, A::Error> {
    match map.next_value::<Scalar<'de>>()? {
        Scalar::Str(s) => Ok(s),
        other => Err(json::park(
            slot,
            Error::BadHeader(format!(
                "header member {name} must be a string, not {}",
                other.kind()
            )),
        )),
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = Header<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
        let slot = self.slot;
        let depth = self.depth.enter(slot)?;
        let mut members = Members::default();
        let mut alg: Option<Cow<'de, str>> = None;
        let mut kid = None;
        let mut typ = None;
        while let Some(CowStr(name)) = map.next_key()? {
            match &*name {
                "alg" => alg = Some(string_member(&mut map, slot, "alg")?),
                "kid" => kid = Some(string_member(&mut map, slot, "kid")?),
                "typ" => typ = Some(string_member(&mut map, slot, "typ")?),
                "cty" => {
                    string_member(&mut map, slot, "cty")?;
                }
                // RFC 7515 §4.1.11: a recipient that does not understand every listed extension must reject;
                // jwtd understands none, and an empty list is itself invalid.
                "crit" => return Err(json::park(slot, Error::CritUnsupported)),
                // RFC 7797 unencoded payloads change what is signed; only meaningful with crit anyway.
                "b64" => return Err(json::park(slot, Error::UnsupportedHeader("b64"))),
                // JWE-only members: this is an encrypted token's header, not a JWS one.
                "enc" => return Err(json::park(slot, Error::UnsupportedJwe)),
                "zip" => return Err(json::park(slot, Error::UnsupportedHeader("zip"))),
                _ => map.next_value_seed(StrictIgnore {
                    slot: &mut *slot,
                    depth,
                })?,
            }
            if let Err(e) = members.insert(name) {
                return Err(json::park(slot, e));
            }
        }
        let Some(alg_name) = alg else {
            return Err(json::park(
                slot,
                Error::BadHeader("header has no alg".into()),
            ));
        };
        let Some(alg) = Alg::from_name(&alg_name) else {
            return Err(json::park(
                slot,
                Error::AlgNotAllowed(alg_name.into_owned()),
            ));
        };
        Ok(Header { alg, kid, typ })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Header<'de>, A::Error> {
        Err(json::park(self.slot, not_object("an array")))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Header<'de>, E> {
        Err(json::park(self.slot, not_object("a string")))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Header<'de>, E> {
        Err(json::park(self.slot, not_object("a boolean")))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Header<'de>, E> {
        Err(json::park(self.slot, not_object("a number")))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Header<'de>, E> {
        Err(json::park(self.slot, not_object("a number")))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Header<'de>, E> {
        Err(json::park(self.slot, not_object("a number")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Header<'de>, E> {
        Err(json::park(self.slot, not_object("null")))
    }
}

fn not_object(kind: &str) -> Error {
    Error::BadJson(format!("header is {kind}, not a JSON object"))
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
