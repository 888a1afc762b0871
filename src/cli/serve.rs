//! `jwtd serve`: the daemon on a Unix socket, configured by the same key and policy flags as `verify`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use jwtd::Verifier;
use jwtd::server::{self, Shared, stats::Stats};
use tokio_util::sync::CancellationToken;

use super::PolicyArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Unix socket path to listen on.
    #[arg(long, default_value = "jwtd.sock", value_name = "PATH")]
    socket: PathBuf,
    /// Socket file mode, octal.
    #[arg(long, default_value = "660", value_parser = parse_mode, value_name = "MODE")]
    socket_mode: u32,
    /// Longest request line, in bytes (longer lines get `ERR too_large` and the connection is closed).
    #[arg(long, default_value_t = 32 * 1024, value_name = "BYTES")]
    max_line: usize,
    /// Concurrent connections; more are answered `ERR too_many_connections` and closed.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    max_connections: usize,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Copy a claim into a header of HTTP `/verify` answers (repeatable; default X-Jwt-Sub=sub).
    #[arg(long = "claim-header", value_name = "HEADER=CLAIM", value_parser = server::http::parse_claim_header)]
    claim_headers: Vec<(hyper::header::HeaderName, String)>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode like 660"))
}

pub fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let verifier = Verifier::new(
        args.policy.key_set()?,
        args.policy.policy(),
        args.policy.limits(),
    );
    let config = server::Config {
        max_line: args.max_line,
        max_connections: args.max_connections,
    };
    let shared = Arc::new(Shared {
        verifier,
        stats: Stats::default(),
        max_line: config.max_line,
        claim_headers: if args.claim_headers.is_empty() {
            vec![(
                hyper::header::HeaderName::from_static("x-jwt-sub"),
                "sub".into(),
            )]
        } else {
            args.claim_headers
        },
    });
    let (std_listener, socket_file) = server::socket::bind(&args.socket, args.socket_mode)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = rt
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = rt.block_on(async {
        let listener = tokio::net::UnixListener::from_std(std_listener)
            .map_err(|e| format!("{}: {e}", args.socket.display()))?;
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone())?;
        eprintln!(
            "jwtd: serving on {} ({} keys); VERIFY <token> | PING | STATS, one per line",
            args.socket.display(),
            shared.verifier.keys().len()
        );
        server::run(
            listener,
            shared.clone(),
            &config,
            shutdown,
            Duration::from_secs(5),
        )
        .await;
        eprintln!("jwtd: shut down");
        Ok::<(), String>(())
    });
    drop(socket_file);
    result.map(|()| ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM cancels `shutdown`.
fn spawn_signal_handler(shutdown: CancellationToken) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("signal handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("signal handler: {e}"))?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        shutdown.cancel();
    });
    Ok(())
}
