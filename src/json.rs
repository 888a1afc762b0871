//! Strict JSON helpers shared by header and claims parsing: a cheap pre-scan (nesting depth, insignificant
//! whitespace), whitespace-free compaction, and duplicate-member detection at every depth.
//!
//! serde_json alone keeps the last of duplicate members and allows 128 levels of nesting; RFC 7515 §5.2 and
//! RFC 8725 §3.x want one meaning per token, so duplicates are errors here, wherever they occur.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::Error;

/// True when `bytes` (a JSON document) has whitespace outside its strings, i.e. is not compact.
///
/// Raw tab, CR and LF cannot occur inside JSON strings, so any of them answers yes; a document with no
/// whitespace byte at all answers no after two SIMD passes. Only a document with spaces needs the
/// string-aware scan.
pub fn has_insignificant_whitespace(bytes: &[u8]) -> bool {
    if memchr::memchr3(b'\t', b'\n', b'\r', bytes).is_some() {
        return true;
    }
    if memchr::memchr(b' ', bytes).is_none() {
        return false;
    }
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        match bytes[i] {
            b'"' => {
                // Skip the string body: only `"` and `\` matter inside it.
                i += 1;
                while i < n {
                    match bytes[i] {
                        b'"' => break,
                        b'\\' => i += 2,
                        _ => i += 1,
                    }
                }
            }
            b' ' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Removes whitespace outside strings. Only meaningful for a document the parser has accepted.
pub fn compact(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'"' => {
                    in_string = true;
                    out.push(b);
                }
                _ => out.push(b),
            }
        }
    }
    out
}

/// A JSON string that borrows from the input when it has no escapes.
pub struct CowStr<'de>(pub Cow<'de, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A member value read as a scalar; arrays and objects are consumed and reported by kind only.
pub enum Scalar<'de> {
    Str(Cow<'de, str>),
    Num(f64),
    Other(&'static str),
}

impl Scalar<'_> {
    /// The JSON kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Num(_) => "a number",
            Scalar::Other(k) => k,
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other("a boolean"))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Member names seen in one object; rejects a repeat. The usual handful live inline with a hash each, so
/// detection costs no allocation; escaped names and large objects spill to the heap (hashed beyond a few
/// dozen, so a hostile object with thousands of members stays linear).
pub struct Members<'de> {
    inline: [(u64, &'de str); Members::INLINE],
    len: usize,
    spill: Vec<(u64, Cow<'de, str>)>,
    large: Option<HashSet<Cow<'de, str>>>,
}

impl Default for Members<'_> {
    fn default() -> Self {
        Members {
            inline: [(0, ""); Members::INLINE],
            len: 0,
            spill: Vec::new(),
            large: None,
        }
    }
}

/// FNV-1a: names are short, and this only pre-filters string comparisons.
fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl<'de> Members<'de> {
    const INLINE: usize = 16;
    const LINEAR_MAX: usize = 32;

    /// Records `name`; `Err(DuplicateMember)` if it was already there.
    pub fn insert(&mut self, name: Cow<'de, str>) -> Result<(), Error> {
        if self.contains(&name) {
            return Err(Error::DuplicateMember(name.into_owned()));
        }
        if let Some(set) = &mut self.large {
            set.insert(name);
            return Ok(());
        }
        let h = name_hash(&name);
        match name {
            Cow::Borrowed(b) if self.len < Self::INLINE => {
                self.inline[self.len] = (h, b);
                self.len += 1;
            }
            name => {
                self.spill.push((h, name));
                if self.spill.len() > Self::LINEAR_MAX {
                    let mut set: HashSet<Cow<'de, str>> =
                        self.spill.drain(..).map(|(_, n)| n).collect();
                    set.extend(
                        self.inline[..self.len]
                            .iter()
                            .map(|&(_, n)| Cow::Borrowed(n)),
                    );
                    self.len = 0;
                    self.large = Some(set);
                }
            }
        }
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        if let Some(set) = &self.large {
            return set.contains(name);
        }
        let h = name_hash(name);
        self.inline[..self.len]
            .iter()
            .any(|&(k, n)| k == h && n == name)
            || self.spill.iter().any(|(k, n)| *k == h && n == name)
    }
}

/// Where a visitor parks the precise [`Error`] behind the opaque serde error it must return.
pub type Slot = Option<Error>;

/// Turns a serde_json failure into our error, preferring the precise one a visitor parked in `slot`.
pub fn take_error(slot: &mut Slot, e: serde_json::Error, what: &str) -> Error {
    if let Some(err) = slot.take() {
        return err;
    }
    if e.to_string().contains("recursion limit") {
        return Error::TooDeep(128);
    }
    Error::BadJson(format!(
        "{what} is not valid JSON: {}",
        e.to_string().replace('\n', " ")
    ))
}

/// Parks `err` and returns the serde error that unwinds the parser.
pub fn park<E: de::Error>(slot: &mut Slot, err: Error) -> E {
    let msg = err.to_string();
    *slot = Some(err);
    E::custom(msg)
}

/// How many more levels of arrays and objects a value may open, and the cap to report.
#[derive(Debug, Clone, Copy)]
pub struct Depth {
    pub left: usize,
    pub max: usize,
}

impl Depth {
    /// A document may nest `max` levels (the top-level object is level 1).
    pub fn new(max: usize) -> Depth {
        Depth { left: max, max }
    }

    /// Enters one level; `Err` (parked in `slot`) past the cap.
    pub fn enter<E: de::Error>(self, slot: &mut Slot) -> Result<Depth, E> {
        match self.left.checked_sub(1) {
            Some(left) => Ok(Depth {
                left,
                max: self.max,
            }),
            None => Err(park(slot, Error::TooDeep(self.max))),
        }
    }
}

/// Walks and discards any JSON value, rejecting duplicate members in every object inside it and nesting
/// beyond the depth cap (checked as the parser descends, before serde_json's own limit of 128).
pub struct StrictIgnore<'s> {
    pub slot: &'s mut Slot,
    pub depth: Depth,
}

impl<'de> DeserializeSeed<'de> for StrictIgnore<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictIgnore<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth.enter(self.slot)?;
        while seq
            .next_element_seed(StrictIgnore {
                slot: &mut *self.slot,
                depth,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = self.depth.enter(self.slot)?;
        let mut members = Members::default();
        while let Some(CowStr(name)) = map.next_key()? {
            if let Err(e) = members.insert(name) {
                return Err(park(self.slot, e));
            }
            map.next_value_seed(StrictIgnore {
                slot: &mut *self.slot,
                depth,
            })?;
        }
        Ok(())
    }
}

/// Parses a whole document with `seed`, requiring nothing but whitespace after it.
pub fn parse_with<'de, S: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    seed: S,
) -> Result<S::Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = seed.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(doc: &str) -> Result<(), Error> {
        let mut slot = None;
        parse_with(
            doc.as_bytes(),
            StrictIgnore {
                slot: &mut slot,
                depth: Depth::new(32),
            },
        )
        .map_err(|e| take_error(&mut slot, e, "doc"))
    }

    #[test]
    fn duplicates_rejected_at_any_depth_even_when_escaped() {
        assert!(strict(r#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
        assert_eq!(
            strict(r#"{"a":1,"a":2}"#).unwrap_err().code(),
            "duplicate_member"
        );
        assert_eq!(
            strict(r#"{"x":[{"d":1,"d":2}]}"#).unwrap_err().code(),
            "duplicate_member"
        );
        assert_eq!(
            strict(r#"{"ab":1,"a\u0062":2}"#).unwrap_err().code(),
            "duplicate_member"
        );
    }

    #[test]
    fn many_members_switch_to_hashing_and_still_catch_duplicates() {
        let mut doc = String::from("{");
        for i in 0..100 {
            doc.push_str(&format!("\"k{i}\":{i},"));
        }
        assert!(strict(&format!("{}\"z\":0}}", doc)).is_ok());
        assert_eq!(
            strict(&format!("{}\"k7\":0}}", doc)).unwrap_err().code(),
            "duplicate_member"
        );
    }

    #[test]
    fn depth_is_capped_as_the_parser_descends() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(strict(&deep).unwrap_err().code(), "too_deep");
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(strict(&ok).is_ok());
        let over = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert_eq!(strict(&over).unwrap_err().code(), "too_deep");
        assert!(strict(r#"{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#).is_ok());
    }

    #[test]
    fn whitespace_outside_strings_is_found() {
        assert!(!has_insignificant_whitespace(br#"{"a":"x y","b":[1,2]}"#));
        assert!(!has_insignificant_whitespace(br#"{"a":"x\" y"}"#));
        assert!(has_insignificant_whitespace(b"{\"a\": 1}"));
        assert!(has_insignificant_whitespace(b"{\"a\":1}\n"));
        assert!(has_insignificant_whitespace(br#"{"a":"x y" }"#));
    }

    #[test]
    fn compact_keeps_string_contents() {
        let doc = b"{ \"a b\" :\r\n [1, \"c \\\" d\"] }";
        assert_eq!(compact(doc), b"{\"a b\":[1,\"c \\\" d\"]}".to_vec());
    }
}
