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

use super::path::{PathError, normalize, normalize_bytes};
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

/// Which ways of naming the original request are believed (`[http] original_request`); the headers of a
/// way that is not are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    /// `X-Original-URI` / `X-Original-Method` (nginx `auth_request`).
    pub nginx: bool,
    /// `X-Forwarded-Uri` / `X-Forwarded-Method` (Traefik, Caddy forward-auth).
    pub forwarded: bool,
    /// The original path appended to the verify path (Envoy ext_authz HTTP).
    pub envoy: bool,
}

impl Default for Trust {
    fn default() -> Trust {
        Trust {
            nginx: true,
            forwarded: true,
            envoy: true,
        }
    }
}

impl Trust {
    /// The names `[http] original_request` takes.
    pub const NAMES: [&'static str; 3] = ["nginx", "forward-auth", "envoy"];

    /// From a list of [`Trust::NAMES`]; `Err` names the first unknown entry.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Trust, String> {
        let mut t = Trust {
            nginx: false,
            forwarded: false,
            envoy: false,
        };
        for n in names {
            match n.as_ref() {
                "nginx" => t.nginx = true,
                "forward-auth" => t.forwarded = true,
                "envoy" => t.envoy = true,
                other => {
                    return Err(format!(
                        "{other:?}: expected some of \"nginx\" (X-Original-URI), \"forward-auth\" (X-Forwarded-Uri) and \"envoy\" (path after the verify path)"
                    ));
                }
            }
        }
        Ok(t)
    }
}

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
/// is `own_path`, received on `verify_path`, believing the ways `trust` names.
pub fn target<'a>(
    headers: &'a HeaderMap,
    method: &'a str,
    own_path: &'a str,
    verify_path: &str,
    trust: Trust,
) -> Result<Target<'a>, TargetError> {
    let mut found: Option<Target<'a>> = None;
    for (i, (uri, meth)) in FAMILIES.into_iter().enumerate() {
        if !(if i == 0 { trust.nginx } else { trust.forwarded }) {
            continue;
        }
        let (u, m) = (single(headers, uri)?, single(headers, meth)?);
        let t = match (u, m) {
            (None, None) => continue,
            (Some(u), Some(m)) => {
                Target::known(m.trim(), normalize(u.trim()).map_err(TargetError::Path)?)
            }
            _ => {
                return Err(TargetError::Incomplete(
                    "an original-request header family without both its path and its method",
                ));
            }
        };
        merge(&mut found, t)?;
    }
    // Envoy: the original path appended to the verify path. Believed together with the headers, never
    // instead of them: a client-sent header naming another request is a conflict, not an override.
    let base = verify_path.trim_end_matches('/');
    if trust.envoy
        && let Some(rest) = own_path.strip_prefix(base)
        && rest.starts_with('/')
        && rest.len() > 1
    {
        let t = Target::known(method, normalize(rest).map_err(TargetError::Path)?);
        merge(&mut found, t)?;
    }
    Ok(found.unwrap_or(Target::Unknown))
}

/// The request a line-protocol client names (`VERIFY <token> <METHOD> <PATH>`).
pub fn from_line<'a>(method: &'a [u8], path: &'a [u8]) -> Result<Target<'a>, TargetError> {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if method.is_empty() || !method.iter().all(tchar) {
        return Err(TargetError::Incomplete(
            "the method is not an HTTP method token",
        ));
    }
    // Checked: ASCII token characters only.
    let method = std::str::from_utf8(method)
        .map_err(|_| TargetError::Incomplete("the method is not an HTTP method token"))?;
    Ok(Target::known(
        method,
        normalize_bytes(path).map_err(TargetError::Path)?,
    ))
}

/// Keeps `t` as the target, unless another source named a different one.
fn merge<'a>(found: &mut Option<Target<'a>>, t: Target<'a>) -> Result<(), TargetError> {
    match found {
        Some(prev) if *prev != t => Err(TargetError::Conflict),
        _ => {
            *found = Some(t);
            Ok(())
        }
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

    fn known(method: &'static str, path: &'static str) -> Result<Target<'static>, TargetError> {
        Ok(Target::known(method, path))
    }

    #[test]
    fn each_proxy_family() {
        let nginx = headers(&[
            ("x-original-uri", "/orders/7?x=1"),
            ("x-original-method", "post"),
        ]);
        assert_eq!(
            target(&nginx, "GET", "/verify", "/verify", Trust::default()),
            known("POST", "/orders/7")
        );
        let caddy = headers(&[
            ("x-forwarded-uri", "/admin/../orders"),
            ("x-forwarded-method", "GET"),
        ]);
        assert_eq!(
            target(&caddy, "GET", "/verify", "/verify", Trust::default()),
            known("GET", "/orders")
        );
        assert_eq!(
            target(
                &HeaderMap::new(),
                "delete",
                "/verify/orders/%2e%2e/admin",
                "/verify",
                Trust::default()
            ),
            known("DELETE", "/admin")
        );
        assert_eq!(
            target(
                &HeaderMap::new(),
                "GET",
                "/verify",
                "/verify",
                Trust::default()
            ),
            Ok(Target::Unknown)
        );
        assert_eq!(
            target(
                &HeaderMap::new(),
                "GET",
                "/verify/",
                "/verify",
                Trust::default()
            ),
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
            target(&same, "GET", "/verify", "/verify", Trust::default()),
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
            target(&slash, "GET", "/verify", "/verify", Trust::default()),
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
            target(&smuggled, "GET", "/verify", "/verify", Trust::default()),
            Err(TargetError::Conflict)
        );
        let method_differs = headers(&[
            ("x-original-uri", "/orders"),
            ("x-original-method", "POST"),
            ("x-forwarded-uri", "/orders"),
            ("x-forwarded-method", "GET"),
        ]);
        assert_eq!(
            target(
                &method_differs,
                "GET",
                "/verify",
                "/verify",
                Trust::default()
            ),
            Err(TargetError::Conflict)
        );
        let half = headers(&[("x-original-uri", "/orders")]);
        assert!(matches!(
            target(&half, "GET", "/verify", "/verify", Trust::default()),
            Err(TargetError::Incomplete(_))
        ));
        let twice = headers(&[
            ("x-original-uri", "/orders"),
            ("x-original-uri", "/admin"),
            ("x-original-method", "GET"),
        ]);
        assert!(matches!(
            target(&twice, "GET", "/verify", "/verify", Trust::default()),
            Err(TargetError::Incomplete(_))
        ));
        let slash = headers(&[
            ("x-forwarded-uri", "/admin%2Fx"),
            ("x-forwarded-method", "GET"),
        ]);
        assert_eq!(
            target(&slash, "GET", "/verify", "/verify", Trust::default()),
            Err(TargetError::Path(PathError::EncodedSlash))
        );
    }
}
