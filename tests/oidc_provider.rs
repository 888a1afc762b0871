//! A real OpenID Provider: `oidc-provider` from npm (a certified OpenID Connect provider for Node.js),
//! installed by this test under the target directory, serving HTTPS on loopback with a test CA and issuing
//! JWT access tokens (client_credentials grant, resource indicators). jwtd discovers it and verifies its
//! tokens; the provider rotates its signing key and the first token of the new key verifies; the provider
//! stops and tokens keep verifying; jwtd restarted while the provider is down still verifies.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{Scratch, verify_line, wait_for};
use common::process::{Stop, free_port};

const PACKAGE: &str = "oidc-provider@9";

/// The provider's script: keys from KEYDIR (generated on first use, RSA without `alg`, as many providers
/// publish them), the first of KEYS signs.
const SCRIPT: &str = r#"
import fs from 'node:fs';
import https from 'node:https';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const { PORT, KEYDIR, KEYS, CERT, KEY } = process.env;
const keys = KEYS.split(',').map((kid) => {
  const file = `${KEYDIR}/${kid}.json`;
  if (!fs.existsSync(file)) {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(file, JSON.stringify({ ...privateKey.export({ format: 'jwk' }), kid }));
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
});
const issuer = `https://127.0.0.1:${PORT}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'svc', client_secret: 'svc-secret', grant_types: ['client_credentials'],
    redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys },
  scopes: ['read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:orders',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read', audience: 'api', accessTokenFormat: 'jwt', accessTokenTTL: 3600,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});
https.createServer({ cert: fs.readFileSync(CERT), key: fs.readFileSync(KEY) }, provider.callback())
  .listen(Number(PORT), '127.0.0.1', () => console.log('ready'));
"#;

/// Installs the package once under target/ (reused by later runs) with this test's script; `None` when npm
/// is missing outside CI.
fn install() -> Option<PathBuf> {
    let dir = common::process::npm_install("oidc-provider", PACKAGE)?;
    std::fs::write(dir.join("provider.mjs"), SCRIPT).unwrap();
    Some(dir)
}

/// The provider's node process, stopped on drop.
struct Provider(#[allow(dead_code)] Stop);

fn provider(install: &Path, dir: &Path, port: u16, keys: &str) -> Provider {
    let log = std::fs::File::create(dir.join(format!("provider-{keys}.log"))).unwrap();
    let child: Child = Command::new("node")
        .arg(install.join("provider.mjs"))
        .env("PORT", port.to_string())
        .env("KEYDIR", dir)
        .env("KEYS", keys)
        .env("CERT", dir.join("cert.pem"))
        .env("KEY", dir.join("key.pem"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let p = Provider(Stop(child));
    common::process::wait_until("oidc-provider", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    p
}

/// An access token from the provider's token endpoint (client_credentials), fetched with curl.
fn access_token(dir: &Path, port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args([
            "-u",
            "svc:svc-secret",
            "-d",
            "grant_type=client_credentials&scope=read&resource=urn:orders",
        ])
        .arg(format!("https://127.0.0.1:{port}/token"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "token endpoint: {body} {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("provider-k1.log")).unwrap_or_default()
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let bytes = jwtd::jws::b64::decode(header.as_bytes()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}

fn serve(dir: &Path, config: &Path) -> Stop {
    let socket = dir.join("jwtd.sock");
    let _ = std::fs::remove_file(&socket);
    let child = Command::new(env!("CARGO_BIN_EXE_jwtd"))
        .args(["serve", "--config"])
        .arg(config)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("jwtd.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for(&socket);
    Stop(child)
}

fn verify_eventually(socket: &Path, token: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = verify_line(socket, token);
        if a.starts_with("OK ") || Instant::now() > deadline {
            return a;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn oidc_provider_discovery_rotation_outage_and_restart() {
    let Some(install) = install() else { return };
    let dir = Scratch::new("oidc-provider");
    let pki = common::idp::pki(&["127.0.0.1", "localhost"]);
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    let port = free_port();
    let iss = format!("https://127.0.0.1:{port}");
    let config = dir.join("jwtd.toml");
    std::fs::write(
        &config,
        format!(
            r#"
state_dir = "state"

[jwks]
ca_file = "ca.pem"
cooldown = 1

[[issuer]]
iss = "{iss}"
discover = true
default_alg = "RS256"          # the provider publishes its RSA keys without alg
audiences = ["api"]
types = ["at+jwt"]
require_typ = true
"#
        ),
    )
    .unwrap();
    let socket = dir.join("jwtd.sock");

    let idp = provider(&install, &dir, port, "k1");
    let jwtd = serve(&dir, &config);
    let t1 = access_token(&dir, port);
    assert_eq!(kid(&t1), "k1");
    let a = verify_eventually(&socket, &t1);
    assert!(a.starts_with("OK "), "{a}");
    assert!(
        a.contains(r#""client_id":"svc""#) && a.contains(r#""scope":"read""#),
        "{a}"
    );
    assert!(a.contains(&format!(r#""iss":"{iss}""#)), "{a}");

    // Rotation: the provider restarts signing with k2 (k1 still published); its first token verifies.
    drop(idp);
    let idp = provider(&install, &dir, port, "k2,k1");
    let t2 = access_token(&dir, port);
    assert_eq!(kid(&t2), "k2");
    let a = verify_line(&socket, &t2);
    assert!(a.starts_with("OK "), "first token of the new key: {a}");
    assert!(verify_line(&socket, &t1).starts_with("OK "));

    // Outage: tokens keep verifying from the last good set.
    drop(idp);
    assert!(verify_line(&socket, &t1).starts_with("OK "));
    assert!(verify_line(&socket, &t2).starts_with("OK "));

    // Restart while the provider is down: the persisted set.
    drop(jwtd);
    let _jwtd = serve(&dir, &config);
    let a = verify_line(&socket, &t2);
    assert!(
        a.starts_with("OK "),
        "{a}\n{}",
        std::fs::read_to_string(dir.join("jwtd.log")).unwrap_or_default()
    );
    assert!(verify_line(&socket, &t1).starts_with("OK "));
}
