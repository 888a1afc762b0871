//! The flags of `jwtd bench`.

use std::path::PathBuf;

use clap::Args;
use jwtd::loadgen::tokens::Mix;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Distinct tokens in the corpus.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub(super) tokens: usize,
    /// Algorithm mix, as weights.
    #[arg(
        long,
        default_value = "ES256=40,RS256=30,EdDSA=10,HS256=20",
        value_name = "MIX"
    )]
    pub(super) mix: Mix,
    /// Approximate size of each token's claims, in bytes.
    #[arg(long, default_value_t = 300, value_name = "BYTES")]
    pub(super) claims_bytes: usize,
    /// Popularity skew: Zipf exponent over the tokens (0 = uniform).
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub(super) zipf: f64,
    /// Fraction of invalid tokens (tampered, expired, wrong audience, in equal parts).
    #[arg(long, default_value_t = 0.02, value_name = "FRACTION")]
    pub(super) invalid: f64,
    /// Fraction of tokens revoked before the run.
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    pub(super) revoked: f64,
    /// Revocations issued during each measured run, spread evenly over it (valid tokens spread over the
    /// popularity ranks). Requests racing a revocation may get either answer; any sent after its
    /// acknowledgement must be refused.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(super) revoke_during: usize,
    /// Connections.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub(super) connections: usize,
    /// Requests in flight per connection (closed loop).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub(super) depth: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub(super) duration: u64,
    /// Stop each closed-loop run after this many requests instead (if sooner).
    #[arg(long, value_name = "N")]
    pub(super) requests: Option<u64>,
    /// Warm-up seconds before measuring (replies checked, figures discarded).
    #[arg(long, default_value_t = 3, value_name = "SECS")]
    pub(super) warmup: u64,
    /// Seed: the same seed gives the same corpus shape and request order.
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
    /// Open loop at this many requests per second (latency from each request's intended send time).
    #[arg(long, value_name = "PER_SEC", conflicts_with_all = ["sweep_rates", "sweep_connections"])]
    pub(super) rate: Option<f64>,
    /// Sweep: one open-loop run per rate, e.g. 100000,200000,400000.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "RATES",
        conflicts_with = "sweep_connections"
    )]
    pub(super) sweep_rates: Vec<f64>,
    /// Sweep: one closed-loop run per connection count, e.g. 1,4,16,64.
    #[arg(long, value_delimiter = ',', value_name = "COUNTS")]
    pub(super) sweep_connections: Vec<usize>,
    /// Client threads.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(super) client_threads: usize,
    /// The daemon's worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub(super) workers: Option<usize>,
    /// Where the started daemon gets its public keys: `file` (key files), or `remote`: a JWKS URL served by
    /// this process over loopback HTTP with `Cache-Control: max-age=1`, so the daemon refreshes them every
    /// second during the run (fetches are counted in the report). HMAC secrets stay in a file.
    #[arg(long, value_name = "SOURCE", default_value = "file", value_parser = ["file", "remote"], conflicts_with = "socket")]
    pub(super) keys_from: String,
    /// Give the started daemon this many routes (`/api/r0` … , each needing the corpus's scope and
    /// audience: docs/CONFIG.md, "Routes") and send every request as `VERIFY <token> GET
    /// /api/r<N-1>/items/7`, so that each answer is judged by a route: what route evaluation costs [default: 0]
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "socket")]
    pub(super) routes: usize,
    /// An extra flag for the daemon (repeatable), e.g. --serve-arg=--cache-entries=0.
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub(super) serve_args: Vec<String>,
    /// Start a second daemon B, alike but for this extra flag (repeatable), and measure A and B in
    /// alternating slices of --duration seconds (A B, B A, …) for --rounds rounds: the report is B/A per
    /// round, their median and a bootstrap 95 % interval — what the flag costs, with the machine's drift
    /// shared by both sides. E.g. --versus-arg=--fleet-redis=unix:///run/redis.sock
    #[arg(
        long = "versus-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        conflicts_with_all = ["socket", "compare", "sweep_rates", "sweep_connections", "plot"]
    )]
    pub(super) versus_args: Vec<String>,
    /// With --versus-arg: rounds (each one slice of A and one of B).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(super) rounds: usize,
    /// Also measure a peer on the same token sequence: `inprocess` verifies it in this process with
    /// jsonwebtoken, on as many threads as the daemon has workers, and reports jwtd's throughput as a
    /// multiple of the peer's (needs a build with --features bench-peer).
    #[arg(long, value_name = "PEER", value_parser = ["inprocess"], conflicts_with = "socket")]
    pub(super) compare: Option<String>,
    /// Draw the latency percentile curves (and, for a sweep, p99 against throughput) as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub(super) plot: Option<PathBuf>,
    /// Benchmark the daemon already listening on this socket instead of starting one. It must trust the
    /// --signing-key keys, accept --iss/--aud, and (for --revoked > 0) let this uid revoke.
    #[arg(long, value_name = "PATH", requires = "signing_keys", conflicts_with_all = ["workers", "serve_args"])]
    pub(super) socket: Option<PathBuf>,
    /// With --socket: a private key (JWK from `jwtd keygen`, or PKCS#8 PEM) to sign the corpus with
    /// (repeatable; one per algorithm of the mix).
    #[arg(long = "signing-key", value_name = "FILE")]
    pub(super) signing_keys: Vec<PathBuf>,
    /// The issuer the tokens carry (with --socket: one the daemon accepts).
    #[arg(long, default_value = "https://issuer.bench.jwtd", value_name = "ISS")]
    pub(super) iss: String,
    /// The audience the tokens carry (with --socket: one the daemon accepts).
    #[arg(long, default_value = "bench-api", value_name = "AUD")]
    pub(super) aud: String,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(super) json: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    pub(super) quiet: bool,
}
