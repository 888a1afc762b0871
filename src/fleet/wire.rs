//! One revocation as a Redis stream entry (docs/FLEET.md, "Model"): flat fields, no JSON, every value
//! bounded, so that an entry written by any daemon — or by anyone who can write to the stream — is read back
//! exactly or refused with a reason, never half-applied.
//!
//! `v 1 origin <32 hex> seq <n> op revoke|unrevoke kind jti|sub|token|sid target <…> expires <s> cutoff <s> at <ms>`
//!
//! Session records (docs/SESSIONS.md) travel as op `family` or `rotate`, kind `sid`, target the family id,
//! expires and cutoff 0, and one more field, `record`: the record's value in hex.

use crate::crypto::{hex, unhex};
pub use crate::revocation::instance::Instance;
use crate::revocation::log::{MAX_VALUE, Op, SessionKind, SessionOp};
use crate::revocation::{Rule, Target};

/// The wire version this daemon writes and reads.
pub const VERSION: &str = "1";

/// What travels: who acknowledged which operation, as its how-many-th, and when (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub origin: Instance,
    pub seq: u64,
    pub op: Op,
    pub at_ms: u64,
    /// A held rule re-published after the stream lost its data (op `restate`; see docs/FLEET.md).
    pub restated: bool,
}

/// Why an entry cannot be applied (it is logged with its stream ID and skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unknown wire version {0:?}")]
    Version(String),
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field {0} appears twice")]
    Repeated(String),
    #[error("field {0} is malformed")]
    Malformed(&'static str),
    #[error("the target is longer than {MAX_VALUE} bytes")]
    TooLong,
}

/// The entry's fields, in order.
pub fn encode(p: &Published) -> Vec<(&'static str, Vec<u8>)> {
    let (op, target, expires, cutoff) = match &p.op {
        Op::Revoke(r) if p.restated => ("restate", &r.target, r.expires, r.cutoff),
        Op::Revoke(r) => ("revoke", &r.target, r.expires, r.cutoff),
        Op::Unrevoke(t) => ("unrevoke", t, 0, 0),
        Op::Session(s) if s.kind == SessionKind::Family => ("family", &s.target, 0, 0),
        Op::Session(s) => ("rotate", &s.target, 0, 0),
    };
    let (kind, value) = match target {
        Target::Jti(s) => ("jti", s.as_bytes().to_vec()),
        Target::Sub(s) => ("sub", s.as_bytes().to_vec()),
        Target::Sid(s) => ("sid", s.as_bytes().to_vec()),
        Target::Token(d) => ("token", hex(d).into_bytes()),
    };
    let mut fields = vec![
        ("v", VERSION.into()),
        ("origin", p.origin.hex().into_bytes()),
        ("seq", p.seq.to_string().into_bytes()),
        ("op", op.into()),
        ("kind", kind.into()),
        ("target", value),
        ("expires", expires.to_string().into_bytes()),
        ("cutoff", cutoff.to_string().into_bytes()),
        ("at", p.at_ms.to_string().into_bytes()),
    ];
    if let Op::Session(s) = &p.op {
        fields.push(("record", hex(&s.value).into_bytes()));
    }
    fields
}

const FIELDS: [&str; 10] = [
    "v", "origin", "seq", "op", "kind", "target", "expires", "cutoff", "at", "record",
];

/// Reads an entry's fields (as Redis returns them). Unknown extra fields are ignored (a newer writer may add
/// some); a known field twice, or any field malformed, refuses the entry.
pub fn decode(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Published, WireError> {
    let mut got: [Option<&[u8]>; 10] = [None; 10];
    for (name, value) in fields {
        if let Some(i) = FIELDS.iter().position(|f| f.as_bytes() == name.as_slice())
            && got[i].replace(value).is_some()
        {
            return Err(WireError::Repeated(FIELDS[i].to_string()));
        }
    }
    let field = |i: usize| got[i].ok_or(WireError::Missing(FIELDS[i]));
    let number = |i: usize| -> Result<u64, WireError> {
        let v = field(i)?;
        // Plain decimal digits only: no sign, no spaces, no leading zeros but "0".
        if v.is_empty()
            || v.len() > 20
            || !v.iter().all(u8::is_ascii_digit)
            || (v.len() > 1 && v[0] == b'0')
        {
            return Err(WireError::Malformed(FIELDS[i]));
        }
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(WireError::Malformed(FIELDS[i]))
    };
    let version = field(0)?;
    if version != VERSION.as_bytes() {
        return Err(WireError::Version(
            String::from_utf8_lossy(&version[..version.len().min(16)]).into_owned(),
        ));
    }
    let origin = Instance::parse(field(1)?).ok_or(WireError::Malformed("origin"))?;
    let seq = number(2)?;
    let value = field(5)?;
    if value.len() > MAX_VALUE {
        return Err(WireError::TooLong);
    }
    let text = || {
        std::str::from_utf8(value)
            .map(str::to_string)
            .map_err(|_| WireError::Malformed("target"))
    };
    let target = match field(4)? {
        b"jti" => Target::Jti(text()?),
        b"sub" => Target::Sub(text()?),
        b"sid" => Target::Sid(text()?),
        b"token" => {
            let mut d = [0u8; 32];
            if !unhex(value, &mut d) {
                return Err(WireError::Malformed("target"));
            }
            Target::Token(d)
        }
        _ => return Err(WireError::Malformed("kind")),
    };
    let restated = field(3)? == b"restate";
    let op = match field(3)? {
        b"revoke" | b"restate" => Op::Revoke(Rule {
            target,
            expires: number(6)?,
            cutoff: number(7)?,
        }),
        b"unrevoke" => Op::Unrevoke(target),
        kind @ (b"family" | b"rotate") => {
            let hex_value = field(9)?;
            if hex_value.len() % 2 != 0 || hex_value.len() / 2 > MAX_VALUE {
                return Err(WireError::Malformed("record"));
            }
            let mut value = vec![0u8; hex_value.len() / 2];
            if !unhex(hex_value, &mut value) || number(6)? != 0 || number(7)? != 0 {
                return Err(WireError::Malformed("record"));
            }
            let kind = if kind == b"family" {
                SessionKind::Family
            } else {
                SessionKind::Rotate
            };
            let op = SessionOp::new(kind, value).map_err(|_| WireError::Malformed("record"))?;
            // The record names its family; the entry's target must be that family.
            if op.target != target {
                return Err(WireError::Malformed("target"));
            }
            Op::Session(op)
        }
        _ => return Err(WireError::Malformed("op")),
    };
    Ok(Published {
        origin,
        seq,
        op,
        at_ms: number(8)?,
        restated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(fields: Vec<(&'static str, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
        fields
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect()
    }

    #[test]
    fn session_records_round_trip_and_must_name_their_family() {
        let mut value = vec![1u8];
        value.extend_from_slice(&3u32.to_le_bytes());
        value.extend_from_slice(b"s-1");
        value.extend_from_slice(&[7; 20]);
        for kind in [SessionKind::Family, SessionKind::Rotate] {
            let p = sample(Op::Session(SessionOp::new(kind, value.clone()).unwrap()));
            let fields = owned(encode(&p));
            assert_eq!(decode(&fields), Ok(p));
            // Another family as the target than the record names: refused.
            let other: Vec<_> = fields
                .iter()
                .map(|(k, v)| {
                    if k == b"target" {
                        (k.clone(), b"s-2".to_vec())
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect();
            assert_eq!(decode(&other), Err(WireError::Malformed("target")));
            let no_record: Vec<_> = fields
                .iter()
                .filter(|(k, _)| k != b"record")
                .cloned()
                .collect();
            assert_eq!(decode(&no_record), Err(WireError::Missing("record")));
            let odd: Vec<_> = fields
                .iter()
                .map(|(k, v)| {
                    if k == b"record" {
                        (k.clone(), b"abc".to_vec())
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect();
            assert_eq!(decode(&odd), Err(WireError::Malformed("record")));
        }
    }

    fn sample(op: Op) -> Published {
        Published {
            origin: Instance([0xab; 16]),
            seq: 42,
            op,
            at_ms: 1_800_000_000_123,
            restated: false,
        }
    }

    #[test]
    fn a_restated_rule_round_trips() {
        let mut p = sample(Op::Revoke(Rule {
            target: Target::Sub("alice".into()),
            expires: 5,
            cutoff: 4,
        }));
        p.restated = true;
        let fields = owned(encode(&p));
        assert!(fields.contains(&(b"op".to_vec(), b"restate".to_vec())));
        assert_eq!(decode(&fields).unwrap(), p);
    }

    #[test]
    fn every_operation_round_trips() {
        for op in [
            Op::Revoke(Rule {
                target: Target::Jti("j-1 with spaces, é".into()),
                expires: 1_900_000_000,
                cutoff: 0,
            }),
            Op::Revoke(Rule {
                target: Target::Sub("alice".into()),
                expires: 0,
                cutoff: 1_800_000_000,
            }),
            Op::Revoke(Rule {
                target: Target::Token([7; 32]),
                expires: 1,
                cutoff: 0,
            }),
            Op::Unrevoke(Target::Sub("bob".into())),
        ] {
            let p = sample(op);
            assert_eq!(decode(&owned(encode(&p))), Ok(p));
        }
    }

    #[test]
    fn malformed_entries_are_refused_with_a_reason() {
        let good = owned(encode(&sample(Op::Unrevoke(Target::Jti("x".into())))));
        let with = |name: &str, value: &[u8]| -> Vec<(Vec<u8>, Vec<u8>)> {
            good.iter()
                .map(|(k, v)| {
                    if k == name.as_bytes() {
                        (k.clone(), value.to_vec())
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect()
        };
        assert_eq!(
            decode(&with("v", b"2")),
            Err(WireError::Version("2".into()))
        );
        assert_eq!(
            decode(&with("origin", b"zz")),
            Err(WireError::Malformed("origin"))
        );
        for bad in [&b""[..], b"-1", b"01", b"1 ", b"99999999999999999999999"] {
            assert_eq!(
                decode(&with("seq", bad)),
                Err(WireError::Malformed("seq")),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode(&with("op", b"delete")),
            Err(WireError::Malformed("op"))
        );
        assert_eq!(
            decode(&with("kind", b"iss")),
            Err(WireError::Malformed("kind"))
        );
        assert_eq!(
            decode(&with("target", &[0xff])),
            Err(WireError::Malformed("target"))
        );
        assert_eq!(
            decode(&with("target", &vec![b'a'; MAX_VALUE + 1])),
            Err(WireError::TooLong)
        );
        let mut twice = good.clone();
        twice.push((b"seq".to_vec(), b"7".to_vec()));
        assert_eq!(decode(&twice), Err(WireError::Repeated("seq".into())));
        let missing: Vec<_> = good.iter().filter(|(k, _)| k != b"at").cloned().collect();
        assert_eq!(decode(&missing), Err(WireError::Missing("at")));
        // A newer writer's extra field is ignored.
        let mut extra = good.clone();
        extra.push((b"note".to_vec(), b"x".to_vec()));
        assert!(decode(&extra).is_ok());
        // A token digest must be 64 lower-case hex digits.
        let mut token = owned(encode(&sample(Op::Unrevoke(Target::Token([1; 32])))));
        token[5].1 = b"AB".repeat(32);
        assert_eq!(decode(&token), Err(WireError::Malformed("target")));
    }
}
