//! A real OAuth 2.0 client against jwtd's token endpoint: `openid-client` from npm (panva's certified
//! relying-party library for Node.js), installed by this test under the target directory. It refreshes over
//! `--http-listen` (RFC 6749 §6, client id in the form as a public client), gets `invalid_grant` as an
//! `OPError` when it presents a used refresh token, and logs out with RFC 7009 revocation.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::daemon::{Daemon, Scratch, ask, sessions_daemon};
use common::process::free_port;

const PACKAGE: &str = "openid-client@5.7.1";

/// Refreshes twice with the refresh token it is given, presents the first one again, revokes the last.
const SCRIPT: &str = r#"
const { Issuer } = require('openid-client');
const { PORT, RT } = process.env;
(async () => {
  const base = `http://127.0.0.1:${PORT}`;
  const issuer = new Issuer({
    issuer: 'https://sessions.example',
    token_endpoint: `${base}/token`,
    revocation_endpoint: `${base}/revoke`,
  });
  const client = new issuer.Client({ client_id: 'web', token_endpoint_auth_method: 'none' });
  const first = await client.refresh(RT);
  console.log('first', JSON.stringify(first));
  const second = await client.refresh(first.refresh_token);
  console.log('second', JSON.stringify(second));
  try {
    await client.refresh(RT);
    console.log('reuse accepted');
  } catch (e) {
    console.log('reuse', e.error, e.error_description);
  }
  await client.revoke(second.refresh_token, 'refresh_token');
  console.log('revoked');
})().catch((e) => { console.log('failed', e.stack || e); process.exit(1); });
"#;

/// Installs the package once under target/ (reused by later runs) with this test's script; `None` when npm
/// is missing outside CI.
fn install() -> Option<PathBuf> {
    let dir = common::process::npm_install("openid-client", PACKAGE)?;
    std::fs::write(dir.join("client.cjs"), SCRIPT).unwrap();
    Some(dir)
}

fn daemon(dir: &Path, port: u16) -> Daemon {
    let listen = format!("127.0.0.1:{port}");
    let extra = ["--http-listen", &listen, "--refresh-reuse-grace", "0"];
    sessions_daemon(dir, "EdDSA", &extra, Stdio::null())
}

#[test]
fn openid_client_refreshes_detects_reuse_and_revokes() {
    let Some(install) = install() else {
        return;
    };
    let dir = Scratch::new("oauth-client");
    let port = free_port();
    let d = daemon(&dir, port);
    let issued = ask(
        &d.socket,
        &["ISSUE sub=alice&client_id=web&scope=read".into()],
    );
    let json: serde_json::Value =
        serde_json::from_str(issued[0].strip_prefix("OK ").expect("issued")).unwrap();
    let rt = json["refresh_token"].as_str().unwrap();
    let out = Command::new("node")
        .arg(install.join("client.cjs"))
        .env("NODE_PATH", install.join("node_modules"))
        .env("PORT", port.to_string())
        .env("RT", rt)
        .current_dir(&install)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |tag: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{tag} ")))
            .unwrap_or_else(|| panic!("no {tag} line in\n{text}"))
            .to_string()
    };
    let first: serde_json::Value = serde_json::from_str(&line("first")).unwrap();
    let second: serde_json::Value = serde_json::from_str(&line("second")).unwrap();
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["scope"], "read");
    assert_ne!(first["refresh_token"], second["refresh_token"]);
    // The tokens the client got verify; the used refresh token was refused as invalid_grant.
    let at = first["access_token"].as_str().unwrap();
    assert!(line("reuse").starts_with("invalid_grant"), "{text}");
    // Reuse ended the family: the access tokens are revoked, and the revocation found nothing left to end.
    let v = ask(&d.socket, &[format!("VERIFY {at}")]);
    assert!(v[0].starts_with("ERR revoked"), "{v:?}");
    assert!(
        text.lines().any(|l| l == "revoked"),
        "RFC 7009 revocation answered 200: {text}"
    );
}
