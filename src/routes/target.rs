//! Which request a proxy is asking about. Proxies tell jwtd the original method and path in headers of
//! their own family:
//!
//! - nginx `auth_request`: `X-Original-URI` and `X-Original-Method`, as the documented config sets them;
//! - Traefik and Caddy forward-auth: `X-Forwarded-Uri` and `X-Forwarded-Method`;
//! - Envoy ext_authz (HTTP): the original path appended to the verify path (`/verify/orders/7`), and the
//!   original method as the request's own.
//!
//! A proxy passes through client-sent headers of the family it does not set itself (nginx forwards a
//! client's `X-Forwarded-Uri`, Caddy a client's `X-Original-URI`), so a request carrying both families that
//! disagree is refused (400) rather than matched on the friendlier one. A family with a path but no method (or
//! the reverse), a header sent twice, or a path that does not normalise: refused too. Nothing at all: the
//! target is unknown, which no route matches (and which is denied whenever routes exist).

use hyper::HeaderMap;

use super::path::{PathError, normalize};
use super::table::Target;

/// Why the original request cannot be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Both header families, saying different things.
    Conflict,
    /// A family with only one of its two headers, or a header twice, or not text.
    Incomplete(&'static str),
    /// The path does not normalise.
    Path(PathError),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Conflict => f.write_str(
                "X-Original-URI/-Method and X-Forwarded-Uri/-Method name different requests",
            ),
            TargetError::Incomplete(what) => write!(f, "{what}"),
            TargetError::Path(e) => write!(f, "original path: {e}"),
        }
    }
}

const FAMILIES: [(&str, &str); 2] = [
    ("x-original-uri", "x-original-method"),
    ("x-forwarded-uri", "x-forwarded-method"),
];

/// One header's only value, as text.
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, TargetError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TargetError::Incomplete(
            "an original-request header is repeated",
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| TargetError::Incomplete("an original-request header is not ASCII text"))
}

/// The original request of an auth request with `headers`, whose own method is `method` and whose own path
/// is `own_path`, received on `verify_path`.
pub fn target(
    headers: &HeaderMap,
    method: &str,
    own_path: &str,
    verify_path: &str,
) -> Result<Target, TargetError> {
    let mut found: Option<Target> = None;
    for (uri, meth) in FAMILIES {
        let (u, m) = (single(headers, uri)?, single(headers, meth)?);
        let t = match (u, m) {
            (None, None) => continue,
            (Some(u), Some(m)) => Target::Known {
                method: m.trim().to_ascii_uppercase(),
                path: normalize(u.trim()).map_err(TargetError::Path)?,
            },
            _ => {
                return Err(TargetError::Incomplete(
                    "an original-request header family without both its path and its method",
                ));
            }
        };
        match &found {
            Some(prev) if *prev != t => return Err(TargetError::Conflict),
            _ => found = Some(t),
        }
    }
    if let Some(t) = found {
        return Ok(t);
    }
    // Envoy: the original path appended to the verify path.
    let base = verify_path.trim_end_matches('/');
    match own_path.strip_prefix(base) {
        Some(rest) if rest.starts_with('/') && rest.len() > 1 => Ok(Target::Known {
            method: method.to_ascii_uppercase(),
            path: normalize(rest).map_err(TargetError::Path)?,
        }),
        _ => Ok(Target::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn known(method: &str, path: &str) -> Result<Target, TargetError> {
        Ok(Target::Known {
            method: method.into(),
            path: path.into(),
        })
    }

    #[test]
    fn each_proxy_family() {
        let nginx = headers(&[
            ("x-original-uri", "/orders/7?x=1"),
            ("x-original-method", "post"),
        ]);
        assert_eq!(
            target(&nginx, "GET", "/verify", "/verify"),
            known("POST", "/orders/7")
        );
        let caddy = headers(&[
            ("x-forwarded-uri", "/admin/../orders"),
            ("x-forwarded-method", "GET"),
        ]);
        assert_eq!(
            target(&caddy, "GET", "/verify", "/verify"),
            known("GET", "/orders")
        );
        assert_eq!(
            target(
                &HeaderMap::new(),
                "delete",
                "/verify/orders/%2e%2e/admin",
                "/verify"
            ),
            known("DELETE", "/admin")
        );
        assert_eq!(
            target(&HeaderMap::new(), "GET", "/verify", "/verify"),
            Ok(Target::Unknown)
        );
        assert_eq!(
            target(&HeaderMap::new(), "GET", "/verify/", "/verify"),
            Ok(Target::Unknown)
        );
        // Both families naming the same request is fine (a proxy that sets both)…
        let same = headers(&[
            ("x-original-uri", "/orders"),
            ("x-original-method", "GET"),
            ("x-forwarded-uri", "/orders?page=2"),
            ("x-forwarded-method", "get"),
        ]);
        assert_eq!(
            target(&same, "GET", "/verify", "/verify"),
            known("GET", "/orders")
        );
        // … but `/orders` and `/orders/` are two requests.
        let slash = headers(&[
            ("x-original-uri", "/orders"),
            ("x-original-method", "GET"),
            ("x-forwarded-uri", "/orders/"),
            ("x-forwarded-method", "GET"),
        ]);
        assert_eq!(
            target(&slash, "GET", "/verify", "/verify"),
            Err(TargetError::Conflict)
        );
    }

    #[test]
    fn smuggled_and_broken_targets_are_refused() {
        // nginx sets X-Original-*; a client adds X-Forwarded-* naming a friendlier path.
        let smuggled = headers(&[
            ("x-original-uri", "/admin"),
            ("x-original-method", "GET"),
            ("x-forwarded-uri", "/public"),
            ("x-forwarded-method", "GET"),
        ]);
        assert_eq!(
            target(&smuggled, "GET", "/verify", "/verify"),
            Err(TargetError::Conflict)
        );
        let method_differs = headers(&[
            ("x-original-uri", "/orders"),
            ("x-original-method", "POST"),
            ("x-forwarded-uri", "/orders"),
            ("x-forwarded-method", "GET"),
        ]);
        assert_eq!(
            target(&method_differs, "GET", "/verify", "/verify"),
            Err(TargetError::Conflict)
        );
        let half = headers(&[("x-original-uri", "/orders")]);
        assert!(matches!(
            target(&half, "GET", "/verify", "/verify"),
            Err(TargetError::Incomplete(_))
        ));
        let twice = headers(&[
            ("x-original-uri", "/orders"),
            ("x-original-uri", "/admin"),
            ("x-original-method", "GET"),
        ]);
        assert!(matches!(
            target(&twice, "GET", "/verify", "/verify"),
            Err(TargetError::Incomplete(_))
        ));
        let slash = headers(&[
            ("x-forwarded-uri", "/admin%2Fx"),
            ("x-forwarded-method", "GET"),
        ]);
        assert_eq!(
            target(&slash, "GET", "/verify", "/verify"),
            Err(TargetError::Path(PathError::EncodedSlash))
        );
    }
}
