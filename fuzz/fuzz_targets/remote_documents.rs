//! What an identity provider sends, as fetched: the first byte picks the discovery document or the JWKS,
//! the rest is the body. Never a panic. A discovery document the strict reader accepts must be valid JSON
//! to serde_json too, with the same `issuer` (the configured one) and `jwks_uri`; an accepted JWKS has at
//! least one key, each bound to one algorithm, and selecting any of them by kid cannot panic.
#![no_main]

use jwtd::keys::SourceOptions;
use jwtd::remote::discovery;
use jwtd::remote::source::load_jwks;
use jwtd::Alg;
use libfuzzer_sys::fuzz_target;

const ISS: &str = "https://idp.example";

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        if let Ok(uri) = discovery::jwks_uri(body, ISS) {
            let v: serde_json::Value =
                serde_json::from_slice(body).expect("serde_json accepts what the strict reader accepted");
            assert_eq!(v["issuer"].as_str(), Some(ISS));
            assert_eq!(v["jwks_uri"].as_str(), Some(uri.as_str()));
        }
    } else {
        let options = SourceOptions {
            default_alg: (which & 2 != 0).then_some(Alg::RS256),
            kid: None,
        };
        let algorithms = (which & 4 != 0).then(|| vec![Alg::ES256, Alg::RS256]);
        if let Ok((keys, fingerprints, _)) = load_jwks(body, &options, algorithms.as_deref()) {
            assert!(!keys.is_empty() && !fingerprints.is_empty());
            for k in keys.keys() {
                if let Some(a) = &algorithms {
                    assert!(a.contains(&k.alg()));
                }
                let _ = keys.select(k.alg(), k.kid.as_deref());
            }
        }
    }
});
