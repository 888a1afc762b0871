//! `jwtd serve`'s session settings (docs/SESSIONS.md): the flags, else the file's `[sessions]` table; the
//! issuing key, and the trust in its public half for the issuer it signs as.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jwtd::config;
use jwtd::issuers::Issuers;
use jwtd::sessions::{Lifetimes, Service, mint::Minter};

#[derive(clap::Args, Debug, Clone, Default)]
pub(super) struct SessionArgs {
    /// Issue sessions (docs/SESSIONS.md): the private JWK (`jwtd keygen --private-out`) that signs access
    /// tokens. They carry the first --iss and --aud, and the daemon trusts this key's public half for that
    /// issuer. Needs --state-dir.
    #[arg(long, value_name = "FILE")]
    pub(super) issuer_key: Option<PathBuf>,
    /// Access token lifetime in seconds [default: 600].
    #[arg(long, value_name = "SECS", requires = "issuer_key")]
    access_lifetime: Option<u64>,
    /// A session unused for this many seconds ends [default: 1209600, 14 days].
    #[arg(long, value_name = "SECS", requires = "issuer_key")]
    refresh_idle: Option<u64>,
    /// A session ends this many seconds after its login, whatever happens [default: 2592000, 30 days].
    #[arg(long, value_name = "SECS", requires = "issuer_key")]
    refresh_lifetime: Option<u64>,
    /// Seconds after a rotation during which the previous refresh token gets the same answer again (a
    /// client retrying after a lost reply) instead of counting as a reuse [default: 5].
    #[arg(long, value_name = "SECS", requires = "issuer_key")]
    refresh_reuse_grace: Option<u64>,
    /// The session key (64 hex digits, e.g. `openssl rand -hex 32`), when daemons of a fleet share sessions:
    /// each must hold the same, so that a refresh token issued by one can be refreshed at another [default:
    /// one of this daemon's own, in state_dir/sessions/key].
    #[arg(long, value_name = "FILE", requires = "issuer_key")]
    session_key_file: Option<PathBuf>,
}

/// What the sessions run with.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SessionSettings {
    pub key_file: PathBuf,
    pub iss: String,
    pub aud: Option<String>,
    pub lifetimes: Lifetimes,
    pub session_key_file: Option<PathBuf>,
}

/// The flags, else the file's `[sessions]`; `None` when neither issues sessions.
pub(super) fn settings(
    args: &SessionArgs,
    flag_issuers: &[String],
    flag_audiences: &[String],
    file: Option<&config::Config>,
    config_path: Option<&Path>,
) -> Result<Option<SessionSettings>, String> {
    let d = Lifetimes::default();
    let settings = if let Some(key) = &args.issuer_key {
        let iss = flag_issuers.first().cloned().ok_or(
            "--issuer-key needs --iss: issued tokens carry it, and the daemon trusts the key for it",
        )?;
        SessionSettings {
            key_file: key.clone(),
            iss,
            aud: flag_audiences.first().cloned(),
            lifetimes: Lifetimes {
                access: args.access_lifetime.unwrap_or(d.access),
                idle: args.refresh_idle.unwrap_or(d.idle),
                absolute: args.refresh_lifetime.unwrap_or(d.absolute),
                reuse_grace: args.refresh_reuse_grace.unwrap_or(d.reuse_grace),
            },
            session_key_file: args.session_key_file.clone(),
        }
    } else {
        let (Some(c), Some(path)) = (file, config_path) else {
            return Ok(None);
        };
        let Some(t) = &c.sessions else {
            return Ok(None);
        };
        let shown = path.display();
        let first = c.issuers.first();
        let iss = t
            .iss
            .clone()
            .or_else(|| first.map(|i| i.iss.clone()))
            .ok_or_else(|| format!("{shown}: [sessions] needs iss, or an [[issuer]]"))?;
        if !c.issuers.iter().any(|i| i.iss == iss) {
            return Err(format!(
                "{shown}: [sessions] iss {iss:?} is not an [[issuer]] of this file: the daemon could not \
                 verify what it issues"
            ));
        }
        let aud = t.aud.clone().or_else(|| {
            c.issuers
                .iter()
                .find(|i| i.iss == iss)
                .and_then(|i| i.audiences.as_ref()?.first().cloned())
        });
        SessionSettings {
            key_file: path.parent().unwrap_or(Path::new(".")).join(&t.issuer_key),
            iss,
            aud,
            lifetimes: Lifetimes {
                access: t.access_lifetime.unwrap_or(d.access),
                idle: t.idle_timeout.unwrap_or(d.idle),
                absolute: t.absolute_lifetime.unwrap_or(d.absolute),
                reuse_grace: t.reuse_grace.unwrap_or(d.reuse_grace),
            },
            session_key_file: t
                .key_file
                .as_ref()
                .map(|k| path.parent().unwrap_or(Path::new(".")).join(k)),
        }
    };
    let l = &settings.lifetimes;
    if l.access == 0 || l.idle == 0 || l.absolute == 0 {
        return Err("session lifetimes must be at least one second".into());
    }
    if l.access > 86_400 {
        return Err(format!(
            "access token lifetime {} s: at most a day (a stolen access token is worth its lifetime)",
            l.access
        ));
    }
    if l.reuse_grace > 300 {
        return Err(format!(
            "refresh reuse grace {} s: at most 300 (a thief racing the client is caught only after it)",
            l.reuse_grace
        ));
    }
    Ok(Some(settings))
}

/// Reads the issuing key.
pub(super) fn service(s: &SessionSettings) -> Result<Arc<Service>, String> {
    let bytes = jwtd::keys::file::read_regular(&s.key_file)?;
    let minter = Minter::from_jwk(&bytes, s.iss.clone(), s.lifetimes.access)
        .map_err(|e| format!("{}: {e}", s.key_file.display()))?;
    Ok(Arc::new(Service {
        minter,
        default_aud: s.aud.clone(),
    }))
}

/// `issuers` with the issuing key's public half trusted for `iss` (the single verifier of the flags, or
/// the `[[issuer]]` named `iss`).
pub(super) fn trust(issuers: Issuers, service: &Service) -> Result<Issuers, String> {
    let iss = service.minter.iss();
    let i = (0..issuers.len())
        .find(|&i| issuers.iss(i).is_none_or(|s| s == iss))
        .ok_or_else(|| format!("no issuer {iss:?} to trust the issuing key for"))?;
    let Some(v) = issuers.verifier(i) else {
        return Err(format!("no issuer {iss:?} to trust the issuing key for"));
    };
    let mut keys = v.keys().clone();
    let kid = service.minter.kid();
    if let Some(k) = keys.keys().iter().find(|k| k.kid.as_deref() == Some(kid)) {
        // The same key already trusted (the dev key set, or the public half given with --keys): nothing to
        // add. Another key under this kid would make every issued token ambiguous: refused.
        const PROBE: &[u8] = b"jwtd issuing key probe";
        let sig = service.minter.signature(PROBE)?;
        if k.key.verify(PROBE, &sig).is_ok() {
            return Ok(issuers);
        }
        return Err(format!(
            "the issuing key's kid {kid:?} already names another key of issuer {iss:?}: give the issuing key a kid of its own"
        ));
    }
    let jwk = serde_json::to_vec(service.minter.public_jwk()).map_err(|e| e.to_string())?;
    keys.add_document(&jwk, &jwtd::keys::SourceOptions::default())
        .map_err(|e| format!("the issuing key's public half: {e}"))?;
    let verifier = jwtd::verify::Verifier::new(keys, v.policy().clone(), v.limits().clone());
    let epoch = issuers.epoch(i).unwrap_or(0);
    let unavailable = issuers.unavailable(i).map(str::to_owned);
    Ok(issuers.with_issuer(i, verifier, epoch, unavailable))
}
