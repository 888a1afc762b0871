//! Keys from identity providers: JWKS URLs, configured or discovered (OIDC Discovery / RFC 8414), fetched
//! over HTTPS, refreshed in the background, refetched (once per cooldown) for tokens whose kid is unknown,
//! kept through outages (stale-on-error up to `max_stale`, persisted in the state directory) and merged with
//! the issuer's file keys into the verifiers requests use.
//!
//! - `fetch`: the HTTPS client; `discovery`: the discovery document; `schedule`: refresh times, jitter and
//!   backoff; `persist`: the last good set on disk; `source`: one source's state and fetch.
//! - [`Remote`] (here): every source, and the composition of the issuers requests see: the file-only issuers
//!   (`base`, from the configuration) with each source's current keys added. Composition is serialised with
//!   reloads, so a fetch finishing during a reload never publishes keys over the new configuration.

pub mod discovery;
pub mod fetch;
pub mod persist;
pub mod schedule;
pub mod source;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};

use crate::issuers::Issuers;
use crate::server::Shared;
use crate::verify::Verifier;
use fetch::Client;
use source::{OnUnknownKid, Source};

pub use source::{Location, SourceConfig};

/// Defaults (docs/CONFIG.md, `[jwks]`).
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);

/// Every remote source of the daemon.
pub struct Remote {
    client: Client,
    sources: Vec<Arc<Source>>,
    state_dir: Option<PathBuf>,
    /// The issuers as configured (file keys only); guarded so composition and reloads are serialised.
    base: Mutex<Issuers>,
    /// Where fetched keys are published (set by [`Remote::start`]).
    shared: OnceLock<Weak<Shared>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl Remote {
    /// Sources for `configs`, with what the state directory kept of them.
    pub fn new(
        client: Client,
        configs: Vec<SourceConfig>,
        state_dir: Option<PathBuf>,
        base: Issuers,
    ) -> Remote {
        let sources = configs
            .into_iter()
            .map(|c| {
                let s = Source::new(c);
                if let Some(dir) = &state_dir {
                    match persist::load(dir, &s.config.id()) {
                        Ok(Some(saved)) => match s.restore(saved) {
                            Ok(n) => tracing::info!(iss = %s.config.iss, keys = n, "keys restored from the state directory"),
                            Err(e) => tracing::warn!(iss = %s.config.iss, error = %e, "the saved key set no longer loads; ignored"),
                        },
                        Ok(None) => {}
                        Err(e) => tracing::warn!(iss = %s.config.iss, error = %e, "the saved key set is unreadable; ignored"),
                    }
                }
                Arc::new(s)
            })
            .collect();
        Remote {
            client,
            sources,
            state_dir,
            base: Mutex::new(base),
            shared: OnceLock::new(),
        }
    }

    pub fn sources(&self) -> &[Arc<Source>] {
        &self.sources
    }

    /// The issuers requests should use now: the base with every source's usable keys added.
    pub fn compose(&self) -> Issuers {
        let base = self.base.lock().unwrap_or_else(|p| p.into_inner());
        self.compose_from(&base)
    }

    fn compose_from(&self, base: &Issuers) -> Issuers {
        let now = crate::server::unix_now();
        let mut out = base.clone();
        for s in &self.sources {
            let Some(i) = index_of(base, &s.config.iss) else {
                continue;
            };
            let Some(v) = base.verifier(i) else { continue };
            let unavailable = s.unavailable(now);
            let (remote_keys, epoch) = {
                let st = s.lock();
                (st.keys.clone(), st.epoch)
            };
            let mut keys = v.keys().clone();
            if unavailable.is_none()
                && let Some(rk) = &remote_keys
            {
                keys.extend(rk);
            }
            let verifier = Verifier::new(keys, v.policy().clone(), v.limits().clone());
            // Verdicts cached while the keys were usable must not outlive them (max_stale): the stamp's
            // epoch changes when the set becomes unusable, as when a key is withdrawn.
            let epoch = epoch.wrapping_mul(2) | u32::from(unavailable.is_some());
            out = out.with_issuer(i, verifier, epoch, unavailable);
        }
        out
    }

    /// Publishes the current composition to `shared` (after a fetch, or when staleness may have changed).
    /// Stored under the lock: two publishes never store out of order.
    pub fn publish(&self, shared: &Shared) {
        let base = self.base.lock().unwrap_or_else(|p| p.into_inner());
        shared.publish_keys(self.compose_from(&base));
    }

    /// A reload read `base`: keep it, and store it with the remote keys added.
    pub fn rebase(&self, base: Issuers, shared: &Shared) {
        let mut held = self.base.lock().unwrap_or_else(|p| p.into_inner());
        *held = base;
        shared.publish_keys(self.compose_from(&held));
    }

    fn source_for(&self, issuers: &Issuers, issuer: usize) -> Option<&Arc<Source>> {
        self.sources.iter().find(|s| match issuers.iss(issuer) {
            Some(iss) => s.config.iss == iss,
            None => issuer == 0,
        })
    }

    /// Whether issuer `issuer` of `issuers` has a remote source (so an unknown kid may be worth a fetch).
    pub fn serves(&self, issuers: &Issuers, issuer: usize) -> bool {
        self.source_for(issuers, issuer).is_some()
    }

    /// A token routed to `issuer` found no key: fetch (once per cooldown, single-flight) and return when the
    /// fetch in flight is done, or at once when the cooldown holds. `false`: there was nothing to wait for
    /// (no remote source, or suppressed), so the first answer stands.
    pub async fn refetch_for_unknown_kid(
        self: &Arc<Self>,
        issuers: &Issuers,
        issuer: usize,
    ) -> bool {
        let Some(source) = self.source_for(issuers, issuer).cloned() else {
            return false;
        };
        let (what, start) = source.on_unknown_kid();
        let OnUnknownKid::Wait(rx, seen) = what else {
            return false;
        };
        if start {
            let remote = self.clone();
            let source = source.clone();
            // Its own task: a waiter that goes away does not cancel the fetch.
            tokio::spawn(async move { remote.fetch_and_publish(&source).await });
        }
        source::wait(
            rx,
            seen,
            self.client.options().timeout + Duration::from_secs(1),
        )
        .await;
        true
    }

    async fn fetch_and_publish(&self, source: &Source) {
        let (changed, error) = source.fetch(&self.client, self.state_dir.as_deref()).await;
        match &error {
            Some(e) => {
                tracing::warn!(iss = %source.config.iss, error = %e, "fetching keys failed; still using the last good set, if any")
            }
            None if changed => {
                let n = source.lock().keys.as_ref().map_or(0, |k| k.len());
                tracing::info!(iss = %source.config.iss, keys = n, "key set fetched");
            }
            None => {}
        }
        // Published after every fetch: a failure may have made the set too stale to use.
        if let Some(shared) = self.shared.get().and_then(Weak::upgrade) {
            self.publish(&shared);
        }
    }

    /// Starts one background refresher per source; they stop with `shutdown`.
    pub fn start(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let _ = self.shared.set(Arc::downgrade(shared));
        self.publish(shared);
        for source in &self.sources {
            let (remote, source, shutdown) = (self.clone(), source.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    // `done` before `at`: a fetch that completes between the two reads is then seen
                    // below (and its new schedule used), never followed by a second fetch at the old time.
                    let done = source.fetches_done();
                    let at = source.wake_at();
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = shutdown.cancelled() => return,
                    }
                    // Claimed only if no fetch (for an unknown kid) completed meanwhile — checked in the same
                    // lock as the claim: a fetch that finished meanwhile set a new schedule, which applies.
                    if source.fetches_done() != done {
                        continue;
                    }
                    if source.begin_unless_fetched_since(done) {
                        tracing::debug!(iss = %source.config.iss, "refreshing keys");
                        remote.fetch_and_publish(&source).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
        }
    }

    /// Whether every remote-backed issuer has usable keys, and why not.
    pub fn readiness(&self) -> Vec<(String, Option<String>)> {
        let now = crate::server::unix_now();
        self.sources
            .iter()
            .map(|s| (s.config.iss.clone(), s.unavailable(now)))
            .collect()
    }

    /// Per source, for STATS.
    pub fn stats_json(&self) -> Value {
        let now = crate::server::unix_now();
        Value::Array(
            self.sources
                .iter()
                .map(|s| {
                    use std::sync::atomic::Ordering::Relaxed;
                    let st = s.lock();
                    let c = &s.counters;
                    let failed = c.failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    json!({
                        "iss": s.config.iss,
                        "url": st.jwks_url.clone().unwrap_or_else(|| s.config.shown_location()),
                        "keys": st.keys.as_ref().map_or(0, |k| k.len()),
                        "last_fetch": st.fetched_at,
                        "age": st.fetched_at.map(|t| now.saturating_sub(t)),
                        "ok": c.ok.load(Relaxed),
                        "not_modified": c.not_modified.load(Relaxed),
                        "failed": failed,
                        "unknown_kid_refetches": c.unknown_kid_refetches.load(Relaxed),
                        "suppressed": c.suppressed.load(Relaxed),
                        "last_error": st.last_error,
                    })
                })
                .collect(),
        )
    }
}

impl Remote {
    /// Per source, as Prometheus text.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let now = crate::server::unix_now();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, lines: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
        let iss = |s: &Source| format!("iss=\"{}\"", label_value(&s.config.iss));
        let per = |f: &dyn Fn(&Source) -> u64| -> Vec<(String, u64)> {
            self.sources.iter().map(|s| (iss(s), f(s))).collect()
        };
        family(
            "jwtd_jwks_ready",
            "gauge",
            "1 when the issuer's fetched keys are usable (fetched, and not older than max_stale).",
            &per(&|s| u64::from(s.unavailable(now).is_none())),
        );
        family(
            "jwtd_jwks_keys",
            "gauge",
            "Keys in the issuer's last good fetched set.",
            &per(&|s| s.lock().keys.as_ref().map_or(0, |k| k.len() as u64)),
        );
        family(
            "jwtd_jwks_last_fetch_timestamp_seconds",
            "gauge",
            "When the issuer's keys were last fetched or confirmed (Unix seconds; 0: never).",
            &per(&|s| s.lock().fetched_at.unwrap_or(0)),
        );
        family(
            "jwtd_jwks_age_seconds",
            "gauge",
            "Age of the issuer's last good key set.",
            &per(&|s| s.lock().fetched_at.map_or(0, |t| now.saturating_sub(t))),
        );
        let mut fetches = Vec::new();
        for s in &self.sources {
            let c = &s.counters;
            fetches.push((format!("{},outcome=\"ok\"", iss(s)), c.ok.load(Relaxed)));
            fetches.push((
                format!("{},outcome=\"not_modified\"", iss(s)),
                c.not_modified.load(Relaxed),
            ));
            for (label, n) in c.failed.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                fetches.push((format!("{},outcome=\"{label}\"", iss(s)), *n));
            }
        }
        family(
            "jwtd_jwks_fetches_total",
            "counter",
            "Key set fetches by outcome (ok, not_modified, or the failure's reason).",
            &fetches,
        );
        family(
            "jwtd_jwks_unknown_kid_refetches_total",
            "counter",
            "Fetches started because a token named a kid the set lacked.",
            &per(&|s| s.counters.unknown_kid_refetches.load(Relaxed)),
        );
        family(
            "jwtd_jwks_refetches_suppressed_total",
            "counter",
            "Unknown-kid fetches not made because the cooldown had not passed.",
            &per(&|s| s.counters.suppressed.load(Relaxed)),
        );
        out
    }
}

/// A Prometheus label value, escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The index of the issuer whose `iss` is `iss` (the single issuer for single-verifier issuers).
fn index_of(issuers: &Issuers, iss: &str) -> Option<usize> {
    (0..issuers.len()).find(|&i| issuers.iss(i).is_none_or(|x| x == iss))
}
