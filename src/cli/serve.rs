//! `jwtd serve`: the daemon on a Unix socket, configured by a TOML file (`--config`, several issuers) or by
//! the same key and policy flags as `verify` (one issuer). SIGHUP reloads keys and configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hyper::header::HeaderName;
use jwtd::Verifier;
use jwtd::config;
use jwtd::issuers::Issuers;
use jwtd::revocation::StoreError;
use jwtd::server::{self, Shared};
use tokio_util::sync::CancellationToken;

use super::PolicyArgs;

#[derive(Args, Debug, Clone)]
pub(super) struct ServeArgs {
    /// A TOML configuration file (issuers, keys, policy, socket); replaces the key and policy flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keys", "secrets", "jwks_url", "oidc_issuer"])]
    config: Option<PathBuf>,
    /// Development mode, no configuration needed: generates (once) an ES256 key set in --data-dir, serves it,
    /// and prints a sample token with the command that verifies it. Never use dev keys in production.
    #[arg(long, conflicts_with_all = ["config", "keys", "secrets", "jwks_url", "oidc_issuer"])]
    dev: bool,
    /// Where --dev keeps its generated keys.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".jwtd-dev",
        requires = "dev"
    )]
    data_dir: PathBuf,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Unix socket path to listen on (default: the config's `socket`, else ./jwtd.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Socket file mode, octal (default 660).
    #[arg(long, value_parser = config::parse_mode, value_name = "MODE")]
    socket_mode: Option<u32>,
    /// Group of the socket file (name or gid), so that a service's group can connect with mode 660.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Longest request line, in bytes (longer lines get `ERR too_large` and the connection is closed)
    /// [default: 32768]
    #[arg(long, value_name = "BYTES")]
    max_line: Option<usize>,
    /// Concurrent connections; more are answered `ERR too_many_connections` and closed [default: 4096,
    /// lowered to fit the open-file limit]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds a client may take to finish a request it started — a line, HTTP headers or body — before it
    /// is told and disconnected (default 10). Idle connections between requests are not limited.
    #[arg(long, value_parser = parse_timeout, value_name = "SECS")]
    client_timeout: Option<f64>,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// A uid allowed to use admin commands such as RELOAD (repeatable; default: root and the daemon's own uid,
    /// unless that is nobody). The overflow uid (nobody, 65534) is refused.
    #[arg(long = "admin-uid", value_name = "UID")]
    admin_uids: Vec<u32>,
    /// Log level: error, warn, info, debug (per-rejection lines, tokens named by digest only) or trace.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: tracing::Level,
    /// Copy a claim into a header of HTTP `/verify` answers (repeatable; replaces the default
    /// X-Jwt-Sub=sub and X-Jwt-Iss=iss). Always answered, empty when the claim is absent; a dotted claim
    /// is a path (address.country); arrays joined with --claim-array-separator; %, controls and non-ASCII
    /// percent-encoded.
    #[arg(long = "claim-header", value_name = "HEADER=CLAIM", value_parser = server::http::parse_claim_header)]
    claim_headers: Vec<(HeaderName, String)>,
    /// How arrays become claim header values: one printable character [default: ","], or json.
    #[arg(long, value_name = "SEP", value_parser = server::http::parse_arrays)]
    claim_array_separator: Option<server::http::Arrays>,
    /// Also answer the whole payload in this header (base64url of the claims JSON).
    #[arg(long, value_name = "HEADER", value_parser = server::http::parse_output_header)]
    payload_header: Option<HeaderName>,
    /// Path of HTTP auth subrequests, any method; PATH/… matches too (Envoy ext_authz appends the original
    /// path) [default: /verify].
    #[arg(long, value_name = "PATH", value_parser = server::http::parse_verify_path)]
    verify_path: Option<String>,
    /// Header that holds the token as is (a "Bearer " prefix is removed) [default: Authorization: Bearer].
    #[arg(long, value_name = "NAME", value_parser = server::http::parse_header_name)]
    token_header: Option<HeaderName>,
    /// Directory for durable state: the revocation log (created if missing). Without it, revocation
    /// commands are refused. With --dev: DATA_DIR/state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Verified-token cache size in entries; 0 turns the cache off [default: 262144].
    #[arg(long, value_name = "N")]
    cache_entries: Option<usize>,
    /// Verified-token cache byte budget, e.g. 256MiB [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = config::parse_size)]
    cache_bytes: Option<usize>,
    /// Tokens longer than this are verified every time, never cached [default: 8192].
    #[arg(long, value_name = "BYTES")]
    cache_max_token: Option<usize>,
    /// Also listen on this TCP address, e.g. 127.0.0.1:9191, for proxies that cannot reach a Unix socket
    /// (Traefik forward-auth). Both protocols are served; TCP peers never get admin commands.
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<std::net::SocketAddr>,
    /// Do not reload when a key file or the configuration file changes (SIGHUP and RELOAD still do).
    #[arg(long)]
    no_watch: bool,
    /// A scope every HTTP auth request's token must have (repeatable: all of them), read from `scope` and
    /// `scp`; tokens without it get 403 insufficient_scope. Applies to HTTP /verify and to `VERIFY <token>
    /// <METHOD> <PATH>`; plain `VERIFY <token>` only checks validity. Per-path rules: [[route]] in --config.
    #[arg(long = "require-scope", value_name = "SCOPE", conflicts_with = "config",
          value_parser = parse_scope)]
    require_scopes: Vec<String>,
    /// A TOML file of [[route]] tables (and default_route), as in --config, for a daemon configured by
    /// flags; re-read on reload. See docs/CONFIG.md, "Routes".
    #[arg(long = "routes", value_name = "FILE", conflicts_with_all = ["config", "require_scopes"])]
    routes_file: Option<PathBuf>,
    /// Share revocations with every daemon of a fleet through this Redis: redis://host:port/db,
    /// rediss://… (TLS) or unix:///path. Needs --state-dir. A password goes in --fleet-redis-password-file,
    /// never in this URL (the process list shows it). See docs/FLEET.md.
    #[arg(long, value_name = "URL")]
    fleet_redis: Option<String>,
    /// A file holding the fleet Redis password.
    #[arg(long, value_name = "FILE", requires = "fleet_redis")]
    fleet_redis_password_file: Option<PathBuf>,
    /// Trust anchors (PEM) for a rediss:// fleet Redis, instead of the system's (a private CA).
    #[arg(long, value_name = "FILE", requires = "fleet_redis")]
    fleet_redis_ca_file: Option<PathBuf>,
    /// The fleet's stream key [default: jwtd:revocations].
    #[arg(long, value_name = "KEY", requires = "fleet_redis")]
    fleet_stream: Option<String>,
    /// Seconds the stream keeps every entry, whatever the rules (a daemon down for longer may miss
    /// unrevocations) [default: 86400].
    #[arg(long, value_name = "SECS", requires = "fleet_redis")]
    fleet_keep: Option<u64>,
    /// Replicas of the fleet's Redis that must hold a revocation (Redis WAIT) before it counts as
    /// published, so that a failover to one of them loses none; until then it stays in the outbox
    /// [default: 0: the primary's answer is enough]. See docs/FLEET.md, "Failover".
    #[arg(long, value_name = "N", requires = "fleet_redis")]
    fleet_min_replicas: Option<u32>,
    #[command(flatten)]
    sessions: super::sessions::SessionArgs,
    /// Cookie that holds the token, tried when the token header is absent.
    #[arg(long, value_name = "NAME", value_parser = server::http::parse_cookie_name)]
    token_cookie: Option<String>,
}

const DEFAULT_CACHE_ENTRIES: usize = 1 << 18;
const DEFAULT_CACHE_BYTES: usize = 256 << 20;
const DEFAULT_CACHE_MAX_TOKEN: usize = 8192;

/// Builds the issuers from the config file or the flags; also what the reload signal calls.
struct Source {
    config: Option<PathBuf>,
    policy: PolicyArgs,
    require_scopes: Vec<String>,
    routes_file: Option<PathBuf>,
    /// The issuing key, whose public half every load trusts for its issuer.
    issuing: Option<Arc<jwtd::sessions::Service>>,
}

/// What a load read: the issuers with their file keys, the remote sources, and the file (if any).
struct Load {
    issuers: Issuers,
    sources: Vec<jwtd::remote::SourceConfig>,
    routes: jwtd::routes::Routes,
    file: Option<config::Config>,
}

impl Source {
    fn load(&self) -> Result<Load, String> {
        let mut load = self.load_keys()?;
        if let Some(service) = &self.issuing {
            load.issuers = super::sessions::trust(load.issuers, service)?;
        }
        Ok(load)
    }

    fn load_keys(&self) -> Result<Load, String> {
        match &self.config {
            Some(path) => {
                let loaded = config::load(path).map_err(|e| e.to_string())?;
                for w in &loaded.warnings {
                    tracing::warn!("{w}");
                }
                Ok(Load {
                    issuers: loaded.issuers,
                    sources: loaded.sources,
                    routes: loaded.routes,
                    file: Some(loaded.config),
                })
            }
            None => {
                // `--routes FILE`, or `--require-scope`: one route for every request.
                let routes = match &self.routes_file {
                    Some(path) => {
                        let shown = path.display().to_string();
                        let bytes = jwtd::keys::file::read_regular(path)?;
                        let text = String::from_utf8(bytes)
                            .map_err(|_| format!("{shown}: not UTF-8 text"))?;
                        let issuers: Vec<&str> =
                            self.policy.issuers.iter().map(String::as_str).collect();
                        jwtd::routes::config::load_file(&text, &shown, &issuers)?
                    }
                    None => self.scope_route(),
                };
                // Route audiences, for whichever accepted issuer the routes name.
                let mut policy = self.policy.policy();
                let mut route_audiences = jwtd::routes::config::route_audiences(&routes, None);
                for iss in &self.policy.issuers {
                    for a in jwtd::routes::config::route_audiences(&routes, Some(iss)) {
                        if !route_audiences.contains(&a) {
                            route_audiences.push(a);
                        }
                    }
                }
                policy.route_audiences = route_audiences;
                let v = Verifier::new(self.policy.key_set()?, policy, self.policy.limits());
                let iss = self.policy.issuers.first().map(String::as_str);
                let sources = self
                    .policy
                    .remote
                    .source(iss, self.policy.alg)?
                    .into_iter()
                    .collect();
                Ok(Load {
                    issuers: Issuers::single(v),
                    sources,
                    routes,
                    file: None,
                })
            }
        }
    }

    /// `--require-scope`: one route for every request needing those scopes (none without the flag).
    fn scope_route(&self) -> jwtd::routes::Routes {
        jwtd::routes::Routes::new(
            if self.require_scopes.is_empty() {
                Vec::new()
            } else {
                vec![jwtd::routes::Route {
                    scopes: self.require_scopes.clone(),
                    ..jwtd::routes::Route::at("/")
                }]
            },
            false,
        )
    }

    /// The files whose changes reload the daemon.
    fn files(&self) -> Vec<PathBuf> {
        match &self.config {
            Some(path) => config::files(path),
            None => self
                .policy
                .keys
                .iter()
                .chain(&self.policy.secrets)
                .chain(&self.routes_file)
                .cloned()
                .collect(),
        }
    }

    /// The client that fetches remote keys: flags over the file's `[jwks]`.
    fn client(&self, file: Option<&config::Config>) -> Result<jwtd::remote::fetch::Client, String> {
        let dir = self.config.as_ref().map(|p| {
            p.parent()
                .unwrap_or(std::path::Path::new("."))
                .to_path_buf()
        });
        let file = file.zip(dir.as_deref()).map(|(c, d)| (&c.jwks, d));
        self.policy.remote.client(file)
    }
}

/// Every setting besides the issuers, as flags over the file over the defaults: computed at start and again
/// at every reload, so a reload can apply what it can and name what needs a restart.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    socket: PathBuf,
    socket_mode: u32,
    socket_group: Option<String>,
    max_connections: usize,
    listen: Option<std::net::SocketAddr>,
    state_dir: Option<PathBuf>,
    cache: (usize, usize, usize),
    fleet: Option<jwtd::fleet::config::FleetConfig>,
    sessions: Option<super::sessions::SessionSettings>,
    live: server::Live,
}

impl Settings {
    fn new(args: &ServeArgs, file: Option<&config::Config>) -> Result<Settings, String> {
        let socket = args
            .socket
            .clone()
            .or_else(|| file.and_then(|c| c.socket.clone()))
            .unwrap_or_else(|| PathBuf::from("jwtd.sock"));
        let socket_mode = match (
            args.socket_mode,
            file.and_then(|c| c.socket_mode.as_deref()),
        ) {
            (Some(m), _) => m,
            (None, Some(m)) => config::parse_mode(m).map_err(|e| e.to_string())?,
            (None, None) => 0o660,
        };
        let defaults = server::Config::default();
        let max_line = args
            .max_line
            .or(file.and_then(|c| c.max_line))
            .unwrap_or(defaults.max_line);
        let max_connections = args
            .max_connections
            .or(file.and_then(|c| c.max_connections))
            .unwrap_or(defaults.max_connections);
        // Flags override the file's [http] table, which overrides the defaults.
        let mut http = match (file, &args.config) {
            (Some(c), Some(path)) => c
                .http_options(&path.display().to_string())
                .map_err(|e| e.to_string())?,
            _ => server::http::Options::default(),
        };
        if !args.claim_headers.is_empty() {
            http.claim_headers = args.claim_headers.clone();
        }
        if let Some(a) = args.claim_array_separator {
            http.arrays = a;
        }
        if let Some(h) = &args.payload_header {
            http.payload_header = Some(h.clone());
        }
        server::http::check_distinct(&http).map_err(|e| e.to_string())?;
        if let Some(p) = &args.verify_path {
            http.verify_path = p.clone();
        }
        if let Some(h) = &args.token_header {
            http.token_header = Some(h.clone());
        }
        if let Some(c) = &args.token_cookie {
            http.token_cookie = Some(c.clone());
        }
        let client_timeout = match args.client_timeout.or(file.and_then(|c| c.client_timeout)) {
            Some(secs) => Duration::from_secs_f64(parse_timeout(&secs.to_string())?),
            None => server::DEFAULT_CLIENT_TIMEOUT,
        };
        let state_dir = args
            .state_dir
            .clone()
            .or_else(|| {
                let (c, path) = (file?, args.config.as_ref()?);
                let dir = c.state_dir.as_ref()?;
                Some(path.parent().unwrap_or(std::path::Path::new(".")).join(dir))
            })
            .or_else(|| args.dev.then(|| args.data_dir.join("state")));
        let cache = (
            args.cache_entries
                .or(file.and_then(|c| c.cache.entries))
                .unwrap_or(DEFAULT_CACHE_ENTRIES),
            args.cache_bytes
                .or(file.and_then(|c| c.cache.max_bytes.map(|s| s.0)))
                .unwrap_or(DEFAULT_CACHE_BYTES),
            args.cache_max_token
                .or(file.and_then(|c| c.cache.max_token_len))
                .unwrap_or(DEFAULT_CACHE_MAX_TOKEN),
        );
        let fleet = fleet_settings(args, file)?;
        if fleet.is_some() && state_dir.is_none() {
            return Err(
                "a fleet (--fleet-redis or [fleet]) needs a state directory (--state-dir): the outbox and the \
                 stream position are kept there"
                    .into(),
            );
        }
        let sessions = super::sessions::settings(
            &args.sessions,
            &args.policy.issuers,
            &args.policy.audiences,
            file,
            args.config.as_deref(),
        )?;
        if sessions.is_some() && state_dir.is_none() {
            return Err(
                "sessions (--issuer-key or [sessions]) need a state directory (--state-dir): families and the \
                 session key are kept there"
                    .into(),
            );
        }
        Ok(Settings {
            fleet,
            sessions,
            socket,
            socket_mode,
            socket_group: args
                .socket_group
                .clone()
                .or_else(|| file.and_then(|c| c.socket_group.clone())),
            max_connections,
            listen: args.http_listen.or(file.and_then(|c| c.http.listen)),
            state_dir,
            cache,
            live: server::Live {
                http,
                max_line,
                client_timeout,
            },
        })
    }

    /// The settings that differ from `running` and need a restart, named as in the configuration file.
    fn restart_needed(&self, running: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |changed: bool, name: &str| {
            if changed {
                out.push(name.to_string());
            }
        };
        check(self.socket != running.socket, "socket");
        check(self.socket_mode != running.socket_mode, "socket_mode");
        check(self.socket_group != running.socket_group, "socket_group");
        check(
            self.max_connections != running.max_connections,
            "max_connections",
        );
        check(self.listen != running.listen, "http.listen");
        check(self.state_dir != running.state_dir, "state_dir");
        check(self.fleet != running.fleet, "fleet");
        check(self.sessions != running.sessions, "sessions");
        check(self.cache.0 != running.cache.0, "cache.entries");
        check(self.cache.1 != running.cache.1, "cache.max_bytes");
        check(self.cache.2 != running.cache.2, "cache.max_token_len");
        out
    }
}

/// The fleet's settings: the flags, else the file's `[fleet]` table.
fn fleet_settings(
    args: &ServeArgs,
    file: Option<&config::Config>,
) -> Result<Option<jwtd::fleet::config::FleetConfig>, String> {
    use jwtd::fleet::config::{Origin, check_min_replicas, parse};
    let secs = |s: Option<u64>| s.map(Duration::from_secs);
    if let Some(url) = &args.fleet_redis {
        let mut c = parse(
            url,
            args.fleet_redis_password_file.as_deref(),
            args.fleet_redis_ca_file.as_deref(),
            args.fleet_stream.as_deref(),
            secs(args.fleet_keep),
            Origin::CommandLine,
        )
        .map_err(|e| format!("--fleet-redis: {e}"))?;
        c.min_replicas = check_min_replicas(args.fleet_min_replicas.unwrap_or(0))
            .map_err(|e| format!("--fleet-min-replicas: {e}"))?;
        return Ok(Some(c));
    }
    let (Some(c), Some(path)) = (file, args.config.as_ref()) else {
        return Ok(None);
    };
    let Some(t) = &c.fleet else {
        return Ok(None);
    };
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    parse(
        &t.redis,
        t.password_file.as_ref().map(|p| base.join(p)).as_deref(),
        t.ca_file.as_ref().map(|p| base.join(p)).as_deref(),
        t.stream.as_deref(),
        secs(t.keep),
        Origin::File,
    )
    .and_then(|mut c| {
        c.min_replicas = check_min_replicas(t.min_replicas.unwrap_or(0))?;
        Ok(Some(c))
    })
    .map_err(|e| format!("{}: [fleet]: {e}", path.display()))
}

pub(super) fn run(args: ServeArgs) -> Result<ExitCode, super::Failure> {
    // Logs go to stderr; a closed stderr must not stop the daemon, so write errors are not reported.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a terminal: escape codes in a log file or a journal are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(args.log_level)
        .with_target(false)
        .log_internal_errors(false)
        .try_init();
    let mut args = args;
    if args.dev && args.sessions.issuer_key.is_none() {
        // Development mode issues sessions too, signed with the dev key (its public half is already trusted).
        args.sessions.issuer_key = Some(args.data_dir.join(dev::PRIVATE));
    }
    let mut policy = args.policy.clone();
    policy.issuing_key = args.sessions.issuer_key.is_some();
    let dev_token = if args.dev {
        let token = dev::prepare(&args.data_dir, &mut policy)?;
        args.policy.issuers = policy.issuers.clone();
        args.policy.audiences = policy.audiences.clone();
        Some(token)
    } else {
        None
    };
    let mut source = Source {
        config: args.config.clone(),
        policy,
        require_scopes: args.require_scopes.clone(),
        routes_file: args.routes_file.clone(),
        issuing: None,
    };
    // An invalid configuration stops the start: never serve half-configured.
    let Load {
        issuers,
        sources,
        routes,
        file,
    } = source.load()?;
    let settings = Settings::new(&args, file.as_ref())?;
    let issuers = match &settings.sessions {
        Some(s) => {
            let service = super::sessions::service(s)?;
            let issuers = super::sessions::trust(issuers, &service)?;
            source.issuing = Some(service);
            issuers
        }
        None => issuers,
    };
    let socket = settings.socket.clone();
    let mode = settings.socket_mode;
    let fd_limit = server::socket::open_file_limit();
    let (max_connections, lowered) =
        server::socket::fit_connections(settings.max_connections, fd_limit);
    if lowered {
        tracing::warn!(
            max_connections = settings.max_connections,
            open_file_limit = fd_limit,
            capped_at = max_connections,
            "the open-file limit leaves room for fewer connections than max_connections: clients beyond it \
             would wait unanswered in the backlog instead of being told too_many_connections; capped (raise \
             LimitNOFILE in the systemd unit, or ulimit -n)"
        );
    }
    let limits = server::Config {
        max_line: settings.live.max_line,
        max_connections,
    };
    let remote = if sources.is_empty() {
        None
    } else {
        let client = source.client(file.as_ref())?;
        // A URL that can never be fetched (plain http to another host, no host) stops the start, rather
        // than a daemon that retries it forever.
        for s in &sources {
            client
                .check(&s.shown_location())
                .map_err(|e| format!("issuer {:?}: {e}", s.iss))?;
        }
        if settings.state_dir.is_none() {
            tracing::warn!(
                "keys are fetched from identity providers but there is no state directory (--state-dir): a restart \
                 while a provider is down starts without its keys"
            );
        }
        Some(Arc::new(jwtd::remote::Remote::new(
            client,
            sources.clone(),
            settings.state_dir.clone(),
            issuers.clone(),
        )))
    };
    let issuers = match &remote {
        Some(r) => r.compose(),
        None => issuers,
    };
    let source = Arc::new(source);
    let mut shared = Shared::new(issuers, limits.max_line, settings.live.http.clone());
    shared.remote = remote.clone();
    shared.apply_live(settings.live.clone());
    shared.gate = arc_swap::ArcSwap::from_pointee(jwtd::routes::Gate::new(routes));
    let (cache_entries, max_bytes, max_token) = settings.cache;
    if cache_entries > 0 {
        let config = jwtd::cache::Config {
            max_entries: cache_entries,
            max_bytes,
        };
        shared.cache = Some(server::TokenCache::new(&config, max_token)?);
    }
    if let Some(dir) = &settings.state_dir {
        let options = jwtd::revocation::store::Options {
            fleet: settings.fleet.is_some(),
            sessions: settings.sessions.as_ref().map(|s| s.lifetimes),
            session_key_file: settings
                .sessions
                .as_ref()
                .and_then(|s| s.session_key_file.clone()),
        };
        let store =
            jwtd::revocation::store::Store::open_with(dir, Arc::new(server::unix_now), options)
                .map_err(|e| match e {
                    StoreError::InUse { .. } => format!("{e} (give each its own --state-dir)"),
                    e => e.to_string(),
                })?;
        let store = Arc::new(store);
        if let Some(config) = settings.fleet.clone() {
            shared.fleet = Some(Arc::new(jwtd::fleet::Fleet::new(config, store.clone())?));
        }
        shared.revocations = Some(store);
        shared.sessions = source.issuing.clone();
    }
    let overflow = server::overflow_uid();
    if !args.admin_uids.is_empty() {
        server::check_admin_uids(&args.admin_uids, overflow)
            .map_err(|e| format!("--admin-uid: {e}"))?;
        shared.admin_uids = args.admin_uids.clone();
    } else if server::own_uid() == Some(overflow) {
        tracing::warn!(
            uid = overflow,
            "running as the overflow uid (nobody): it is not an implicit admin (every nobody process and every \
             peer from an unmapped user namespace has that uid); only root may use admin commands unless \
             --admin-uid names others"
        );
    }
    let reload_source = source.clone();
    let reload_args = args.clone();
    // What runs now: live settings move with each reload, the others only with a restart.
    let running = std::sync::Mutex::new(settings.clone());
    let running_sources = sources;
    shared.reloader = Some(Box::new(move || {
        let Load {
            issuers,
            sources,
            routes,
            file,
        } = reload_source.load()?;
        let new = Settings::new(&reload_args, file.as_ref())?;
        let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
        let mut restart_needed = new.restart_needed(&running);
        if sources != running_sources {
            restart_needed.push("issuer key URLs (jwks_url, discover, [jwks])".to_string());
        }
        let live = (new.live != running.live).then(|| new.live.clone());
        running.live = new.live;
        Ok(server::Reload {
            issuers,
            routes,
            live,
            restart_needed,
        })
    }));
    let shared = Arc::new(shared);
    let group = settings
        .socket_group
        .as_deref()
        .map(server::socket::resolve_group)
        .transpose()?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = rt
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    // The signal handlers exist before the socket does: whoever sees the socket may signal at once (a
    // supervisor's reload, a test), and a SIGHUP or SIGTERM meeting the default disposition would kill the
    // daemon without a word.
    let shutdown = CancellationToken::new();
    {
        let _runtime = rt.enter();
        spawn_signal_handlers(shutdown.clone(), shared.clone())?;
    }
    let (std_listener, socket_file) = server::socket::bind(&socket, mode, group)?;
    let tcp = match settings.listen {
        None => None,
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| format!("--http-listen {addr}: {e}"))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("--http-listen {addr}: {e}"))?;
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "the TCP listener is not on a loopback address: anything that reaches it can use jwtd");
            }
            Some((addr, l))
        }
    };
    let result = rt.block_on(async {
        let unix = tokio::net::UnixListener::from_std(std_listener)
            .map_err(|e| format!("{}: {e}", socket.display()))?;
        let tcp = match tcp {
            None => None,
            Some((addr, l)) => {
                tracing::info!(addr = %l.local_addr().unwrap_or(addr), "also serving on TCP");
                Some(tokio::net::TcpListener::from_std(l).map_err(|e| format!("{addr}: {e}"))?)
            }
        };
        let listener = server::Listeners { unix, tcp };
        if let Some(f) = &shared.fleet {
            // The link runs in the background: the daemon serves whether or not Redis answers.
            f.start(shutdown.clone())?;
        }
        if let Some(r) = &remote {
            // Fetches start now, in the background: the daemon listens whether or not providers answer.
            r.start(&shared, shutdown.clone());
        }
        if !args.no_watch {
            let files = source.clone();
            server::watch::spawn(
                Box::new(move || files.files()),
                shared.clone(),
                shutdown.clone(),
            )?;
        }
        tracing::info!(
            socket = %socket.display(),
            keys = shared.issuers.load().keys_loaded(),
            "serving the line protocol and HTTP/1.1; SIGHUP reloads, SIGTERM stops"
        );
        if let Some(token) = &dev_token {
            dev::announce(&args.data_dir, &socket, token);
        }
        server::run(
            listener,
            shared.clone(),
            &limits,
            shutdown,
            Duration::from_secs(5),
        )
        .await;
        tracing::info!("shut down");
        Ok::<(), String>(())
    });
    // A reload stuck in a read (a key file on a hung network mount) holds a blocking-pool thread: dropping
    // the runtime would wait for it forever. Shutdown waits a moment, then leaves it behind.
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(socket_file);
    Ok(result.map(|()| ExitCode::SUCCESS)?)
}

mod dev {
    //! `serve --dev`: a generated development key set and a sample token.

    use std::path::Path;

    use jwtd::Alg;
    use jwtd::keys::private::{private_jwk, public_jwk, signing_key_from_file};
    use serde_json::json;

    use super::super::PolicyArgs;

    pub(super) const ISS: &str = "https://jwtd.dev";
    pub(super) const AUD: &str = "dev";
    const KID: &str = "dev-es256";
    pub(super) const PRIVATE: &str = "dev-es256.private.jwk";

    /// Makes sure the dev key set exists in `dir`, points `policy` at it, and signs a sample token (1 hour).
    pub(super) fn prepare(dir: &Path, policy: &mut PolicyArgs) -> Result<String, String> {
        let private = dir.join(PRIVATE);
        let public = dir.join("dev-jwks.json");
        if !private.exists() || !public.exists() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let (_, material) = jwtd::crypto::sign::SigningKey::generate(Alg::ES256)?;
            super::super::keygen::write_private(
                &private,
                &private_jwk(Alg::ES256, Some(KID), &material).to_string(),
            )?;
            let jwks = json!({"keys": [public_jwk(Alg::ES256, Some(KID), &material)]});
            std::fs::write(&public, format!("{jwks}\n"))
                .map_err(|e| format!("{}: {e}", public.display()))?;
        }
        policy.keys = vec![public];
        policy.issuers = vec![ISS.into()];
        policy.audiences = vec![AUD.into()];
        let bytes = std::fs::read(&private).map_err(|e| format!("{}: {e}", private.display()))?;
        let (signer, _) = signing_key_from_file(&bytes, None)
            .map_err(|e| format!("{}: {e}", private.display()))?;
        let now = super::super::unix_now();
        let claims = json!({"iss": ISS, "sub": "dev-user", "aud": AUD, "iat": now, "exp": now + 3600, "scope": "read write"});
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": KID});
        signer.sign_compact(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    pub(super) fn announce(dir: &Path, socket: &Path, token: &str) {
        let s = socket.display();
        // The binary as it was started (`cargo run` puts it under target/, not on PATH).
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .filter(|p| !p.contains(char::is_whitespace))
            .unwrap_or_else(|| "jwtd".into());
        say!(
            "\njwtd: *** DEVELOPMENT MODE: keys in {} are for development only; never trust them in production ***\n\
             jwtd: iss {ISS}, aud {AUD}. A sample token, valid for one hour:\n\n{token}\n\n\
             jwtd: try it (curl is everywhere; nc needs -N to exit, from Debian's netcat-openbsd):\n  \
             curl --unix-socket {s} -H 'Authorization: Bearer {token}' http://jwtd/verify\n  \
             printf 'VERIFY {token}\\n' | nc -N -U {s}\n\
             jwtd: sign more with:\n  \
             {exe} sign --key {}/dev-es256.private.jwk --claims '{{\"iss\":\"{ISS}\",\"aud\":\"{AUD}\",\"exp\":4102444800}}'\n\
             jwtd: it issues sessions too (docs/SESSIONS.md): printf 'ISSUE sub=dev-user\\n' | nc -N -U {s}\n\
             jwtd: (`cargo install --path .` puts jwtd on PATH)\n",
            dir.display(),
            dir.display()
        );
    }
}

/// SIGINT/SIGTERM cancel `shutdown`; SIGHUP reloads keys and configuration, keeping the old ones when the new
/// ones are invalid; SIGUSR1, SIGUSR2 and SIGALRM are ignored (logged).
fn spawn_signal_handlers(shutdown: CancellationToken, shared: Arc<Shared>) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |kind| signal(kind).map_err(|e| format!("signal handler: {e}"));
    let mut term = handler(SignalKind::terminate())?;
    let mut int = handler(SignalKind::interrupt())?;
    let mut hup = handler(SignalKind::hangup())?;
    // SIGUSR1, SIGUSR2 and SIGALRM would kill the daemon by default (and leave its socket behind): a
    // logrotate `kill -USR1` habit must not take it down. They mean nothing to jwtd; each is logged and
    // ignored.
    for (kind, name) in [
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
        (SignalKind::alarm(), "SIGALRM"),
    ] {
        let mut sig = handler(kind)?;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = sig.recv() => tracing::info!(signal = name, "ignored: jwtd gives this signal no meaning"),
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        stop.cancel();
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {}
                _ = shutdown.cancelled() => return,
            }
            let shared = shared.clone();
            match tokio::task::spawn_blocking(move || shared.reload_now()).await {
                Ok(Ok(r)) => tracing::info!(
                    keys = r.keys,
                    restart_needed = ?r.restart_needed,
                    "reloaded on SIGHUP"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reload failed; still serving the previous configuration")
                }
                Err(e) => tracing::error!(error = %e, "reload task failed"),
            }
        }
    });
    Ok(())
}

/// A client timeout in seconds: positive, at most a day.
fn parse_scope(s: &str) -> Result<String, String> {
    jwtd::routes::config::check_scope(s).map(|()| s.to_string())
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?}: the client timeout is a number of seconds above 0 and at most 86400"
        )),
    }
}
