//! The route table: which rule applies to a request (first match, as written), and what it decides for a
//! verified token's claims.

use serde_json::Value;

use super::claims::ClaimRule;
use super::path::under;
use super::scope::scopes;

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Normalised path prefix (segment-aware).
    pub path: String,
    /// Upper-case methods; `None`: any.
    pub methods: Option<Vec<String>>,
    /// Every one of these scopes is required.
    pub scopes: Vec<String>,
    /// At least one of these (when not empty).
    pub any_scopes: Vec<String>,
    /// Only tokens of these issuers (`None`: any configured issuer).
    pub issuers: Option<Vec<String>>,
    pub claims: Vec<ClaimRule>,
}

/// The original request, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Method (upper-case) and normalised path.
    Known { method: String, path: String },
    /// The proxy did not say, or said something unusable: matched by no route.
    Unknown,
}

/// What a route decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 403 `insufficient_scope`, with the scopes the route asks for (for `WWW-Authenticate: … scope="…"`).
    InsufficientScope(String),
    /// 403 `claim_mismatch`, naming the claim.
    ClaimMismatch(String),
    /// 403 `issuer_not_allowed`: the token's issuer is not one this route accepts.
    IssuerNotAllowed,
    /// 403 `no_route`: routes exist, and none matches (with `default_route = "deny"`) or the request's path
    /// or method is unknown (fail closed).
    NoRoute,
}

/// The routes, in order, and what happens to requests none matches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Routes {
    pub routes: Vec<Route>,
    /// `default_route = "deny"`.
    pub deny_unmatched: bool,
}

impl Routes {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The first route that matches `target`, if any.
    pub fn find(&self, target: &Target) -> Option<usize> {
        let Target::Known { method, path } = target else {
            return None;
        };
        self.routes.iter().position(|r| {
            under(path, &r.path)
                && r.methods
                    .as_ref()
                    .is_none_or(|m| m.iter().any(|x| x == method))
        })
    }

    /// The decision for a valid token with `claims` (its `iss` among them) on `target`.
    pub fn decide(&self, target: &Target, claims: &Value) -> Decision {
        if self.routes.is_empty() {
            return Decision::Allow;
        }
        if *target == Target::Unknown {
            return Decision::NoRoute;
        }
        match self.find(target) {
            Some(i) => self.routes[i].decide(claims),
            None if self.deny_unmatched => Decision::NoRoute,
            None => Decision::Allow,
        }
    }
}

impl Route {
    /// This route's decision for `claims`.
    pub fn decide(&self, claims: &Value) -> Decision {
        if let Some(allowed) = &self.issuers {
            let iss = claims.get("iss").and_then(Value::as_str);
            if !iss.is_some_and(|i| allowed.iter().any(|a| a == i)) {
                return Decision::IssuerNotAllowed;
            }
        }
        let has = scopes(claims);
        let all = self.scopes.iter().all(|s| has.contains(s.as_str()));
        let any =
            self.any_scopes.is_empty() || self.any_scopes.iter().any(|s| has.contains(s.as_str()));
        if !(all && any) {
            let mut wanted = self.scopes.clone();
            if !any {
                wanted.extend(self.any_scopes.iter().cloned());
            }
            return Decision::InsufficientScope(wanted.join(" "));
        }
        match self.claims.iter().find(|r| !r.holds(claims)) {
            Some(r) => Decision::ClaimMismatch(r.name.clone()),
            None => Decision::Allow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(path: &str) -> Route {
        Route {
            path: path.into(),
            methods: None,
            scopes: vec![],
            any_scopes: vec![],
            issuers: None,
            claims: vec![],
        }
    }

    fn at(method: &str, path: &str) -> Target {
        Target::Known {
            method: method.into(),
            path: path.into(),
        }
    }

    fn table() -> Routes {
        Routes {
            routes: vec![
                Route {
                    methods: Some(vec!["GET".into(), "HEAD".into()]),
                    scopes: vec!["read:orders".into()],
                    ..route("/orders")
                },
                Route {
                    methods: Some(vec!["POST".into()]),
                    scopes: vec!["write:orders".into()],
                    ..route("/orders")
                },
                Route {
                    any_scopes: vec!["admin".into(), "ops".into()],
                    issuers: Some(vec!["https://login.example".into()]),
                    claims: vec![ClaimRule::new("roles", &json!({"contains": "admin"})).unwrap()],
                    ..route("/admin")
                },
            ],
            deny_unmatched: false,
        }
    }

    #[test]
    fn first_matching_route_decides() {
        let t = table();
        let reader = json!({"iss": "https://login.example", "scope": "read:orders"});
        let writer = json!({"iss": "https://login.example", "scp": ["write:orders"]});
        assert_eq!(t.decide(&at("GET", "/orders/7"), &reader), Decision::Allow);
        assert_eq!(
            t.decide(&at("POST", "/orders"), &reader),
            Decision::InsufficientScope("write:orders".into())
        );
        assert_eq!(t.decide(&at("POST", "/orders"), &writer), Decision::Allow);
        assert_eq!(
            t.decide(&at("GET", "/orders"), &writer),
            Decision::InsufficientScope("read:orders".into())
        );
        // No route for DELETE /orders, /ordersx or /public: the default (allow) applies.
        assert_eq!(t.decide(&at("DELETE", "/orders"), &reader), Decision::Allow);
        assert_eq!(t.decide(&at("GET", "/ordersx"), &reader), Decision::Allow);
        let deny = Routes {
            deny_unmatched: true,
            ..table()
        };
        assert_eq!(
            deny.decide(&at("GET", "/public"), &reader),
            Decision::NoRoute
        );
        // An unknown target is denied whenever routes exist, whatever the default.
        assert_eq!(t.decide(&Target::Unknown, &reader), Decision::NoRoute);
        assert_eq!(
            Routes::default().decide(&Target::Unknown, &reader),
            Decision::Allow
        );
    }

    #[test]
    fn issuers_any_scopes_and_claims() {
        let t = table();
        let admin = json!({"iss": "https://login.example", "scope": "ops", "roles": ["admin"]});
        assert_eq!(
            t.decide(&at("GET", "/admin/users"), &admin),
            Decision::Allow
        );
        let other_iss = json!({"iss": "https://other.example", "scope": "ops", "roles": ["admin"]});
        assert_eq!(
            t.decide(&at("GET", "/admin"), &other_iss),
            Decision::IssuerNotAllowed
        );
        let no_scope = json!({"iss": "https://login.example", "scope": "read", "roles": ["admin"]});
        assert_eq!(
            t.decide(&at("GET", "/admin"), &no_scope),
            Decision::InsufficientScope("admin ops".into())
        );
        let no_role = json!({"iss": "https://login.example", "scope": "admin", "roles": ["user"]});
        assert_eq!(
            t.decide(&at("GET", "/admin"), &no_role),
            Decision::ClaimMismatch("roles".into())
        );
    }
}
