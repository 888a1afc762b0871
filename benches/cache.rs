//! The verified-token cache, side by side with `Mutex<lru::LruCache>`, `moka::sync::Cache` and
//! `quick_cache::sync::Cache` in the same run.
//!
//! - `cache/hit/<threads>t/<impl>`: a lookup of a present key in a full cache of 1M entries, plus copying the
//!   ~250-byte claims out (what the daemon does with a hit). Keys are the 128-bit PRF values the daemon
//!   computes once per token (the SipHash itself is measured separately: `cache/key/siphash24_433b`). With
//!   two threads each thread runs the same loop at once; the time is per lookup per thread.
//! - `cache/miss_insert/<impl>`: a lookup of an absent key and its insertion into the full cache (evicting).
//! - `e2e/ES256/{first,again}`: the daemon's verify path (`Shared::verify`) for an ES256 token, without
//!   and with a cache hit (issue 4 target: again ≥ 20x faster than first); `again_50_routes`: the same hit
//!   with 50 routes configured, the request's method and path parsed and matched against all of them
//!   (issue 15 budget: at most 5 % over `again`).
//!
//! Before measuring it prints, for the record: the hit ratio on Zipf traces against exact LRU (and the two
//! crates), and the memory per entry (resident set growth / entries, minus the claims' own bytes).

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jwtd::cache::{Cache, Config, key::Keyer};
use jwtd::loadgen::zipf::{RngExt, Zipf, seeded};
use jwtd::routes::Check;
use jwtd::server::verdict::Verdict;

/// The daemon's allocator, so that memory figures and allocation costs are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENTRIES: usize = 1 << 20;

fn claims() -> String {
    format!(
        r#"{{"iss":"https://idp.example.com","sub":"user-1234567890","aud":"api","exp":4102444800,"iat":1700000000,"scope":"{}","tenant":"acme"}}"#,
        ["read:item"; 12].join(" ")
    )
}

fn keys(n: usize, seed: u64) -> Vec<u128> {
    let mut rng = seeded(seed);
    (0..n).map(|_| rng.random::<u128>()).collect()
}

/// The four caches behind one interface: `get` copies the value into `out`.
trait Bench: Sync {
    fn name(&self) -> &'static str;
    fn get(&self, k: u128, out: &mut Vec<u8>) -> bool;
    fn insert(&self, k: u128, v: &str);
}

struct Ours(Cache<Box<str>>);
impl Bench for Ours {
    fn name(&self) -> &'static str {
        "jwtd"
    }
    fn get(&self, k: u128, out: &mut Vec<u8>) -> bool {
        self.0
            .get(k, 1, 0, |v| out.extend_from_slice(v.as_bytes()))
            .is_some()
    }
    fn insert(&self, k: u128, v: &str) {
        self.0.insert(k, 1, (0, u64::MAX), 0, v.into(), v.len());
    }
}

struct Lru(Mutex<lru::LruCache<u128, Box<str>>>);
impl Bench for Lru {
    fn name(&self) -> &'static str {
        "mutex_lru"
    }
    fn get(&self, k: u128, out: &mut Vec<u8>) -> bool {
        let mut c = self.0.lock().unwrap();
        c.get(&k)
            .map(|v| out.extend_from_slice(v.as_bytes()))
            .is_some()
    }
    fn insert(&self, k: u128, v: &str) {
        self.0.lock().unwrap().put(k, v.into());
    }
}

struct Moka(moka::sync::Cache<u128, std::sync::Arc<str>>);
impl Bench for Moka {
    fn name(&self) -> &'static str {
        "moka"
    }
    fn get(&self, k: u128, out: &mut Vec<u8>) -> bool {
        self.0
            .get(&k)
            .map(|v| out.extend_from_slice(v.as_bytes()))
            .is_some()
    }
    fn insert(&self, k: u128, v: &str) {
        self.0.insert(k, v.into());
    }
}

struct Quick(quick_cache::sync::Cache<u128, std::sync::Arc<str>>);
impl Bench for Quick {
    fn name(&self) -> &'static str {
        "quick_cache"
    }
    fn get(&self, k: u128, out: &mut Vec<u8>) -> bool {
        self.0
            .get(&k)
            .map(|v| out.extend_from_slice(v.as_bytes()))
            .is_some()
    }
    fn insert(&self, k: u128, v: &str) {
        self.0.insert(k, v.into());
    }
}

fn all(capacity: usize) -> Vec<Box<dyn Bench>> {
    vec![
        Box::new(Ours(Cache::new(&Config {
            max_entries: capacity,
            max_bytes: usize::MAX / 2,
        }))),
        Box::new(Lru(Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(capacity).unwrap(),
        )))),
        Box::new(Moka(moka::sync::Cache::new(capacity as u64))),
        Box::new(Quick(quick_cache::sync::Cache::new(capacity))),
    ]
}

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn report_memory() {
    let claims = claims();
    let verdict = {
        // A real Verdict, as the daemon stores it.
        use jwtd::crypto::sign::{Private, SigningKey};
        use jwtd::keys::SourceOptions;
        use jwtd::{Alg, KeySet, Limits, Policy, Verifier};
        let secret = b"0123456789abcdef0123456789abcdef";
        let mut ks = KeySet::new();
        ks.add_secret(
            secret,
            &SourceOptions {
                default_alg: Some(Alg::HS256),
                kid: None,
            },
        )
        .unwrap();
        let policy = Policy {
            audiences: Some(vec!["api".into()]),
            ..Policy::default()
        };
        let v = Verifier::new(ks, policy, Limits::default());
        let t = SigningKey::new(Alg::HS256, &Private::Hmac(secret.to_vec()))
            .unwrap()
            .sign_compact(br#"{"alg":"HS256"}"#, claims.as_bytes())
            .unwrap();
        Verdict::new(
            &v.verify(t.as_bytes(), 1_700_000_100).unwrap(),
            jwtd::issuers::Stamp {
                issuer: 0,
                epoch: 0,
            },
            jwtd::routes::Assessment::default(),
        )
        .unwrap()
    };
    let before = rss_bytes();
    let cache: Cache<Verdict> = Cache::new(&Config {
        max_entries: ENTRIES,
        max_bytes: usize::MAX / 2,
    });
    // Keys made on the fly: a key vector would count in the resident set.
    let mut rng = seeded(9);
    for _ in 0..ENTRIES * 2 {
        let k = rng.random::<u128>();
        cache.insert(k, 1, (0, u64::MAX), 0, verdict.clone(), verdict.heap_size());
    }
    let n = cache.stats().entries as usize;
    let per = (rss_bytes() - before) as f64 / n as f64;
    eprintln!(
        "memory: {n} entries of {}-byte claims: {per:.0} bytes per entry, {:.0} beyond the claims",
        claims.len(),
        per - claims.len() as f64
    );
}

fn report_hit_ratios() {
    if std::env::var_os("JWTD_BENCH_SKIP_RATIOS").is_some() {
        return;
    }
    let capacity = 16_384;
    for s in [0.8, 1.0, 1.2] {
        let caches = all(capacity);
        let zipf = Zipf::new(200_000, s);
        let mut rng = seeded(7);
        let ks = keys(200_000, 3);
        let mut hits = vec![0u32; caches.len()];
        let n = 1_000_000;
        let mut out = Vec::new();
        for _ in 0..n {
            let k = ks[zipf.sample(&mut rng)];
            for (c, h) in caches.iter().zip(&mut hits) {
                out.clear();
                if c.get(k, &mut out) {
                    *h += 1;
                } else {
                    c.insert(k, "v");
                }
            }
        }
        let line: Vec<String> = caches
            .iter()
            .zip(&hits)
            .map(|(c, h)| format!("{} {:.4}", c.name(), *h as f64 / n as f64))
            .collect();
        eprintln!(
            "hit ratio, Zipf {s}, 200k keys, capacity {capacity}: {}",
            line.join(", ")
        );
    }
}

fn bench_cache(c: &mut Criterion) {
    report_hit_ratios();
    report_memory();
    if std::env::var_os("JWTD_BENCH_REPORT_ONLY").is_some() {
        return;
    }
    let value = claims();
    let caches = all(ENTRIES);
    let present = keys(ENTRIES, 1);
    for cache in &caches {
        for &k in &present {
            cache.insert(k, &value);
        }
    }
    let mut g = c.benchmark_group("cache");
    for cache in &caches {
        // Keys every cache still holds (ours is set-associative and may have evicted some).
        let mut out = Vec::new();
        let hot: Vec<u128> = present
            .iter()
            .copied()
            .filter(|&k| {
                out.clear();
                cache.get(k, &mut out)
            })
            .take(1 << 16)
            .collect();
        g.bench_function(BenchmarkId::new("hit/1t", cache.name()), |b| {
            let mut i = 0;
            let mut out = Vec::with_capacity(512);
            b.iter(|| {
                i = (i + 1) & (hot.len() - 1);
                out.clear();
                black_box(cache.get(hot[i], &mut out))
            })
        });
        g.bench_function(BenchmarkId::new("hit/2t", cache.name()), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..2 {
                        let hot = &hot;
                        let cache = &cache;
                        s.spawn(move || {
                            let mut out = Vec::with_capacity(512);
                            let mut i = t * 7919;
                            for _ in 0..iters {
                                i = (i + 1) & (hot.len() - 1);
                                out.clear();
                                black_box(cache.get(hot[i], &mut out));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        let mut fresh = keys(1 << 22, 2).into_iter().cycle();
        g.bench_function(BenchmarkId::new("miss_insert", cache.name()), |b| {
            let mut out = Vec::new();
            b.iter(|| {
                let k = fresh.next().unwrap_or_default();
                out.clear();
                if !cache.get(k, &mut out) {
                    cache.insert(k, &value);
                }
            })
        });
    }
    let keyer = Keyer::with_key(1, 2);
    let t = vec![b'a'; 433];
    g.bench_function("key/siphash24_433b", |b| {
        b.iter(|| black_box(keyer.key(black_box(&t))))
    });
    g.finish();
}

fn bench_e2e(c: &mut Criterion) {
    use jwtd::issuers::Issuers;
    use jwtd::server::{Shared, TokenCache, stats::Batch};
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut keys = jwtd::KeySet::new();
    keys.add_file(
        &root.join("pem/p256.pub.pem"),
        &jwtd::keys::SourceOptions {
            default_alg: Some(jwtd::Alg::ES256),
            kid: None,
        },
    )
    .unwrap();
    let pem = std::fs::read(root.join("pem/p256.key.pem")).unwrap();
    let (signer, _) =
        jwtd::keys::private::signing_key_from_file(&pem, Some(jwtd::Alg::ES256)).unwrap();
    let token = signer
        .sign_compact(br#"{"alg":"ES256","typ":"JWT"}"#, claims().as_bytes())
        .unwrap();
    let policy = jwtd::Policy {
        audiences: Some(vec!["api".into()]),
        ..jwtd::Policy::default()
    };
    let now = 1_700_000_100;
    let verifier = jwtd::Verifier::new(keys, policy, jwtd::Limits::default());
    let mut shared = Shared::new(
        Issuers::single(verifier),
        1 << 15,
        jwtd::server::http::Options::default(),
    );
    let uncached = {
        let snap = shared.snapshot();
        move |shared: &Shared| {
            let mut b = Batch::default();
            shared.verify(&snap, token.as_bytes(), Check::Token, now, &mut b, |c| {
                c.len()
            })
        }
    };
    let mut g = c.benchmark_group("e2e/ES256");
    g.bench_function("first", |b| {
        b.iter(|| black_box(uncached(&shared).unwrap()))
    });
    shared.cache = Some(TokenCache::new(&Config::default(), 8192).unwrap());
    let snap = shared.snapshot();
    let token = signer
        .sign_compact(br#"{"alg":"ES256","typ":"JWT"}"#, claims().as_bytes())
        .unwrap();
    g.bench_function("again", |b| {
        b.iter(|| {
            let mut batch = Batch::default();
            black_box(
                shared
                    .verify(
                        &snap,
                        token.as_bytes(),
                        Check::Token,
                        now,
                        &mut batch,
                        |c| c.len(),
                    )
                    .unwrap(),
            )
        })
    });
    drop(snap);
    // The same hit with 50 routes, the request matching the last (every path compared): what route
    // evaluation costs a hit, the request's method and path parsed as the line protocol does.
    // A fresh cache, as after a reload (whose generation bump retires verdicts assessed with other routes).
    shared
        .gate
        .store(std::sync::Arc::new(jwtd::routes::Gate::new(fifty_routes())));
    shared.cache = Some(TokenCache::new(&Config::default(), 8192).unwrap());
    let snap = shared.snapshot();
    g.bench_function("again_50_routes", |b| {
        b.iter(|| {
            let mut batch = Batch::default();
            let target =
                jwtd::routes::target::from_line(b"GET", black_box(b"/api/r49/items/7?x=1"))
                    .unwrap();
            black_box(
                shared
                    .verify(
                        &snap,
                        token.as_bytes(),
                        Check::Request(&target),
                        now,
                        &mut batch,
                        |c| c.len(),
                    )
                    .unwrap(),
            )
        })
    });
    g.finish();
}

/// 50 routes, `/api/r0` … `/api/r49`, each for GET and HEAD, needing scope `read:item` and a tenant.
fn fifty_routes() -> jwtd::routes::Routes {
    let tenant =
        jwtd::routes::claims::ClaimRule::new("tenant", &serde_json::json!("acme")).unwrap();
    jwtd::routes::Routes::new(
        (0..50)
            .map(|i| jwtd::routes::Route {
                methods: Some(vec!["GET".into(), "HEAD".into()]),
                scopes: vec!["read:item".into()],
                claims: vec![tenant.clone()],
                ..jwtd::routes::Route::at(format!("/api/r{i}"))
            })
            .collect(),
        true,
    )
}

/// The revocation check for 10,000 distinct tokens (distinct jti and sub), with no rules and with 1M jti
/// rules (none of them matching): what a verification pays for the revocation list.
fn bench_revocation(c: &mut Criterion) {
    use jwtd::revocation::{Presented, Revocations, Rule, Target};
    let jtis: Vec<String> = (0..10_000).map(|i| format!("tok-{i}")).collect();
    let subs: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let mut g = c.benchmark_group("revocation/check_10k_tokens");
    for rules in [0usize, 1_000_000] {
        let r = Revocations::new();
        for i in 0..rules {
            r.insert(Rule {
                target: Target::Jti(format!("revoked-{i}")),
                expires: 0,
                cutoff: 0,
            });
        }
        g.bench_function(BenchmarkId::from_parameter(format!("{rules}_rules")), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % jtis.len();
                let p = Presented {
                    jti: Some(&jtis[i]),
                    sub: Some(&subs[i]),
                    iat: Some(1.0),
                    sid: None,
                    token: b"t",
                };
                black_box(r.check(&p, 10).is_ok())
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3));
    targets = bench_cache, bench_e2e, bench_revocation
}
criterion_main!(benches);
