//! Families through the store (the revocation log, group commit, replay, compaction) with an injected
//! clock: what is acknowledged is there after a restart, lifetimes end families, compaction keeps only
//! live ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::token::{SessionKey, new_token};
use super::{Lifetimes, NewFamily, Outcome, Request};
use crate::revocation::store::{Clock, Options, Store};

const LIFETIMES: Lifetimes = Lifetimes {
    access: 600,
    idle: 1_000,
    absolute: 5_000,
    reuse_grace: 5,
};

fn open(dir: &std::path::Path, now: &Arc<AtomicU64>) -> Store {
    let n = now.clone();
    let clock: Clock = Arc::new(move || n.load(Ordering::Relaxed));
    Store::open_with(
        dir,
        clock,
        Options {
            sessions: Some(LIFETIMES),
            ..Options::default()
        },
    )
    .unwrap()
}

fn key(store: &Store) -> &SessionKey {
    &store.sessions().unwrap().key
}

fn issue(store: &Store, sub: &str) -> String {
    let rt = new_token().unwrap();
    let out = store
        .session(Request::Issue(NewFamily {
            sub: sub.into(),
            client_id: None,
            scope: String::new(),
            aud: "app".into(),
            claims: None,
            first: key(store).digest(&rt),
        }))
        .blocking_recv()
        .unwrap()
        .unwrap();
    assert!(matches!(out, Outcome::Issued(_)), "{out:?}");
    rt
}

fn refresh(store: &Store, rt: &str) -> Outcome {
    store
        .session(Request::Refresh {
            token: rt.into(),
            digest: key(store).digest(rt),
            client_id: None,
            scope: None,
        })
        .blocking_recv()
        .unwrap()
        .unwrap()
}

fn next(store: &Store, rt: &str) -> String {
    match refresh(store, rt) {
        Outcome::Refreshed { refresh_token, .. } => refresh_token,
        o => panic!("{o:?}"),
    }
}

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("jwtd-sessions-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn rotations_survive_restarts_and_compaction() {
    let d = dir("restart");
    let now = Arc::new(AtomicU64::new(10_000));
    let store = open(&d, &now);
    let rt0 = issue(&store, "alice");
    let rt1 = next(&store, &rt0);
    now.store(10_100, Ordering::Relaxed);
    let rt2 = next(&store, &rt1);
    drop(store);
    // Replayed from the log: rt2 rotates, rt1 (two generations old by then) is a reuse.
    let store = open(&d, &now);
    let rt3 = next(&store, &rt2);
    store.compact_blocking().unwrap();
    drop(store);
    let store = open(&d, &now);
    assert_eq!(store.stats().sessions.families.load(Ordering::Relaxed), 1);
    let rt4 = next(&store, &rt3);
    assert!(matches!(refresh(&store, &rt1), Outcome::Reused { .. }));
    assert!(matches!(refresh(&store, &rt4), Outcome::Refused(_)));
    // The ended family leaves at the next compaction; its rule stays for its access tokens.
    store.compact_blocking().unwrap();
    assert_eq!(store.stats().sessions.families.load(Ordering::Relaxed), 0);
    assert_eq!(store.revocations().counts().sid, 1);
    drop(store);
    let store = open(&d, &now);
    assert!(matches!(refresh(&store, &rt4), Outcome::Refused(_)));
    drop(store);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn idle_and_absolute_lifetimes_with_an_injected_clock() {
    let d = dir("lifetimes");
    let now = Arc::new(AtomicU64::new(10_000));
    let store = open(&d, &now);
    let idle = issue(&store, "idle");
    let mut busy = issue(&store, "busy");
    for t in [10_900, 11_800, 12_700, 13_600, 14_500] {
        now.store(t, Ordering::Relaxed);
        busy = next(&store, &busy);
    }
    let refused = |o: Outcome| match o {
        Outcome::Refused(r) => format!("{r:?}"),
        o => panic!("{o:?}"),
    };
    assert!(refused(refresh(&store, &idle)).contains("idle"));
    now.store(15_000, Ordering::Relaxed);
    assert!(refused(refresh(&store, &busy)).contains("absolute"));
    // Expired families leave at compaction (no rule needed: their tokens are unknown from then on).
    store.compact_blocking().unwrap();
    assert_eq!(store.stats().sessions.families.load(Ordering::Relaxed), 0);
    assert!(refused(refresh(&store, &busy)).contains("unknown"));
    drop(store);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn concurrent_refreshes_of_one_token_make_one_rotation() {
    let d = dir("race");
    let now = Arc::new(AtomicU64::new(10_000));
    let store = open(&d, &now);
    let rt0 = issue(&store, "alice");
    // Submitted together: they may share a commit, and are decided one after the other.
    let rxs: Vec<_> = (0..8)
        .map(|_| {
            store.session(Request::Refresh {
                token: rt0.clone(),
                digest: key(&store).digest(&rt0),
                client_id: None,
                scope: None,
            })
        })
        .collect();
    let answers: Vec<String> = rxs
        .into_iter()
        .map(|rx| match rx.blocking_recv().unwrap().unwrap() {
            Outcome::Refreshed { refresh_token, .. } => refresh_token,
            o => panic!("{o:?}"),
        })
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "one successor");
    assert_eq!(store.stats().sessions.rotated.load(Ordering::Relaxed), 1);
    assert_eq!(store.stats().sessions.retried.load(Ordering::Relaxed), 7);
    drop(store);
    std::fs::remove_dir_all(&d).unwrap();
}
