//! A labelled token set for benchmarks: fresh keys for an algorithm mix, N distinct tokens with claims of
//! a chosen size, a fraction made invalid in known ways and a fraction to be revoked — each token labelled
//! with the outcome the daemon must give it — and a Zipf-ordered request sequence over them.
//!
//! The same seed gives the same token-set *shape* (which token has which algorithm, outcome, claims and place
//! in the request order). Keys are fresh each run, and ECDSA/RSA-PSS signatures are randomised, so token
//! bytes differ between runs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::alg::{Alg, Family};
use crate::crypto::sign::{Private, SigningKey};
use crate::keys::private::public_jwk;

use super::Accept;
use super::live::Live;
use super::zipf::{RngExt, Zipf, seeded};
use crate::config::InvalidValue;

/// The outcome a token must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// Rejected with this code.
    Err(&'static str),
}

impl Outcome {
    /// The label in reports: `ok` or the code.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Err(code) => code,
        }
    }
}

/// Algorithm weights: `ES256=40,RS256=30,EdDSA=10,HS256=20`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix(pub Vec<(Alg, u32)>);

impl Default for Mix {
    fn default() -> Self {
        Mix(vec![
            (Alg::ES256, 40),
            (Alg::RS256, 30),
            (Alg::EdDSA, 10),
            (Alg::HS256, 20),
        ])
    }
}

impl std::str::FromStr for Mix {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Mix, InvalidValue> {
        let mut out: Vec<(Alg, u32)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (alg, w) = part
                .split_once('=')
                .ok_or_else(|| InvalidValue::new(part, "expected ALG=WEIGHT, e.g. ES256=40"))?;
            let alg: Alg = alg
                .trim()
                .parse()
                .map_err(|e: String| InvalidValue::new(part, e))?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| InvalidValue::new(part, "the weight must be a whole number"))?;
            if out.iter().any(|(a, _)| *a == alg) {
                return Err(InvalidValue::new(
                    s,
                    format!("{alg} appears twice in the mix"),
                ));
            }
            if w > 0 {
                out.push((alg, w));
            }
        }
        if out.is_empty() {
            return Err(InvalidValue::new(
                s,
                "the mix has no algorithm with a positive weight",
            ));
        }
        Ok(Mix(out))
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(a, w)| format!("{a}={w}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub tokens: usize,
    pub mix: Mix,
    /// Approximate size of each token's claims JSON, in bytes (a padding claim makes up the difference).
    pub claims_bytes: usize,
    /// Fraction of tokens made invalid: a third tampered (`bad_signature`), a third expired, a third for
    /// another audience (`wrong_audience`).
    pub invalid: f64,
    /// Fraction of tokens to revoke (by jti) before the run (`revoked`).
    pub revoked: f64,
    /// Valid tokens to set aside for revocation *during* the runs ([`Generated::live`]).
    pub live_revocations: usize,
    pub seed: u64,
    pub issuer: String,
    pub audience: String,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            tokens: 100_000,
            mix: Mix::default(),
            claims_bytes: 300,
            invalid: 0.02,
            revoked: 0.01,
            live_revocations: 0,
            seed: 1,
            issuer: "https://issuer.bench.jwtd".into(),
            audience: "bench-api".into(),
        }
    }
}

/// One generated token.
#[derive(Debug, Clone)]
pub struct Token {
    pub text: String,
    pub alg: Alg,
    pub outcome: Outcome,
    pub jti: String,
    pub exp: u64,
}

/// The generated token set.
pub struct Generated {
    pub tokens: Vec<Token>,
    /// JWKS of the asymmetric keys (public only).
    pub public_jwks: Option<String>,
    /// JWKS of the HMAC keys (kept apart: a key file mixing secrets and public keys is refused).
    pub secret_jwks: Option<String>,
    /// Line-protocol commands that revoke the tokens labelled `revoked`.
    pub revocations: Vec<String>,
    /// Tokens (indices into `tokens`, labelled `ok`) to revoke during the runs, in this order: spread over
    /// the popularity ranks (see [`pick_live`]).
    pub live: Vec<usize>,
}

impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated")
            .field("tokens", &self.tokens.len())
            .field("revocations", &self.revocations.len())
            .finish_non_exhaustive()
    }
}

impl Generated {
    /// The load to send: a `VERIFY` of each token that must get its label — a token set aside for
    /// revocation during the run ([`Generated::live`]) being judged by its revocation's phase — sent in
    /// `order`; and those revocations, ready to issue with [`Live::issue`] while the load runs.
    pub fn requests(&self, order: Vec<u32>) -> std::io::Result<(super::Requests, Arc<Live>)> {
        self.requests_for(order, None)
    }

    /// [`Generated::requests`], each `VERIFY` asking for `request` (`"GET /orders/7"`) when given.
    pub fn requests_for(
        &self,
        order: Vec<u32>,
        request: Option<&str>,
    ) -> std::io::Result<(super::Requests, Arc<Live>)> {
        let mut live = Live::default();
        let mut wants: Vec<Accept> = self
            .tokens
            .iter()
            .map(|t| Accept::from(t.outcome))
            .collect();
        for &i in &self.live {
            wants[i] = Accept::Revocable(live.push(&Generated::revocation(&self.tokens[i]))?);
        }
        let live = Arc::new(live);
        let mut requests = super::Requests::default();
        for (t, want) in self.tokens.iter().zip(wants) {
            requests.push_verify_for(&t.text, request, want)?;
        }
        requests.set_live(live.clone());
        requests.set_order(order)?;
        Ok((requests, live))
    }

    /// The command that revokes `token` (by its jti, until its expiry).
    pub fn revocation(token: &Token) -> String {
        format!("REVOKE JTI {} {}", token.jti, token.exp)
    }

    /// Tokens per expected outcome.
    pub fn outcomes(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for t in &self.tokens {
            *m.entry(t.outcome.label()).or_insert(0) += 1;
        }
        m
    }
}

/// The outcome a token is built for (decided from the seed alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    Tampered,
    Expired,
    WrongAudience,
    Revoked,
}

/// Why a token set cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokensError {
    #[error("the token set needs at least one token")]
    NoTokens,
    #[error("invalid and revoked fractions must be in 0..1 and add up to at most 1")]
    Fractions,
    #[error("the mix uses {0} but no signing key for {0} was given")]
    NoKeyFor(Alg),
    #[error(
        "{wanted} revocations during the run need as many valid tokens; the token set has {valid}"
    )]
    TooFewValid { wanted: usize, valid: usize },
    /// Making a key or a signature failed.
    #[error("{0}")]
    Signing(String),
}

/// Generates the token set. `now` is the daemon's clock (Unix seconds): valid tokens live a day around it.
pub fn generate(spec: &Spec, now: u64) -> Result<Generated, TokensError> {
    check(spec)?;
    let mut keys: Vec<Key> = Vec::new();
    for (alg, _) in &spec.mix.0 {
        let (signer, private) = SigningKey::generate(*alg).map_err(TokensError::Signing)?;
        keys.push((*alg, format!("bench-{alg}"), signer, Some(private)));
    }
    build(spec, now, keys)
}

/// A signing key of the token set: algorithm, kid, signer, and the private key when it was generated here.
type Key = (Alg, String, SigningKey, Option<Private>);

/// Generates the token set with the caller's signing keys (`(signer, kid)`; a daemon already running trusts
/// their public halves): one key per algorithm of the mix. The token set then carries no key sets.
pub fn generate_with_keys(
    spec: &Spec,
    now: u64,
    supplied: Vec<(SigningKey, String)>,
) -> Result<Generated, TokensError> {
    check(spec)?;
    let mut supplied = supplied;
    let mut keys: Vec<Key> = Vec::new();
    for (alg, _) in &spec.mix.0 {
        let i = supplied
            .iter()
            .position(|(k, _)| k.alg() == *alg)
            .ok_or(TokensError::NoKeyFor(*alg))?;
        let (signer, kid) = supplied.swap_remove(i);
        keys.push((*alg, kid, signer, None));
    }
    build(spec, now, keys)
}

/// Refuses a spec that cannot be generated, before any key is made.
fn check(spec: &Spec) -> Result<(), TokensError> {
    if spec.tokens == 0 {
        return Err(TokensError::NoTokens);
    }
    if !(0.0..=1.0).contains(&spec.invalid)
        || !(0.0..=1.0).contains(&spec.revoked)
        || spec.invalid + spec.revoked > 1.0
    {
        return Err(TokensError::Fractions);
    }
    Ok(())
}

fn build(spec: &Spec, now: u64, keys: Vec<Key>) -> Result<Generated, TokensError> {
    let total: u64 = spec.mix.0.iter().map(|(_, w)| u64::from(*w)).sum();
    // First every token's shape, in order, from the seed alone…
    let mut rng = seeded(spec.seed);
    let plan: Vec<(usize, Kind)> = (0..spec.tokens)
        .map(|_| {
            let mut pick = rng.random_range(0..total);
            let k = spec
                .mix
                .0
                .iter()
                .position(|(_, w)| {
                    if pick < u64::from(*w) {
                        true
                    } else {
                        pick -= u64::from(*w);
                        false
                    }
                })
                .unwrap_or(0);
            let r: f64 = rng.random();
            let kind = if r < spec.invalid {
                match rng.random_range(0..3u8) {
                    0 => Kind::Tampered,
                    1 => Kind::Expired,
                    _ => Kind::WrongAudience,
                }
            } else if r < spec.invalid + spec.revoked {
                Kind::Revoked
            } else {
                Kind::Valid
            };
            (k, kind)
        })
        .collect();
    // …then the signatures, on every CPU (RSA signing dominates: about a millisecond each).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = spec.tokens.div_ceil(threads);
    let signed: Vec<Result<Vec<Token>, TokensError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let keys = &keys;
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(j, &(k, kind))| make(spec, now, c * chunk + j, &keys[k], kind))
                        .collect::<Result<Vec<Token>, TokensError>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(TokensError::Signing("a signing thread panicked".into()))
                })
            })
            .collect()
    });
    let mut tokens = Vec::with_capacity(spec.tokens);
    for part in signed {
        tokens.extend(part?);
    }
    let revocations = tokens
        .iter()
        .filter(|t| t.outcome == Outcome::Err("revoked"))
        .map(Generated::revocation)
        .collect();
    let live = pick_live(&plan, spec.live_revocations)?;
    let jwks = |hmac: bool| {
        let keys: Vec<serde_json::Value> = keys
            .iter()
            .filter(|(alg, ..)| (alg.family() == Family::Hmac) == hmac)
            .filter_map(|(alg, kid, _, private)| {
                Some(public_jwk(*alg, Some(kid), private.as_ref()?))
            })
            .collect();
        (!keys.is_empty()).then(|| serde_json::json!({ "keys": keys }).to_string())
    };
    Ok(Generated {
        tokens,
        public_jwks: jwks(false),
        secret_jwks: jwks(true),
        revocations,
        live,
    })
}

/// Chooses `n` valid tokens to revoke during the runs. Token i is the i-th most popular, so the choice sets
/// how much traffic the revocations touch. A revoked token is never cached, so revoking the most popular
/// tokens would turn the run into a different one; tokens nobody requests would test nothing. So ranks are
/// spread geometrically from a first rank to the last, the first rank being the lowest (doubling from 1) at
/// which the picks carry at most 1 % of the requests under Zipf 1.0 — 256 for 100 picks out of 100,000 —
/// and each pick takes the first valid token at or after its rank.
fn pick_live(plan: &[(usize, Kind)], n: usize) -> Result<Vec<usize>, TokensError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let valid = plan.iter().filter(|(_, k)| *k == Kind::Valid).count();
    if n > valid {
        return Err(TokensError::TooFewValid { wanted: n, valid });
    }
    let len = plan.len();
    let rank = |first: f64, k: usize| first * (len as f64 / first).powf(k as f64 / n as f64) - 1.0;
    let harmonic = (len as f64).ln() + 0.577_215_7;
    let share = |first: f64| (0..n).map(|k| 1.0 / (rank(first, k) + 1.0)).sum::<f64>() / harmonic;
    let mut first = 1.0;
    while share(first) > 0.01 && first * 2.0 <= len as f64 {
        first *= 2.0;
    }
    let mut taken = vec![false; len];
    let mut picks = Vec::with_capacity(n);
    for k in 0..n {
        let mut i = (rank(first, k) as usize).min(len - 1);
        // There are at least n valid tokens, so fewer than n are taken and this search ends.
        while taken[i] || plan[i].1 != Kind::Valid {
            i = (i + 1) % len;
        }
        taken[i] = true;
        picks.push(i);
    }
    Ok(picks)
}

/// Signs token `i` of the given kind with `key`.
fn make(
    spec: &Spec,
    now: u64,
    i: usize,
    (alg, kid, signer, _): &Key,
    kind: Kind,
) -> Result<Token, TokensError> {
    let jti = format!("bench-{}-{i}", spec.seed);
    let (iat, exp) = match kind {
        Kind::Expired => (now - 7_200, now - 3_600),
        _ => (now - 60, now + 86_400),
    };
    let aud = if kind == Kind::WrongAudience {
        "another-api"
    } else {
        spec.audience.as_str()
    };
    let claims = claims_json(&spec.issuer, aud, i, &jti, iat, exp, spec.claims_bytes);
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
    let mut text = signer
        .sign_compact(header.as_bytes(), claims.as_bytes())
        .map_err(TokensError::Signing)?;
    let outcome = match kind {
        Kind::Valid => Outcome::Ok,
        Kind::Tampered => {
            tamper(&mut text);
            Outcome::Err("bad_signature")
        }
        Kind::Expired => Outcome::Err("expired"),
        Kind::WrongAudience => Outcome::Err("wrong_audience"),
        Kind::Revoked => Outcome::Err("revoked"),
    };
    Ok(Token {
        text,
        alg: *alg,
        outcome,
        jti,
        exp,
    })
}

/// Claims of about `size` bytes: the registered ones, a scope, and padding.
fn claims_json(
    iss: &str,
    aud: &str,
    i: usize,
    jti: &str,
    iat: u64,
    exp: u64,
    size: usize,
) -> String {
    let base = format!(
        r#"{{"iss":"{iss}","sub":"user-{i}","aud":"{aud}","iat":{iat},"nbf":{iat},"exp":{exp},"jti":"{jti}","scope":"read:items write:items""#
    );
    // `,"pad":""}` is 10 bytes.
    let pad = size.saturating_sub(base.len() + 10);
    if pad == 0 {
        format!("{base}}}")
    } else {
        format!(r#"{base},"pad":"{}"}}"#, "x".repeat(pad))
    }
}

/// Changes one character in the middle of the signature to another base64url character: still canonical
/// base64url, but no longer the signature.
fn tamper(token: &mut String) {
    let sig_start = token.rfind('.').map_or(0, |i| i + 1);
    let at = sig_start + (token.len() - sig_start) / 2;
    let old = token.as_bytes()[at];
    let new = if old == b'A' { 'B' } else { 'A' };
    token.replace_range(at..at + 1, &new.to_string());
}

/// The request sequence: `n` token indices, Zipf(`s`)-distributed over the token set (`s` = 0: uniform). Token
/// i is the i-th most popular; since algorithms and outcomes were drawn independently of i, popularity is
/// spread over all of them.
pub fn sequence(tokens: usize, n: usize, s: f64, seed: u64) -> Vec<u32> {
    let zipf = Zipf::new(tokens, s);
    let mut rng = seeded(seed ^ 0x5EED_5EED_5EED_5EED);
    (0..n).map(|_| zipf.sample(&mut rng) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuers::Issuers;
    use crate::keys::{KeySet, SourceOptions};
    use crate::revocation::{Presented, Revocations, Rule, Target};
    use crate::{Limits, Policy, Verifier};

    const NOW: u64 = 1_800_000_000;

    fn spec(tokens: usize, seed: u64) -> Spec {
        Spec {
            tokens,
            mix: "ES256=2,HS256=1,EdDSA=1,RS256=1".parse().unwrap(),
            invalid: 0.2,
            revoked: 0.1,
            seed,
            ..Spec::default()
        }
    }

    #[test]
    fn mixes_parse_and_refuse_nonsense() {
        let m: Mix = "ES256=40, RS256=30,EdDSA=10,HS256=20".parse().unwrap();
        assert_eq!(m, Mix::default());
        assert_eq!(m.to_string(), "ES256=40,RS256=30,EdDSA=10,HS256=20");
        for bad in [
            "",
            "ES256",
            "ES256=x",
            "none=1",
            "ES256=1,ES256=2",
            "HS256=0",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "{bad:?}");
        }
    }

    /// Every token gets exactly the outcome it is labelled with from a verifier configured as the daemon
    /// would be (keys from the generated JWKS, the issuer and audience, the revocations applied).
    #[test]
    fn every_token_is_labelled_with_the_outcome_it_gets() {
        let g = generate(&spec(400, 7), NOW).unwrap();
        let mut keys = KeySet::new();
        for jwks in [&g.public_jwks, &g.secret_jwks].into_iter().flatten() {
            keys.add_document(jwks.as_bytes(), &SourceOptions::default())
                .unwrap();
        }
        let policy = Policy {
            issuers: Some(vec![Spec::default().issuer]),
            audiences: Some(vec![Spec::default().audience]),
            ..Policy::default()
        };
        let issuers = Issuers::single(Verifier::new(keys, policy, Limits::default()));
        let revocations = Revocations::new();
        for line in &g.revocations {
            let mut w = line.split(' ').skip(2);
            let (jti, exp) = (w.next().unwrap(), w.next().unwrap().parse().unwrap());
            revocations.insert(Rule {
                target: Target::Jti(jti.into()),
                expires: exp,
                cutoff: 0,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &g.tokens {
            let got = match issuers.verify(t.text.as_bytes(), NOW) {
                Ok(v) => revocations
                    .check(
                        &Presented {
                            jti: v.jti(),
                            sub: v.sub(),
                            iat: v.iat(),
                            sid: v.sid(),
                            token: t.text.as_bytes(),
                        },
                        NOW,
                    )
                    .map_or_else(|e| Outcome::Err(e.code()), |()| Outcome::Ok),
                Err(e) => Outcome::Err(e.code()),
            };
            assert_eq!(got, t.outcome, "{} token {}", t.alg, t.jti);
            seen.insert(t.outcome.label());
        }
        // All five outcomes occur, in about the asked proportions.
        assert_eq!(seen.len(), 5, "{seen:?}");
        let o = g.outcomes();
        assert!((240..=320).contains(&o["ok"]), "{o:?}");
        assert!((20..=60).contains(&o["revoked"]), "{o:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_shape_and_sequence() {
        let shape = |g: &Generated| -> Vec<(Alg, Outcome, String, usize)> {
            g.tokens
                .iter()
                .map(|t| (t.alg, t.outcome, t.jti.clone(), t.text.len()))
                .collect()
        };
        let a = generate(&spec(200, 3), NOW).unwrap();
        let b = generate(&spec(200, 3), NOW).unwrap();
        let c = generate(&spec(200, 4), NOW).unwrap();
        // (Every algorithm here has fixed-size signatures: token lengths agree too.)
        assert_eq!(shape(&a), shape(&b));
        assert_ne!(shape(&a), shape(&c));
        assert_eq!(sequence(200, 1000, 1.0, 3), sequence(200, 1000, 1.0, 3));
        assert_ne!(sequence(200, 1000, 1.0, 3), sequence(200, 1000, 1.0, 4));
        assert!(sequence(200, 1000, 1.0, 3).iter().all(|&i| i < 200));
    }

    #[test]
    fn live_revocations_pick_distinct_valid_tokens_carrying_little_traffic() {
        let plan = |len: usize| -> Vec<(usize, Kind)> {
            (0..len)
                .map(|i| {
                    (
                        0,
                        if i % 7 == 3 {
                            Kind::Expired
                        } else {
                            Kind::Valid
                        },
                    )
                })
                .collect()
        };
        let zipf_share = |len: usize, picks: &[usize]| {
            let h: f64 = (1..=len).map(|r| 1.0 / r as f64).sum();
            picks.iter().map(|&i| 1.0 / (i + 1) as f64).sum::<f64>() / h
        };
        for (len, n) in [(100_000usize, 100usize), (5_000, 40), (2_000, 20)] {
            let p = plan(len);
            let picks = pick_live(&p, n).unwrap();
            assert_eq!(picks.len(), n);
            let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
            assert_eq!(distinct.len(), n, "{len}/{n}");
            assert!(picks.iter().all(|&i| p[i].1 == Kind::Valid));
            let share = zipf_share(len, &picks);
            assert!(share <= 0.012, "{len}/{n}: {share}");
            assert!(
                share >= 0.002,
                "{len}/{n}: picks too rare to test anything: {share}"
            );
        }
        // The default run's 100 picks start at rank 256 (index 255; expired in this plan, so 256).
        assert_eq!(pick_live(&plan(100_000), 100).unwrap()[0], 256);
        // Every valid token, and one too many.
        let p = plan(70);
        assert_eq!(pick_live(&p, 60).unwrap().len(), 60);
        assert_eq!(
            pick_live(&p, 61).unwrap_err(),
            TokensError::TooFewValid {
                wanted: 61,
                valid: 60
            }
        );
        // The picks are labelled ok in a generated token set.
        let g = generate(
            &Spec {
                live_revocations: 10,
                ..spec(300, 5)
            },
            NOW,
        )
        .unwrap();
        assert_eq!(g.live.len(), 10);
        assert!(g.live.iter().all(|&i| g.tokens[i].outcome == Outcome::Ok));
    }

    #[test]
    fn claims_have_the_asked_size() {
        for size in [0usize, 150, 300, 1000] {
            let c = claims_json("https://i", "a", 12, "j-1", 1, 2, size);
            let v: serde_json::Value = serde_json::from_str(&c).unwrap();
            assert!(v.is_object());
            if size >= 150 {
                assert_eq!(c.len(), size, "{c}");
            }
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        let now = NOW;
        for s in [
            Spec {
                tokens: 0,
                ..spec(1, 1)
            },
            Spec {
                invalid: 0.8,
                revoked: 0.5,
                ..spec(1, 1)
            },
            Spec {
                invalid: -0.1,
                ..spec(1, 1)
            },
        ] {
            assert!(generate(&s, now).is_err());
        }
    }
}
