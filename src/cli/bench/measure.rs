//! One measured run of a load model, with the revocations issued while it goes on and a progress line.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jwtd::loadgen::live::{Issued, Live};
use jwtd::loadgen::{self, ClosedLoop, OpenLoop, Progress, Report, Requests};

use super::BenchArgs;
use super::daemon::{Daemon, cpu_seconds, stats};

/// One measured run.
pub(super) struct Row {
    pub(super) model: &'static str,
    pub(super) connections: usize,
    pub(super) depth: Option<usize>,
    pub(super) target_rate: Option<f64>,
    pub(super) report: Report,
    pub(super) hit_ratio: Option<f64>,
    /// Revocations issued during the run.
    pub(super) revoked: Issued,
    pub(super) server_cpu: Option<f64>,
    pub(super) client_cpu: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Load {
    Closed,
    Open(f64),
}

pub(super) fn closed(
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

pub(super) fn measure(
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
pub(super) fn show_progress(
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
