//! Real servers started by tests (nginx, and whatever comes next: Caddy, Redis, an OpenID provider): stopped
//! cleanly, on free loopback ports, waited for.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Stops a server with SIGTERM (nginx's master, say, then stops its workers; SIGKILL would orphan them) and
/// reaps it.
pub struct Stop(pub Child);
impl Drop for Stop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on loopback (bound and released: free a moment later, good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 20 s) until `ready` says the server `what` is up.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A `GET path` to a proxy on loopback `port`, with the token as a Bearer credential if given and `extra`
/// header lines (each ending in CRLF); the status and the whole response.
pub fn proxy_get(port: u16, path: &str, token: Option<&str>, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{auth}{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// Replaces the one occurrence of `from` in a recipe from the docs (a recipe that no longer has it fails
/// here, loudly, rather than running something else).
pub fn substitute(recipe: &str, from: &str, to: &str) -> String {
    assert_eq!(
        recipe.matches(from).count(),
        1,
        "the documented recipe should contain `{from}` once"
    );
    recipe.replace(from, to)
}

/// A jwtd configuration for the proxy tests: the test issuer (HS256 test keys, audience `api`), then the
/// routes of docs/PROTOCOL.md's recipe as written. Written to `dir/jwtd.toml`.
pub fn recipe_config(dir: &std::path::Path) -> std::path::PathBuf {
    let routes = super::docs::only_block("docs/PROTOCOL.md", "toml");
    let config = dir.join("jwtd.toml");
    std::fs::write(
        &config,
        format!(
            "[[issuer]]\niss = \"https://issuer.test\"\nkeys = [\"{}\"]\naudiences = [\"api\"]\n\n{}",
            super::data("keys/HS256.public.jwks").display(),
            routes.text
        ),
    )
    .unwrap();
    config
}

/// Installs an npm `package` once under `target/<dir>` (reused by later runs) and returns that directory;
/// `None` when npm is missing outside CI (under CI a missing npm fails the test: it must not be skipped).
#[allow(dead_code)]
pub fn npm_install(dir: &str, package: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(dir);
    // The package's name without its version range (`oidc-provider@9` → `oidc-provider`).
    let name = match package.rsplit_once('@') {
        Some((n, _)) if !n.is_empty() => n,
        _ => package,
    };
    if dir
        .join("node_modules")
        .join(name)
        .join("package.json")
        .exists()
    {
        return Some(dir);
    }
    if Command::new("npm").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "npm is missing and CI is set: a test needing {package} cannot be skipped in CI"
        );
        eprintln!("\n*** SKIPPED: npm is not installed (apt-get install npm) ***\n");
        return None;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(package)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm install {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}
