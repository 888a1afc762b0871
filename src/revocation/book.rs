//! The fleet's bookkeeping in the revocation store (docs/FLEET.md): which operation is whose, which of this
//! daemon's operations still wait to be published (the outbox), how far each origin's operations were
//! applied (watermarks: exactly once in effect), and where the stream was read up to (the cursor). All of it
//! is rebuilt from the log at start and written by the same group commit as the operations it describes, so
//! an applied entry and the cursor after it are durable together.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::log::{Entry, Mark, Op, Prov, Record, target_of};
use super::{Revocations, Rule, Target};

/// A daemon's identity: the bytes of its [`super::instance::Instance`].
pub type Origin = [u8; 16];

/// One of this daemon's operations, waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub prov: Prov,
    pub op: Op,
}

/// An operation read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub prov: Prov,
    pub op: Op,
    /// Re-published after a fleet reset (see [`Book::admit`]).
    pub restated: bool,
}

/// The stream position: the last entry ID applied, and the epoch of the stream it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    pub id: String,
    pub epoch: String,
}

/// This daemon's operations not yet published, in sequence order; shared by the store's writer (which
/// adds them once durable) and the fleet's publisher (which removes them once Redis has them).
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Mutex<VecDeque<Pending>>,
    /// Woken when an operation is added.
    pub notify: tokio::sync::Notify,
    published: AtomicU64,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The oldest `max` operations waiting.
    pub fn peek(&self, max: usize) -> Vec<Pending> {
        self.lock().iter().take(max).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest sequence number known to be in the stream.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Everything up to `seq` is in the stream.
    pub fn done(&self, seq: u64) {
        let mut q = self.lock();
        while q.front().is_some_and(|p| p.prov.seq <= seq) {
            q.pop_front();
        }
        self.published.fetch_max(seq, Ordering::Relaxed);
    }

    fn push(&self, p: Pending) {
        self.lock().push_back(p);
        self.notify.notify_one();
    }

    fn all(&self) -> Vec<Pending> {
        self.lock().iter().cloned().collect()
    }
}

/// The bookkeeping, owned by the store's writer thread.
#[derive(Debug)]
pub struct Book {
    pub instance: Origin,
    next_seq: u64,
    published: u64,
    cursor: Option<Cursor>,
    /// The cursor moved without a record saying so (only skipped entries since): written with the next
    /// commit or compaction; losing it only re-reads entries that are skipped again.
    cursor_unsaved: bool,
    watermarks: HashMap<Origin, u64>,
    /// Provenance of every live rule (for compaction, restatement after a reset, and trimming).
    prov: HashMap<Target, Prov>,
    /// Whether a fleet is configured: only then is the outbox kept.
    fleet: bool,
    /// A clone of this identity was reported (once).
    clone_warned: bool,
    /// Targets of this daemon's operations that have not come back from the stream yet: the last own
    /// sequence number on the target, and whether another daemon's operation on it was applied since (then
    /// the own one is applied again when it comes back, so that every daemon ends in stream order).
    unechoed: HashMap<Target, (u64, bool)>,
    outbox: std::sync::Arc<Outbox>,
}

/// Applies `op` to the in-memory set; whether it changed anything.
pub fn apply(set: &Revocations, op: &Op) -> bool {
    match op {
        Op::Revoke(rule) => set.insert(rule.clone()),
        Op::Unrevoke(target) => set.remove(target),
        // Families are the sessions book's (the store applies them).
        Op::Session(_) => false,
    }
}

impl Book {
    /// Replays `records` into `set` and the bookkeeping. Returns the book and whether the log should be
    /// rewritten (rules from before the fleet existed were given this daemon's provenance).
    pub fn replay(
        records: Vec<Record>,
        set: &Revocations,
        instance: Origin,
        fleet: bool,
        now_ms: u64,
    ) -> (Book, bool) {
        let mut book = Book {
            instance,
            next_seq: 1,
            published: 0,
            cursor: None,
            cursor_unsaved: false,
            watermarks: HashMap::new(),
            prov: HashMap::new(),
            fleet,
            clone_warned: false,
            unechoed: HashMap::new(),
            outbox: Default::default(),
        };
        let mut own: BTreeMap<u64, Op> = BTreeMap::new();
        for r in records {
            match r {
                Record::Op(e) => {
                    if !e.carried {
                        apply(set, &e.op);
                        book.note(&e.op, e.prov);
                    }
                    if let Some(p) = e.prov {
                        if !e.restated {
                            book.raise(p.origin, p.seq);
                        }
                        if p.origin == instance {
                            own.insert(p.seq, e.op);
                        }
                    }
                }
                Record::Mark { mark, .. } => match mark {
                    Mark::Published(s) => book.published = book.published.max(s),
                    Mark::Cursor { id, epoch } => book.cursor = Some(Cursor { id, epoch }),
                    Mark::Watermark { origin, seq } => book.raise(origin, seq),
                },
            }
        }
        book.next_seq = book.watermarks.get(&instance).map_or(1, |s| s + 1);
        // Rules written before the fleet existed become this daemon's operations.
        let mut rewrite = false;
        for rule in set.rules() {
            if !book.prov.contains_key(&rule.target) {
                let p = book.stamp(now_ms);
                own.insert(p.seq, Op::Revoke(rule.clone()));
                book.prov.insert(rule.target, p);
                rewrite = true;
            }
        }
        book.outbox
            .published
            .store(book.published, Ordering::Relaxed);
        if fleet {
            for (seq, op) in own.range(book.published + 1..) {
                let prov = Prov {
                    origin: instance,
                    seq: *seq,
                    at_ms: book.prov_at(op).unwrap_or(now_ms),
                };
                book.outbox.lock().push_back(Pending {
                    prov,
                    op: op.clone(),
                });
            }
        }
        (book, rewrite)
    }

    fn prov_at(&self, op: &Op) -> Option<u64> {
        match op {
            Op::Revoke(r) => self.prov.get(&r.target).map(|p| p.at_ms),
            Op::Unrevoke(_) | Op::Session(_) => None,
        }
    }

    fn raise(&mut self, origin: Origin, seq: u64) {
        let w = self.watermarks.entry(origin).or_insert(0);
        *w = (*w).max(seq);
    }

    /// Keeps the provenance map in step with the set.
    fn note(&mut self, op: &Op, prov: Option<Prov>) {
        match (op, prov) {
            (Op::Revoke(r), Some(p)) => {
                self.prov.insert(r.target.clone(), p);
            }
            (Op::Revoke(_), None) => {}
            (Op::Unrevoke(t), _) => {
                self.prov.remove(t);
            }
            // Not a rule: nothing to restate after a fleet reset.
            (Op::Session(_), _) => {}
        }
    }

    /// The provenance of this daemon's next operation.
    pub fn stamp(&mut self, now_ms: u64) -> Prov {
        let p = Prov {
            origin: self.instance,
            seq: self.next_seq,
            at_ms: now_ms,
        };
        self.next_seq += 1;
        self.watermarks.insert(self.instance, p.seq);
        p
    }

    /// A local operation is durable and applied, acknowledged at `acked_ms`: the time the stream entry
    /// carries (propagation is measured from the acknowledgement; the log keeps the time it was stamped).
    pub fn local_done(&mut self, prov: Prov, op: &Op, acked_ms: u64) {
        self.note(op, Some(prov));
        if self.fleet {
            if !matches!(op, Op::Session(_)) {
                self.unechoed
                    .insert(target_of(op).clone(), (prov.seq, false));
            }
            self.outbox.push(Pending {
                prov: Prov {
                    at_ms: acked_ms.max(prov.at_ms),
                    ..prov
                },
                op: op.clone(),
            });
        }
    }

    /// Whether an incoming operation is to be applied; its record if so. This daemon's own operations are
    /// skipped (they are applied already); another origin's are applied once: a sequence number at or
    /// below the origin's watermark was applied before. A restated rule (re-published after the stream was
    /// lost) is applied when it is above the watermark — it may be news to a daemon that joined after the
    /// loss — without raising the watermark, since restatements arrive in no particular order.
    pub fn admit(&mut self, inc: &Incoming, at: u64) -> Option<Entry> {
        if inc.prov.origin == self.instance {
            if inc.prov.seq >= self.next_seq && !self.clone_warned {
                // Numbers this daemon never gave out: another daemon has its identity (a copied state
                // directory, a restored backup), and each skips the other's operations as its own.
                self.clone_warned = true;
                tracing::error!(
                    instance = %crate::crypto::hex(&self.instance),
                    seq = inc.prov.seq,
                    next = self.next_seq,
                    "fleet: the stream holds operations of this instance id that this daemon never made: another \
                     daemon uses the same identity (a copied or restored state directory). Stop one, remove its \
                     state_dir/fleet/instance, and restart it"
                );
            }
            if matches!(inc.op, Op::Session(_)) {
                // Families are applied here already; their order is the rotations' own (generations).
                return None;
            }
            // Back from the stream: if another daemon's operation on the target was applied here since this
            // one, the stream has that one first — apply this one again, as every other daemon does.
            let target = target_of(&inc.op);
            return match self.unechoed.get(target) {
                Some(&(seq, foreign)) if seq == inc.prov.seq => {
                    self.unechoed.remove(target);
                    foreign.then(|| Entry {
                        at,
                        op: inc.op.clone(),
                        prov: Some(inc.prov),
                        carried: false,
                        restated: true,
                    })
                }
                // A later own operation on the target is still on its way; it decides.
                _ => None,
            };
        }
        let mark = self.watermarks.get(&inc.prov.origin).copied().unwrap_or(0);
        if inc.prov.seq <= mark {
            return None;
        }
        if inc.restated {
            if let Op::Revoke(r) = &inc.op
                && self.prov.get(&r.target) == Some(&inc.prov)
            {
                return None;
            }
        } else {
            self.raise(inc.prov.origin, inc.prov.seq);
        }
        if !matches!(inc.op, Op::Session(_))
            && let Some(u) = self.unechoed.get_mut(target_of(&inc.op))
        {
            u.1 = true;
        }
        Some(Entry {
            at,
            op: inc.op.clone(),
            prov: Some(inc.prov),
            carried: false,
            restated: inc.restated,
        })
    }

    /// A snapshot of the watermarks, to undo [`Book::admit`] when the write fails.
    pub fn watermarks(&self) -> HashMap<Origin, u64> {
        self.watermarks.clone()
    }

    pub fn restore_watermarks(&mut self, w: HashMap<Origin, u64>) {
        self.watermarks = w;
    }

    /// An admitted operation is durable and applied.
    pub fn foreign_done(&mut self, e: &Entry) {
        self.note(&e.op, e.prov);
    }

    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    /// Moves the cursor; `saved` when a record in this commit says so.
    pub fn set_cursor(&mut self, c: Cursor, saved: bool) {
        self.cursor = Some(c);
        self.cursor_unsaved = !saved;
    }

    /// The cursor mark to write with the next commit, if the cursor moved without one.
    pub fn unsaved_cursor(&mut self) -> Option<Mark> {
        if !self.cursor_unsaved {
            return None;
        }
        self.cursor_unsaved = false;
        self.cursor.as_ref().map(|c| Mark::Cursor {
            id: c.id.clone(),
            epoch: c.epoch.clone(),
        })
    }

    pub fn published(&self) -> u64 {
        self.published
    }

    pub fn set_published(&mut self, seq: u64) {
        self.published = self.published.max(seq);
    }

    pub fn outbox(&self) -> &std::sync::Arc<Outbox> {
        &self.outbox
    }

    /// Every live rule with its provenance.
    pub fn held(&self, live: Vec<Rule>) -> Vec<(Rule, Prov)> {
        live.into_iter()
            .filter_map(|r| self.prov.get(&r.target).map(|p| (r.clone(), *p)))
            .collect()
    }

    /// The oldest origin time among live rules (what the stream must keep).
    pub fn oldest_live_ms(&self) -> Option<u64> {
        self.prov.values().map(|p| p.at_ms).min()
    }

    /// What a compaction writes, given the live rules: the marks, every live rule with its provenance
    /// (restated, so that replay takes watermarks from the marks only), and — with a fleet — this daemon's
    /// unpublished operations, carried for publishing. Drops the provenance of rules no longer live.
    pub fn compaction(&mut self, live: &[Rule], at: u64, now_ms: u64) -> Vec<Record> {
        let keep: std::collections::HashSet<&Target> = live.iter().map(|r| &r.target).collect();
        self.prov.retain(|t, _| keep.contains(t));
        let mut rules = Vec::with_capacity(live.len());
        for rule in live {
            let prov = match self.prov.get(&rule.target) {
                Some(p) => *p,
                None => {
                    let p = self.stamp(now_ms);
                    self.prov.insert(rule.target.clone(), p);
                    p
                }
            };
            rules.push(Record::Op(Entry {
                at,
                op: Op::Revoke(rule.clone()),
                prov: Some(prov),
                carried: false,
                restated: true,
            }));
        }
        let mut out = vec![Record::Mark {
            at,
            mark: Mark::Published(self.published),
        }];
        if let Some(c) = &self.cursor {
            out.push(Record::Mark {
                at,
                mark: Mark::Cursor {
                    id: c.id.clone(),
                    epoch: c.epoch.clone(),
                },
            });
            self.cursor_unsaved = false;
        }
        let mut marks: Vec<_> = self.watermarks.iter().map(|(o, s)| (*o, *s)).collect();
        marks.sort();
        out.extend(marks.into_iter().map(|(origin, seq)| Record::Mark {
            at,
            mark: Mark::Watermark { origin, seq },
        }));
        out.extend(rules);
        if self.fleet {
            out.extend(self.outbox.all().into_iter().map(|p| {
                Record::Op(Entry {
                    at,
                    op: p.op,
                    prov: Some(p.prov),
                    carried: true,
                    restated: false,
                })
            }));
        }
        out
    }
}
