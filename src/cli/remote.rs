//! The flags for keys fetched from an identity provider, shared by `verify` and `serve` (single-issuer
//! mode): `--jwks-url`, `--oidc-issuer`, and how to fetch (`--ca-file`, timeouts, cooldown, staleness).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jwtd::Alg;
use jwtd::config::JwksConfig;
use jwtd::keys::SourceOptions;
use jwtd::remote::fetch::{self, Client};
use jwtd::remote::schedule::Bounds;
use jwtd::remote::{self, Location, SourceConfig};

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct RemoteArgs {
    /// Fetch keys from this JWKS URL (https), refreshed in the background and on unknown kids; combined
    /// with --keys/--secret when both are given.
    #[arg(long, value_name = "URL", conflicts_with = "oidc_issuer")]
    pub jwks_url: Option<String>,
    /// The identity provider's issuer URL: tokens must carry this `iss`, and its keys are found through
    /// ISS/.well-known/openid-configuration (whose `issuer` must be exactly ISS).
    #[arg(long, value_name = "ISS")]
    pub oidc_issuer: Option<String>,
    /// Extra trust anchors for fetching keys (PEM), on top of the system's: for a private CA.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Least seconds between two key fetches caused by tokens with an unknown kid [default: 10].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub jwks_cooldown: Option<f64>,
    /// Seconds for connecting, and for a whole key fetch [default: 5].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub jwks_timeout: Option<f64>,
    /// Seconds the last good key set is used while the provider cannot be reached; then tokens get
    /// keys_unavailable [default: 86400].
    #[arg(long, value_name = "SECS")]
    pub jwks_max_stale: Option<u64>,
    /// Least seconds between two background refreshes, whatever the provider's Cache-Control says
    /// [default: 60].
    #[arg(long, value_name = "SECS")]
    pub jwks_min_refresh: Option<u64>,
    /// Allow http:// key URLs on loopback addresses (never elsewhere): for a local test provider.
    #[arg(long)]
    pub jwks_allow_http: bool,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?}: give seconds above 0 and at most 86400")),
    }
}

impl RemoteArgs {
    pub(crate) fn any(&self) -> bool {
        self.jwks_url.is_some() || self.oidc_issuer.is_some()
    }

    /// The source these flags configure, if any. `iss` is what tokens must carry (the first --iss), used
    /// to file persisted keys; `--oidc-issuer` sets it.
    pub(crate) fn source(
        &self,
        iss: Option<&str>,
        default_alg: Option<Alg>,
    ) -> Result<Option<SourceConfig>, String> {
        let (iss, location) = match (&self.jwks_url, &self.oidc_issuer) {
            (Some(url), _) => (iss.unwrap_or("").to_string(), Location::Jwks(url.clone())),
            (None, Some(oidc)) => {
                if iss.is_some_and(|i| i != oidc) {
                    return Err(format!(
                        "--oidc-issuer {oidc} and --iss {} disagree: tokens of this provider carry iss {oidc}",
                        iss.unwrap_or_default()
                    ));
                }
                (oidc.clone(), Location::Discover)
            }
            (None, None) => return Ok(None),
        };
        let mut d = Bounds::default();
        if let Some(min) = self.jwks_min_refresh {
            if min == 0 {
                return Err("--jwks-min-refresh: give at least 1 second".into());
            }
            d.min = Duration::from_secs(min);
            d.max = d.max.max(d.min);
        }
        Ok(Some(SourceConfig {
            iss,
            location,
            key_options: SourceOptions {
                default_alg,
                kid: None,
            },
            algorithms: None,
            bounds: d,
            cooldown: self
                .jwks_cooldown
                .map_or(remote::DEFAULT_COOLDOWN, Duration::from_secs_f64),
            max_stale: self
                .jwks_max_stale
                .map_or(remote::DEFAULT_MAX_STALE, Duration::from_secs),
            retry_base: remote::DEFAULT_RETRY_BASE,
        }))
    }

    /// The HTTPS client: these flags over the config file's `[jwks]` (whose `ca_file` is relative to
    /// `config_dir`).
    pub(crate) fn client(
        &self,
        file: Option<(&JwksConfig, &std::path::Path)>,
    ) -> Result<Client, String> {
        let ca = self.ca_file.clone().or_else(|| {
            let (j, dir) = file?;
            j.ca_file.as_ref().map(|p| dir.join(p))
        });
        let roots = fetch::roots(ca.as_deref()).map_err(|e| e.to_string())?;
        let timeout = self
            .jwks_timeout
            .or(file.and_then(|(j, _)| j.timeout))
            .map_or(fetch::Options::default().timeout, Duration::from_secs_f64);
        Ok(Client::new(
            roots,
            fetch::Options {
                timeout,
                allow_http_loopback: self.jwks_allow_http
                    || file.is_some_and(|(j, _)| j.allow_http),
                ..fetch::Options::default()
            },
        ))
    }
}
