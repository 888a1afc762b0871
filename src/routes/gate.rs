//! The route table as the daemon applies it: what a verified token means for each route, computed once
//! when it is verified (and kept in its cache entry), and the answer for a request from that.
//!
//! A cache hit must not parse the claims again: [`Gate::assess`] records, per route (the first 64), whether
//! the token satisfies that route's token-dependent rules (issuers, audiences, scopes, claims). A request
//! then costs the path match and a bit test. The bits belong to the table they were computed with (each
//! [`Gate`] has its own id): bits of another table, and routes past the 64th, are decided from the claims.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use super::table::{Decision, Routes, Target};
use crate::error::Error;

/// Routes beyond this many are decided from the claims on every request.
pub const BITS: usize = 64;

/// The routes in force.
#[derive(Debug)]
pub struct Gate {
    id: u32,
    routes: Routes,
}

/// What a verified token means for each route of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Assessment {
    /// The [`Gate`] these bits were computed with (0: none).
    table: u32,
    /// Bit `i`: route `i` allows the token.
    allowed: u64,
    /// The token's `aud` was accepted only as a route's audience ([`crate::claims::Policy::route_audiences`]).
    route_audience_only: bool,
}

/// What a request asks besides the token's validity.
#[derive(Debug, Clone, Copy)]
pub enum Check<'a> {
    /// Only whether the token is valid (`VERIFY <token>`, introspection): no route applies.
    Token,
    /// Whether this request may pass, by the routes.
    Request(&'a Target<'a>),
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

impl Default for Gate {
    fn default() -> Gate {
        Gate::new(Routes::default())
    }
}

impl Gate {
    pub fn new(routes: Routes) -> Gate {
        Gate {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed).max(1),
            routes,
        }
    }

    /// Whether any route is configured (without routes, requests need nothing but a valid token).
    pub fn has_routes(&self) -> bool {
        !self.routes.is_empty()
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The per-route bits for a token with `claims` (compact JSON, as verified).
    pub fn assess(&self, claims: &str, route_audience_only: bool) -> Assessment {
        let mut a = Assessment {
            table: self.id,
            allowed: 0,
            route_audience_only,
        };
        if self.routes.is_empty() {
            return a;
        }
        let Ok(claims) = serde_json::from_str::<Value>(claims) else {
            // Verification read these claims; serde reads every document it accepts. No bits: each request
            // then decides from the claims, and fails the same way there.
            return a;
        };
        for (i, r) in self.routes.routes().iter().take(BITS).enumerate() {
            if r.decide(&claims, route_audience_only) == Decision::Allow {
                a.allowed |= 1 << i;
            }
        }
        a
    }

    /// Whether a valid token with `claims` and assessment `a` may make the request `check`.
    pub fn check(&self, check: Check<'_>, a: Assessment, claims: &str) -> Result<(), Error> {
        let unrouted = || {
            if a.route_audience_only {
                Err(Error::WrongAudience)
            } else {
                Ok(())
            }
        };
        let target = match check {
            Check::Request(t) if !self.routes.is_empty() => t,
            _ => return unrouted(),
        };
        match self.routes.find(target) {
            None if *target == Target::Unknown => Err(Error::NoRoute(
                "routes are configured and the original request's method and path are unknown (no \
                 X-Original-URI/-Method, X-Forwarded-Uri/-Method or path after the verify path)",
            )),
            None if self.routes.deny_unmatched() => Err(Error::NoRoute(
                "no route matches this request and default_route is \"deny\"",
            )),
            None => unrouted(),
            Some(i) if a.table == self.id && i < BITS && a.allowed & (1 << i) != 0 => Ok(()),
            Some(i) => {
                let claims: Value = serde_json::from_str(claims).unwrap_or(Value::Null);
                match self.routes.routes()[i].decide(&claims, a.route_audience_only) {
                    Decision::Allow => Ok(()),
                    Decision::InsufficientScope(s) => Err(Error::InsufficientScope(s)),
                    Decision::ClaimMismatch(c) => Err(Error::ClaimMismatch(c)),
                    Decision::IssuerNotAllowed => Err(Error::IssuerNotAllowed),
                    Decision::WrongAudience => Err(Error::WrongAudience),
                    Decision::NoRoute => Err(Error::NoRoute("no route applies")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::claims::ClaimRule;
    use crate::routes::table::Route;
    use serde_json::json;

    fn route(path: &str) -> Route {
        Route {
            path: path.into(),
            methods: None,
            scopes: vec![],
            any_scopes: vec![],
            issuers: None,
            audiences: None,
            claims: vec![],
        }
    }

    fn at(method: &'static str, path: &'static str) -> Target<'static> {
        Target::known(method, path)
    }

    fn gate(n: usize) -> Gate {
        // `n` routes: /r0 … /r{n-1}, each needing scope s{i}; then /admin needing a role.
        let mut routes: Vec<Route> = (0..n)
            .map(|i| Route {
                scopes: vec![format!("s{i}")],
                ..route(&format!("/r{i}"))
            })
            .collect();
        routes.push(Route {
            claims: vec![ClaimRule::new("roles", &json!({"contains": "admin"})).unwrap()],
            ..route("/admin")
        });
        routes.push(Route {
            audiences: Some(vec!["orders-api".into()]),
            ..route("/orders")
        });
        Gate::new(Routes::new(routes, false))
    }

    /// The bits and a decision from the claims always agree, for every route, whichever way it is asked.
    #[test]
    fn cached_bits_agree_with_deciding_from_the_claims() {
        for n in [0, 3, 63, 64, 70] {
            let g = gate(n);
            for claims in [
                json!({"scope": "s0 s2", "roles": ["admin"], "aud": "api"}),
                json!({"scp": ["s1", "s63", "s65"], "aud": ["orders-api"]}),
                json!({}),
            ] {
                let text = claims.to_string();
                for rao in [false, true] {
                    let a = g.assess(&text, rao);
                    // No bits: decided from the claims.
                    let none = Assessment {
                        table: 0,
                        allowed: 0,
                        route_audience_only: rao,
                    };
                    for path in [
                        "/r0", "/r1", "/r2", "/r63", "/r65", "/admin", "/orders", "/x",
                    ] {
                        let t = at("GET", path);
                        let with_bits = g.check(Check::Request(&t), a, &text);
                        let from_claims = g.check(Check::Request(&t), none, &text);
                        assert_eq!(with_bits, from_claims, "{n} {path} {text} {rao}");
                    }
                }
            }
        }
    }

    #[test]
    fn answers() {
        let g = gate(3);
        let ok = json!({"scope": "s0", "roles": ["user"], "aud": "api"}).to_string();
        let a = g.assess(&ok, false);
        assert_eq!(g.check(Check::Request(&at("GET", "/r0/x")), a, &ok), Ok(()));
        assert_eq!(
            g.check(Check::Request(&at("GET", "/r1")), a, &ok),
            Err(Error::InsufficientScope("s1".into()))
        );
        assert_eq!(
            g.check(Check::Request(&at("GET", "/admin")), a, &ok),
            Err(Error::ClaimMismatch("roles".into()))
        );
        assert_eq!(
            g.check(Check::Request(&at("GET", "/orders")), a, &ok),
            Err(Error::WrongAudience)
        );
        assert!(matches!(
            g.check(Check::Request(&Target::Unknown), a, &ok),
            Err(Error::NoRoute(_))
        ));
        // Unmatched: the default (allow) applies; plain token checks never look at routes.
        assert_eq!(g.check(Check::Request(&at("GET", "/x")), a, &ok), Ok(()));
        assert_eq!(g.check(Check::Token, a, &ok), Ok(()));
        // A token whose aud only a route accepts: good on that route, refused everywhere else.
        let orders = json!({"aud": "orders-api"}).to_string();
        let a = g.assess(&orders, true);
        assert_eq!(
            g.check(Check::Request(&at("GET", "/orders")), a, &orders),
            Ok(())
        );
        assert_eq!(
            g.check(Check::Request(&at("GET", "/x")), a, &orders),
            Err(Error::WrongAudience)
        );
        assert_eq!(g.check(Check::Token, a, &orders), Err(Error::WrongAudience));
        // Without routes too.
        let empty = Gate::default();
        assert_eq!(
            empty.check(
                Check::Request(&at("GET", "/x")),
                empty.assess(&orders, true),
                &orders
            ),
            Err(Error::WrongAudience)
        );
    }

    #[test]
    fn bits_of_another_table_are_not_believed() {
        let (g1, g2) = (gate(3), gate(3));
        let claims = json!({"scope": "s0"}).to_string();
        let a1 = g1.assess(&claims, false);
        let t = at("GET", "/r1");
        // Forge: a1 says everything is allowed; g2 must not believe it.
        let forged = Assessment {
            allowed: u64::MAX,
            ..a1
        };
        assert!(g1.check(Check::Request(&t), forged, &claims).is_ok());
        assert_eq!(
            g2.check(Check::Request(&t), forged, &claims),
            Err(Error::InsufficientScope("s1".into()))
        );
    }
}
