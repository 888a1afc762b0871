//! The revocation log: an append-only file of checksummed records (format in docs/REVOCATION.md).
//!
//! ```text
//! file     = magic record*
//! magic    = "JWTDREV2"
//! record   = len:u32le lencheck:u32le crc:u32le payload
//!            (lencheck = CRC-32 of the 4 len bytes; crc = CRC-32 of payload; len = payload bytes ≤ 64 KiB)
//! payload  = op:u8 kind:u8 at:u64le expires:u64le cutoff:u64le value
//! op       = 1 revoke | 2 unrevoke
//! kind     = 1 jti (value: UTF-8) | 2 sub (value: UTF-8) | 3 token (value: 32-byte SHA-256)
//! at       = Unix seconds when the record was written (the clock check of compaction, see `store`)
//! ```
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
/// The largest value a record can carry (a jti or sub longer than this cannot be revoked).
pub const MAX_VALUE: usize = MAX_PAYLOAD - FIXED;

/// One logged operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Revoke(Rule),
    Unrevoke(Target),
}

/// One record: an operation and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix seconds at the write (0 in migrated first-format logs: unknown).
    pub at: u64,
    pub op: Op,
}

fn target_of(op: &Op) -> &Target {
    match op {
        Op::Revoke(r) => &r.target,
        Op::Unrevoke(t) => t,
    }
}

/// Whether `op` can be written as a record that replay accepts — the one place that decides it. Every
/// path that writes (both protocols, every verb, compaction, migration) goes through [`encode`], which calls
/// this: an operation replay would refuse is never written, so one acknowledged command can never stop
/// every later start.
pub fn validate(op: &Op) -> Result<(), StoreError> {
    let (what, len) = match target_of(op) {
        Target::Jti(s) => ("jti", s.len()),
        Target::Sub(s) => ("sub", s.len()),
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
    validate(op)?;
    let (code, expires, cutoff) = match op {
        Op::Revoke(r) => (1u8, r.expires, r.cutoff),
        Op::Unrevoke(_) => (2u8, 0, 0),
    };
    let (kind, value): (u8, &[u8]) = match target_of(op) {
        Target::Jti(s) => (1, s.as_bytes()),
        Target::Sub(s) => (2, s.as_bytes()),
        Target::Token(d) => (3, d),
    };
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(code);
    out.push(kind);
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&expires.to_le_bytes());
    out.extend_from_slice(&cutoff.to_le_bytes());
    out.extend_from_slice(value);
    let payload = &out[start + HEADER..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
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
        k => return Err(format!("unknown kind {k}")),
    })
}

fn decode_op(code: u8, target: Target, expires: u64, cutoff: u64) -> Result<Op, String> {
    match code {
        1 => Ok(Op::Revoke(Rule {
            target,
            expires,
            cutoff,
        })),
        2 => Ok(Op::Unrevoke(target)),
        o => Err(format!("unknown op {o}")),
    }
}

fn u64_at(p: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[i..i + 8]);
    u64::from_le_bytes(b)
}

fn decode(p: &[u8]) -> Result<Entry, String> {
    if p.len() < FIXED {
        return Err(format!("record of {} bytes is too short", p.len()));
    }
    let target = decode_target(p[1], &p[FIXED..])?;
    Ok(Entry {
        at: u64_at(p, 2),
        op: decode_op(p[0], target, u64_at(p, 10), u64_at(p, 18))?,
    })
}

/// What replaying a log found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub entries: Vec<Entry>,
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
        self.entries.iter().map(|e| e.at).filter(|&a| a > 0).max()
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
    let mut entries = Vec::new();
    let mut at = MAGIC.len();
    let torn = |at: usize, entries: Vec<Entry>| Replay {
        entries,
        valid_len: at as u64,
        torn_at: Some(at as u64),
        v1: false,
    };
    let damage = |at: usize, reason: &str| damaged(path, at, reason);
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < HEADER {
            // Only the last write can be short.
            return Ok(torn(at, entries));
        }
        let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
        let len_check = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if crc32fast::hash(&len_bytes) != len_check {
            // A file grown before its data landed reads as zeros to the end: a torn write. Anything else
            // is a damaged header, whatever follows it.
            if all_zero(rest) {
                return Ok(torn(at, entries));
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
            return Ok(torn(at, entries));
        }
        let payload = &rest[HEADER..HEADER + len];
        let end = at + HEADER + len;
        if crc32fast::hash(payload) != crc {
            if end == bytes.len() {
                // The last record, garbled: its data never fully reached the disk.
                return Ok(torn(at, entries));
            }
            return Err(damage(at, "checksum mismatch"));
        }
        let entry = decode(payload).map_err(|e| bad_record(path, at, e))?;
        entries.push(entry);
        at = end;
    }
    Ok(Replay {
        entries,
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
    let mut entries = Vec::new();
    let mut at = MAGIC_V1.len();
    let torn = |at: usize, entries: Vec<Entry>| Replay {
        entries,
        valid_len: at as u64,
        torn_at: Some(at as u64),
        v1: true,
    };
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            return Ok(torn(at, entries));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if !(FIXED_V1..=MAX_PAYLOAD).contains(&len) {
            if all_zero(rest) {
                return Ok(torn(at, entries));
            }
            return Err(damaged(path, at, &format!("length {len}")));
        }
        if rest.len() < 8 + len {
            return Ok(torn(at, entries));
        }
        let p = &rest[8..8 + len];
        let end = at + 8 + len;
        if crc32fast::hash(p) != crc {
            if end == bytes.len() {
                return Ok(torn(at, entries));
            }
            return Err(damaged(path, at, "checksum mismatch"));
        }
        let entry = decode_target(p[1], &p[FIXED_V1..])
            .and_then(|t| decode_op(p[0], t, u64_at(p, 2), u64_at(p, 10)))
            .map(|op| Entry { at: 0, op })
            .map_err(|e| bad_record(path, at, e))?;
        entries.push(entry);
        at = end;
    }
    Ok(Replay {
        entries,
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
            for e in &mut replay.entries {
                e.at = at;
            }
            let ops: Vec<&Op> = replay.entries.iter().map(|e| &e.op).collect();
            let log = rewrite(dir, ops.into_iter(), at, |_| Ok(())).map_err(&io)?;
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
    let ops: Vec<Op> = live.iter().cloned().map(Op::Revoke).collect();
    rewrite(dir, ops.iter(), at, hook)
}

fn rewrite<'a>(
    dir: &Path,
    ops: impl Iterator<Item = &'a Op>,
    at: u64,
    mut hook: impl FnMut(Step) -> io::Result<()>,
) -> io::Result<Log> {
    let tmp = dir.join(COMPACT_TMP);
    let path = dir.join(FILE);
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(MAGIC);
    for op in ops {
        encode(op, at, &mut buf).map_err(io::Error::other)?;
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
            .map(|(i, op)| Entry {
                at: 1_000 + i as u64,
                op: op.clone(),
            })
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
        assert_eq!(r.entries, entries(&ops()));
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
            assert_eq!(r.entries, entries(&all[..3]), "cut {cut}");
            assert_eq!(r.valid_len, whole.len() as u64, "cut {cut}");
            assert_eq!(r.torn_at.is_some(), cut > whole.len(), "cut {cut}");
        }
        // A last record whose payload is garbage or zeros (size grew, data did not land).
        let mut garbled = full.clone();
        let n = garbled.len();
        garbled[n - 3] ^= 0x55;
        assert_eq!(
            parse(&garbled, Path::new("log")).unwrap().entries,
            entries(&all[..3])
        );
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 40]);
        assert_eq!(
            parse(&zeros, Path::new("log")).unwrap().entries,
            entries(&all[..3])
        );
        // Prefixes of the magic: a crash while creating the file.
        for cut in 0..MAGIC.len() {
            assert_eq!(parse(&MAGIC[..cut], Path::new("log")).unwrap().entries, []);
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
                        r.entries.len()
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
            parse(&b, Path::new("log")).unwrap().entries.len(),
            1,
            "the largest value replays"
        );
    }

    #[test]
    fn open_append_reopen_and_move_a_torn_tail_aside() {
        let dir = dir("torn");
        let (mut log, r, aside) = Log::open(&dir).unwrap();
        assert_eq!((r.entries, aside), (vec![], None));
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
        assert_eq!(r.entries.len(), 2);
        let aside = aside.expect("the torn tail was moved aside");
        assert_eq!(aside.bytes, (rec.len() / 2) as u64);
        assert_eq!(std::fs::read(&aside.path).unwrap(), rec[..rec.len() / 2]);
        log.append(&ops()[2..], 8).unwrap();
        drop(log);
        let (_, r, aside) = Log::open(&dir).unwrap();
        let got: Vec<Op> = r.entries.into_iter().map(|e| e.op).collect();
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
            r.entries.iter().map(|e| e.op.clone()).collect::<Vec<_>>(),
            want
        );
        let bytes = std::fs::read(dir.join(FILE)).unwrap();
        assert_eq!(&bytes[..8], MAGIC, "rewritten in the current format");
        let again = parse(&bytes, Path::new("log")).unwrap();
        assert_eq!(
            again
                .entries
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
            for e in r.entries {
                match e.op {
                    Op::Revoke(rule) => {
                        set.insert(rule);
                    }
                    Op::Unrevoke(t) => {
                        set.remove(&t);
                    }
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
