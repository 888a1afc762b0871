//! `jwtd bench` end to end: a short run against the real daemon it starts, in both load models; the JSON
//! report's counts must add up and every reply must have been the expected one.

mod common;

use std::process::Command;

fn bench(tag: &str, extra: &[&str]) -> serde_json::Value {
    let json =
        std::env::temp_dir().join(format!("jwtd-bench-test-{tag}-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args([
            "bench",
            "--tokens",
            "2000",
            "--duration",
            "2",
            "--warmup",
            "0",
            "--quiet",
        ])
        .args([
            "--invalid",
            "0.1",
            "--revoked",
            "0.05",
            "--connections",
            "4",
        ])
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("achieved/s") && stdout.contains("outcomes"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    report
}

fn check_run(run: &serde_json::Value) {
    let requests = run["requests"].as_u64().unwrap();
    assert!(requests > 0, "{run}");
    let outcomes: u64 = run["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        outcomes, requests,
        "every reply is counted under one outcome: {run}"
    );
    assert_eq!(run["mismatches"], 0, "{run}");
    // The corpus's kinds of tokens all showed up, each answered as labelled.
    for code in [
        "ok",
        "revoked",
        "expired",
        "bad_signature",
        "wrong_audience",
    ] {
        assert!(
            run["outcomes"][code].as_u64().unwrap_or(0) > 0,
            "{code}: {run}"
        );
    }
    let l = &run["latency_us"];
    let (p50, p99, max) = (
        l["p50"].as_f64().unwrap(),
        l["p99"].as_f64().unwrap(),
        l["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{l}");
    let ratio = run["cache_hit_ratio"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ratio), "{run}");
    // The default 100 revocations during the run were all issued and acknowledged (and, with no
    // mismatch, every request sent after an acknowledgement was refused).
    let live = &run["revoked_during"];
    assert_eq!(live["acknowledged"], 100, "{run}");
    assert!(live["ack_us"]["p50"].as_f64().unwrap() > 0.0, "{run}");
}

#[test]
fn a_closed_loop_bench_counts_add_up_with_no_wrong_answer() {
    let svg = std::env::temp_dir().join(format!("jwtd-bench-test-{}.svg", std::process::id()));
    let r = bench("closed", &["--plot", svg.to_str().unwrap()]);
    let plot = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).unwrap();
    assert!(
        plot.starts_with("<svg") && plot.contains("latency by percentile"),
        "{plot:.200}"
    );
    assert_eq!(r["corpus"]["tokens"], 2000);
    assert_eq!(r["runs"].as_array().unwrap().len(), 1);
    check_run(&r["runs"][0]);
    assert_eq!(r["runs"][0]["model"], "closed");
    assert!(r["runs"][0]["send_lateness_us"].is_null(), "{r}");
}

/// Public keys from a JWKS URL refreshed every second during the run: every answer still right.
#[test]
fn keys_from_a_remote_jwks_refreshed_every_second_give_the_same_answers() {
    let r = bench("remote", &["--keys-from", "remote"]);
    check_run(&r["runs"][0]);
    assert_eq!(r["keys_from"], "remote");
    assert!(r["jwks_fetches"].as_u64().unwrap() >= 2, "{r}");
}

#[test]
#[cfg(not(feature = "bench-peer"))]
fn without_the_bench_peer_feature_compare_says_how_to_get_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["bench", "--quiet", "--compare", "inprocess"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features bench-peer"), "{err}");
}

#[test]
#[cfg(feature = "bench-peer")]
fn the_in_process_peer_runs_the_same_sequence_and_agrees_with_the_labels() {
    let r = bench("peer", &["--compare", "inprocess"]);
    check_run(&r["runs"][0]);
    let p = &r["inprocess"];
    assert!(p["per_second"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(
        p["wrong"], 0,
        "jsonwebtoken disagrees with the corpus labels: {r}"
    );
}

#[test]
fn a_rate_sweep_runs_each_rate_and_plots_throughput_against_p99() {
    let svg = std::env::temp_dir().join(format!("jwtd-bench-sweep-{}.svg", std::process::id()));
    let r = bench(
        "sweep",
        &[
            "--sweep-rates",
            "1000,3000",
            "--plot",
            svg.to_str().unwrap(),
        ],
    );
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (run, rate) in runs.iter().zip([1000.0, 3000.0]) {
        check_run(run);
        assert_eq!(run["target_rate"].as_f64(), Some(rate));
    }
    let plot = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).unwrap();
    assert!(
        plot.contains("p99 latency against throughput"),
        "{plot:.200}"
    );
}

#[test]
fn an_open_loop_bench_sends_exactly_its_schedule() {
    let r = bench("open", &["--rate", "4000"]);
    let run = &r["runs"][0];
    check_run(run);
    // 4 connections × ceil(2 s × 4000/s ÷ 4) requests.
    assert_eq!(run["requests"], 8000, "{run}");
    assert_eq!(run["model"], "open");
    // The client's own lateness is reported, and is part of the latency measured from intended times.
    let late = run["send_lateness_us"]["max"].as_f64().unwrap();
    assert!(late <= run["latency_us"]["max"].as_f64().unwrap(), "{run}");
}

/// What a flag costs, in one run: two daemons alike but for `--cache-entries=0`, measured in alternating
/// slices. Every reply of both is judged, each round has both figures, the ratio comes with its interval,
/// and B really ran with the flag (no cache, so no hit ratio) while A did not.
#[test]
fn versus_measures_two_daemons_alternately_and_only_b_has_the_flag() {
    let r = bench(
        "versus",
        &["--rounds", "2", "--versus-arg=--cache-entries=0"],
    );
    let v = &r["versus"];
    assert_eq!(v["b_args"], serde_json::json!(["--cache-entries=0"]));
    let rounds = v["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{v}");
    for round in rounds {
        assert_eq!(round["a_wrong"], 0, "{round}");
        assert_eq!(round["b_wrong"], 0, "{round}");
        assert!(round["a_per_second"].as_f64().unwrap() > 0.0, "{round}");
        assert!(round["b_per_second"].as_f64().unwrap() > 0.0, "{round}");
        assert!(round["a_hit_ratio"].as_f64().unwrap() > 0.5, "{round}");
        assert!(
            round["b_hit_ratio"].is_null(),
            "B runs without a cache: {round}"
        );
    }
    let t = &v["throughput_ratio"];
    let (low, median, high) = (
        t["low"].as_f64().unwrap(),
        t["median"].as_f64().unwrap(),
        t["high"].as_f64().unwrap(),
    );
    assert!(low <= median && median <= high, "{t}");
    // A's slices are the report's runs, each with its revocations acknowledged.
    assert_eq!(r["runs"].as_array().unwrap().len(), 2);
    for run in r["runs"].as_array().unwrap() {
        check_run(run);
    }
}

#[test]
fn bad_bench_arguments_are_refused_before_anything_starts() {
    for (args, says) in [
        (&["--mix", "none=1"][..], "unknown algorithm \"none\""),
        (&["--connections", "0"], "must be positive"),
        (
            &["--invalid", "0.9", "--revoked", "0.5"],
            "add up to at most 1",
        ),
        (&["--revoke-during", "100"], "the token set has"),
        (
            &["--versus-arg=--cache-entries=0", "--rounds", "0"],
            "--rounds must be positive",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["bench", "--quiet", "--tokens", "10"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bench_can_target_a_daemon_already_running() {
    let dir = std::env::temp_dir().join(format!("jwtd-bench-running-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let jwtd = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(args)
            .output()
            .unwrap()
    };
    let (private, public) = (dir.join("k.jwk"), dir.join("k.jwks"));
    let out = jwtd(&[
        "keygen".as_ref(),
        "--alg".as_ref(),
        "ES256".as_ref(),
        "--kid".as_ref(),
        "mine".as_ref(),
        "--private-out".as_ref(),
        private.as_os_str(),
        "--public-out".as_ref(),
        public.as_os_str(),
    ]);
    assert!(out.status.success());
    let socket = dir.join("jwtd.sock");
    /// Kills the daemon even when an assertion fails (a live child would keep the test's output open).
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _daemon = Kill(
        Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args([
                "serve",
                "--iss",
                "https://me.example",
                "--aud",
                "orders",
                "--keys",
            ])
            .arg(&public)
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::daemon::wait_for(&socket);
    let r = bench(
        "running",
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--signing-key",
            private.to_str().unwrap(),
            "--mix",
            "ES256=1",
            "--iss",
            "https://me.example",
            "--aud",
            "orders",
        ],
    );
    check_run(&r["runs"][0]);
    assert!(
        r["runs"][0]["server_cpu_seconds"].is_null(),
        "unknown pid: {r}"
    );
    // A mix the keys cannot sign is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["bench", "--quiet", "--socket", socket.to_str().unwrap()])
        .args([
            "--signing-key",
            private.to_str().unwrap(),
            "--mix",
            "RS256=1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signing key for RS256"));
    std::fs::remove_dir_all(&dir).unwrap();
}
