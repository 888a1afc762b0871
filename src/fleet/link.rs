//! The daemon's link to the fleet's Redis (docs/FLEET.md): a supervisor that connects, reconnects with
//! backoff, and runs three loops per connection — publish the outbox, read the stream, keep house (epoch
//! check, trimming). Nothing here is on a request's path: verification and local revocation never wait
//! for Redis.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio_util::sync::CancellationToken;

use super::config::FleetConfig;
use super::stats::FleetStats;
use super::wire::{self, Published};
use crate::revocation::book::{Cursor, Incoming};
use crate::revocation::log::Prov;
use crate::revocation::store::{Store, now_ms};

/// Entries read per XREAD, and published per pipeline.
const BATCH: usize = 1000;
/// How long an XREAD waits for new entries.
const BLOCK: Duration = Duration::from_secs(2);
/// At most one publishing pipeline and one stream read per this interval: under a stream of revocations
/// what arrives meanwhile travels together, so the link, Redis and every reader wake once per batch rather
/// than once per revocation (each wake costs about as much as the entries it carries). An operation after
/// a quiet interval goes at once; under load each hop adds at most this much to the propagation lag.
pub const PACE: Duration = Duration::from_millis(5);
/// How often the epoch is checked (a Redis that lost its data) and the stream trimmed at most.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// Slack for clocks: the stream keeps entries this much older than what the rules need.
const CLOCK_SLACK_MS: u64 = 10 * 60 * 1000;
/// How long one `WAIT` for `min_replicas` lasts before it is counted short and asked again.
const REPLICA_WAIT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A running fleet link: its settings, its figures, and the store it feeds.
pub struct Fleet {
    pub config: FleetConfig,
    pub stats: Arc<FleetStats>,
    store: Arc<Store>,
    client: redis::Client,
    /// Where reading resumes (shared by successive connections).
    cursor: tokio::sync::Mutex<Cursor>,
    /// This host's name: a label in logs and metrics only (the identity is the instance id).
    host: String,
}

/// The host name, for labels: printable ASCII only, at most 64 bytes.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .take(64)
        .collect()
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a connection ended.
enum End {
    /// The stream was reset (Redis lost its data): reconnect at once and re-publish.
    Reset,
    Failed(String),
}

impl From<redis::RedisError> for End {
    fn from(e: redis::RedisError) -> End {
        End::Failed(e.to_string())
    }
}

fn epoch_key(stream: &str) -> String {
    format!("{stream}:epoch")
}

impl Fleet {
    /// Checks the settings; connects later, in [`Fleet::start`].
    pub fn new(config: FleetConfig, store: Arc<Store>) -> Result<Fleet, String> {
        // rustls (rediss://) takes the process's provider: ring, as everywhere in jwtd.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let client = match &config.ca_pem {
            None => redis::Client::open(config.info.clone()),
            Some(pem) => redis::Client::build_with_tls(
                config.info.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        }
        .map_err(|e| format!("{}: {e}", config.shown))?;
        let cursor = store.start_cursor().unwrap_or_default();
        Ok(Fleet {
            config,
            stats: Arc::default(),
            store,
            client,
            cursor: tokio::sync::Mutex::new(cursor),
            host: host_name(),
        })
    }

    /// STATS's `fleet` object and the /metrics families.
    pub fn report(&self) -> (serde_json::Value, String) {
        let instance = self.store.instance().hex();
        let outbox = self.store.outbox().len();
        (
            self.stats.json(
                &instance,
                &self.host,
                &self.config.shown,
                &self.config.stream,
                outbox,
            ),
            self.stats.prometheus(&instance, &self.host, outbox),
        )
    }

    /// Runs the link until `shutdown`, on a thread and runtime of its own: under full verification load
    /// the request workers' queues would otherwise delay publishing and applying (the propagation lag's
    /// tail), and the link must never take a worker from requests either.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken) -> Result<(), String> {
        let me = self.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("fleet runtime: {e}"))?;
        std::thread::Builder::new()
            .name("jwtd-fleet".into())
            .spawn(move || rt.block_on(me.supervise(shutdown)))
            .map_err(|e| format!("fleet thread: {e}"))?;
        Ok(())
    }

    async fn supervise(&self, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = tokio::time::Instant::now();
            let end = tokio::select! {
                _ = shutdown.cancelled() => return,
                end = self.session() => end,
            };
            self.stats.connected.store(false, Relaxed);
            match end {
                End::Reset => continue,
                End::Failed(e) => {
                    self.stats.disconnects.fetch_add(1, Relaxed);
                    if started.elapsed() > BACKOFF_MAX {
                        backoff = BACKOFF_MIN;
                    }
                    tracing::warn!(
                        redis = %self.config.shown,
                        error = %e,
                        retry_in_ms = backoff.as_millis() as u64,
                        outbox = self.store.outbox().len(),
                        "fleet: no link to Redis; verification and local revocation go on, the outbox is kept"
                    );
                }
            }
            // Full jitter in the upper half: daemons that lost Redis together do not return together.
            let jittered = backoff.mul_f64(0.5 + 0.5 * jitter());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(jittered) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn connect(&self, response: Duration) -> Result<MultiplexedConnection, End> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(response));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    async fn session(&self) -> End {
        match self.session_inner().await {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    async fn session_inner(&self) -> Result<std::convert::Infallible, End> {
        let mut commands = self.connect(Duration::from_secs(5)).await?;
        let reader = self.connect(BLOCK + Duration::from_secs(5)).await?;
        let epoch = self.epoch(&mut commands).await?;
        {
            let mut cursor = self.cursor.lock().await;
            if cursor.epoch != epoch {
                if !cursor.epoch.is_empty() {
                    self.stats.resets.fetch_add(1, Relaxed);
                    tracing::warn!(
                        stream = %self.config.stream,
                        "fleet: the stream was reset (Redis lost its data); re-publishing every rule held here"
                    );
                    self.restate(&mut commands).await?;
                }
                *cursor = Cursor {
                    id: "0-0".into(),
                    epoch: epoch.clone(),
                };
                // Durable before reading under the new epoch.
                self.store
                    .apply_foreign(Vec::new(), cursor.clone())
                    .await
                    .map_err(|e| End::Failed(e.to_string()))?;
            }
        }
        self.stats.connected.store(true, Relaxed);
        tracing::info!(
            redis = %self.config.shown,
            stream = %self.config.stream,
            instance = %self.store.instance().hex(),
            host = %self.host,
            "fleet: connected"
        );
        tokio::select! {
            r = self.publish(commands.clone()) => r,
            r = self.read(reader) => r,
            r = self.housekeeping(commands, epoch) => r,
        }
    }

    /// The stream's epoch, created if missing (a new fleet, or a Redis that lost its data).
    async fn epoch(&self, con: &mut MultiplexedConnection) -> Result<String, End> {
        let key = epoch_key(&self.config.stream);
        let current: Option<String> = redis::cmd("GET").arg(&key).query_async(con).await?;
        if let Some(e) = current {
            return Ok(e);
        }
        let mut fresh = [0u8; 8];
        let _ = getrandom::fill(&mut fresh);
        let _: Value = redis::cmd("SET")
            .arg(&key)
            .arg(crate::crypto::hex(&fresh))
            .arg("NX")
            .query_async(con)
            .await?;
        let now: Option<String> = redis::cmd("GET").arg(&key).query_async(con).await?;
        now.ok_or_else(|| End::Failed("the epoch key vanished as it was set".into()))
    }

    fn xadd(&self, p: &Published) -> redis::Cmd {
        let mut c = redis::cmd("XADD");
        c.arg(&self.config.stream).arg("*");
        for (k, v) in wire::encode(p) {
            c.arg(k).arg(v);
        }
        c
    }

    /// Re-publishes every live rule held here with its original provenance, marked restated.
    async fn restate(&self, con: &mut MultiplexedConnection) -> Result<(), End> {
        let held = self.store.held().await;
        for chunk in held.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for (rule, prov) in chunk {
                pipe.add_command(self.xadd(&Published {
                    origin: wire::Instance(prov.origin),
                    seq: prov.seq,
                    op: crate::revocation::log::Op::Revoke(rule.clone()),
                    at_ms: prov.at_ms,
                    restated: true,
                }))
                .ignore();
            }
            let () = pipe.query_async(con).await?;
        }
        tracing::info!(rules = held.len(), "fleet: held rules re-published");
        Ok(())
    }

    /// Appends the outbox to the stream in order, and marks it published once Redis has it.
    async fn publish(
        &self,
        mut con: MultiplexedConnection,
    ) -> Result<std::convert::Infallible, End> {
        let outbox = self.store.outbox().clone();
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            if outbox.is_empty() {
                tokio::select! {
                    _ = outbox.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            if let Some(last) = last.filter(|l| l.elapsed() < PACE) {
                tokio::time::sleep_until(last + PACE).await;
            }
            let batch = outbox.peek(BATCH);
            last = Some(tokio::time::Instant::now());
            let mut pipe = redis::pipe();
            for p in &batch {
                pipe.add_command(self.xadd(&Published {
                    origin: wire::Instance(p.prov.origin),
                    seq: p.prov.seq,
                    op: p.op.clone(),
                    at_ms: p.prov.at_ms,
                    restated: false,
                }))
                .ignore();
            }
            let () = pipe.query_async(&mut con).await?;
            if self.config.min_replicas > 0 {
                self.replicated(&mut con).await?;
            }
            let last_seq = batch.last().map_or(0, |p| p.prov.seq);
            self.store.published(last_seq);
            self.stats.published.fetch_add(batch.len() as u64, Relaxed);
            self.stats.publish_batches.fetch_add(1, Relaxed);
        }
    }

    /// With `min_replicas`: returns once that many replicas hold everything this connection has written
    /// (Redis `WAIT`), so that a failover to one of them loses no entry this daemon marks published. Short
    /// of them it asks again, without writing the entries again: they stay in the outbox (durably: a
    /// restart publishes them again, and receivers drop the copies) and the fleet's readers already have
    /// them from the primary.
    async fn replicated(&self, con: &mut MultiplexedConnection) -> Result<(), End> {
        let wanted = self.config.min_replicas;
        let mut short = false;
        loop {
            let held: i64 = redis::cmd("WAIT")
                .arg(wanted)
                .arg(REPLICA_WAIT.as_millis() as u64)
                .query_async(con)
                .await?;
            if held >= i64::from(wanted) {
                if short {
                    tracing::info!(
                        replicas = held,
                        "fleet: enough replicas hold the stream again; publishing goes on"
                    );
                }
                return Ok(());
            }
            self.stats.replica_timeouts.fetch_add(1, Relaxed);
            if !short {
                short = true;
                tracing::warn!(
                    redis = %self.config.shown,
                    min_replicas = wanted,
                    replicas = held,
                    outbox = self.store.outbox().len(),
                    "fleet: fewer replicas than min_replicas hold the latest entries; they stay in the outbox until enough do"
                );
            }
        }
    }

    /// Reads the stream from the cursor and applies what is new, the cursor moving with it durably.
    async fn read(&self, mut con: MultiplexedConnection) -> Result<std::convert::Infallible, End> {
        let me = self.store.instance();
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            if let Some(last) = last.filter(|l| l.elapsed() < PACE) {
                tokio::time::sleep_until(last + PACE).await;
            }
            let mut cursor = self.cursor.lock().await;
            let reply: Value = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.config.stream)
                .arg(&cursor.id)
                .query_async(&mut con)
                .await?;
            let entries = entries(reply, &self.config.stream)
                .map_err(|e| End::Failed(format!("XREAD answered {e}")))?;
            let Some(last_id) = entries.last().map(|(id, _)| id.clone()) else {
                last = None;
                continue;
            };
            last = Some(tokio::time::Instant::now());
            self.stats.read_batches.fetch_add(1, Relaxed);
            let now = now_ms();
            let mut ops = Vec::with_capacity(entries.len());
            for (id, fields) in entries {
                match wire::decode(&fields) {
                    Ok(p) => {
                        if p.origin != me && !p.restated {
                            self.stats.observe_lag(now.saturating_sub(p.at_ms));
                        }
                        ops.push(Incoming {
                            prov: Prov {
                                origin: p.origin.0,
                                seq: p.seq,
                                at_ms: p.at_ms,
                            },
                            op: p.op,
                            restated: p.restated,
                        });
                    }
                    Err(e) => {
                        self.stats.malformed.fetch_add(1, Relaxed);
                        tracing::warn!(stream = %self.config.stream, id = %id, error = %e, "fleet: malformed stream entry skipped");
                    }
                }
            }
            let next = Cursor {
                id: last_id.clone(),
                epoch: cursor.epoch.clone(),
            };
            let applied = self
                .store
                .apply_foreign(ops, next.clone())
                .await
                .map_err(|e| End::Failed(format!("applying stream entries: {e}")))?;
            *cursor = next;
            self.stats.applied.fetch_add(applied as u64, Relaxed);
            *self.stats.last_id.lock().unwrap_or_else(|p| p.into_inner()) = last_id;
        }
    }

    /// Every few seconds: is the stream still the one we read (epoch)? Every minute: trim what no rule
    /// needs.
    async fn housekeeping(
        &self,
        mut con: MultiplexedConnection,
        epoch: String,
    ) -> Result<std::convert::Infallible, End> {
        let key = epoch_key(&self.config.stream);
        let mut last_trim: Option<tokio::time::Instant> = None;
        let trim_every = TRIM_EVERY.min(self.config.keep);
        loop {
            tokio::time::sleep(HOUSEKEEPING.min(self.config.keep)).await;
            let now: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut con).await?;
            if now.as_deref() != Some(epoch.as_str()) {
                return Err(End::Reset);
            }
            if last_trim.is_none_or(|t| t.elapsed() >= trim_every) {
                last_trim = Some(tokio::time::Instant::now());
                self.trim(&mut con).await?;
            }
        }
    }

    /// `XTRIM MINID`: entries older than both the oldest live rule held here and `keep` go (less a slack
    /// for clocks). Every daemon computes a bound no newer than what its own rules need.
    async fn trim(&self, con: &mut MultiplexedConnection) -> Result<(), End> {
        let now = now_ms();
        let keep_from = now.saturating_sub(self.config.keep.as_millis() as u64);
        let oldest = self.store.oldest_live_ms().await.unwrap_or(now);
        let bound = oldest
            .min(keep_from)
            .saturating_sub(CLOCK_SLACK_MS.min(self.config.keep.as_millis() as u64));
        let removed: u64 = redis::cmd("XTRIM")
            .arg(&self.config.stream)
            .arg("MINID")
            .arg(format!("{bound}-0"))
            .query_async(con)
            .await?;
        if removed > 0 {
            self.stats.trims.fetch_add(1, Relaxed);
            tracing::debug!(removed, bound, "fleet: stream trimmed");
        }
        Ok(())
    }
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    u16::from_le_bytes(b) as f64 / u16::MAX as f64
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// The entries of an XREAD reply for `stream` (nil: none). A reply of the wrong shape is an error; an
/// entry's fields are returned as they are, for the wire format to judge.
fn entries(reply: Value, stream: &str) -> Result<Vec<(String, Fields)>, String> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(a) => a
            .into_iter()
            .map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.pop().unwrap_or(Value::Nil);
                    Ok((pair.pop().and_then(bytes).unwrap_or_default(), entries))
                }
                _ => Err("a stream that is not a [name, entries] pair".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| (bytes(k).unwrap_or_default(), v))
            .collect(),
        other => return Err(format!("{other:?}")),
    };
    let mut out = Vec::new();
    for (name, list) in streams {
        if name != stream.as_bytes() {
            continue;
        }
        let Value::Array(list) = list else {
            return Err("entries that are not a list".into());
        };
        for e in list {
            let Value::Array(mut pair) = e else {
                return Err("an entry that is not a list".into());
            };
            if pair.len() != 2 {
                return Err("an entry that is not [id, fields]".into());
            }
            let fields = pair.pop().unwrap_or(Value::Nil);
            let id = pair
                .pop()
                .and_then(bytes)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or("an entry without an ID")?;
            let flat = match fields {
                Value::Array(f) => f,
                Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                _ => Vec::new(),
            };
            let mut fields = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                fields.push((bytes(k).unwrap_or_default(), bytes(v).unwrap_or_default()));
            }
            out.push((id, fields));
        }
    }
    Ok(out)
}
