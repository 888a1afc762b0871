//! `jwtd bench`: generates keys and a labelled token corpus, starts a daemon on a temporary socket, revokes
//! the tokens meant to be revoked, warms up, runs the load (closed loop, open loop at a rate, or a sweep),
//! checks every reply against its token's expected outcome, and reports throughput, latency percentiles,
//! outcomes, the cache hit ratio and CPU time of server and client.
//!
//! Rooms: `args` (the flags), `daemon` (the daemon under test: started and stopped, or one already running;
//! its STATS and CPU time), `measure` (one run of a load model, with revocations issued during it and a
//! progress line), `output` (the table and the JSON report), `plot` (SVG), `peer` (`--compare inprocess`).

mod args;
mod daemon;
mod jwks_server;
mod measure;
mod output;
#[cfg(feature = "bench-peer")]
mod peer;
mod plot;
mod versus;

use std::process::ExitCode;
use std::time::Instant;

use jwtd::loadgen::Report;
use jwtd::loadgen::tokens::{self, Spec};

pub(super) use args::BenchArgs;
use daemon::{Daemon, revoke, start_daemon, stats};
use measure::{Load, closed, measure};
use output::{print_table, to_json};

fn say(quiet: bool, msg: &str) {
    if !quiet {
        say!("{msg}");
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
    if !args.versus_args.is_empty() && args.rounds == 0 {
        return Err("--rounds must be positive".into());
    }
    let runs = if !args.versus_args.is_empty() {
        args.rounds
    } else if !args.sweep_rates.is_empty() {
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
            let d = start_daemon(&args, &spec, &g, "", &[])?;
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
                jwks: None,
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
    let request = (args.routes > 0).then(|| format!("GET /api/r{}/items/7", args.routes - 1));
    let (requests, live) = generated
        .requests_for(order.clone(), request.as_deref())
        .map_err(|e| e.to_string())?;

    if !args.versus_args.is_empty() {
        let b = start_daemon(&args, &spec, &generated, "-b", &args.versus_args)?;
        say(
            args.quiet,
            &format!(
                "jwtd bench: daemon B (with {}) on {}",
                args.versus_args.join(" "),
                b.socket.display()
            ),
        );
        revoke(&b.socket, &generated.revocations)?;
        let (requests_b, live_b) = generated
            .requests_for(order.clone(), request.as_deref())
            .map_err(|e| e.to_string())?;
        for (d, r) in [(&daemon, &requests), (&b, &requests_b)] {
            if args.warmup > 0 {
                check(
                    &closed(&args, d, r, args.connections, args.warmup, None)?,
                    "warm-up",
                )?;
            }
        }
        let load = args.rate.map_or(Load::Closed, Load::Open);
        let side = |daemon, requests, live| versus::Side {
            daemon,
            requests,
            live,
        };
        let v = versus::run(
            &args,
            load,
            side(&daemon, &requests, &live),
            side(&b, &requests_b, &live_b),
        )?;
        versus::print(&args, &v, &generated.outcomes());
        if let Some(path) = &args.json {
            let mut json = to_json(&args, &spec, &v.a);
            json["versus"] = versus::to_json(&args, &v);
            std::fs::write(path, format!("{json}\n"))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
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
    let jwks_fetches = daemon
        .jwks
        .as_ref()
        .map(|s| s.fetches.load(std::sync::atomic::Ordering::Relaxed));
    if let (Some(server), Some(fetches)) = (&daemon.jwks, jwks_fetches) {
        println!(
            "keys from {} (max-age=1): {fetches} fetches answered since the daemon started",
            server.url
        );
    }
    if let Some(path) = &args.plot {
        let series: Vec<plot::Series<'_>> = rows
            .iter()
            .map(|r| plot::Series {
                label: match r.target_rate {
                    Some(t) => format!("open loop {t:.0}/s"),
                    None => format!("closed loop {} × {}", r.connections, args.depth),
                },
                report: &r.report,
            })
            .collect();
        plot::draw(path, &series)?;
    }
    #[cfg(feature = "bench-peer")]
    let peer = match args.compare.as_deref() {
        Some("inprocess") => {
            drop(daemon); // the peer gets the whole machine, as the daemon did
            let threads = args
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let p = peer::run(
                &generated,
                &spec,
                &order,
                threads,
                std::time::Duration::from_secs(args.duration),
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
        json["keys_from"] = args.keys_from.clone().into();
        json["routes"] = args.routes.into();
        if let Some(server) = &jwks_fetches {
            json["jwks_fetches"] = (*server).into();
        }
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let wrong: u64 = rows.iter().map(|r| r.report.mismatches).sum();
    if wrong > 0 {
        for r in &rows {
            for s in &r.report.mismatch_samples {
                say!("jwtd bench: wrong answer: {s}");
            }
        }
        say!(
            "jwtd bench: {wrong} replies were not the expected outcome: the figures above are invalid"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn check(r: &Report, what: &str) -> Result<(), String> {
    if r.mismatches > 0 {
        return Err(format!(
            "{what}: {} replies were not the expected outcome, e.g. {}",
            r.mismatches,
            r.mismatch_samples.first().map_or("", String::as_str)
        ));
    }
    Ok(())
}
