//! Interleaving tests of the revocation set's publication protocol under the loom model checker:
//! `RUSTFLAGS="--cfg jwtd_loom" cargo test --release --lib revocation::loom_tests` (`.ci/run` does this).
//!
//! The cache skips the revocation check on a hit whose verdict was found clean at the current epoch
//! (`Verdict::clean_at`). That is sound only if a checker that reads the epoch a new rule published also
//! sees the rule: otherwise it finds nothing, marks the verdict clean at the *new* epoch, and the revoked
//! token is served from the cache until the next rule is added.

use super::*;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// What a cache hit does (`Shared::verify_inner`): read the epoch, check, remember the epoch if clean.
fn hit(r: &Revocations, p: &Presented<'_>) -> Result<(), u32> {
    let epoch = r.epoch();
    match r.check(p, 100) {
        Ok(()) => Err(epoch),
        Err(_) => Ok(()),
    }
}

#[test]
fn a_verdict_marked_clean_at_the_epoch_of_a_new_rule_was_checked_against_it() {
    model(|| {
        let r = crate::sync::Arc::new(Revocations::new());
        let w = r.clone();
        let t = thread::spawn(move || {
            w.insert(Rule {
                target: Target::Jti("j".into()),
                expires: 0,
                cutoff: 0,
            });
        });
        let p = Presented {
            jti: Some("j"),
            ..Presented::default()
        };
        let seen = hit(&r, &p);
        t.join().unwrap();
        if let Err(clean_at) = seen {
            // Found clean: only legitimate if it was checked before the rule was published, i.e. at an
            // older epoch — the next hit then checks again and finds the rule.
            assert_ne!(clean_at, r.epoch(), "marked clean at the new rule's epoch");
        }
        assert!(hit(&r, &p).is_ok(), "in force once inserted");
    });
}

#[test]
fn a_subject_rule_is_seen_by_whoever_sees_its_epoch() {
    model(|| {
        let r = crate::sync::Arc::new(Revocations::new());
        let w = r.clone();
        let t = thread::spawn(move || {
            w.insert(Rule {
                target: Target::Sub("alice".into()),
                expires: 0,
                cutoff: 1_000,
            });
        });
        let p = Presented {
            sub: Some("alice"),
            iat: Some(10.0),
            ..Presented::default()
        };
        let seen = hit(&r, &p);
        t.join().unwrap();
        if let Err(clean_at) = seen {
            assert_ne!(clean_at, r.epoch(), "marked clean at the new rule's epoch");
        }
    });
}
