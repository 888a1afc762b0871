//! Arbitrary text as the TOML configuration, with key files that exist (`keys/hs.jwks`, `keys/es.jwks`,
//! `keys/secret.bin` under a scratch directory). Must give a configuration or an error naming what is
//! wrong, never panic; an accepted configuration must be usable (issuers with keys, HTTP options valid).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn base() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("jwtd-fuzz-config-{}", std::process::id()));
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).expect("scratch dir");
        std::fs::write(
            keys.join("hs.jwks"),
            include_str!("../../tests/data/keys/HS256.public.jwks"),
        )
        .expect("key file");
        std::fs::write(
            keys.join("es.jwks"),
            include_str!("../../tests/data/keys/ES256.public.jwks"),
        )
        .expect("key file");
        std::fs::write(keys.join("secret.bin"), [7u8; 48]).expect("secret file");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match jwtd::config::parse(text, base(), "fuzz.toml") {
        Ok(loaded) => {
            assert!(
                loaded.issuers.keys_loaded() > 0,
                "a configuration without keys was accepted"
            );
            loaded
                .config
                .http_options("fuzz.toml")
                .expect("accepted HTTP options are valid");
        }
        Err(e) => assert!(
            e.to_string().starts_with("fuzz.toml"),
            "error does not name the file: {e}"
        ),
    }
});
