//! The daemon: a tokio server on a Unix socket answering the line protocol (docs/PROTOCOL.md).
//!
//! `line` is the pure codec, `conn` one connection, `socket` the socket file, `stats` the counters. Shutdown
//! is an injected `CancellationToken`; connections are tracked so shutdown can wait for them.

pub mod conn;
mod error;
pub mod http;
pub mod line;
pub mod prefixed;
pub mod revoke;
pub mod sessions;
pub mod socket;
pub mod stats;
pub mod verdict;
pub mod watch;

pub use error::ServerError;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use arc_swap::ArcSwap;

use crate::cache::{Cache, key::Keyer};
use crate::error::Error;
use crate::issuers::Issuers;
use crate::revocation::Presented;
use crate::revocation::store::Store;
use crate::routes::{Check, Gate};
use stats::{Batch, Stats};
use verdict::Verdict;

/// Re-reads keys and configuration (the `RELOAD` command and SIGHUP).
pub type Reloader =
    Box<dyn Fn() -> Result<Reload, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// What a reload read: the issuers, the settings that take effect at once, and the names of changed
/// settings that only a restart applies.
pub struct Reload {
    pub issuers: Issuers,
    /// The routes (`[[route]]`, `--require-scope`).
    pub routes: crate::routes::Routes,
    /// `None`: the live settings are unchanged.
    pub live: Option<Live>,
    pub restart_needed: Vec<String>,
}

/// Settings applied by a reload without a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub http: http::Options,
    pub max_line: usize,
    pub client_timeout: Duration,
}

/// How a reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub keys: usize,
    /// Changed settings that need a restart (named as in the configuration file).
    pub restart_needed: Vec<String>,
}

/// What every connection shares.
pub struct Shared {
    /// The issuers and their keys; swapped whole on reload, read without a lock (one atomic load per batch).
    pub issuers: ArcSwap<Issuers>,
    pub stats: Stats,
    /// Longest accepted request line, in bytes (read per connection; a reload changes it).
    max_line: std::sync::atomic::AtomicUsize,
    /// How long a client may take to finish what it started: a request line (line protocol), the header
    /// section or the body (HTTP), or its first bytes. Idle connections between requests are not limited.
    /// In milliseconds; a reload changes it.
    client_timeout_ms: std::sync::atomic::AtomicU64,
    /// HTTP auth subrequests: path, token source, claim headers; swapped whole by a reload.
    pub http: ArcSwap<http::Options>,
    /// The routes in force; swapped whole by a reload.
    pub gate: ArcSwap<Gate>,
    /// Peers (by uid, from SO_PEERCRED) allowed to use admin commands.
    pub admin_uids: Vec<u32>,
    /// How to reload; `None` where reloading makes no sense (tests).
    pub reloader: Option<Reloader>,
    /// Verified tokens, when caching is on.
    pub cache: Option<TokenCache>,
    /// The durable revocation list, when a state directory is configured.
    pub revocations: Option<Arc<Store>>,
    /// The link to the fleet's Redis, when one is configured.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// The issuing key, when sessions are served (with `revocations`, which keeps the families).
    pub sessions: Option<Arc<crate::sessions::Service>>,
    /// Keys fetched from identity providers, when an issuer has a JWKS URL.
    pub remote: Option<Arc<crate::remote::Remote>>,
    /// Identifies the current `issuers`: bumped after every swap, so that cache entries verified under
    /// replaced keys never hit. Read it *before* loading `issuers` (see [`Shared::snapshot`]).
    generation: std::sync::atomic::AtomicU32,
}

/// The verified-token cache and how it is keyed.
pub struct TokenCache {
    pub cache: Cache<Verdict>,
    pub keyer: Keyer,
    /// Longer tokens are not cached.
    pub max_token_len: usize,
}

impl TokenCache {
    pub fn new(
        config: &crate::cache::Config,
        max_token_len: usize,
    ) -> Result<TokenCache, ServerError> {
        Ok(TokenCache {
            cache: Cache::new(config),
            keyer: Keyer::random().map_err(ServerError::NoRandomness)?,
            max_token_len,
        })
    }
}

/// The outcome of [`Shared::try_verify`].
pub enum Attempt<R> {
    Done(Result<R, Error>),
    /// Fetch keys for this issuer, then verify again.
    NeedKeys(usize),
}

/// What a batch of requests verifies with: the issuers, and the generation that names them for the cache.
pub struct Snapshot {
    pub issuers: arc_swap::Guard<Arc<Issuers>>,
    pub gate: arc_swap::Guard<Arc<Gate>>,
    pub generation: u32,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("max_line", &self.max_line())
            .field("admin_uids", &self.admin_uids)
            .finish_non_exhaustive()
    }
}

/// The kernel's overflow uid (`/proc/sys/kernel/overflowuid`, 65534 by default): the uid of `nobody`, and
/// the uid SO_PEERCRED reports for a peer whose uid has no mapping in the daemon's user namespace — any
/// process of any unmapped namespace looks like it.
pub fn overflow_uid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65534)
}

/// The implicit admins: root and the daemon's own uid — unless that is `overflow`: a daemon running as
/// `nobody` would make every `nobody` process, and every peer from an unmapped user namespace, an admin.
pub fn default_admin_uids(own: Option<u32>, overflow: u32) -> Vec<u32> {
    let mut uids = vec![0];
    if let Some(u) = own.filter(|&u| u != 0 && u != overflow) {
        uids.push(u);
    }
    uids
}

/// Checks an explicit admin list: the overflow uid can never be one (see [`overflow_uid`]).
pub fn check_admin_uids(uids: &[u32], overflow: u32) -> Result<(), ServerError> {
    if uids.contains(&overflow) {
        return Err(ServerError::OverflowAdmin(overflow));
    }
    Ok(())
}

/// The uid this process runs as (the owner of `/proc/self`), without `unsafe` libc calls.
pub fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

impl Shared {
    pub fn new(issuers: Issuers, max_line: usize, http: http::Options) -> Shared {
        Shared {
            issuers: ArcSwap::from_pointee(issuers),
            stats: Stats::default(),
            max_line: std::sync::atomic::AtomicUsize::new(max_line),
            client_timeout_ms: std::sync::atomic::AtomicU64::new(
                DEFAULT_CLIENT_TIMEOUT.as_millis() as u64,
            ),
            http: ArcSwap::from_pointee(http),
            gate: ArcSwap::from_pointee(Gate::default()),
            admin_uids: default_admin_uids(own_uid(), overflow_uid()),
            reloader: None,
            cache: None,
            revocations: None,
            fleet: None,
            sessions: None,
            remote: None,
            generation: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Longest accepted request line, in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long a client may take to finish a request it started.
    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(
            self.client_timeout_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Applies settings that need no restart (new connections and requests see them).
    pub fn apply_live(&self, live: Live) {
        use std::sync::atomic::Ordering::Relaxed;
        self.max_line.store(live.max_line, Relaxed);
        self.client_timeout_ms
            .store(live.client_timeout.as_millis().max(1) as u64, Relaxed);
        self.http.store(Arc::new(live.http));
    }

    /// Figures for STATS and /metrics kept outside the counters.
    pub fn extras(&self, issuers: &Issuers) -> stats::Extras {
        use std::sync::atomic::Ordering::Relaxed;
        stats::Extras {
            keys_loaded: issuers.keys_loaded(),
            remote: self
                .remote
                .as_ref()
                .map(|r| (r.stats_json(), r.prometheus())),
            fleet: self.fleet.as_ref().map(|f| f.report()),
            cache: self.cache.as_ref().map(|c| stats::CacheView {
                stats: c.cache.stats(),
                capacity: c.cache.capacity(),
            }),
            revocations: self.revocations.as_ref().map(|r| stats::RevocationView {
                counts: r.revocations().counts(),
                commits: r.stats().commits.load(Relaxed),
                ops: r.stats().ops.load(Relaxed),
                failures: r.stats().failures.load(Relaxed),
            }),
            sessions: self
                .revocations
                .as_ref()
                .filter(|_| self.sessions.is_some())
                .map(|r| {
                    let s = &r.stats().sessions;
                    stats::SessionsView {
                        families: s.families.load(Relaxed),
                        issued: s.issued.load(Relaxed),
                        rotated: s.rotated.load(Relaxed),
                        retried: s.retried.load(Relaxed),
                        reused: s.reused.load(Relaxed),
                        refused: s.refused.load(Relaxed),
                        logouts: s.logouts.load(Relaxed),
                    }
                }),
        }
    }

    /// The issuers to verify with now, and their generation. The generation is read first: an entry tagged
    /// with generation G was then verified with issuers at least as new as G's, never older (a reload stores
    /// the issuers before it bumps the generation).
    pub fn snapshot(&self) -> Snapshot {
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        Snapshot {
            issuers: self.issuers.load(),
            gate: self.gate.load(),
            generation,
        }
    }

    /// Verifies `token` at `now` through the cache (when on) and applies the routes `check` asks for, calling
    /// `ok` with the claims JSON on success. Counts the outcome and the cache hit or miss in `batch`.
    pub fn verify<R>(
        &self,
        snap: &Snapshot,
        token: &[u8],
        check: Check<'_>,
        now: u64,
        batch: &mut Batch,
        mut ok: impl FnMut(&str) -> R,
    ) -> Result<R, Error> {
        let result = self.verify_inner(snap, token, check, now, batch, &mut ok);
        batch.outcome(&result);
        result
    }

    /// Like [`Shared::verify`], except that a token whose issuer has remote keys and whose kid was not found
    /// (or whose issuer has no usable keys yet) is neither answered nor counted: `NeedKeys(issuer)` says
    /// to fetch (see [`crate::remote::Remote::refetch_for_unknown_kid`]) and then verify again.
    pub fn try_verify<R>(
        &self,
        snap: &Snapshot,
        token: &[u8],
        check: Check<'_>,
        now: u64,
        batch: &mut Batch,
        mut ok: impl FnMut(&str) -> R,
    ) -> Attempt<R> {
        let misses = batch.cache_misses;
        let result = self.verify_inner(snap, token, check, now, batch, &mut ok);
        if let (Err(Error::UnknownKey(_) | Error::KeysUnavailable(_)), Some(remote)) =
            (&result, &self.remote)
            && let Some(i) = snap.issuers.route(token)
            && remote.serves(&snap.issuers, i)
        {
            // Counted once, by the verification that answers.
            batch.cache_misses = misses;
            return Attempt::NeedKeys(i);
        }
        batch.outcome(&result);
        Attempt::Done(result)
    }

    /// Verifies `token` now, waiting for a key fetch when its issuer's fetched set lacks its kid (see
    /// [`Shared::try_verify`]). Counts the outcome in `batch`.
    pub async fn verify_waiting<R>(
        &self,
        token: &[u8],
        check: Check<'_>,
        batch: &mut Batch,
        mut ok: impl FnMut(&str) -> R,
    ) -> Result<R, Error> {
        let snap = self.snapshot();
        match self.try_verify(&snap, token, check, unix_now(), batch, &mut ok) {
            Attempt::Done(r) => r,
            Attempt::NeedKeys(issuer) => {
                if let Some(remote) = &self.remote {
                    remote.refetch_for_unknown_kid(&snap.issuers, issuer).await;
                }
                drop(snap);
                self.verify(&self.snapshot(), token, check, unix_now(), batch, ok)
            }
        }
    }

    fn verify_inner<R>(
        &self,
        snap: &Snapshot,
        token: &[u8],
        check: Check<'_>,
        now: u64,
        batch: &mut Batch,
        ok: &mut impl FnMut(&str) -> R,
    ) -> Result<R, Error> {
        let revocations = self.revocations.as_ref().map(|s| s.revocations().as_ref());
        let cached = self
            .cache
            .as_ref()
            .filter(|c| token.len() <= c.max_token_len);
        let key = cached.map(|tc| tc.keyer.key(token));
        if let (Some(tc), Some(key)) = (cached, key) {
            // A hit is checked against the revocation list like a miss: revocations made after it was cached
            // count.
            let hit = tc.cache.get(key, snap.generation, now, |v| {
                if !snap.issuers.is_current(v.stamp()) {
                    // Its issuer withdrew keys since: verify again (below).
                    return None;
                }
                if let Some(r) = revocations.filter(|r| !r.is_empty()) {
                    // Found clean at this epoch already: no rule has been added since.
                    let epoch = r.epoch();
                    if !v.clean_at(epoch) {
                        if let Err(e) =
                            r.check(&presented(v.jti(), v.sub(), v.sid(), v.iat(), token), now)
                        {
                            return Some(Err(e));
                        }
                        v.mark_clean(epoch);
                    }
                }
                // The routes, from the bits computed when it was verified.
                if let Err(e) = snap.gate.check(check, v.gate(), v.claims()) {
                    return Some(Err(e));
                }
                Some(Ok(ok(v.claims())))
            });
            if let Some(Some(r)) = hit {
                batch.cache_hits += 1;
                return r;
            }
            batch.cache_misses += 1;
        }
        let (v, stamp) = snap.issuers.verify_stamped(token, now)?;
        if let Some(r) = revocations {
            r.check(&presented(v.jti(), v.sub(), v.sid(), v.iat(), token), now)?;
        }
        // The routes first (what is learned about this request's route goes into the cache with the token);
        // a token the route refuses is cached all the same: it is valid.
        let assessment = snap.gate.assess(v.registered().route_audience_only);
        let allowed = snap.gate.check(check, &assessment, v.claims_json());
        if let (Some(tc), Some(key)) = (cached, key)
            && let Some(verdict) = Verdict::new(&v, stamp, assessment)
        {
            let size = verdict.heap_size();
            let window = snap.issuers.window(&v, now);
            tc.cache
                .insert(key, snap.generation, window, now, verdict, size);
        }
        allowed?;
        Ok(ok(v.claims_json()))
    }

    /// Reloads through the reloader and swaps the result in; on failure everything running stays.
    pub fn reload_now(&self) -> Result<Reloaded, ServerError> {
        let reloader = self
            .reloader
            .as_ref()
            .ok_or(ServerError::ReloadNotConfigured)?;
        let r = reloader().map_err(ServerError::Reload)?;
        let keys = r.issuers.keys_loaded();
        if let Some(live) = r.live {
            self.apply_live(live);
        }
        // Before the issuers: the generation bump in `reload` then retires verdicts assessed with the old
        // routes too (and bits are only ever believed by the table that computed them).
        self.gate.store(Arc::new(Gate::new(r.routes)));
        self.reload(r.issuers);
        for name in &r.restart_needed {
            tracing::warn!(
                setting = %name,
                "changed in the configuration, but applies only at the next start: still running with the old value"
            );
        }
        Ok(Reloaded {
            keys,
            restart_needed: r.restart_needed,
        })
    }

    /// Swaps in a new set of issuers (as configured: the remote keys are added here). Requests already
    /// holding the old set finish with it.
    pub fn reload(&self, issuers: Issuers) {
        match &self.remote {
            Some(r) => r.rebase(issuers, self),
            None => self.issuers.store(Arc::new(issuers)),
        }
        // After the store: see `snapshot`.
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.stats.reloaded();
    }
}

impl Shared {
    /// Swaps in issuers whose remote keys changed. The generation stays: verdicts of issuers whose keys did
    /// not lose a key stay valid, and those of an issuer that did are refused by their stamp's epoch.
    pub fn publish_keys(&self, issuers: Issuers) {
        self.issuers.store(Arc::new(issuers));
    }
}

/// What a token presents to the revocation check.
fn presented<'a>(
    jti: Option<&'a str>,
    sub: Option<&'a str>,
    sid: Option<&'a str>,
    iat: Option<f64>,
    token: &'a [u8],
) -> Presented<'a> {
    Presented {
        jti,
        sub,
        iat,
        sid,
        token,
    }
}

/// Default for [`Shared::client_timeout`].
/// The answer to a revocation verb when the daemon keeps no revocation list.
pub const NO_STATE_DIR: &str =
    "this daemon keeps no revocation list: it was started without a state directory";

pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Server limits.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_line: usize,
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 32 * 1024,
            max_connections: 4096,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Closes a connection we are refusing after its reply: shut down our side, then drain (briefly) what the
/// client already sent, so that the close does not reset the connection before the client read the reply.
pub async fn close_after_reply<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
) {
    use tokio::io::AsyncReadExt;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// HTTP request lines start with a method and a space; line-protocol verbs are none of these.
fn is_http(first: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS.iter().any(|m| first.starts_with(m))
}

/// Reads until the protocol is clear (a space or newline, 8 bytes, or EOF), then hands the connection, with
/// those bytes put back, to HTTP or to the line protocol. `peer_uid` is the Unix peer's uid (SO_PEERCRED);
/// TCP peers have none and are never admins.
async fn dispatch<S>(
    mut stream: S,
    peer_uid: Option<u32>,
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let mut first = Vec::with_capacity(64);
    let sniff = async {
        loop {
            match stream.read_buf(&mut first).await {
                Ok(0) => return true,
                Ok(_) if first.len() >= 8 || first.iter().any(|&b| b == b' ' || b == b'\n') => {
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    };
    // A client that connects and says nothing is cut off like a slow HTTP client.
    let ok = tokio::select! {
        r = tokio::time::timeout(shared.client_timeout(), sniff) => r.unwrap_or(false),
        _ = shutdown.cancelled() => false,
    };
    if !ok || first.is_empty() {
        return;
    }
    let http = is_http(&first);
    let stream = prefixed::Prefixed::new(first, stream);
    if http {
        let _ = http::serve(stream, shared.clone(), shutdown, peer_uid).await;
    } else {
        let _ = conn::serve(stream, shared, shutdown, peer_uid).await;
    }
}

/// Where connections come from: the Unix socket, and optionally a TCP listener (for proxies that cannot
/// reach a Unix socket, such as Traefik's forward-auth).
#[derive(Debug)]
pub struct Listeners {
    pub unix: UnixListener,
    pub tcp: Option<tokio::net::TcpListener>,
}

impl From<UnixListener> for Listeners {
    fn from(unix: UnixListener) -> Self {
        Listeners { unix, tcp: None }
    }
}

enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl Listeners {
    async fn accept(&self) -> std::io::Result<Accepted> {
        let tcp = async {
            match &self.tcp {
                Some(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            a = self.unix.accept() => a.map(|(s, _)| Accepted::Unix(s)),
            a = tcp => a,
        }
    }
}

/// Accepts connections until `shutdown` is cancelled, then waits (up to `drain`) for open connections to
/// finish their current batch.
pub async fn run(
    listeners: impl Into<Listeners>,
    shared: Arc<Shared>,
    config: &Config,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let listeners = listeners.into();
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            a = listeners.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let accepted = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning or dying.
                tracing::warn!(error = %e, retry_in = ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            shared.stats.connection_refused();
            tracker.spawn(async move {
                const BUSY: &[u8] =
                    b"ERR too_many_connections the server is at its connection limit\n";
                match accepted {
                    Accepted::Unix(mut s) => {
                        let _ = s.write_all(BUSY).await;
                        close_after_reply(&mut s).await;
                    }
                    Accepted::Tcp(mut s) => {
                        let _ = s.write_all(BUSY).await;
                        close_after_reply(&mut s).await;
                    }
                }
            });
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            shared.stats.connection_opened();
            match accepted {
                Accepted::Unix(s) => {
                    let uid = s.peer_cred().ok().map(|c| c.uid());
                    dispatch(s, uid, &shared, &shutdown).await;
                }
                Accepted::Tcp(s) => {
                    let _ = s.set_nodelay(true);
                    dispatch(s, None, &shared, &shutdown).await;
                }
            }
            shared.stats.connection_closed();
            drop(permit);
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(drain, tracker.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_is_never_an_implicit_or_explicit_admin() {
        assert_eq!(default_admin_uids(Some(1000), 65534), vec![0, 1000]);
        assert_eq!(default_admin_uids(Some(0), 65534), vec![0]);
        assert_eq!(default_admin_uids(Some(65534), 65534), vec![0]);
        assert_eq!(default_admin_uids(None, 65534), vec![0]);
        assert!(check_admin_uids(&[1000, 65534], 65534).is_err());
        assert!(check_admin_uids(&[1000], 65534).is_ok());
    }
}
