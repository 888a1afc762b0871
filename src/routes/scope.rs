//! A token's scopes: `scope` (RFC 8693 §4.2, RFC 9068 §2.2.3: one space-separated string) and `scp` (Entra
//! ID, Okta: a space-separated string or an array of strings), together. Anything else in those claims
//! (numbers, objects, arrays holding non-strings) grants nothing.

use std::collections::BTreeSet;

use serde_json::Value;

/// The scopes `claims` grant.
pub fn scopes(claims: &Value) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split(' ').filter(|s| !s.is_empty())),
            Some(Value::Array(items)) if name == "scp" => {
                out.extend(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|s| !s.is_empty()),
                );
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(v: &Value) -> Vec<&str> {
        scopes(v).into_iter().collect()
    }

    #[test]
    fn scope_strings_scp_strings_and_arrays() {
        assert_eq!(
            set(&json!({"scope": "read:orders write:orders"})),
            ["read:orders", "write:orders"]
        );
        assert_eq!(set(&json!({"scp": "a b"})), ["a", "b"]);
        assert_eq!(set(&json!({"scp": ["b", "a", "a"]})), ["a", "b"]);
        assert_eq!(set(&json!({"scope": "a", "scp": ["b"]})), ["a", "b"]);
        // Extra spaces, empty strings and duplicates grant nothing more.
        assert_eq!(set(&json!({"scope": "  a  a "})), ["a"]);
        assert!(set(&json!({"scope": ""})).is_empty());
        assert!(set(&json!({})).is_empty());
        // Not a string (or, for scp, an array of strings): nothing.
        assert!(set(&json!({"scope": ["a"]})).is_empty());
        assert!(set(&json!({"scope": 7, "scp": {"a": 1}})).is_empty());
        assert_eq!(set(&json!({"scp": ["a", 1, null]})), ["a"]);
    }
}
