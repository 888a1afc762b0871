//! One remote key source: an issuer's JWKS URL (configured, or discovered from its `iss`), the last good
//! key set fetched from it, and when to fetch next. Fetches are single-flight: one in flight per source,
//! whoever asks (the background refresh, or requests whose kid is unknown); the others wait for it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::fetch::{Client, FetchError, Fetched, Validators};
use super::schedule::{self, Bounds};
use super::{discovery, persist};
use crate::alg::Alg;
use crate::keys::{KeySet, SourceOptions};

/// Where the keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A JWKS URL, as configured.
    Jwks(String),
    /// The `jwks_uri` of the issuer's discovery document.
    Discover,
}

/// How a source is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// The issuer: what its tokens' `iss` is (and, with [`Location::Discover`], where its discovery document
    /// is and what that document must say its `issuer` is).
    pub iss: String,
    pub location: Location,
    /// Binding of keys without `alg` (`default_alg`).
    pub key_options: SourceOptions,
    /// Keys bound to other algorithms are dropped, as for file keys.
    pub algorithms: Option<Vec<Alg>>,
    pub bounds: Bounds,
    /// Least time between two fetches caused by unknown kids.
    pub cooldown: Duration,
    /// Longest a last good set is used while its source cannot be fetched; then tokens get `keys_unavailable`.
    pub max_stale: Duration,
    /// Wait after the first failed fetch (doubling from there up to `bounds.max`).
    pub retry_base: Duration,
}

impl SourceConfig {
    /// The name persisted state is filed under: the issuer and where its keys come from.
    pub fn id(&self) -> String {
        match &self.location {
            Location::Jwks(url) => format!("{}\n{url}", self.iss),
            Location::Discover => format!("{}\ndiscover", self.iss),
        }
    }

    /// Shown in logs and STATS.
    pub fn shown_location(&self) -> String {
        match &self.location {
            Location::Jwks(url) => url.clone(),
            Location::Discover => discovery::url(&self.iss),
        }
    }
}

/// Counters, for STATS and /metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub not_modified: AtomicU64,
    /// Failed fetches by reason label.
    pub failed: Mutex<BTreeMap<&'static str, u64>>,
    /// Fetches started because a token named a kid the set lacks.
    pub unknown_kid_refetches: AtomicU64,
    /// Unknown-kid fetches not started: the cooldown had not passed.
    pub suppressed: AtomicU64,
}

/// The last good set and the fetch schedule.
#[derive(Debug)]
pub struct State {
    pub keys: Option<Arc<KeySet>>,
    /// Identity of each key of `keys` (its JWK, canonical): a set that loses one bumps `epoch`.
    fingerprints: BTreeSet<String>,
    /// Unix seconds of the last fetch that brought or confirmed (304) `keys`.
    pub fetched_at: Option<u64>,
    pub validators: Validators,
    /// The `Cache-Control` of the last 200: a 304 without one keeps it (RFC 9111 §4.3.4).
    cache_control: Option<String>,
    /// The JWKS URL in use (configured, or from discovery).
    pub jwks_url: Option<String>,
    pub fetching: bool,
    /// Fetches completed (any outcome), counted under the lock together with `fetching` going false, so
    /// that "no fetch finished since I looked" and "none is in flight" are one observation.
    completed: u64,
    pub next_refresh: Instant,
    pub failures: u32,
    last_unknown_kid_fetch: Option<Instant>,
    pub last_error: Option<String>,
    /// Bumped when a fetched set withdraws or changes a key.
    pub epoch: u32,
}

/// One source, shared by the background refresher and the request path.
#[derive(Debug)]
pub struct Source {
    pub config: SourceConfig,
    pub state: Mutex<State>,
    /// Completed fetches (any outcome): waiters watch it move.
    done: watch::Sender<u64>,
    pub counters: Counters,
}

/// What a request with an unknown kid should do.
pub enum OnUnknownKid {
    /// Wait for this fetch to complete, then verify again.
    Wait(watch::Receiver<u64>, u64),
    /// The cooldown holds: answer now.
    Suppressed,
}

impl Source {
    pub fn new(config: SourceConfig) -> Source {
        let jwks_url = match &config.location {
            Location::Jwks(u) => Some(u.clone()),
            Location::Discover => None,
        };
        Source {
            config,
            state: Mutex::new(State {
                keys: None,
                fingerprints: BTreeSet::new(),
                fetched_at: None,
                validators: Validators::default(),
                cache_control: None,
                jwks_url,
                fetching: false,
                completed: 0,
                next_refresh: Instant::now(),
                failures: 0,
                last_unknown_kid_fetch: None,
                last_error: None,
                epoch: 0,
            }),
            done: watch::channel(0).0,
            counters: Counters::default(),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs a persisted set (at start). `Err`: the saved JWKS no longer loads.
    pub fn restore(&self, saved: persist::Saved) -> Result<usize, String> {
        let (keys, fingerprints, _) = self.load(&saved.jwks)?;
        let n = keys.len();
        let mut st = self.lock();
        st.keys = Some(Arc::new(keys));
        st.fingerprints = fingerprints;
        st.fetched_at = Some(saved.fetched_at);
        st.validators = saved.validators;
        if !saved.jwks_url.is_empty() {
            st.jwks_url = Some(saved.jwks_url);
        }
        Ok(n)
    }

    /// Why this source's keys cannot be used at `now` (Unix seconds), if they cannot.
    pub fn unavailable(&self, now: u64) -> Option<String> {
        let st = self.lock();
        let why_failing = || {
            st.last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        };
        match (&st.keys, st.fetched_at) {
            (Some(_), Some(at)) => {
                let age = now.saturating_sub(at);
                (age > self.config.max_stale.as_secs()).then(|| {
                    format!(
                        "the keys from {} were last fetched {age} s ago, more than max_stale ({} s){}",
                        self.config.shown_location(),
                        self.config.max_stale.as_secs(),
                        why_failing()
                    )
                })
            }
            _ => Some(format!(
                "the keys from {} have not been fetched yet{}",
                self.config.shown_location(),
                why_failing()
            )),
        }
    }

    /// Claims the right to fetch now. `false`: a fetch is already in flight.
    pub fn begin(&self) -> bool {
        let mut st = self.lock();
        !std::mem::replace(&mut st.fetching, true)
    }

    /// Claims the right to fetch now, unless a fetch is in flight or one completed since the caller read
    /// `done` from [`Source::fetches_done`] (its new schedule applies then, not the caller's old one).
    pub fn begin_unless_fetched_since(&self, done: u64) -> bool {
        let mut st = self.lock();
        if st.fetching || st.completed != done {
            return false;
        }
        st.fetching = true;
        true
    }

    /// A token named a kid this source lacks: start a fetch (once per cooldown) or join the one in flight.
    pub fn on_unknown_kid(&self) -> (OnUnknownKid, bool) {
        let rx = self.done.subscribe();
        let seen = *rx.borrow();
        let mut st = self.lock();
        if st.fetching {
            return (OnUnknownKid::Wait(rx, seen), false);
        }
        let now = Instant::now();
        if st
            .last_unknown_kid_fetch
            .is_some_and(|t| now.duration_since(t) < self.config.cooldown)
        {
            self.counters.suppressed.fetch_add(1, Relaxed);
            return (OnUnknownKid::Suppressed, false);
        }
        st.last_unknown_kid_fetch = Some(now);
        st.fetching = true;
        self.counters.unknown_kid_refetches.fetch_add(1, Relaxed);
        (OnUnknownKid::Wait(rx, seen), true)
    }

    /// Fetches (the caller has claimed the fetch with [`Source::begin`] or [`Source::on_unknown_kid`]) and
    /// records the outcome. Returns whether the key set changed, and the error if the fetch failed.
    pub async fn fetch(
        &self,
        client: &Client,
        state_dir: Option<&std::path::Path>,
    ) -> (bool, Option<String>) {
        let result = self.fetch_inner(client, state_dir).await;
        let now_unix = crate::server::unix_now();
        let mut st = self.lock();
        let (changed, error) = match result {
            Ok(changed) => {
                st.failures = 0;
                st.last_error = None;
                st.fetched_at = Some(now_unix);
                (changed, None)
            }
            Err(e) => {
                st.failures += 1;
                let delay = schedule::backoff(
                    st.failures,
                    self.config.retry_base,
                    self.config.bounds.max,
                    schedule::random(),
                );
                st.next_refresh = Instant::now() + delay;
                st.last_error = Some(e.reason.clone());
                let mut failed = self
                    .counters
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                *failed.entry(e.label).or_insert(0) += 1;
                (false, Some(e.reason))
            }
        };
        st.fetching = false;
        st.completed += 1;
        drop(st);
        self.done.send_modify(|n| *n += 1);
        (changed, error)
    }

    async fn fetch_inner(
        &self,
        client: &Client,
        state_dir: Option<&std::path::Path>,
    ) -> Result<bool, Failure> {
        let (url, failures) = {
            let st = self.lock();
            (st.jwks_url.clone(), st.failures)
        };
        // Discovery: at first, and again after a failure (the provider may have moved its keys).
        let url = match (&self.config.location, url) {
            (Location::Jwks(u), _) => u.clone(),
            (Location::Discover, Some(u)) if failures == 0 => u,
            (Location::Discover, _) => {
                let doc_url = discovery::url(&self.config.iss);
                let doc = match client.get(&doc_url, &Validators::default()).await {
                    Ok(Fetched::Body { body, .. }) => body,
                    Ok(Fetched::NotModified { .. }) => {
                        return Err(Failure::new(
                            "protocol",
                            format!("{doc_url}: 304 to an unconditional request"),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                };
                let jwks_uri = discovery::jwks_uri(&doc, &self.config.iss)
                    .map_err(|e| Failure::new("discovery", format!("{doc_url}: {e}")))?;
                client
                    .check(&jwks_uri)
                    .map_err(|e| Failure::new("discovery", format!("{doc_url}: jwks_uri: {e}")))?;
                let mut st = self.lock();
                if st.jwks_url.as_deref() != Some(&jwks_uri) {
                    // Validators belong to the URL they came from.
                    st.validators = Validators::default();
                    st.jwks_url = Some(jwks_uri.clone());
                }
                jwks_uri
            }
        };
        // Validators only for the URL they came from (discovery may just have moved it).
        let held = {
            let st = self.lock();
            if st.keys.is_some() && st.jwks_url.as_deref() == Some(&url) {
                st.validators.clone()
            } else {
                Validators::default()
            }
        };
        match client.get(&url, &held).await? {
            Fetched::NotModified { cache_control } => {
                self.counters.not_modified.fetch_add(1, Relaxed);
                let mut st = self.lock();
                if st.keys.is_none() {
                    return Err(Failure::new(
                        "protocol",
                        format!("{url}: 304 for a set we do not hold"),
                    ));
                }
                if cache_control.is_some() {
                    st.cache_control = cache_control;
                }
                st.next_refresh = self.refresh_after(st.cache_control.as_deref());
                let saved = st.keys.as_ref().map(|_| ());
                drop(st);
                if let (Some(dir), Some(())) = (state_dir, saved) {
                    self.touch_saved(dir);
                }
                Ok(false)
            }
            Fetched::Body {
                body,
                validators,
                cache_control,
            } => {
                let (keys, fingerprints, refused) = self
                    .load(&body)
                    .map_err(|e| Failure::new("bad_jwks", format!("{url}: {e}")))?;
                for r in &refused {
                    tracing::warn!(iss = %self.config.iss, url = %url, key = %r, "a key of the fetched set was refused and is skipped");
                }
                self.counters.ok.fetch_add(1, Relaxed);
                let mut st = self.lock();
                let changed = st.fingerprints != fingerprints;
                if !st.fingerprints.is_subset(&fingerprints) && st.keys.is_some() {
                    st.epoch = st.epoch.wrapping_add(1);
                }
                st.keys = Some(Arc::new(keys));
                st.fingerprints = fingerprints;
                st.validators = validators.clone();
                st.next_refresh = self.refresh_after(cache_control.as_deref());
                st.cache_control = cache_control;
                drop(st);
                if let Some(dir) = state_dir {
                    let saved = persist::Saved {
                        fetched_at: crate::server::unix_now(),
                        validators,
                        jwks_url: url.clone(),
                        jwks: body.to_vec(),
                    };
                    if let Err(e) = persist::save(dir, &self.config.id(), &saved) {
                        tracing::warn!(iss = %self.config.iss, error = %e, "could not persist the fetched key set; a restart while the provider is down would start without it");
                    }
                }
                Ok(changed)
            }
        }
    }

    /// A 304 confirmed the saved set: record the new fetch time so staleness counts from it after a restart.
    fn touch_saved(&self, dir: &std::path::Path) {
        let id = self.config.id();
        if let Ok(Some(mut saved)) = persist::load(dir, &id) {
            saved.fetched_at = crate::server::unix_now();
            let _ = persist::save(dir, &id, &saved);
        }
    }

    fn refresh_after(&self, cache_control: Option<&str>) -> Instant {
        let fresh = schedule::freshness(cache_control, &self.config.bounds);
        Instant::now() + schedule::jittered(fresh, schedule::random())
    }

    fn load(&self, body: &[u8]) -> Result<(KeySet, BTreeSet<String>, Vec<String>), String> {
        load_jwks(
            body,
            &self.config.key_options,
            self.config.algorithms.as_deref(),
        )
    }

    /// Fetches completed so far (any outcome).
    pub fn fetches_done(&self) -> u64 {
        self.lock().completed
    }

    /// When the background refresher should fetch next: at the scheduled refresh, or when the last good set
    /// reaches `max_stale` if that comes first (one more try, and if it fails the set is dropped: tokens
    /// must not verify on it just because no request happened to trigger a fetch).
    pub fn wake_at(&self) -> Instant {
        let st = self.lock();
        let mut at = st.next_refresh;
        if let Some(fetched) = st.fetched_at {
            // The set is unusable once its age in whole seconds exceeds max_stale.
            let stale_at = (fetched + self.config.max_stale.as_secs() + 1) as f64;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            if stale_at > now {
                at = at.min(Instant::now() + Duration::from_secs_f64(stale_at - now));
            }
        }
        at
    }
}

/// A fetched (or saved) JWKS as keys, with the same validation and algorithm binding as key files: the
/// keys, each key's identity (to tell a withdrawal), and the refused keys' reasons. A body that is not a
/// JWK Set, or holds no usable key, is an error (the last good set stays).
pub fn load_jwks(
    body: &[u8],
    options: &SourceOptions,
    algorithms: Option<&[Alg]>,
) -> Result<(KeySet, BTreeSet<String>, Vec<String>), String> {
    let mut keys = KeySet::new();
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err("not a JWK Set (not a JSON object)".into());
    }
    let report = keys
        .add_document(body, options)
        .map_err(|e| format!("not a usable JWK Set: {e}"))?;
    let mut refused: Vec<String> = report.refused.iter().map(|e| e.to_string()).collect();
    if let Some(allowed) = algorithms {
        let before = keys.len();
        keys.retain(|k| allowed.contains(&k.alg()));
        if keys.len() < before {
            refused.push(format!(
                "{} key(s) bound to algorithms outside this issuer's `algorithms` were dropped",
                before - keys.len()
            ));
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "no usable key in the set{}",
            refused
                .first()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    Ok((keys, fingerprints(body), refused))
}

/// A failed fetch: the metrics label and the log reason.
#[derive(Debug)]
pub struct Failure {
    pub label: &'static str,
    pub reason: String,
}

impl Failure {
    fn new(label: &'static str, reason: String) -> Failure {
        Failure { label, reason }
    }
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Failure {
        Failure {
            label: e.label(),
            reason: e.to_string(),
        }
    }
}

/// The identity of each key object of a JWKS: its members, canonical (sorted, compact).
fn fingerprints(body: &[u8]) -> BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match v.get("keys").and_then(|k| k.as_array()) {
        Some(keys) => keys.iter().map(|k| k.to_string()).collect(),
        None => std::iter::once(v.to_string()).collect(),
    }
}

/// Waits for a fetch completion after `seen`, at most `limit`.
pub async fn wait(mut rx: watch::Receiver<u64>, seen: u64, limit: Duration) {
    let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n > seen)).await;
}
