//! One line-protocol connection: read what is available, answer every complete line in order, write all
//! replies of the batch in one write, repeat. Generic over the stream so tests can use `tokio::io::duplex`.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::line::{self, Frame, Request};
use super::revoke;
use super::stats::Batch;
use super::{NO_STATE_DIR, Shared};
use crate::revocation::StoreError;
use crate::routes::Check;

const READ_CHUNK: usize = 64 * 1024;

/// How long one connection's batch may run before it yields its worker to the other connections there.
/// A pipelined batch of expensive garbage (junk ES512 or RSA-8192 signatures: 0.3–0.5 ms each, and failures
/// are not cached) would otherwise hold the worker for 100 ms and more while the well-behaved clients on it
/// wait. The replies so far stay buffered; the batch goes on when the worker comes back to it.
pub const SLICE: Duration = Duration::from_millis(2);

/// Serves one connection until EOF, a fatal protocol error, an I/O error or shutdown. `peer_uid` (from
/// SO_PEERCRED) decides whether admin commands are allowed.
pub async fn serve<S>(
    mut stream: S,
    shared: &Shared,
    shutdown: &CancellationToken,
    peer_uid: Option<u32>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max_line = shared.max_line();
    let client_timeout = shared.client_timeout();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // When the request line at the start of `buf` began to arrive, while it is incomplete: it must be
    // finished within the client timeout (a client sending a byte a second would otherwise hold its
    // connection for hours). An idle connection between requests is not limited.
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        buf.reserve(READ_CHUNK);
        let deadline = partial_since.map(|t| t + client_timeout);
        let late = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let n = tokio::select! {
            n = stream.read_buf(&mut buf) => n?,
            () = late => {
                line::protocol_err(
                    &mut out,
                    "timeout",
                    &format!(
                        "request line not completed within {} s; closing the connection",
                        client_timeout.as_secs_f64()
                    ),
                );
                let mut batch = Batch::default();
                batch.protocol_errors += 1;
                shared.stats.add(&batch);
                stream.write_all(&out).await?;
                super::close_after_reply(&mut stream).await;
                return Ok(());
            }
            _ = shutdown.cancelled() => {
                // Shutting down: keep answering what the client already sent (whatever arrives within a
                // moment); a quiet moment counts as the end of input.
                tokio::time::timeout(Duration::from_millis(50), stream.read_buf(&mut buf))
                    .await
                    .unwrap_or(Ok(0))?
            }
        };
        let eof = n == 0;
        let started = std::time::Instant::now();
        let mut answered = 0u64;
        let mut now = super::unix_now();
        // One snapshot of the issuers per batch: a reload never shows a batch half old, half new.
        let mut snap = shared.snapshot();
        let mut batch = Batch::default();
        let mut start = 0;
        let mut close = false;
        // Revocations submitted and not yet acknowledged, in request order: consecutive ones share an fsync;
        // they are answered before anything that follows them.
        let mut pending: Vec<Pending> = Vec::new();
        let mut slice_start = std::time::Instant::now();
        loop {
            // The clock is read every fourth request: a cache hit costs about a microsecond, so the check
            // would otherwise be a measurable share of it; four junk ES512 signatures still fit in ~1 slice.
            if answered % 4 == 3 && slice_start.elapsed() >= SLICE {
                // Used up its slice: let the worker serve others, then go on. Time passed: the clock is
                // read again (the snapshot stays, so the batch still sees one configuration).
                shared.stats.yielded();
                tokio::task::yield_now().await;
                slice_start = std::time::Instant::now();
                now = super::unix_now();
            }
            match line::frame(&buf[start..], max_line) {
                Frame::Line { len, consumed } => {
                    answered += 1;
                    let line = &buf[start..start + len];
                    let request = line::parse(line);
                    if let Request::Session { verb, args } = request {
                        batch.requests += 1;
                        let ticket = session(shared, peer_uid, verb, args);
                        pending.push(Pending::Session(ticket));
                        start += consumed;
                        continue;
                    }
                    if let Request::Revocation { verb, args } = request {
                        batch.requests += 1;
                        revocation(
                            shared,
                            peer_uid,
                            verb,
                            args,
                            &mut pending,
                            &mut out,
                            &mut batch,
                        )
                        .await;
                        start += consumed;
                        continue;
                    }
                    settle(shared, &mut pending, &mut out, &mut batch).await;
                    if request == Request::Reload {
                        batch.requests += 1;
                        reload(shared, peer_uid, &mut out, &mut batch).await;
                        // Requests after RELOAD in the same batch see the new configuration.
                        snap = shared.snapshot();
                    } else if let Some(issuer) =
                        answer(line, shared, &snap, now, &mut out, &mut batch, true)
                    {
                        // A kid the issuer's fetched set lacks: wait for a fetch (once per cooldown),
                        // then answer with what it brought. Later requests of this connection wait
                        // behind it (replies stay in order); other connections do not.
                        let remote = shared.remote.clone();
                        if let Some(remote) = remote
                            && remote.refetch_for_unknown_kid(&snap.issuers, issuer).await
                        {
                            snap = shared.snapshot();
                            now = super::unix_now();
                        }
                        answer(line, shared, &snap, now, &mut out, &mut batch, false);
                    }
                    start += consumed;
                }
                Frame::Incomplete => break,
                Frame::TooLong => {
                    settle(shared, &mut pending, &mut out, &mut batch).await;
                    line::protocol_err(
                        &mut out,
                        "too_large",
                        &format!("line longer than {max_line} bytes; closing the connection"),
                    );
                    batch.protocol_errors += 1;
                    close = true;
                    break;
                }
            }
        }
        settle(shared, &mut pending, &mut out, &mut batch).await;
        buf.drain(..start);
        partial_since = match (buf.is_empty(), start) {
            (true, _) => None,
            // The same line is still incomplete: its clock keeps running.
            (false, 0) => partial_since.or_else(|| Some(tokio::time::Instant::now())),
            // Lines were answered and a new one began.
            (false, _) => Some(tokio::time::Instant::now()),
        };
        shared.stats.add(&batch);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        shared.stats.observe_latency(started.elapsed(), answered);
        if close {
            super::close_after_reply(&mut stream).await;
            return Ok(());
        }
        if eof {
            // A half-written last line is dropped: the client never finished it.
            return stream.shutdown().await;
        }
    }
}

/// A revocation or session command submitted to the store, awaiting its answer.
enum Pending {
    Revocation {
        op: crate::revocation::log::Op,
        ack: tokio::sync::oneshot::Receiver<Result<bool, StoreError>>,
    },
    Session(super::sessions::Ticket),
}

/// `ISSUE` (admins only), `REFRESH`, `LOGOUT`: submitted at once, answered in order by [`settle`].
fn session(
    shared: &Shared,
    peer_uid: Option<u32>,
    verb: &str,
    args: &[u8],
) -> super::sessions::Ticket {
    use super::sessions::{self as s, Ticket};
    use crate::sessions::form::{self, OAuthError};
    let Ok(args) = std::str::from_utf8(args) else {
        return Ticket::Ready(Err(OAuthError::new(
            "invalid_request",
            "arguments must be UTF-8",
        )));
    };
    match verb {
        "ISSUE" if !peer_uid.is_some_and(|uid| shared.admin_uids.contains(&uid)) => {
            Ticket::Ready(Err(OAuthError::new(
                "forbidden",
                "ISSUE is an admin command; this peer's uid is not an admin uid",
            )))
        }
        "ISSUE" => match form::issue_line(args) {
            Ok(asked) => s::issue(shared, asked),
            Err(e) => Ticket::Ready(Err(e)),
        },
        "REFRESH" => match form::refresh_line(args) {
            Ok(asked) => s::refresh(shared, asked),
            Err(e) => Ticket::Ready(Err(e)),
        },
        _ => s::logout(shared, args.trim()),
    }
}

/// Waits for every pending revocation or session command, in order, and writes its answer.
async fn settle(shared: &Shared, pending: &mut Vec<Pending>, out: &mut Vec<u8>, batch: &mut Batch) {
    for p in pending.drain(..) {
        let (op, ack) = match p {
            Pending::Revocation { op, ack } => (op, ack),
            Pending::Session(ticket) => {
                match super::sessions::finish(shared, ticket).await {
                    Ok(json) => line::ok(out, &json),
                    Err(e) => {
                        batch.protocol_errors += 1;
                        line::protocol_err(out, e.code, &e.description);
                    }
                }
                continue;
            }
        };
        match ack.await {
            Ok(Ok(changed)) => line::ok(out, &revoke::written(&op, changed)),
            Ok(Err(e)) => {
                batch.protocol_errors += 1;
                let code = match e {
                    StoreError::TooLong { .. } => "bad_request",
                    _ => "revocation_failed",
                };
                line::protocol_err(out, code, &e.to_string().replace('\n', " "));
            }
            Err(_) => {
                batch.protocol_errors += 1;
                line::protocol_err(out, "revocation_failed", "the revocation writer stopped");
            }
        }
    }
}

/// `REVOKE`, `UNREVOKE`, `REVOCATIONS`: admins only, and only with a state directory. Writes are submitted
/// and left pending (see [`settle`]); reads settle what is pending first, then answer.
async fn revocation(
    shared: &Shared,
    peer_uid: Option<u32>,
    verb: &str,
    args: &[u8],
    pending: &mut Vec<Pending>,
    out: &mut Vec<u8>,
    batch: &mut Batch,
) {
    let refuse = |out: &mut Vec<u8>, batch: &mut Batch, code: &str, msg: &str| {
        batch.protocol_errors += 1;
        line::protocol_err(out, code, msg);
    };
    if !peer_uid.is_some_and(|uid| shared.admin_uids.contains(&uid)) {
        settle(shared, pending, out, batch).await;
        return refuse(
            out,
            batch,
            "forbidden",
            &format!("{verb} is an admin command; this peer's uid is not an admin uid"),
        );
    }
    let Some(store) = &shared.revocations else {
        settle(shared, pending, out, batch).await;
        return refuse(out, batch, "revocation_disabled", NO_STATE_DIR);
    };
    // A refresh token (`REVOKE TOKEN <refresh token>`, or `REVOKE SESSION …`): its family ends, as with
    // LOGOUT (docs/SESSIONS.md).
    if verb == "REVOKE"
        && shared.sessions.is_some()
        && let Some(rt) = std::str::from_utf8(args)
            .ok()
            .and_then(|a| {
                a.strip_prefix("TOKEN ")
                    .or_else(|| a.strip_prefix("SESSION "))
            })
            .map(str::trim)
            .filter(|t| crate::sessions::token::well_formed(t))
    {
        pending.push(Pending::Session(super::sessions::logout(shared, rt)));
        return;
    }
    let command = std::str::from_utf8(args)
        .map_err(|_| {
            revoke::BadCommand(
                "arguments must be UTF-8 (use a JSON string for other bytes)".to_string(),
            )
        })
        .and_then(|a| revoke::parse(verb, a));
    match command {
        Ok(revoke::Command::Write(op)) => {
            tracing::info!(
                peer_uid,
                verb,
                kind = revoke::kind(&op),
                "revocation submitted"
            );
            let ack = store.submit(op.clone());
            pending.push(Pending::Revocation { op, ack });
        }
        Ok(revoke::Command::Counts) => {
            settle(shared, pending, out, batch).await;
            line::ok(out, &revoke::counts(store.revocations()));
        }
        Ok(revoke::Command::List(limit)) => {
            settle(shared, pending, out, batch).await;
            line::ok(out, &revoke::list(store.revocations(), limit));
        }
        Err(e) => {
            settle(shared, pending, out, batch).await;
            refuse(out, batch, "bad_request", &e.0);
        }
    }
}

/// `RELOAD`: admins only; the reload runs on the blocking pool and the answer says how it went.
async fn reload(shared: &Shared, peer_uid: Option<u32>, out: &mut Vec<u8>, batch: &mut Batch) {
    if !peer_uid.is_some_and(|uid| shared.admin_uids.contains(&uid)) {
        batch.protocol_errors += 1;
        line::protocol_err(
            out,
            "forbidden",
            "RELOAD is an admin command; this peer's uid is not an admin uid",
        );
        return;
    }
    // Reading key files is blocking I/O: keep it off the runtime's worker (where a runtime allows it).
    let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| shared.reload_now())
        }
        _ => shared.reload_now(),
    };
    match result {
        Ok(r) => {
            let answer = serde_json::json!({
                "reloaded": true,
                "keys_loaded": r.keys,
                "restart_needed": r.restart_needed,
            });
            line::ok(out, &answer.to_string());
            tracing::info!(keys = r.keys, peer_uid, "reloaded by RELOAD");
        }
        Err(e) => {
            batch.protocol_errors += 1;
            line::protocol_err(out, "reload_failed", &e.to_string().replace('\n', " "));
            tracing::warn!(error = %e, "RELOAD failed; still serving the previous configuration");
        }
    }
}

/// Answers one request into `out`; or, when `may_wait` and the token's issuer should fetch keys first,
/// answers nothing and returns that issuer (call again with `may_wait` false after the fetch).
fn answer(
    line: &[u8],
    shared: &Shared,
    snap: &super::Snapshot,
    now: u64,
    out: &mut Vec<u8>,
    batch: &mut Batch,
    may_wait: bool,
) -> Option<usize> {
    match line::parse(line) {
        Request::Verify(token) => {
            return verify(token, Check::Token, shared, snap, now, out, batch, may_wait);
        }
        Request::VerifyFor {
            token,
            method,
            path,
        } => match crate::routes::target::from_line(method, path) {
            Ok(target) => {
                return verify(
                    token,
                    Check::Request(&target),
                    shared,
                    snap,
                    now,
                    out,
                    batch,
                    may_wait,
                );
            }
            Err(e) => refused(out, batch, "bad_request", &e.to_string()),
        },
        Request::BadVerify => refused(
            out,
            batch,
            "bad_request",
            "expected VERIFY <token> or VERIFY <token> <METHOD> <PATH>",
        ),
        Request::Ping => {
            batch.requests += 1;
            out.extend_from_slice(b"PONG\n");
        }
        Request::Stats => {
            batch.requests += 1;
            // Count what this batch answered so far, so STATS after pipelined requests includes them.
            shared.stats.add(batch);
            *batch = Batch::default();
            out.extend_from_slice(b"STATS ");
            out.extend_from_slice(
                shared
                    .stats
                    .to_json(&shared.extras(&snap.issuers))
                    .as_bytes(),
            );
            out.push(b'\n');
        }
        // Handled before `answer` is called.
        Request::Reload | Request::Revocation { .. } | Request::Session { .. } => {}
        Request::Unknown(_) => refused(
            out,
            batch,
            "unknown_command",
            "expected VERIFY <token>, PING, STATS, RELOAD, REVOKE, UNREVOKE or REVOCATIONS",
        ),
    }
    None
}

/// Answers a request that cannot be served with `ERR <code> <message>`, counting it.
fn refused(out: &mut Vec<u8>, batch: &mut Batch, code: &str, message: &str) {
    batch.requests += 1;
    batch.protocol_errors += 1;
    line::protocol_err(out, code, message);
}

/// One `VERIFY`: answers into `out`, or (when `may_wait` and the issuer should fetch keys first) returns
/// that issuer without answering.
#[allow(clippy::too_many_arguments)]
fn verify(
    token: &[u8],
    check: Check<'_>,
    shared: &Shared,
    snap: &super::Snapshot,
    now: u64,
    out: &mut Vec<u8>,
    batch: &mut Batch,
    may_wait: bool,
) -> Option<usize> {
    let result = if may_wait {
        match shared.try_verify(snap, token, check, now, batch, |claims| {
            line::ok(out, claims)
        }) {
            super::Attempt::Done(r) => r,
            super::Attempt::NeedKeys(issuer) => return Some(issuer),
        }
    } else {
        shared.verify(snap, token, check, now, batch, |claims| {
            line::ok(out, claims)
        })
    };
    batch.requests += 1;
    if let Err(e) = result {
        tracing::debug!(token = %crate::crypto::token_digest(token), code = e.code(), "rejected");
        line::err(out, &e);
    }
    None
}
