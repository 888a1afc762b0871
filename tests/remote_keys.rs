//! Keys from an identity provider, against the in-test HTTPS provider (tests/common/idp.rs): discovery,
//! rotation, unknown-kid floods, outages with stale keys and restarts, and every way a fetch can fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{Scratch, http, stats, verify_line, wait_for};
use common::idp::{self, Idp, Mode};

/// `jwtd serve` on `dir/jwtd.sock` with `args`, its log in `dir/log.txt`; killed on drop.
struct Serve {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(dir: &Path, args: &[&str]) -> Serve {
        let socket = dir.join("jwtd.sock");
        let log = dir.join("log.txt");
        let child = Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .arg("serve")
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for(&socket);
        Serve { child, socket, log }
    }

    fn verify(&self, token: &str) -> String {
        verify_line(&self.socket, token)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn healthz(&self) -> String {
        http(
            &self.socket,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    }

    /// Waits until `f` holds for this daemon's answer to `token`.
    fn wait_answer(&self, token: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = self.verify(token);
            if f(&a) || Instant::now() > deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn ca_args(ca: &Path) -> Vec<String> {
    vec!["--ca-file".into(), ca.display().to_string()]
}

/// A daemon in `dir` for the provider `iss` (audience `api`, trusting `ca`), with `extra` flags.
fn serve_provider(dir: &Path, iss: &str, ca: &Path, extra: &[&str]) -> Serve {
    let mut args = vec![
        "--oidc-issuer",
        iss,
        "--aud",
        "api",
        "--ca-file",
        ca.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Serve::start(dir, &args)
}

#[test]
fn discovers_verifies_follows_rotation_and_survives_an_outage_and_a_restart() {
    let dir = Scratch::new("remote-discover");
    let (k1, jwk1) = idp::es256("k1");
    let (idp, pki) = Idp::start(vec![jwk1.clone()]);
    let ca = Idp::write_ca(&pki, &dir);
    let iss = idp.url();
    let state = dir.join("state");
    let mut args: Vec<String> = vec![
        "--oidc-issuer".into(),
        iss.clone(),
        "--jwks-cooldown".into(),
        "1".into(),
        "--aud".into(),
        "api".into(),
        "--state-dir".into(),
        state.display().to_string(),
    ];
    args.extend(ca_args(&ca));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Serve::start(&dir, &a);

    let t1 = idp::token(&k1, "k1", &iss, "alice");
    let first = d.wait_answer(&t1, |a| a.starts_with("OK "));
    assert!(
        first.starts_with("OK ") && first.contains(r#""sub":"alice""#),
        "{first}\n{}",
        d.log()
    );
    assert!(d.healthz().starts_with("HTTP/1.1 200"), "{}", d.healthz());
    assert_eq!(idp.hits("/.well-known/openid-configuration"), 1);

    // Rotation: the provider adds k2 and signs with it; the first k2 token verifies. An unknown kid refetches
    // at most once per cooldown (1 s here) since the last fetch: a rotation within a second of the start's
    // fetch would be answered unknown_key (a loaded CI machine got here that fast), so wait it out.
    std::thread::sleep(Duration::from_millis(1100));
    let (k2, jwk2) = idp::es256("k2");
    idp.set(|s| s.keys = vec![jwk1.clone(), jwk2.clone()]);
    let jwks_before = idp.hits("/jwks");
    let t2 = idp::token(&k2, "k2", &iss, "bob");
    let a2 = d.verify(&t2);
    assert!(
        a2.starts_with("OK "),
        "the first token of the new key: {a2}\n{}",
        d.log()
    );
    assert_eq!(
        idp.hits("/jwks"),
        jwks_before + 1,
        "one fetch for the new kid"
    );
    // Known kids never fetch.
    for _ in 0..20 {
        assert!(d.verify(&t1).starts_with("OK "));
        assert!(d.verify(&t2).starts_with("OK "));
    }
    assert_eq!(idp.hits("/jwks"), jwks_before + 1);

    // Outage: the provider answers 500; tokens keep verifying from the last good set. (Past the cooldown,
    // an unknown kid tries the provider again, and fails.)
    idp.set(|s| s.mode = Mode::Status(500));
    std::thread::sleep(Duration::from_millis(1100));
    let (k3, _) = idp::es256("k3");
    let t3 = idp::token(&k3, "k3", &iss, "carol");
    let a3 = d.verify(&t3);
    assert!(a3.starts_with("ERR unknown_key"), "{a3}");
    assert!(d.verify(&t1).starts_with("OK "));
    let s = stats(&d.socket);
    let jwks = &s["jwks"][0];
    assert_eq!(jwks["iss"], iss.as_str(), "{s}");
    assert_eq!(jwks["keys"], 2, "{s}");
    assert!(jwks["failed"]["status"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert!(
        jwks["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("HTTP 500"),
        "{s}"
    );
    let metrics = http(
        &d.socket,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        metrics.contains(&format!("jwtd_jwks_ready{{iss=\"{iss}\"}} 1")),
        "{metrics}"
    );
    assert!(d.log().contains("HTTP 500"), "{}", d.log());
    assert!(!d.log().contains(&t1[..40]), "a token reached the log");

    // Restart while the provider is down: the persisted set serves at once.
    drop(d);
    let d = Serve::start(&dir, &a);
    assert!(d.verify(&t1).starts_with("OK "), "{}", d.log());
    assert!(d.verify(&t2).starts_with("OK "));
    assert!(d.log().contains("restored"), "{}", d.log());
    drop(d);
    drop(idp);
}

#[test]
fn starts_without_a_provider_answers_keys_unavailable_and_recovers() {
    let dir = Scratch::new("remote-down");
    let (k1, jwk1) = idp::es256("k1");
    let (idp, pki) = Idp::start(vec![jwk1]);
    idp.set(|s| s.mode = Mode::Status(503));
    let ca = Idp::write_ca(&pki, &dir);
    let iss = idp.url();
    let d = serve_provider(&dir, &iss, &ca, &["--jwks-cooldown", "0.2"]);
    let t1 = idp::token(&k1, "k1", &iss, "alice");
    let a = d.wait_answer(&t1, |a| a.contains("HTTP 503"));
    assert!(a.starts_with("ERR keys_unavailable"), "{a}");
    assert!(a.contains("not been fetched"), "{a}");
    let h = d.healthz();
    assert!(h.starts_with("HTTP/1.1 503"), "{h}");
    assert!(h.contains(&iss) && h.contains("HTTP 503"), "{h}");
    // The provider comes back: the next token (past the cooldown) fetches and verifies.
    idp.set(|s| s.mode = Mode::Normal);
    let a = d.wait_answer(&t1, |a| a.starts_with("OK "));
    assert!(a.starts_with("OK "), "{a}\n{}", d.log());
    assert!(d.healthz().starts_with("HTTP/1.1 200"));
}

#[test]
fn a_flood_of_unknown_kids_costs_one_fetch_per_cooldown() {
    let dir = Scratch::new("remote-flood");
    let (k1, jwk1) = idp::es256("k1");
    let (idp, pki) = Idp::start(vec![jwk1]);
    let ca = Idp::write_ca(&pki, &dir);
    let iss = idp.url();
    // A cooldown longer than any run of this test: the bound below holds however slow the machine is.
    let d = serve_provider(&dir, &iss, &ca, &["--jwks-cooldown", "3600"]);
    let good = idp::token(&k1, "k1", &iss, "alice");
    assert!(
        d.wait_answer(&good, |a| a.starts_with("OK "))
            .starts_with("OK ")
    );
    let before = idp.hits("/jwks");
    // 1,000 tokens with random kids, over 4 connections, pipelined.
    let (attacker, _) = idp::es256("x");
    let threads: Vec<_> = (0..4)
        .map(|c| {
            let socket = d.socket.clone();
            let lines: Vec<String> = (0..250)
                .map(|i| {
                    let kid = format!("random-{c}-{i}");
                    format!("VERIFY {}", idp::token(&attacker, &kid, &iss, "mallory"))
                })
                .collect();
            std::thread::spawn(move || common::daemon::ask(&socket, &lines))
        })
        .collect();
    let mut unknown = 0;
    for t in threads {
        for a in t.join().unwrap() {
            assert!(a.starts_with("ERR unknown_key"), "{a}");
            unknown += 1;
        }
    }
    assert_eq!(unknown, 1000);
    let fetches = idp.hits("/jwks") - before;
    assert!(
        fetches <= 1,
        "{fetches} fetches for 1,000 random kids within one cooldown"
    );
    let s = stats(&d.socket);
    assert!(s["jwks"][0]["suppressed"].as_u64().unwrap() >= 900, "{s}");
    // Known kids were not held up meanwhile.
    assert!(d.verify(&good).starts_with("OK "));
}

#[test]
fn a_withdrawn_key_stops_verifying_even_from_the_cache() {
    let dir = Scratch::new("remote-withdraw");
    let (k1, jwk1) = idp::es256("k1");
    let (k2, jwk2) = idp::es256("k2");
    let (idp, pki) = Idp::start(vec![jwk1, jwk2.clone()]);
    let ca = Idp::write_ca(&pki, &dir);
    let iss = idp.url();
    let config = format!(
        r#"
[jwks]
ca_file = "{}"
min_refresh = 1
default_refresh = 1

[[issuer]]
iss = "{iss}"
discover = true
audiences = ["api"]

[[issuer]]
iss = "https://other.example"
secrets = ["secret"]
default_alg = "HS256"
"#,
        ca.display()
    );
    std::fs::write(dir.join("secret"), [7u8; 32]).unwrap();
    std::fs::write(dir.join("jwtd.toml"), config).unwrap();
    let d = Serve::start(&dir, &["--config", dir.join("jwtd.toml").to_str().unwrap()]);
    let t1 = idp::token(&k1, "k1", &iss, "alice");
    let t2 = idp::token(&k2, "k2", &iss, "bob");
    assert!(
        d.wait_answer(&t1, |a| a.starts_with("OK "))
            .starts_with("OK ")
    );
    // Cached now.
    assert!(d.verify(&t1).starts_with("OK "));
    assert!(d.verify(&t2).starts_with("OK "));
    idp.set(|s| s.keys = vec![jwk2]);
    let a = d.wait_answer(&t1, |a| a.starts_with("ERR "));
    assert!(a.starts_with("ERR unknown_key"), "{a}\n{}", d.log());
    assert!(d.verify(&t2).starts_with("OK "));
}

#[test]
fn fetch_failures_are_reported_clearly() {
    let (k1, jwk1) = idp::es256("k1");
    type Setup = Box<dyn Fn(&Idp)>;
    let cases: Vec<(&str, Setup, &str)> = vec![
        (
            "status",
            Box::new(|i: &Idp| i.set(|s| s.mode = Mode::Status(500))),
            "HTTP 500",
        ),
        (
            "garbage",
            Box::new(|i: &Idp| i.set(|s| s.mode = Mode::Garbage)),
            "not valid JSON",
        ),
        (
            "huge",
            Box::new(|i: &Idp| i.set(|s| s.mode = Mode::Huge)),
            "over 1048576 bytes",
        ),
        (
            "hang",
            Box::new(|i: &Idp| i.set(|s| s.mode = Mode::Hang)),
            "no answer within 1 s",
        ),
        (
            "redirect",
            Box::new(|i: &Idp| i.set(|s| s.mode = Mode::RedirectHttp)),
            "from https to http",
        ),
        (
            "issuer",
            Box::new(|i: &Idp| i.set(|s| s.discovery_issuer = Some("https://evil.example".into()))),
            "is for issuer \"https://evil.example\"",
        ),
    ];
    for (name, setup, want) in cases {
        let dir = Scratch::new(&format!("remote-fail-{name}"));
        let (idp, pki) = Idp::start(vec![jwk1.clone()]);
        setup(&idp);
        let ca = Idp::write_ca(&pki, &dir);
        let iss = idp.url();
        let d = serve_provider(&dir, &iss, &ca, &["--jwks-timeout", "1"]);
        let t = idp::token(&k1, "k1", &iss, "alice");
        let a = d.wait_answer(&t, |a| a.contains(want));
        assert!(
            a.starts_with("ERR keys_unavailable") && a.contains(want),
            "{name}: {a}\n{}",
            d.log()
        );
        assert!(
            d.log().contains(want),
            "{name}: the log says why: {}",
            d.log()
        );
    }
}

#[test]
fn certificates_are_checked() {
    let (k1, jwk1) = idp::es256("k1");
    // Not trusted: no --ca-file.
    let dir = Scratch::new("remote-untrusted");
    let (idp, _) = Idp::start(vec![jwk1.clone()]);
    let iss = idp.url();
    let d = Serve::start(&dir, &["--oidc-issuer", &iss, "--aud", "api"]);
    let t = idp::token(&k1, "k1", &iss, "alice");
    let a = d.wait_answer(&t, |a| a.contains("trusted CA"));
    assert!(a.contains("not signed by a trusted CA"), "{a}");
    drop(d);
    drop(idp);
    // Trusted CA, but a certificate for another host.
    let dir = Scratch::new("remote-wronghost");
    let pki = idp::pki(&["other.example"]);
    let idp = Idp::start_with(&pki, vec![jwk1]);
    let ca = Idp::write_ca(&pki, &dir);
    let iss = idp.url();
    let d = serve_provider(&dir, &iss, &ca, &[]);
    let t = idp::token(&k1, "k1", &iss, "alice");
    let a = d.wait_answer(&t, |a| a.contains("host name"));
    assert!(a.contains("not valid for this host name"), "{a}");
}

#[test]
fn unchanged_sets_cost_a_304() {
    // Each validator on its own: an ETag (If-None-Match), a Last-Modified (If-Modified-Since).
    for etag in [true, false] {
        let dir = Scratch::new(if etag {
            "remote-etag"
        } else {
            "remote-lastmod"
        });
        let (k1, jwk1) = idp::es256("k1");
        let (idp, pki) = Idp::start(vec![jwk1]);
        idp.set(|s| {
            if etag {
                s.etag = Some("\"v1\"".into());
            } else {
                s.last_modified = Some("Wed, 02 Dec 2026 10:00:00 GMT".into());
            }
            s.cache_control = Some("max-age=1".into());
        });
        let ca = Idp::write_ca(&pki, &dir);
        let iss = idp.url();
        std::fs::write(
            dir.join("jwtd.toml"),
            format!(
                "[jwks]\nca_file = \"{}\"\nmin_refresh = 1\n\n[[issuer]]\niss = \"{iss}\"\ndiscover = true\naudiences = [\"api\"]\n",
                ca.display()
            ),
        )
        .unwrap();
        let d = Serve::start(&dir, &["--config", dir.join("jwtd.toml").to_str().unwrap()]);
        let t = idp::token(&k1, "k1", &iss, "alice");
        assert!(
            d.wait_answer(&t, |a| a.starts_with("OK "))
                .starts_with("OK ")
        );
        // max-age=1 (within min_refresh = 1): refreshed about every second, each a conditional request and a
        // 304.
        let deadline = Instant::now() + Duration::from_secs(30);
        while idp.state.lock().unwrap().conditional < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            idp.state.lock().unwrap().conditional >= 2,
            "etag {etag}: {:?}\n{}",
            idp.state.lock().unwrap().hits,
            d.log()
        );
        let s = stats(&d.socket);
        assert!(s["jwks"][0]["not_modified"].as_u64().unwrap() >= 1, "{s}");
        assert!(d.verify(&t).starts_with("OK "));
    }
}

#[test]
fn past_max_stale_the_last_good_set_is_no_longer_trusted() {
    let dir = Scratch::new("remote-stale");
    let (k1, jwk1) = idp::es256("k1");
    let (idp, pki) = Idp::start(vec![jwk1]);
    let ca = Idp::write_ca(&pki, &dir);
    let iss = idp.url();
    let d = serve_provider(
        &dir,
        &iss,
        &ca,
        &["--jwks-max-stale", "2", "--jwks-cooldown", "0.5"],
    );
    let t = idp::token(&k1, "k1", &iss, "alice");
    assert!(
        d.wait_answer(&t, |a| a.starts_with("OK "))
            .starts_with("OK ")
    );
    idp.set(|s| s.mode = Mode::Status(502));
    // Stale-on-error for 2 s, then fail closed (the cached verdict does not outlive the keys either).
    let a = d.wait_answer(&t, |a| a.starts_with("ERR "));
    assert!(
        a.starts_with("ERR keys_unavailable") && a.contains("max_stale"),
        "{a}\n{}",
        d.log()
    );
    let h = d.healthz();
    assert!(
        h.starts_with("HTTP/1.1 503") && h.contains("max_stale"),
        "{h}"
    );
    idp.set(|s| s.mode = Mode::Normal);
    let a = d.wait_answer(&t, |a| a.starts_with("OK "));
    assert!(a.starts_with("OK "), "recovers: {a}");
}

#[test]
fn verify_fetches_the_keys_once() {
    let dir = Scratch::new("remote-cli");
    let (k1, jwk1) = idp::es256("k1");
    let (idp, pki) = Idp::start(vec![jwk1]);
    let ca = Idp::write_ca(&pki, &dir);
    let iss = idp.url();
    let t = idp::token(&k1, "k1", &iss, "alice");
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["verify", "--aud", "api", "--ca-file", ca.to_str().unwrap()])
            .args(extra)
            .arg(&t)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = run(&["--oidc-issuer", &iss]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("OK "), "{out}");
    let (code, out) = run(&["--jwks-url", &format!("{iss}/jwks"), "--iss", &iss]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&["--oidc-issuer", &iss, "--iss", "https://other.example"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("disagree"), "{out}");
    idp.set(|s| s.mode = Mode::Status(500));
    let (code, out) = run(&["--oidc-issuer", &iss]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("cannot fetch the keys") && out.contains("HTTP 500"),
        "{out}"
    );
}

/// A provider that says `no-cache` is still asked no more often than `min_refresh`.
#[test]
fn refreshes_respect_min_refresh_whatever_the_provider_says() {
    let dir = Scratch::new("remote-bounds");
    let (k1, jwk1) = idp::es256("k1");
    let (idp, pki) = Idp::start(vec![jwk1]);
    idp.set(|s| s.cache_control = Some("no-cache, max-age=0".into()));
    let ca = Idp::write_ca(&pki, &dir);
    let iss = idp.url();
    std::fs::write(
        dir.join("jwtd.toml"),
        format!(
            "[jwks]\nca_file = \"{}\"\nmin_refresh = 2\n\n[[issuer]]\niss = \"{iss}\"\ndiscover = true\naudiences = [\"api\"]\n",
            ca.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let d = Serve::start(&dir, &["--config", dir.join("jwtd.toml").to_str().unwrap()]);
    let t = idp::token(&k1, "k1", &iss, "alice");
    assert!(
        d.wait_answer(&t, |a| a.starts_with("OK "))
            .starts_with("OK ")
    );
    // It does refresh (polled, no fixed wait) …
    let deadline = Instant::now() + Duration::from_secs(60);
    while idp.hits("/jwks") < 3 {
        assert!(Instant::now() < deadline, "no refresh");
        std::thread::sleep(Duration::from_millis(50));
    }
    // … but no more often than min_refresh less the jitter's fifth (1.6 s), plus the first fetch.
    let fetches = idp.hits("/jwks");
    let bound = 1 + (started.elapsed().as_secs_f64() / 1.6) as usize;
    assert!(
        fetches <= bound,
        "{fetches} fetches in {:?}",
        started.elapsed()
    );
}

/// A key URL that can never be fetched stops the start with a clear message.
#[test]
fn unusable_key_urls_are_refused_at_start() {
    for (args, want) in [
        (
            vec!["--jwks-url", "http://idp.example/jwks"],
            "plain http is refused",
        ),
        (
            vec!["--jwks-url", "http://127.0.0.1:9/jwks"],
            "plain http is refused",
        ),
        (
            vec!["--oidc-issuer", "ftp://idp.example"],
            "scheme must be https",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .arg("serve")
            .args(&args)
            .args(["--socket", "/nonexistent/jwtd.sock"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
