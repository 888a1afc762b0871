//! The route table as the daemon applies it: what a verified token means for each route, learned once per
//! token and route and kept in the token's cache entry, and the answer for a request from that.
//!
//! A cache hit must not parse the claims again: an [`Assessment`] records, per route (the first 64), whether
//! the token satisfies that route's token rules (issuers, audiences, scopes, claims) — learned the first
//! time the token meets the route, from its claims, so a verification pays nothing for routes it never
//! meets. A request then costs the path match and a bit test. The bits belong to the table they were
//! learned with (each [`Gate`] has its own id): under another table, and past the 64th route, requests are
//! decided from the claims.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

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

/// What a verified token means for the routes of one table, as far as learned.
#[derive(Debug, Default)]
pub struct Assessment {
    /// The [`Gate`] these bits belong to (0: none).
    table: u32,
    /// The token's `aud` was accepted only as a route's audience ([`crate::claims::Policy::route_audiences`]).
    route_audience_only: bool,
    /// Bit `i`: whether route `i` allows the token is known …
    known: AtomicU64,
    /// … and bit `i` says it does.
    allowed: AtomicU64,
}

impl Clone for Assessment {
    fn clone(&self) -> Assessment {
        Assessment {
            table: self.table,
            route_audience_only: self.route_audience_only,
            known: AtomicU64::new(self.known.load(Ordering::Relaxed)),
            allowed: AtomicU64::new(self.allowed.load(Ordering::Relaxed)),
        }
    }
}

impl Assessment {
    /// Whether route `i` allows the token, if learned.
    fn get(&self, i: usize) -> Option<bool> {
        let bit = 1u64 << i;
        // `allowed` is written before `known`: seeing the `known` bit means the `allowed` bit is final.
        (self.known.load(Ordering::Acquire) & bit != 0)
            .then(|| self.allowed.load(Ordering::Relaxed) & bit != 0)
    }

    /// Records that route `i` does (or does not) allow the token.
    fn learn(&self, i: usize, allows: bool) {
        let bit = 1u64 << i;
        if allows {
            self.allowed.fetch_or(bit, Ordering::Relaxed);
        }
        self.known.fetch_or(bit, Ordering::Release);
    }
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

    /// A fresh assessment for a token just verified (nothing learned yet).
    pub fn assess(&self, route_audience_only: bool) -> Assessment {
        Assessment {
            table: self.id,
            route_audience_only,
            known: AtomicU64::new(0),
            allowed: AtomicU64::new(0),
        }
    }

    /// Whether a valid token with `claims` and assessment `a` may make the request `check`; what is learned
    /// about a route on the way is recorded in `a`.
    pub fn check(&self, check: Check<'_>, a: &Assessment, claims: &str) -> Result<(), Error> {
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
        let i = match self.routes.find(target) {
            None if *target == Target::Unknown => {
                return Err(Error::NoRoute(
                    "routes are configured and the original request's method and path are unknown \
                     (no X-Original-URI/-Method, X-Forwarded-Uri/-Method or path after the verify path)",
                ));
            }
            None if self.routes.deny_unmatched() => {
                return Err(Error::NoRoute(
                    "no route matches this request and default_route is \"deny\"",
                ));
            }
            None => return unrouted(),
            Some(i) => i,
        };
        let learnable = a.table == self.id && i < BITS;
        if learnable && a.get(i) == Some(true) {
            return Ok(());
        }
        // Not learned yet, or a refusal (whose reason the bits do not keep): from the claims.
        let claims: Value = serde_json::from_str(claims).unwrap_or(Value::Null);
        let decision = self.routes.routes()[i].decide(&claims, a.route_audience_only);
        if learnable {
            a.learn(i, decision == Decision::Allow);
        }
        match decision {
            Decision::Allow => Ok(()),
            Decision::InsufficientScope(s) => Err(Error::InsufficientScope(s)),
            Decision::ClaimMismatch(c) => Err(Error::ClaimMismatch(c)),
            Decision::IssuerNotAllowed => Err(Error::IssuerNotAllowed),
            Decision::WrongAudience => Err(Error::WrongAudience),
            Decision::NoRoute => Err(Error::NoRoute("no route applies")),
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
        Route::at(path)
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

    /// Learned bits and a decision from the claims always agree, for every route, in any order of asking.
    #[test]
    fn learned_bits_agree_with_deciding_from_the_claims() {
        for n in [0, 3, 63, 64, 70] {
            let g = gate(n);
            for claims in [
                json!({"scope": "s0 s2", "roles": ["admin"], "aud": "api"}),
                json!({"scp": ["s1", "s63", "s65"], "aud": ["orders-api"]}),
                json!({}),
            ] {
                let text = claims.to_string();
                for rao in [false, true] {
                    let a = g.assess(rao);
                    let paths = [
                        "/r0", "/r1", "/r2", "/r63", "/r65", "/admin", "/orders", "/x",
                    ];
                    // Twice over: the second round answers from what the first learned.
                    for _ in 0..2 {
                        for path in paths {
                            let t = at("GET", path);
                            let fresh = g.assess(rao);
                            let learned = g.check(Check::Request(&t), &a, &text);
                            let from_claims = g.check(Check::Request(&t), &fresh, &text);
                            assert_eq!(learned, from_claims, "{n} {path} {text} {rao}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn answers() {
        let g = gate(3);
        let ok = json!({"scope": "s0", "roles": ["user"], "aud": "api"}).to_string();
        let a = &g.assess(false);
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
        let a = &g.assess(true);
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
                &empty.assess(true),
                &orders
            ),
            Err(Error::WrongAudience)
        );
    }

    #[test]
    fn bits_of_another_table_are_not_believed() {
        let (g1, g2) = (gate(3), gate(3));
        let claims = json!({"scope": "s0"}).to_string();
        let t = at("GET", "/r1");
        // Forge: a1 says every route is known to allow the token; g2 must not believe it.
        let forged = g1.assess(false);
        forged.known.store(u64::MAX, Ordering::Relaxed);
        forged.allowed.store(u64::MAX, Ordering::Relaxed);
        assert!(g1.check(Check::Request(&t), &forged, &claims).is_ok());
        assert_eq!(
            g2.check(Check::Request(&t), &forged, &claims),
            Err(Error::InsufficientScope("s1".into()))
        );
    }
}
