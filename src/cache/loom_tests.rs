//! Interleaving tests of the cache's protocol under the loom model checker:
//! `RUSTFLAGS="--cfg jwtd_loom" cargo test --release --lib cache::loom_tests` (`.ci/run` does this).
//!
//! Loom runs each closure under every interleaving of the atomic operations and lock acquisitions (up to a
//! preemption bound), so a reader racing a writer sees every possible intermediate state of tags, slots and
//! visited flags.

use super::*;
use loom::thread;

/// Keys in set 0 of a one-set cache (set bits are the high 64).
fn k(tag: u64) -> u128 {
    tag as u128
}

/// What set 0 holds for `key`, read from the slots (not through the tags).
///
/// Checks after `join` avoid reading tags that the main thread itself changed with a compare-and-swap while
/// racing: loom 0.7 can let such a later load return a value older than the other thread's store, which the
/// memory model forbids (tokio-rs/loom#282, #389), and would report a failure that cannot happen.
fn holds(c: &Cache<u64>, key: u64) -> Option<u64> {
    c.sets[0]
        .slots
        .iter()
        .find_map(|s| s.with(|e| e.filter(|e| e.key == split(k(key))).map(|e| e.value)))
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

fn one_set() -> Arc<Cache<u64>> {
    Arc::new(Cache::new(&Config {
        max_entries: WAYS,
        max_bytes: 1 << 20,
    }))
}

#[test]
fn a_reader_racing_an_insert_sees_nothing_or_the_value() {
    model(|| {
        let c = one_set();
        let w = c.clone();
        let t = thread::spawn(move || {
            w.insert(k(5), 1, (0, 100), 0, 55, 0);
        });
        let seen = c.get(k(5), 1, 0, |v| *v);
        assert!(seen.is_none() || seen == Some(55), "{seen:?}");
        t.join().unwrap();
        assert_eq!(holds(&c, 5), Some(55));
    });
}

#[test]
fn a_reader_racing_an_eviction_never_sees_another_keys_value() {
    model(|| {
        let c = one_set();
        for t in 1..=WAYS as u64 {
            c.insert(k(t), 1, (0, 100), 0, t * 10, 0);
        }
        let w = c.clone();
        // Inserting a ninth key evicts the oldest unvisited one (key 1, unless the reader visits it first).
        let t = thread::spawn(move || {
            w.insert(k(99), 1, (0, 100), 0, 990, 0);
        });
        for key in [1, 2] {
            let seen = c.get(k(key), 1, 0, |v| *v);
            assert!(seen.is_none() || seen == Some(key * 10), "{key}: {seen:?}");
        }
        t.join().unwrap();
        let s = c.stats();
        assert_eq!(s.entries, WAYS as u64);
        assert_eq!(s.evictions, 1);
        assert_eq!(holds(&c, 99), Some(990));
    });
}

#[test]
fn concurrent_writers_keep_the_accounting_exact() {
    model(|| {
        let c = Arc::new(Cache::<u64>::new(&Config {
            max_entries: WAYS,
            max_bytes: 3 * (ENTRY_OVERHEAD + 10),
        }));
        c.insert(k(1), 1, (0, 100), 0, 1, 10);
        c.insert(k(2), 1, (0, 100), 0, 2, 10);
        let (a, b) = (c.clone(), c.clone());
        // Two writers: one replaces key 1, the other adds key 3 then 4 (the byte budget forces an eviction).
        let ta = thread::spawn(move || {
            a.insert(k(1), 1, (0, 100), 0, 11, 10);
        });
        let tb = thread::spawn(move || {
            b.insert(k(3), 1, (0, 100), 0, 3, 10);
            b.insert(k(4), 1, (0, 100), 0, 4, 10);
        });
        // A reader visiting key 2 meanwhile.
        let _ = c.get(k(2), 1, 0, |v| *v);
        ta.join().unwrap();
        tb.join().unwrap();
        let s = c.stats();
        assert_eq!(s.entries, 3, "{s:?}");
        assert_eq!(s.bytes, 3 * (ENTRY_OVERHEAD as u64 + 10), "{s:?}");
        assert_eq!(
            s.inserts,
            s.entries + s.evictions + s.replaced + s.expirations,
            "{s:?}"
        );
        for key in [1, 2, 3, 4] {
            if let Some(v) = holds(&c, key) {
                assert!(v == key || (key == 1 && v == 11), "{key}: {v}");
            }
        }
        assert_eq!(holds(&c, 4), Some(4), "the newest entry stays");
    });
}
