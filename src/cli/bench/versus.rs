//! `--versus-arg`: what some flags cost, measured in one run. Two daemons are started alike — A as the
//! bench would start it, B with the extra flags too — and measured in alternating slices of `--duration`
//! seconds (A B, then B A, …) for `--rounds` rounds. The machine's drift (other tenants, frequency, the
//! page cache) then falls on both sides within seconds of each other, instead of on whichever daemon ran
//! during a bad minute: each round gives one ratio B/A, and the report is their median with a bootstrap
//! 95 % interval. Each daemon has its own revocations (the same tokens, in the same order, issued in its own
//! slices) and its own checker, so every reply is still judged.

use std::sync::Arc;

use jwtd::loadgen::Requests;
use jwtd::loadgen::live::Live;

use super::BenchArgs;
use super::check;
use super::daemon::Daemon;
use super::measure::{Load, Row, measure};

/// One side of the comparison.
pub(super) struct Side<'a> {
    pub(super) daemon: &'a Daemon,
    pub(super) requests: &'a Requests,
    pub(super) live: &'a Arc<Live>,
}

/// The slices of both sides, round by round.
pub(super) struct Versus {
    pub(super) a: Vec<Row>,
    pub(super) b: Vec<Row>,
}

/// A median and its bootstrap 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Estimate {
    pub(super) median: f64,
    pub(super) low: f64,
    pub(super) high: f64,
}

pub(super) fn run(
    args: &BenchArgs,
    load: Load,
    a: Side<'_>,
    b: Side<'_>,
) -> Result<Versus, String> {
    let mut out = Versus {
        a: Vec::new(),
        b: Vec::new(),
    };
    for round in 0..args.rounds {
        // A B, B A, …: neither side always runs first after the other.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let s = if side == 0 { &a } else { &b };
            let row = measure(args, s.daemon, s.requests, load, args.connections, s.live)?;
            check(
                &row.report,
                &format!("round {} ({})", round + 1, ["A", "B"][side]),
            )?;
            if side == 0 {
                out.a.push(row);
            } else {
                out.b.push(row);
            }
        }
        let (ra, rb) = (&out.a[round], &out.b[round]);
        if !args.quiet {
            eprintln!(
                "round {:>3}: A {:>9.0}/s  B {:>9.0}/s  B/A {:.3}",
                round + 1,
                ra.report.per_second(),
                rb.report.per_second(),
                rb.report.per_second() / ra.report.per_second().max(1e-9)
            );
        }
    }
    Ok(out)
}

impl Versus {
    /// B/A of the throughput, round by round.
    pub(super) fn ratios(&self) -> Vec<f64> {
        self.a
            .iter()
            .zip(&self.b)
            .map(|(a, b)| b.report.per_second() / a.report.per_second().max(1e-9))
            .collect()
    }

    /// B/A of the daemon's CPU seconds per request, round by round (rounds without a figure left out).
    pub(super) fn cpu_ratios(&self) -> Vec<f64> {
        let per_request = |r: &Row| Some(r.server_cpu? / r.report.requests.max(1) as f64);
        self.a
            .iter()
            .zip(&self.b)
            .filter_map(|(a, b)| {
                let (a, b) = (per_request(a)?, per_request(b)?);
                (a > 0.0 && b > 0.0).then_some(b / a)
            })
            .collect()
    }
}

/// The median of `xs` with a percentile-bootstrap 95 % interval (4,000 resamples, seeded: the same figures
/// give the same interval).
pub(super) fn estimate(xs: &[f64], seed: u64) -> Option<Estimate> {
    if xs.is_empty() {
        return None;
    }
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    const RESAMPLES: usize = 4000;
    let mut medians: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let sample: Vec<f64> = (0..xs.len())
                .map(|_| xs[(next() % xs.len() as u64) as usize])
                .collect();
            median(sample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    Some(Estimate {
        median: median(xs.to_vec()),
        low: medians[RESAMPLES * 25 / 1000],
        high: medians[RESAMPLES * 975 / 1000 - 1],
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Each side's slices as the bench's table, then the summary lines.
pub(super) fn print(
    args: &BenchArgs,
    v: &Versus,
    corpus: &std::collections::BTreeMap<&'static str, usize>,
) {
    println!("A: the daemon as started, one row per slice");
    super::output::print_table(&v.a, corpus);
    println!("B: with {}, one row per slice", args.versus_args.join(" "));
    super::output::print_table(&v.b, corpus);
    let total = |rows: &[Row]| rows.iter().map(|r| r.report.requests).sum::<u64>();
    let (ta, tb) = (total(&v.a), total(&v.b));
    println!(
        "versus: A = the daemon as started, B = A with {}; {} rounds of {} s each, alternating",
        args.versus_args.join(" "),
        v.a.len(),
        args.duration
    );
    println!(
        "replies: A {ta}, B {tb} (B/A {:.3} overall)",
        tb as f64 / ta.max(1) as f64
    );
    if let Some(e) = estimate(&v.ratios(), args.seed) {
        println!(
            "throughput B/A per round: median {:.3}, 95 % interval {:.3}–{:.3}",
            e.median, e.low, e.high
        );
    }
    if let Some(e) = estimate(&v.cpu_ratios(), args.seed) {
        println!(
            "daemon CPU per request B/A per round: median {:.3}, 95 % interval {:.3}–{:.3}",
            e.median, e.low, e.high
        );
    }
}

/// The `versus` object of the JSON report.
pub(super) fn to_json(args: &BenchArgs, v: &Versus) -> serde_json::Value {
    let est = |e: Option<Estimate>| {
        e.map(|e| serde_json::json!({"median": e.median, "low": e.low, "high": e.high}))
    };
    serde_json::json!({
        "b_args": args.versus_args,
        "rounds": v.a.iter().zip(&v.b).map(|(a, b)| serde_json::json!({
            "a_per_second": a.report.per_second(),
            "b_per_second": b.report.per_second(),
            "a_server_cpu": a.server_cpu,
            "b_server_cpu": b.server_cpu,
            "a_wrong": a.report.mismatches,
            "b_wrong": b.report.mismatches,
            "a_hit_ratio": a.hit_ratio,
            "b_hit_ratio": b.hit_ratio,
        })).collect::<Vec<_>>(),
        "throughput_ratio": est(estimate(&v.ratios(), args.seed)),
        "cpu_per_request_ratio": est(estimate(&v.cpu_ratios(), args.seed)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_the_median_inside_its_interval_and_repeatable() {
        let xs = [0.9, 1.1, 0.95, 1.0, 1.05, 0.97, 1.02];
        let e = estimate(&xs, 7).unwrap();
        assert_eq!(e.median, 1.0);
        assert!(e.low <= e.median && e.median <= e.high, "{e:?}");
        assert!(e.low >= 0.9 && e.high <= 1.1, "{e:?}");
        assert_eq!(estimate(&xs, 7), Some(e), "seeded");
        assert_eq!(median(vec![3.0, 1.0, 2.0, 4.0]), 2.5);
        assert_eq!(estimate(&[], 1), None);
        let one = estimate(&[0.8], 1).unwrap();
        assert_eq!((one.median, one.low, one.high), (0.8, 0.8, 0.8));
    }
}
