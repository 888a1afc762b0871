//! The route table: which rule applies to a request (first match, as written), and what it decides for a
//! verified token's claims.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::Value;

use super::claims::ClaimRule;
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
    /// The token's `aud` must name one of these, instead of one of its issuer's audiences (`None`: the
    /// issuer's audiences apply).
    pub audiences: Option<Vec<String>>,
    pub claims: Vec<ClaimRule>,
}

/// The original request, as far as it is known. Borrowed from the request where it can be (a path that is
/// already normal, the method as sent): telling the target costs no allocation on the usual request.
#[derive(Debug, Clone, Eq)]
pub enum Target<'a> {
    /// Method (compared without regard to case) and normalised path.
    Known {
        method: Cow<'a, str>,
        path: Cow<'a, str>,
    },
    /// The proxy did not say, or said something unusable: matched by no route.
    Unknown,
}

impl PartialEq for Target<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Target::Known { method, path },
                Target::Known {
                    method: m2,
                    path: p2,
                },
            ) => method.eq_ignore_ascii_case(m2) && path == p2,
            (Target::Unknown, Target::Unknown) => true,
            _ => false,
        }
    }
}

impl<'a> Target<'a> {
    pub fn known(method: impl Into<Cow<'a, str>>, path: impl Into<Cow<'a, str>>) -> Target<'a> {
        Target::Known {
            method: method.into(),
            path: path.into(),
        }
    }
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
    /// 401 `wrong_audience`: the route's audiences name none of the token's; or the route has none and the
    /// token's `aud` is accepted only by some other route's audiences.
    WrongAudience,
    /// 403 `no_route`: routes exist, and none matches (with `default_route = "deny"`) or the request's path
    /// or method is unknown (fail closed).
    NoRoute,
}

/// The routes, in order, and what happens to requests none matches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Routes {
    routes: Vec<Route>,
    /// `default_route = "deny"`.
    deny_unmatched: bool,
    /// The routes by path segment, so that a request visits only the routes on its own path.
    index: Node,
}

/// A node of the segment trie: the routes whose prefix ends here (ascending, as written), the next
/// segments, and an open-addressing table over them (built once; paths come from the configuration, so a
/// plain FNV hash cannot be steered into collisions by requests, which only look up).
#[derive(Debug, Clone, PartialEq, Default)]
struct Node {
    routes: Vec<usize>,
    children: Vec<(Box<str>, Node)>,
    /// `children` index + 1 by hash (0: empty); a power of two in length, at most half full.
    slots: Vec<u32>,
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Node {
    fn child(&self, segment: &[u8]) -> Option<&Node> {
        if self.slots.is_empty() {
            return self
                .children
                .iter()
                .find(|(s, _)| s.as_bytes() == segment)
                .map(|(_, n)| n);
        }
        let mask = self.slots.len() - 1;
        let mut i = fnv(segment) as usize & mask;
        loop {
            match self.slots[i] {
                0 => return None,
                c => {
                    let (s, n) = &self.children[c as usize - 1];
                    if s.as_bytes() == segment {
                        return Some(n);
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, segments: &[&str], route: usize) {
        match segments.split_first() {
            None => self.routes.push(route),
            Some((first, rest)) => {
                let i = match self.children.iter().position(|(s, _)| **s == **first) {
                    Some(i) => i,
                    None => {
                        self.children.push(((*first).into(), Node::default()));
                        self.children.len() - 1
                    }
                };
                self.children[i].1.insert(rest, route);
            }
        }
    }

    /// Builds the lookup tables, here and below (after every insert).
    fn seal(&mut self) {
        self.slots.clear();
        if self.children.len() > 4 {
            let size = (self.children.len() * 2).next_power_of_two();
            self.slots = vec![0; size];
            for (c, (s, _)) in self.children.iter().enumerate() {
                let mut i = fnv(s.as_bytes()) as usize & (size - 1);
                while self.slots[i] != 0 {
                    i = (i + 1) & (size - 1);
                }
                self.slots[i] = c as u32 + 1;
            }
        }
        for (_, n) in &mut self.children {
            n.seal();
        }
    }
}

impl Routes {
    /// The table for `routes` (normalised prefixes) in order; `deny_unmatched` for `default_route = "deny"`.
    pub fn new(routes: Vec<Route>, deny_unmatched: bool) -> Routes {
        let mut index = Node::default();
        for (i, r) in routes.iter().enumerate() {
            let segments: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
            index.insert(&segments, i);
        }
        index.seal();
        Routes {
            routes,
            deny_unmatched,
            index,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn deny_unmatched(&self) -> bool {
        self.deny_unmatched
    }

    /// The first route that matches `target`, if any. An unknown target matches only a route for every
    /// request (`path = "/"`, any method): whatever the request was, that route covered it.
    pub fn find(&self, target: &Target) -> Option<usize> {
        let Target::Known { method, path } = target else {
            return self
                .index
                .routes
                .iter()
                .copied()
                .find(|&i| self.routes[i].methods.is_none());
        };
        // Walk the path's segments: every route met on the way covers the path (segment-aware prefix);
        // the first as written whose methods allow the request wins.
        let allows = |i: &usize| {
            self.routes[*i]
                .methods
                .as_ref()
                .is_none_or(|m| m.iter().any(|x| x.eq_ignore_ascii_case(method)))
        };
        let mut best = self.index.routes.iter().copied().find(allows);
        let mut node = &self.index;
        let mut rest = path.as_bytes();
        while !node.children.is_empty() {
            // The next segment (a normalised path has no empty one but a trailing slash).
            rest = match rest {
                [b'/', tail @ ..] => tail,
                _ => break,
            };
            let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            let (segment, tail) = rest.split_at(end);
            let Some(next) = node.child(segment) else {
                break;
            };
            node = next;
            rest = tail;
            if let Some(i) = node.routes.iter().copied().find(allows) {
                best = Some(best.map_or(i, |b| b.min(i)));
            }
        }
        best
    }

    /// The decision for a valid token with `claims` (its `iss` among them) on `target`;
    /// `route_audience_only`: its `aud` was accepted only as some route's audience.
    pub fn decide(&self, target: &Target, claims: &Value, route_audience_only: bool) -> Decision {
        let unrouted = if route_audience_only {
            Decision::WrongAudience
        } else {
            Decision::Allow
        };
        if self.routes.is_empty() {
            return unrouted;
        }
        match self.find(target) {
            Some(i) => self.routes[i].decide(claims, route_audience_only),
            None if *target == Target::Unknown => Decision::NoRoute,
            None if self.deny_unmatched => Decision::NoRoute,
            None => unrouted,
        }
    }
}

impl Route {
    /// A route for the requests under `path` (normalised, without a trailing slash) with no rule yet: any
    /// method, any valid token. Rules are set on the result.
    pub fn at(path: impl Into<String>) -> Route {
        Route {
            path: path.into(),
            methods: None,
            scopes: Vec::new(),
            any_scopes: Vec::new(),
            issuers: None,
            audiences: None,
            claims: Vec::new(),
        }
    }

    /// This route's decision for `claims` (see [`Routes::decide`] for `route_audience_only`).
    pub fn decide(&self, claims: &Value, route_audience_only: bool) -> Decision {
        let has = scopes(claims);
        match self.first_failure(claims, &has, route_audience_only) {
            None => Decision::Allow,
            Some(Failure::Issuer) => Decision::IssuerNotAllowed,
            Some(Failure::Audience) => Decision::WrongAudience,
            Some(Failure::Scope { any_missing }) => {
                let mut wanted = self.scopes.clone();
                if any_missing {
                    wanted.extend(self.any_scopes.iter().cloned());
                }
                Decision::InsufficientScope(wanted.join(" "))
            }
            Some(Failure::Claim(r)) => Decision::ClaimMismatch(r.name.clone()),
        }
    }

    /// Whether this route allows a token with `claims` granting scopes `has` ([`scopes`], computed once for
    /// every route): [`Route::decide`] without building the refusal.
    pub fn allows(&self, claims: &Value, has: &BTreeSet<&str>, route_audience_only: bool) -> bool {
        self.first_failure(claims, has, route_audience_only)
            .is_none()
    }

    /// The first rule that fails, in the documented order: issuers, audiences, scopes, claims.
    fn first_failure(
        &self,
        claims: &Value,
        has: &BTreeSet<&str>,
        route_audience_only: bool,
    ) -> Option<Failure<'_>> {
        if let Some(allowed) = &self.issuers {
            let iss = claims.get("iss").and_then(Value::as_str);
            if !iss.is_some_and(|i| allowed.iter().any(|a| a == i)) {
                return Some(Failure::Issuer);
            }
        }
        let audience_ok = match &self.audiences {
            None => !route_audience_only,
            Some(wanted) => {
                let named = |v: &Value| v.as_str().is_some_and(|a| wanted.iter().any(|w| w == a));
                match claims.get("aud") {
                    Some(Value::Array(list)) => list.iter().any(named),
                    Some(v) => named(v),
                    None => false,
                }
            }
        };
        if !audience_ok {
            return Some(Failure::Audience);
        }
        let all = self.scopes.iter().all(|s| has.contains(s.as_str()));
        let any =
            self.any_scopes.is_empty() || self.any_scopes.iter().any(|s| has.contains(s.as_str()));
        if !(all && any) {
            return Some(Failure::Scope { any_missing: !any });
        }
        self.claims
            .iter()
            .find(|r| !r.holds(claims))
            .map(Failure::Claim)
    }
}

/// Which rule of a route failed.
enum Failure<'r> {
    Issuer,
    Audience,
    Scope { any_missing: bool },
    Claim(&'r ClaimRule),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(path: &str) -> Route {
        Route::at(path)
    }

    fn at<'a>(method: &'a str, path: &'a str) -> Target<'a> {
        Target::known(method, path)
    }

    fn table() -> Routes {
        Routes::new(
            vec![
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
            false,
        )
    }

    #[test]
    fn first_matching_route_decides() {
        let t = table();
        let reader = json!({"iss": "https://login.example", "scope": "read:orders"});
        let writer = json!({"iss": "https://login.example", "scp": ["write:orders"]});
        assert_eq!(
            t.decide(&at("GET", "/orders/7"), &reader, false),
            Decision::Allow
        );
        assert_eq!(
            t.decide(&at("POST", "/orders"), &reader, false),
            Decision::InsufficientScope("write:orders".into())
        );
        assert_eq!(
            t.decide(&at("POST", "/orders"), &writer, false),
            Decision::Allow
        );
        assert_eq!(
            t.decide(&at("GET", "/orders"), &writer, false),
            Decision::InsufficientScope("read:orders".into())
        );
        // No route for DELETE /orders, /ordersx or /public: the default (allow) applies.
        assert_eq!(
            t.decide(&at("DELETE", "/orders"), &reader, false),
            Decision::Allow
        );
        assert_eq!(
            t.decide(&at("GET", "/ordersx"), &reader, false),
            Decision::Allow
        );
        let deny = Routes::new(table().routes, true);
        assert_eq!(
            deny.decide(&at("GET", "/public"), &reader, false),
            Decision::NoRoute
        );
        // An unknown target is denied whenever routes exist, whatever the default.
        assert_eq!(
            t.decide(&Target::Unknown, &reader, false),
            Decision::NoRoute
        );
        assert_eq!(
            Routes::default().decide(&Target::Unknown, &reader, false),
            Decision::Allow
        );
    }

    /// The segment index finds what scanning every route in order finds.
    #[test]
    fn the_index_agrees_with_a_scan_in_order() {
        use crate::routes::path::under;
        use proptest::prelude::*;
        let seg = prop::sample::select(vec!["a", "b", "ab", "c"]);
        let path = proptest::collection::vec(seg, 0..4).prop_map(|v| {
            if v.is_empty() {
                "/".to_string()
            } else {
                format!("/{}", v.join("/"))
            }
        });
        let method = prop::sample::select(vec!["GET", "POST"]);
        let route_spec = (path.clone(), proptest::option::of(method.clone()));
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(
                &(
                    proptest::collection::vec(route_spec, 0..8),
                    path,
                    method,
                    any::<bool>(),
                ),
                |(specs, req, m, trailing)| {
                    let routes: Vec<Route> = specs
                        .iter()
                        .map(|(p, meth)| Route {
                            methods: meth.map(|x| vec![x.to_string()]),
                            ..route(p)
                        })
                        .collect();
                    let t = Routes::new(routes.clone(), false);
                    let req = if trailing && req != "/" {
                        format!("{req}/")
                    } else {
                        req
                    };
                    let scan = routes.iter().position(|r| {
                        under(&req, &r.path)
                            && r.methods
                                .as_ref()
                                .is_none_or(|ms| ms.iter().any(|x| x == m))
                    });
                    prop_assert_eq!(t.find(&at(m, &req)), scan, "{} {}", m, req);
                    Ok(())
                },
            )
            .unwrap();
    }

    #[test]
    fn issuers_any_scopes_and_claims() {
        let t = table();
        let admin = json!({"iss": "https://login.example", "scope": "ops", "roles": ["admin"]});
        assert_eq!(
            t.decide(&at("GET", "/admin/users"), &admin, false),
            Decision::Allow
        );
        let other_iss = json!({"iss": "https://other.example", "scope": "ops", "roles": ["admin"]});
        assert_eq!(
            t.decide(&at("GET", "/admin"), &other_iss, false),
            Decision::IssuerNotAllowed
        );
        let no_scope = json!({"iss": "https://login.example", "scope": "read", "roles": ["admin"]});
        assert_eq!(
            t.decide(&at("GET", "/admin"), &no_scope, false),
            Decision::InsufficientScope("admin ops".into())
        );
        let no_role = json!({"iss": "https://login.example", "scope": "admin", "roles": ["user"]});
        assert_eq!(
            t.decide(&at("GET", "/admin"), &no_role, false),
            Decision::ClaimMismatch("roles".into())
        );
    }
}
