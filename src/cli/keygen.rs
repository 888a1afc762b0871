//! `jwtd keygen`: a fresh key as a private JWK and a public JWKS.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use jwtd::Alg;
use jwtd::crypto::sign::SigningKey;
use jwtd::keys::private::{private_jwk, public_jwk};
use serde_json::json;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Algorithm the key is bound to.
    #[arg(long)]
    alg: Alg,
    /// Key id.
    #[arg(long)]
    kid: String,
    /// Write the private JWK here (mode 0600) instead of standard output.
    #[arg(long, value_name = "FILE")]
    private_out: Option<PathBuf>,
    /// Write the public JWKS here instead of standard output.
    #[arg(long, value_name = "FILE")]
    public_out: Option<PathBuf>,
}

pub fn run(args: KeygenArgs) -> Result<ExitCode, String> {
    let (_, private) = SigningKey::generate(args.alg)?;
    let private_json = private_jwk(args.alg, Some(&args.kid), &private).to_string();
    let public_json =
        json!({ "keys": [public_jwk(args.alg, Some(&args.kid), &private)] }).to_string();
    if args.alg.family() == jwtd::alg::Family::Hmac {
        eprintln!(
            "jwtd: note: an HMAC key is a shared secret; its \"public\" JWKS holds the secret too"
        );
    }
    match &args.private_out {
        Some(path) => write_private(path, &private_json)?,
        None => println!("{private_json}"),
    }
    match &args.public_out {
        Some(path) => std::fs::write(path, format!("{public_json}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?,
        None => println!("{public_json}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{text}").map_err(|e| format!("{}: {e}", path.display()))
}
