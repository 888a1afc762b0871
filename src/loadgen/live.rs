//! Revocations issued while the load runs, and what the checker may then accept.
//!
//! A token revoked mid-run has three phases, and a reply is judged by the phase its request was in:
//!
//! | when the VERIFY was sent        | when its reply arrived            | acceptable reply   |
//! |---------------------------------|-----------------------------------|--------------------|
//! | revocation acknowledged         | (any time later)                  | `ERR revoked` only |
//! | revocation not yet acknowledged | revocation not yet sent           | `OK` only          |
//! | revocation not yet acknowledged | revocation sent (maybe not acked) | `OK` or `revoked`  |
//!
//! The first row is the promise that matters (an acknowledged revocation applies to every request sent
//! afterwards, cached tokens included); the second catches a daemon refusing a token nobody revoked; only a
//! request that really raced the revocation may get either answer. The issuer marks a revocation *sent*
//! before writing it and *acknowledged* after reading the daemon's `OK`, so both marks err on the permissive
//! side of the race by at most the time the issuer takes between a mark and its syscall.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Accept;

const NOT_SENT: u8 = 0;
const SENT: u8 = 1;
const ACKED: u8 = 2;

/// The revocations to issue during the runs, in order, each with its phase.
#[derive(Debug, Default)]
pub struct Live {
    lines: Vec<String>,
    states: Vec<AtomicU8>,
    /// The next revocation to issue.
    next: AtomicUsize,
}

/// What an [`Live::issue`] call did.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Revocations the daemon acknowledged.
    pub acknowledged: u64,
    /// From writing each revocation to reading its acknowledgement, in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Live {
    /// Adds a revocation command (`REVOKE JTI … …`) and returns its slot, for [`Accept::Revocable`].
    pub fn push(&mut self, line: &str) -> io::Result<u32> {
        if line.is_empty() || line.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a revocation must be one non-empty line",
            ));
        }
        let slot = u32::try_from(self.lines.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many revocations"))?;
        self.lines.push(line.to_string());
        self.states.push(AtomicU8::new(NOT_SENT));
        Ok(slot)
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Revocations not issued yet.
    pub fn remaining(&self) -> usize {
        self.lines.len() - self.next.load(Ordering::Relaxed).min(self.lines.len())
    }

    fn state(&self, slot: u32) -> u8 {
        self.states
            .get(slot as usize)
            .map_or(NOT_SENT, |s| s.load(Ordering::SeqCst))
    }

    /// What a request must get, judged as it is sent: a revocable token whose revocation was already
    /// acknowledged must be refused; otherwise the verdict waits for the reply ([`Live::on_reply`]).
    pub fn on_send(&self, accept: Accept) -> Accept {
        match accept {
            Accept::Revocable(slot) if self.state(slot) == ACKED => Accept::Code("revoked"),
            other => other,
        }
    }

    /// What a reply must be, given what was decided when its request was sent: if the revocation had not
    /// even been sent when the reply came, the token must still be accepted; otherwise either answer is
    /// right.
    pub fn on_reply(&self, accept: Accept) -> Accept {
        match accept {
            Accept::Revocable(slot) if self.state(slot) == NOT_SENT => Accept::Ok,
            Accept::Revocable(_) => Accept::OkOr("revoked"),
            other => other,
        }
    }

    /// Issues the next `count` revocations over `socket`, spread evenly over `over` (the first after half a
    /// step), each marked sent before it is written and acknowledged once the daemon's `OK` is read. Stops
    /// early if `stop` returns true. Any reply but `OK` is an error: the run's premise failed.
    pub fn issue(
        &self,
        socket: &Path,
        count: usize,
        over: Duration,
        stop: impl Fn() -> bool,
    ) -> io::Result<Issued> {
        let mut issued = Issued {
            acknowledged: 0,
            latency: super::report::histogram(),
        };
        if count == 0 {
            return Ok(issued);
        }
        let mut client = crate::client::Client::connect(socket)?;
        client.set_timeout(Some(super::REPLY_TIMEOUT))?;
        let start = Instant::now();
        let step = over.div_f64(count as f64);
        for k in 0..count {
            let due = start + step.mul_f64(k as f64 + 0.5);
            while Instant::now() < due {
                if stop() {
                    return Ok(issued);
                }
                std::thread::sleep(
                    due.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                );
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(line) = self.lines.get(i) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no revocations left to issue",
                ));
            };
            self.states[i].store(SENT, Ordering::SeqCst);
            let sent = Instant::now();
            let reply = client.request(line)?;
            if !reply.starts_with("OK") {
                return Err(io::Error::other(format!(
                    "the daemon refused a revocation: {reply}"
                )));
            }
            self.states[i].store(ACKED, Ordering::SeqCst);
            issued.latency.saturating_record(
                u64::try_from(sent.elapsed().as_nanos())
                    .unwrap_or(u64::MAX)
                    .max(1),
            );
            issued.acknowledged += 1;
        }
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_accepts_only_its_answers() {
        let mut live = Live::default();
        let slot = live.push("REVOKE JTI a 0").unwrap();
        let accept = Accept::Revocable(slot);
        let judge = |reply: Accept, line: &[u8]| {
            let mut r = super::super::Report::default();
            r.reply(line, reply, Duration::from_micros(1));
            r.mismatches == 0
        };
        // Not sent at either end: only OK.
        let r = live.on_reply(live.on_send(accept));
        assert!(judge(r, b"OK {}"));
        assert!(!judge(r, b"ERR revoked token revoked"));
        // Sent after the request went out: either answer, but no other error.
        let at_send = live.on_send(accept);
        live.states[0].store(SENT, Ordering::SeqCst);
        let r = live.on_reply(at_send);
        assert!(judge(r, b"OK {}"));
        assert!(judge(r, b"ERR revoked token revoked"));
        assert!(!judge(r, b"ERR bad_signature x"));
        // Acknowledged before the request went out: only revoked.
        live.states[0].store(ACKED, Ordering::SeqCst);
        let at_send = live.on_send(accept);
        assert_eq!(at_send, Accept::Code("revoked"));
        let r = live.on_reply(at_send);
        assert!(!judge(r, b"OK {}"));
        assert!(judge(r, b"ERR revoked token revoked"));
        // Other accepts pass through.
        assert_eq!(live.on_reply(live.on_send(Accept::Ok)), Accept::Ok);
        assert!(live.push("A\nB").is_err());
    }
}
