//! The strict JSON reader against serde_json: the same verdict on any bytes, except where jwtd is stricter
//! by design (duplicate members, nesting past the cap). Whatever jwtd accepts, serde_json accepts: numbers
//! out of f64's range and nesting past serde_json's limit are refused by both (issue 11, item 5).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = jwtd::json::validate(data, 32, "doc");
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    match (&ours, &theirs) {
        (Ok(()), Err(e)) => {
            panic!("jwtd accepts what serde_json rejects ({e})")
        }
        (Err(e), Ok(_)) if !matches!(e.code(), "duplicate_member" | "too_deep") => {
            panic!("jwtd rejects what serde_json accepts ({e})")
        }
        _ => {}
    }
});
