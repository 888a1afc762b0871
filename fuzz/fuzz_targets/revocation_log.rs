//! Arbitrary bytes as a revocation log file: replay never panics; what it accepts re-encodes to exactly the
//! bytes it accepted; a torn tail is only ever at the end; and the store's in-memory set can apply it.
#![no_main]

use jwtd::revocation::Revocations;
use jwtd::revocation::log::{MAGIC, Op, encode, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get the magic, so the fuzzer spends its time on records.
    let mut bytes = Vec::with_capacity(data.len() + 8);
    if data.first().is_some_and(|b| b & 1 == 0) {
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&data[1..]);
    } else {
        bytes.extend_from_slice(data);
    }
    let Ok(replay) = parse(&bytes, "fuzz") else {
        return;
    };
    let valid = replay.valid_len as usize;
    assert!(valid <= bytes.len());
    assert_eq!(
        replay.torn_at.is_some(),
        valid < bytes.len() && valid >= MAGIC.len() || (valid == 0 && !bytes.is_empty())
    );
    if valid >= MAGIC.len() {
        let mut again = MAGIC.to_vec();
        for op in &replay.ops {
            encode(op, &mut again);
        }
        assert_eq!(
            again,
            bytes[..valid],
            "accepted records re-encode to the same bytes"
        );
    }
    let set = Revocations::new();
    for op in replay.ops {
        match op {
            Op::Revoke(rule) => {
                set.insert(rule);
            }
            Op::Unrevoke(target) => {
                set.remove(&target);
            }
        }
    }
    let _ = set.rules();
});
