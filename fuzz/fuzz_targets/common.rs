//! A daemon's shared state in memory for the protocol targets: one HS256 issuer, the verified-token cache,
//! and a revocation store in a scratch directory (on tmpfs when there is one, so its fsyncs cost nothing).
//! Each input gets fresh state: an input replays alone exactly as it ran (and a revocation list grown by
//! millions of earlier inputs would slow every later one down).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use jwtd::server::{Shared, TokenCache, http};
use jwtd::{KeySet, Limits, Policy, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

pub const MAX_LINE: usize = 4096;

const SCRATCH_PREFIX: &str = "jwtd-fuzz-state-";

fn scratch() -> PathBuf {
    static SWEPT: OnceLock<()> = OnceLock::new();
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    // libFuzzer ends a run with exit(), which leaves the last input's state behind: each run removes
    // what runs that are no longer alive left, so at most the latest run's stays.
    SWEPT.get_or_init(|| sweep(&base));
    base.join(format!("{SCRATCH_PREFIX}{}", std::process::id()))
}

/// Removes the scratch directories of fuzzing processes that have exited.
fn sweep(base: &std::path::Path) {
    // Without /proc (not Linux) a live process cannot be told from a dead one: leave them all.
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Fresh daemon state for one input (the previous input's revocation log is deleted first).
pub fn shared() -> Arc<Shared> {
    static INPUTS: AtomicU64 = AtomicU64::new(0);
    let mut keys = KeySet::new();
    keys.add_jwks(
        include_str!("../../tests/data/keys/HS256.public.jwks").as_bytes(),
        None,
    )
    .expect("fuzz keys load");
    let policy = Policy {
        issuers: Some(vec!["https://issuer.test".into()]),
        audiences: Some(vec!["api".into()]),
        ..Policy::default()
    };
    let issuers = jwtd::issuers::Issuers::single(Verifier::new(keys, policy, Limits::default()));
    let mut shared = Shared::new(issuers, MAX_LINE, http::Options::default());
    // Routes, so that original-request headers and `VERIFY <token> <METHOD> <PATH>` are judged too.
    use jwtd::routes::{Gate, Route, Routes};
    shared.gate.store(Arc::new(Gate::new(Routes::new(
        vec![
            Route {
                methods: Some(vec!["GET".into(), "HEAD".into()]),
                scopes: vec!["read:items".into()],
                ..Route::at("/orders")
            },
            Route {
                any_scopes: vec!["admin".into(), "ops".into()],
                audiences: Some(vec!["api".into()]),
                ..Route::at("/admin")
            },
        ],
        false,
    ))));
    shared.cache = Some(
        TokenCache::new(
            &jwtd::cache::Config {
                max_entries: 64,
                max_bytes: 1 << 20,
            },
            8192,
        )
        .expect("cache"),
    );
    let n = INPUTS.fetch_add(1, Ordering::Relaxed);
    let root = scratch();
    let _ = std::fs::remove_dir_all(root.join((n.wrapping_sub(1)).to_string()));
    // Sessions too (ISSUE, REFRESH, LOGOUT, /issue, /token, /revoke with a refresh token), signing with the
    // trusted HS256 key (cheap), so that what clients send reaches the writer's decisions.
    let store = jwtd::revocation::store::Store::open_with(
        &root.join(n.to_string()),
        Arc::new(jwtd::server::unix_now),
        jwtd::revocation::store::Options {
            sessions: Some(jwtd::sessions::Lifetimes::default()),
            ..Default::default()
        },
    )
    .expect("revocation store");
    shared.revocations = Some(Arc::new(store));
    shared.sessions = Some(Arc::new(jwtd::sessions::Service {
        minter: jwtd::sessions::mint::Minter::from_jwk(
            include_bytes!("../../tests/data/keys/HS256.private.jwk"),
            "https://issuer.test".into(),
            600,
        )
        .expect("issuing key"),
        default_aud: Some("api".into()),
    }));
    Arc::new(shared)
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The peer uid an input connects as.
pub fn admin_uid(selector: u8) -> Option<u32> {
    // Half the inputs come from an admin peer, so REVOKE, UNREVOKE, RELOAD are reached past the gate.
    if selector & 1 == 1 {
        jwtd::server::own_uid()
    } else {
        Some(u32::MAX - 1)
    }
}

/// Runs one in-memory connection: `serve` gets the server end; `input` is written to the client end, which
/// then shuts down its write side; returns everything the server wrote until it closed.
pub fn converse<F, Fut>(input: &[u8], serve: F) -> Vec<u8>
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future,
{
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    runtime().block_on(async {
        let talk = async {
            let mut out = Vec::new();
            let (mut rd, mut wr) = tokio::io::split(&mut client);
            let write = async {
                // The server may close early (a fatal protocol error): a failed write is then expected.
                let _ = wr.write_all(input).await;
                let _ = wr.shutdown().await;
            };
            let (_, r) = tokio::join!(write, rd.read_to_end(&mut out));
            r.map(|_| out)
        };
        let (_, out) = tokio::join!(serve(server), talk);
        out.unwrap_or_default()
    })
}
