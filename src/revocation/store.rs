//! The durable revocation list: the in-memory [`Revocations`] in front of the [`Log`], with group commit.
//!
//! One writer thread owns the log. Revocations from every connection queue up on a channel; the writer
//! takes everything waiting (up to [`MAX_BATCH`]), appends it in one write, fsyncs once, applies it to the
//! in-memory set, and only then acknowledges each request — so an acknowledged revocation is on disk and in
//! force, and many concurrent revocations share one fsync, as a database WAL does.
//!
//! Compaction runs on the same thread when the log holds many more records than live rules: expired rules
//! are dropped from memory and the log is rewritten (crash-safe, see [`log::compact`]).
//!
//! Dropping rules trusts the wall clock only so far. A clock set far ahead (a bad RTC before NTP syncs)
//! would otherwise drop rules still needed, for good: the log would be rewritten without them, and the
//! revoked tokens verify again once the clock is right. So rules are dropped by [`Store::gc_time`]: the wall
//! clock, but never more than [`MAX_CLOCK_LEAD`] past the newest record of the log at start plus the time
//! the monotonic clock has measured since — a legitimate long stop only delays dropping, a wrong clock
//! cannot make it happen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::book::{Book, Cursor, Incoming, Outbox};
use super::dir::StateDir;
use super::instance::Instance;
use super::log::{self, Log, Mark, Op, Prov, Record};
use super::{Revocations, Rule, StoreError};
use crate::sessions::{self, Lifetimes, Outcome, book::Decision, book::Families, record};

/// How far past the log's newest record (plus the time measured since the start) the wall clock is trusted
/// for dropping rules.
pub const MAX_CLOCK_LEAD: u64 = 86_400;

/// Most operations committed by one write + fsync.
pub const MAX_BATCH: usize = 4096;

/// Counters of the writer.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub commits: AtomicU64,
    pub ops: AtomicU64,
    pub compactions: AtomicU64,
    pub failures: AtomicU64,
    pub sessions: SessionStats,
}

/// Counters of the sessions (docs/SESSIONS.md).
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Families held now.
    pub families: AtomicU64,
    pub issued: AtomicU64,
    pub rotated: AtomicU64,
    /// Retries within the grace interval, answered again.
    pub retried: AtomicU64,
    /// Reuses detected (families ended).
    pub reused: AtomicU64,
    /// Refreshes refused (unknown, ended, expired, another client).
    pub refused: AtomicU64,
    pub logouts: AtomicU64,
}

type Ack = tokio::sync::oneshot::Sender<Result<bool, StoreError>>;

enum Job {
    Op(Op, Ack),
    Compact(tokio::sync::oneshot::Sender<Result<usize, StoreError>>),
    /// Operations read from the fleet's stream, and the cursor after them.
    Foreign(
        Vec<Incoming>,
        Cursor,
        tokio::sync::oneshot::Sender<Result<usize, StoreError>>,
    ),
    Held(tokio::sync::oneshot::Sender<Vec<(Rule, Prov)>>),
    Oldest(tokio::sync::oneshot::Sender<Option<u64>>),
    Session(sessions::Request, SessionAck),
}

type SessionAck = tokio::sync::oneshot::Sender<Result<Outcome, StoreError>>;

/// How the store is opened.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A fleet is configured: keep the outbox of unpublished operations.
    pub fleet: bool,
    /// Sessions are served (docs/SESSIONS.md): load or create the session key, with these lifetimes.
    pub sessions: Option<Lifetimes>,
    /// The session key's file when it is shared by a fleet (instead of `state_dir/sessions/key`).
    pub session_key_file: Option<PathBuf>,
}

/// Unix milliseconds, for provenance (the origin's acknowledgement time).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The durable revocation list.
pub struct Store {
    set: Arc<Revocations>,
    tx: crossbeam_channel::Sender<Job>,
    /// Joined on drop: the writer finishes what was queued and closes the log before `drop` returns.
    writer: Option<std::thread::JoinHandle<()>>,
    stats: Arc<StoreStats>,
    dir: PathBuf,
    instance: Instance,
    outbox: Arc<Outbox>,
    /// The stream position at open.
    start_cursor: Option<Cursor>,
    sessions: Option<Arc<sessions::Settings>>,
    /// Held for the store's life: no other daemon writes this directory.
    _state: StateDir,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("rules", &self.set.len())
            .finish_non_exhaustive()
    }
}

/// Where `now` comes from (tests inject a clock).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

impl Store {
    /// Checks and locks the state directory `dir` (creating it, 0700), opens its log, replays it into
    /// memory — refusing to start on a damaged log, with the file and offset — and starts the writer thread.
    pub fn open(dir: &Path, clock: Clock) -> Result<Store, StoreError> {
        Store::open_with(dir, clock, Options::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(dir: &Path, clock: Clock, options: Options) -> Result<Store, StoreError> {
        let state = StateDir::open(dir)?;
        let instance =
            super::instance::load_or_create(dir).map_err(|reason| StoreError::BadRecord {
                path: dir.join("fleet").join(super::instance::FILE),
                offset: 0,
                reason,
            })?;
        for w in &state.warnings {
            tracing::warn!("{w}");
        }
        let (log, replay, aside) = Log::open(dir)?;
        if let Some(a) = &aside {
            tracing::warn!(
                file = %log.path().display(),
                offset = a.offset,
                bytes = a.bytes,
                kept_in = %a.path.display(),
                "revocation log ended in a torn record (a crash while writing); moved it aside and cut it off"
            );
        }
        let gc = GcClock::new(clock.clone(), replay.newest_at());
        let now = clock();
        if gc.now() < now {
            tracing::warn!(
                clock = now,
                newest_record = replay.newest_at().unwrap_or(0),
                "the clock is more than a day ahead of the revocation log's newest record; rules are dropped                  as if it were {} until records catch up (a clock set wrong must not drop rules still needed)",
                gc.now()
            );
        }
        let sessions = match options.sessions {
            Some(lifetimes) => Some(Arc::new(sessions::Settings {
                key: match &options.session_key_file {
                    Some(file) => sessions::token::SessionKey::from_file(file),
                    None => sessions::token::SessionKey::load_or_create(dir),
                }
                .map_err(|reason| StoreError::BadRecord {
                    path: options
                        .session_key_file
                        .clone()
                        .unwrap_or_else(|| dir.join("sessions").join(sessions::token::KEY_FILE)),
                    offset: 0,
                    reason,
                })?,
                lifetimes,
            })),
            None => None,
        };
        let lifetimes = options.sessions.unwrap_or_default();
        let set = Arc::new(Revocations::new());
        let records = replay.records.len() as u64;
        let mut families = Families::default();
        for r in &replay.records {
            // Carried records were kept for publishing only: compaction restated their families.
            if let Record::Op(e) = r
                && !e.carried
                && let Op::Session(op) = &e.op
            {
                replay_session(&mut families, op.kind, &op.value).map_err(|reason| {
                    StoreError::BadRecord {
                        path: log.path().to_path_buf(),
                        offset: 0,
                        reason,
                    }
                })?;
            }
        }
        let (book, rewrite) =
            Book::replay(replay.records, &set, instance.0, options.fleet, now_ms());
        // Before the rules that ended them may be dropped.
        families.drop_ended(&set, &lifetimes, gc.now());
        let expired = set.expire(gc.now());
        let stats = Arc::new(StoreStats::default());
        let (tx, rx) = crossbeam_channel::unbounded();
        let outbox = book.outbox().clone();
        let start_cursor = book.cursor().cloned();
        let mut writer = Writer {
            log,
            set: set.clone(),
            stats: stats.clone(),
            dir: dir.to_path_buf(),
            clock,
            gc,
            records,
            book,
            sessions: sessions.clone(),
            lifetimes,
            families,
            deferred: std::collections::VecDeque::new(),
        };
        writer.count_families();
        if rewrite {
            // Rules from before provenance existed: written once with this daemon's, so that their
            // numbers do not change at the next start.
            writer.compact()?;
        }
        let writer = std::thread::Builder::new()
            .name("jwtd-revocations".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::io(dir, e))?;
        tracing::info!(rules = set.len(), expired, dir = %dir.display(), "revocation list loaded");
        Ok(Store {
            set,
            tx,
            writer: Some(writer),
            stats,
            dir: dir.to_path_buf(),
            instance,
            outbox,
            start_cursor,
            sessions,
            _state: state,
        })
    }

    /// The session key and lifetimes, when sessions are served.
    pub fn sessions(&self) -> Option<&Arc<sessions::Settings>> {
        self.sessions.as_ref()
    }

    /// Queues a session request; the receiver answers once its effect is durable (or at once when it
    /// has none).
    pub fn session(
        &self,
        request: sessions::Request,
    ) -> tokio::sync::oneshot::Receiver<Result<Outcome, StoreError>> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        if let Err(crossbeam_channel::SendError(Job::Session(_, ack))) =
            self.tx.send(Job::Session(request, ack))
        {
            let _ = ack.send(Err(StoreError::Stopped));
        }
        rx
    }

    /// This daemon's identity in the fleet.
    pub fn instance(&self) -> Instance {
        self.instance
    }

    /// This daemon's operations not yet published (kept only when opened with a fleet).
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The stream position the log held at open.
    pub fn start_cursor(&self) -> Option<Cursor> {
        self.start_cursor.clone()
    }

    /// Applies operations read from the stream (each once: see [`Book::admit`]) and moves the cursor,
    /// durably and together; answers how many were applied.
    pub async fn apply_foreign(
        &self,
        ops: Vec<Incoming>,
        cursor: Cursor,
    ) -> Result<usize, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job::Foreign(ops, cursor, tx))
            .map_err(|_| StoreError::Stopped)?;
        rx.await.unwrap_or(Err(StoreError::Stopped))
    }

    /// Records that this daemon's operations up to `seq` are in the stream. The writer takes the mark from
    /// the outbox with its next commit (or after an idle second) and is not woken for it.
    pub fn published(&self, seq: u64) {
        self.outbox.done(seq);
    }

    /// Every live rule with its provenance (to re-publish after the stream was lost).
    pub async fn held(&self) -> Vec<(Rule, Prov)> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Job::Held(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The oldest origin time (Unix ms) among live rules.
    pub async fn oldest_live_ms(&self) -> Option<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Job::Oldest(tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// The in-memory set, for checks.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.set
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Queues `op`; the receiver answers once it is durable and in force (`Ok(changed)`), or failed. An
    /// operation the log cannot hold ([`log::validate`]) is answered at once with the reason.
    pub fn submit(&self, op: Op) -> tokio::sync::oneshot::Receiver<Result<bool, StoreError>> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        if let Err(e) = log::validate(&op) {
            let _ = ack.send(Err(e));
            return rx;
        }
        if let Err(crossbeam_channel::SendError(Job::Op(_, ack))) = self.tx.send(Job::Op(op, ack)) {
            let _ = ack.send(Err(StoreError::Stopped));
        }
        rx
    }

    /// Applies `op` durably, blocking this thread until it is acknowledged.
    pub fn apply_blocking(&self, op: Op) -> Result<bool, StoreError> {
        self.submit(op)
            .blocking_recv()
            .unwrap_or(Err(StoreError::Stopped))
    }

    /// Compacts now (drops expired rules, rewrites the log); returns the rules kept.
    pub fn compact_blocking(&self) -> Result<usize, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Job::Compact(tx)).is_err() {
            return Err(StoreError::Stopped);
        }
        rx.blocking_recv().unwrap_or(Err(StoreError::Stopped))
    }
}

impl Drop for Store {
    /// Disconnects the writer's channel and waits for the writer: every job queued before the drop is
    /// committed (or failed and answered), and the log file is closed, so the directory can be opened again
    /// at once and nothing runs on behind the owner's back.
    fn drop(&mut self) {
        let (closed, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.tx, closed));
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "the revocation writer had panicked");
        }
    }
}

struct Writer {
    log: Log,
    set: Arc<Revocations>,
    stats: Arc<StoreStats>,
    dir: PathBuf,
    clock: Clock,
    gc: GcClock,
    /// Records in the log file.
    records: u64,
    book: Book,
    sessions: Option<Arc<sessions::Settings>>,
    lifetimes: Lifetimes,
    families: Families,
    /// Session requests on a family another request of the same commit changes: decided at the next
    /// commit, on durable state.
    deferred: std::collections::VecDeque<Job>,
}

type Applied = tokio::sync::oneshot::Sender<Result<usize, StoreError>>;

/// What one commit writes besides local operations.
#[derive(Default)]
struct Extra {
    foreign: Vec<(Vec<Incoming>, Cursor, Applied)>,
    sessions: Vec<(sessions::Request, SessionAck)>,
}

/// What a session request changes once its commit is durable.
enum Effect {
    Put(record::Family),
    Rotate(record::Rotation),
    None,
}

/// Applies a session record from another daemon. A family it already holds is kept unless the record is
/// newer; a rotation applies when it follows the family's current generation (a duplicate — the same
/// successor derived by two daemons for one token — or a stale one changes nothing).
fn apply_foreign_session(families: &mut Families, op: &log::SessionOp) {
    match op.kind {
        log::SessionKind::Family => {
            if let Ok(f) = record::Family::decode(&op.value)
                && families
                    .get(&f.sid)
                    .is_none_or(|held| held.generation < f.generation)
            {
                families.put(f);
            }
        }
        log::SessionKind::Rotate => {
            if let Ok(r) = record::Rotation::decode(&op.value) {
                families.rotate(&r);
            }
        }
    }
}

/// Applies one replayed session record.
fn replay_session(
    families: &mut Families,
    kind: log::SessionKind,
    value: &[u8],
) -> Result<(), String> {
    match kind {
        log::SessionKind::Family => families.put(record::Family::decode(value)?),
        log::SessionKind::Rotate => {
            families.rotate(&record::Rotation::decode(value)?);
        }
    }
    Ok(())
}

/// The time rules are dropped by (see the module's documentation).
struct GcClock {
    clock: Clock,
    /// The newest record's time at start plus [`MAX_CLOCK_LEAD`]; `None` when no record says.
    ceiling: Option<u64>,
    started: Instant,
}

impl GcClock {
    fn new(clock: Clock, newest: Option<u64>) -> GcClock {
        GcClock {
            clock,
            ceiling: newest.map(|n| n.saturating_add(MAX_CLOCK_LEAD)),
            started: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        let now = (self.clock)();
        match self.ceiling {
            Some(c) => now.min(c.saturating_add(self.started.elapsed().as_secs())),
            None => now,
        }
    }
}

impl Writer {
    fn run(mut self, rx: crossbeam_channel::Receiver<Job>) {
        let mut buf = Vec::new();
        let mut batch: Vec<(Op, Ack)> = Vec::new();
        loop {
            // Marks wait for the next write; an idle second writes them alone (the published mark
            // bounds what a restart publishes again, the cursor what it reads again: both only save work).
            let first = match self.deferred.pop_front() {
                Some(job) => Ok(job),
                None => rx.recv_timeout(std::time::Duration::from_secs(1)),
            };
            let first = match first {
                Ok(job) => job,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    self.flush_marks(&mut buf);
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    self.flush_marks(&mut buf);
                    return;
                }
            };
            let mut compacts = Vec::new();
            let mut extra = Extra::default();
            let mut take =
                |job: Job, batch: &mut Vec<(Op, Ack)>, book: &Book, set: &Revocations| match job {
                    Job::Op(op, ack) => batch.push((op, ack)),
                    Job::Compact(done) => compacts.push(done),
                    Job::Foreign(ops, cursor, done) => extra.foreign.push((ops, cursor, done)),
                    Job::Held(done) => {
                        let _ = done.send(book.held(set.rules()));
                    }
                    Job::Oldest(done) => {
                        let _ = done.send(book.oldest_live_ms());
                    }
                    Job::Session(request, ack) => extra.sessions.push((request, ack)),
                };
            take(first, &mut batch, &self.book, &self.set);
            let mut jobs = 1;
            while let Some(job) = self.deferred.pop_front() {
                take(job, &mut batch, &self.book, &self.set);
                jobs += 1;
            }
            while jobs < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => take(job, &mut batch, &self.book, &self.set),
                    Err(_) => break,
                }
                jobs += 1;
            }
            if !batch.is_empty() || !extra.foreign.is_empty() || !extra.sessions.is_empty() {
                self.commit(&mut batch, extra, &mut buf);
            }
            let wanted = !compacts.is_empty();
            if wanted || self.records > 2 * (self.set.len() + self.families.len()) as u64 + 100_000
            {
                let result = self.compact();
                for done in compacts {
                    let _ = done.send(result.clone());
                }
            }
        }
    }

    /// One write and one fsync for local operations, operations from the stream with the cursor after
    /// them, and the published mark; then everything is applied and answered.
    fn commit(&mut self, batch: &mut Vec<(Op, Ack)>, mut extra: Extra, buf: &mut Vec<u8>) {
        buf.clear();
        let at = (self.clock)();
        let ms = now_ms();
        let marks_before = self.book.watermarks();
        let effects = self.decide_sessions(std::mem::take(&mut extra.sessions), batch, at);
        // Refused operations were answered at submit; one that still cannot be encoded is answered here,
        // and never written.
        let mut local: Vec<(Prov, Op, Ack)> = Vec::with_capacity(batch.len());
        for (op, ack) in batch.drain(..) {
            let prov = self.book.stamp(ms);
            let entry = log::Entry {
                at,
                op,
                prov: Some(prov),
                carried: false,
                restated: false,
            };
            match log::encode_entry(&entry, buf) {
                Ok(()) => local.push((prov, entry.op, ack)),
                Err(e) => {
                    let _ = ack.send(Err(e));
                }
            }
        }
        let mut foreign = Vec::with_capacity(extra.foreign.len());
        let mut records = local.len() as u64;
        for (ops, cursor, done) in extra.foreign {
            let mut admitted = Vec::new();
            for inc in &ops {
                if let Some(e) = self.book.admit(inc, at) {
                    let mut one = Vec::new();
                    // An entry the log cannot hold is skipped like a malformed one (the wire bounds it).
                    if log::encode_entry(&e, &mut one).is_ok() {
                        buf.extend_from_slice(&one);
                        admitted.push(e);
                    }
                }
            }
            if !admitted.is_empty() || self.book.cursor().is_none_or(|c| c.epoch != cursor.epoch) {
                let mark = Mark::Cursor {
                    id: cursor.id.clone(),
                    epoch: cursor.epoch.clone(),
                };
                let _ = log::encode_mark(&mark, at, buf);
                records += 1 + admitted.len() as u64;
                foreign.push((admitted, cursor, true, done));
            } else {
                foreign.push((admitted, cursor, false, done));
            }
        }
        let published = if buf.is_empty() {
            None
        } else {
            let (n, published) = self.encode_marks(at, buf);
            records += n;
            published
        };
        if buf.is_empty() {
            debug_assert!(effects.is_empty(), "session effects come with records");
            // Only entries already applied: the cursor moves in memory (see `Book::set_cursor`).
            for (_, cursor, _, done) in foreign {
                self.book.set_cursor(cursor, false);
                let _ = done.send(Ok(0));
            }
            return;
        }
        match self.log.append_encoded(buf) {
            Ok(()) => {
                self.records += records;
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                // Revocation changes only: session records are counted by their outcomes.
                let revocations = local
                    .iter()
                    .filter(|(_, op, _)| !matches!(op, Op::Session(_)))
                    .count();
                self.stats
                    .ops
                    .fetch_add(revocations as u64, Ordering::Relaxed);
                let acked_ms = now_ms();
                for (prov, op, ack) in local {
                    let changed = super::book::apply(&self.set, &op);
                    self.book.local_done(prov, &op, acked_ms);
                    let _ = ack.send(Ok(changed));
                }
                for (admitted, cursor, saved, done) in foreign {
                    for e in &admitted {
                        super::book::apply(&self.set, &e.op);
                        if let Op::Session(op) = &e.op {
                            // Another daemon's family or rotation (a fleet sharing sessions).
                            apply_foreign_session(&mut self.families, op);
                        }
                        self.book.foreign_done(e);
                    }
                    self.book.set_cursor(cursor, saved);
                    let _ = done.send(Ok(admitted.len()));
                }
                if let Some(seq) = published {
                    self.book.set_published(seq);
                }
                self.settle_sessions(effects, Ok(()));
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.book.restore_watermarks(marks_before);
                let e = StoreError::io(self.log.path(), e);
                tracing::error!(error = %e, "revocation log write failed; nothing in this batch was applied");
                for (_, _, ack) in local {
                    let _ = ack.send(Err(e.clone()));
                }
                for (_, _, _, done) in foreign {
                    let _ = done.send(Err(e.clone()));
                }
                self.settle_sessions(effects, Err(e));
            }
        }
    }

    /// The published mark not written yet: the outbox's, when the fleet link has published past the log's
    /// mark (it does not wake the writer for it).
    fn unsaved_published(&self) -> Option<u64> {
        let seq = self.book.outbox().published();
        (seq > self.book.published()).then_some(seq)
    }

    /// Appends the marks waiting for a write (published, cursor): how many, and the published mark among
    /// them (the book takes it once the write is durable).
    fn encode_marks(&mut self, at: u64, buf: &mut Vec<u8>) -> (u64, Option<u64>) {
        let mut n = 0;
        let published = self.unsaved_published();
        if let Some(seq) = published {
            let _ = log::encode_mark(&Mark::Published(seq), at, buf);
            n += 1;
        }
        if let Some(mark) = self.book.unsaved_cursor() {
            let _ = log::encode_mark(&mark, at, buf);
            n += 1;
        }
        (n, published)
    }

    /// Writes the waiting marks alone (after an idle second, and at the end).
    /// Decides the session requests of a commit on the durable state: answers those that change nothing,
    /// appends the records of the others to `buf` (and a family's end, a `sid` rule, to `batch`), defers
    /// those on a family another request of this commit changes. Returns what to apply and answer once the
    /// write is durable, and how many records were appended.
    fn decide_sessions(
        &mut self,
        requests: Vec<(sessions::Request, SessionAck)>,
        batch: &mut Vec<(Op, Ack)>,
        at: u64,
    ) -> Vec<(SessionAck, Outcome, Effect)> {
        let mut effects = Vec::new();
        let mut touched = std::collections::HashSet::new();
        let stats = &self.stats.sessions;
        for (request, ack) in requests {
            let Some(settings) = self.sessions.clone() else {
                let _ = ack.send(Err(StoreError::Stopped));
                continue;
            };
            let digest = match &request {
                sessions::Request::Issue(_) => None,
                sessions::Request::Refresh { digest, .. }
                | sessions::Request::Logout { digest } => Some(*digest),
            };
            let sid = digest.and_then(|d| self.families.find(&d).map(|f| f.sid.clone()));
            if let Some(sid) = &sid
                && !touched.insert(sid.clone())
            {
                self.deferred.push_back(Job::Session(request, ack));
                continue;
            }
            // A session record joins this commit's local operations (provenance, outbox, one fsync).
            let write = |kind, value: Vec<u8>, batch: &mut Vec<(Op, Ack)>| match log::SessionOp::new(
                kind, value,
            ) {
                Ok(op) if log::validate(&Op::Session(op.clone())).is_ok() => {
                    batch.push((Op::Session(op), tokio::sync::oneshot::channel().0));
                    true
                }
                _ => false,
            };
            match request {
                sessions::Request::Issue(new) => {
                    let sid = match sessions::token::new_sid() {
                        Ok(s) => s,
                        Err(e) => {
                            let _ =
                                ack.send(Err(StoreError::io(&self.dir, std::io::Error::other(e))));
                            continue;
                        }
                    };
                    let family = record::Family {
                        sid,
                        sub: new.sub,
                        client_id: new.client_id,
                        scope: new.scope,
                        aud: new.aud,
                        claims: new.claims,
                        created: at,
                        absolute_end: at.saturating_add(settings.lifetimes.absolute),
                        last_used: at,
                        generation: 0,
                        current: new.first,
                        previous: None,
                        used: Default::default(),
                    };
                    if write(log::SessionKind::Family, family.encode(), batch) {
                        let view = sessions::View::of(&family);
                        effects.push((ack, Outcome::Issued(view), Effect::Put(family)));
                    } else {
                        let _ = ack.send(Err(StoreError::TooLong {
                            what: "session",
                            len: family.encode().len(),
                            max: log::MAX_VALUE,
                        }));
                    }
                }
                sessions::Request::Refresh {
                    token,
                    digest,
                    client_id,
                    scope,
                } => match self.families.decide(
                    &settings.key,
                    &token,
                    &digest,
                    client_id.as_deref(),
                    scope.as_deref(),
                    &self.set,
                    &settings.lifetimes,
                    at,
                ) {
                    Decision::Refuse(r) => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        let _ = ack.send(Ok(Outcome::Refused(r)));
                    }
                    Decision::Again {
                        view,
                        refresh_token,
                    } => {
                        stats.retried.fetch_add(1, Ordering::Relaxed);
                        let _ = ack.send(Ok(Outcome::Refreshed {
                            view,
                            refresh_token,
                        }));
                    }
                    Decision::Rotate {
                        rotation,
                        view,
                        refresh_token,
                    } => {
                        write(log::SessionKind::Rotate, rotation.encode(), batch);
                        effects.push((
                            ack,
                            Outcome::Refreshed {
                                view,
                                refresh_token,
                            },
                            Effect::Rotate(rotation),
                        ));
                    }
                    Decision::Reuse { rule, sid } => {
                        tracing::warn!(
                            sid,
                            refresh_token = %sessions::token::shown(&digest),
                            "refresh token reused: the session and its access tokens are revoked"
                        );
                        batch.push((Op::Revoke(rule), tokio::sync::oneshot::channel().0));
                        effects.push((ack, Outcome::Reused { sid }, Effect::None));
                    }
                },
                sessions::Request::Logout { .. } => {
                    match sid.as_deref().and_then(|s| self.families.get(s)) {
                        Some(f) if !sessions::book::revoked(&self.set, f, at) => {
                            let rule = sessions::book::end_rule(f, &settings.lifetimes);
                            batch.push((Op::Revoke(rule), tokio::sync::oneshot::channel().0));
                            effects.push((ack, Outcome::LoggedOut { sid }, Effect::None));
                        }
                        _ => {
                            let _ = ack.send(Ok(Outcome::LoggedOut { sid: None }));
                        }
                    }
                }
            }
        }
        effects
    }

    /// Applies and answers the session requests of a commit that was written (or failed).
    fn settle_sessions(
        &mut self,
        effects: Vec<(SessionAck, Outcome, Effect)>,
        result: Result<(), StoreError>,
    ) {
        let stats = &self.stats.sessions;
        for (ack, outcome, effect) in effects {
            if let Err(e) = &result {
                let _ = ack.send(Err(e.clone()));
                continue;
            }
            match effect {
                Effect::Put(f) => self.families.put(f),
                Effect::Rotate(r) => {
                    self.families.rotate(&r);
                }
                Effect::None => {}
            }
            let counter = match &outcome {
                Outcome::Issued(_) => &stats.issued,
                Outcome::Refreshed { .. } => &stats.rotated,
                Outcome::Reused { .. } => &stats.reused,
                Outcome::LoggedOut { .. } => &stats.logouts,
                Outcome::Refused(_) => &stats.refused,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = ack.send(Ok(outcome));
        }
        self.count_families();
    }

    fn count_families(&self) {
        self.stats
            .sessions
            .families
            .store(self.families.len() as u64, Ordering::Relaxed);
    }

    fn flush_marks(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        let (n, published) = self.encode_marks((self.clock)(), buf);
        if n == 0 {
            return;
        }
        match self.log.append_encoded(buf) {
            Ok(()) => {
                self.records += n;
                if let Some(seq) = published {
                    self.book.set_published(seq);
                }
            }
            Err(e) => {
                // Kept for the next write; losing them only means publishing or reading some entries again.
                tracing::warn!(error = %e, "could not write the fleet's position marks; will retry");
            }
        }
    }

    fn compact(&mut self) -> Result<usize, StoreError> {
        if let Some(seq) = self.unsaved_published() {
            self.book.set_published(seq);
        }
        let now = self.gc.now();
        // Before the rules that ended them may be dropped.
        let ended = self.families.drop_ended(&self.set, &self.lifetimes, now);
        self.count_families();
        let expired = self.set.expire(now);
        let live: Vec<Rule> = self.set.rules();
        let mut records: Vec<Record> = self.book.compaction(&live, now, now_ms());
        records.extend(self.families.all().filter_map(|f| {
            let op = log::SessionOp::new(log::SessionKind::Family, f.encode()).ok()?;
            Some(Record::Op(log::Entry::plain(Op::Session(op), now)))
        }));
        match log::rewrite(&self.dir, &records, |_| Ok(())) {
            Ok(log) => {
                self.log = log;
                self.records = records.len() as u64;
                self.stats.compactions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    rules = live.len(),
                    expired,
                    families = self.families.len(),
                    families_ended = ended,
                    "revocation log compacted"
                );
                Ok(live.len())
            }
            Err(e) => {
                let e = StoreError::io(&self.dir, e);
                tracing::error!(error = %e, "revocation log compaction failed; the old log stays");
                // The old log is intact until the rename; reopen it for appending in case the handle moved.
                if let Ok((log, _, _)) = Log::open(&self.dir) {
                    self.log = log;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::{Presented, Target};

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jwtd-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn jti(j: &str, expires: u64) -> Op {
        Op::Revoke(Rule {
            target: Target::Jti(j.into()),
            expires,
            cutoff: 0,
        })
    }

    fn revoked(store: &Store, j: &str, now: u64) -> bool {
        let p = Presented {
            jti: Some(j),
            ..Presented::default()
        };
        store.revocations().check(&p, now).is_err()
    }

    #[test]
    fn acknowledged_revocations_are_in_force_and_survive_a_restart() {
        let d = dir("restart");
        let clock: Clock = Arc::new(|| 1_000);
        let store = Store::open(&d, clock.clone()).unwrap();
        // Many threads at once: they share fsyncs.
        std::thread::scope(|s| {
            for t in 0..8 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..200 {
                        let j = format!("t{t}-{i}");
                        assert!(store.apply_blocking(jti(&j, 5_000)).unwrap());
                        assert!(revoked(store, &j, 1_000), "in force when acknowledged");
                    }
                });
            }
        });
        assert!(
            store
                .apply_blocking(Op::Unrevoke(Target::Jti("t0-0".into())))
                .unwrap()
        );
        let commits = store.stats().commits.load(Ordering::Relaxed);
        assert!(
            commits < 1_601,
            "group commit shares fsyncs: {commits} commits"
        );
        drop(store);
        let again = Store::open(&d, clock).unwrap();
        assert_eq!(again.revocations().len(), 8 * 200 - 1);
        assert!(revoked(&again, "t3-77", 1_000));
        assert!(!revoked(&again, "t0-0", 1_000));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dropping_the_store_finishes_queued_work_and_closes_the_log() {
        let d = dir("drop");
        let clock: Clock = Arc::new(|| 1_000);
        let store = Store::open(&d, clock.clone()).unwrap();
        // Queued, not awaited: the writer is still busy with them (one fsync per batch) when the store goes.
        let acks: Vec<_> = (0..300)
            .map(|i| store.submit(jti(&format!("q{i}"), 0)))
            .collect();
        drop(store);
        // Nothing of the store is left running: no descriptor of this process points into its directory.
        let open_here = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(&d))
            .count();
        assert_eq!(
            open_here, 0,
            "the log is still open after the store was dropped"
        );
        // Every queued revocation was answered before the drop returned, and is durable.
        for mut ack in acks {
            assert!(ack.try_recv().unwrap().unwrap());
        }
        let again = Store::open(&d, clock).unwrap();
        assert_eq!(again.revocations().len(), 300);
        drop(again);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn compaction_drops_expired_rules_and_keeps_the_rest() {
        let d = dir("compact");
        let now = Arc::new(AtomicU64::new(1_000));
        let n = now.clone();
        let clock: Clock = Arc::new(move || n.load(Ordering::Relaxed));
        let store = Store::open(&d, clock.clone()).unwrap();
        for i in 0..100 {
            store
                .apply_blocking(jti(&format!("j{i}"), if i < 60 { 1_500 } else { 0 }))
                .unwrap();
        }
        now.store(1_500 + crate::revocation::RETAIN_SECS, Ordering::Relaxed);
        assert_eq!(store.compact_blocking().unwrap(), 40);
        store.apply_blocking(jti("after", 0)).unwrap();
        let log_len = std::fs::metadata(d.join(log::FILE)).unwrap().len();
        drop(store);
        let again = Store::open(&d, clock).unwrap();
        assert_eq!(again.revocations().len(), 41);
        assert!(revoked(&again, "j99", 2_000) && revoked(&again, "after", 2_000));
        assert!(!revoked(&again, "j0", 2_000));
        assert!(log_len < 41 * 110, "the log was rewritten: {log_len} bytes");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_log_stops_the_start_with_file_and_offset() {
        let d = dir("damaged");
        let store = Store::open(&d, Arc::new(|| 1)).unwrap();
        for i in 0..3 {
            store.apply_blocking(jti(&format!("j{i}"), 0)).unwrap();
        }
        drop(store);
        let path = d.join(log::FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[24] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let e = Store::open(&d, Arc::new(|| 1)).unwrap_err();
        assert!(
            matches!(&e, StoreError::Damaged { offset: 8, path, .. } if path.ends_with("revocations.log")),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_clock_far_ahead_drops_no_rule_that_is_still_needed() {
        use crate::revocation::RETAIN_SECS;
        let d = dir("clock");
        let t0 = 1_800_000_000u64;
        let now = Arc::new(AtomicU64::new(t0));
        let n = now.clone();
        let clock: Clock = Arc::new(move || n.load(Ordering::Relaxed));
        let store = Store::open(&d, clock.clone()).unwrap();
        // A token that expires in 10 days.
        store
            .apply_blocking(jti("ten-days", t0 + 10 * 86_400))
            .unwrap();
        drop(store);
        // A run with the clock 30 days ahead (past the rule's end and its margin): nothing is dropped, at
        // start or by a compaction.
        now.store(t0 + 30 * 86_400, Ordering::Relaxed);
        assert!(t0 + 30 * 86_400 > t0 + 10 * 86_400 + RETAIN_SECS);
        let store = Store::open(&d, clock.clone()).unwrap();
        assert!(revoked(&store, "ten-days", t0 + 30 * 86_400));
        assert_eq!(
            store.compact_blocking().unwrap(),
            1,
            "kept through compaction"
        );
        drop(store);
        // The clock is right again: the token would verify, and its rule is still there.
        now.store(t0 + 86_400, Ordering::Relaxed);
        let store = Store::open(&d, clock.clone()).unwrap();
        assert!(revoked(&store, "ten-days", t0 + 86_400));
        // Once records catch up with the clock (a new write, time really passed), the rule goes.
        now.store(t0 + 10 * 86_400 + RETAIN_SECS, Ordering::Relaxed);
        store.apply_blocking(jti("later", 0)).unwrap();
        drop(store);
        let store = Store::open(&d, clock).unwrap();
        assert!(!revoked(&store, "ten-days", 0), "dropped after its margin");
        assert!(revoked(&store, "later", 0));
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_oversized_unrevoke_is_refused_and_every_later_start_works() {
        let d = dir("oversized");
        let clock: Clock = Arc::new(|| 1_000);
        let store = Store::open(&d, clock.clone()).unwrap();
        let huge = "s".repeat(log::MAX_VALUE + 2);
        let e = store
            .apply_blocking(Op::Unrevoke(Target::Sub(huge.clone())))
            .unwrap_err();
        assert!(matches!(e, StoreError::TooLong { .. }), "{e:?}");
        assert!(
            store
                .apply_blocking(Op::Unrevoke(Target::Jti(huge)))
                .is_err()
        );
        store.apply_blocking(jti("fine", 0)).unwrap();
        drop(store);
        let again = Store::open(&d, clock).expect("the log replays");
        assert!(revoked(&again, "fine", 1_000));
        drop(again);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let d = dir("two");
        let clock: Clock = Arc::new(|| 1_000);
        let first = Store::open(&d, clock.clone()).unwrap();
        let e = Store::open(&d, clock.clone()).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::InUse {
                    holder: Some(_),
                    ..
                }
            ),
            "{e:?}"
        );
        first.apply_blocking(jti("kept", 0)).unwrap();
        drop(first);
        let again = Store::open(&d, clock).unwrap();
        assert!(revoked(&again, "kept", 1_000));
        drop(again);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_state_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("modes");
        let store = Store::open(&d, Arc::new(|| 1)).unwrap();
        store.apply_blocking(jti("x", 0)).unwrap();
        store.compact_blocking().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join(log::FILE)), 0o600, "after compaction too");
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn incoming(origin: u8, seq: u64, op: Op) -> Incoming {
        Incoming {
            prov: Prov {
                origin: [origin; 16],
                seq,
                at_ms: 1,
            },
            op,
            restated: false,
        }
    }

    fn cursor(id: &str) -> Cursor {
        Cursor {
            id: id.into(),
            epoch: "e1".into(),
        }
    }

    #[test]
    fn the_outbox_and_the_stream_position_survive_restarts_and_compaction() {
        let d = dir("fleet");
        let clock: Clock = Arc::new(|| 1_000);
        let fleet = Options {
            fleet: true,
            ..Options::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = Store::open_with(&d, clock.clone(), fleet.clone()).unwrap();
        let me = store.instance();
        for i in 0..3 {
            store.apply_blocking(jti(&format!("own{i}"), 0)).unwrap();
        }
        let seqs: Vec<u64> = store.outbox().peek(10).iter().map(|p| p.prov.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert!(
            store
                .outbox()
                .peek(10)
                .iter()
                .all(|p| p.prov.origin == me.0)
        );
        store.published(2);
        // From the stream: another origin's operations, once each, and this daemon's own, skipped.
        let batch = vec![
            incoming(7, 1, jti("theirs1", 0)),
            incoming(7, 2, jti("theirs2", 0)),
            incoming(7, 1, Op::Unrevoke(Target::Jti("theirs1".into()))),
            Incoming {
                prov: Prov {
                    origin: me.0,
                    seq: 1,
                    at_ms: 1,
                },
                op: Op::Unrevoke(Target::Jti("own0".into())),
                restated: false,
            },
        ];
        assert_eq!(
            rt.block_on(store.apply_foreign(batch, cursor("5-0")))
                .unwrap(),
            2
        );
        assert!(
            revoked(&store, "theirs1", 1_000),
            "a repeated sequence number is not applied again"
        );
        assert!(
            revoked(&store, "own0", 1_000),
            "own entries coming back are skipped"
        );
        drop(store);
        let store = Store::open_with(&d, clock.clone(), fleet.clone()).unwrap();
        assert_eq!(store.start_cursor(), Some(cursor("5-0")));
        let left: Vec<u64> = store.outbox().peek(10).iter().map(|p| p.prov.seq).collect();
        assert_eq!(left, [3], "published operations leave the outbox durably");
        assert_eq!(
            rt.block_on(
                store.apply_foreign(vec![incoming(7, 2, jti("theirs2", 0))], cursor("6-0"))
            )
            .unwrap(),
            0,
            "applied before the restart: not again"
        );
        // A compaction keeps the marks, the provenance and the unpublished operation.
        store
            .apply_blocking(Op::Unrevoke(Target::Jti("own2".into())))
            .unwrap();
        store.compact_blocking().unwrap();
        drop(store);
        let store = Store::open_with(&d, clock, fleet).unwrap();
        assert_eq!(store.instance(), me);
        let left: Vec<(u64, bool)> = store
            .outbox()
            .peek(10)
            .iter()
            .map(|p| (p.prov.seq, matches!(p.op, Op::Unrevoke(_))))
            .collect();
        assert_eq!(
            left,
            [(3, false), (4, true)],
            "the revoke and the unrevoke that followed it"
        );
        assert!(
            !revoked(&store, "own2", 1_000),
            "the carried revoke is not applied again"
        );
        assert_eq!(
            rt.block_on(store.apply_foreign(vec![incoming(7, 2, jti("x", 0))], cursor("7-0")))
                .unwrap(),
            0,
            "the watermark survived compaction"
        );
        assert_eq!(
            rt.block_on(store.apply_foreign(vec![incoming(7, 3, jti("x", 0))], cursor("8-0")))
                .unwrap(),
            1
        );
        store.apply_blocking(jti("own-next", 0)).unwrap();
        assert_eq!(
            store.outbox().peek(10).last().unwrap().prov.seq,
            5,
            "numbers continue"
        );
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_own_operation_back_from_the_stream_after_another_daemons_is_applied_again() {
        let d = dir("echo");
        let clock: Clock = Arc::new(|| 1_000);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = Store::open_with(
            &d,
            clock.clone(),
            Options {
                fleet: true,
                ..Options::default()
            },
        )
        .unwrap();
        let me = store.instance().0;
        store.apply_blocking(jti("x", 0)).unwrap();
        store.apply_blocking(jti("y", 0)).unwrap();
        let own = |seq, op| Incoming {
            prov: Prov {
                origin: me,
                seq,
                at_ms: 1,
            },
            op,
            restated: false,
        };
        // The stream: another daemon's unrevoke of x, then this daemon's revoke of x (published later),
        // then this daemon's revoke of y with nothing in between.
        let stream = vec![
            incoming(9, 1, Op::Unrevoke(Target::Jti("x".into()))),
            own(1, jti("x", 0)),
            own(2, jti("y", 0)),
        ];
        assert_eq!(
            rt.block_on(store.apply_foreign(stream, cursor("3-0")))
                .unwrap(),
            2,
            "the unrevoke, and x's revoke again; y's echo changes nothing"
        );
        assert!(
            revoked(&store, "x", 1_000),
            "in stream order, like every other daemon"
        );
        assert!(revoked(&store, "y", 1_000));
        drop(store);
        let store = Store::open_with(
            &d,
            clock,
            Options {
                fleet: true,
                ..Options::default()
            },
        )
        .unwrap();
        assert!(revoked(&store, "x", 1_000), "and after a restart");
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
