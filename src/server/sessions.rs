//! Issuing, refreshing and logging out (docs/SESSIONS.md), for both protocols: a request is submitted to
//! the revocation writer at once (so that concurrent rotations share a commit), and finished — the access
//! token signed, the RFC 6749 answer written — once the writer has answered.

use tokio::sync::oneshot;

use super::Shared;
use crate::revocation::StoreError;
use crate::sessions::book::Refusal;
use crate::sessions::form::{self, OAuthError};
use crate::sessions::{NewFamily, Outcome, Request, token};

/// A submitted request.
pub enum Ticket {
    /// Answered without the writer (a malformed request, sessions not served).
    Ready(Result<String, OAuthError>),
    Waiting {
        rx: oneshot::Receiver<Result<Outcome, StoreError>>,
        kind: Kind,
    },
}

/// What a waiting ticket is for.
pub enum Kind {
    /// A login: the first refresh token (drawn here; only its digest went to the writer).
    Issue {
        refresh_token: String,
    },
    /// A refresh; `scope` narrows the new access token's.
    Refresh {
        scope: Option<String>,
    },
    Logout,
}

fn disabled(shared: &Shared) -> Option<OAuthError> {
    if shared.sessions.is_none() || shared.revocations.is_none() {
        return Some(OAuthError::new(
            "sessions_disabled",
            "this daemon issues no sessions: it was started without --issuer-key (and --state-dir)",
        ));
    }
    None
}

fn server_error(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::new("server_error", e.to_string().replace('\n', " "))
}

/// `ISSUE` / `POST /issue` (the caller has checked that the peer is an admin).
pub fn issue(shared: &Shared, asked: form::Issue) -> Ticket {
    if let Some(e) = disabled(shared) {
        return Ticket::Ready(Err(e));
    }
    let (Some(service), Some(store)) = (&shared.sessions, &shared.revocations) else {
        return Ticket::Ready(Err(server_error("sessions are not configured")));
    };
    let Some(settings) = store.sessions() else {
        return Ticket::Ready(Err(server_error("the store keeps no sessions")));
    };
    let Some(aud) = asked.aud.or_else(|| service.default_aud.clone()) else {
        return Ticket::Ready(Err(OAuthError::new(
            "invalid_request",
            "aud is required (the daemon has no --aud to default to)",
        )));
    };
    let refresh_token = match token::new_token() {
        Ok(t) => t,
        Err(e) => return Ticket::Ready(Err(server_error(e))),
    };
    let rx = store.session(Request::Issue(NewFamily {
        sub: asked.sub,
        client_id: asked.client_id,
        scope: asked.scope,
        aud,
        claims: asked.claims,
        first: settings.key.digest(&refresh_token),
    }));
    Ticket::Waiting {
        rx,
        kind: Kind::Issue { refresh_token },
    }
}

/// `REFRESH` / `POST /token` with `grant_type=refresh_token`.
pub fn refresh(shared: &Shared, asked: form::Refresh) -> Ticket {
    if let Some(e) = disabled(shared) {
        return Ticket::Ready(Err(e));
    }
    let Some((store, settings)) = shared
        .revocations
        .as_ref()
        .and_then(|store| Some((store, store.sessions()?)))
    else {
        return Ticket::Ready(Err(server_error("the store keeps no sessions")));
    };
    if !token::well_formed(&asked.refresh_token) {
        return Ticket::Ready(Err(OAuthError::new(
            "invalid_grant",
            "not a refresh token issued here",
        )));
    }
    let rx = store.session(Request::Refresh {
        digest: settings.key.digest(&asked.refresh_token),
        token: asked.refresh_token,
        client_id: asked.client_id,
        scope: asked.scope.clone(),
    });
    Ticket::Waiting {
        rx,
        kind: Kind::Refresh { scope: asked.scope },
    }
}

/// `LOGOUT` / RFC 7009 `POST /revoke` with a refresh token: its family ends.
pub fn logout(shared: &Shared, refresh_token: &str) -> Ticket {
    if let Some(e) = disabled(shared) {
        return Ticket::Ready(Err(e));
    }
    let Some(store) = &shared.revocations else {
        return Ticket::Ready(Err(server_error("the store keeps no sessions")));
    };
    let Some(settings) = store.sessions() else {
        return Ticket::Ready(Err(server_error("the store keeps no sessions")));
    };
    if !token::well_formed(refresh_token) {
        // RFC 7009 §2.2: an unknown token is not an error.
        return Ticket::Ready(Ok(r#"{"revoked":false}"#.into()));
    }
    let rx = store.session(Request::Logout {
        digest: settings.key.digest(refresh_token),
    });
    Ticket::Waiting {
        rx,
        kind: Kind::Logout,
    }
}

/// Waits for the writer and writes the answer: the RFC 6749 §5.1 JSON (or the logout's), or the error.
pub async fn finish(shared: &Shared, ticket: Ticket) -> Result<String, OAuthError> {
    let (rx, kind) = match ticket {
        Ticket::Ready(r) => return r,
        Ticket::Waiting { rx, kind } => (rx, kind),
    };
    let outcome = match rx.await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(server_error(e)),
        Err(_) => return Err(server_error("the session writer stopped")),
    };
    let Some(service) = &shared.sessions else {
        return Err(server_error("sessions are not configured"));
    };
    let now = super::unix_now();
    match (outcome, kind) {
        (Outcome::Issued(view), Kind::Issue { refresh_token }) => {
            tracing::info!(sid = view.sid, "session issued");
            mint(service, view, refresh_token, None, now).await
        }
        (
            Outcome::Refreshed {
                view,
                refresh_token,
            },
            Kind::Refresh { scope },
        ) => mint(service, view, refresh_token, scope, now).await,
        (Outcome::Refused(r), _) => Err(match r {
            Refusal::InvalidGrant(m) => OAuthError::new("invalid_grant", m),
            Refusal::InvalidClient(m) => OAuthError::new("invalid_client", m),
            Refusal::InvalidScope(m) => OAuthError::new("invalid_scope", m),
        }),
        (Outcome::Reused { .. }, _) => Err(OAuthError::new(
            "invalid_grant",
            "refresh token already used: the session and its access tokens are revoked",
        )),
        (Outcome::LoggedOut { sid }, _) => {
            if let Some(sid) = &sid {
                tracing::info!(sid, "session ended by logout");
            }
            Ok(serde_json::json!({"revoked": sid.is_some(), "sid": sid}).to_string())
        }
        _ => Err(server_error("unexpected answer from the session writer")),
    }
}

/// Signs the access token of `view` (with `scope` narrowed, if asked) and writes the §5.1 answer. RSA and
/// ES512 signatures take a millisecond or more: they run on the blocking pool, not on the request worker
/// whose other connections would wait behind them.
async fn mint(
    service: &std::sync::Arc<crate::sessions::Service>,
    mut view: crate::sessions::View,
    refresh_token: String,
    scope: Option<String>,
    now: u64,
) -> Result<String, OAuthError> {
    if let Some(s) = scope {
        view.scope = s;
    }
    let sign = {
        let service = service.clone();
        move || {
            let access = service.minter.mint(&view, now).map_err(server_error)?;
            Ok(form::answer(
                &access,
                service.minter.lifetime(),
                &refresh_token,
                &view.scope,
                &view.sid,
            ))
        }
    };
    if service.minter.expensive() {
        tokio::task::spawn_blocking(sign)
            .await
            .unwrap_or_else(|_| Err(server_error("signing the access token failed")))
    } else {
        sign()
    }
}
