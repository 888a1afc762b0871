//! Arbitrary stream entries as Redis would hand them to a daemon of the fleet (anyone who can write to the
//! stream chooses them): decoding never panics; what it accepts encodes back to fields that decode to the
//! same operation; and the store's bookkeeping admits it at most once.
#![no_main]

use jwtd::fleet::wire::{decode, encode};
use jwtd::revocation::Revocations;
use jwtd::revocation::book::{Book, Incoming};
use jwtd::revocation::log::{Prov, encode_entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Fields separated by 0xff bytes, taken in pairs: name, value.
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let fields: Vec<(Vec<u8>, Vec<u8>)> = parts
        .chunks(2)
        .map(|p| (p[0].to_vec(), p.get(1).copied().unwrap_or_default().to_vec()))
        .collect();
    let Ok(p) = decode(&fields) else {
        return;
    };
    let again: Vec<(Vec<u8>, Vec<u8>)> = encode(&p)
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v))
        .collect();
    assert_eq!(decode(&again).as_ref(), Ok(&p), "what is accepted round-trips");
    // Every accepted entry can be logged, and is admitted once.
    let set = Revocations::new();
    let (mut book, _) = Book::replay(Vec::new(), &set, [0; 16], true, 0);
    let inc = Incoming {
        prov: Prov {
            origin: p.origin.0,
            seq: p.seq,
            at_ms: p.at_ms,
        },
        op: p.op,
        restated: false,
    };
    if let Some(e) = book.admit(&inc, 1) {
        let mut buf = Vec::new();
        encode_entry(&e, &mut buf).expect("an accepted entry fits in a log record");
        assert!(book.admit(&inc, 1).is_none(), "admitted twice");
    }
});
