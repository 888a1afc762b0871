//! Claim rules of a route: `claims = { tenant = "acme", roles = { contains = "admin" },
//! "address.country" = { one_of = ["DE", "FR"] } }`. A name with dots is a path into nested objects
//! (`address.country` is `claims["address"]["country"]`), unless the claims have a member of exactly that
//! name (namespaced claims: `"https://example.com/roles"`). A missing claim fails every rule.
//!
//! - a plain value: the claim equals it (numbers by value: `1` equals `1.0`);
//! - `{ contains = V }`: the claim is an array holding V, or a space-separated string holding V as a word;
//! - `{ one_of = [A, B, …] }`: the claim equals one of them.

use serde_json::Value;

/// How a claim is compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Equals(Value),
    Contains(Value),
    OneOf(Vec<Value>),
}

/// One claim rule: where the claim is, and what it must be.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRule {
    /// As written (`address.country`), for messages.
    pub name: String,
    path: Vec<String>,
    pub rule: Rule,
}

/// Why a rule as written cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRule(pub String);

impl ClaimRule {
    /// A rule for claim `name` from its configured value (JSON, converted from TOML).
    pub fn new(name: &str, spec: &Value) -> Result<ClaimRule, BadRule> {
        let path: Vec<String> = name.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(BadRule(format!("{name:?}: empty part in the claim path")));
        }
        let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
        let rule = match spec {
            v if scalar(v) => Rule::Equals(v.clone()),
            Value::Object(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().expect("one member");
                match (k.as_str(), v) {
                    ("equals", v) if scalar(v) => Rule::Equals(v.clone()),
                    ("contains", v) if scalar(v) => Rule::Contains(v.clone()),
                    ("one_of", Value::Array(list))
                        if !list.is_empty() && list.iter().all(scalar) =>
                    {
                        Rule::OneOf(list.clone())
                    }
                    _ => {
                        return Err(BadRule(format!(
                            "{name:?}: expected equals = V, contains = V or one_of = [V, …] (strings, numbers or booleans)"
                        )));
                    }
                }
            }
            _ => {
                return Err(BadRule(format!(
                    "{name:?}: expected a string, number or boolean, or a table with equals, contains or one_of"
                )));
            }
        };
        Ok(ClaimRule {
            name: name.to_string(),
            path,
            rule,
        })
    }

    /// Whether `claims` satisfy this rule.
    pub fn holds(&self, claims: &Value) -> bool {
        let Some(v) = lookup_path(claims, &self.name, &self.path) else {
            return false;
        };
        match &self.rule {
            Rule::Equals(want) => same(v, want),
            Rule::OneOf(list) => list.iter().any(|want| same(v, want)),
            Rule::Contains(want) => match (v, want) {
                (Value::Array(items), _) => items.iter().any(|i| same(i, want)),
                (Value::String(s), Value::String(w)) => s.split(' ').any(|word| word == w),
                _ => false,
            },
        }
    }
}

/// The claim named `name` in `claims`: a top-level member of exactly that name if there is one (namespaced
/// claims such as `https://example.com/roles` hold dots), else the dotted path into nested objects.
pub fn lookup<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    claims
        .get(name)
        .or_else(|| name.split('.').try_fold(claims, |v, k| v.get(k)))
}

fn lookup_path<'a>(claims: &'a Value, name: &str, path: &[String]) -> Option<&'a Value> {
    claims
        .get(name)
        .or_else(|| path.iter().try_fold(claims, |v, k| v.get(k)))
}

/// JSON equality, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str, spec: Value) -> ClaimRule {
        ClaimRule::new(name, &spec).unwrap()
    }

    #[test]
    fn equals_contains_one_of_and_nested_paths() {
        let claims = json!({
            "tenant": "acme", "level": 3, "admin": true, "roles": ["admin", "ops"], "groups": "a b",
            "address": {"country": "DE", "zip": "10115"}
        });
        for (r, want) in [
            (rule("tenant", json!("acme")), true),
            (rule("tenant", json!("acm")), false),
            (rule("tenant", json!({"equals": "acme"})), true),
            (rule("level", json!(3.0)), true),
            (rule("level", json!("3")), false),
            (rule("admin", json!(true)), true),
            (rule("roles", json!({"contains": "admin"})), true),
            (rule("roles", json!({"contains": "root"})), false),
            (rule("groups", json!({"contains": "b"})), true),
            (rule("groups", json!({"contains": "a b"})), false),
            (
                rule("address.country", json!({"one_of": ["DE", "FR"]})),
                true,
            ),
            (rule("address.country", json!({"one_of": ["FR"]})), false),
            (rule("address.zip", json!("10115")), true),
            (rule("address.street", json!("x")), false),
            (rule("missing", json!({"one_of": ["x"]})), false),
            // A path through a non-object finds nothing.
            (rule("tenant.x", json!("acme")), false),
            // An array is not a value to equal.
            (rule("roles", json!("admin")), false),
        ] {
            assert_eq!(r.holds(&claims), want, "{r:?}");
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_claim_name() {
        for (name, spec) in [
            ("a", json!(["x"])),
            ("a", json!({"contains": ["x"]})),
            ("a", json!({"one_of": []})),
            ("a", json!({"one_of": [{"x": 1}]})),
            ("a", json!({"equals": "x", "contains": "y"})),
            ("a", json!({"matches": "x"})),
            ("a", json!(null)),
            ("a..b", json!("x")),
            (".a", json!("x")),
        ] {
            let e = ClaimRule::new(name, &spec).unwrap_err();
            assert!(e.0.contains(&format!("{name:?}")), "{e:?}");
        }
    }
}
