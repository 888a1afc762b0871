//! The fleet's figures for STATS and /metrics.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::server::stats::Histogram;

/// Upper bounds of the propagation-lag buckets, in milliseconds (`+Inf` after): fine up to 100 ms, where
/// the target (p99 under 50 ms) and the link's pacing live.
pub const LAG_BOUNDS_MS: [u64; 19] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50, 75, 100, 250, 500, 1_000, 5_000, 30_000, 300_000,
];

#[derive(Debug)]
pub struct FleetStats {
    pub connected: AtomicBool,
    /// Foreign operations applied (logged and in force).
    pub applied: AtomicU64,
    /// This daemon's operations appended to the stream.
    pub published: AtomicU64,
    /// Pipelines of `XADD`s sent (one per publishing turn, at most one per pacing interval).
    pub publish_batches: AtomicU64,
    /// Stream reads that brought entries (at most one per pacing interval).
    pub read_batches: AtomicU64,
    /// `WAIT`s that ended with fewer replicas than `min_replicas` holding the latest entries.
    pub replica_timeouts: AtomicU64,
    /// Entries refused by the wire format (logged with their ID and skipped).
    pub malformed: AtomicU64,
    /// Times the stream was found reset (Redis lost its data) and held rules re-published.
    pub resets: AtomicU64,
    /// Connections to Redis lost or refused.
    pub disconnects: AtomicU64,
    /// Stream trims done by this daemon.
    pub trims: AtomicU64,
    pub last_id: Mutex<String>,
    lag: Histogram<{ LAG_BOUNDS_MS.len() }>,
}

impl Default for FleetStats {
    fn default() -> Self {
        FleetStats {
            connected: AtomicBool::default(),
            applied: AtomicU64::default(),
            published: AtomicU64::default(),
            publish_batches: AtomicU64::default(),
            read_batches: AtomicU64::default(),
            replica_timeouts: AtomicU64::default(),
            malformed: AtomicU64::default(),
            resets: AtomicU64::default(),
            disconnects: AtomicU64::default(),
            trims: AtomicU64::default(),
            last_id: Mutex::default(),
            lag: Histogram::new(&LAG_BOUNDS_MS),
        }
    }
}

impl FleetStats {
    /// One foreign entry arrived `ms` after its origin acknowledged it.
    pub fn observe_lag(&self, ms: u64) {
        self.lag.observe(ms, 1);
    }

    /// The bucket bound (ms) holding quantile `q` of the lag; `None` when empty or past the last bound.
    pub fn lag_quantile(&self, q: f64) -> Option<u64> {
        self.lag.quantile_bound(q)
    }

    fn last_id(&self) -> String {
        self.last_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// STATS's `fleet` object.
    pub fn json(
        &self,
        instance: &str,
        host: &str,
        redis: &str,
        stream: &str,
        outbox: usize,
    ) -> serde_json::Value {
        serde_json::json!({
            "instance": instance,
            "host": host,
            "redis": redis,
            "stream": stream,
            "connected": self.connected.load(Relaxed),
            "outbox": outbox,
            "last_applied_id": self.last_id(),
            "applied": self.applied.load(Relaxed),
            "published": self.published.load(Relaxed),
            "publish_batches": self.publish_batches.load(Relaxed),
            "read_batches": self.read_batches.load(Relaxed),
            "replica_timeouts": self.replica_timeouts.load(Relaxed),
            "malformed": self.malformed.load(Relaxed),
            "resets": self.resets.load(Relaxed),
            "disconnects": self.disconnects.load(Relaxed),
            "lag_ms_p50": self.lag_quantile(0.5),
            "lag_ms_p99": self.lag_quantile(0.99),
        })
    }

    /// The `jwtd_fleet_*` families.
    pub fn prometheus(&self, instance: &str, host: &str, outbox: usize) -> String {
        let mut out = String::new();
        let mut one = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        one(
            "jwtd_fleet_connected",
            "gauge",
            "1 while connected to the fleet's Redis.",
            u64::from(self.connected.load(Relaxed)),
        );
        one(
            "jwtd_fleet_outbox",
            "gauge",
            "This daemon's revocations not yet in the stream.",
            outbox as u64,
        );
        one(
            "jwtd_fleet_applied_total",
            "counter",
            "Revocations from other daemons applied.",
            self.applied.load(Relaxed),
        );
        one(
            "jwtd_fleet_published_total",
            "counter",
            "Revocations of this daemon added to the stream.",
            self.published.load(Relaxed),
        );
        one(
            "jwtd_fleet_publish_batches_total",
            "counter",
            "Pipelines of stream appends sent (at most one per pacing interval).",
            self.publish_batches.load(Relaxed),
        );
        one(
            "jwtd_fleet_read_batches_total",
            "counter",
            "Stream reads that brought entries (at most one per pacing interval).",
            self.read_batches.load(Relaxed),
        );
        one(
            "jwtd_fleet_replica_timeouts_total",
            "counter",
            "Waits for min_replicas that ended short (the entries stay in the outbox).",
            self.replica_timeouts.load(Relaxed),
        );
        one(
            "jwtd_fleet_malformed_total",
            "counter",
            "Stream entries refused and skipped.",
            self.malformed.load(Relaxed),
        );
        one(
            "jwtd_fleet_resets_total",
            "counter",
            "Times the stream was found reset and held rules re-published.",
            self.resets.load(Relaxed),
        );
        one(
            "jwtd_fleet_disconnects_total",
            "counter",
            "Connections to Redis lost or refused.",
            self.disconnects.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP jwtd_fleet_info The daemon's instance id in the fleet and the last stream entry applied.\n\
             # TYPE jwtd_fleet_info gauge\njwtd_fleet_info{{instance=\"{instance}\",host=\"{host}\",last_applied_id=\"{}\"}} 1",
            self.last_id()
        );
        self.lag.prometheus(
            &mut out,
            "jwtd_fleet_propagation_lag_seconds",
            "From the origin's acknowledgement to this daemon reading the entry.",
            1e3,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_histogram_reports_in_seconds_with_cumulative_buckets() {
        let s = FleetStats::default();
        assert_eq!(s.lag_quantile(0.5), None);
        for ms in [1, 4, 4, 45, 400_000] {
            s.observe_lag(ms);
        }
        assert_eq!(s.lag_quantile(0.5), Some(5));
        assert_eq!(s.lag_quantile(0.8), Some(50));
        assert_eq!(s.lag_quantile(1.0), None, "above the last bound");
        let text = s.prometheus("ab", "host", 3);
        assert!(
            text.contains("jwtd_fleet_propagation_lag_seconds_bucket{le=\"0.005\"} 3"),
            "{text}"
        );
        assert!(text.contains("jwtd_fleet_propagation_lag_seconds_bucket{le=\"+Inf\"} 5"));
        assert!(text.contains("jwtd_fleet_propagation_lag_seconds_count 5"));
        assert!(text.contains("jwtd_fleet_outbox 3"));
    }
}
