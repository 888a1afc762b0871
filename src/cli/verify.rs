//! `jwtd verify`: one token from the command line, or one per line of standard input.

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use clap::Args;
use jwtd::{Error, Verifier};

use super::{PolicyArgs, reply_line, unix_now};

#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Verification time as Unix seconds (default: now).
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Verify the JWS layer only; the OK line carries the payload as base64url.
    #[arg(long)]
    jws: bool,
    /// The token; without it, tokens are read from standard input, one per line.
    token: Option<String>,
}

pub(super) fn run(args: VerifyArgs) -> Result<ExitCode, String> {
    let mut keys = args.policy.key_set()?;
    if let Some(fetched) = fetch_remote(&args.policy)? {
        keys.extend(&fetched);
    }
    let verifier = Verifier::new(keys, args.policy.policy(), args.policy.limits());
    let now = args.now.unwrap_or_else(unix_now);
    let check = |token: &[u8]| -> Result<String, Error> {
        if args.jws {
            verifier
                .verify_jws(token)
                .map(|v| jwtd::jws::b64::encode(&v.payload))
        } else {
            verifier
                .verify(token, now)
                .map(|v| v.claims_json().to_owned())
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut all_ok = true;
    let mut emit = |result: Result<String, Error>| -> Result<(), String> {
        all_ok &= result.is_ok();
        writeln!(out, "{}", reply_line(result)).map_err(|e| format!("writing output: {e}"))
    };
    match &args.token {
        Some(token) => emit(check(token.as_bytes()))?,
        None => {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            // Read at most one byte past the cap per line, so a huge line costs bounded memory.
            let cap = verifier.limits().max_token_len;
            let mut line = Vec::new();
            loop {
                line.clear();
                match read_capped_line(&mut input, &mut line, cap + 2) {
                    Ok(LineRead::Eof) => break,
                    Ok(LineRead::Line) => {
                        let token = line.strip_suffix(b"\r").unwrap_or(&line);
                        emit(check(token))?;
                    }
                    Ok(LineRead::TooLong) => emit(Err(Error::TooLarge(format!(
                        "token is over the {cap}-byte limit"
                    ))))?,
                    Err(e) => return Err(format!("reading standard input: {e}")),
                }
            }
        }
    }
    out.flush().map_err(|e| format!("writing output: {e}"))?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--jwks-url` / `--oidc-issuer`: fetches the provider's keys once.
fn fetch_remote(policy: &PolicyArgs) -> Result<Option<jwtd::KeySet>, String> {
    let iss = policy.issuers.first().map(String::as_str);
    let Some(config) = policy.remote.source(iss, policy.alg)? else {
        return Ok(None);
    };
    let client = policy.remote.client(None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let source = jwtd::remote::source::Source::new(config);
    source.begin();
    let (_, error) = rt.block_on(source.fetch(&client, None));
    if let Some(e) = error {
        return Err(format!("cannot fetch the keys: {e}"));
    }
    let keys = source.lock().keys.clone().unwrap_or_default();
    Ok(Some((*keys).clone()))
}

enum LineRead {
    Eof,
    Line,
    TooLong,
}

/// Reads one `\n`-terminated line (without the `\n`) into `buf`, keeping at most `cap` bytes; the rest of an
/// over-long line is consumed and dropped.
fn read_capped_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<LineRead> {
    let mut too_long = false;
    let mut saw_any = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(match (saw_any, too_long) {
                (false, _) => LineRead::Eof,
                (true, true) => LineRead::TooLong,
                (true, false) => LineRead::Line,
            });
        }
        saw_any = true;
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > cap {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        input.consume(take + usize::from(done));
        if done {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}
