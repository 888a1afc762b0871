//! Arbitrary sequences of cache operations (insert, get, remove, clock and generation changes) on a small
//! verified-token cache, against a model of what may be served. After every step:
//! - a hit returns the value last inserted for that key, under the current generation, inside its window
//!   (the cache may forget — eviction — but never invent, resurrect a removed entry or serve a stale one);
//! - `remove` finds only keys the model holds;
//! - the entry and byte bounds hold, and the counters agree with each other.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use jwtd::cache::{Cache, Config, ENTRY_OVERHEAD};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Insert key k with a value of `len` bytes, valid in [now - back, now + ahead).
    Insert {
        k: u8,
        len: u16,
        back: u8,
        ahead: u16,
    },
    Get {
        k: u8,
    },
    Remove {
        k: u8,
    },
    /// Move the clock forward.
    Tick {
        secs: u16,
    },
    /// A reload: entries of older generations must never hit again.
    Reload,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Capacity in entries (8..=263) and bytes (in KiB, 1..=64).
    entries: u8,
    kib: u8,
    ops: Vec<Op>,
}

/// Spreads small numbers over the sets (the high half picks the set) and over tags.
fn key(k: u8) -> u128 {
    let x = u128::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1;
    x ^ (x >> 67)
}

fuzz_target!(|input: Input| {
    let config = Config {
        max_entries: 8 + input.entries as usize,
        max_bytes: (1 + input.kib as usize % 64) * 1024,
    };
    let cache: Cache<Vec<u8>> = Cache::new(&config);
    let mut now: u64 = 1_700_000_000;
    let mut generation: u32 = 0;
    // What each key may return: value, generation, window.
    let mut model: HashMap<u8, (Vec<u8>, u32, (u64, u64))> = HashMap::new();
    let mut counter: u8 = 0;
    for op in input.ops.iter().take(2000) {
        match *op {
            Op::Insert {
                k,
                len,
                back,
                ahead,
            } => {
                counter = counter.wrapping_add(1);
                let value = vec![counter; len as usize % 4096];
                let window = (now - u64::from(back), now + u64::from(ahead));
                let size = value.len();
                if cache.insert(key(k), generation, window, now, value.clone(), size) {
                    model.insert(k, (value, generation, window));
                } else {
                    // Refused, which only a value over a set's byte share or an empty window may be;
                    // an older entry for k may still be served (the model keeps it).
                    let sets = cache.capacity() / jwtd::cache::WAYS;
                    assert!(
                        size + ENTRY_OVERHEAD > config.max_bytes / sets || window.1 <= now,
                        "a fitting, live entry was refused: {size} bytes, window {window:?} at {now}"
                    );
                }
            }
            Op::Get { k } => {
                if let Some(v) = cache.get(key(k), generation, now, |v| v.clone()) {
                    let (want, g, (start, until)) = model
                        .get(&k)
                        .expect("a hit on a key that was never inserted");
                    assert_eq!(&v, want, "a hit returned another value");
                    assert_eq!(*g, generation, "a stale generation hit");
                    assert!(*start <= now && now < *until, "a hit outside its window");
                }
            }
            Op::Remove { k } => {
                if cache.remove(key(k)) {
                    assert!(model.contains_key(&k), "removed a key never inserted");
                }
                model.remove(&k);
            }
            Op::Tick { secs } => now += u64::from(secs),
            Op::Reload => generation = generation.wrapping_add(1),
        }
        let s = cache.stats();
        assert!(s.entries as usize <= cache.capacity(), "{s:?}");
        assert!(
            s.bytes as usize <= config.max_bytes,
            "{s:?} over {} bytes",
            config.max_bytes
        );
        assert_eq!(
            s.entries,
            s.inserts - s.evictions - s.expirations - s.replaced - s.removed,
            "counters disagree: {s:?}"
        );
    }
});
