//! `jwtd revoke`: revocation commands sent to a running daemon over its socket (admins only: the daemon
//! checks this process's uid). Prints the daemon's JSON answer; exits 0 on success, 1 when the daemon
//! refused, 2 when it could not be reached.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["jti", "sub", "token", "list"])))]
pub(super) struct RevokeArgs {
    /// The daemon's socket.
    #[arg(long, value_name = "PATH", default_value = "jwtd.sock")]
    socket: PathBuf,
    /// Revoke the token with this jti.
    #[arg(long, value_name = "JTI")]
    jti: Option<String>,
    /// With --jti: when the rule can go (the token's exp, Unix seconds); 0 keeps it until lifted.
    #[arg(long, value_name = "UNIX", default_value_t = 0, requires = "jti")]
    exp: u64,
    /// Revoke every token of this subject issued before --before ("log out everywhere").
    #[arg(long, value_name = "SUB")]
    sub: Option<String>,
    /// With --sub: the cutoff, Unix seconds (tokens with iat before it are revoked).
    #[arg(long, value_name = "UNIX", requires = "sub")]
    before: Option<u64>,
    /// With --sub: when the rule ends, Unix seconds (default: kept until lifted).
    #[arg(long, value_name = "UNIX", requires = "sub")]
    until: Option<u64>,
    /// Revoke one whole token; `-` reads it from standard input (keeps it out of `ps` and shell history).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Lift the rule for --jti, --sub or --token instead.
    #[arg(long)]
    undo: bool,
    /// List the rules (at most N).
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "100")]
    list: Option<usize>,
    /// Seconds to wait for the daemon's answer before giving up (exit 2).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
}

fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

pub(super) fn run(args: RevokeArgs) -> Result<ExitCode, String> {
    let token = match args.token.as_deref() {
        Some("-") => {
            let mut t = String::new();
            std::io::stdin()
                .read_to_string(&mut t)
                .map_err(|e| format!("standard input: {e}"))?;
            Some(t.trim().to_string())
        }
        other => other.map(str::to_string),
    };
    let verb = if args.undo { "UNREVOKE" } else { "REVOKE" };
    let line = match (&args.jti, &args.sub, &token, args.list) {
        (Some(j), ..) if args.undo => format!("{verb} JTI {}", quoted(j)),
        (Some(j), ..) => format!("{verb} JTI {} {}", quoted(j), args.exp),
        (_, Some(s), ..) if args.undo => format!("{verb} SUB {}", quoted(s)),
        (_, Some(s), ..) => format!(
            "{verb} SUB {} {} {}",
            quoted(s),
            args.before
                .ok_or("--sub needs --before UNIX: tokens issued before it are revoked")?,
            args.until.unwrap_or(0)
        ),
        (_, _, Some(t), _) => format!("{verb} TOKEN {t}"),
        (_, _, _, Some(n)) => format!("REVOCATIONS LIST {n}"),
        _ => return Err("give one of --jti, --sub, --token or --list".into()),
    };
    let timeout = std::time::Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| format!("--timeout {}: a number of seconds above 0", args.timeout))?;
    let mut client = jwtd::client::Client::connect(&args.socket)
        .map_err(|e| format!("{}: {e}", args.socket.display()))?;
    client
        .set_timeout(Some(timeout))
        .map_err(|e| format!("{}: {e}", args.socket.display()))?;
    let reply = client
        .request(&line)
        .map_err(|e| format!("{}: {e}", args.socket.display()))?;
    println!("{reply}");
    Ok(if reply.starts_with("OK") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
