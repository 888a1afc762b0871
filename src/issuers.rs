//! Several issuers behind one entry point: the token's `iss` selects the issuer's verifier (RFC 8725 §3.8:
//! an issuer speaks only for its own keys). The `iss` is read before the signature is checked, only to pick
//! a key set; the chosen verifier then checks the signature and requires that same `iss`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Error;
use crate::json::Reader;
use crate::jws::{self, b64};
use crate::verify::{Verified, Verifier};

/// Routes tokens to verifiers. Cheap to clone (verifiers are shared): a key set fetched for one issuer
/// replaces that issuer's verifier in a copy, which is then swapped in whole.
#[derive(Debug, Clone)]
pub struct Issuers {
    entries: Vec<Entry>,
    /// `None`: one verifier for every token (the CLI's single-issuer flags). Otherwise `iss` → entry; each
    /// verifier's policy requires its own `iss`.
    by_iss: Option<HashMap<String, usize>>,
}

#[derive(Debug, Clone)]
struct Entry {
    iss: Option<String>,
    verifier: Arc<Verifier>,
    /// Bumped when keys of this issuer are withdrawn: verdicts stamped with an older epoch no longer hold.
    epoch: u32,
    /// Why this issuer's keys are not usable (never fetched, or too stale): tokens that find no key get
    /// `keys_unavailable` with this reason instead of `unknown_key`.
    unavailable: Option<Arc<str>>,
}

/// Which issuer verified a token, and under which of its key epochs: what a cached verdict must still match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub issuer: u32,
    pub epoch: u32,
}

impl Issuers {
    /// One verifier for every token.
    pub fn single(verifier: Verifier) -> Issuers {
        Issuers {
            entries: vec![Entry::new(None, verifier)],
            by_iss: None,
        }
    }

    /// One verifier per `iss`, in this order (an issuer's index is its position).
    pub fn by_iss(list: Vec<(String, Verifier)>) -> Issuers {
        let by_iss = list
            .iter()
            .enumerate()
            .map(|(i, (iss, _))| (iss.clone(), i))
            .collect();
        Issuers {
            entries: list
                .into_iter()
                .map(|(iss, v)| Entry::new(Some(iss), v))
                .collect(),
            by_iss: Some(by_iss),
        }
    }

    pub fn verify(&self, token: &[u8], now: u64) -> Result<Verified, Error> {
        self.verify_stamped(token, now).map(|(v, _)| v)
    }

    /// Verifies `token`, and says which issuer (and key epoch) accepted it.
    pub fn verify_stamped(&self, token: &[u8], now: u64) -> Result<(Verified, Stamp), Error> {
        let i = match &self.by_iss {
            None => 0,
            Some(map) => {
                // Size and shape rules first, with the same errors as a single verifier.
                let limits = self
                    .entries
                    .first()
                    .map(|e| e.verifier.limits().clone())
                    .unwrap_or_default();
                let parts = jws::split(token, &limits)?;
                let iss = peek_iss(parts.payload, limits.max_json_depth)?;
                *iss.as_deref()
                    .and_then(|iss| map.get(iss))
                    .ok_or_else(|| Error::UnknownIssuer(iss.unwrap_or_else(|| "(none)".into())))?
            }
        };
        let e = self
            .entries
            .get(i)
            .ok_or_else(|| Error::UnknownIssuer("(none)".into()))?;
        match e.verifier.verify(token, now) {
            Ok(v) => Ok((
                v,
                Stamp {
                    issuer: i as u32,
                    epoch: e.epoch,
                },
            )),
            Err(Error::UnknownKey(_) | Error::AlgNotAllowed(_)) if e.unavailable.is_some() => Err(
                Error::KeysUnavailable(e.unavailable.as_deref().unwrap_or_default().to_string()),
            ),
            Err(err) => Err(err),
        }
    }

    /// Whether a verdict stamped `s` still holds: its issuer has withdrawn no key since.
    pub fn is_current(&self, s: Stamp) -> bool {
        self.entries
            .get(s.issuer as usize)
            .is_some_and(|e| e.epoch == s.epoch)
    }

    /// The issuer a token would be routed to (by its unverified `iss`), if any.
    pub fn route(&self, token: &[u8]) -> Option<usize> {
        match &self.by_iss {
            None => Some(0),
            Some(map) => {
                let limits = self.entries.first()?.verifier.limits().clone();
                let parts = jws::split(token, &limits).ok()?;
                let iss = peek_iss(parts.payload, limits.max_json_depth).ok()??;
                map.get(&iss).copied()
            }
        }
    }

    /// The times at which the verdict for `v` (verified by [`Issuers::verify`] at `now`) holds; empty if no
    /// issuer matches.
    pub fn window(&self, v: &Verified, now: u64) -> (u64, u64) {
        let i = match &self.by_iss {
            None => Some(0),
            Some(map) => v.iss().and_then(|iss| map.get(iss).copied()),
        };
        i.and_then(|i| self.entries.get(i))
            .map_or((now, now), |e| e.verifier.window(v, now))
    }

    /// Verification keys across all issuers.
    pub fn keys_loaded(&self) -> usize {
        self.entries.iter().map(|e| e.verifier.keys().len()).sum()
    }

    /// How many issuers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Issuer `i`'s `iss` (`None` in single-verifier mode).
    pub fn iss(&self, i: usize) -> Option<&str> {
        self.entries.get(i)?.iss.as_deref()
    }

    /// Issuer `i`'s verifier.
    pub fn verifier(&self, i: usize) -> Option<&Verifier> {
        self.entries.get(i).map(|e| &*e.verifier)
    }

    /// Issuer `i`'s key epoch.
    pub fn epoch(&self, i: usize) -> Option<u32> {
        self.entries.get(i).map(|e| e.epoch)
    }

    /// Why issuer `i`'s keys are unusable, if they are.
    pub fn unavailable(&self, i: usize) -> Option<&str> {
        self.entries.get(i)?.unavailable.as_deref()
    }

    /// A copy with issuer `i`'s verifier, key epoch and availability replaced (nothing if `i` is out of range).
    pub fn with_issuer(
        &self,
        i: usize,
        verifier: Verifier,
        epoch: u32,
        unavailable: Option<String>,
    ) -> Issuers {
        let mut copy = self.clone();
        if let Some(e) = copy.entries.get_mut(i) {
            e.verifier = Arc::new(verifier);
            e.epoch = epoch;
            e.unavailable = unavailable.map(Arc::from);
        }
        copy
    }
}

impl Entry {
    fn new(iss: Option<String>, verifier: Verifier) -> Entry {
        Entry {
            iss,
            verifier: Arc::new(verifier),
            epoch: 0,
            unavailable: None,
        }
    }
}

/// The unverified `iss` of a payload segment, for routing only.
fn peek_iss(payload_b64: &[u8], max_depth: usize) -> Result<Option<String>, Error> {
    let payload = b64::decode(payload_b64).map_err(|_| Error::BadBase64("payload"))?;
    let mut r = Reader::from_bytes(&payload, max_depth, "payload")?;
    r.begin_document_object("a JSON object of claims")?;
    let mut first = true;
    while let Some(name) = r.next_key(&mut first)? {
        if name == "iss" {
            return match r.peek()? {
                crate::json::Kind::String => Ok(Some(r.string()?.into_owned())),
                other => Err(Error::BadClaim(format!(
                    "claim iss must be a string, not {}",
                    other.name()
                ))),
            };
        }
        r.skip()?;
    }
    Ok(None)
}
