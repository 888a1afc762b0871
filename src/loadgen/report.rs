//! What a run did: replies counted by outcome and checked against what each request had to get, latency
//! histograms, and the merge of the per-connection reports.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::Accept;

/// At most this many mismatches are described in a report.
const MISMATCH_SAMPLES: usize = 5;

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub requests: u64,
    pub ok: u64,
    pub rejected: u64,
    /// Replies by outcome: `ok` or the error code.
    pub outcomes: BTreeMap<String, u64>,
    /// Replies whose outcome was not the one expected for the request.
    pub mismatches: u64,
    /// The first few mismatches: what was expected and the start of what came.
    pub mismatch_samples: Vec<String>,
    /// Per-request latency in nanoseconds: closed loop from the batch's write to the reply; open loop from
    /// the request's intended send time to the reply.
    pub latency: Histogram<u64>,
    /// Open loop only: how late the client itself wrote each request after its intended send time, in
    /// nanoseconds (part of `latency`: the client's share of it, sleep granularity and CPU contention).
    pub lateness: Histogram<u64>,
    pub elapsed: Duration,
}

pub(super) fn histogram() -> Histogram<u64> {
    // 1 ns to 10 minutes, 3 significant digits: constant arguments that hdrhistogram accepts (low ≥ 1,
    // high ≥ 2 × low, 0–5 digits), so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid constant histogram bounds")
}

impl Default for Report {
    fn default() -> Self {
        Report {
            requests: 0,
            ok: 0,
            rejected: 0,
            outcomes: BTreeMap::new(),
            mismatches: 0,
            mismatch_samples: Vec::new(),
            latency: histogram(),
            lateness: histogram(),
            elapsed: Duration::ZERO,
        }
    }
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1), as a duration.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.latency.value_at_quantile(q))
    }

    pub(super) fn merge(&mut self, o: &Report) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.rejected += o.rejected;
        for (k, v) in &o.outcomes {
            *self.outcomes.entry(k.clone()).or_insert(0) += v;
        }
        self.mismatches += o.mismatches;
        for s in &o.mismatch_samples {
            if self.mismatch_samples.len() < MISMATCH_SAMPLES {
                self.mismatch_samples.push(s.clone());
            }
        }
        let _ = self.latency.add(&o.latency);
        let _ = self.lateness.add(&o.lateness);
        self.elapsed = self.elapsed.max(o.elapsed);
    }

    /// Counts one reply line against what it should be.
    pub(super) fn reply(&mut self, line: &[u8], accept: Accept, latency: Duration) {
        self.requests += 1;
        let code: &[u8] = if line.starts_with(b"OK") {
            self.ok += 1;
            b"ok"
        } else if let Some(rest) = line.strip_prefix(b"ERR ") {
            self.rejected += 1;
            rest.split(|&b| b == b' ').next().unwrap_or(b"")
        } else {
            line.split(|&b| b == b' ').next().unwrap_or(b"")
        };
        match self
            .outcomes
            .get_mut(std::str::from_utf8(code).unwrap_or("?"))
        {
            Some(n) => *n += 1,
            None => {
                self.outcomes
                    .insert(String::from_utf8_lossy(code).into_owned(), 1);
            }
        }
        let good = match accept {
            Accept::Ok => code == b"ok",
            Accept::Code(c) => line.starts_with(b"ERR ") && code == c.as_bytes(),
            Accept::Rejected => line.starts_with(b"ERR "),
            Accept::Any => true,
            Accept::OkOr(c) => code == b"ok" || (line.starts_with(b"ERR ") && code == c.as_bytes()),
            // Unsettled (callers settle it with `Live::on_reply` first): the permissive reading.
            Accept::Revocable(_) => {
                code == b"ok" || (line.starts_with(b"ERR ") && code == b"revoked")
            }
        };
        if !good {
            self.mismatches += 1;
            if self.mismatch_samples.len() < MISMATCH_SAMPLES {
                self.mismatch_samples.push(format!(
                    "expected {accept:?}, got {:.80}",
                    String::from_utf8_lossy(line)
                ));
            }
        }
        self.latency
            .saturating_record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked_against_codes_and_counted_by_outcome() {
        let mut r = Report::default();
        let ms = Duration::from_millis;
        r.reply(b"OK {\"sub\":\"a\"}", Accept::Ok, ms(1));
        r.reply(b"ERR expired token expired", Accept::Code("expired"), ms(2));
        r.reply(b"ERR revoked x", Accept::Code("expired"), ms(3));
        r.reply(b"ERR bad_signature x", Accept::Rejected, ms(4));
        r.reply(b"PONG", Accept::Any, ms(5));
        r.reply(b"OK {}", Accept::Rejected, ms(6));
        assert_eq!((r.requests, r.ok, r.rejected, r.mismatches), (6, 2, 3, 2));
        assert_eq!(r.outcomes["ok"], 2);
        assert_eq!(r.outcomes["revoked"], 1);
        assert_eq!(r.outcomes["PONG"], 1);
        assert!(
            r.mismatch_samples[0].contains("ERR revoked"),
            "{:?}",
            r.mismatch_samples
        );
        // Percentiles over 1..6 ms.
        assert_eq!(r.quantile(0.5).as_millis(), 3);
        assert!(r.quantile(1.0) >= ms(6) && r.quantile(1.0) < ms(7));
        let mut total = Report::default();
        total.merge(&r);
        total.merge(&r);
        assert_eq!(
            (total.requests, total.mismatches, total.outcomes["ok"]),
            (12, 4, 4)
        );
        assert_eq!(total.latency.len(), 12);
        assert_eq!(total.mismatch_samples.len(), 4);
    }
}
