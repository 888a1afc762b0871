//! The revocation log: an append-only file of checksummed records (format in docs/REVOCATION.md).
//!
//! ```text
//! file    = magic record*
//! magic   = "JWTDREV1"
//! record  = len:u32le crc:u32le payload          (crc = CRC-32 of payload, len = payload bytes ≤ 64 KiB)
//! payload = op:u8 kind:u8 expires:u64le cutoff:u64le value
//! op      = 1 revoke | 2 unrevoke
//! kind    = 1 jti (value: UTF-8) | 2 sub (value: UTF-8) | 3 token (value: 32-byte SHA-256)
//! ```
//!
//! Replay tells a crash from damage. A crash while appending leaves a prefix of the last write: a short
//! header, a short payload, or (on file systems that grow the file before its data lands) a zero-filled or
//! garbled last record — all of these end the file, and are cut off. A bad record with more data after it
//! cannot come from a crash: replay stops with the file and offset, rather than silently dropping the
//! revocations after it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{Rule, Target};

pub const MAGIC: &[u8; 8] = b"JWTDREV1";
pub const MAX_PAYLOAD: usize = 64 * 1024;
const FIXED: usize = 1 + 1 + 8 + 8;

/// One logged operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Revoke(Rule),
    Unrevoke(Target),
}

/// Appends the framed record for `op` to `out`.
pub fn encode(op: &Op, out: &mut Vec<u8>) {
    let (code, target, expires, cutoff) = match op {
        Op::Revoke(r) => (1u8, &r.target, r.expires, r.cutoff),
        Op::Unrevoke(t) => (2u8, t, 0, 0),
    };
    let (kind, value): (u8, &[u8]) = match target {
        Target::Jti(s) => (1, s.as_bytes()),
        Target::Sub(s) => (2, s.as_bytes()),
        Target::Token(d) => (3, d),
    };
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.push(code);
    out.push(kind);
    out.extend_from_slice(&expires.to_le_bytes());
    out.extend_from_slice(&cutoff.to_le_bytes());
    out.extend_from_slice(value);
    let payload = &out[start + 8..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The largest value a record can carry (a jti or sub longer than this cannot be revoked).
pub const MAX_VALUE: usize = MAX_PAYLOAD - FIXED;

fn decode(p: &[u8]) -> Result<Op, String> {
    if p.len() < FIXED {
        return Err(format!("record of {} bytes is too short", p.len()));
    }
    let expires = u64::from_le_bytes(p[2..10].try_into().map_err(|_| "short")?);
    let cutoff = u64::from_le_bytes(p[10..18].try_into().map_err(|_| "short")?);
    let value = &p[FIXED..];
    let text = || String::from_utf8(value.to_vec()).map_err(|_| "value is not UTF-8".to_string());
    let target = match p[1] {
        1 => Target::Jti(text()?),
        2 => Target::Sub(text()?),
        3 => Target::Token(
            value
                .try_into()
                .map_err(|_| format!("token digest of {} bytes", value.len()))?,
        ),
        k => return Err(format!("unknown kind {k}")),
    };
    match p[0] {
        1 => Ok(Op::Revoke(Rule {
            target,
            expires,
            cutoff,
        })),
        2 => Ok(Op::Unrevoke(target)),
        o => Err(format!("unknown op {o}")),
    }
}

/// What replaying a log found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub ops: Vec<Op>,
    /// Bytes of the file that hold the magic and whole, valid records.
    pub valid_len: u64,
    /// The file was longer: a torn last write from this offset on (to be cut off).
    pub torn_at: Option<u64>,
}

/// Parses a whole log. `shown` names the file in errors.
pub fn parse(bytes: &[u8], shown: &str) -> Result<Replay, String> {
    if bytes.len() < MAGIC.len() {
        // Created but not finished (a crash right after creation): a prefix of the magic, or nothing.
        return if MAGIC.starts_with(bytes) {
            Ok(Replay {
                torn_at: (!bytes.is_empty()).then_some(0),
                ..Replay::default()
            })
        } else {
            Err(format!("{shown}: not a jwtd revocation log (bad magic)"))
        };
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(format!("{shown}: not a jwtd revocation log (bad magic)"));
    }
    let mut ops = Vec::new();
    let mut at = MAGIC.len();
    let torn = |at: usize, ops: Vec<Op>| Replay {
        ops,
        valid_len: at as u64,
        torn_at: Some(at as u64),
    };
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            return Ok(torn(at, ops));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if !(FIXED..=MAX_PAYLOAD).contains(&len) {
            if rest.iter().all(|&b| b == 0) {
                return Ok(torn(at, ops));
            }
            return Err(format!(
                "{shown}: corrupt record at offset {at}: length {len} (more data follows; not a torn write)"
            ));
        }
        if rest.len() < 8 + len {
            return Ok(torn(at, ops));
        }
        let payload = &rest[8..8 + len];
        let end = at + 8 + len;
        if crc32fast::hash(payload) != crc {
            if end == bytes.len() {
                // The last record, garbled: its data never fully reached the disk.
                return Ok(torn(at, ops));
            }
            return Err(format!(
                "{shown}: corrupt record at offset {at}: checksum mismatch (more data follows; not a torn write)"
            ));
        }
        let op = decode(payload).map_err(|e| format!("{shown}: bad record at offset {at}: {e}"))?;
        ops.push(op);
        at = end;
    }
    Ok(Replay {
        ops,
        valid_len: at as u64,
        torn_at: None,
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

impl Log {
    /// Opens (creating if needed) `dir/revocations.log`, replays it, cuts off a torn tail, and returns the
    /// log positioned for appending with the replayed operations.
    pub fn open(dir: &Path) -> Result<(Log, Replay), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        let io = |e: io::Error| format!("{shown}: {e}");
        // A compaction interrupted before its rename leaves its temporary file: the log is still whole.
        let tmp = dir.join(COMPACT_TMP);
        if tmp.exists() {
            std::fs::remove_file(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let replay = parse(&bytes, &shown)?;
        if replay.torn_at.is_some() || bytes.len() < MAGIC.len() {
            // Cut the torn tail (or the unfinished magic) and make that durable before appending.
            file.set_len(replay.valid_len).map_err(io)?;
            if replay.valid_len == 0 {
                file.write_all(MAGIC).map_err(io)?;
            }
            file.sync_all().map_err(io)?;
            if bytes.is_empty() {
                sync_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
        let len = file.metadata().map_err(io)?.len();
        Ok((Log { file, path, len }, replay))
    }

    /// Appends `ops` and makes them durable (one write, one fdatasync) before returning.
    pub fn append(&mut self, ops: &[Op]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(ops.len() * 64);
        for op in ops {
            encode(op, &mut buf);
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

/// Rewrites the log of `dir` as one record per rule in `live` — crash-safe: a new file, fsync'd, renamed
/// over the old one, directory fsync'd. Until the rename the old log is the truth; after it the new one.
/// `hook` runs after each step; an error from it stops the compaction there (tests simulate crashes this
/// way). Returns the new log, open for appending.
pub fn compact(
    dir: &Path,
    live: &[Rule],
    mut hook: impl FnMut(Step) -> io::Result<()>,
) -> io::Result<Log> {
    let tmp = dir.join(COMPACT_TMP);
    let path = dir.join(FILE);
    let mut buf = Vec::with_capacity(MAGIC.len() + live.len() * 64);
    buf.extend_from_slice(MAGIC);
    for r in live {
        encode(&Op::Revoke(r.clone()), &mut buf);
    }
    let mut f = File::create(&tmp)?;
    f.write_all(&buf)?;
    hook(Step::Written)?;
    f.sync_all()?;
    hook(Step::Synced)?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    hook(Step::Renamed)?;
    sync_dir(dir)?;
    hook(Step::DirSynced)?;
    let file = OpenOptions::new().append(true).open(&path)?;
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

    fn file_of(ops: &[Op]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for op in ops {
            encode(op, &mut b);
        }
        b
    }

    #[test]
    fn records_round_trip() {
        let bytes = file_of(&ops());
        let r = parse(&bytes, "log").unwrap();
        assert_eq!(r.ops, ops());
        assert_eq!(r.valid_len, bytes.len() as u64);
        assert_eq!(r.torn_at, None);
    }

    #[test]
    fn every_torn_tail_is_cut_at_the_last_whole_record() {
        let all = ops();
        let full = file_of(&all);
        let whole = file_of(&all[..3]);
        // Every prefix of the last record's bytes: a crash at any point of its write.
        for cut in whole.len()..full.len() {
            let r = parse(&full[..cut], "log").unwrap();
            assert_eq!(r.ops, all[..3], "cut {cut}");
            assert_eq!(r.valid_len, whole.len() as u64, "cut {cut}");
            assert_eq!(r.torn_at.is_some(), cut > whole.len(), "cut {cut}");
        }
        // A last record whose bytes are garbage or zeros (size grew, data did not land).
        let mut garbled = full.clone();
        let n = garbled.len();
        garbled[n - 3] ^= 0x55;
        assert_eq!(parse(&garbled, "log").unwrap().ops, all[..3]);
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 40]);
        assert_eq!(parse(&zeros, "log").unwrap().ops, all[..3]);
        // Prefixes of the magic: a crash while creating the file.
        for cut in 0..MAGIC.len() {
            assert_eq!(parse(&MAGIC[..cut], "log").unwrap().ops, []);
        }
    }

    #[test]
    fn damage_before_the_end_stops_replay_with_the_offset() {
        let full = file_of(&ops());
        let first_end = file_of(&ops()[..1]).len();
        // Flip a payload byte of the first record: checksum mismatch with records after it.
        let mut bad = full.clone();
        bad[MAGIC.len() + 12] ^= 1;
        let e = parse(&bad, "state/revocations.log").unwrap_err();
        assert!(
            e.contains("state/revocations.log") && e.contains("offset 8") && e.contains("checksum"),
            "{e}"
        );
        // A nonsense length in the second record.
        let mut bad = full.clone();
        bad[first_end..first_end + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = parse(&bad, "log").unwrap_err();
        assert!(e.contains(&format!("offset {first_end}")), "{e}");
        // Not a log at all.
        assert!(
            parse(b"hello world, this is not a log", "log")
                .unwrap_err()
                .contains("magic")
        );
    }

    #[test]
    fn open_append_reopen_and_truncate_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("jwtd-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut log, r) = Log::open(&dir).unwrap();
        assert_eq!(r.ops, []);
        log.append(&ops()[..2]).unwrap();
        drop(log);
        // A torn third record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        let mut rec = Vec::new();
        encode(&ops()[2], &mut rec);
        f.write_all(&rec[..rec.len() / 2]).unwrap();
        drop(f);
        let (mut log, r) = Log::open(&dir).unwrap();
        assert_eq!(r.ops, ops()[..2]);
        assert!(r.torn_at.is_some());
        log.append(&ops()[2..]).unwrap();
        drop(log);
        let (_, r) = Log::open(&dir).unwrap();
        assert_eq!(r.ops, ops(), "appends after a cut tail replay cleanly");
        assert_eq!(r.torn_at, None);
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
            let dir =
                std::env::temp_dir().join(format!("jwtd-compact-{stop:?}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let (mut log, _) = Log::open(&dir).unwrap();
            log.append(&ops()).unwrap();
            drop(log);
            let r = compact(&dir, &live, |s| {
                if s == stop {
                    Err(io::Error::other("crash"))
                } else {
                    Ok(())
                }
            });
            assert!(r.is_err());
            // Whatever was on disk at the "crash", a restart rebuilds the same rules.
            let (_, r) = Log::open(&dir).unwrap();
            let set = super::super::Revocations::new();
            for op in r.ops {
                match op {
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
