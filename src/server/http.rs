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

/// Serves HTTP/1.1 (keep-alive, pipelining) on one connection until the client closes or `shutdown`.
pub async fn serve<S>(
    stream: S,
    shared: Arc<Shared>,
    shutdown: &CancellationToken,
) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(req, &shared).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Slow clients (slowloris) get this long to send their headers, then are cut off.
        .header_read_timeout(Duration::from_secs(10))
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

async fn route(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (_, "/verify") => verify(&req, shared),
        (&Method::POST, "/introspect") => introspect(req, shared).await,
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/metrics") => metrics(shared),
        (_, "/introspect") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
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

/// The bearer token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1).
fn bearer(req: &Request<Incoming>) -> Option<&[u8]> {
    let v = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

fn verify(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let mut batch = Batch {
        requests: 1,
        ..Batch::default()
    };
    let response = match bearer(req) {
        None => {
            batch.protocol_errors += 1;
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_request","message":"no bearer token"}"#.into(),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Some(token) => match shared.issuers.load().verify(token, super::unix_now()) {
            Ok(v) => {
                batch.ok += 1;
                let mut r = json(StatusCode::OK, v.claims_json().to_owned());
                claim_headers(&mut r, &v, shared);
                r
            }
            Err(e) => {
                batch.reject(&e);
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
fn claim_headers(r: &mut Response<Full<Bytes>>, v: &crate::Verified, shared: &Shared) {
    if shared.claim_headers.is_empty() {
        return;
    }
    let claims: serde_json::Value = match serde_json::from_str(v.claims_json()) {
        Ok(c) => c,
        Err(_) => return,
    };
    for (name, claim) in &shared.claim_headers {
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

/// RFC 7662: `token=…` form in, `{"active":true,…claims}` or `{"active":false}` out.
async fn introspect(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
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
    let response = match shared
        .issuers
        .load()
        .verify(token.as_bytes(), super::unix_now())
    {
        Ok(v) => {
            batch.ok += 1;
            let mut claims: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(v.claims_json()).unwrap_or_default();
            claims.insert("active".into(), true.into());
            json(
                StatusCode::OK,
                serde_json::Value::Object(claims).to_string(),
            )
        }
        Err(e) => {
            batch.reject(&e);
            json(StatusCode::OK, r#"{"active":false}"#.into())
        }
    };
    shared.stats.add(&batch);
    response
}

fn metrics(shared: &Shared) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(
        shared
            .stats
            .to_prometheus(shared.issuers.load().keys_loaded()),
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
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a header name"))?;
    if claim.is_empty() {
        return Err(format!("{s:?}: the claim name is empty"));
    }
    Ok((name, claim.to_string()))
}
