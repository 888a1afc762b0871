//! The values of the log's session records (the framing, checksums and group commit are the revocation
//! log's, see `revocation::log`):
//!
//! ```text
//! family   = 1:u8 sid:str sub:str client_id:str scope:str aud:str claims:str
//!            created:u64 absolute_end:u64 last_used:u64 generation:u64 current:32
//!            has_previous:u8 [previous:32 previous_at:u64] n_used:u16 used:32*n_used
//! rotate   = 1:u8 sid:str generation:u64 from:32 to:32 at:u64
//! str      = len:u32le UTF-8 bytes        (client_id and claims: empty = none)
//! u64      = little endian
//! ```
//!
//! A `family` record is the whole family: written when it is created and again by every compaction; a
//! `rotate` record moves it one generation on. Only keyed digests of refresh tokens appear.

use std::collections::VecDeque;

use super::token::Digest;

const VERSION: u8 = 1;
/// Longest `sid`, `sub`, `client_id`, `scope` or `aud` (bytes).
pub const MAX_FIELD: usize = 1024;
/// Longest extra-claims JSON (bytes).
pub const MAX_CLAIMS: usize = 8192;
/// Older refresh-token digests a family keeps for reuse detection (older ones are forgotten: presenting
/// one is refused as unknown, without revoking the family).
pub const MAX_USED: usize = 32;

/// A family as it is logged and held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub sid: String,
    pub sub: String,
    pub client_id: Option<String>,
    pub scope: String,
    pub aud: String,
    /// Extra claims of every access token: a JSON object's text.
    pub claims: Option<String>,
    pub created: u64,
    pub absolute_end: u64,
    pub last_used: u64,
    pub generation: u64,
    /// The digest of the one refresh token that rotates now.
    pub current: Digest,
    /// The digest it replaced, and when (a retry within the grace interval is answered again).
    pub previous: Option<(Digest, u64)>,
    /// Older digests, oldest first (at most [`MAX_USED`]).
    pub used: VecDeque<Digest>,
}

/// One rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub sid: String,
    pub generation: u64,
    pub from: Digest,
    pub to: Digest,
    pub at: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Family {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.used.len() * 32);
        out.push(VERSION);
        for s in [
            &self.sid,
            &self.sub,
            self.client_id.as_deref().unwrap_or(""),
            &self.scope,
            &self.aud,
            self.claims.as_deref().unwrap_or(""),
        ] {
            put_str(&mut out, s);
        }
        for n in [
            self.created,
            self.absolute_end,
            self.last_used,
            self.generation,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.current);
        match &self.previous {
            Some((d, at)) => {
                out.push(1);
                out.extend_from_slice(d);
                out.extend_from_slice(&at.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(self.used.len() as u16).to_le_bytes());
        for d in &self.used {
            out.extend_from_slice(d);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Family, String> {
        let mut r = Reader(bytes);
        r.version()?;
        let sid = r.str(MAX_FIELD, "sid")?;
        let sub = r.str(MAX_FIELD, "sub")?;
        let client_id = Some(r.str(MAX_FIELD, "client_id")?).filter(|c| !c.is_empty());
        let scope = r.str(MAX_FIELD, "scope")?;
        let aud = r.str(MAX_FIELD, "aud")?;
        let claims = Some(r.str(MAX_CLAIMS, "claims")?).filter(|c| !c.is_empty());
        let (created, absolute_end, last_used, generation) =
            (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let current = r.digest()?;
        let previous = match r.u8()? {
            0 => None,
            1 => Some((r.digest()?, r.u64()?)),
            b => return Err(format!("previous flag {b}")),
        };
        let n = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| "used count")?) as usize;
        if n > MAX_USED {
            return Err(format!("{n} used digests, at most {MAX_USED}"));
        }
        let mut used = VecDeque::with_capacity(n);
        for _ in 0..n {
            used.push_back(r.digest()?);
        }
        r.end()?;
        if sid.is_empty() || sub.is_empty() {
            return Err("a family without sid or sub".into());
        }
        Ok(Family {
            sid,
            sub,
            client_id,
            scope,
            aud,
            claims,
            created,
            absolute_end,
            last_used,
            generation,
            current,
            previous,
            used,
        })
    }
}

impl Rotation {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + self.sid.len() + 8 + 64 + 8);
        out.push(VERSION);
        put_str(&mut out, &self.sid);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.from);
        out.extend_from_slice(&self.to);
        out.extend_from_slice(&self.at.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Rotation, String> {
        let mut r = Reader(bytes);
        r.version()?;
        let sid = r.str(MAX_FIELD, "sid")?;
        let generation = r.u64()?;
        let (from, to) = (r.digest()?, r.digest()?);
        let at = r.u64()?;
        r.end()?;
        Ok(Rotation {
            sid,
            generation,
            from,
            to,
            at,
        })
    }
}

/// A strict reader: every length is checked, nothing may follow the last field.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("session record too short".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn version(&mut self) -> Result<(), String> {
        match self.u8()? {
            VERSION => Ok(()),
            v => Err(format!("session record version {v}")),
        }
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "u64")?,
        ))
    }
    fn digest(&mut self) -> Result<Digest, String> {
        Ok(self.take(32)?.try_into().map_err(|_| "digest")?)
    }
    fn str(&mut self, max: usize, what: &str) -> Result<String, String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "length")?) as usize;
        if n > max {
            return Err(format!("{what} of {n} bytes, at most {max}"));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes after the session record", self.0.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Family {
        Family {
            sid: "0123456789abcdef0123456789abcdef".into(),
            sub: "alice".into(),
            client_id: Some("app".into()),
            scope: "read write".into(),
            aud: "api".into(),
            claims: Some(r#"{"role":"admin"}"#.into()),
            created: 1000,
            absolute_end: 2000,
            last_used: 1500,
            generation: 3,
            current: [3; 32],
            previous: Some(([2; 32], 1500)),
            used: [[0; 32], [1; 32]].into_iter().collect(),
        }
    }

    #[test]
    fn records_round_trip_and_every_truncation_is_refused() {
        let f = sample();
        let bytes = f.encode();
        assert_eq!(Family::decode(&bytes).unwrap(), f);
        for n in 0..bytes.len() {
            assert!(Family::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Family::decode(&longer).is_err());
        let bare = Family {
            client_id: None,
            claims: None,
            previous: None,
            used: VecDeque::new(),
            ..sample()
        };
        assert_eq!(Family::decode(&bare.encode()).unwrap(), bare);
        let r = Rotation {
            sid: f.sid.clone(),
            generation: 4,
            from: [3; 32],
            to: [4; 32],
            at: 1600,
        };
        let bytes = r.encode();
        assert_eq!(Rotation::decode(&bytes).unwrap(), r);
        for n in 0..bytes.len() {
            assert!(Rotation::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
    }
}
