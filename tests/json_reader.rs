//! The strict JSON reader against serde_json on generated and mutated documents: it accepts exactly what
//! serde_json accepts, except where it is stricter by design (duplicate members, nesting past the cap), and
//! it reads the same strings and numbers.

use jwtd::json::{self, Kind, Reader};
use proptest::prelude::*;
use serde_json::Value;

/// Generates JSON text with optional whitespace, escapes, unicode and duplicate keys.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        "[a-z é😀\\\\\"\\n\\t\\u{0}-\\u{1f}]{0,12}"
            .prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#""\ud83d\ude00 \u00e9 \/""#.to_string()),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-c]{1,2}", inner), 0..5).prop_map(|members| {
                let body: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

fn spaced(doc: &str, seed: u64) -> String {
    // Insert whitespace after structural characters outside strings, deterministically from `seed`.
    let mut out = String::new();
    let mut in_str = false;
    let mut esc = false;
    let mut s = seed;
    for c in doc.chars() {
        out.push(c);
        if in_str {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if matches!(c, ',' | ':' | '[' | '{') {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push_str([" ", "", "\n", "\t ", "\r\n"][(s >> 60) as usize % 5]);
        }
    }
    out
}

/// serde_json's verdict, parsing into `Value` (ignoring would skip UTF-8 validation of strings). Numbers
/// beyond f64's range are refused by both (the reader range-checks every number, read or skipped).
fn serde_verdict(doc: &[u8]) -> Option<bool> {
    Some(serde_json::from_slice::<Value>(doc).is_ok())
}

fn has_duplicates(v: &str) -> bool {
    // serde_json's Value keeps the last duplicate: count members in a raw pass instead.
    let mut dup = false;
    let _ = serde_json::from_str::<DupCheck>(v).map(|d| dup = d.0);
    dup
}

struct DupCheck(bool);
impl<'de> serde::Deserialize<'de> for DupCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DupCheck;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("json")
            }
            fn visit_bool<E>(self, _: bool) -> Result<DupCheck, E> {
                Ok(DupCheck(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<DupCheck, E> {
                Ok(DupCheck(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<DupCheck, E> {
                Ok(DupCheck(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<DupCheck, E> {
                Ok(DupCheck(false))
            }
            fn visit_str<E>(self, _: &str) -> Result<DupCheck, E> {
                Ok(DupCheck(false))
            }
            fn visit_unit<E>(self) -> Result<DupCheck, E> {
                Ok(DupCheck(false))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<DupCheck, A::Error> {
                let mut dup = false;
                while let Some(DupCheck(d)) = a.next_element()? {
                    dup |= d;
                }
                Ok(DupCheck(dup))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<DupCheck, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut dup = false;
                while let Some(k) = a.next_key::<String>()? {
                    dup |= !seen.insert(k);
                    let DupCheck(d) = a.next_value()?;
                    dup |= d;
                }
                Ok(DupCheck(dup))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads every scalar in document order with our reader, as serde_json `Value`s, for comparison.
fn scalars(r: &mut Reader<'_>, out: &mut Vec<Value>) -> Result<(), jwtd::Error> {
    match r.peek()? {
        Kind::Object => {
            r.begin_object()?;
            let mut first = true;
            while let Some(k) = r.next_key(&mut first)? {
                out.push(Value::String(k.into_owned()));
                scalars(r, out)?;
            }
        }
        Kind::Array => {
            r.begin_array()?;
            let mut first = true;
            while r.next_element(&mut first)? {
                scalars(r, out)?;
            }
        }
        Kind::String => out.push(Value::String(r.string()?.into_owned())),
        Kind::Number => out.push(serde_json::json!(r.number()?)),
        Kind::Bool => out.push(Value::Bool(r.boolean()?)),
        Kind::Null => {
            r.skip()?;
            out.push(Value::Null)
        }
    }
    Ok(())
}

fn serde_scalars(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(Value::String(k.clone()));
                serde_scalars(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| serde_scalars(v, out)),
        Value::Number(n) => out.push(serde_json::json!(n.as_f64().unwrap())),
        other => out.push(other.clone()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn same_verdict_and_values_as_serde_json(doc in json_text(), seed in any::<u64>(), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
        for candidate in [doc.clone(), spaced(&doc, seed)] {
            let bytes = candidate.as_bytes();
            let ours = json::validate(bytes, 32, "doc");
            let Some(verdict) = serde_verdict(bytes) else { continue };
            if verdict {
                match &ours {
                    Ok(()) => {
                        // Same scalars in the same order (serde_json's map is sorted: compare without
                        // duplicates only, in a sorted map document order differs, so compare as multisets).
                        if !has_duplicates(&candidate) {
                            let mut mine = Vec::new();
                            scalars(&mut Reader::new(&candidate, 32, "doc"), &mut mine).unwrap();
                            let mut theirs = Vec::new();
                            serde_scalars(&serde_json::from_str(&candidate).unwrap(), &mut theirs);
                            let key = |v: &Value| v.to_string();
                            mine.sort_by_key(key);
                            theirs.sort_by_key(key);
                            prop_assert_eq!(mine.len(), theirs.len());
                            for (m, t) in mine.iter().zip(&theirs) {
                                // serde_json without `float_roundtrip` may be 1 ULP off; Rust's parse is exact.
                                // (For subnormals an ULP is absolute: 2^-1074.)
                                match (m.as_f64(), t.as_f64()) {
                                    (Some(a), Some(b)) => prop_assert!(
                                        (a - b).abs() <= a.abs().max(b.abs()) * 1e-15
                                            || (a - b).abs() <= 2.0 * f64::from_bits(1),
                                        "{} vs {}", a, b
                                    ),
                                    _ => prop_assert_eq!(m, t),
                                }
                            }
                        }
                    }
                    Err(e) => prop_assert!(
                        e.code() == "duplicate_member" || e.code() == "too_deep",
                        "serde accepts {:?}, we say {}", candidate, e
                    ),
                }
            } else {
                prop_assert!(ours.is_err(), "serde rejects {:?}, we accept", candidate);
            }
            // Mutations: a truncation and a flipped byte must get the same verdict as serde_json, bar duplicates.
            let mut variants = vec![bytes[..cut % (bytes.len() + 1)].to_vec()];
            if !bytes.is_empty() {
                let mut m = bytes.to_vec();
                m[flip.0 % bytes.len()] ^= flip.1 | 1;
                variants.push(m);
            }
            for v in variants {
                let ours = json::validate(&v, 32, "doc");
                let Some(verdict) = serde_verdict(&v) else { continue };
                if verdict {
                    if let Err(e) = &ours {
                        prop_assert!(e.code() == "duplicate_member" || e.code() == "too_deep",
                            "serde accepts {:?}, we say {}", String::from_utf8_lossy(&v), e);
                    }
                } else {
                    prop_assert!(ours.is_err(), "serde rejects {:?}, we accept", String::from_utf8_lossy(&v));
                }
            }
        }
    }
}

#[test]
fn whitespace_is_reported_and_compaction_is_exact() {
    let doc = "{ \"a\" : [1, \"x y\" ],\n\"b\":{}}";
    let mut r = Reader::new(doc, 32, "doc");
    r.skip().unwrap();
    r.finish().unwrap();
    assert!(r.saw_whitespace());
    let c = json::compact(doc);
    assert_eq!(c, r#"{"a":[1,"x y"],"b":{}}"#);
    let mut r = Reader::new(&c, 32, "doc");
    r.skip().unwrap();
    assert!(!r.saw_whitespace());
    assert_eq!(
        serde_json::from_str::<Value>(&c).unwrap(),
        serde_json::from_str::<Value>(doc).unwrap()
    );
}
