//! The verified-token cache against reference models:
//! - one set: exactly a textbook SIEVE queue of capacity WAYS (a simple Vec model), hit for hit;
//! - many sets: every hit returns the value last inserted for that key (an `lru::LruCache` as the value
//!   oracle), never outside its window or generation, and the entry and byte bounds always hold;
//! - on a Zipf trace its hit ratio is at least exact LRU's (`lru::LruCache`) at the same capacity;
//! - many threads hammering a small cache never see a wrong value and leave consistent counters.

use std::num::NonZeroUsize;

use jwtd::cache::{Cache, Config, ENTRY_OVERHEAD, WAYS};
use jwtd::loadgen::zipf::{RngExt, Zipf, seeded};
use proptest::prelude::*;

const ALWAYS: (u64, u64) = (0, u64::MAX);

/// Textbook SIEVE (Zhang et al., NSDI '24), oldest first, with the cache's rule that re-inserting a key
/// drops the old copy first.
struct Sieve {
    queue: Vec<(u128, u64, bool)>,
    hand: usize,
}

impl Sieve {
    fn insert(&mut self, key: u128, value: u64) {
        if let Some(i) = self.queue.iter().position(|e| e.0 == key) {
            self.queue.remove(i);
            if i < self.hand {
                self.hand -= 1;
            }
        }
        if self.queue.len() == WAYS {
            loop {
                if self.hand >= self.queue.len() {
                    self.hand = 0;
                }
                if self.queue[self.hand].2 {
                    self.queue[self.hand].2 = false;
                    self.hand += 1;
                } else {
                    break;
                }
            }
            self.queue.remove(self.hand);
        }
        self.queue.push((key, value, false));
    }

    fn get(&mut self, key: u128) -> Option<u64> {
        let e = self.queue.iter_mut().find(|e| e.0 == key)?;
        e.2 = true;
        Some(e.1)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8),
    Get(u8),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24).prop_map(Op::Insert),
        6 => (0u8..24).prop_map(Op::Get),
        1 => (0u8..24).prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn one_set_behaves_exactly_like_sieve(ops in prop::collection::vec(op(), 1..300)) {
        let cache: Cache<u64> = Cache::new(&Config { max_entries: WAYS, max_bytes: 1 << 20 });
        let mut model = Sieve { queue: Vec::new(), hand: 0 };
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Insert(k) => {
                    prop_assert!(cache.insert(k as u128 + 1, 1, ALWAYS, 0, n as u64, 8));
                    model.insert(k as u128 + 1, n as u64);
                }
                Op::Get(k) => {
                    let got = cache.get(k as u128 + 1, 1, 0, |v| *v);
                    prop_assert_eq!(got, model.get(k as u128 + 1), "get {} after {} ops", k, n);
                }
                Op::Remove(k) => {
                    let was = model.queue.iter().position(|e| e.0 == k as u128 + 1);
                    if let Some(i) = was {
                        model.queue.remove(i);
                        if i < model.hand {
                            model.hand -= 1;
                        }
                    }
                    prop_assert_eq!(cache.remove(k as u128 + 1), was.is_some());
                }
            }
            prop_assert_eq!(cache.stats().entries, model.queue.len() as u64);
        }
    }

    #[test]
    fn many_sets_never_serve_a_wrong_stale_or_foreign_value(
        ops in prop::collection::vec((0u8..4, 0u16..200, 0u64..40, 1u32..3), 1..600),
    ) {
        let max_bytes = 16 * (ENTRY_OVERHEAD + 40);
        let cache: Cache<(u128, u64)> = Cache::new(&Config { max_entries: 32, max_bytes });
        // The value oracle: key -> (value, window, generation) of its last insertion.
        let mut oracle = lru::LruCache::unbounded();
        let mut now = 1_000;
        for (n, (kind, k, dt, generation)) in ops.into_iter().enumerate() {
            // Spread keys over sets with a mixing multiplier, as the PRF would.
            let key = (k as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
            match kind {
                0 | 1 => {
                    let window = (now - 5, now + dt + 1);
                    let size = (k as usize * 7) % 40;
                    let cached = cache.insert(key, generation, window, now, (key, n as u64), size);
                    prop_assert!(cached, "an entry that fits is always cached");
                    oracle.put(key, (n as u64, window, generation));
                }
                2 => now += dt,
                _ => {
                    let got = cache.get(key, generation, now, |v| *v);
                    if let Some((for_key, value)) = got {
                        prop_assert_eq!(for_key, key, "a hit for another key");
                        let (want, (nb, until), g) = *oracle.peek(&key).expect("hit for a key never inserted");
                        prop_assert_eq!(value, want, "not the latest value");
                        prop_assert!(nb <= now && now < until, "served outside its window");
                        prop_assert_eq!(g, generation, "served for another generation");
                    }
                }
            }
            let s = cache.stats();
            prop_assert!(s.entries as usize <= cache.capacity());
            prop_assert!(s.bytes as usize <= max_bytes, "{:?}", s);
        }
    }
}

#[test]
fn a_key_just_inserted_hits_until_its_window_ends() {
    let cache: Cache<u32> = Cache::new(&Config::default());
    let mut rng = seeded(3);
    for i in 0..10_000u32 {
        let key: u128 = rng.random();
        assert!(cache.insert(key, 9, (100, 200), 150, i, 0));
        assert_eq!(cache.get(key, 9, 199, |v| *v), Some(i));
        assert_eq!(cache.get(key, 9, 200, |v| *v), None);
    }
}

/// Hits over a Zipf(1.0) trace of 400,000 requests over 100,000 keys, for our cache and exact LRU at the same
/// capacity (the cache's capacity, 8,192 entries).
fn zipf_hit_ratios(s: f64) -> (f64, f64) {
    let cache: Cache<()> = Cache::new(&Config {
        max_entries: 8_192,
        max_bytes: usize::MAX / 2,
    });
    let mut lru = lru::LruCache::new(NonZeroUsize::new(cache.capacity()).unwrap());
    let zipf = Zipf::new(100_000, s);
    let mut rng = seeded(42);
    let (mut ours, mut theirs, n) = (0u32, 0u32, 400_000);
    for _ in 0..n {
        let item = zipf.sample(&mut rng) as u128;
        // Keys are PRF outputs in the daemon: spread them the same way.
        let key = (item + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        if cache.get(key, 1, 0, |_| ()).is_some() {
            ours += 1;
        } else {
            cache.insert(key, 1, ALWAYS, 0, (), 0);
        }
        if lru.get(&key).is_some() {
            theirs += 1;
        } else {
            lru.put(key, ());
        }
    }
    (ours as f64 / n as f64, theirs as f64 / n as f64)
}

#[test]
fn zipf_hit_ratio_is_at_least_exact_lrus() {
    for s in [0.8, 1.0, 1.2] {
        let (ours, lru) = zipf_hit_ratios(s);
        eprintln!("zipf {s}: cache {ours:.4}, exact LRU {lru:.4}");
        assert!(
            ours >= lru,
            "zipf {s}: cache {ours:.4} < exact LRU {lru:.4}"
        );
    }
}

#[test]
fn many_threads_hammering_a_small_cache_keep_its_invariants() {
    // 64 entries, 4 threads, 200 hot keys: constant eviction and replacement under concurrent reads.
    let cache: Cache<(u128, u64)> = Cache::new(&Config {
        max_entries: 64,
        max_bytes: 64 * (ENTRY_OVERHEAD + 16),
    });
    let threads = 4;
    let per_thread = 100_000u64;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let cache = &cache;
            scope.spawn(move || {
                let mut rng = seeded(t);
                let mut hits = 0u64;
                for i in 0..per_thread {
                    let k = rng.random_range(1..=200u128);
                    let key = k.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
                    // Values encode their key: a hit must always be for the key asked.
                    match cache.get(key, 1, 10, |v| *v) {
                        Some((for_key, _)) => {
                            assert_eq!(for_key, key);
                            hits += 1;
                        }
                        None => {
                            cache.insert(key, 1, (0, 100), 10, (key, i), (i % 16) as usize);
                        }
                    }
                }
                assert!(hits > 0);
            });
        }
    });
    let s = cache.stats();
    assert!(s.entries as usize <= cache.capacity(), "{s:?}");
    assert!(s.bytes as usize <= 64 * (ENTRY_OVERHEAD + 16), "{s:?}");
    // Every insert is still there or left by exactly one way.
    assert_eq!(
        s.inserts,
        s.entries + s.evictions + s.expirations + s.replaced + s.removed,
        "{s:?}"
    );
}
