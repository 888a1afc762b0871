//! Counters for `STATS` and `/metrics`. Connections add their counts once per batch of requests, not once
//! per request, so threads rarely touch the shared cache lines.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::Error;

#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    ok: AtomicU64,
    rejected: [AtomicU64; Error::CODES.len()],
    protocol_errors: AtomicU64,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    reloads: AtomicU64,
    /// Batches that used up their time slice and yielded to other connections (see `conn::SLICE`).
    yields: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    latency: Latency,
}

/// Upper bounds of the latency histogram's buckets, in nanoseconds (Prometheus `le`, plus `+Inf`).
const BOUNDS_NS: [u64; 16] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// A fixed-bucket histogram (request latencies here, the fleet's propagation lag): lock-free, one bucket
/// increment per observation batch. `bounds` are the buckets' upper bounds (Prometheus `le`), `+Inf` after.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    /// Non-cumulative counts, one per bound.
    buckets: [AtomicU64; N],
    /// Above every bound.
    above: AtomicU64,
    sum: AtomicU64,
    count: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub fn new(bounds: &'static [u64; N]) -> Self {
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            above: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// `n` observations of `v`.
    pub fn observe(&self, v: u64, n: u64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.buckets
            .get(i)
            .unwrap_or(&self.above)
            .fetch_add(n, Relaxed);
        self.sum.fetch_add(v.saturating_mul(n), Relaxed);
        self.count.fetch_add(n, Relaxed);
    }

    /// Upper bound of the bucket holding quantile `q`; `None` when empty or above the last bound.
    pub fn quantile_bound(&self, q: f64) -> Option<u64> {
        let total = self.count.load(Relaxed);
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return Some(self.bounds[i]);
            }
        }
        None
    }

    /// The Prometheus histogram `name`, values divided by `per_unit` (1e9 for ns → seconds).
    pub fn prometheus(&self, out: &mut String, name: &str, help: &str, per_unit: f64) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, b) in self.bounds.iter().zip(&self.buckets) {
            cumulative += b.load(Relaxed);
            let le = *bound as f64 / per_unit;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.above.load(Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {cumulative}\n{name}_sum {}\n{name}_count {}",
            self.sum.load(Relaxed) as f64 / per_unit,
            self.count.load(Relaxed)
        );
    }
}

/// Request latencies, in nanoseconds.
#[derive(Debug)]
struct Latency(Histogram<{ BOUNDS_NS.len() }>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new(&BOUNDS_NS))
    }
}

impl std::ops::Deref for Latency {
    type Target = Histogram<{ BOUNDS_NS.len() }>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The cache's own figures, for the reports.
#[derive(Debug, Clone, Copy)]
pub struct CacheView {
    pub stats: crate::cache::CacheStats,
    pub capacity: usize,
}

/// The revocation list's figures, for the reports.
#[derive(Debug, Clone, Copy)]
pub struct RevocationView {
    pub counts: crate::revocation::Counts,
    /// Durable writes (each one fsync) and the operations they carried.
    pub commits: u64,
    pub ops: u64,
    pub failures: u64,
}

/// The sessions' figures (docs/SESSIONS.md): families held, and requests by outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionsView {
    pub families: u64,
    pub issued: u64,
    pub rotated: u64,
    pub retried: u64,
    pub reused: u64,
    pub refused: u64,
    pub logouts: u64,
}

impl SessionsView {
    fn outcomes(&self) -> [(&'static str, u64); 6] {
        [
            ("issued", self.issued),
            ("rotated", self.rotated),
            ("retried", self.retried),
            ("reused", self.reused),
            ("refused", self.refused),
            ("logouts", self.logouts),
        ]
    }
}

/// Figures kept outside [`Stats`] that the reports include.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub keys_loaded: usize,
    /// Remote key sources: STATS's `jwks` array and /metrics's `jwtd_jwks_*` families.
    pub remote: Option<(serde_json::Value, String)>,
    /// The fleet link: STATS's `fleet` object and /metrics's `jwtd_fleet_*` families.
    pub fleet: Option<(serde_json::Value, String)>,
    pub cache: Option<CacheView>,
    pub revocations: Option<RevocationView>,
    pub sessions: Option<SessionsView>,
}

/// A connection's counts for one batch, added to [`Stats`] in one go.
#[derive(Debug, Default)]
pub struct Batch {
    pub requests: u64,
    pub ok: u64,
    pub rejected: Vec<(usize, u64)>,
    pub protocol_errors: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl Batch {
    /// Counts a verification's outcome.
    pub fn outcome<R>(&mut self, result: &Result<R, Error>) {
        match result {
            Ok(_) => self.ok += 1,
            Err(e) => self.reject(e),
        }
    }

    pub fn reject(&mut self, e: &Error) {
        let i = e.index();
        match self.rejected.iter_mut().find(|(k, _)| *k == i) {
            Some((_, n)) => *n += 1,
            None => self.rejected.push((i, 1)),
        }
    }
}

impl Stats {
    pub fn add(&self, b: &Batch) {
        if b.requests > 0 {
            self.requests.fetch_add(b.requests, Relaxed);
        }
        if b.ok > 0 {
            self.ok.fetch_add(b.ok, Relaxed);
        }
        for &(i, n) in &b.rejected {
            self.rejected[i].fetch_add(n, Relaxed);
        }
        if b.protocol_errors > 0 {
            self.protocol_errors.fetch_add(b.protocol_errors, Relaxed);
        }
        if b.cache_hits > 0 {
            self.cache_hits.fetch_add(b.cache_hits, Relaxed);
        }
        if b.cache_misses > 0 {
            self.cache_misses.fetch_add(b.cache_misses, Relaxed);
        }
    }

    /// Records that `n` requests each took `elapsed` from being read to having their replies written.
    pub fn observe_latency(&self, elapsed: std::time::Duration, n: u64) {
        if n > 0 {
            self.latency
                .observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), n);
        }
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    pub fn reloaded(&self) {
        self.reloads.fetch_add(1, Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// A connection gave its worker up to others mid-batch.
    pub fn yielded(&self) {
        self.yields.fetch_add(1, Relaxed);
    }

    /// The `/metrics` body, Prometheus text format 0.0.4.
    pub fn to_prometheus(&self, extras: &Extras) -> String {
        let (keys_loaded, cache) = (extras.keys_loaded, extras.cache);
        use std::fmt::Write as _;
        let remote = extras.remote.as_ref().map(|r| r.1.as_str());
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let mut outcomes = vec![(r#"{outcome="ok"}"#.to_string(), self.ok.load(Relaxed))];
        for (code, n) in Error::CODES.iter().zip(&self.rejected) {
            outcomes.push((format!("{{outcome=\"{code}\"}}"), n.load(Relaxed)));
        }
        metric(
            "jwtd_verifications_total",
            "counter",
            "Token verifications by outcome code.",
            &outcomes,
        );
        metric(
            "jwtd_requests_total",
            "counter",
            "Requests on every protocol, including PING and STATS.",
            &[(String::new(), self.requests.load(Relaxed))],
        );
        metric(
            "jwtd_yields_total",
            "counter",
            "Times a connection's batch used up its time slice and let other connections on the worker run.",
            &[(String::new(), self.yields.load(Relaxed))],
        );
        metric(
            "jwtd_protocol_errors_total",
            "counter",
            "Malformed requests (unknown commands, over-long lines, missing tokens).",
            &[(String::new(), self.protocol_errors.load(Relaxed))],
        );
        metric(
            "jwtd_connections_open",
            "gauge",
            "Connections open now.",
            &[(String::new(), self.connections_open.load(Relaxed))],
        );
        metric(
            "jwtd_connections_total",
            "counter",
            "Connections accepted.",
            &[(String::new(), self.connections_total.load(Relaxed))],
        );
        metric(
            "jwtd_connections_refused_total",
            "counter",
            "Connections refused at the connection limit.",
            &[(String::new(), self.connections_refused.load(Relaxed))],
        );
        metric(
            "jwtd_keys_loaded",
            "gauge",
            "Verification keys loaded.",
            &[(String::new(), keys_loaded as u64)],
        );
        metric(
            "jwtd_reloads_total",
            "counter",
            "Successful reloads of keys and configuration.",
            &[(String::new(), self.reloads.load(Relaxed))],
        );
        if let Some(c) = cache {
            let s = &c.stats;
            for (name, kind, help, v) in [
                (
                    "jwtd_cache_hits_total",
                    "counter",
                    "Verifications answered from the cache.",
                    self.cache_hits.load(Relaxed),
                ),
                (
                    "jwtd_cache_misses_total",
                    "counter",
                    "Cacheable verifications not found in the cache.",
                    self.cache_misses.load(Relaxed),
                ),
                (
                    "jwtd_cache_inserts_total",
                    "counter",
                    "Verified tokens added to the cache.",
                    s.inserts,
                ),
                (
                    "jwtd_cache_evictions_total",
                    "counter",
                    "Entries evicted to make room.",
                    s.evictions,
                ),
                (
                    "jwtd_cache_expirations_total",
                    "counter",
                    "Stale entries dropped (expired, or verified under reloaded keys).",
                    s.expirations,
                ),
                (
                    "jwtd_cache_entries",
                    "gauge",
                    "Entries in the cache.",
                    s.entries,
                ),
                (
                    "jwtd_cache_bytes",
                    "gauge",
                    "Bytes accounted to cache entries.",
                    s.bytes,
                ),
                (
                    "jwtd_cache_capacity_entries",
                    "gauge",
                    "Entries the cache can hold.",
                    c.capacity as u64,
                ),
            ] {
                metric(name, kind, help, &[(String::new(), v)]);
            }
        }
        if let Some(r) = extras.revocations {
            metric(
                "jwtd_revocation_rules",
                "gauge",
                "Revocation rules in force, by kind.",
                &[
                    (r#"{kind="jti"}"#.into(), r.counts.jti as u64),
                    (r#"{kind="sub"}"#.into(), r.counts.sub as u64),
                    (r#"{kind="token"}"#.into(), r.counts.token as u64),
                    (r#"{kind="sid"}"#.into(), r.counts.sid as u64),
                ],
            );
            metric(
                "jwtd_revocation_commits_total",
                "counter",
                "Durable writes of the revocation log (one fsync each).",
                &[(String::new(), r.commits)],
            );
            metric(
                "jwtd_revocation_ops_total",
                "counter",
                "Revocation changes made durable.",
                &[(String::new(), r.ops)],
            );
            metric(
                "jwtd_revocation_failures_total",
                "counter",
                "Revocation log writes that failed (nothing in them was applied).",
                &[(String::new(), r.failures)],
            );
        }
        if let Some(v) = extras.sessions {
            metric(
                "jwtd_sessions_families",
                "gauge",
                "Session families held (live or not yet compacted).",
                &[(String::new(), v.families)],
            );
            let by: Vec<(String, u64)> = v
                .outcomes()
                .iter()
                .map(|(k, n)| (format!("{{outcome=\"{k}\"}}"), *n))
                .collect();
            metric(
                "jwtd_sessions_requests_total",
                "counter",
                "Session requests by outcome (issued, rotated, retried within the grace interval, reused: the \
                 family revoked, refused, logouts).",
                &by,
            );
        }
        self.latency.prometheus(
            &mut out,
            "jwtd_request_duration_seconds",
            "Time from reading a request to writing its reply (pipelined line-protocol requests count the \
             time of their whole batch).",
            1e9,
        );
        out.push_str(remote.unwrap_or(""));
        out.push_str(extras.fleet.as_ref().map_or("", |f| f.1.as_str()));
        out
    }

    /// The `STATS` body: one line of JSON.
    pub fn to_json(&self, extras: &Extras) -> String {
        let (keys_loaded, cache) = (extras.keys_loaded, extras.cache);
        let revocations = extras.revocations.map(|r| {
            serde_json::json!({
                "jti": r.counts.jti,
                "sub": r.counts.sub,
                "token": r.counts.token,
                "sid": r.counts.sid,
                "commits": r.commits,
                "ops": r.ops,
                "failures": r.failures,
            })
        });
        let rejected: serde_json::Map<String, serde_json::Value> = Error::CODES
            .iter()
            .zip(&self.rejected)
            .filter(|(_, n)| n.load(Relaxed) > 0)
            .map(|(c, n)| (c.to_string(), n.load(Relaxed).into()))
            .collect();
        let cache = cache.map(|c| {
            serde_json::json!({
                "hits": self.cache_hits.load(Relaxed),
                "misses": self.cache_misses.load(Relaxed),
                "inserts": c.stats.inserts,
                "evictions": c.stats.evictions,
                "expirations": c.stats.expirations,
                "entries": c.stats.entries,
                "bytes": c.stats.bytes,
                "capacity": c.capacity,
            })
        });
        let sessions = extras.sessions.map(|v| {
            let mut m: serde_json::Map<String, serde_json::Value> = v
                .outcomes()
                .iter()
                .map(|(k, n)| (k.to_string(), (*n).into()))
                .collect();
            m.insert("families".into(), v.families.into());
            serde_json::Value::Object(m)
        });
        serde_json::json!({
            "cache": cache,
            "revocations": revocations,
            "sessions": sessions,
            "requests": self.requests.load(Relaxed),
            "ok": self.ok.load(Relaxed),
            "rejected": rejected,
            "protocol_errors": self.protocol_errors.load(Relaxed),
            "connections_open": self.connections_open.load(Relaxed),
            "connections_total": self.connections_total.load(Relaxed),
            "connections_refused": self.connections_refused.load(Relaxed),
            "keys_loaded": keys_loaded,
            "jwks": extras.remote.as_ref().map(|r| &r.0),
            "fleet": extras.fleet.as_ref().map(|f| &f.0),
            "reloads": self.reloads.load(Relaxed),
            "yields": self.yields.load(Relaxed),
            // Bucket upper bounds (the histogram of /metrics), in microseconds; null when unknown.
            "latency_us": {
                "p50": self.latency.quantile_bound(0.5).map(|ns| ns / 1000),
                "p99": self.latency.quantile_bound(0.99).map(|ns| ns / 1000),
                "p999": self.latency.quantile_bound(0.999).map(|ns| ns / 1000),
            },
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn latency_histogram_buckets_are_cumulative_and_quantiles_land_in_the_right_bucket() {
        let s = Stats::default();
        assert_eq!(s.latency.quantile_bound(0.5), None);
        s.observe_latency(Duration::from_micros(3), 90);
        s.observe_latency(Duration::from_micros(5), 0); // nothing observed
        s.observe_latency(Duration::from_micros(5), 1); // exactly on a bound: that bucket (le)
        s.observe_latency(Duration::from_millis(2), 8);
        s.observe_latency(Duration::from_secs(3), 1); // above every bound
        assert_eq!(s.latency.quantile_bound(0.5), Some(5_000));
        assert_eq!(s.latency.quantile_bound(0.95), Some(2_500_000));
        assert_eq!(s.latency.quantile_bound(1.0), None);
        let text = s.to_prometheus(&Extras::default());
        assert!(
            text.contains("jwtd_request_duration_seconds_bucket{le=\"0.000005\"} 91\n"),
            "{text}"
        );
        assert!(
            text.contains("jwtd_request_duration_seconds_bucket{le=\"0.001\"} 91\n"),
            "{text}"
        );
        assert!(
            text.contains("jwtd_request_duration_seconds_bucket{le=\"0.0025\"} 99\n"),
            "{text}"
        );
        assert!(
            text.contains("jwtd_request_duration_seconds_bucket{le=\"+Inf\"} 100\n"),
            "{text}"
        );
        assert!(
            text.contains("jwtd_request_duration_seconds_count 100\n"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&s.to_json(&Extras::default())).unwrap();
        assert_eq!(json["latency_us"]["p50"], 5);
    }
}
