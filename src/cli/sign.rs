//! `jwtd sign`: a compact token from claims and a private JWK (tests, demos, benchmarks).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use jwtd::Alg;
use jwtd::keys::private::{PrivateKeyError, signing_key_from_file};
use serde_json::{Map, Value, json};

#[derive(Args, Debug)]
pub(super) struct SignArgs {
    /// The private key: a JWK (as printed by `jwtd keygen`) or a PKCS#8 PEM file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The claims, a JSON object, signed as written (whitespace removed).
    #[arg(long, value_name = "JSON")]
    claims: String,
    /// Algorithm, when the JWK has no alg.
    #[arg(long)]
    alg: Option<Alg>,
    /// kid header (default: the JWK's kid).
    #[arg(long)]
    kid: Option<String>,
    /// typ header.
    #[arg(long, default_value = "JWT")]
    typ: String,
}

pub(super) fn run(args: SignArgs) -> Result<ExitCode, String> {
    let bytes = jwtd::keys::file::read_regular(&args.key)?;
    let (key, jwk_kid) = signing_key_from_file(&bytes, args.alg).map_err(|e| match e {
        PrivateKeyError::NeedsAlg(_) => format!("{}: {e} (--alg)", args.key.display()),
        e => format!("{}: {e}", args.key.display()),
    })?;
    let claims: Value =
        serde_json::from_str(&args.claims).map_err(|e| format!("--claims is not JSON: {e}"))?;
    if !claims.is_object() {
        return Err("--claims must be a JSON object".into());
    }
    // Refuse what the verifier would refuse, rather than sign it.
    jwtd::json::validate(args.claims.as_bytes(), 32, "claims")
        .map_err(|e| format!("--claims: {e}"))?;
    let mut header = Map::new();
    header.insert("alg".into(), json!(key.alg().name()));
    if !args.typ.is_empty() {
        header.insert("typ".into(), json!(args.typ));
    }
    if let Some(kid) = args.kid.or(jwk_kid) {
        header.insert("kid".into(), json!(kid));
    }
    let header = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    // Sign the claims as written (member order kept), minus insignificant whitespace.
    let payload = jwtd::json::compact(&args.claims).into_bytes();
    println!("{}", key.sign_compact(&header, &payload)?);
    Ok(ExitCode::SUCCESS)
}
