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
    mut stream: S,
    shared: Arc<Shared>,
    shutdown: &CancellationToken,
    peer_uid: Option<u32>,
) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = shared.client_timeout();
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
        // Not `pipeline_flush(true)`: it defers flushing while more input may follow, and a connection
        // that ends in a parse error (headers too large, more than 100, a malformed line) then closes with
        // hyper's automatic 431/400 still in its buffer — the client saw an empty reply (nginx: 502).
        // Clients that shut down their write side after the request still get the answer.
        .half_close(true)
        .serve_connection(TokioIo::new(&mut stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if result.as_ref().is_err_and(hyper::Error::is_parse) {
        // hyper has answered 431/400 and stopped reading mid-request: a close with the client's bytes unread
        // would reset the connection, and the client could lose the answer. Drain briefly first.
        super::close_after_reply(&mut stream).await;
    }
    result
}

async fn route(
    req: Request<Incoming>,
    shared: &Shared,
    peer_uid: Option<u32>,
) -> Response<Full<Bytes>> {
    let started = std::time::Instant::now();
    let response = match (req.method(), req.uri().path()) {
        (_, path) if shared.http.load().is_verify_path(path) => verify(&req, shared),
        (&Method::POST, "/introspect") => introspect(req, shared).await,
        (&Method::POST, "/revoke") => revoke(req, shared, peer_uid).await,
        (_, "/revoke") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/metrics") => metrics(shared),
        (_, "/introspect") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    let elapsed = started.elapsed();
    shared.stats.observe_latency(elapsed, 1);
    if elapsed >= super::conn::SLICE {
        // An expensive request (a junk RSA-8192 signature): let other connections on this worker run
        // before hyper takes the next pipelined one.
        shared.stats.yielded();
        tokio::task::yield_now().await;
    }
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
    /// Two credentials (two `Authorization` headers, the token header or cookie twice): the first would be
    /// verified while a later hop may read the last (RFC 6750 §3.1: `invalid_request`, 400).
    Duplicate(&'static str),
}

/// Finds the token: the configured header (default `Authorization: Bearer`, scheme case-insensitive, RFC
/// 6750 §2.1), then the configured cookie.
fn find_token<'a>(headers: &'a hyper::HeaderMap, opts: &Options) -> Token<'a> {
    let name = opts.token_header.as_ref().unwrap_or(&header::AUTHORIZATION);
    if headers.get_all(name).iter().nth(1).is_some() {
        return Token::Duplicate(if opts.token_header.is_none() {
            "more than one Authorization header"
        } else {
            "the token header is given more than once"
        });
    }
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
    let mut found = None;
    for v in headers.get_all(header::COOKIE) {
        for t in cookies(v.as_bytes(), name.as_bytes()) {
            if found.is_some() {
                return Token::Duplicate("the token cookie is given more than once");
            }
            found = Some(t);
        }
    }
    match found {
        None => Token::Absent,
        Some([]) => Token::Malformed("the token cookie is empty"),
        Some(t) => Token::Found(t),
    }
}

/// The values of cookie `name` in a `Cookie` header (`a=1; b="2"`, RFC 6265 §4.2.1; quotes removed).
fn cookies<'a, 'n>(
    header: &'a [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
    header.split(|&b| b == b';').filter_map(move |pair| {
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

#[cfg(test)]
fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    cookies(header, name).next()
}

fn verify(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let mut batch = Batch {
        requests: 1,
        ..Batch::default()
    };
    let options = shared.http.load();
    let response = match find_token(req.headers(), &options) {
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
        Token::Duplicate(why) => {
            batch.protocol_errors += 1;
            let mut r = json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_request", "message": why}).to_string(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_request\""),
            );
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
            |claims| match claim_headers(claims, &options.claim_headers) {
                Ok(headers) => {
                    let mut r = json(StatusCode::OK, claims.to_owned());
                    r.headers_mut().extend(headers);
                    r
                }
                Err(why) => not_representable(&why),
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

/// The configured claim headers for a verified token's claims, for the proxy to forward upstream
/// (docs/PROTOCOL.md, "Claims in headers"):
///
/// - every configured header is answered, **empty when the claim is absent** — a proxy that copies it then
///   replaces whatever copy the client sent, instead of letting it through;
/// - a string claim is its text as is (UTF-8 bytes); a number, boolean or null its JSON text;
/// - an array or object is its compact JSON (`["read","write admin"]`): unambiguous, where joining with
///   spaces made `["read","write admin"]` and `["read","write","admin"]` the same header;
/// - a value with a control character (CR, LF, NUL, TAB, DEL…) cannot be a header without being mangled
///   or split: the whole answer is refused (`Err`), never a header left out.
fn claim_headers(
    claims: &str,
    wanted: &[(HeaderName, String)],
) -> Result<Vec<(Option<HeaderName>, HeaderValue)>, String> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // Verification refuses any claims document serde_json cannot read (json::MAX_DEPTH_CEILING, number
    // range), so this parse sees exactly what verification saw.
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(claims).map_err(|e| format!("claims unreadable: {e}"))?;
    let mut out = Vec::with_capacity(wanted.len());
    for (name, claim) in wanted {
        let value = match claims.get(claim) {
            None => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        if value.bytes().any(|b| b.is_ascii_control()) {
            return Err(format!(
                "claim {claim:?} holds a control character and cannot be carried in header {name}"
            ));
        }
        let v = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| format!("claim {claim:?} cannot be carried in header {name}"))?;
        out.push((Some(name.clone()), v));
    }
    Ok(out)
}

/// 401 for a valid token whose configured claim header cannot be written.
fn not_representable(why: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": "invalid_token", "code": "claim_not_representable", "message": why});
    let mut r = json(StatusCode::UNAUTHORIZED, body.to_string());
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer error=\"invalid_token\", error_description=\"claim_not_representable\"",
        ),
    );
    r
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
    let fields = match form(req, shared.client_timeout()).await {
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
    let body = match read_body(req, shared.client_timeout()).await {
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

    #[test]
    fn duplicate_credentials_are_refused() {
        let o = Options::default();
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(matches!(find_token(&h, &o), Token::Duplicate(_)));
        let o = Options {
            token_header: Some(parse_header_name("x-token").unwrap()),
            token_cookie: Some("s".into()),
            ..Options::default()
        };
        let h = headers(&[("x-token", "a"), ("x-token", "a")]);
        assert!(matches!(find_token(&h, &o), Token::Duplicate(_)));
        let h = headers(&[("cookie", "s=a; s=b")]);
        assert!(matches!(find_token(&h, &o), Token::Duplicate(_)));
        let h = headers(&[("cookie", "s=a"), ("cookie", "x=1; s=a")]);
        assert!(matches!(find_token(&h, &o), Token::Duplicate(_)));
        // One of each source is fine: the header wins.
        let h = headers(&[("x-token", "a"), ("cookie", "s=b")]);
        assert_eq!(find_token(&h, &o), Token::Found(b"a"));
    }

    #[test]
    fn claim_headers_are_always_answered_and_unambiguous() {
        let wanted: Vec<(HeaderName, String)> = ["sub", "iss", "roles", "n", "obj", "missing"]
            .iter()
            .map(|c| (parse_header_name(&format!("x-{c}")).unwrap(), c.to_string()))
            .collect();
        let h = claim_headers(
            r#"{"sub":"José","iss":"https://a","roles":["read","write admin"],"n":1.5,"obj":{"a":[1]}}"#,
            &wanted,
        )
        .unwrap();
        let got: Vec<(String, &[u8])> = h
            .iter()
            .map(|(n, v)| (n.as_ref().unwrap().to_string(), v.as_bytes()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("x-sub".into(), "José".as_bytes()),
                ("x-iss".into(), &b"https://a"[..]),
                ("x-roles".into(), &br#"["read","write admin"]"#[..]),
                ("x-n".into(), &b"1.5"[..]),
                ("x-obj".into(), &br#"{"a":[1]}"#[..]),
                ("x-missing".into(), &b""[..]),
            ]
        );
        let other = claim_headers(r#"{"roles":["read","write","admin"]}"#, &wanted[2..3]).unwrap();
        assert_ne!(other[0].1.as_bytes(), br#"["read","write admin"]"#);
        for bad in [
            r#"{"sub":"a\nX-Admin: 1"}"#,
            r#"{"sub":"a\r"}"#,
            r#"{"sub":"a\u0000"}"#,
            r#"{"sub":"a\tb"}"#,
        ] {
            assert!(claim_headers(bad, &wanted[..1]).is_err(), "{bad}");
        }
    }
}
