//! The fleet's figures for STATS and /metrics.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Upper bounds of the propagation-lag buckets, in milliseconds (`+Inf` after).
pub const LAG_BOUNDS_MS: [u64; 13] = [
    1, 2, 5, 10, 20, 50, 100, 250, 500, 1_000, 5_000, 30_000, 300_000,
];

#[derive(Debug, Default)]
pub struct FleetStats {
    pub connected: AtomicBool,
    /// Foreign operations applied (logged and in force).
    pub applied: AtomicU64,
    /// This daemon's operations appended to the stream.
    pub published: AtomicU64,
    /// Entries refused by the wire format (logged with their ID and skipped).
    pub malformed: AtomicU64,
    /// Times the stream was found reset (Redis lost its data) and held rules re-published.
    pub resets: AtomicU64,
    /// Connections to Redis lost or refused.
    pub disconnects: AtomicU64,
    /// Stream trims done by this daemon.
    pub trims: AtomicU64,
    pub last_id: Mutex<String>,
    lag: [AtomicU64; LAG_BOUNDS_MS.len() + 1],
    lag_sum_ms: AtomicU64,
    lag_count: AtomicU64,
}

impl FleetStats {
    /// One foreign entry arrived `ms` after its origin acknowledged it.
    pub fn observe_lag(&self, ms: u64) {
        let i = LAG_BOUNDS_MS.partition_point(|&b| b < ms);
        self.lag[i].fetch_add(1, Relaxed);
        self.lag_sum_ms.fetch_add(ms, Relaxed);
        self.lag_count.fetch_add(1, Relaxed);
    }

    /// The bucket bound (ms) holding quantile `q` of the lag; `None` when empty or past the last bound.
    pub fn lag_quantile(&self, q: f64) -> Option<u64> {
        let total = self.lag_count.load(Relaxed);
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.lag.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return LAG_BOUNDS_MS.get(i).copied();
            }
        }
        None
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
        let name = "jwtd_fleet_propagation_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From the origin's acknowledgement to this daemon reading the entry.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, b) in self.lag.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = LAG_BOUNDS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |ms| format!("{}", *ms as f64 / 1e3));
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {}",
            self.lag_sum_ms.load(Relaxed) as f64 / 1e3,
            self.lag_count.load(Relaxed)
        );
        out
    }
}
