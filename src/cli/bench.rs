//! `jwtd bench`: generates keys and a labelled token corpus, starts a daemon on a temporary socket, revokes
//! the tokens meant to be revoked, warms up, runs the load (closed loop, open loop at a rate, or a sweep),
//! checks every reply against its token's expected outcome, and reports throughput, latency percentiles,
//! outcomes, the cache hit ratio and CPU time of server and client.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use jwtd::loadgen::live::{Issued, Live};
use jwtd::loadgen::tokens::{self, Mix, Spec};
use jwtd::loadgen::{self, ClosedLoop, OpenLoop, Progress, Report, Requests};

#[derive(Args, Debug)]
pub(super) struct BenchArgs {
    /// Distinct tokens in the corpus.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    tokens: usize,
    /// Algorithm mix, as weights.
    #[arg(
        long,
        default_value = "ES256=40,RS256=30,EdDSA=10,HS256=20",
        value_name = "MIX"
    )]
    mix: Mix,
    /// Approximate size of each token's claims, in bytes.
    #[arg(long, default_value_t = 300, value_name = "BYTES")]
    claims_bytes: usize,
    /// Popularity skew: Zipf exponent over the tokens (0 = uniform).
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    zipf: f64,
    /// Fraction of invalid tokens (tampered, expired, wrong audience, in equal parts).
    #[arg(long, default_value_t = 0.02, value_name = "FRACTION")]
    invalid: f64,
    /// Fraction of tokens revoked before the run.
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    revoked: f64,
    /// Revocations issued during each measured run, spread evenly over it (valid tokens spread over the
    /// popularity ranks). Requests racing a revocation may get either answer; any sent after its
    /// acknowledgement must be refused.
    #[arg(long, default_value_t = 100, value_name = "N")]
    revoke_during: usize,
    /// Connections.
    #[arg(long, default_value_t = 16, value_name = "N")]
    connections: usize,
    /// Requests in flight per connection (closed loop).
    #[arg(long, default_value_t = 16, value_name = "N")]
    depth: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    duration: u64,
    /// Stop each closed-loop run after this many requests instead (if sooner).
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// Warm-up seconds before measuring (replies checked, figures discarded).
    #[arg(long, default_value_t = 3, value_name = "SECS")]
    warmup: u64,
    /// Seed: the same seed gives the same corpus shape and request order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Open loop at this many requests per second (latency from each request's intended send time).
    #[arg(long, value_name = "PER_SEC", conflicts_with_all = ["sweep_rates", "sweep_connections"])]
    rate: Option<f64>,
    /// Sweep: one open-loop run per rate, e.g. 100000,200000,400000.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "RATES",
        conflicts_with = "sweep_connections"
    )]
    sweep_rates: Vec<f64>,
    /// Sweep: one closed-loop run per connection count, e.g. 1,4,16,64.
    #[arg(long, value_delimiter = ',', value_name = "COUNTS")]
    sweep_connections: Vec<usize>,
    /// Client threads.
    #[arg(long, default_value_t = 1, value_name = "N")]
    client_threads: usize,
    /// The daemon's worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// An extra flag for the daemon (repeatable), e.g. --serve-arg=--cache-entries=0.
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    serve_args: Vec<String>,
    /// Also measure a peer on the same token sequence: `inprocess` verifies it in this process with
    /// jsonwebtoken, on as many threads as the daemon has workers, and reports jwtd's throughput over its
    /// (needs a build with --features bench-peer).
    #[arg(long, value_name = "PEER", value_parser = ["inprocess"], conflicts_with = "socket")]
    compare: Option<String>,
    /// Draw the latency percentile curves (and, for a sweep, p99 against throughput) as SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Benchmark the daemon already listening on this socket instead of starting one. It must trust the
    /// --signing-key keys, accept --iss/--aud, and (for --revoked > 0) let this uid revoke.
    #[arg(long, value_name = "PATH", requires = "signing_keys", conflicts_with_all = ["workers", "serve_args"])]
    socket: Option<PathBuf>,
    /// With --socket: a private key (JWK from `jwtd keygen`, or PKCS#8 PEM) to sign the corpus with
    /// (repeatable; one per algorithm of the mix).
    #[arg(long = "signing-key", value_name = "FILE")]
    signing_keys: Vec<PathBuf>,
    /// The issuer the tokens carry (with --socket: one the daemon accepts).
    #[arg(long, default_value = "https://issuer.bench.jwtd", value_name = "ISS")]
    iss: String,
    /// The audience the tokens carry (with --socket: one the daemon accepts).
    #[arg(long, default_value = "bench-api", value_name = "AUD")]
    aud: String,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
}

/// One measured run.
struct Row {
    model: &'static str,
    connections: usize,
    depth: Option<usize>,
    target_rate: Option<f64>,
    report: Report,
    hit_ratio: Option<f64>,
    /// Revocations issued during the run.
    revoked: Issued,
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
}

/// The daemon under test: a child process (killed and cleaned up on drop), or one already running.
struct Daemon {
    /// With its directory, when this process started it.
    child: Option<(Child, PathBuf)>,
    socket: PathBuf,
}

impl Daemon {
    /// The `/proc/PID/stat` path of a daemon we started (a running one's pid is not known).
    fn stat_path(&self) -> Option<String> {
        self.child
            .as_ref()
            .map(|(c, _)| format!("/proc/{}/stat", c.id()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some((child, dir)) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn say(quiet: bool, msg: &str) {
    if !quiet {
        jwtd::say!("{msg}");
    }
}

pub(super) fn run(args: BenchArgs) -> Result<ExitCode, String> {
    if args.connections == 0 || args.depth == 0 || args.duration == 0 {
        return Err("--connections, --depth and --duration must be positive".into());
    }
    if args.compare.is_some() && !cfg!(feature = "bench-peer") {
        return Err(
            "--compare inprocess needs the bench-peer feature, left out of the default build because it \
             compiles jsonwebtoken on aws-lc-rs (C and CMake): cargo build --release --features bench-peer"
                .into(),
        );
    }
    let runs = if !args.sweep_rates.is_empty() {
        args.sweep_rates.len()
    } else {
        args.sweep_connections.len().max(1)
    };
    let spec = Spec {
        live_revocations: args.revoke_during * runs,
        tokens: args.tokens,
        mix: args.mix.clone(),
        claims_bytes: args.claims_bytes,
        invalid: args.invalid,
        revoked: args.revoked,
        seed: args.seed,
        issuer: args.iss.clone(),
        audience: args.aud.clone(),
    };
    let started = Instant::now();
    say(
        args.quiet,
        &format!(
            "jwtd bench: generating {} tokens ({}, {} B claims, {:.1}% invalid, {:.1}% revoked, seed {})…",
            spec.tokens,
            spec.mix,
            spec.claims_bytes,
            spec.invalid * 100.0,
            spec.revoked * 100.0,
            spec.seed
        ),
    );
    let now = jwtd::server::unix_now();
    let (generated, daemon) = match &args.socket {
        None => {
            let g = tokens::generate(&spec, now).map_err(|e| e.to_string())?;
            let d = start_daemon(&args, &spec, &g)?;
            (g, d)
        }
        Some(socket) => {
            let mut keys = Vec::new();
            for path in &args.signing_keys {
                let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let (signer, kid) = jwtd::keys::private::signing_key_from_file(&bytes, None)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let kid = kid.unwrap_or_else(|| format!("bench-{}", signer.alg()));
                keys.push((signer, kid));
            }
            let g = tokens::generate_with_keys(&spec, now, keys).map_err(|e| e.to_string())?;
            let d = Daemon {
                child: None,
                socket: socket.clone(),
            };
            if stats(&d.socket).is_none() {
                return Err(format!("{}: no jwtd answers there", socket.display()));
            }
            (g, d)
        }
    };
    say(
        args.quiet,
        &format!(
            "jwtd bench: corpus ready in {:.1} s; daemon on {}",
            started.elapsed().as_secs_f64(),
            daemon.socket.display()
        ),
    );
    revoke(&daemon.socket, &generated.revocations)?;
    let order = tokens::sequence(spec.tokens, 1 << 20, args.zipf, args.seed);
    let (requests, live) = generated
        .requests(order.clone())
        .map_err(|e| e.to_string())?;

    if args.warmup > 0 {
        let r = closed(
            &args,
            &daemon,
            &requests,
            args.connections,
            args.warmup,
            None,
        )?;
        check(&r, "warm-up")?;
    }
    let mut rows = Vec::new();
    if !args.sweep_rates.is_empty() {
        for &rate in &args.sweep_rates {
            rows.push(measure(
                &args,
                &daemon,
                &requests,
                Load::Open(rate),
                args.connections,
                &live,
            )?);
        }
    } else if !args.sweep_connections.is_empty() {
        for &c in &args.sweep_connections {
            rows.push(measure(
                &args,
                &daemon,
                &requests,
                Load::Closed,
                c.max(1),
                &live,
            )?);
        }
    } else {
        let load = args.rate.map_or(Load::Closed, Load::Open);
        rows.push(measure(
            &args,
            &daemon,
            &requests,
            load,
            args.connections,
            &live,
        )?);
    }
    print_table(&rows, &generated.outcomes());
    if let Some(path) = &args.plot {
        let series: Vec<super::plot::Series<'_>> = rows
            .iter()
            .map(|r| super::plot::Series {
                label: match r.target_rate {
                    Some(t) => format!("open loop {t:.0}/s"),
                    None => format!("closed loop {} × {}", r.connections, args.depth),
                },
                report: &r.report,
            })
            .collect();
        super::plot::draw(path, &series)?;
    }
    #[cfg(feature = "bench-peer")]
    let peer = match args.compare.as_deref() {
        Some("inprocess") => {
            drop(daemon); // the peer gets the whole machine, as the daemon did
            let threads = args
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let p = super::peer::run(
                &generated,
                &spec,
                &order,
                threads,
                Duration::from_secs(args.duration),
            )?;
            let jwtd_rate = rows.first().map_or(0.0, |r| r.report.per_second());
            println!(
                "in-process jsonwebtoken, {} threads, same sequence: {:.0} verifications/s ({} disagreeing with the labels); jwtd over the socket / in-process: {:.2}x",
                p.threads,
                p.per_second(),
                p.wrong,
                jwtd_rate / p.per_second().max(1e-9)
            );
            Some(serde_json::json!({
                "peer": "jsonwebtoken 11 (aws-lc-rs)",
                "threads": p.threads,
                "per_second": p.per_second(),
                "wrong": p.wrong,
            }))
        }
        _ => None,
    };
    #[cfg(not(feature = "bench-peer"))]
    let peer: Option<serde_json::Value> = None;
    if let Some(path) = &args.json {
        let mut json = to_json(&args, &spec, &rows);
        if let Some(p) = peer {
            json["inprocess"] = p;
        }
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let wrong: u64 = rows.iter().map(|r| r.report.mismatches).sum();
    if wrong > 0 {
        for r in &rows {
            for s in &r.report.mismatch_samples {
                jwtd::say!("jwtd bench: wrong answer: {s}");
            }
        }
        jwtd::say!(
            "jwtd bench: {wrong} replies were not the expected outcome: the figures above are invalid"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn start_daemon(args: &BenchArgs, spec: &Spec, g: &tokens::Generated) -> Result<Daemon, String> {
    let dir = std::env::temp_dir().join(format!("jwtd-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the jwtd binary: {e}"))?;
    let socket = dir.join("jwtd.sock");
    let mut cmd = Command::new(exe);
    cmd.arg("serve");
    for (name, jwks) in [
        ("public.jwks", &g.public_jwks),
        ("secret.jwks", &g.secret_jwks),
    ] {
        if let Some(text) = jwks {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            cmd.arg("--keys").arg(path);
        }
    }
    cmd.args([
        "--iss",
        &spec.issuer,
        "--aud",
        &spec.audience,
        "--log-level",
        "warn",
    ])
    .arg("--socket")
    .arg(&socket)
    .arg("--state-dir")
    .arg(dir.join("state"));
    if let Some(w) = args.workers {
        cmd.args(["--workers", &w.to_string()]);
    }
    cmd.args(&args.serve_args);
    let log = std::fs::File::create(dir.join("jwtd.log")).map_err(|e| e.to_string())?;
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start jwtd serve: {e}"))?;
    let mut daemon = Daemon {
        child: Some((child, dir.clone())),
        socket,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&daemon.socket).is_err() {
        let exited = daemon
            .child
            .as_mut()
            .and_then(|(c, _)| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            let log = std::fs::read_to_string(dir.join("jwtd.log")).unwrap_or_default();
            return Err(format!("jwtd serve exited ({status}): {}", log.trim()));
        }
        if Instant::now() > deadline {
            return Err("jwtd serve did not open its socket within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(daemon)
}

fn revoke(socket: &Path, lines: &[String]) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut c = Requests::default();
    for l in lines {
        c.push_line(l, true).map_err(|e| e.to_string())?;
    }
    let cfg = ClosedLoop {
        connections: 4,
        depth: 64,
        duration: Duration::from_secs(600),
        max_requests: Some(lines.len() as u64),
        ..ClosedLoop::default()
    };
    let r = loadgen::run(socket, &c, &cfg).map_err(|e| format!("revoking: {e}"))?;
    check(&r, "revocations")
}

fn check(r: &Report, what: &str) -> Result<(), String> {
    if r.mismatches > 0 {
        return Err(format!(
            "{what}: {} replies were not the expected outcome, e.g. {}",
            r.mismatches,
            r.mismatch_samples.first().map_or("", String::as_str)
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Load {
    Closed,
    Open(f64),
}

fn closed(
    args: &BenchArgs,
    d: &Daemon,
    requests: &Requests,
    connections: usize,
    secs: u64,
    progress: Option<Arc<Progress>>,
) -> Result<Report, String> {
    let cfg = ClosedLoop {
        connections,
        depth: args.depth,
        threads: args.client_threads,
        duration: Duration::from_secs(secs),
        max_requests: args.requests,
        progress,
    };
    loadgen::run(&d.socket, requests, &cfg).map_err(|e| format!("load: {e}"))
}

fn measure(
    args: &BenchArgs,
    d: &Daemon,
    requests: &Requests,
    load: Load,
    connections: usize,
    live: &Arc<Live>,
) -> Result<Row, String> {
    let before = stats(&d.socket);
    let server_before = d.stat_path().and_then(|p| cpu_seconds(&p));
    let client_before = cpu_seconds("/proc/self/stat");
    let progress = Arc::new(Progress::default());
    let label = match load {
        Load::Closed => format!("closed loop, {connections} × {}", args.depth),
        Load::Open(rate) => format!("open loop at {rate:.0}/s, {connections} connections"),
    };
    let shown = show_progress(args, &label, progress.clone());
    // Revocations during the run, on their own connection; stopped when the load ends first (a --requests
    // budget).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let issuing = {
        let (live, done, socket) = (live.clone(), done.clone(), d.socket.clone());
        let (count, over) = (
            args.revoke_during.min(live.remaining()),
            Duration::from_secs(args.duration),
        );
        std::thread::spawn(move || {
            live.issue(&socket, count, over, || done.load(Ordering::Relaxed))
        })
    };
    let report = match load {
        Load::Closed => closed(
            args,
            d,
            requests,
            connections,
            args.duration,
            Some(progress.clone()),
        ),
        Load::Open(rate) => loadgen::run_open(
            &d.socket,
            requests,
            &OpenLoop {
                connections,
                rate,
                threads: args.client_threads,
                duration: Duration::from_secs(args.duration),
                progress: Some(progress.clone()),
            },
        )
        .map_err(|e| format!("load: {e}")),
    };
    progress.replies.store(u64::MAX, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    if let Some(h) = shown {
        let _ = h.join();
    }
    let revoked = issuing
        .join()
        .map_err(|_| "the revocation thread panicked".to_string())?
        .map_err(|e| format!("revoking during the run: {e}"))?;
    let report = report?;
    let after = stats(&d.socket);
    let delta = |key: &str| -> Option<u64> {
        let get = |v: &Option<serde_json::Value>| v.as_ref()?["cache"][key].as_u64();
        Some(get(&after)?.saturating_sub(get(&before)?))
    };
    let hit_ratio = match (delta("hits"), delta("misses")) {
        (Some(h), Some(m)) if h + m > 0 => Some(h as f64 / (h + m) as f64),
        _ => None,
    };
    let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    Ok(Row {
        model: match load {
            Load::Closed => "closed",
            Load::Open(_) => "open",
        },
        connections,
        depth: matches!(load, Load::Closed).then_some(args.depth),
        target_rate: match load {
            Load::Open(r) => Some(r),
            Load::Closed => None,
        },
        report,
        hit_ratio,
        revoked,
        server_cpu: diff(d.stat_path().and_then(|p| cpu_seconds(&p)), server_before),
        client_cpu: diff(cpu_seconds("/proc/self/stat"), client_before),
    })
}

/// A live progress line on a terminal: elapsed, replies per second, wrong answers.
fn show_progress(
    args: &BenchArgs,
    label: &str,
    progress: Arc<Progress>,
) -> Option<std::thread::JoinHandle<()>> {
    if args.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(args.duration * 10);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed:>4} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(label.to_string());
    Some(std::thread::spawn(move || {
        let start = Instant::now();
        let (mut last, mut last_at) = (0u64, start);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let n = progress.replies.load(Ordering::Relaxed);
            if n == u64::MAX {
                bar.finish_and_clear();
                return;
            }
            let now = Instant::now();
            let rate = (n - last) as f64 / (now - last_at).as_secs_f64();
            (last, last_at) = (n, now);
            bar.set_position((now - start).as_millis() as u64 / 100);
            bar.set_message(format!(
                "{rate:>10.0} replies/s, {} wrong",
                progress.mismatches.load(Ordering::Relaxed)
            ));
        }
    }))
}

fn stats(socket: &Path) -> Option<serde_json::Value> {
    let mut c = jwtd::client::Client::connect(socket).ok()?;
    c.set_timeout(Some(jwtd::loadgen::REPLY_TIMEOUT)).ok()?;
    serde_json::from_str(&c.stats().ok()?).ok()
}

/// User + system CPU seconds of a process, from `/proc/PID/stat` (fields 14 and 15, in clock ticks of
/// 1/100 s, the Linux default).
fn cpu_seconds(path: &str) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}

fn print_table(rows: &[Row], corpus: &std::collections::BTreeMap<&'static str, usize>) {
    let shape: Vec<String> = corpus.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("corpus: {}", shape.join(", "));
    println!(
        "{:<7} {:>5} {:>5} {:>10} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>6}",
        "model",
        "conns",
        "depth",
        "target/s",
        "achieved/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "hit%",
        "srv-cpu",
        "cli-cpu",
        "wrong"
    );
    for r in rows {
        let q = |x| us(r.report.quantile(x));
        println!(
            "{:<7} {:>5} {:>5} {:>10} {:>11.0} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>6}",
            r.model,
            r.connections,
            r.depth.map_or("-".into(), |d| d.to_string()),
            r.target_rate.map_or("-".into(), |t| format!("{t:.0}")),
            r.report.per_second(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(1.0),
            r.hit_ratio
                .map_or("-".into(), |h| format!("{:.1}", h * 100.0)),
            r.server_cpu.map_or("-".into(), |c| format!("{c:.1}s")),
            r.client_cpu.map_or("-".into(), |c| format!("{c:.1}s")),
            r.report.mismatches
        );
    }
    if let Some(r) = rows.first() {
        let o: Vec<String> = r
            .report
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("outcomes ({}): {}", r.model, o.join(", "));
    }
    for r in rows.iter().filter(|r| !r.report.lateness.is_empty()) {
        let q = |x| us(Duration::from_nanos(r.report.lateness.value_at_quantile(x)));
        println!(
            "open loop at {:.0}/s: the client wrote requests late by p50 {}, p99 {}, max {} (included in the latency above)",
            r.target_rate.unwrap_or(0.0),
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }
    for r in rows.iter().filter(|r| r.revoked.acknowledged > 0) {
        let q = |x| us(Duration::from_nanos(r.revoked.latency.value_at_quantile(x)));
        println!(
            "revoked during the {} run: {} acknowledged (write to ack, fsync included: p50 {}, max {}){}",
            r.model,
            r.revoked.acknowledged,
            q(0.5),
            q(1.0),
            if r.report.mismatches == 0 {
                "; every request sent after an acknowledgement was refused"
            } else {
                ""
            }
        );
    }
}

fn to_json(args: &BenchArgs, spec: &Spec, rows: &[Row]) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let q = |x| r.report.latency.value_at_quantile(x) as f64 / 1000.0;
            serde_json::json!({
                "model": r.model,
                "connections": r.connections,
                "depth": r.depth,
                "target_rate": r.target_rate,
                "requests": r.report.requests,
                "seconds": r.report.elapsed.as_secs_f64(),
                "per_second": r.report.per_second(),
                "latency_us": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": q(1.0)},
                "send_lateness_us": (!r.report.lateness.is_empty()).then(|| {
                    let l = |x| r.report.lateness.value_at_quantile(x) as f64 / 1000.0;
                    serde_json::json!({"p50": l(0.5), "p99": l(0.99), "max": l(1.0)})
                }),
                "outcomes": r.report.outcomes,
                "mismatches": r.report.mismatches,
                "cache_hit_ratio": r.hit_ratio,
                "revoked_during": {
                    "acknowledged": r.revoked.acknowledged,
                    "ack_us": {
                        "p50": r.revoked.latency.value_at_quantile(0.5) as f64 / 1000.0,
                        "max": r.revoked.latency.max() as f64 / 1000.0,
                    },
                },
                "server_cpu_seconds": r.server_cpu,
                "client_cpu_seconds": r.client_cpu,
            })
        })
        .collect();
    serde_json::json!({
        "corpus": {
            "tokens": spec.tokens, "mix": spec.mix.to_string(), "claims_bytes": spec.claims_bytes,
            "invalid": spec.invalid, "revoked": spec.revoked, "revoke_during": args.revoke_during,
            "zipf": args.zipf, "seed": spec.seed,
        },
        "machine": {"cpus": std::thread::available_parallelism().map_or(0, |n| n.get())},
        "runs": runs,
    })
}
