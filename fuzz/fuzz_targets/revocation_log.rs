//! Arbitrary bytes as a revocation log file (either format): replay never panics; what it accepts in the
//! current format re-encodes to exactly the bytes it accepted; a torn tail is only ever at the end; and the
//! store's in-memory set can apply it.
#![no_main]

use jwtd::revocation::Revocations;
use jwtd::revocation::log::{MAGIC, MAGIC_V1, Op, encode_record, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get the magic, so the fuzzer spends its time on records.
    let mut bytes = Vec::with_capacity(data.len() + 8);
    if data.first().is_some_and(|b| b & 1 == 0) {
        bytes.extend_from_slice(if data[0] & 2 == 0 { MAGIC } else { MAGIC_V1 });
        bytes.extend_from_slice(&data[1..]);
    } else {
        bytes.extend_from_slice(data);
    }
    let Ok(replay) = parse(&bytes, std::path::Path::new("fuzz")) else {
        return;
    };
    let valid = replay.valid_len as usize;
    assert!(valid <= bytes.len());
    assert_eq!(
        replay.torn_at.is_some(),
        valid < bytes.len() && valid >= MAGIC.len() || (valid == 0 && !bytes.is_empty())
    );
    if valid >= MAGIC.len() && !replay.v1 {
        let mut again = MAGIC.to_vec();
        for r in &replay.records {
            encode_record(r, &mut again).expect("what replay accepts can be written");
        }
        assert_eq!(
            again,
            bytes[..valid],
            "accepted records re-encode to the same bytes"
        );
    }
    let set = Revocations::new();
    for e in replay.entries() {
        match e.op {
            Op::Revoke(rule) => {
                set.insert(rule);
            }
            Op::Unrevoke(target) => {
                set.remove(&target);
            }
            // A session record names its family; its value is the sessions module's (session_requests).
            Op::Session(s) => assert!(matches!(s.target, jwtd::revocation::Target::Sid(_))),
        }
    }
    let _ = set.rules();
});
