//! What `/verify` is configured by (path, token header and cookie, claim headers) and the checks on each.

use hyper::header::HeaderName;

use crate::config::InvalidValue;

/// How auth subrequests are recognised and where their token is.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Path of auth subrequests, any method. `PATH/anything` matches too: Envoy ext_authz (HTTP mode) appends
    /// the original request's path to its `path_prefix`.
    pub verify_path: String,
    /// Header holding the token; `None` is `Authorization: Bearer <token>`. A custom header holds the bare
    /// token (a `Bearer ` prefix is accepted and removed).
    pub token_header: Option<HeaderName>,
    /// Cookie holding the token, tried when the header is absent.
    pub token_cookie: Option<String>,
    /// Claims copied into `/verify` response headers: (header, claim). Every one is always answered (empty
    /// when the claim is absent), so that a proxy copying it replaces any copy the client sent.
    pub claim_headers: Vec<(HeaderName, String)>,
    /// How arrays become claim header values.
    pub arrays: super::claim_headers::Arrays,
    /// A header carrying the whole payload (base64url of the claims JSON).
    pub payload_header: Option<HeaderName>,
    /// Which ways of naming the original request (for routes) are believed.
    pub trust: crate::routes::target::Trust,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verify_path: "/verify".into(),
            token_header: None,
            token_cookie: None,
            // `sub` is only an identity together with `iss` (two issuers may both have a user "42").
            claim_headers: vec![
                (HeaderName::from_static("x-jwt-sub"), "sub".into()),
                (HeaderName::from_static("x-jwt-iss"), "iss".into()),
            ],
            arrays: super::claim_headers::Arrays::default(),
            payload_header: None,
            trust: crate::routes::target::Trust::default(),
        }
    }
}

impl Options {
    pub(super) fn is_verify_path(&self, path: &str) -> bool {
        path.strip_prefix(self.verify_path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Checks a verify path: absolute, not `/`, and clear of the daemon's own endpoints — were `/metrics` an auth
/// path too, a proxy would let through every request for `/metrics` that the daemon answers 200.
pub fn parse_verify_path(s: &str) -> Result<String, InvalidValue> {
    let p = s.trim_end_matches('/');
    if !s.starts_with('/') || p.is_empty() {
        return Err(InvalidValue::new(
            s,
            "expected an absolute path other than /, e.g. /verify",
        ));
    }
    if p.bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'?' || b == b'#')
    {
        return Err(InvalidValue::new(
            s,
            "a path cannot hold whitespace, '?' or '#'",
        ));
    }
    for own in ["/healthz", "/metrics", "/introspect"] {
        if own == p || own.starts_with(&format!("{p}/")) || p.starts_with(&format!("{own}/")) {
            return Err(InvalidValue::new(
                s,
                format!("overlaps the daemon's own endpoint {own}"),
            ));
        }
    }
    Ok(p.to_string())
}

/// Checks a cookie name (an RFC 6265 token).
pub fn parse_cookie_name(s: &str) -> Result<String, InvalidValue> {
    let bad = |b: u8| !b.is_ascii_graphic() || b"()<>@,;:\\\"/[]?={}".contains(&b);
    if s.is_empty() || s.bytes().any(bad) {
        return Err(InvalidValue::new(s, "not a cookie name"));
    }
    Ok(s.to_string())
}

/// Checks a header name.
pub fn parse_header_name(s: &str) -> Result<HeaderName, InvalidValue> {
    HeaderName::from_bytes(s.as_bytes()).map_err(|_| InvalidValue::new(s, "not a header name"))
}

/// Headers a claim may never be written to: hop-by-hop headers (RFC 9110 §7.6.1), credentials and
/// framing, and the headers proxies use to name the original request (a claim there could steer routes).
const RESERVED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "proxy-authenticate",
    "www-authenticate",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "cookie",
    "set-cookie",
    "forwarded",
    "x-original-uri",
    "x-original-method",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-host",
    "x-forwarded-for",
    "x-forwarded-proto",
];

/// Checks the name of a header jwtd writes claims into: a header name, and not one of [`RESERVED`].
pub fn parse_output_header(s: &str) -> Result<HeaderName, InvalidValue> {
    let name = parse_header_name(s)?;
    if RESERVED.contains(&name.as_str()) {
        return Err(InvalidValue::new(
            s,
            "reserved: hop-by-hop, credential, framing and original-request headers cannot carry claims",
        ));
    }
    Ok(name)
}

/// Parses `--claim-header X-Jwt-Sub=sub` (a dotted claim name is a path into nested objects).
pub fn parse_claim_header(s: &str) -> Result<(HeaderName, String), InvalidValue> {
    let (name, claim) = s
        .split_once('=')
        .ok_or_else(|| InvalidValue::new(s, "expected HEADER=claim, e.g. X-Jwt-Sub=sub"))?;
    let name = parse_output_header(name)?;
    if claim.is_empty() {
        return Err(InvalidValue::new(s, "the claim name is empty"));
    }
    Ok((name, claim.to_string()))
}

/// Checks that no header is written twice (claim headers and the payload header).
pub fn check_distinct(o: &Options) -> Result<(), InvalidValue> {
    let mut seen: Vec<&HeaderName> = Vec::new();
    for name in o
        .claim_headers
        .iter()
        .map(|(n, _)| n)
        .chain(&o.payload_header)
    {
        if seen.contains(&name) {
            return Err(InvalidValue::new(
                name.as_str(),
                "this header is configured twice",
            ));
        }
        seen.push(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_never_go_to_reserved_headers() {
        for bad in [
            "Authorization=sub",
            "connection=sub",
            "X-Original-URI=sub",
            "Transfer-Encoding=x",
            "Host=iss",
        ] {
            assert!(parse_claim_header(bad).is_err(), "{bad}");
        }
        assert!(parse_claim_header("X-Jwt-Country=address.country").is_ok());
        assert!(parse_output_header("set-cookie").is_err());
        let twice = Options {
            claim_headers: vec![parse_claim_header("X-A=sub").unwrap()],
            payload_header: Some(parse_output_header("x-a").unwrap()),
            ..Options::default()
        };
        assert!(check_distinct(&twice).is_err());
        assert!(check_distinct(&Options::default()).is_ok());
    }

    #[test]
    fn verify_paths_match_exactly_or_as_a_prefix_segment() {
        let o = Options {
            verify_path: parse_verify_path("/auth/").unwrap(),
            ..Options::default()
        };
        assert_eq!(o.verify_path, "/auth");
        assert!(o.is_verify_path("/auth"));
        assert!(o.is_verify_path("/auth/"));
        assert!(o.is_verify_path("/auth/api/x"));
        assert!(!o.is_verify_path("/authx"));
        assert!(!o.is_verify_path("/"));
        for bad in [
            "",
            "/",
            "//",
            "auth",
            "/metrics",
            "/introspect/",
            "/healthz/x",
            "/a b",
            "/a?b",
        ] {
            assert!(parse_verify_path(bad).is_err(), "{bad:?}");
        }
        assert!(parse_verify_path("/metricsx").is_ok());
        assert!(parse_cookie_name("session").is_ok());
        for bad in ["", "a b", "a;b", "a=b"] {
            assert!(parse_cookie_name(bad).is_err(), "{bad:?}");
        }
    }
}
