//! The revocation log: an append-only file of checksummed records (format in docs/REVOCATION.md).
//!
//! ```text
//! file     = magic record*
//! magic    = "JWTDREV2"
//! record   = len:u32le lencheck:u32le crc:u32le payload
//!            (lencheck = CRC-32 of the 4 len bytes; crc = CRC-32 of payload; len = payload bytes ≤ 64 KiB)
//! payload  = op:u8 kind:u8 at:u64le expires:u64le cutoff:u64le [prov] value
//! op       = base | flags
//! base     = 1 revoke | 2 unrevoke
//!          | 3 published mark (expires: the highest own sequence number published; kind 0, no value)
//!          | 4 cursor mark (value: "<stream id> <epoch>"; kind 0)
//!          | 5 watermark (expires: the highest sequence number applied from the origin; value: the origin)
//!          | 6 session family, 7 session rotation (kind 0, expires and cutoff 0; value: see
//!            `sessions::record`, which starts with `version:u8 sid:str`)
//! flags    = 0x40 prov follows | 0x80 carried (kept for publishing only, not applied at replay)
//!          | 0x20 restated (a rule re-published after a fleet reset: not a watermark)
//! prov     = origin:16 bytes seq:u64le at_ms:u64le (who acknowledged it, as its how-many-th, when)
//! kind     = 1 jti (value: UTF-8) | 2 sub (value: UTF-8) | 3 token (value: 32-byte SHA-256)
//!          | 4 sid (value: UTF-8, a session family)
//! at       = Unix seconds when the record was written (the clock check of compaction, see `store`)
//! ```
//!
//! The marks and `prov` are the fleet's bookkeeping (docs/FLEET.md): they live in the same file, written
//! by the same group commit, so that an applied entry and the stream position after it are durable
//! together.
//!
//! Replay tells a crash from damage. A crash while appending leaves a prefix of the last write: a short
//! header, a short payload, or (on file systems that grow the file before its data lands) a zero-filled or
//! garbled last record — all of these end the file, and are cut off. The length has its own checksum, so a
//! damaged length is recognised as damage and never read as "the record runs past the end, so this must be a
//! torn write" (which would have dropped every record after it). Damage stops replay with the file and
//! offset; a torn tail is moved aside to a file of its own before the log is cut, never thrown away.
//!
//! Logs of the first format (`JWTDREV1`: no length check, no time) are read and rewritten in this one at
//! open.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StoreError;

use super::{Rule, Target};

pub const MAGIC: &[u8; 8] = b"JWTDREV2";
/// The first format, read for migration only.
pub const MAGIC_V1: &[u8; 8] = b"JWTDREV1";
pub const MAX_PAYLOAD: usize = 64 * 1024;
const HEADER: usize = 12;
const FIXED: usize = 1 + 1 + 8 + 8 + 8;
/// The largest value a record can carry with its provenance (a jti or sub longer than this cannot be
/// revoked).
pub const MAX_VALUE: usize = MAX_PAYLOAD - FIXED - PROV;

/// One logged operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Revoke(Rule),
    Unrevoke(Target),
    /// A session record (docs/SESSIONS.md): logged, and published to a fleet, like revocations.
    Session(SessionOp),
}

/// A session record: its type, the family it belongs to (its `sid`, as a target), and its value (the
/// sessions module's encoding, which starts with `version:u8 sid:str`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOp {
    pub kind: SessionKind,
    pub target: Target,
    pub value: Vec<u8>,
}

impl SessionOp {
    /// A record of `kind` with this value; refused when the value does not start with a family id.
    pub fn new(kind: SessionKind, value: Vec<u8>) -> Result<SessionOp, String> {
        // version:u8, then sid as len:u32le + UTF-8 (the prefix every session record shares).
        let sid = value
            .get(1..5)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .and_then(|n| value.get(5..5usize.checked_add(n)?))
            .and_then(|b| std::str::from_utf8(b).ok())
            .filter(|s| !s.is_empty() && s.len() <= 1024)
            .ok_or("a session record without a family id")?;
        Ok(SessionOp {
            kind,
            target: Target::Sid(sid.to_string()),
            value,
        })
    }
}

/// Who acknowledged an operation first (the instance id of that daemon), as its how-many-th operation,
/// and when (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prov {
    pub origin: [u8; 16],
    pub seq: u64,
    pub at_ms: u64,
}

/// One operation record and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix seconds at the write (0 in migrated first-format logs: unknown).
    pub at: u64,
    pub op: Op,
    /// Absent in records written before the fleet existed.
    pub prov: Option<Prov>,
    /// Kept by a compaction for publishing only: its effect is already in the live rules.
    pub carried: bool,
    /// A rule re-published after a fleet reset: applied, but it does not move its origin's watermark.
    pub restated: bool,
}

impl Entry {
    /// A plain record (no provenance).
    pub fn plain(op: Op, at: u64) -> Entry {
        Entry {
            at,
            op,
            prov: None,
            carried: false,
            restated: false,
        }
    }
}

/// The fleet's bookkeeping records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// This daemon's operations up to this sequence number are in the stream.
    Published(u64),
    /// The stream was applied up to this entry ID, under this epoch.
    Cursor { id: String, epoch: String },
    /// The operations of `origin` up to `seq` were applied (written by compaction, which drops records).
    Watermark { origin: [u8; 16], seq: u64 },
}

/// A session record's type (docs/SESSIONS.md): its value is the sessions module's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A family as a whole: created, or restated by compaction.
    Family,
    /// One rotation of a family's refresh token.
    Rotate,
}

/// What a log holds: operations, marks and session records, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Op(Entry),
    Mark { at: u64, mark: Mark },
}

impl Record {
    pub fn at(&self) -> u64 {
        match self {
            Record::Op(e) => e.at,
            Record::Mark { at, .. } => *at,
        }
    }
}

const REVOKE: u8 = 1;
const UNREVOKE: u8 = 2;
const PUBLISHED: u8 = 3;
const CURSOR: u8 = 4;
const WATERMARK: u8 = 5;
const FAMILY: u8 = 6;
const ROTATE: u8 = 7;
const HAS_PROV: u8 = 0x40;
const CARRIED: u8 = 0x80;
const RESTATED: u8 = 0x20;
const PROV: usize = 16 + 8 + 8;
/// Longest cursor mark value (a stream ID and an epoch).
const MAX_CURSOR: usize = 256;

pub fn target_of(op: &Op) -> &Target {
    match op {
        Op::Revoke(r) => &r.target,
        Op::Unrevoke(t) => t,
        Op::Session(s) => &s.target,
    }
}

/// Whether `op` can be written as a record that replay accepts — the one place that decides it. Every
/// path that writes (both protocols, every verb, compaction, migration) goes through [`encode`], which calls
/// this: an operation replay would refuse is never written, so one acknowledged command can never stop
/// every later start.
pub fn validate(op: &Op) -> Result<(), StoreError> {
    if let Op::Session(s) = op {
        return if s.value.len() > MAX_VALUE {
            Err(StoreError::TooLong {
                what: "session record",
                len: s.value.len(),
                max: MAX_VALUE,
            })
        } else {
            Ok(())
        };
    }
    let (what, len) = match target_of(op) {
        Target::Jti(s) => ("jti", s.len()),
        Target::Sub(s) => ("sub", s.len()),
        Target::Sid(s) => ("sid", s.len()),
        Target::Token(_) => return Ok(()),
    };
    if len > MAX_VALUE {
        return Err(StoreError::TooLong {
            what,
            len,
            max: MAX_VALUE,
        });
    }
    Ok(())
}

/// Appends the framed record for `op`, written at `at`, to `out`; refuses what replay would refuse.
pub fn encode(op: &Op, at: u64, out: &mut Vec<u8>) -> Result<(), StoreError> {
    encode_entry(&Entry::plain(op.clone(), at), out)
}

/// Appends the framed record for `e` to `out`; refuses what replay would refuse.
pub fn encode_entry(e: &Entry, out: &mut Vec<u8>) -> Result<(), StoreError> {
    validate(&e.op)?;
    let (mut code, expires, cutoff) = match &e.op {
        Op::Revoke(r) => (REVOKE, r.expires, r.cutoff),
        Op::Unrevoke(_) => (UNREVOKE, 0, 0),
        Op::Session(s) if s.kind == SessionKind::Family => (FAMILY, 0, 0),
        Op::Session(_) => (ROTATE, 0, 0),
    };
    let (kind, value): (u8, &[u8]) = match (&e.op, target_of(&e.op)) {
        (Op::Session(s), _) => (0, &s.value),
        (_, Target::Jti(s)) => (1, s.as_bytes()),
        (_, Target::Sub(s)) => (2, s.as_bytes()),
        (_, Target::Token(d)) => (3, d),
        (_, Target::Sid(s)) => (4, s.as_bytes()),
    };
    let mut prov = [0u8; PROV];
    if let Some(p) = &e.prov {
        code |= HAS_PROV;
        prov[..16].copy_from_slice(&p.origin);
        prov[16..24].copy_from_slice(&p.seq.to_le_bytes());
        prov[24..].copy_from_slice(&p.at_ms.to_le_bytes());
    }
    if e.carried {
        code |= CARRIED;
    }
    if e.restated {
        code |= RESTATED;
    }
    let prov = if e.prov.is_some() { &prov[..] } else { &[] };
    frame(out, [code, kind], e.at, expires, cutoff, prov, value);
    Ok(())
}

/// Appends the framed record for a mark, written at `at`.
pub fn encode_mark(mark: &Mark, at: u64, out: &mut Vec<u8>) -> Result<(), StoreError> {
    match mark {
        Mark::Published(seq) => frame(out, [PUBLISHED, 0], at, *seq, 0, &[], &[]),
        Mark::Cursor { id, epoch } => {
            let value = format!("{id} {epoch}");
            if value.len() > MAX_CURSOR || id.contains(' ') || epoch.contains(' ') {
                return Err(StoreError::TooLong {
                    what: "cursor",
                    len: value.len(),
                    max: MAX_CURSOR,
                });
            }
            frame(out, [CURSOR, 0], at, 0, 0, &[], value.as_bytes())
        }
        Mark::Watermark { origin, seq } => frame(out, [WATERMARK, 0], at, *seq, 0, &[], origin),
    }
    Ok(())
}

/// Appends any record.
pub fn encode_record(r: &Record, out: &mut Vec<u8>) -> Result<(), StoreError> {
    match r {
        Record::Op(e) => encode_entry(e, out),
        Record::Mark { at, mark } => encode_mark(mark, *at, out),
    }
}

fn frame(
    out: &mut Vec<u8>,
    [code, kind]: [u8; 2],
    at: u64,
    expires: u64,
    cutoff: u64,
    prov: &[u8],
    value: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(code);
    out.push(kind);
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&expires.to_le_bytes());
    out.extend_from_slice(&cutoff.to_le_bytes());
    out.extend_from_slice(prov);
    out.extend_from_slice(value);
    let payload = &out[start + HEADER..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn decode_target(kind: u8, value: &[u8]) -> Result<Target, String> {
    let text = || String::from_utf8(value.to_vec()).map_err(|_| "value is not UTF-8".to_string());
    Ok(match kind {
        1 => Target::Jti(text()?),
        2 => Target::Sub(text()?),
        3 => Target::Token(
            value
                .try_into()
                .map_err(|_| format!("token digest of {} bytes", value.len()))?,
        ),
        4 => Target::Sid(text()?),
        k => return Err(format!("unknown kind {k}")),
    })
}

fn decode_op(code: u8, target: Target, expires: u64, cutoff: u64) -> Result<Op, String> {
    match code {
        REVOKE => Ok(Op::Revoke(Rule {
            target,
            expires,
            cutoff,
        })),
        UNREVOKE => Ok(Op::Unrevoke(target)),
        o => Err(format!("unknown op {o}")),
    }
}

fn u64_at(p: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[i..i + 8]);
    u64::from_le_bytes(b)
}

fn decode(p: &[u8]) -> Result<Record, String> {
    if p.len() < FIXED {
        return Err(format!("record of {} bytes is too short", p.len()));
    }
    let (code, kind, at, expires, cutoff) =
        (p[0], p[1], u64_at(p, 2), u64_at(p, 10), u64_at(p, 18));
    let value = &p[FIXED..];
    let mark = |mark| Ok(Record::Mark { at, mark });
    let bare = || {
        (kind == 0 && cutoff == 0)
            .then_some(())
            .ok_or("a mark with a kind or cutoff")
    };
    match code {
        PUBLISHED if value.is_empty() => {
            bare()?;
            return mark(Mark::Published(expires));
        }
        CURSOR => {
            bare()?;
            let text = std::str::from_utf8(value).map_err(|_| "cursor is not UTF-8")?;
            let (id, epoch) = text.split_once(' ').ok_or("cursor without an epoch")?;
            if expires != 0 || text.len() > MAX_CURSOR || epoch.contains(' ') {
                return Err("malformed cursor mark".into());
            }
            return mark(Mark::Cursor {
                id: id.into(),
                epoch: epoch.into(),
            });
        }
        WATERMARK if value.len() == 16 => {
            bare()?;
            return mark(Mark::Watermark {
                origin: value.try_into().map_err(|_| "origin")?,
                seq: expires,
            });
        }
        PUBLISHED | WATERMARK => {
            return Err(format!("mark {code} with a value of {} bytes", value.len()));
        }
        _ => {}
    }
    let (prov, value) = if code & HAS_PROV != 0 {
        if value.len() < PROV {
            return Err("record too short for its provenance".into());
        }
        let prov = Prov {
            origin: value[..16].try_into().map_err(|_| "origin")?,
            seq: u64_at(value, 16),
            at_ms: u64_at(value, 24),
        };
        (Some(prov), &value[PROV..])
    } else {
        (None, value)
    };
    let base = code & !(HAS_PROV | CARRIED | RESTATED);
    if prov.is_none() && code & (CARRIED | RESTATED) != 0 {
        return Err(format!("flags {code:#x} without provenance"));
    }
    if base == UNREVOKE && (expires != 0 || cutoff != 0) {
        return Err("an unrevoke with an expiry".into());
    }
    if base == FAMILY || base == ROTATE {
        if kind != 0 || expires != 0 || cutoff != 0 {
            return Err("a session record with a kind or an expiry".into());
        }
        let kind = if base == FAMILY {
            SessionKind::Family
        } else {
            SessionKind::Rotate
        };
        return Ok(Record::Op(Entry {
            at,
            op: Op::Session(SessionOp::new(kind, value.to_vec())?),
            prov,
            carried: code & CARRIED != 0,
            restated: code & RESTATED != 0,
        }));
    }
    let target = decode_target(kind, value)?;
    Ok(Record::Op(Entry {
        at,
        op: decode_op(base, target, expires, cutoff)?,
        prov,
        carried: code & CARRIED != 0,
        restated: code & RESTATED != 0,
    }))
}

/// What replaying a log found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub records: Vec<Record>,
    /// Bytes of the file that hold the magic and whole, valid records.
    pub valid_len: u64,
    /// The file was longer: a torn last write from this offset on (to be moved aside and cut off).
    pub torn_at: Option<u64>,
    /// The file is in the first format (to be rewritten).
    pub v1: bool,
}

impl Replay {
    /// The newest record's write time (`None`: no record says).
    pub fn newest_at(&self) -> Option<u64> {
        self.records.iter().map(Record::at).filter(|&a| a > 0).max()
    }

    /// The operation records, in order.
    pub fn entries(&self) -> Vec<Entry> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Op(e) => Some(e.clone()),
                Record::Mark { .. } => None,
            })
            .collect()
    }
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Parses a whole log. `path` names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Replay, StoreError> {
    let not_a_log = || StoreError::NotALog {
        path: path.to_path_buf(),
    };
    if bytes.len() < MAGIC.len() {
        // Created but not finished (a crash right after creation): a prefix of the magic, or nothing.
        return if MAGIC.starts_with(bytes) {
            Ok(Replay {
                torn_at: (!bytes.is_empty()).then_some(0),
                ..Replay::default()
            })
        } else {
            Err(not_a_log())
        };
    }
    if &bytes[..MAGIC.len()] == MAGIC_V1 {
        return parse_v1(bytes, path);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(not_a_log());
    }
    let mut records = Vec::new();
    let mut at = MAGIC.len();
    let torn = |at: usize, records: Vec<Record>| Replay {
        records,
        valid_len: at as u64,
        torn_at: Some(at as u64),
        v1: false,
    };
    let damage = |at: usize, reason: &str| damaged(path, at, reason);
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < HEADER {
            // Only the last write can be short.
            return Ok(torn(at, records));
        }
        let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
        let len_check = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if crc32fast::hash(&len_bytes) != len_check {
            // A file grown before its data landed reads as zeros to the end: a torn write. Anything else
            // is a damaged header, whatever follows it.
            if all_zero(rest) {
                return Ok(torn(at, records));
            }
            return Err(damage(at, "the length's checksum does not match"));
        }
        let len = u32::from_le_bytes(len_bytes) as usize;
        if !(FIXED..=MAX_PAYLOAD).contains(&len) {
            return Err(damage(
                at,
                &format!("length {len} was never written by jwtd"),
            ));
        }
        if rest.len() < HEADER + len {
            // A checked length running past the end: the last write was cut short.
            return Ok(torn(at, records));
        }
        let payload = &rest[HEADER..HEADER + len];
        let end = at + HEADER + len;
        if crc32fast::hash(payload) != crc {
            if end == bytes.len() {
                // The last record, garbled: its data never fully reached the disk.
                return Ok(torn(at, records));
            }
            return Err(damage(at, "checksum mismatch"));
        }
        let entry = decode(payload).map_err(|e| bad_record(path, at, e))?;
        records.push(entry);
        at = end;
    }
    Ok(Replay {
        records,
        valid_len: at as u64,
        torn_at: None,
        v1: false,
    })
}

fn damaged(path: &Path, at: usize, reason: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        offset: at as u64,
        reason: reason.to_string(),
    }
}

fn bad_record(path: &Path, at: usize, reason: String) -> StoreError {
    StoreError::BadRecord {
        path: path.to_path_buf(),
        offset: at as u64,
        reason,
    }
}

/// The first format: `len:u32le crc:u32le payload`, payload `op kind expires cutoff value`.
fn parse_v1(bytes: &[u8], path: &Path) -> Result<Replay, StoreError> {
    const FIXED_V1: usize = 18;
    let mut records = Vec::new();
    let mut at = MAGIC_V1.len();
    let torn = |at: usize, records: Vec<Record>| Replay {
        records,
        valid_len: at as u64,
        torn_at: Some(at as u64),
        v1: true,
    };
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            return Ok(torn(at, records));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if !(FIXED_V1..=MAX_PAYLOAD).contains(&len) {
            if all_zero(rest) {
                return Ok(torn(at, records));
            }
            return Err(damaged(path, at, &format!("length {len}")));
        }
        if rest.len() < 8 + len {
            return Ok(torn(at, records));
        }
        let p = &rest[8..8 + len];
        let end = at + 8 + len;
        if crc32fast::hash(p) != crc {
            if end == bytes.len() {
                return Ok(torn(at, records));
            }
            return Err(damaged(path, at, "checksum mismatch"));
        }
        let entry = decode_target(p[1], &p[FIXED_V1..])
            .and_then(|t| decode_op(p[0], t, u64_at(p, 2), u64_at(p, 10)))
            .map(|op| Record::Op(Entry::plain(op, 0)))
            .map_err(|e| bad_record(path, at, e))?;
        records.push(entry);
        at = end;
    }
    Ok(Replay {
        records,
        valid_len: at as u64,
        torn_at: None,
        v1: true,
    })
}

/// The log file, open for appending.
#[derive(Debug)]
pub struct Log {
    file: File,
    path: PathBuf,
    len: u64,
}

/// The log's file name in the state directory.
pub const FILE: &str = "revocations.log";
const COMPACT_TMP: &str = "revocations.log.compact";

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Options for a file of the state directory: owner-only, never through a symlink.
fn private() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    o
}

/// Writes `bytes` to a new file `dir/name` (0600), durably.
fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let path = dir.join(name);
    let mut f = private().write(true).create_new(true).open(&path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(path)
}

/// Where a log's torn tail was moved, and how long it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aside {
    pub path: PathBuf,
    pub offset: u64,
    pub bytes: u64,
}

impl Log {
    /// Opens (creating if needed, 0600) `dir/revocations.log`, replays it, moves a torn tail aside and cuts
    /// it off, rewrites a first-format log in the current one, and returns the log positioned for appending
    /// with what was replayed. The directory itself is checked and locked by [`super::dir::StateDir`].
    pub fn open(dir: &Path) -> Result<(Log, Replay, Option<Aside>), StoreError> {
        let path = dir.join(FILE);
        let io = StoreError::on(&path);
        // A compaction interrupted before its rename leaves its temporary file: the log is still whole.
        let tmp = dir.join(COMPACT_TMP);
        if tmp.symlink_metadata().is_ok() {
            std::fs::remove_file(&tmp).map_err(StoreError::on(&tmp))?;
        }
        let mut file = private()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => StoreError::Symlink { path: path.clone() },
                _ => io(e),
            })?;
        let meta = file.metadata().map_err(&io)?;
        if !meta.is_file() {
            return Err(StoreError::WrongKind {
                path: path.clone(),
                expected: "regular file",
            });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(&io)?;
        let mut replay = parse(&bytes, &path)?;
        let mut aside = None;
        if let Some(offset) = replay.torn_at {
            // Evidence first: the cut bytes go to a file of their own, durably, before the log is cut.
            // The pid too: a restart within the same second (after a cut that failed) must not collide.
            let name = format!("{FILE}.torn-{offset}-{}-{}", now_secs(), std::process::id());
            let tail = &bytes[offset as usize..];
            let path = write_new(dir, &name, tail).map_err(StoreError::on(&dir.join(&name)))?;
            aside = Some(Aside {
                path,
                offset,
                bytes: tail.len() as u64,
            });
        }
        if replay.v1 {
            // Rewrite in the current format, same operations in the same order; stamped with the old
            // file's modification time (its newest write), which the clock check then uses.
            let at = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            for r in &mut replay.records {
                if let Record::Op(e) = r {
                    e.at = at;
                }
            }
            let log = rewrite(dir, &replay.records, |_| Ok(())).map_err(&io)?;
            replay.v1 = false;
            replay.valid_len = log.len;
            return Ok((log, replay, aside));
        }
        if replay.torn_at.is_some() || bytes.len() < MAGIC.len() {
            // Cut the torn tail (or the unfinished magic) and make that durable before appending.
            file.set_len(replay.valid_len).map_err(&io)?;
            if replay.valid_len == 0 {
                file.write_all(MAGIC).map_err(&io)?;
            }
            file.sync_all().map_err(&io)?;
            if bytes.is_empty() {
                sync_dir(dir).map_err(StoreError::on(dir))?;
            }
        }
        let len = file.metadata().map_err(&io)?.len();
        drop(io);
        Ok((Log { file, path, len }, replay, aside))
    }

    /// Appends `ops`, written at `at`, and makes them durable (one write, one fdatasync) before returning.
    pub fn append(&mut self, ops: &[Op], at: u64) -> io::Result<()> {
        let mut buf = Vec::with_capacity(ops.len() * 64);
        for op in ops {
            encode(op, at, &mut buf).map_err(io::Error::other)?;
        }
        self.append_encoded(&buf)
    }

    /// Appends already-framed records durably. On failure the file is cut back to where it was, so that a
    /// later append does not follow a half-written record.
    pub fn append_encoded(&mut self, buf: &[u8]) -> io::Result<()> {
        let result = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                let _ = self.file.sync_data();
                Err(e)
            }
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len <= MAGIC.len() as u64
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The steps of a compaction, for tests that interrupt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The temporary file holds every live rule.
    Written,
    /// … and is durable.
    Synced,
    /// … and has replaced the log.
    Renamed,
    /// … and the rename is durable.
    DirSynced,
}

/// Rewrites the log of `dir` as one record per rule in `live`, stamped `at` — crash-safe: a new file,
/// fsync'd, renamed over the old one, directory fsync'd. Until the rename the old log is the truth; after it
/// the new one. `hook` runs after each step; an error from it stops the compaction there (tests simulate
/// crashes this way). Returns the new log, open for appending.
pub fn compact(
    dir: &Path,
    live: &[Rule],
    at: u64,
    hook: impl FnMut(Step) -> io::Result<()>,
) -> io::Result<Log> {
    let records: Vec<Record> = live
        .iter()
        .map(|r| Record::Op(Entry::plain(Op::Revoke(r.clone()), at)))
        .collect();
    rewrite(dir, &records, hook)
}

/// Rewrites the log of `dir` as `records`, crash-safe like [`compact`].
pub fn rewrite(
    dir: &Path,
    records: &[Record],
    mut hook: impl FnMut(Step) -> io::Result<()>,
) -> io::Result<Log> {
    let tmp = dir.join(COMPACT_TMP);
    let path = dir.join(FILE);
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(MAGIC);
    for r in records {
        encode_record(r, &mut buf).map_err(io::Error::other)?;
    }
    let _ = std::fs::remove_file(&tmp);
    let mut f = private().write(true).create_new(true).open(&tmp)?;
    f.write_all(&buf)?;
    hook(Step::Written)?;
    f.sync_all()?;
    hook(Step::Synced)?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    hook(Step::Renamed)?;
    sync_dir(dir)?;
    hook(Step::DirSynced)?;
    let file = private().append(true).open(&path)?;
    Ok(Log {
        file,
        path,
        len: buf.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<Op> {
        vec![
            Op::Revoke(Rule {
                target: Target::Jti("j-1".into()),
                expires: 1_700_000_000,
                cutoff: 0,
            }),
            Op::Revoke(Rule {
                target: Target::Sub("alice".into()),
                expires: 0,
                cutoff: 1_690_000_000,
            }),
            Op::Revoke(Rule {
                target: Target::token(b"a.b.c"),
                expires: 5,
                cutoff: 0,
            }),
            Op::Unrevoke(Target::Jti("j-1".into())),
        ]
    }

    fn entries(ops: &[Op]) -> Vec<Entry> {
        ops.iter()
            .enumerate()
            .map(|(i, op)| Entry::plain(op.clone(), 1_000 + i as u64))
            .collect()
    }

    fn file_of(ops: &[Op]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for e in entries(ops) {
            encode(&e.op, e.at, &mut b).unwrap();
        }
        b
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jwtd-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn records_round_trip() {
        let bytes = file_of(&ops());
        let r = parse(&bytes, Path::new("log")).unwrap();
        assert_eq!(r.entries(), entries(&ops()));
        assert_eq!(r.valid_len, bytes.len() as u64);
        assert_eq!(r.torn_at, None);
        assert_eq!(r.newest_at(), Some(1_003));
    }

    #[test]
    fn every_torn_tail_is_cut_at_the_last_whole_record() {
        let all = ops();
        let full = file_of(&all);
        let whole = file_of(&all[..3]);
        // Every prefix of the last record's bytes: a crash at any point of its write.
        for cut in whole.len()..full.len() {
            let r = parse(&full[..cut], Path::new("log")).unwrap();
            assert_eq!(r.entries(), entries(&all[..3]), "cut {cut}");
            assert_eq!(r.valid_len, whole.len() as u64, "cut {cut}");
            assert_eq!(r.torn_at.is_some(), cut > whole.len(), "cut {cut}");
        }
        // A last record whose payload is garbage or zeros (size grew, data did not land).
        let mut garbled = full.clone();
        let n = garbled.len();
        garbled[n - 3] ^= 0x55;
        assert_eq!(
            parse(&garbled, Path::new("log")).unwrap().entries(),
            entries(&all[..3])
        );
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 40]);
        assert_eq!(
            parse(&zeros, Path::new("log")).unwrap().entries(),
            entries(&all[..3])
        );
        // Prefixes of the magic: a crash while creating the file.
        for cut in 0..MAGIC.len() {
            assert_eq!(
                parse(&MAGIC[..cut], Path::new("log")).unwrap().entries(),
                []
            );
        }
    }

    #[test]
    fn damage_before_the_end_stops_replay_with_the_offset() {
        let full = file_of(&ops());
        let first_end = file_of(&ops()[..1]).len();
        // Flip a payload byte of the first record: checksum mismatch with records after it.
        let mut bad = full.clone();
        bad[MAGIC.len() + HEADER + 4] ^= 1;
        let e = parse(&bad, Path::new("state/revocations.log")).unwrap_err();
        assert!(
            matches!(&e, StoreError::Damaged { offset: 8, reason, .. } if reason.contains("checksum")),
            "{e:?}"
        );
        assert!(e.to_string().contains("state/revocations.log"), "{e}");
        // A nonsense length in the second record.
        let mut bad = full.clone();
        bad[first_end..first_end + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = parse(&bad, Path::new("log")).unwrap_err();
        assert!(
            matches!(e, StoreError::Damaged { offset, .. } if offset == first_end as u64),
            "{e:?}"
        );
        // Not a log at all.
        assert!(matches!(
            parse(b"hello world, this is not a log", Path::new("log")),
            Err(StoreError::NotALog { .. })
        ));
    }

    #[test]
    fn a_flipped_bit_in_any_length_is_damage_never_a_torn_tail() {
        // Every bit of every record's length field: the first format would read most of these as a record
        // running past the end — a "torn write" — and silently cut every later revocation.
        let full = file_of(&ops());
        let mut starts = vec![MAGIC.len()];
        for i in 1..ops().len() {
            starts.push(file_of(&ops()[..i]).len());
        }
        for (i, &start) in starts.iter().enumerate() {
            for bit in 0..32 {
                let mut bad = full.clone();
                bad[start + bit / 8] ^= 1 << (bit % 8);
                match parse(&bad, Path::new("log")) {
                    Err(e) => assert!(
                        matches!(e, StoreError::Damaged { offset, .. } if offset == start as u64),
                        "{e:?}"
                    ),
                    Ok(r) => panic!(
                        "record {i}, bit {bit}: accepted {} entries",
                        r.entries().len()
                    ),
                }
            }
        }
    }

    #[test]
    fn nothing_replay_would_refuse_can_be_encoded() {
        let huge = "x".repeat(MAX_VALUE + 1);
        for op in [
            Op::Unrevoke(Target::Sub(huge.clone())),
            Op::Unrevoke(Target::Jti(huge.clone())),
            Op::Revoke(Rule {
                target: Target::Sub(huge.clone()),
                expires: 0,
                cutoff: 1,
            }),
        ] {
            let mut b = MAGIC.to_vec();
            assert!(encode(&op, 1, &mut b).is_err());
            assert_eq!(b, MAGIC, "nothing written");
        }
        let most = "x".repeat(MAX_VALUE);
        let mut b = MAGIC.to_vec();
        encode(&Op::Unrevoke(Target::Sub(most)), 1, &mut b).unwrap();
        assert_eq!(
            parse(&b, Path::new("log")).unwrap().entries().len(),
            1,
            "the largest value replays"
        );
    }

    #[test]
    fn open_append_reopen_and_move_a_torn_tail_aside() {
        let dir = dir("torn");
        let (mut log, r, aside) = Log::open(&dir).unwrap();
        assert_eq!((r.entries(), aside), (vec![], None));
        log.append(&ops()[..2], 7).unwrap();
        drop(log);
        // A torn third record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        let mut rec = Vec::new();
        encode(&ops()[2], 7, &mut rec).unwrap();
        f.write_all(&rec[..rec.len() / 2]).unwrap();
        drop(f);
        let (mut log, r, aside) = Log::open(&dir).unwrap();
        assert_eq!(r.entries().len(), 2);
        let aside = aside.expect("the torn tail was moved aside");
        assert_eq!(aside.bytes, (rec.len() / 2) as u64);
        assert_eq!(std::fs::read(&aside.path).unwrap(), rec[..rec.len() / 2]);
        log.append(&ops()[2..], 8).unwrap();
        drop(log);
        let (_, r, aside) = Log::open(&dir).unwrap();
        let got: Vec<Op> = r.entries().into_iter().map(|e| e.op).collect();
        assert_eq!(got, ops(), "appends after a cut tail replay cleanly");
        assert_eq!((r.torn_at, aside), (None, None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_first_format_log_is_read_and_rewritten() {
        let dir = dir("v1");
        // Two v1 records by hand: len crc op kind expires cutoff value.
        let mut v1 = MAGIC_V1.to_vec();
        for (op, kind, value) in [(1u8, 1u8, &b"j-1"[..]), (1, 2, b"alice")] {
            let mut p = vec![op, kind];
            p.extend_from_slice(&9u64.to_le_bytes());
            p.extend_from_slice(&3u64.to_le_bytes());
            p.extend_from_slice(value);
            v1.extend_from_slice(&(p.len() as u32).to_le_bytes());
            v1.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
            v1.extend_from_slice(&p);
        }
        std::fs::write(dir.join(FILE), &v1).unwrap();
        let (_, r, _) = Log::open(&dir).unwrap();
        let want = vec![
            Op::Revoke(Rule {
                target: Target::Jti("j-1".into()),
                expires: 9,
                cutoff: 3,
            }),
            Op::Revoke(Rule {
                target: Target::Sub("alice".into()),
                expires: 9,
                cutoff: 3,
            }),
        ];
        assert_eq!(
            r.entries().iter().map(|e| e.op.clone()).collect::<Vec<_>>(),
            want
        );
        let bytes = std::fs::read(dir.join(FILE)).unwrap();
        assert_eq!(&bytes[..8], MAGIC, "rewritten in the current format");
        let again = parse(&bytes, Path::new("log")).unwrap();
        assert_eq!(
            again
                .entries()
                .iter()
                .map(|e| e.op.clone())
                .collect::<Vec<_>>(),
            want
        );
        assert!(
            again.newest_at().is_some(),
            "stamped with the old file's time"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_compaction_interrupted_at_any_step_loses_nothing() {
        let live = vec![Rule {
            target: Target::Sub("alice".into()),
            expires: 0,
            cutoff: 1_690_000_000,
        }];
        let steps = [Step::Written, Step::Synced, Step::Renamed, Step::DirSynced];
        for stop in steps {
            let dir = dir(&format!("compact-{stop:?}"));
            let (mut log, _, _) = Log::open(&dir).unwrap();
            log.append(&ops(), 1).unwrap();
            drop(log);
            let r = compact(&dir, &live, 2, |s| {
                if s == stop {
                    Err(io::Error::other("crash"))
                } else {
                    Ok(())
                }
            });
            assert!(r.is_err());
            // Whatever was on disk at the "crash", a restart rebuilds the same rules.
            let (_, r, _) = Log::open(&dir).unwrap();
            let set = super::super::Revocations::new();
            for e in r.entries() {
                match e.op {
                    Op::Revoke(rule) => {
                        set.insert(rule);
                    }
                    Op::Unrevoke(t) => {
                        set.remove(&t);
                    }
                    Op::Session(_) => {}
                }
            }
            let mut rules = set.rules();
            rules.sort_by(|a, b| a.target.cmp(&b.target));
            let mut want = vec![
                live[0].clone(),
                Rule {
                    target: Target::token(b"a.b.c"),
                    expires: 5,
                    cutoff: 0,
                },
            ];
            if matches!(stop, Step::Renamed | Step::DirSynced) {
                want.truncate(1); // the compacted log holds exactly `live`
            }
            want.sort_by(|a, b| a.target.cmp(&b.target));
            assert_eq!(rules, want, "stopped at {stop:?}");
            assert!(
                !dir.join(COMPACT_TMP).exists(),
                "temporary file cleaned at open"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
