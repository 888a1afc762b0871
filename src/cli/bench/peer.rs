//! `jwtd bench --compare inprocess`: the same token sequence verified in this process with `jsonwebtoken`
//! (what a service would do without jwtd), on as many threads as the daemon has workers, for the same time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use jwtd::loadgen::Outcome;
use jwtd::loadgen::tokens::{Generated, Spec};

/// What the in-process peer did.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerRun {
    pub verifications: u64,
    pub elapsed: Duration,
    /// Answers that disagree with the token's label (revoked tokens count as valid: `jsonwebtoken` has no
    /// revocation list).
    pub wrong: u64,
    pub threads: usize,
}

impl PeerRun {
    pub(super) fn per_second(&self) -> f64 {
        self.verifications as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Keys by kid, each with the validation its algorithm needs.
fn keys(g: &Generated, spec: &Spec) -> Result<HashMap<String, (DecodingKey, Validation)>, String> {
    let mut out = HashMap::new();
    for jwks in [&g.public_jwks, &g.secret_jwks].into_iter().flatten() {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| format!("jsonwebtoken JWKS: {e}"))?;
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            let alg: Algorithm = kid
                .trim_start_matches("bench-")
                .parse()
                .map_err(|e| format!("jsonwebtoken has no algorithm {kid}: {e}"))?;
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| format!("jsonwebtoken key {kid}: {e}"))?;
            let mut v = Validation::new(alg);
            v.set_issuer(&[&spec.issuer]);
            v.set_audience(&[&spec.audience]);
            v.validate_nbf = true;
            out.insert(kid, (key, v));
        }
    }
    Ok(out)
}

/// Verifies tokens in `order` (cycling) on `threads` threads for `duration`.
pub(super) fn run(
    g: &Generated,
    spec: &Spec,
    order: &[u32],
    threads: usize,
    duration: Duration,
) -> Result<PeerRun, String> {
    let keys = keys(g, spec)?;
    let threads = threads.max(1);
    let start = Instant::now();
    let deadline = start + duration;
    let totals: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let keys = &keys;
                s.spawn(move || {
                    let (mut n, mut wrong) = (0u64, 0u64);
                    let mut i = t * order.len() / threads;
                    while Instant::now() < deadline {
                        for _ in 0..64 {
                            let token = &g.tokens[order[i] as usize];
                            i = (i + 1) % order.len();
                            let ok = jsonwebtoken::decode_header(&token.text)
                                .ok()
                                .and_then(|h| keys.get(h.kid.as_deref()?))
                                .is_some_and(|(key, v)| {
                                    jsonwebtoken::decode::<serde_json::Value>(&token.text, key, v)
                                        .is_ok()
                                });
                            let want =
                                matches!(token.outcome, Outcome::Ok | Outcome::Err("revoked"));
                            wrong += u64::from(ok != want);
                            n += 1;
                        }
                    }
                    (n, wrong)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, u64::MAX)))
            .collect()
    });
    Ok(PeerRun {
        verifications: totals.iter().map(|t| t.0).sum(),
        wrong: totals.iter().map(|t| t.1).fold(0, u64::saturating_add),
        elapsed: start.elapsed(),
        threads,
    })
}
