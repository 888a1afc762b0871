//! The report of a bench: a table on standard output and the JSON file.

use std::time::Duration;

use jwtd::loadgen::tokens::Spec;

use super::BenchArgs;
use super::measure::Row;

pub(super) fn us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}

pub(super) fn print_table(rows: &[Row], corpus: &std::collections::BTreeMap<&'static str, usize>) {
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

pub(super) fn to_json(args: &BenchArgs, spec: &Spec, rows: &[Row]) -> serde_json::Value {
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
