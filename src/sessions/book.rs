//! The families held in memory, and what a refresh, an issue or a logout does to them — decided by the
//! revocation writer, the one thread that owns the log, so that decisions are taken one at a time on
//! durable state (docs/SESSIONS.md, "Rotation, retry and reuse").

use std::collections::HashMap;

use super::record::{Family, MAX_USED, Rotation};
use super::token::{Digest, SessionKey};
use super::{Lifetimes, View};
use crate::revocation::{Presented, Revocations, Rule, Target};

/// Why a refresh is refused (RFC 6749 §5.2 error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `invalid_grant`, with the reason given to the client.
    InvalidGrant(&'static str),
    /// `invalid_client`: the family is bound to another client (nothing is revoked).
    InvalidClient(&'static str),
    /// `invalid_scope`: a scope the family was not granted (nothing changes).
    InvalidScope(&'static str),
}

/// What the writer is to do for a refresh.
#[derive(Debug)]
pub enum Decision {
    /// Answer at once; nothing to write.
    Refuse(Refusal),
    /// A retry within the grace interval: the same successor again, nothing to write.
    Again { view: View, refresh_token: String },
    /// Write this rotation, then answer with the successor.
    Rotate {
        rotation: Rotation,
        view: View,
        refresh_token: String,
    },
    /// A used token came back: write this rule (the family and its access tokens end), then refuse.
    Reuse { rule: Rule, sid: String },
}

/// The families of this daemon, by id and by every refresh-token digest they know.
#[derive(Debug, Default)]
pub struct Families {
    by_sid: HashMap<String, Family>,
    by_digest: HashMap<Digest, String>,
}

impl Families {
    pub fn len(&self) -> usize {
        self.by_sid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sid.is_empty()
    }

    /// Adds or replaces a whole family (created, or restated by compaction).
    pub fn put(&mut self, f: Family) {
        if let Some(old) = self.by_sid.remove(&f.sid) {
            self.forget_digests(&old);
        }
        for d in digests(&f) {
            self.by_digest.insert(d, f.sid.clone());
        }
        self.by_sid.insert(f.sid.clone(), f);
    }

    fn forget_digests(&mut self, f: &Family) {
        for d in digests(f) {
            if self.by_digest.get(&d) == Some(&f.sid) {
                self.by_digest.remove(&d);
            }
        }
    }

    /// Moves a family one generation on. A rotation of a family this daemon does not hold (dropped by a
    /// compaction since) or that does not follow its current generation is ignored.
    pub fn rotate(&mut self, r: &Rotation) -> bool {
        let Some(f) = self.by_sid.get_mut(&r.sid) else {
            return false;
        };
        if f.current != r.from || r.generation != f.generation + 1 {
            return false;
        }
        if let Some((old, _)) = f.previous.take() {
            f.used.push_back(old);
            if f.used.len() > MAX_USED
                && let Some(gone) = f.used.pop_front()
                && self.by_digest.get(&gone) == Some(&f.sid)
            {
                self.by_digest.remove(&gone);
            }
        }
        f.previous = Some((r.from, r.at));
        f.current = r.to;
        f.generation = r.generation;
        f.last_used = f.last_used.max(r.at);
        self.by_digest.insert(r.to, r.sid.clone());
        true
    }

    /// Drops the families that have ended at `now` (expired, or ended by a revocation rule); how many.
    /// Called before the rules that ended them may be dropped, so that a family never outlives its rule.
    pub fn drop_ended(&mut self, set: &Revocations, lifetimes: &Lifetimes, now: u64) -> usize {
        let ended: Vec<String> = self
            .by_sid
            .values()
            .filter(|f| lifetimes.expired(f, now) || revoked(set, f, now))
            .map(|f| f.sid.clone())
            .collect();
        for sid in &ended {
            if let Some(f) = self.by_sid.remove(sid) {
                self.forget_digests(&f);
            }
        }
        ended.len()
    }

    /// Every family, for compaction.
    pub fn all(&self) -> impl Iterator<Item = &Family> {
        self.by_sid.values()
    }

    /// The family holding `digest` (any generation this daemon still knows).
    pub fn find(&self, digest: &Digest) -> Option<&Family> {
        self.by_sid.get(self.by_digest.get(digest)?)
    }

    pub fn get(&self, sid: &str) -> Option<&Family> {
        self.by_sid.get(sid)
    }

    /// What a refresh with `token` (digest `digest`), naming `client_id`, does at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        key: &SessionKey,
        token: &str,
        digest: &Digest,
        client_id: Option<&str>,
        scope: Option<&str>,
        set: &Revocations,
        lifetimes: &Lifetimes,
        now: u64,
    ) -> Decision {
        let Some(f) = self.find(digest) else {
            return Decision::Refuse(Refusal::InvalidGrant("unknown refresh token"));
        };
        if revoked(set, f, now) {
            return Decision::Refuse(Refusal::InvalidGrant("the session has ended"));
        }
        if now >= f.absolute_end {
            return Decision::Refuse(Refusal::InvalidGrant(
                "the session reached its absolute lifetime",
            ));
        }
        if lifetimes.idle_expired(f, now) {
            return Decision::Refuse(Refusal::InvalidGrant("the session was idle too long"));
        }
        if let Some(bound) = &f.client_id
            && client_id != Some(bound.as_str())
        {
            return Decision::Refuse(Refusal::InvalidClient(
                "the refresh token was issued to another client",
            ));
        }
        if let Some(asked) = scope
            && !super::form::narrower(asked, &f.scope)
        {
            return Decision::Refuse(Refusal::InvalidScope(
                "a refresh may narrow the session's scope, not widen it",
            ));
        }
        if *digest == f.current {
            let generation = f.generation + 1;
            let refresh_token = key.successor(token, generation);
            return Decision::Rotate {
                rotation: Rotation {
                    sid: f.sid.clone(),
                    generation,
                    from: f.current,
                    to: key.digest(&refresh_token),
                    at: now,
                },
                view: View::of(f),
                refresh_token,
            };
        }
        if let Some((previous, at)) = f.previous
            && previous == *digest
            && now < at.saturating_add(lifetimes.reuse_grace)
        {
            // The successor of the previous token is the current one: the reply that was lost.
            let refresh_token = key.successor(token, f.generation);
            if key.digest(&refresh_token) == f.current {
                return Decision::Again {
                    view: View::of(f),
                    refresh_token,
                };
            }
        }
        Decision::Reuse {
            rule: end_rule(f, lifetimes),
            sid: f.sid.clone(),
        }
    }
}

/// The rule that ends family `f`: its `sid`, kept as long as any access token of it may verify.
pub fn end_rule(f: &Family, lifetimes: &Lifetimes) -> Rule {
    Rule {
        target: Target::Sid(f.sid.clone()),
        expires: f.absolute_end.saturating_add(lifetimes.access),
        cutoff: 0,
    }
}

/// Whether a rule ends the family: its `sid`, or its subject's logout after the family was created.
pub fn revoked(set: &Revocations, f: &Family, now: u64) -> bool {
    if set.is_empty() {
        return false;
    }
    set.check(
        &Presented {
            sid: Some(&f.sid),
            sub: Some(&f.sub),
            iat: Some(f.created as f64),
            jti: Some(""),
            token: b"",
        },
        now,
    )
    .is_err()
}

fn digests(f: &Family) -> impl Iterator<Item = Digest> + '_ {
    std::iter::once(f.current)
        .chain(f.previous.map(|(d, _)| d))
        .chain(f.used.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    const GRACE: u64 = 5;

    fn lifetimes() -> Lifetimes {
        Lifetimes {
            access: 600,
            idle: 1000,
            absolute: 10_000,
            reuse_grace: GRACE,
        }
    }

    fn family(key: &SessionKey, token: &str, now: u64) -> Family {
        Family {
            sid: "s1".into(),
            sub: "alice".into(),
            client_id: None,
            scope: String::new(),
            aud: "api".into(),
            claims: None,
            created: now,
            absolute_end: now + 10_000,
            last_used: now,
            generation: 0,
            current: key.digest(token),
            previous: None,
            used: VecDeque::new(),
        }
    }

    fn refresh(
        fams: &mut Families,
        key: &SessionKey,
        set: &Revocations,
        token: &str,
        now: u64,
    ) -> Result<String, String> {
        match fams.decide(
            key,
            token,
            &key.digest(token),
            None,
            None,
            set,
            &lifetimes(),
            now,
        ) {
            Decision::Rotate {
                rotation,
                refresh_token,
                ..
            } => {
                assert!(fams.rotate(&rotation));
                Ok(refresh_token)
            }
            Decision::Again { refresh_token, .. } => Ok(refresh_token),
            Decision::Reuse { rule, .. } => {
                set.insert(rule);
                Err("reuse".into())
            }
            Decision::Refuse(r) => Err(format!("{r:?}")),
        }
    }

    #[test]
    fn rotation_retry_within_grace_and_reuse_after_it() {
        let key = SessionKey::from_bytes(&[7; 32]);
        let set = Revocations::new();
        let mut fams = Families::default();
        let rt0 = "a".repeat(43);
        fams.put(family(&key, &rt0, 100));
        let rt1 = refresh(&mut fams, &key, &set, &rt0, 100).unwrap();
        assert_ne!(rt1, rt0);
        // The reply was lost: the same successor again, no new generation.
        assert_eq!(
            refresh(&mut fams, &key, &set, &rt0, 100 + GRACE - 1),
            Ok(rt1.clone())
        );
        assert_eq!(fams.find(&key.digest(&rt1)).unwrap().generation, 1);
        let rt2 = refresh(&mut fams, &key, &set, &rt1, 200).unwrap();
        // rt0 is two generations old: reuse, the family ends, rt2 fails too.
        assert_eq!(
            refresh(&mut fams, &key, &set, &rt0, 201),
            Err("reuse".into())
        );
        assert!(
            refresh(&mut fams, &key, &set, &rt2, 202)
                .unwrap_err()
                .contains("ended")
        );
        assert_eq!(fams.drop_ended(&set, &lifetimes(), 203), 1);
        assert!(fams.is_empty());
    }

    #[test]
    fn the_previous_token_after_its_grace_is_a_reuse() {
        let key = SessionKey::from_bytes(&[7; 32]);
        let set = Revocations::new();
        let mut fams = Families::default();
        let rt0 = "b".repeat(43);
        fams.put(family(&key, &rt0, 100));
        let _rt1 = refresh(&mut fams, &key, &set, &rt0, 100).unwrap();
        assert_eq!(
            refresh(&mut fams, &key, &set, &rt0, 100 + GRACE),
            Err("reuse".into())
        );
    }

    #[test]
    fn idle_absolute_binding_unknown_and_subject_logout() {
        let key = SessionKey::from_bytes(&[7; 32]);
        let set = Revocations::new();
        let l = lifetimes();
        let mut fams = Families::default();
        let rt0 = "c".repeat(43);
        fams.put(family(&key, &rt0, 100));
        let d = key.digest(&rt0);
        let refused = |fams: &Families, client: Option<&str>, now| match fams
            .decide(&key, &rt0, &d, client, None, &set, &l, now)
        {
            Decision::Refuse(r) => Some(r),
            _ => None,
        };
        assert!(
            matches!(refused(&fams, None, 100 + 1000), Some(Refusal::InvalidGrant(m)) if m.contains("idle"))
        );
        assert_eq!(refused(&fams, None, 100 + 999), None);
        let mut f = family(&key, &rt0, 100);
        f.last_used = 10_050;
        f.client_id = Some("app".into());
        fams.put(f);
        assert!(
            matches!(refused(&fams, Some("app"), 10_100), Some(Refusal::InvalidGrant(m)) if m.contains("absolute"))
        );
        assert!(matches!(
            refused(&fams, Some("other"), 200),
            Some(Refusal::InvalidClient(_))
        ));
        assert!(matches!(
            refused(&fams, None, 200),
            Some(Refusal::InvalidClient(_))
        ));
        assert_eq!(refused(&fams, Some("app"), 200), None);
        let unknown = key.digest("zzz");
        assert!(matches!(
            fams.decide(&key, "zzz", &unknown, None, None, &set, &l, 200),
            Decision::Refuse(Refusal::InvalidGrant("unknown refresh token"))
        ));
        // Log out everywhere: a subject rule with a cutoff after the family's creation ends it.
        set.insert(Rule {
            target: Target::Sub("alice".into()),
            expires: 0,
            cutoff: 150,
        });
        assert!(
            matches!(refused(&fams, Some("app"), 200), Some(Refusal::InvalidGrant(m)) if m.contains("ended"))
        );
    }
}
