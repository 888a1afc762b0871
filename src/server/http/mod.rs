//! HTTP/1.1 on the daemon's socket, with hyper: auth subrequests (nginx `auth_request`, Envoy ext_authz HTTP,
//! Traefik forward-auth), RFC 7662 introspection, health and Prometheus metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::stats::Batch;
use crate::error::Error;
use crate::routes::Check;

mod claim_headers;
mod credentials;
mod options;
mod sessions;

use claim_headers::claim_headers;
pub use claim_headers::{Arrays, parse_arrays};
use credentials::{Token, find_token};
pub use options::{
    Options, check_distinct, parse_claim_header, parse_cookie_name, parse_header_name,
    parse_output_header, parse_verify_path,
};

/// Whether the proxy's misconfiguration (no original request, or two disagreeing ones) was logged at warn
/// level yet: once per daemon, then at debug level, so that a client cannot flood the log.
static UNKNOWN_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CONFLICT_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn first(flag: &std::sync::atomic::AtomicBool) -> bool {
    !flag.swap(true, std::sync::atomic::Ordering::Relaxed)
}

/// Largest accepted request body (introspection forms), in bytes.
const MAX_BODY: usize = 64 * 1024;

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
        (_, path) if shared.http.load().is_verify_path(path) => verify(&req, shared).await,
        (&Method::POST, "/introspect") => introspect(req, shared).await,
        (&Method::POST, "/revoke") => revoke(req, shared, peer_uid).await,
        (&Method::POST, "/token") => sessions::token(req, shared).await,
        (&Method::POST, "/issue") => sessions::issue(req, shared, peer_uid).await,
        (_, "/token" | "/issue") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        (_, "/revoke") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        (&Method::GET | &Method::HEAD, "/healthz") => healthz(shared),
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

async fn verify(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let mut batch = Batch {
        requests: 1,
        ..Batch::default()
    };
    let options = shared.http.load_full();
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
        // RFC 6750 §3.1 says 400 for invalid_request; a malformed credential stays 401 because nginx's
        // auth_request passes only 401/403 through (anything else becomes a 500).
        Token::Duplicate(why) => {
            batch.protocol_errors += 1;
            invalid_request(StatusCode::BAD_REQUEST, why)
        }
        Token::Malformed(why) => {
            batch.protocol_errors += 1;
            invalid_request(StatusCode::UNAUTHORIZED, why)
        }
        Token::Found(token) => {
            // The original request, when routes need it; a request that names it ambiguously is refused
            // before the token is looked at.
            let target = if shared.gate.load().has_routes() {
                match crate::routes::target::target(
                    req.headers(),
                    req.method().as_str(),
                    req.uri().path(),
                    &options.verify_path,
                    options.trust,
                ) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        batch.protocol_errors += 1;
                        if first(&CONFLICT_LOGGED) {
                            tracing::warn!(error = %e, "auth request refused (400): the original request cannot be told; further ones are logged at debug level");
                        } else {
                            tracing::debug!(error = %e, "auth request refused (400): the original request cannot be told");
                        }
                        shared.stats.add(&batch);
                        return invalid_request(StatusCode::BAD_REQUEST, &e.to_string());
                    }
                }
            } else {
                None
            };
            if target == Some(crate::routes::Target::Unknown) {
                const WHY: &str = "auth request without its original method and path (X-Original-URI/-Method, X-Forwarded-Uri/-Method or a path after the verify path): matched by no route but a catch-all (path = \"/\", any method), denied otherwise";
                if first(&UNKNOWN_LOGGED) {
                    tracing::warn!("{WHY}; further ones are logged at debug level");
                } else {
                    tracing::debug!("{WHY}");
                }
            }
            let check = match &target {
                Some(t) => Check::Request(t),
                None => Check::Token,
            };
            verified(token, check, shared, &options, &mut batch).await
        }
    };
    shared.stats.add(&batch);
    response
}

async fn verified(
    token: &[u8],
    check: Check<'_>,
    shared: &Shared,
    options: &Options,
    batch: &mut Batch,
) -> Response<Full<Bytes>> {
    match shared
        .verify_waiting(token, check, batch, |claims| {
            match claim_headers(
                claims,
                &options.claim_headers,
                options.arrays,
                options.payload_header.as_ref(),
            ) {
                Ok(headers) => {
                    let mut r = json(StatusCode::OK, claims.to_owned());
                    r.headers_mut().extend(headers);
                    r
                }
                Err(why) => not_representable(&why),
            }
        })
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(token = %crate::crypto::token_digest(token), code = e.code(), "rejected (http)");
            rejected(&e)
        }
    }
}

/// A credential of the wrong shape (RFC 6750 §3.1 `invalid_request`), with `status`.
fn invalid_request(status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    let mut r = json(
        status,
        serde_json::json!({"error": "invalid_request", "message": why}).to_string(),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_request\""),
    );
    r
}

/// 401 with RFC 6750 §3 `WWW-Authenticate` and a JSON body naming the code; 403 for a valid token a route
/// refuses (`insufficient_scope` with the scopes the route asks for, RFC 6750 §3.1).
fn rejected(e: &Error) -> Response<Full<Bytes>> {
    if e.is_forbidden() {
        let body = serde_json::json!({"error": "insufficient_scope", "code": e.code(), "message": e.to_string()});
        let mut r = json(StatusCode::FORBIDDEN, body.to_string());
        let challenge = match e {
            // Scopes are RFC 6749 scope-tokens (checked when configured): no quote or backslash.
            Error::InsufficientScope(scopes) => format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{}\", scope=\"{scopes}\"",
                e.code()
            ),
            _ => format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{}\"",
                e.code()
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return r;
    }
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
    let fields = match form(req, shared.client_timeout()).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    // A refresh token: whoever holds it may end its session (its client logging out, RFC 7009).
    if shared.sessions.is_some()
        && let Some(token) = sessions::refresh_token_of(&fields)
    {
        return sessions::logout(shared, token).await;
    }
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
            super::NO_STATE_DIR,
        );
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
        Ok(Err(e @ crate::revocation::StoreError::TooLong { .. })) => {
            error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string())
        }
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "revocation_failed",
            &e.to_string(),
        ),
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
    let verified = shared
        .verify_waiting(token.as_bytes(), Check::Token, &mut batch, |claims| {
            let mut claims: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(claims).unwrap_or_default();
            claims.insert("active".into(), true.into());
            json(
                StatusCode::OK,
                serde_json::Value::Object(claims).to_string(),
            )
        })
        .await;
    let response = verified.unwrap_or_else(|_| json(StatusCode::OK, r#"{"active":false}"#.into()));
    shared.stats.add(&batch);
    response
}

/// `200 ok` when every issuer can verify; otherwise `503` naming the issuers whose fetched keys are not
/// usable yet (or any more), so orchestrators wait for a daemon that can answer.
fn healthz(shared: &Shared) -> Response<Full<Bytes>> {
    let waiting: Vec<serde_json::Value> = shared
        .remote
        .as_ref()
        .map(|r| r.readiness())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(iss, why)| why.map(|why| serde_json::json!({"iss": iss, "reason": why})))
        .collect();
    if waiting.is_empty() {
        return text(StatusCode::OK, "ok\n");
    }
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({"ready": false, "issuers": waiting}).to_string(),
    )
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
