//! Arbitrary bytes as a key document: JWK, JWKS, PEM (public and private), and the private-JWK reader.
#![no_main]

use jwtd::keys::SourceOptions;
use jwtd::{Alg, KeySet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for default_alg in [None, Some(Alg::RS256), Some(Alg::HS256)] {
        let opts = SourceOptions {
            default_alg,
            kid: Some("fuzz".into()),
        };
        let mut keys = KeySet::new();
        let _ = keys.add_document(data, &opts);
        let _ = keys.add_secret(data, &opts);
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = keys.add_pem(text, &opts);
        }
        // Whatever loaded must answer selection without panicking.
        for alg in Alg::ALL {
            let _ = keys.select(alg, Some("fuzz"));
            let _ = keys.select(alg, None);
        }
    }
    let _ = jwtd::keys::private::signing_key_from_file(data, None);
});
