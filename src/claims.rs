//! The registered-claims policy (RFC 7519 §4.1, RFC 8725, RFC 9068): time rules with leeway, issuer,
//! audience, subject, required claims and explicit typing. Time is an argument; nothing here reads a clock.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::Error;
use crate::json::{self, CowStr, Depth, Members, Scalar, Slot, StrictIgnore};

/// What a verifier demands of a token's claims. `Policy::default()` is the safe starting point:
/// `exp` required, 60 s leeway, `typ` absent, `JWT` or `at+jwt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    /// Reject tokens without `exp` (default true: a token without expiry is valid forever).
    pub require_exp: bool,
    /// Reject tokens whose `iat` is older than this many seconds (requires `iat`).
    pub max_age: Option<u64>,
    /// Accepted `iss` values; `None` accepts any issuer (and none).
    pub issuers: Option<Vec<String>>,
    /// Accepted audiences; the token's `aud` must name at least one. With `None`, a token that carries `aud`
    /// is rejected (RFC 7519 §4.1.3: a recipient must identify itself with a value in `aud`).
    pub audiences: Option<Vec<String>>,
    /// Reject tokens without `sub`.
    pub require_sub: bool,
    /// Further claims that must be present (any value).
    pub required_claims: Vec<String>,
    /// Accepted `typ` header values (RFC 8725 §3.11), compared as RFC 7515 §4.1.9 says: case-insensitively,
    /// with an `application/` prefix ignored.
    pub types: Vec<String>,
    /// Accept tokens with no `typ` header (default true: many identity providers send none).
    pub allow_missing_typ: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            leeway: 60,
            require_exp: true,
            max_age: None,
            issuers: None,
            audiences: None,
            require_sub: false,
            required_claims: Vec::new(),
            types: vec!["JWT".into(), "at+jwt".into()],
            allow_missing_typ: true,
        }
    }
}

/// RFC 7515 §4.1.9: `typ` compares case-insensitively, with an `application/` prefix optional.
fn media_type_eq(a: &str, b: &str) -> bool {
    fn bare(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &s[12..],
            _ => s,
        }
    }
    bare(a).eq_ignore_ascii_case(bare(b))
}

/// A string claim: a span of the verified payload when it had no escapes, owned otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Span { start: u32, len: u32 },
    Owned(Box<str>),
}

impl Text {
    pub(crate) fn new(s: Cow<'_, str>, base: &[u8]) -> Text {
        let start = (s.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        match s {
            Cow::Borrowed(b) if start <= base.len() && start + b.len() <= base.len() => {
                Text::Span {
                    start: start as u32,
                    len: b.len() as u32,
                }
            }
            other => Text::Owned(other.into_owned().into_boxed_str()),
        }
    }

    pub fn resolve<'a>(&'a self, base: &'a str) -> &'a str {
        match self {
            Text::Span { start, len } => base
                .get(*start as usize..(*start + *len) as usize)
                .unwrap_or(""),
            Text::Owned(s) => s,
        }
    }
}

/// The registered claims of a verified token, with strings kept as spans of its payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Registered {
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub iat: Option<f64>,
    pub iss: Option<Text>,
    pub sub: Option<Text>,
    pub jti: Option<Text>,
}

impl Policy {
    /// Checks a token's `typ` header against the accepted types.
    pub fn check_typ(&self, typ: Option<&str>) -> Result<(), Error> {
        match typ {
            None if self.allow_missing_typ => Ok(()),
            None => Err(Error::WrongType("(missing)".into())),
            Some(t) if self.types.iter().any(|a| media_type_eq(a, t)) => Ok(()),
            Some(t) => Err(Error::WrongType(t.to_string())),
        }
    }

    /// Parses the payload `bytes` as a claims object (nesting capped at `max_depth`) and applies every rule
    /// at `now` (Unix seconds). `base` is the buffer string spans are measured from.
    pub fn check(
        &self,
        bytes: &[u8],
        base: &[u8],
        now: u64,
        max_depth: usize,
    ) -> Result<Registered, Error> {
        let mut slot: Slot = None;
        let seed = ClaimsSeed {
            slot: &mut slot,
            policy: self,
            base,
            depth: Depth::new(max_depth),
        };
        let parsed =
            json::parse_with(bytes, seed).map_err(|e| json::take_error(&mut slot, e, "payload"))?;
        self.check_parsed(&parsed, now)?;
        Ok(parsed.registered)
    }

    fn check_parsed(&self, p: &Parsed<'_>, now: u64) -> Result<(), Error> {
        let now = now as f64;
        let leeway = self.leeway as f64;
        let r = &p.registered;
        match r.exp {
            Some(exp) if now >= exp + leeway => return Err(Error::Expired),
            None if self.require_exp => return Err(Error::MissingClaim("exp".into())),
            _ => {}
        }
        if let Some(nbf) = r.nbf
            && now + leeway < nbf
        {
            return Err(Error::NotYetValid);
        }
        if let Some(iat) = r.iat
            && iat > now + leeway
        {
            return Err(Error::IssuedInFuture);
        }
        if let Some(max_age) = self.max_age {
            match r.iat {
                None => return Err(Error::MissingClaim("iat".into())),
                Some(iat) if now - iat > max_age as f64 + leeway => return Err(Error::TooOld),
                _ => {}
            }
        }
        if self.issuers.is_some() {
            match p.issuer_ok {
                None => return Err(Error::MissingClaim("iss".into())),
                Some(false) => return Err(Error::WrongIssuer),
                Some(true) => {}
            }
        }
        match (&self.audiences, p.audience_ok) {
            (Some(_), None) => return Err(Error::MissingClaim("aud".into())),
            (_, Some(false)) => return Err(Error::WrongAudience),
            _ => {}
        }
        if self.require_sub && r.sub.is_none() {
            return Err(Error::MissingClaim("sub".into()));
        }
        if let Some(missing) = p.missing {
            return Err(Error::MissingClaim(missing.to_string()));
        }
        Ok(())
    }
}

struct Parsed<'p> {
    registered: Registered,
    /// `None`: no `iss`; `Some(ok)`: whether it is accepted (always true without an issuer policy).
    issuer_ok: Option<bool>,
    /// `None`: no `aud`; `Some(ok)`: whether one value is accepted.
    audience_ok: Option<bool>,
    /// The first required claim that is absent.
    missing: Option<&'p str>,
}

struct ClaimsSeed<'s, 'p> {
    slot: &'s mut Slot,
    policy: &'p Policy,
    base: &'p [u8],
    depth: Depth,
}

impl<'de, 'p> DeserializeSeed<'de> for ClaimsSeed<'_, 'p> {
    type Value = Parsed<'p>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed<'p>, D::Error> {
        d.deserialize_any(self)
    }
}

fn bad_type(name: &str, want: &str, got: &Scalar) -> Error {
    Error::BadClaim(format!("claim {name} must be {want}, not {}", got.kind()))
}

impl<'de, 'p> Visitor<'de> for ClaimsSeed<'_, 'p> {
    type Value = Parsed<'p>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'p>, A::Error> {
        let slot = self.slot;
        let depth = self.depth.enter(slot)?;
        let mut members = Members::default();
        let mut p = Parsed {
            registered: Registered::default(),
            issuer_ok: None,
            audience_ok: None,
            missing: None,
        };
        while let Some(CowStr(name)) = map.next_key()? {
            match &*name {
                "exp" | "nbf" | "iat" => {
                    let t = match map.next_value::<Scalar>()? {
                        Scalar::Num(t) => t,
                        other => {
                            return Err(json::park(
                                slot,
                                bad_type(&name, "a NumericDate (number)", &other),
                            ));
                        }
                    };
                    let field = match &*name {
                        "exp" => &mut p.registered.exp,
                        "nbf" => &mut p.registered.nbf,
                        _ => &mut p.registered.iat,
                    };
                    *field = Some(t);
                }
                "iss" | "sub" | "jti" => {
                    let s = match map.next_value::<Scalar>()? {
                        Scalar::Str(s) => s,
                        other => return Err(json::park(slot, bad_type(&name, "a string", &other))),
                    };
                    if &*name == "iss" {
                        p.issuer_ok = Some(
                            self.policy
                                .issuers
                                .as_ref()
                                .is_none_or(|set| set.iter().any(|i| *i == s)),
                        );
                    }
                    let text = Some(Text::new(s, self.base));
                    match &*name {
                        "iss" => p.registered.iss = text,
                        "sub" => p.registered.sub = text,
                        _ => p.registered.jti = text,
                    }
                }
                "aud" => {
                    let ok = map.next_value_seed(AudSeed {
                        slot: &mut *slot,
                        accepted: self.policy.audiences.as_deref(),
                    })?;
                    p.audience_ok = Some(ok);
                }
                _ => map.next_value_seed(StrictIgnore {
                    slot: &mut *slot,
                    depth,
                })?,
            }
            if let Err(e) = members.insert(name) {
                return Err(json::park(slot, e));
            }
        }
        p.missing = self
            .policy
            .required_claims
            .iter()
            .find(|c| !members.contains(c))
            .map(String::as_str);
        Ok(p)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Parsed<'p>, A::Error> {
        Err(json::park(self.slot, not_object("an array")))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parsed<'p>, E> {
        Err(json::park(self.slot, not_object("a string")))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Parsed<'p>, E> {
        Err(json::park(self.slot, not_object("a boolean")))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Parsed<'p>, E> {
        Err(json::park(self.slot, not_object("a number")))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Parsed<'p>, E> {
        Err(json::park(self.slot, not_object("a number")))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Parsed<'p>, E> {
        Err(json::park(self.slot, not_object("a number")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Parsed<'p>, E> {
        Err(json::park(self.slot, not_object("null")))
    }
}

fn not_object(kind: &str) -> Error {
    Error::BadJson(format!("payload is {kind}, not a JSON object of claims"))
}

/// `aud`: a string or an array of strings (RFC 7519 §4.1.3). Yields whether one value is accepted.
struct AudSeed<'s, 'p> {
    slot: &'s mut Slot,
    accepted: Option<&'p [String]>,
}

impl AudSeed<'_, '_> {
    fn accepts(&self, v: &str) -> bool {
        self.accepted.is_some_and(|set| set.iter().any(|a| a == v))
    }
}

impl<'de> DeserializeSeed<'de> for AudSeed<'_, '_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AudSeed<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.accepts(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut ok = false;
        while let Some(item) = seq.next_element::<Scalar>()? {
            match item {
                Scalar::Str(s) => ok |= self.accepts(&s),
                other => {
                    return Err(json::park(
                        self.slot,
                        bad_type("aud", "a string or an array of strings", &other),
                    ));
                }
            }
        }
        Ok(ok)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(json::park(
            self.slot,
            bad_type(
                "aud",
                "a string or an array of strings",
                &Scalar::Other("an object"),
            ),
        ))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Err(json::park(
            self.slot,
            bad_type(
                "aud",
                "a string or an array of strings",
                &Scalar::Other("a boolean"),
            ),
        ))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Err(json::park(
            self.slot,
            bad_type("aud", "a string or an array of strings", &Scalar::Num(0.0)),
        ))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Err(json::park(
            self.slot,
            bad_type("aud", "a string or an array of strings", &Scalar::Num(0.0)),
        ))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Err(json::park(
            self.slot,
            bad_type("aud", "a string or an array of strings", &Scalar::Num(0.0)),
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Err(json::park(
            self.slot,
            bad_type(
                "aud",
                "a string or an array of strings",
                &Scalar::Other("null"),
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn check(policy: &Policy, claims: &str) -> Result<Registered, Error> {
        policy.check(claims.as_bytes(), claims.as_bytes(), NOW, 32)
    }

    fn code(policy: &Policy, claims: &str) -> &'static str {
        check(policy, claims).unwrap_err().code()
    }

    #[test]
    fn time_rules_with_leeway() {
        let p = Policy::default();
        assert!(check(&p, &format!(r#"{{"exp":{}}}"#, NOW + 1)).is_ok());
        assert!(
            check(&p, &format!(r#"{{"exp":{}}}"#, NOW - 59)).is_ok(),
            "inside leeway"
        );
        assert_eq!(code(&p, &format!(r#"{{"exp":{}}}"#, NOW - 60)), "expired");
        assert!(
            check(&p, &format!(r#"{{"exp":{}.5}}"#, NOW)).is_ok(),
            "fractional"
        );
        assert_eq!(code(&p, r#"{"sub":"x"}"#), "missing_claim");
        assert_eq!(code(&p, r#"{"exp":"1700000000"}"#), "bad_claim");
        assert_eq!(code(&p, r#"{"exp":null}"#), "bad_claim");
        assert_eq!(code(&p, r#"{"exp":true}"#), "bad_claim");
        let exp = NOW + 1000;
        assert_eq!(
            code(&p, &format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 61)),
            "not_yet_valid"
        );
        assert!(check(&p, &format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 60)).is_ok());
        assert_eq!(
            code(&p, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW + 61)),
            "issued_in_future"
        );
        let aged = Policy {
            max_age: Some(300),
            ..Policy::default()
        };
        assert_eq!(
            code(&aged, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW - 361)),
            "too_old"
        );
        assert!(check(&aged, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW - 100)).is_ok());
        assert_eq!(code(&aged, &format!(r#"{{"exp":{exp}}}"#)), "missing_claim");
    }

    #[test]
    fn issuer_audience_subject_required() {
        let exp = NOW + 100;
        let p = Policy {
            issuers: Some(vec!["https://idp".into()]),
            audiences: Some(vec!["api".into(), "web".into()]),
            require_sub: true,
            required_claims: vec!["scope".into()],
            ..Policy::default()
        };
        let ok = format!(
            r#"{{"exp":{exp},"iss":"https://idp","aud":["x","web"],"sub":"u","scope":""}}"#
        );
        assert!(check(&p, &ok).is_ok());
        let single =
            format!(r#"{{"exp":{exp},"iss":"https://idp","aud":"api","sub":"u","scope":1}}"#);
        assert!(check(&p, &single).is_ok());
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"evil","aud":"api","sub":"u"}}"#)
            ),
            "wrong_issuer"
        );
        assert_eq!(
            code(&p, &format!(r#"{{"exp":{exp},"aud":"api","sub":"u"}}"#)),
            "missing_claim"
        );
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"https://idp","aud":["x"],"sub":"u"}}"#)
            ),
            "wrong_audience"
        );
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"https://idp","aud":[1],"sub":"u"}}"#)
            ),
            "bad_claim"
        );
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"https://idp","aud":"api","scope":1}}"#)
            ),
            "missing_claim"
        );
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"https://idp","aud":"api","sub":"u"}}"#)
            ),
            "missing_claim"
        );
        // No audience configured: a token addressed to someone is not for us.
        assert_eq!(
            code(
                &Policy::default(),
                &format!(r#"{{"exp":{exp},"aud":"api"}}"#)
            ),
            "wrong_audience"
        );
    }

    #[test]
    fn duplicates_and_shape() {
        let p = Policy::default();
        assert_eq!(code(&p, r#"{"exp":1,"exp":2}"#), "duplicate_member");
        assert_eq!(
            code(&p, r#"{"exp":99999999999,"a":{"b":1,"b":2}}"#),
            "duplicate_member"
        );
        assert_eq!(code(&p, r#"[1]"#), "bad_json");
        assert_eq!(code(&p, r#"{"exp":1"#), "bad_json");
    }

    #[test]
    fn typ_rules() {
        let p = Policy::default();
        assert!(p.check_typ(None).is_ok());
        assert!(p.check_typ(Some("JWT")).is_ok());
        assert!(p.check_typ(Some("jwt")).is_ok());
        assert!(p.check_typ(Some("application/at+jwt")).is_ok());
        assert_eq!(
            p.check_typ(Some("secevent+jwt")).unwrap_err().code(),
            "wrong_type"
        );
        let strict = Policy {
            types: vec!["at+jwt".into()],
            allow_missing_typ: false,
            ..Policy::default()
        };
        assert_eq!(strict.check_typ(None).unwrap_err().code(), "wrong_type");
        assert_eq!(
            strict.check_typ(Some("JWT")).unwrap_err().code(),
            "wrong_type"
        );
    }

    #[test]
    fn spans_resolve_and_escaped_strings_are_owned() {
        let doc = r#"{"exp":99999999999,"iss":"plain","sub":"a\"b"}"#;
        let r = check(&Policy::default(), doc).unwrap();
        assert_eq!(r.iss.as_ref().unwrap().resolve(doc), "plain");
        assert!(matches!(r.iss, Some(Text::Span { .. })));
        assert_eq!(r.sub.as_ref().unwrap().resolve(doc), "a\"b");
        assert!(matches!(r.sub, Some(Text::Owned(_))));
    }
}
