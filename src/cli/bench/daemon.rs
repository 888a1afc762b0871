//! The daemon under test: one this process starts (and stops, and cleans up after), or one already running;
//! revocations sent to it, its STATS and its CPU time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jwtd::loadgen::tokens::{self, Spec};
use jwtd::loadgen::{self, ClosedLoop, Requests};

use super::{BenchArgs, check};

/// The daemon under test: a child process (killed and cleaned up on drop), or one already running.
pub(super) struct Daemon {
    /// With its directory, when this process started it.
    pub(super) child: Option<(Child, PathBuf)>,
    pub(super) socket: PathBuf,
    /// The JWKS server it fetches its keys from (`--keys-from remote`).
    pub(super) jwks: Option<super::jwks_server::JwksServer>,
}

impl Daemon {
    /// The `/proc/PID/stat` path of a daemon we started (a running one's pid is not known).
    pub(super) fn stat_path(&self) -> Option<String> {
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

/// `n` routes `/api/r0` … `/api/r{n-1}` for GET and HEAD, each needing the corpus's scope (`read:items`)
/// and a claim rule on its audience; anything else is denied.
fn routes_file(n: usize, audience: &str) -> String {
    let mut out = String::from("default_route = \"deny\"\n");
    for i in 0..n {
        out.push_str(&format!(
            "\n[[route]]\npath = \"/api/r{i}\"\nmethods = [\"GET\", \"HEAD\"]\nscopes = [\"read:items\"]\nclaims = {{ aud = {} }}\n",
            serde_json::Value::from(audience)
        ));
    }
    out
}

/// Starts a daemon for the corpus, in a directory of its own named after `name`, with `extra` flags after
/// the --serve-arg ones.
pub(super) fn start_daemon(
    args: &BenchArgs,
    spec: &Spec,
    g: &tokens::Generated,
    name: &str,
    extra: &[String],
) -> Result<Daemon, String> {
    let dir = std::env::temp_dir().join(format!("jwtd-bench-{}{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the jwtd binary: {e}"))?;
    let socket = dir.join("jwtd.sock");
    let mut cmd = Command::new(exe);
    cmd.arg("serve");
    let mut jwks = None;
    // HMAC secrets stay in a file either way: no provider publishes them, and jwtd refuses a set that
    // mixes secrets with public keys.
    let mut files = vec![("secret.jwks", &g.secret_jwks)];
    if args.keys_from == "remote" {
        if let Some(public) = &g.public_jwks {
            let server = super::jwks_server::JwksServer::start(&[public])?;
            cmd.args([
                "--jwks-url",
                &server.url,
                "--jwks-allow-http",
                "--jwks-min-refresh",
                "1",
            ]);
            jwks = Some(server);
        }
    } else {
        files.push(("public.jwks", &g.public_jwks));
    }
    for (name, text) in files {
        if let Some(text) = text {
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
    if args.routes > 0 {
        let path = dir.join("routes.toml");
        std::fs::write(&path, routes_file(args.routes, &spec.audience))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        cmd.arg("--routes").arg(path);
    }
    cmd.args(&args.serve_args).args(extra);
    let log = std::fs::File::create(dir.join("jwtd.log")).map_err(|e| e.to_string())?;
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start jwtd serve: {e}"))?;
    let mut daemon = Daemon {
        child: Some((child, dir.clone())),
        socket,
        jwks,
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
    if daemon.jwks.is_some() {
        // The daemon listens before its first fetch: wait until the keys are there (healthz says ready).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(&daemon.socket) {
            if Instant::now() > deadline {
                return Err("jwtd serve did not fetch its keys within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(daemon)
}

/// Whether `GET /healthz` answers 200.
fn ready(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: jwtd\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

pub(super) fn revoke(socket: &Path, lines: &[String]) -> Result<(), String> {
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

pub(super) fn stats(socket: &Path) -> Option<serde_json::Value> {
    let mut c = jwtd::client::Client::connect(socket).ok()?;
    c.set_timeout(Some(jwtd::loadgen::REPLY_TIMEOUT)).ok()?;
    serde_json::from_str(&c.stats().ok()?).ok()
}

/// User + system CPU seconds of a process, from `/proc/PID/stat` (fields 14 and 15, in clock ticks of
/// 1/100 s, the Linux default).
pub(super) fn cpu_seconds(path: &str) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
