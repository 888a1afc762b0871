//! The revocation list: tokens made useless before they expire.
//!
//! Three kinds of rule (docs/REVOCATION.md):
//! - **jti**: the token with this `jti` is revoked. `expires` is that token's `exp`: the rule matches for as
//!   long as it is kept, and it is kept [`RETAIN_SECS`] past `expires` — longer than any leeway
//!   ([`MAX_LEEWAY_SECS`]) can keep the token verifying, with room for a wrong clock.
//! - **sub**: every token of this subject issued before `cutoff` (its `iat` < cutoff; a token without `iat`
//!   counts as issued before) is revoked — "log out everywhere". Matches until `expires` (0: until removed).
//! - **token**: one whole token, for tokens without a (non-empty) `jti`, by the SHA-256 of its *signing
//!   input* (`header.payload`): the signed content, not the signature bytes, which an attacker can change
//!   without the key (ECDSA's `s` ↔ `n − s`). Kept like a jti rule.
//!
//! [`Revocations`] is the in-memory set, checked on every verification: when it is empty the check is one
//! atomic load; otherwise a Bloom filter (lock-free, 12–24 bits per rule) answers "certainly not revoked"
//! for almost every token without touching the maps, and only its positives look in a sharded map. The
//! durable part (the log, group commit, replay, compaction) is [`log`] and [`store`].

pub mod book;
pub mod dir;
mod error;
pub mod instance;
pub mod log;
pub mod store;

pub use error::StoreError;

#[cfg(all(test, jwtd_loom))]
mod loom_tests;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::AtomicU64;

use crate::error::Error;
use crate::sync::{AtomicU32, AtomicUsize, Mutex, Ordering, RwLock};

/// The largest leeway an issuer may be configured with (a day of clock skew is already absurd). Bounding it
/// is what lets a rule be dropped at all: a token can verify until `exp + leeway`, so its rule must live
/// that long, whatever a later reload sets.
pub const MAX_LEEWAY_SECS: u64 = 86_400;

/// How long a rule is kept past its `expires`: more than [`MAX_LEEWAY_SECS`], plus a margin for a clock that
/// was wrong when rules were dropped (see [`store`] for the clock check).
pub const RETAIN_SECS: u64 = 7 * 86_400;

/// The digest a token rule holds: SHA-256 of the token's signing input (everything before the last `.`).
/// Two tokens with the same header and payload but different signature bytes — an ECDSA signature and its
/// `n − s` twin, or the same claims signed by another trusted key — are one token to revocation.
pub fn token_digest(token: &[u8]) -> [u8; 32] {
    let signed = match memchr::memrchr(b'.', token) {
        Some(i) => &token[..i],
        None => token,
    };
    crate::crypto::sha256(signed)
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Jti(String),
    Sub(String),
    /// SHA-256 of the token's signing input ([`token_digest`]).
    Token([u8; 32]),
    /// A session family (docs/SESSIONS.md): every token whose `sid` claim is this.
    Sid(String),
}

impl Target {
    /// The rule for a whole token: the digest of its signing input.
    pub fn token(token: &[u8]) -> Target {
        Target::Token(token_digest(token))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::Jti(_) => "jti",
            Target::Sub(_) => "sub",
            Target::Token(_) => "token",
            Target::Sid(_) => "sid",
        }
    }
}

/// One revocation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub target: Target,
    /// For `Sub`: Unix seconds when the rule stops matching (0 = never). For `Jti` and `Token`: the token's
    /// `exp` (0 = none); the rule matches while it is kept. Every rule is kept [`RETAIN_SECS`] past it.
    pub expires: u64,
    /// For `Sub`: tokens with `iat` before this (Unix seconds) are revoked. Ignored otherwise.
    pub cutoff: u64,
}

impl Rule {
    /// Whether the rule may be dropped at `now`.
    pub fn expired(&self, now: u64) -> bool {
        droppable(self.expires, now)
    }
}

/// A rule ending at `expires` may be dropped at `now` once [`RETAIN_SECS`] have passed since.
fn droppable(expires: u64, now: u64) -> bool {
    expires != 0 && now >= expires.saturating_add(RETAIN_SECS)
}

/// What a verification presents to the check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    pub jti: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub iat: Option<f64>,
    /// The session family (`sid` claim).
    pub sid: Option<&'a str>,
    /// The token's bytes; its signing input is hashed only if some token rule might match.
    pub token: &'a [u8],
}

impl Presented<'_> {
    /// The jti that identifies the token: an empty `jti` identifies nothing (a jti rule cannot name it), so
    /// such a token is identified by its digest like a token without one.
    fn jti(&self) -> Option<&str> {
        self.jti.filter(|j| !j.is_empty())
    }
}

const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    jti: HashMap<String, u64>,
    /// sub → (cutoff, expires)
    sub: HashMap<String, (u64, u64)>,
    token: HashMap<[u8; 32], u64>,
    sid: HashMap<String, u64>,
}

/// The in-memory revocation set.
pub struct Revocations {
    shards: Box<[RwLock<Shard>]>,
    /// Sized to the number of rules (12–24 bits each, see [`bloom_words`], so that it stays in the CPU
    /// caches) and rebuilt, larger, as rules are added; swapped whole.
    bloom: arc_swap::ArcSwap<Bloom>,
    /// Serialises additions with Bloom rebuilds, so that a rebuilt filter misses no rule.
    grow: Mutex<()>,
    /// Rules per kind (jti, sub, token, sid): a check skips the kinds that have none.
    kinds: [AtomicUsize; 4],
    len: AtomicUsize,
    /// Bumped after every rule added or changed (never by removals or expiry, which only un-revoke): a
    /// token found clean at epoch E is still clean while the epoch is E (see [`Revocations::epoch`]). Bumped
    /// last, with Release: whoever reads the new epoch (Acquire) also sees the rule, its kind count and the
    /// length — else a check could skip the kind, and the cache mark a revoked token clean at the new epoch.
    epoch: AtomicU32,
    hasher: foldhash::fast::FixedState,
}

fn kind_index(t: &Target) -> usize {
    match t {
        Target::Jti(_) => 0,
        Target::Sub(_) => 1,
        Target::Token(_) => 2,
        Target::Sid(_) => 3,
    }
}

/// Bloom words for `rules` rules: 12 bits per rule (1.5 MB at 1M rules: small enough to stay in the CPU
/// caches, where a bigger filter costs a memory access per check), at least 4 KiB.
fn bloom_words(rules: usize) -> usize {
    (rules * 12 / 64).max(512)
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations::new()
    }
}

/// Counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub jti: usize,
    pub sub: usize,
    pub token: usize,
    pub sid: usize,
}

impl Revocations {
    pub fn new() -> Revocations {
        let seed = {
            let mut b = [0u8; 8];
            // A random seed keeps an attacker from choosing jti values that all land in one shard or
            // saturate the same Bloom bits; a failure to get one only costs that protection.
            let _ = getrandom::fill(&mut b);
            u64::from_le_bytes(b)
        };
        Revocations {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            bloom: arc_swap::ArcSwap::from_pointee(Bloom::new(bloom_words(0))),
            grow: Mutex::new(()),
            kinds: std::array::from_fn(|_| AtomicUsize::new(0)),
            len: AtomicUsize::new(0),
            epoch: AtomicU32::new(1),
            hasher: foldhash::fast::FixedState::with_seed(seed),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, kind: u8, bytes: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        kind.hash(&mut h);
        h.write(bytes);
        h.finish()
    }

    fn key_hash(&self, t: &Target) -> u64 {
        match t {
            Target::Jti(s) => self.hash(0, s.as_bytes()),
            Target::Sub(s) => self.hash(1, s.as_bytes()),
            Target::Token(d) => self.hash(2, d),
            Target::Sid(s) => self.hash(3, s.as_bytes()),
        }
    }

    fn shard(&self, h: u64) -> &RwLock<Shard> {
        &self.shards[(h >> 58) as usize % SHARDS]
    }

    /// Adds or replaces a rule. Returns whether it is new.
    pub fn insert(&self, rule: Rule) -> bool {
        let h = self.key_hash(&rule.target);
        let kind = kind_index(&rule.target);
        let _grow = match self.grow.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Bits first: a reader that finds the rule in a map has already passed the filter.
        self.bloom.load().insert(h);
        let new = {
            let mut shard = match self.shard(h).write() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            match rule.target {
                Target::Jti(j) => shard.jti.insert(j, rule.expires).is_none(),
                Target::Sub(s) => shard.sub.insert(s, (rule.cutoff, rule.expires)).is_none(),
                Target::Token(d) => shard.token.insert(d, rule.expires).is_none(),
                Target::Sid(s) => shard.sid.insert(s, rule.expires).is_none(),
            }
        };
        let len = if new {
            self.kinds[kind].fetch_add(1, Ordering::Relaxed);
            self.len.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        };
        // Last: whoever reads the new epoch finds the rule in its map and counted in its kind.
        self.epoch.fetch_add(1, Ordering::Release);
        if bloom_words(len) > self.bloom.load().words.len() {
            // Grown past 12 bits a rule: rebuild for twice as many (amortised O(1) per insert).
            self.rebuild_bloom(len);
        }
        new
    }

    /// A new filter for `len` rules from every rule in the maps (the caller holds `grow`).
    fn rebuild_bloom(&self, len: usize) {
        let bloom = Bloom::new(bloom_words(len * 2));
        for shard in self.shards.iter() {
            let s = match shard.read() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            for j in s.jti.keys() {
                bloom.insert(self.hash(0, j.as_bytes()));
            }
            for j in s.sub.keys() {
                bloom.insert(self.hash(1, j.as_bytes()));
            }
            for d in s.token.keys() {
                bloom.insert(self.hash(2, d));
            }
            for j in s.sid.keys() {
                bloom.insert(self.hash(3, j.as_bytes()));
            }
        }
        self.bloom.store(std::sync::Arc::new(bloom));
    }

    /// Removes the rule for `target`. Returns whether there was one.
    pub fn remove(&self, target: &Target) -> bool {
        let h = self.key_hash(target);
        let mut shard = match self.shard(h).write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let removed = match target {
            Target::Jti(j) => shard.jti.remove(j.as_str()).is_some(),
            Target::Sub(s) => shard.sub.remove(s.as_str()).is_some(),
            Target::Token(d) => shard.token.remove(d).is_some(),
            Target::Sid(s) => shard.sid.remove(s.as_str()).is_some(),
        };
        if removed {
            self.kinds[kind_index(target)].fetch_sub(1, Ordering::Relaxed);
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    fn read(&self, h: u64) -> impl std::ops::Deref<Target = Shard> + '_ {
        match self.shard(h).read() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// The current epoch. Read it *before* a check: if the check finds the token clean, the token stays
    /// clean for as long as the epoch has not moved (removals and expiry only ever un-revoke). The cache uses
    /// this to skip re-checking hits.
    #[inline]
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// `Err(Error::Revoked)` when a live rule matches what the token presents at `now`.
    #[inline]
    pub fn check(&self, p: &Presented<'_>, now: u64) -> Result<(), Error> {
        if self.is_empty() {
            return Ok(());
        }
        self.check_slow(p, now)
    }

    fn check_slow(&self, p: &Presented<'_>, now: u64) -> Result<(), Error> {
        let some = |kind: usize| self.kinds[kind].load(Ordering::Relaxed) > 0;
        let bloom = self.bloom.load();
        // jti and token rules match for as long as they are kept: the token they name verifies until its
        // `exp` plus the leeway, and the rule outlives that (see `RETAIN_SECS`).
        if let Some(jti) = p.jti().filter(|_| some(0)) {
            let h = self.hash(0, jti.as_bytes());
            if bloom.may_contain(h) && self.read(h).jti.contains_key(jti) {
                return Err(Error::Revoked("jti"));
            }
        }
        if let Some(sub) = p.sub.filter(|_| some(1)) {
            let h = self.hash(1, sub.as_bytes());
            if bloom.may_contain(h)
                && let Some(&(cutoff, expires)) = self.read(h).sub.get(sub)
                && (expires == 0 || now < expires)
                && p.iat.is_none_or(|iat| iat < cutoff as f64)
            {
                return Err(Error::Revoked("subject"));
            }
        }
        if let Some(sid) = p.sid.filter(|_| some(3)) {
            let h = self.hash(3, sid.as_bytes());
            if bloom.may_contain(h) && self.read(h).sid.contains_key(sid) {
                return Err(Error::Revoked("session"));
            }
        }
        if p.jti().is_none() && some(2) {
            let d = token_digest(p.token);
            let h = self.hash(2, &d);
            if bloom.may_contain(h) && self.read(h).token.contains_key(&d) {
                return Err(Error::Revoked("token"));
            }
        }
        Ok(())
    }

    /// Every rule (for listing and compaction), in no particular order.
    pub fn rules(&self) -> Vec<Rule> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let s = match shard.read() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            out.extend(s.jti.iter().map(|(j, &expires)| Rule {
                target: Target::Jti(j.clone()),
                expires,
                cutoff: 0,
            }));
            out.extend(s.sub.iter().map(|(j, &(cutoff, expires))| Rule {
                target: Target::Sub(j.clone()),
                expires,
                cutoff,
            }));
            out.extend(s.token.iter().map(|(d, &expires)| Rule {
                target: Target::Token(*d),
                expires,
                cutoff: 0,
            }));
            out.extend(s.sid.iter().map(|(d, &expires)| Rule {
                target: Target::Sid(d.clone()),
                expires,
                cutoff: 0,
            }));
        }
        out
    }

    /// Drops the rules that may be dropped at `now` ([`Rule::expired`]: [`RETAIN_SECS`] past their end);
    /// returns how many. (The Bloom filter keeps their bits until it is rebuilt: stale bits only cost a map
    /// lookup.)
    pub fn expire(&self, now: u64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut s = match shard.write() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            let live = |e: u64| !droppable(e, now);
            let before = [s.jti.len(), s.sub.len(), s.token.len(), s.sid.len()];
            s.jti.retain(|_, e| live(*e));
            s.sub.retain(|_, (_, e)| live(*e));
            s.token.retain(|_, e| live(*e));
            s.sid.retain(|_, e| live(*e));
            let after = [s.jti.len(), s.sub.len(), s.token.len(), s.sid.len()];
            for (k, (b, a)) in self.kinds.iter().zip(before.iter().zip(after)) {
                k.fetch_sub(b - a, Ordering::Relaxed);
                dropped += b - a;
            }
        }
        self.len.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for shard in self.shards.iter() {
            let s = match shard.read() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            c.jti += s.jti.len();
            c.sub += s.sub.len();
            c.token += s.token.len();
            c.sid += s.sid.len();
        }
        c
    }
}

/// A Bloom filter over 64-bit hashes: three bits in one word per key (one cache line touched), set with
/// atomic ORs, never cleared (removed rules leave bits until the next rebuild). At 12–24 bits per rule a
/// few percent of unrevoked tokens look in a map; a false positive costs that lookup, never a wrong answer.
struct Bloom {
    words: Box<[AtomicU64]>,
}

impl Bloom {
    fn new(words: usize) -> Bloom {
        Bloom {
            words: (0..words.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// One word per key (one cache line touched), three bits in it. The word comes from the hash's high
    /// bits by multiply-shift (any size, not only powers of two); the bits from its low 18.
    #[inline]
    fn bits(&self, h: u64) -> (usize, u64) {
        let word = ((h as u128 * self.words.len() as u128) >> 64) as usize;
        let bits = (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63)) | (1u64 << ((h >> 12) & 63));
        (word, bits)
    }

    fn insert(&self, h: u64) {
        let (w, b) = self.bits(h);
        self.words[w].fetch_or(b, Ordering::Relaxed);
    }

    #[inline]
    fn may_contain(&self, h: u64) -> bool {
        let (w, b) = self.bits(h);
        self.words[w].load(Ordering::Relaxed) & b == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jti(j: &str, expires: u64) -> Rule {
        Rule {
            target: Target::Jti(j.into()),
            expires,
            cutoff: 0,
        }
    }

    fn presented<'a>(
        jti: Option<&'a str>,
        sub: Option<&'a str>,
        iat: Option<f64>,
    ) -> Presented<'a> {
        Presented {
            jti,
            sub,
            iat,
            sid: None,
            token: b"t",
        }
    }

    #[test]
    fn jti_rules_match_exactly_until_they_expire() {
        let r = Revocations::new();
        assert!(r.check(&presented(Some("a"), None, None), 0).is_ok());
        assert!(r.insert(jti("a", 100)));
        assert!(!r.insert(jti("a", 200)), "replaced, not new");
        assert_eq!(r.len(), 1);
        let err = r.check(&presented(Some("a"), None, None), 150).unwrap_err();
        assert_eq!(err.code(), "revoked");
        // Past the token's exp the token still verifies inside the leeway: the rule must still match.
        assert!(
            r.check(&presented(Some("a"), None, None), 200 + MAX_LEEWAY_SECS)
                .is_err(),
            "a rule matches for as long as it is kept"
        );
        assert_eq!(r.expire(200 + RETAIN_SECS - 1), 0, "kept past any leeway");
        assert!(r.check(&presented(Some("b"), None, None), 150).is_ok());
        assert!(r.check(&presented(Some("A"), None, None), 150).is_ok());
        assert!(r.remove(&Target::Jti("a".into())));
        assert!(r.check(&presented(Some("a"), None, None), 150).is_ok());
        assert!(r.is_empty());
    }

    #[test]
    fn the_epoch_moves_with_every_rule_added_or_changed_only() {
        let r = Revocations::new();
        let e0 = r.epoch();
        r.insert(jti("a", 0));
        let e1 = r.epoch();
        assert_ne!(e0, e1);
        r.insert(jti("a", 5));
        assert_ne!(r.epoch(), e1, "a changed rule may revoke more");
        let e2 = r.epoch();
        r.remove(&Target::Jti("a".into()));
        r.expire(10);
        assert_eq!(r.epoch(), e2, "removals only un-revoke");
    }

    #[test]
    fn subject_rules_cut_off_by_iat() {
        let r = Revocations::new();
        r.insert(Rule {
            target: Target::Sub("alice".into()),
            expires: 0,
            cutoff: 1000,
        });
        let check = |iat| r.check(&presented(None, Some("alice"), iat), 5000);
        assert!(check(Some(999.5)).is_err());
        assert!(
            check(Some(1000.0)).is_ok(),
            "issued at the cutoff: after the logout"
        );
        assert!(check(Some(2000.0)).is_ok());
        assert!(
            check(None).is_err(),
            "no iat: cannot prove it was issued after"
        );
        assert!(
            r.check(&presented(None, Some("bob"), Some(1.0)), 5000)
                .is_ok()
        );
    }

    #[test]
    fn token_rules_hash_only_jti_less_tokens() {
        let r = Revocations::new();
        r.insert(Rule {
            target: Target::token(b"tok"),
            expires: 0,
            cutoff: 0,
        });
        let p = |jti, token| Presented {
            jti,
            sub: None,
            iat: None,
            sid: None,
            token,
        };
        assert!(r.check(&p(None, b"tok"), 1).is_err());
        assert!(r.check(&p(None, b"tok2"), 1).is_ok());
        // With a jti the token is identified by it (REVOKE TOKEN turns such tokens into jti rules).
        assert!(r.check(&p(Some("x"), b"tok"), 1).is_ok());
        // An empty jti identifies nothing: the token is identified by its digest.
        assert!(r.check(&p(Some(""), b"tok"), 1).is_err());
    }

    #[test]
    fn token_rules_name_the_signed_content_not_the_signature_bytes() {
        let r = Revocations::new();
        r.insert(Rule {
            target: Target::token(b"aGVhZA.cGF5bG9hZA.c2lnLTE"),
            expires: 0,
            cutoff: 0,
        });
        let p = |token| Presented {
            token,
            ..Presented::default()
        };
        // The same header and payload with other signature bytes (an ECDSA (r, n - s) twin): revoked too.
        assert!(r.check(&p(b"aGVhZA.cGF5bG9hZA.c2lnLTI"), 1).is_err());
        assert!(r.check(&p(b"aGVhZA.cGF5bG9hZA."), 1).is_err());
        // Other signed content is another token.
        assert!(r.check(&p(b"aGVhZA.cGF5bG9hZB.c2lnLTE"), 1).is_ok());
        assert!(r.check(&p(b"aGVhZB.cGF5bG9hZA.c2lnLTE"), 1).is_ok());
        assert_eq!(
            token_digest(b"a.b.c"),
            crate::crypto::sha256(b"a.b"),
            "the digest is over the JWS signing input"
        );
    }

    #[test]
    fn expire_drops_old_rules_and_rules_lists_the_rest() {
        let r = Revocations::new();
        for i in 0..1000u64 {
            r.insert(jti(&format!("j{i}"), if i % 2 == 0 { 50 } else { 0 }));
        }
        r.insert(Rule {
            target: Target::token(b"x"),
            expires: 10,
            cutoff: 0,
        });
        assert_eq!(
            r.expire(50 + RETAIN_SECS - 1),
            1,
            "the others kept for the margin"
        );
        assert_eq!(r.expire(50 + RETAIN_SECS), 500);
        assert_eq!(r.len(), 500);
        assert_eq!(
            r.counts(),
            Counts {
                jti: 500,
                sub: 0,
                token: 0,
                sid: 0
            }
        );
        let mut rules = r.rules();
        rules.sort_by(|a, b| a.target.cmp(&b.target));
        assert_eq!(rules.len(), 500);
        assert!(rules.iter().all(|x| x.expires == 0));
    }

    #[test]
    fn many_rules_keep_answers_exact() {
        let r = Revocations::new();
        for i in 0..200_000u64 {
            r.insert(jti(&format!("jti-{i}"), 0));
        }
        for i in 0..200_000u64 {
            assert!(
                r.check(&presented(Some(&format!("jti-{i}")), None, None), 1)
                    .is_err()
            );
        }
        let mut false_alarms = 0;
        for i in 0..100_000u64 {
            let j = format!("other-{i}");
            assert!(r.check(&presented(Some(&j), None, None), 1).is_ok());
            let h = r.hash(0, j.as_bytes());
            false_alarms += usize::from(r.bloom.load().may_contain(h));
        }
        // The Bloom filter spares the map for nearly every unrevoked token (a few percent at 12-24 bits a
        // rule).
        assert!(false_alarms < 5_000, "{false_alarms}");
        eprintln!("Bloom false positives: {false_alarms} in 100,000");
    }
}
