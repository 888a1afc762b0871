//! Counters for `STATS` (and later `/metrics`). Connections add their counts once per batch of requests,
//! not once per request, so threads rarely touch the shared cache lines.

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
}

/// A connection's counts for one batch, added to [`Stats`] in one go.
#[derive(Debug, Default)]
pub struct Batch {
    pub requests: u64,
    pub ok: u64,
    pub rejected: Vec<(usize, u64)>,
    pub protocol_errors: u64,
}

impl Batch {
    pub fn reject(&mut self, e: &Error) {
        let i = Error::CODES
            .iter()
            .position(|c| *c == e.code())
            .unwrap_or(0);
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

    /// The `/metrics` body, Prometheus text format 0.0.4.
    pub fn to_prometheus(&self, keys_loaded: usize) -> String {
        use std::fmt::Write as _;
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
        out
    }

    /// The `STATS` body: one line of JSON.
    pub fn to_json(&self, keys_loaded: usize) -> String {
        let rejected: serde_json::Map<String, serde_json::Value> = Error::CODES
            .iter()
            .zip(&self.rejected)
            .filter(|(_, n)| n.load(Relaxed) > 0)
            .map(|(c, n)| (c.to_string(), n.load(Relaxed).into()))
            .collect();
        serde_json::json!({
            "requests": self.requests.load(Relaxed),
            "ok": self.ok.load(Relaxed),
            "rejected": rejected,
            "protocol_errors": self.protocol_errors.load(Relaxed),
            "connections_open": self.connections_open.load(Relaxed),
            "connections_total": self.connections_total.load(Relaxed),
            "connections_refused": self.connections_refused.load(Relaxed),
            "keys_loaded": keys_loaded,
            "reloads": self.reloads.load(Relaxed),
        })
        .to_string()
    }
}
