//! HTTP/1.1 on the daemon's socket, with hyper: auth subrequests (nginx `auth_request`, Envoy ext_authz HTTP,
//! Traefik forward-auth), RFC 7662 introspection, health and Prometheus metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::stats::Batch;
use crate::error::Error;

/// Largest accepted request body (introspection forms), in bytes.
const MAX_BODY: usize = 64 * 1024;

/// How auth subrequests are recognised and where their token is.
#[derive(Debug, Clone)]
pub struct Options {
    /// Path of auth subrequests, any method. `PATH/anything` matches too: Envoy ext_authz (HTTP mode) appends
    /// the original request's path to its `path_prefix`.
    pub verify_path: String,
    /// Header holding the token; `None` is `Authorization: Bearer <token>`. A custom header holds the bare
    /// token (a `Bearer ` prefix is accepted and removed).
    pub token_header: Option<HeaderName>,
    /// Cookie holding the token, tried when the header is absent.
    pub token_cookie: Option<String>,
    /// Claims copied into `/verify` response headers: (header, claim).
    pub claim_headers: Vec<(HeaderName, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verify_path: "/verify".into(),
            token_header: None,
            token_cookie: None,
            claim_headers: vec![(HeaderName::from_static("x-jwt-sub"), "sub".into())],
        }
    }
}

impl Options {
    fn is_verify_path(&self, path: &str) -> bool {
        path.strip_prefix(self.verify_path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Checks a verify path: absolute, not `/`, and clear of the daemon's own endpoints — were `/metrics` an auth
/// path too, a proxy would let through every request for `/metrics` that the daemon answers 200.
pub fn parse_verify_path(s: &str) -> Result<String, String> {
    let p = s.trim_end_matches('/');
    if !s.starts_with('/') || p.is_empty() {
        return Err(format!(
            "{s:?}: expected an absolute path other than /, e.g. /verify"
        ));
    }
    if p.bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'?' || b == b'#')
    {
        return Err(format!("{s:?}: a path cannot hold whitespace, '?' or '#'"));
    }
    for own in ["/healthz", "/metrics", "/introspect"] {
        if own == p || own.starts_with(&format!("{p}/")) || p.starts_with(&format!("{own}/")) {
            return Err(format!("{s:?} overlaps the daemon's own endpoint {own}"));
        }
    }
    Ok(p.to_string())
}

/// Checks a cookie name (an RFC 6265 token).
pub fn parse_cookie_name(s: &str) -> Result<String, String> {
    let bad = |b: u8| !b.is_ascii_graphic() || b"()<>@,;:\\\"/[]?={}".contains(&b);
    if s.is_empty() || s.bytes().any(bad) {
        return Err(format!("{s:?} is not a cookie name"));
    }
    Ok(s.to_string())
}

/// Checks a header name.
pub fn parse_header_name(s: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not a header name"))
}

/// Serves HTTP/1.1 (keep-alive, pipelining) on one connection until the client closes or `shutdown`.
pub async fn serve<S>(
    stream: S,
    shared: Arc<Shared>,
    shutdown: &CancellationToken,
    peer_uid: Option<u32>,
) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = shared.client_timeout;
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(req, &shared, peer_uid).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Slow clients (slowloris) get this long to send their headers, then are cut off.
        .header_read_timeout(timeout)
        // Caps the header section (hyper's minimum buffer is 8 KiB).
        .max_buf_size(32 * 1024)
        .pipeline_flush(true)
        // Clients that shut down their write side after the request still get the answer.
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

async fn route(
    req: Request<Incoming>,
    shared: &Shared,
    peer_uid: Option<u32>,
) -> Response<Full<Bytes>> {
    let started = std::time::Instant::now();
    let response = match (req.method(), req.uri().path()) {
        (_, path) if shared.http.is_verify_path(path) => verify(&req, shared),
        (&Method::POST, "/introspect") => introspect(req, shared).await,
        (&Method::POST, "/revoke") => revoke(req, shared, peer_uid).await,
        (_, "/revoke") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/metrics") => metrics(shared),
        (_, "/introspect") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    shared.stats.observe_latency(started.elapsed(), 1);
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Where a request's token was looked for, and what was found.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Found(&'a [u8]),
    /// No credentials at all: RFC 6750 §3.1 says answer without an error code.
    Absent,
    /// Credentials of the wrong shape (another scheme, an empty value).
    Malformed(&'static str),
}

/// Finds the token: the configured header (default `Authorization: Bearer`, scheme case-insensitive, RFC
/// 6750 §2.1), then the configured cookie.
fn find_token<'a>(headers: &'a hyper::HeaderMap, opts: &Options) -> Token<'a> {
    let from_header = match &opts.token_header {
        None => headers.get(header::AUTHORIZATION).map(|v| {
            let v = v.as_bytes();
            match v.iter().position(|&b| b == b' ') {
                Some(i) if v[..i].eq_ignore_ascii_case(b"bearer") => v[i..].trim_ascii(),
                _ => b"",
            }
        }),
        Some(name) => headers.get(name).map(|v| {
            let v = v.as_bytes().trim_ascii();
            match v.get(..7) {
                Some(p) if p.eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii(),
                _ => v,
            }
        }),
    };
    match from_header {
        Some([]) => {
            return Token::Malformed("the token header is empty or not a Bearer credential");
        }
        Some(t) => return Token::Found(t),
        None => {}
    }
    let Some(name) = &opts.token_cookie else {
        return Token::Absent;
    };
    for v in headers.get_all(header::COOKIE) {
        if let Some(t) = cookie(v.as_bytes(), name.as_bytes()) {
            return match t {
                [] => Token::Malformed("the token cookie is empty"),
                t => Token::Found(t),
            };
        }
    }
    Token::Absent
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b="2"`, RFC 6265 §4.2.1; quotes removed).
fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq].trim_ascii() == name).then(|| {
            let v = pair[eq + 1..].trim_ascii();
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v)
        })
    })
}

fn verify(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let mut batch = Batch {
        requests: 1,
        ..Batch::default()
    };
    let response = match find_token(req.headers(), &shared.http) {
        Token::Absent => {
            batch.protocol_errors += 1;
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_request","message":"no token in the request"}"#.into(),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Token::Malformed(why) => {
            batch.protocol_errors += 1;
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "invalid_request", "message": why}).to_string(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_request\""),
            );
            r
        }
        Token::Found(token) => match shared.verify(
            &shared.snapshot(),
            token,
            super::unix_now(),
            &mut batch,
            |claims| {
                let mut r = json(StatusCode::OK, claims.to_owned());
                claim_headers(&mut r, claims, shared);
                r
            },
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(token = %crate::crypto::token_digest(token), code = e.code(), "rejected (http)");
                rejected(&e)
            }
        },
    };
    shared.stats.add(&batch);
    response
}

/// 401 with RFC 6750 §3 `WWW-Authenticate` and a JSON body naming the code.
fn rejected(e: &Error) -> Response<Full<Bytes>> {
    let body =
        serde_json::json!({"error": "invalid_token", "code": e.code(), "message": e.to_string()});
    let mut r = json(StatusCode::UNAUTHORIZED, body.to_string());
    let challenge = format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\"",
        e.code()
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Copies configured claims into response headers (`X-Jwt-Sub: …`) for the proxy to forward upstream.
fn claim_headers(r: &mut Response<Full<Bytes>>, claims: &str, shared: &Shared) {
    if shared.http.claim_headers.is_empty() {
        return;
    }
    let claims: serde_json::Value = match serde_json::from_str(claims) {
        Ok(c) => c,
        Err(_) => return,
    };
    for (name, claim) in &shared.http.claim_headers {
        let value = match claims.get(claim) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" "),
            Some(other) => other.to_string(),
            None => continue,
        };
        // Values that cannot be a header (control characters) are left out rather than mangled.
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(name.clone(), v);
        }
    }
}

/// Reads a request body: at most [`MAX_BODY`] bytes (else 413), within the client timeout (else 408: a
/// client sending its body one byte a second would otherwise hold the connection for hours).
async fn read_body(
    req: Request<Incoming>,
    timeout: Duration,
) -> Result<Bytes, Response<Full<Bytes>>> {
    match tokio::time::timeout(timeout, Limited::new(req.into_body(), MAX_BODY).collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        )),
        Ok(Err(_)) => Err(text(StatusCode::BAD_REQUEST, "unreadable request body\n")),
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time\n",
        )),
    }
}

/// Reads a form body (capped, timed).
async fn form(
    req: Request<Incoming>,
    timeout: Duration,
) -> Result<Vec<(String, String)>, Response<Full<Bytes>>> {
    let body = read_body(req, timeout).await?;
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

/// RFC 7009-style revocation, admins only (by SO_PEERCRED uid): `token=…` revokes a whole token (by its
/// `jti` until its `exp`, else by digest). Extensions: `jti=…&exp=…`, `sub=…&before=…[&until=…]`, and
/// `unrevoke=1` to lift a rule ([`super::revoke::from_form`]: a missing or malformed field is a 400 naming
/// it). Answers 200 once the change is durable and in force.
async fn revoke(
    req: Request<Incoming>,
    shared: &Shared,
    peer_uid: Option<u32>,
) -> Response<Full<Bytes>> {
    let error = |status, code: &str, msg: &str| {
        json(
            status,
            serde_json::json!({"error": code, "message": msg}).to_string(),
        )
    };
    if !peer_uid.is_some_and(|uid| shared.admin_uids.contains(&uid)) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "revocation is an admin operation; this peer's uid is not an admin uid",
        );
    }
    let Some(store) = &shared.revocations else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "revocation_disabled",
            "revocation needs a state directory: start jwtd serve with --state-dir DIR",
        );
    };
    let fields = match form(req, shared.client_timeout).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let op = match super::revoke::from_form(&fields) {
        Ok(op) => op,
        // RFC 7009 §2.2: an invalid token is not an error for the client; say so in the body.
        Err(super::revoke::FormError::NotAToken(e)) => {
            return json(
                StatusCode::OK,
                serde_json::json!({"revoked": false, "message": e}).to_string(),
            );
        }
        Err(super::revoke::FormError::Invalid(e)) => {
            return error(StatusCode::BAD_REQUEST, "invalid_request", &e);
        }
    };
    tracing::info!(
        peer_uid,
        kind = super::revoke::kind(&op),
        "revocation submitted (http)"
    );
    match store.submit(op.clone()).await {
        Ok(Ok(changed)) => json(StatusCode::OK, super::revoke::written(&op, changed)),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "revocation_failed", &e),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "revocation_failed",
            "the revocation writer stopped",
        ),
    }
}

/// RFC 7662: `token=…` form in, `{"active":true,…claims}` or `{"active":false}` out.
async fn introspect(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let body = match read_body(req, shared.client_timeout).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let Some(token) = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
    else {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_request","message":"form parameter token is required"}"#.into(),
        );
    };
    let mut batch = Batch {
        requests: 1,
        ..Batch::default()
    };
    let verified = shared.verify(
        &shared.snapshot(),
        token.as_bytes(),
        super::unix_now(),
        &mut batch,
        |claims| {
            let mut claims: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(claims).unwrap_or_default();
            claims.insert("active".into(), true.into());
            json(
                StatusCode::OK,
                serde_json::Value::Object(claims).to_string(),
            )
        },
    );
    let response = verified.unwrap_or_else(|_| json(StatusCode::OK, r#"{"active":false}"#.into()));
    shared.stats.add(&batch);
    response
}

fn metrics(shared: &Shared) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(
        shared
            .stats
            .to_prometheus(&shared.extras(&shared.issuers.load())),
    )));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Parses `--claim-header X-Jwt-Sub=sub`.
pub fn parse_claim_header(s: &str) -> Result<(HeaderName, String), String> {
    let (name, claim) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected HEADER=claim, e.g. X-Jwt-Sub=sub"))?;
    let name = parse_header_name(name)?;
    if claim.is_empty() {
        return Err(format!("{s:?}: the claim name is empty"));
    }
    Ok((name, claim.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                parse_header_name(k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_malformed() {
        let o = Options::default();
        let t = |v: &str| match find_token(&headers(&[("authorization", v)]), &o) {
            Token::Found(t) => Some(String::from_utf8(t.to_vec()).unwrap()),
            _ => None,
        };
        assert_eq!(t("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(t("bEaReR   abc  ").as_deref(), Some("abc"));
        assert_eq!(t("Basic abc"), None);
        assert_eq!(t("Bearer"), None);
        assert_eq!(find_token(&headers(&[]), &o), Token::Absent);
        assert!(matches!(
            find_token(&headers(&[("authorization", "Basic x")]), &o),
            Token::Malformed(_)
        ));
    }

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        assert_eq!(cookie(b"a=1; b=2", b"b"), Some(&b"2"[..]));
        assert_eq!(cookie(b"a=1;b=\"2\"", b"b"), Some(&b"2"[..]));
        assert_eq!(cookie(b"ab=1", b"b"), None);
        assert_eq!(cookie(b"b", b"b"), None);
        let o = Options {
            token_cookie: Some("s".into()),
            ..Options::default()
        };
        let h = headers(&[("cookie", "x=1"), ("cookie", "s=tok")]);
        assert_eq!(find_token(&h, &o), Token::Found(b"tok"));
        assert!(matches!(
            find_token(&headers(&[("cookie", "s=")]), &o),
            Token::Malformed(_)
        ));
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
