//! A real `jwtd serve` process for integration tests: started on a socket in a temporary directory, killed
//! and cleaned up on drop (even when an assertion fails, so no child outlives its test), plus what tests ask
//! of it: signals, raw exchanges, its memory and open files from `/proc`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use jwtd::Alg;

pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jwtd-serve-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A temporary directory removed on drop, also when the test fails.
pub struct Scratch(pub PathBuf);
impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch(temp_dir(tag))
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}
impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

/// Sends `signal` (e.g. "TERM", "HUP") to process `pid` with kill(1); asserts it was delivered.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}: {status:?}");
}

pub fn start_in(dir: PathBuf, extra: &[&str]) -> Daemon {
    let d = spawn_in(dir, extra);
    wait_for(&d.socket);
    d
}

/// Starts the daemon on `dir/jwtd.sock` (HS256 test keys, audience `api`) without waiting for its socket.
pub fn spawn_in(dir: PathBuf, extra: &[&str]) -> Daemon {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_jwtd"));
    serve
        .arg("serve")
        .arg("--keys")
        .arg(data("keys/HS256.public.jwks"))
        .args(["--aud", "api"]);
    // Not piped: nobody reads it, and a chatty daemon would block on a full pipe.
    launch(serve, dir.join("jwtd.sock"), extra, Stdio::null(), dir)
}

/// Runs `serve` (a `jwtd serve …` command) on `socket` with `extra` flags after its own, standard output
/// dropped; does not wait for the socket.
fn launch(
    mut serve: Command,
    socket: PathBuf,
    extra: &[&str],
    stderr: Stdio,
    dir: PathBuf,
) -> Daemon {
    let child = serve
        .arg("--socket")
        .arg(&socket)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Daemon { child, socket, dir }
}

pub fn start(tag: &str, extra: &[&str]) -> Daemon {
    start_in(temp_dir(tag), extra)
}

pub fn wait_for(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "daemon did not start on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `input`, half-closes, and reads everything the daemon answers until it closes.
pub fn exchange(socket: &Path, input: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let input = input.to_vec();
    let mut writer = s.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        let _ = writer.write_all(&input);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    w.join().unwrap();
    out
}

/// Sends the lines and returns one reply line per line.
pub fn ask(socket: &Path, lines: &[String]) -> Vec<String> {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    exchange(socket, input.as_bytes())
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A token valid at the daemon's real clock (the shared test claims are pinned to 2023).
pub fn valid_token() -> String {
    token_with(Alg::HS256, serde_json::json!({}), &live_claims())
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon with SIGKILL (no warning, no cleanup of its own) and hands back its directory,
    /// kept for a restart on the same state.
    pub fn kill_9(mut self) -> PathBuf {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        // Drop then removes nothing: the directory is the caller's now.
        std::mem::take(&mut self.dir)
    }

    /// Resident memory, in KiB (`VmRSS` from `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// `PING` on a fresh connection answers `PONG` (within 10 s).
    pub fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = [0u8; 5];
        s.write_all(b"PING\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"PONG\n"
    }
}

// Helpers of the daemon tests (line protocol, HTTP, config, cache, revocation files).

/// Sends raw HTTP bytes and reads until the server closes (the last request says `Connection: close`).
pub fn http(socket: &Path, raw: &str) -> String {
    exchange(socket, raw.as_bytes())
}

pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("jwtd.toml");
    std::fs::write(&path, body).unwrap();
    path
}

pub fn start_config(tag: &str, body: &str) -> Daemon {
    start_config_in(temp_dir(tag), body, Stdio::null())
}

/// Writes `body` as `dir/jwtd.toml` and serves it on `dir/jwtd.sock`.
pub fn start_config_in(dir: PathBuf, body: &str, stderr: Stdio) -> Daemon {
    start_config_with(dir, body, stderr, &[])
}

/// [`start_config_in`] with `extra` flags.
pub fn start_config_with(dir: PathBuf, body: &str, stderr: Stdio, extra: &[&str]) -> Daemon {
    let config = write_config(&dir, body);
    let mut serve = Command::new(env!("CARGO_BIN_EXE_jwtd"));
    serve.arg("serve").arg("--config").arg(&config);
    let d = launch(serve, dir.join("jwtd.sock"), extra, stderr, dir);
    wait_for(&d.socket);
    d
}

/// Serves issuer `https://a.example` (audience `api`) from a config in `dir` whose key file is a copy of the
/// HS256 test key set in `dir`, so that a test can change it and reload (with SIGHUP: file watching is off).
/// Returns the daemon and that file.
pub fn start_issuer_a_with_own_keys(dir: PathBuf, stderr: Stdio) -> (Daemon, PathBuf) {
    let keys = dir.join("keys.jwks");
    std::fs::copy(data("keys/HS256.public.jwks"), &keys).unwrap();
    let body = format!(
        "[[issuer]]\niss = \"https://a.example\"\nkeys = [\"{}\"]\naudiences = [\"api\"]\n",
        keys.display()
    );
    (start_config_with(dir, &body, stderr, &["--no-watch"]), keys)
}

/// A token for issuer `iss`, valid at the real clock, signed with the test key of `alg`.
pub fn issuer_token(alg: Alg, iss: &str) -> String {
    token_with(alg, serde_json::json!({}), &issuer_claims(iss))
}

/// Claims valid at the real clock for issuer `iss`.
pub fn issuer_claims(iss: &str) -> serde_json::Value {
    serde_json::json!({"iss": iss, "sub": "u1", "aud": "api", "exp": 4_102_444_800u64})
}

pub fn verify_line(socket: &Path, token: &str) -> String {
    exchange(socket, format!("VERIFY {token}\n").as_bytes())
}

pub fn stats(socket: &Path) -> serde_json::Value {
    let out = exchange(socket, b"STATS\n");
    serde_json::from_str(out.trim_end().strip_prefix("STATS ").unwrap()).unwrap()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `GET /verify` request (closing the connection), with the token as a Bearer credential if given.
pub fn verify_request(token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET /verify HTTP/1.1\r\nHost: jwtd\r\n{auth}Connection: close\r\n\r\n")
}

/// Streams `REVOKE JTI <tag>-<n> 0` in pipelined windows of `window` until the daemon goes away (kill -9 tests);
/// records every jti whose `OK` arrived.
pub fn stream_revocations(
    socket: &Path,
    tag: &str,
    window: usize,
    acked: &std::sync::Mutex<Vec<String>>,
) {
    use std::io::BufRead;
    let Ok(s) = UnixStream::connect(socket) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = s.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(s);
    for n in (0..).step_by(window) {
        let jtis: Vec<String> = (0..window).map(|i| format!("{tag}-{}", n + i)).collect();
        let lines: String = jtis.iter().map(|j| format!("REVOKE JTI {j} 0\n")).collect();
        if writer.write_all(lines.as_bytes()).is_err() {
            return;
        }
        for jti in jtis {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.ends_with('\n') && line.starts_with("OK {") => {
                    acked.lock().unwrap().push(jti)
                }
                Ok(_) => panic!("unexpected reply {line:?}"),
            }
        }
    }
}

/// A daemon issuing sessions (docs/SESSIONS.md) from `dir`, with nothing but the minimal setup: an issuing
/// key of `alg` (`dir/k1.jwk`, kid `s1`, generated once with `jwtd keygen`), `--iss https://sessions.example
/// --aud app`, state in `dir/state`, on `dir/jwtd.sock`; then `extra`. Its directory is the caller's (a
/// restart reuses it), not removed on drop.
#[allow(dead_code)]
pub fn sessions_daemon(dir: &Path, alg: &str, extra: &[&str], stderr: Stdio) -> Daemon {
    let key = dir.join("k1.jwk");
    if !key.exists() {
        let status = Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["keygen", "--alg", alg, "--kid", "s1", "--private-out"])
            .arg(&key)
            .arg("--public-out")
            .arg(dir.join("k1.pub.json"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let socket = dir.join("jwtd.sock");
    let _ = std::fs::remove_file(&socket);
    let mut serve = Command::new(env!("CARGO_BIN_EXE_jwtd"));
    serve
        .arg("serve")
        .arg("--issuer-key")
        .arg(&key)
        .args([
            "--iss",
            "https://sessions.example",
            "--aud",
            "app",
            "--state-dir",
        ])
        .arg(dir.join("state"));
    let d = launch(
        serve,
        socket,
        extra,
        stderr,
        dir.join("(kept: the caller's)"),
    );
    wait_for(&d.socket);
    d
}
