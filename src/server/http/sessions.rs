//! `POST /issue` (admins only) and `POST /token` (`grant_type=refresh_token`, anyone holding the refresh
//! token): RFC 6749 §5.1 answers with `Cache-Control: no-store`, §5.2 errors (docs/SESSIONS.md).

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::{Shared, form, json, read_body};
use crate::server::sessions::{self as s, Ticket};
use crate::sessions::form::{self as f, OAuthError};

/// A §5.1 or §5.2 answer: never cached (RFC 6749 §5.1), `WWW-Authenticate` on `invalid_client`.
fn answer(result: Result<String, OAuthError>) -> Response<Full<Bytes>> {
    let mut r = match result {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = json(status, e.to_json());
            if e.code == "invalid_client" {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"jwtd\""),
                );
            }
            r
        }
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

pub(super) async fn issue(
    req: Request<Incoming>,
    shared: &Shared,
    peer_uid: Option<u32>,
) -> Response<Full<Bytes>> {
    if !peer_uid.is_some_and(|uid| shared.admin_uids.contains(&uid)) {
        return answer(Err(OAuthError::new(
            "forbidden",
            "issuing is an admin operation; this peer's uid is not an admin uid (TCP peers never are)",
        )));
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let body = match read_body(req, shared.client_timeout()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    // A form, or (Content-Type: application/json) a JSON object of the same fields.
    let asked = if json {
        match std::str::from_utf8(&body) {
            Ok(text) if text.trim_start().starts_with('{') => f::issue_line(text),
            _ => Err(OAuthError::new(
                "invalid_request",
                "a JSON body must be a UTF-8 JSON object",
            )),
        }
    } else {
        let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        f::issue(&fields)
    };
    let ticket = match asked {
        Ok(asked) => s::issue(shared, asked),
        Err(e) => Ticket::Ready(Err(e)),
    };
    answer(s::finish(shared, ticket).await)
}

pub(super) async fn token(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let basic = match basic_client(req.headers()) {
        Ok(c) => c,
        Err(e) => return answer(Err(e)),
    };
    let fields = match form(req, shared.client_timeout()).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let ticket = match f::refresh(&fields, basic) {
        Ok(asked) => s::refresh(shared, asked),
        Err(e) => Ticket::Ready(Err(e)),
    };
    answer(s::finish(shared, ticket).await)
}

/// RFC 7009 with a refresh token: its family ends; 200 whether it was known or not (§2.2).
pub(super) async fn logout(shared: &Shared, refresh_token: &str) -> Response<Full<Bytes>> {
    answer(s::finish(shared, s::logout(shared, refresh_token)).await)
}

/// Whether a `/revoke` form names a refresh token (RFC 7009: `token` and an optional `token_type_hint`, the
/// token shaped like ours): then anyone holding it may end its session, as its client logs out.
pub(super) fn refresh_token_of(fields: &[(String, String)]) -> Option<&str> {
    let mut token = None;
    for (k, v) in fields {
        match k.as_str() {
            "token" if token.is_none() => token = Some(v.as_str()),
            "token_type_hint" if v == "refresh_token" || v == "access_token" => {}
            "client_id" => {}
            _ => return None,
        }
    }
    token.filter(|t| crate::sessions::token::well_formed(t))
}

/// The client id of an HTTP Basic `Authorization` header (RFC 6749 §2.3.1: form-urlencoded, then
/// base64); its secret is not checked — jwtd binds refresh tokens to client ids, it does not authenticate
/// clients.
fn basic_client(headers: &hyper::HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let bad = || OAuthError::new("invalid_client", "malformed Basic credentials");
    if values.next().is_some() {
        return Err(OAuthError::new(
            "invalid_request",
            "more than one Authorization header",
        ));
    }
    let v = v.to_str().map_err(|_| bad())?;
    let Some(b64) = v
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return Err(OAuthError::new(
            "invalid_client",
            "only Basic client credentials are understood here",
        ));
    };
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, _secret) = text.split_once(':').ok_or_else(bad)?;
    let id: String = form_urlencoded::parse(format!("x={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if id.is_empty() {
        return Err(bad());
    }
    Ok(Some(id))
}
