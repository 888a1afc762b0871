//! The daemon's TOML configuration: server settings and one or more issuers, each with its key sources and
//! claims policy. Every error names the file, the TOML key path and what is wrong; a config with any error is
//! refused as a whole.
//!
//! ```toml
//! socket = "/run/jwtd/jwtd.sock"
//! socket_mode = "660"
//!
//! [[issuer]]
//! iss = "https://idp.example.com"
//! keys = ["/etc/jwtd/idp-jwks.json"]
//! default_alg = "RS256"          # for keys without "alg" (many providers omit it)
//! audiences = ["api"]
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::alg::Alg;
use crate::claims::Policy;
use crate::issuers::Issuers;
use crate::jws::Limits;
use crate::keys::{KeySet, LoadReport, SourceOptions};
use crate::server::http;
use crate::verify::Verifier;

/// Why a configuration was refused. Every variant names the file; `Invalid` also the TOML key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (the reason names it).
    #[error("{0}")]
    Read(String),
    #[error("{file}: not UTF-8 text")]
    NotUtf8 { file: String },
    /// Not TOML, or not this schema (unknown key, wrong type).
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    /// A key whose value cannot be used.
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// A setting's value that cannot be used, and why (for the config file and the command line alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?}: {reason}")]
pub struct InvalidValue {
    pub value: String,
    pub reason: String,
}

impl InvalidValue {
    pub fn new(value: &str, reason: impl Into<String>) -> InvalidValue {
        InvalidValue {
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub socket: Option<PathBuf>,
    /// Octal, as a string: "660".
    pub socket_mode: Option<String>,
    /// Group of the socket file (name or gid).
    pub socket_group: Option<String>,
    pub max_line: Option<usize>,
    pub max_connections: Option<usize>,
    /// Seconds a client may take to finish a request it started (line, HTTP headers or body).
    pub client_timeout: Option<f64>,
    pub max_token_len: Option<usize>,
    pub max_json_depth: Option<usize>,
    /// Where durable state (the revocation log) lives; relative to the config file.
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub jwks: JwksConfig,
    /// Revocations shared with other daemons through Redis (docs/FLEET.md).
    pub fleet: Option<FleetTable>,
    /// Access and refresh tokens issued by this daemon (docs/SESSIONS.md).
    pub sessions: Option<SessionsTable>,
    #[serde(rename = "issuer", default)]
    pub issuers: Vec<IssuerConfig>,
    /// Authorization at the gate: `[[route]]` tables, first match as written.
    #[serde(rename = "route", default)]
    pub routes: Vec<crate::routes::config::RouteConfig>,
    /// `"allow"` (default) or `"deny"`: for requests no route matches.
    pub default_route: Option<String>,
}

/// The `[jwks]` table: how keys are fetched from identity providers (issuers with `jwks_url` or `discover`).
#[derive(Debug, Default, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// Extra trust anchors (PEM), relative to the config file.
    pub ca_file: Option<PathBuf>,
    /// Seconds for connecting, and for a whole fetch. Default 5.
    pub timeout: Option<f64>,
    /// Seconds between two fetches caused by unknown kids, per issuer. Default 10.
    pub cooldown: Option<f64>,
    /// Seconds a last good set is used while its source fails. Default 86400.
    pub max_stale: Option<u64>,
    /// Bounds on `Cache-Control: max-age`, and the refresh interval when there is none (seconds).
    pub min_refresh: Option<u64>,
    pub max_refresh: Option<u64>,
    pub default_refresh: Option<u64>,
    /// Allow `http://` URLs on loopback addresses (never elsewhere). Default false.
    #[serde(default)]
    pub allow_http: bool,
}

/// The `[fleet]` table.
#[derive(Debug, Default, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetTable {
    /// `redis://[user:password@]host:port/db`, `rediss://…` (TLS) or `unix:///path?db=N`.
    pub redis: String,
    /// A file holding the password (relative to the config file), instead of one in the URL.
    pub password_file: Option<PathBuf>,
    /// Trust anchors (PEM) for `rediss://`, instead of the system's (relative to the config file).
    pub ca_file: Option<PathBuf>,
    /// The stream's key. Default `jwtd:revocations`.
    pub stream: Option<String>,
    /// Seconds the stream keeps every entry whatever the rules. Default 86400.
    pub keep: Option<u64>,
    /// Replicas that must hold an entry (Redis `WAIT`) before it counts as published. Default 0.
    pub min_replicas: Option<u32>,
}

/// The `[sessions]` table (docs/SESSIONS.md).
#[derive(Debug, Default, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionsTable {
    /// The private JWK that signs access tokens (relative to the config file).
    pub issuer_key: PathBuf,
    /// The `iss` of issued tokens. Default: the first `[[issuer]]`'s.
    pub iss: Option<String>,
    /// The `aud` of issued tokens when an issue request names none. Default: the issuer's first audience.
    pub aud: Option<String>,
    /// Seconds. Defaults: 600, 14 days, 30 days, 5.
    pub access_lifetime: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub absolute_lifetime: Option<u64>,
    pub reuse_grace: Option<u64>,
    /// The session key shared by the daemons of a fleet (relative to the config file).
    pub key_file: Option<PathBuf>,
}

/// The `[cache]` table: the verified-token cache.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Entries; 0 turns the cache off.
    pub entries: Option<usize>,
    /// Byte budget: a number or a string with a unit ("256MiB").
    pub max_bytes: Option<Size>,
    /// Tokens longer than this are not cached.
    pub max_token_len: Option<usize>,
}

/// A byte count written as a number or as a string with a unit.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct Size(pub usize);

impl TryFrom<toml::Value> for Size {
    type Error = InvalidValue;
    fn try_from(v: toml::Value) -> Result<Size, InvalidValue> {
        match v {
            toml::Value::Integer(n) => usize::try_from(n)
                .map(Size)
                .map_err(|_| InvalidValue::new(&n.to_string(), "not a byte count")),
            toml::Value::String(s) => parse_size(&s).map(Size),
            other => Err(InvalidValue::new(&other.to_string(), "not a byte count")),
        }
    }
}

/// Parses `4096`, `64K`, `256MiB`, `1G` (units are powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, InvalidValue> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| InvalidValue::new(s, "not a size like 4096, 64K or 256MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(InvalidValue::new(s, "unknown unit (use K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| InvalidValue::new(s, "too large"))
}

/// The `[http]` table: auth subrequests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Also serve on this TCP address (for proxies that cannot reach a Unix socket).
    pub listen: Option<std::net::SocketAddr>,
    pub verify_path: Option<String>,
    pub token_header: Option<String>,
    pub token_cookie: Option<String>,
    /// Header name → claim copied into `/verify` answers.
    #[serde(default)]
    pub claim_headers: std::collections::BTreeMap<String, String>,
    /// Which ways of naming the original request are believed: "nginx", "forward-auth", "envoy".
    pub original_request: Option<Vec<String>>,
    /// How arrays become claim header values: one separator character (default ",") or "json".
    pub array_separator: Option<String>,
    /// A header carrying the whole payload (base64url of the claims JSON).
    pub payload_header: Option<String>,
}

impl Config {
    /// The HTTP options this file asks for, on top of the defaults (`None` fields stay default). Errors name
    /// the file and key.
    pub fn http_options(&self, shown: &str) -> Result<http::Options, ConfigError> {
        use crate::server::http as h;
        let mut o = h::Options::default();
        let c = &self.http;
        if let Some(p) = &c.verify_path {
            o.verify_path =
                h::parse_verify_path(p).map_err(|e| invalid(shown, "http.verify_path", e))?;
        }
        if let Some(name) = &c.token_header {
            o.token_header = Some(
                h::parse_header_name(name).map_err(|e| invalid(shown, "http.token_header", e))?,
            );
        }
        if let Some(name) = &c.token_cookie {
            o.token_cookie = Some(
                h::parse_cookie_name(name).map_err(|e| invalid(shown, "http.token_cookie", e))?,
            );
        }
        if let Some(sep) = &c.array_separator {
            o.arrays =
                h::parse_arrays(sep).map_err(|e| invalid(shown, "http.array_separator", e))?;
        }
        if let Some(name) = &c.payload_header {
            o.payload_header = Some(
                h::parse_output_header(name)
                    .map_err(|e| invalid(shown, "http.payload_header", e))?,
            );
        }
        if let Some(names) = &c.original_request {
            o.trust = crate::routes::target::Trust::from_names(names)
                .map_err(|e| invalid(shown, "http.original_request", e))?;
        }
        if !c.claim_headers.is_empty() {
            o.claim_headers.clear();
            for (header, claim) in &c.claim_headers {
                o.claim_headers.push(
                    h::parse_claim_header(&format!("{header}={claim}"))
                        .map_err(|e| invalid(shown, &format!("http.claim_headers.{header}"), e))?,
                );
            }
        }
        h::check_distinct(&o).map_err(|e| invalid(shown, "http", e))?;
        Ok(o)
    }
}

/// One `[[issuer]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    pub iss: String,
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    #[serde(default)]
    pub secrets: Vec<PathBuf>,
    pub default_alg: Option<String>,
    /// Algorithms this issuer may use; keys bound to others are refused at load. Default: any.
    pub algorithms: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub leeway: Option<u64>,
    pub max_age: Option<u64>,
    #[serde(default)]
    pub allow_no_exp: bool,
    #[serde(default)]
    pub require_sub: bool,
    #[serde(default)]
    pub required_claims: Vec<String>,
    pub types: Option<Vec<String>>,
    #[serde(default)]
    pub require_typ: bool,
    /// This issuer's JWKS URL (fetched, refreshed; combined with `keys`/`secrets`).
    pub jwks_url: Option<String>,
    /// Find the JWKS URL in `{iss}/.well-known/openid-configuration` (whose `issuer` must equal `iss`).
    #[serde(default)]
    pub discover: bool,
}

/// A loaded configuration: the issuers, ready to serve, and notes about refused keys.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The issuers with their file keys (remote keys are added by [`crate::remote::Remote`]).
    pub issuers: Issuers,
    /// Where issuers' remote keys come from.
    pub sources: Vec<crate::remote::SourceConfig>,
    /// The `[[route]]` tables and `default_route`.
    pub routes: crate::routes::Routes,
    pub warnings: Vec<String>,
}

/// Reads and validates `path`, loading every key file. Relative key paths are relative to the config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let shown = path.display().to_string();
    let bytes = crate::keys::file::read_regular(path).map_err(ConfigError::Read)?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        file: shown.clone(),
    })?;
    parse(&text, path.parent().unwrap_or(Path::new(".")), &shown)
}

/// The files a configuration depends on: itself, and every key and secret file its issuers name (resolved
/// as the loader resolves them). Just the file itself when it cannot be read or parsed now.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    let base = path.parent().unwrap_or(Path::new("."));
    let parsed = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str::<Config>(&t).ok());
    if let Some(c) = parsed {
        for ic in &c.issuers {
            out.extend(ic.keys.iter().chain(&ic.secrets).map(|f| base.join(f)));
        }
    }
    out
}

/// Validates configuration `text` (named `shown` in errors), loading key files relative to `base`.
pub fn parse(text: &str, base: &Path, shown: &str) -> Result<Loaded, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: shown.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let routes = routes(&config, shown)?;
    let (issuers, sources, warnings) = build(&config, base, shown, &routes)?;
    Ok(Loaded {
        config,
        issuers,
        sources,
        routes,
        warnings,
    })
}

/// The `[jwks]` settings as a template source (its `iss` and `location` are the issuer's).
fn remote_settings(
    j: &JwksConfig,
    shown: &str,
) -> Result<crate::remote::SourceConfig, ConfigError> {
    use crate::remote::{self as r, schedule::Bounds};
    let d = Bounds::default();
    let secs = |v: Option<f64>, key: &str, default: Duration| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if s.is_finite() && s > 0.0 && s <= 86400.0 => Ok(Duration::from_secs_f64(s)),
            Some(s) => Err(invalid(
                shown,
                key,
                format_args!("{s}: give seconds in (0, 86400]"),
            )),
        }
    };
    let bounds = Bounds {
        min: j.min_refresh.map_or(d.min, Duration::from_secs),
        max: j.max_refresh.map_or(d.max, Duration::from_secs),
        default: j.default_refresh.map_or(d.default, Duration::from_secs),
    };
    if bounds.min.is_zero() || bounds.min > bounds.max {
        return Err(invalid(
            shown,
            "jwks.min_refresh",
            "must be at least 1 and at most jwks.max_refresh",
        ));
    }
    Ok(r::SourceConfig {
        iss: String::new(),
        location: r::Location::Discover,
        key_options: SourceOptions::default(),
        algorithms: None,
        bounds,
        cooldown: secs(j.cooldown, "jwks.cooldown", r::DEFAULT_COOLDOWN)?,
        max_stale: j
            .max_stale
            .map_or(r::DEFAULT_MAX_STALE, Duration::from_secs),
        retry_base: r::DEFAULT_RETRY_BASE,
    })
}

/// A `ConfigError::Invalid` for `key` of `file`.
fn invalid(file: &str, key: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        key: key.to_string(),
        message: message.to_string(),
    }
}

type Built = (Issuers, Vec<crate::remote::SourceConfig>, Vec<String>);

/// The `[[route]]` tables, checked against the configured issuers.
fn routes(config: &Config, shown: &str) -> Result<crate::routes::Routes, ConfigError> {
    use crate::routes::config as rc;
    let issuers: Vec<&str> = config.issuers.iter().map(|i| i.iss.as_str()).collect();
    let deny = rc::default_route(config.default_route.as_deref())
        .map_err(|e| invalid(shown, &e.key, e.message))?;
    rc::build(&config.routes, deny, &issuers).map_err(|e| invalid(shown, &e.key, e.message))
}

fn build(
    config: &Config,
    base: &Path,
    shown: &str,
    routes: &crate::routes::Routes,
) -> Result<Built, ConfigError> {
    if config.issuers.is_empty() {
        return Err(ConfigError::Syntax {
            file: shown.to_string(),
            message: "no [[issuer]] table: at least one issuer is required".into(),
        });
    }
    if let Some(mode) = &config.socket_mode {
        parse_mode(mode).map_err(|e| invalid(shown, "socket_mode", e))?;
    }
    config.http_options(shown)?;
    if let Some(t) = config.client_timeout
        && !(t > 0.0 && t <= 86_400.0)
    {
        return Err(invalid(
            shown,
            "client_timeout",
            format_args!("{t} is not a number of seconds above 0 and at most 86400"),
        ));
    }
    if let Some(d) = config.max_json_depth
        && !(1..=crate::json::MAX_DEPTH_CEILING).contains(&d)
    {
        return Err(invalid(
            shown,
            "max_json_depth",
            format_args!(
                "{d} is not between 1 and {} (the claims must stay readable by every path that reads \
                 them: revocation, claim headers, introspection)",
                crate::json::MAX_DEPTH_CEILING
            ),
        ));
    }
    let limits = Limits {
        max_token_len: config
            .max_token_len
            .unwrap_or(Limits::default().max_token_len),
        max_json_depth: config
            .max_json_depth
            .unwrap_or(Limits::default().max_json_depth),
        ..Limits::default()
    };
    let mut list: Vec<(String, Verifier)> = Vec::new();
    let mut sources = Vec::new();
    let mut warnings = Vec::new();
    let remote = remote_settings(&config.jwks, shown)?;
    for (i, ic) in config.issuers.iter().enumerate() {
        let at = |key: &str| format!("issuer[{i}].{key}");
        let invalid = |key: &str, message: &dyn std::fmt::Display| invalid(shown, key, message);
        if list.iter().any(|(iss, _)| *iss == ic.iss) {
            return Err(invalid(
                &at("iss"),
                &format_args!("{:?} is configured twice", ic.iss),
            ));
        }
        let alg = |s: &str, key: &str| s.parse::<Alg>().map_err(|e| invalid(&at(key), &e));
        let default_alg = ic
            .default_alg
            .as_deref()
            .map(|a| alg(a, "default_alg"))
            .transpose()?;
        let allowed: Option<Vec<Alg>> = match &ic.algorithms {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|a| alg(a, "algorithms"))
                    .collect::<Result<_, _>>()?,
            ),
        };
        let opts = SourceOptions {
            default_alg,
            kid: None,
        };
        let mut keys = KeySet::new();
        let mut report = |r: LoadReport, key: String| {
            for e in r.refused {
                warnings.push(format!("{key}: {e} (skipped)"));
            }
            for w in r.warnings {
                warnings.push(format!("{key}: {w}"));
            }
        };
        for (j, file) in ic.keys.iter().enumerate() {
            let full = base.join(file);
            let key = format!("{} ({})", at(&format!("keys[{j}]")), full.display());
            let r = keys.add_file(&full, &opts).map_err(|e| invalid(&key, &e))?;
            report(r, key);
        }
        for (j, file) in ic.secrets.iter().enumerate() {
            let full = base.join(file);
            let key = format!("{} ({})", at(&format!("secrets[{j}]")), full.display());
            let bytes = crate::keys::file::read_regular(&full).map_err(|e| invalid(&key, &e))?;
            let r = keys
                .add_secret(&bytes, &opts)
                .map_err(|e| invalid(&key, &e))?;
            report(r, key);
        }
        if let Some(allowed) = &allowed {
            let before = keys.len();
            keys.retain(|k| allowed.contains(&k.alg()));
            if keys.len() < before {
                warnings.push(format!(
                    "{}: {} key(s) bound to algorithms outside this list were dropped",
                    at("algorithms"),
                    before - keys.len()
                ));
            }
        }
        let location = match (&ic.jwks_url, ic.discover) {
            (Some(_), true) => {
                return Err(invalid(
                    &at("discover"),
                    &"give jwks_url or discover = true, not both",
                ));
            }
            (Some(url), false) => Some(crate::remote::Location::Jwks(url.clone())),
            (None, true) => Some(crate::remote::Location::Discover),
            (None, false) => None,
        };
        if keys.is_empty() && location.is_none() {
            return Err(invalid(
                &at("keys"),
                &format_args!(
                    "no usable verification key for {:?} (give keys, secrets, jwks_url or discover = true)",
                    ic.iss
                ),
            ));
        }
        if let Some(location) = location {
            sources.push(crate::remote::SourceConfig {
                iss: ic.iss.clone(),
                location,
                key_options: opts.clone(),
                algorithms: allowed.clone(),
                ..remote.clone()
            });
        }
        if let Some(l) = ic.leeway
            && l > crate::revocation::MAX_LEEWAY_SECS
        {
            return Err(invalid(
                &at("leeway"),
                &format_args!(
                    "{l} s is more than a day of clock skew (at most {}: revocation rules are kept that \
                     long past a token's exp)",
                    crate::revocation::MAX_LEEWAY_SECS
                ),
            ));
        }
        let d = Policy::default();
        let policy = Policy {
            leeway: ic.leeway.unwrap_or(d.leeway),
            require_exp: !ic.allow_no_exp,
            max_age: ic.max_age,
            issuers: Some(vec![ic.iss.clone()]),
            audiences: ic.audiences.clone(),
            route_audiences: crate::routes::config::route_audiences(routes, Some(&ic.iss)),
            require_sub: ic.require_sub,
            required_claims: ic.required_claims.clone(),
            types: ic.types.clone().unwrap_or(d.types),
            allow_missing_typ: !ic.require_typ,
        };
        list.push((ic.iss.clone(), Verifier::new(keys, policy, limits.clone())));
    }
    Ok((Issuers::by_iss(list), sources, warnings))
}

/// An octal file mode such as "660".
pub fn parse_mode(s: &str) -> Result<u32, InvalidValue> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| InvalidValue::new(s, "not an octal file mode like 660"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_with_units() {
        use super::parse_size;
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1 G"), Ok(1 << 30));
        for bad in ["", "K", "1T", "-1", "1.5M", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
