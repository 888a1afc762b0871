//! Subcommands. Each returns the process exit code, or a usage / key-loading message (exit 2).

#[cfg(feature = "bench")]
mod bench;
mod demo;
mod keygen;
mod remote;
mod revoke;
mod serve;
mod sessions;
mod sign;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jwtd::error::KeyError;
use jwtd::keys::SourceOptions;
pub(crate) use jwtd::server::unix_now;
use jwtd::{Alg, KeySet, Limits, Policy};

#[derive(Parser, Debug)]
#[command(
    name = "jwtd",
    version,
    about = "A strict, fast JWT verifier",
    after_help = "Start here: `jwtd serve --dev` runs the daemon on ./jwtd.sock with generated development keys \
                  and prints a token and the commands to verify it."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify TOKEN, or every line of standard input: one `OK <claims>` / `ERR <code> <message>` line each.
    #[command(
        after_help = "Exit status: 0 when every token verified, 1 when any was rejected, 2 on a usage or \
                      key-loading error."
    )]
    Verify(Box<verify::VerifyArgs>),
    /// Sign claims with a private JWK and print the compact token.
    Sign(sign::SignArgs),
    /// Generate a key: prints the private JWK, then the public JWKS (one line each).
    Keygen(keygen::KeygenArgs),
    /// Run the verifier on an embedded, generated key set and sample tokens (valid and attacks).
    Demo(demo::DemoArgs),
    /// Revoke tokens in a running daemon (by jti, subject or whole token), lift revocations, list them.
    Revoke(revoke::RevokeArgs),
    /// Benchmark a daemon: generated keys and token corpus, closed or open loop, every reply checked.
    #[cfg(feature = "bench")]
    Bench(Box<bench::BenchArgs>),
    /// Serve verification on a Unix socket (line protocol and HTTP/1.1; see docs/PROTOCOL.md).
    Serve(Box<serve::ServeArgs>),
}

/// What a command failed with: a message of the CLI's own, or a library error (its `Display` is the message).
pub(crate) type Failure = Box<dyn std::error::Error + Send + Sync>;

pub(crate) fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Verify(a) => Ok(verify::run(*a)?),
        Command::Sign(a) => Ok(sign::run(a)?),
        Command::Keygen(a) => Ok(keygen::run(a)?),
        Command::Demo(a) => Ok(demo::run(a)?),
        Command::Serve(a) => serve::run(*a),
        Command::Revoke(a) => Ok(revoke::run(a)?),
        #[cfg(feature = "bench")]
        Command::Bench(a) => Ok(bench::run(*a)?),
    }
}

/// Key sources and the claims policy, shared by `verify` (and later `serve`).
#[derive(Args, Debug, Clone)]
pub(crate) struct PolicyArgs {
    /// `serve --issuer-key`: the issuing key's public half is added to the keys, so none need be given.
    #[arg(skip)]
    pub issuing_key: bool,
    /// A JWK, JWKS or PEM file of verification keys (repeatable).
    #[arg(long = "keys", value_name = "FILE")]
    pub keys: Vec<PathBuf>,
    /// A file whose bytes are an HMAC secret (repeatable; needs --alg HS256/HS384/HS512).
    #[arg(long = "secret", value_name = "FILE")]
    pub secrets: Vec<PathBuf>,
    /// The algorithm for keys that carry none (JWKS keys without alg, RSA PEM keys, secrets).
    #[arg(long, value_name = "ALG")]
    pub alg: Option<Alg>,
    /// The kid given to PEM keys and secrets, which cannot carry one.
    #[arg(long, value_name = "KID")]
    pub kid: Option<String>,
    /// Accepted issuer (repeatable). Without any, iss is not checked.
    #[arg(long = "iss", value_name = "ISS")]
    pub issuers: Vec<String>,
    /// Accepted audience (repeatable). Without any, tokens that carry aud are rejected.
    #[arg(long = "aud", value_name = "AUD")]
    pub audiences: Vec<String>,
    /// Clock skew tolerated on exp, nbf and iat, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=jwtd::revocation::MAX_LEEWAY_SECS))]
    pub leeway: u64,
    /// Maximum token age from iat, in seconds.
    #[arg(long, value_name = "SECS")]
    pub max_age: Option<u64>,
    /// Accept tokens without exp.
    #[arg(long)]
    pub allow_no_exp: bool,
    /// Require a sub claim.
    #[arg(long)]
    pub require_sub: bool,
    /// A claim that must be present (repeatable).
    #[arg(long = "require", value_name = "CLAIM")]
    pub required: Vec<String>,
    /// Accepted typ header value (repeatable; default JWT and at+jwt).
    #[arg(long = "typ", value_name = "TYP")]
    pub types: Vec<String>,
    /// Reject tokens without a typ header.
    #[arg(long)]
    pub require_typ: bool,
    /// Maximum token size in bytes.
    #[arg(long, default_value_t = 16 * 1024, value_name = "BYTES")]
    pub max_token_len: usize,
    #[command(flatten)]
    pub remote: remote::RemoteArgs,
    /// Maximum JSON nesting depth in header and claims (1 to 128).
    #[arg(long, default_value_t = 32, value_name = "LEVELS",
          value_parser = parse_json_depth)]
    pub max_json_depth: usize,
}

impl PolicyArgs {
    /// Loads every key source; refused keys are reported on stderr, an unusable source is an error.
    pub(crate) fn key_set(&self) -> Result<KeySet, String> {
        let mut set = KeySet::new();
        let opts = SourceOptions {
            default_alg: self.alg,
            kid: self.kid.clone(),
        };
        let mut reports = Vec::new();
        for path in &self.keys {
            reports.push((
                path,
                set.add_file(path, &opts).map_err(|e| match e {
                    KeyError::NotKeys => {
                        format!(
                            "{}: not a JWK, JWKS or PEM document (for a raw HMAC secret use --secret)",
                            path.display()
                        )
                    }
                    e => e.to_string(),
                })?,
            ));
        }
        for path in &self.secrets {
            let bytes = jwtd::keys::file::read_regular(path)?;
            let r = set
                .add_secret(&bytes, &opts)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            reports.push((path, r));
        }
        for (path, r) in &reports {
            for e in &r.refused {
                eprintln!("jwtd: warning: {}: {e} (skipped)", path.display());
            }
            for w in &r.warnings {
                eprintln!("jwtd: warning: {}: {w}", path.display());
            }
        }
        if set.is_empty() && !self.remote.any() && !self.issuing_key {
            let refused: Vec<String> = reports
                .iter()
                .flat_map(|(_, r)| r.refused.iter().map(ToString::to_string))
                .collect();
            return Err(if refused.is_empty() {
                "no verification key: give --keys FILE (JWK, JWKS or PEM) or --secret FILE; for a daemon \
                 with generated development keys, `jwtd serve --dev`; for several issuers, --config FILE"
                    .to_string()
            } else if self.alg.is_none() && refused.iter().any(|e| e.contains("has no alg")) {
                "no usable verification key: the keys carry no \"alg\" (common in identity providers' JWKS): \
                 say which algorithm they are for with --alg, e.g. --alg RS256"
                    .to_string()
            } else {
                "no usable verification key: every key given was refused (see the warnings above)"
                    .to_string()
            });
        }
        Ok(set)
    }

    pub(crate) fn policy(&self) -> Policy {
        let d = Policy::default();
        Policy {
            leeway: self.leeway,
            require_exp: !self.allow_no_exp,
            max_age: self.max_age,
            issuers: match (&self.remote.oidc_issuer, self.issuers.is_empty()) {
                (Some(oidc), true) => Some(vec![oidc.clone()]),
                (_, true) => None,
                (_, false) => Some(self.issuers.clone()),
            },
            audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            route_audiences: Vec::new(),
            require_sub: self.require_sub,
            required_claims: self.required.clone(),
            types: if self.types.is_empty() {
                d.types
            } else {
                self.types.clone()
            },
            allow_missing_typ: !self.require_typ,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_token_len: self.max_token_len,
            max_json_depth: self.max_json_depth,
            ..Limits::default()
        }
    }
}

/// The reply line for one verification, in the format the daemon uses too.
pub(crate) fn reply_line(result: Result<String, jwtd::Error>) -> String {
    match result {
        Ok(body) => format!("OK {body}"),
        Err(e) => format!("ERR {} {e}", e.code()),
    }
}

/// `--max-json-depth`: 1 to [`jwtd::json::MAX_DEPTH_CEILING`].
fn parse_json_depth(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(d) if (1..=jwtd::json::MAX_DEPTH_CEILING).contains(&d) => Ok(d),
        _ => Err(format!(
            "{s:?}: the nesting depth is a number from 1 to {}",
            jwtd::json::MAX_DEPTH_CEILING
        )),
    }
}
