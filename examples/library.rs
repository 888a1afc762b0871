//! README.md's library example, runnable: `cargo run --example library -- JWKS_FILE TOKEN`. The README shows
//! the lines between the markers; tests/doc_examples.rs checks that it does, and runs this program on the key
//! and token of the README's CLI example.

use std::time::{SystemTime, UNIX_EPOCH};

use jwtd::{KeySet, Limits, Policy, Verifier, keys::SourceOptions};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(jwks_file), Some(token)) = (args.next(), args.next()) else {
        return Err("usage: library JWKS_FILE TOKEN".into());
    };
    // README begin
    let mut keys = KeySet::new();
    keys.add_file(jwks_file.as_ref(), &SourceOptions::default())?;
    let policy = Policy {
        audiences: Some(vec!["api".into()]),
        ..Policy::default()
    };
    let verifier = Verifier::new(keys, policy, Limits::default());
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let verified = verifier.verify(token.as_bytes(), now)?; // Err(e): e.code() is the stable code
    println!(
        "{} {}",
        verified.sub().unwrap_or("-"),
        verified.claims_json()
    );
    // README end
    Ok(())
}
