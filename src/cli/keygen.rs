//! `jwtd keygen`: a fresh key as a private JWK and a public JWKS.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use jwtd::Alg;
use jwtd::crypto::sign::SigningKey;
use jwtd::keys::private::{private_jwk, public_jwk};
use serde_json::json;

#[derive(Args, Debug)]
pub(super) struct KeygenArgs {
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

pub(super) fn run(args: KeygenArgs) -> Result<ExitCode, String> {
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
    // An HMAC key's "public" JWKS is the secret itself: written like one.
    let public_mode = if args.alg.family() == jwtd::alg::Family::Hmac {
        0o600
    } else {
        0o644
    };
    match &args.public_out {
        Some(path) => write_file(path, &public_json, public_mode)?,
        None => println!("{public_json}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a secret to `path`, mode 0600 (see [`write_file`]).
pub(super) fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    write_file(path, text, 0o600)
}

/// Writes `text` and a newline to `path` with `mode`, atomically: a new file created next to it (`O_EXCL`,
/// `O_NOFOLLOW`, the mode from the start), fsync'd, renamed over `path`. An existing file's wider mode is
/// never kept, and nothing is ever written through a symbolic link: a `path` that is one is refused.
fn write_file(path: &std::path::Path, text: &str, mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    if path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(format!(
            "{shown} is a symbolic link: refusing to write a key through it (remove it or name the file itself)"
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{shown}: not a file name"))?
        .to_string_lossy();
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", jwtd::crypto::hex(&nonce)));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        writeln!(f, "{text}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{shown}: {e}")
    })
}
