//! `[[route]]` tables and `default_route` as written in the configuration file, checked and turned into a
//! [`Routes`] table. Every error names the route (`route[2].scopes`) and what is wrong.

use serde::Deserialize;
use serde_json::Value;

use super::claims::ClaimRule;
use super::path::normalize;
use super::table::{Route, Routes};

/// One `[[route]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix of the original request (segment-aware).
    pub path: String,
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub any_scopes: Vec<String>,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    #[serde(default)]
    pub claims: toml::Table,
}

/// A setting that cannot be used: its key (`route[0].path`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// RFC 6749 §3.3 `scope-token`: printable ASCII but space, `"` and `\`.
pub fn check_scope(s: &str) -> Result<(), String> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    {
        return Err(format!(
            "{s:?} is not a scope (RFC 6749 §3.3: printable ASCII without spaces, '\"' or '\\\\')"
        ));
    }
    Ok(())
}

/// An HTTP method token (RFC 9110 §9), upper-cased.
fn method(s: &str) -> Result<String, String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if s.is_empty() || !s.bytes().all(tchar) {
        return Err(format!("{s:?} is not an HTTP method"));
    }
    Ok(s.to_ascii_uppercase())
}

/// `default_route`: `"allow"` (the default) or `"deny"`; `true` for deny.
pub fn default_route(s: Option<&str>) -> Result<bool, Invalid> {
    match s {
        None | Some("allow") => Ok(false),
        Some("deny") => Ok(true),
        Some(other) => Err(invalid(
            "default_route",
            format!("{other:?}: expected \"allow\" or \"deny\""),
        )),
    }
}

/// The route table for `list` (in order) and `deny_unmatched`. `issuers`: the configured `iss` values a
/// route may name.
pub fn build(
    list: &[RouteConfig],
    deny_unmatched: bool,
    issuers: &[&str],
) -> Result<Routes, Invalid> {
    let mut routes = Vec::with_capacity(list.len());
    for (i, rc) in list.iter().enumerate() {
        let at = |key: &str| format!("route[{i}].{key}");
        let path =
            normalize(&rc.path).map_err(|e| invalid(at("path"), format!("{:?}: {e}", rc.path)))?;
        if path != rc.path.trim_end_matches('/') && path != rc.path {
            return Err(invalid(
                at("path"),
                format!(
                    "{:?} is not in normal form (write {path:?}: no query, no dot segments, no //, no escaped unreserved characters)",
                    rc.path
                ),
            ));
        }
        let path = match path.trim_end_matches('/') {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        let methods = match &rc.methods {
            None => None,
            Some(m) if m.is_empty() => {
                return Err(invalid(
                    at("methods"),
                    "an empty list matches nothing; leave methods out to match any",
                ));
            }
            Some(m) => Some(
                m.iter()
                    .map(|s| method(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(at("methods"), e))?,
            ),
        };
        for (key, list) in [("scopes", &rc.scopes), ("any_scopes", &rc.any_scopes)] {
            for s in list {
                check_scope(s).map_err(|e| invalid(at(key), e))?;
            }
        }
        if let Some(list) = &rc.issuers {
            if list.is_empty() {
                return Err(invalid(
                    at("issuers"),
                    "an empty list accepts no token; leave issuers out to accept every issuer",
                ));
            }
            for iss in list {
                if !issuers.contains(&iss.as_str()) {
                    return Err(invalid(
                        at("issuers"),
                        format!("{iss:?} is not a configured issuer ([[issuer]] iss)"),
                    ));
                }
            }
        }
        if let Some(list) = &rc.audiences
            && (list.is_empty() || list.iter().any(String::is_empty))
        {
            return Err(invalid(
                at("audiences"),
                "give at least one non-empty audience, or leave audiences out to use the issuer's",
            ));
        }
        let mut claims = Vec::with_capacity(rc.claims.len());
        for (name, spec) in &rc.claims {
            let spec: Value = serde_json::to_value(spec)
                .map_err(|e| invalid(at(&format!("claims.{name}")), e.to_string()))?;
            claims.push(
                ClaimRule::new(name, &spec)
                    .map_err(|e| invalid(at(&format!("claims.{name}")), e.0))?,
            );
        }
        routes.push(Route {
            path,
            methods,
            scopes: rc.scopes.clone(),
            any_scopes: rc.any_scopes.clone(),
            issuers: rc.issuers.clone(),
            audiences: rc.audiences.clone(),
            claims,
        });
    }
    Ok(Routes::new(routes, deny_unmatched))
}

/// A file of `[[route]]` tables and an optional `default_route`, for `serve --routes FILE` (flag mode).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    #[serde(rename = "route", default)]
    routes: Vec<RouteConfig>,
    default_route: Option<String>,
}

/// Reads a routes file (`shown` names it in errors); `issuers`: the `iss` values a route may name.
pub fn load_file(text: &str, shown: &str, issuers: &[&str]) -> Result<Routes, String> {
    let f: RoutesFile =
        toml::from_str(text).map_err(|e| format!("{shown}: {}", e.to_string().trim_end()))?;
    let deny = default_route(f.default_route.as_deref())
        .map_err(|e| format!("{shown}: {}: {}", e.key, e.message))?;
    build(&f.routes, deny, issuers).map_err(|e| format!("{shown}: {}: {}", e.key, e.message))
}

/// The audiences that routes applying to issuer `iss` accept on its behalf (see
/// [`crate::claims::Policy::route_audiences`]).
pub fn route_audiences(routes: &Routes, iss: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in routes.routes() {
        let applies = match (&r.issuers, iss) {
            (None, _) => true,
            (Some(list), Some(iss)) => list.iter().any(|i| i == iss),
            (Some(_), None) => false,
        };
        if applies {
            for a in r.audiences.iter().flatten() {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Routes, Invalid> {
        #[derive(Deserialize)]
        struct File {
            route: Vec<RouteConfig>,
        }
        let f: File = toml::from_str(text).unwrap();
        build(&f.route, false, &["https://login.example"])
    }

    #[test]
    fn the_documented_route_loads() {
        let r = parse(
            r#"
[[route]]
path = "/orders/"
methods = ["get", "HEAD"]
scopes = ["read:orders"]
any_scopes = ["admin", "ops"]
issuers = ["https://login.example"]
audiences = ["orders-api"]
claims = { tenant = "acme", roles = { contains = "admin" }, "address.country" = { one_of = ["DE", "FR"] } }
"#,
        )
        .unwrap();
        let route = &r.routes()[0];
        assert_eq!(route.path, "/orders");
        assert_eq!(
            route.methods.as_deref(),
            Some(&["GET".to_string(), "HEAD".to_string()][..])
        );
        assert_eq!(route.claims.len(), 3);
        assert_eq!(
            route_audiences(&r, Some("https://login.example")),
            ["orders-api"]
        );
        assert!(route_audiences(&r, Some("https://other.example")).is_empty());
    }

    #[test]
    fn a_routes_file() {
        let r = load_file(
            "default_route = \"deny\"\n[[route]]\npath = \"/a\"\nscopes = [\"x\"]\n",
            "r.toml",
            &[],
        )
        .unwrap();
        assert!(r.deny_unmatched() && r.routes().len() == 1);
        let e = load_file(
            "[[route]]\npath = \"/a\"\nissuers = [\"https://x\"]\n",
            "r.toml",
            &[],
        )
        .unwrap_err();
        assert!(e.starts_with("r.toml: route[0].issuers:"), "{e}");
        let e = load_file("[[issuer]]\niss = \"x\"\n", "r.toml", &[]).unwrap_err();
        assert!(e.starts_with("r.toml:"), "{e}");
    }

    #[test]
    fn unusable_routes_are_refused_naming_the_key() {
        for (body, key) in [
            (r#"path = "orders""#, "route[0].path"),
            (r#"path = "/a/../orders""#, "route[0].path"),
            (r#"path = "/a%2Fb""#, "route[0].path"),
            (r#"path = "/a?x=1""#, "route[0].path"),
            ("path = \"/a\"\nmethods = []", "route[0].methods"),
            ("path = \"/a\"\nmethods = [\"GET /\"]", "route[0].methods"),
            ("path = \"/a\"\nscopes = [\"a b\"]", "route[0].scopes"),
            ("path = \"/a\"\nany_scopes = [\"\"]", "route[0].any_scopes"),
            ("path = \"/a\"\nscopes = [\"say\\\"hi\"]", "route[0].scopes"),
            (
                "path = \"/a\"\nissuers = [\"https://x\"]",
                "route[0].issuers",
            ),
            ("path = \"/a\"\nissuers = []", "route[0].issuers"),
            ("path = \"/a\"\naudiences = []", "route[0].audiences"),
            (
                "path = \"/a\"\nclaims = { roles = { has = 1 } }",
                "route[0].claims.roles",
            ),
            (
                "path = \"/a\"\nclaims = { \"a..b\" = 1 }",
                "route[0].claims.a..b",
            ),
        ] {
            let e = parse(&format!("[[route]]\n{body}\n")).unwrap_err();
            assert_eq!(e.key, key, "{body}: {e:?}");
        }
        assert!(default_route(Some("maybe")).is_err());
        assert_eq!(default_route(Some("deny")), Ok(true));
        assert_eq!(default_route(None), Ok(false));
    }
}
