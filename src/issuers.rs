//! Several issuers behind one entry point: the token's `iss` selects the issuer's verifier (RFC 8725 §3.8:
//! an issuer speaks only for its own keys). The `iss` is read before the signature is checked, only to pick
//! a key set; the chosen verifier then checks the signature and requires that same `iss`.

use std::collections::HashMap;

use crate::error::Error;
use crate::json::Reader;
use crate::jws::{self, b64};
use crate::verify::{Verified, Verifier};

/// Routes tokens to verifiers.
#[derive(Debug)]
pub enum Issuers {
    /// One verifier for every token (the CLI's single-issuer flags).
    Single(Verifier),
    /// One verifier per `iss`; each verifier's policy requires its own `iss`.
    ByIss(HashMap<String, Verifier>),
}

impl Issuers {
    pub fn verify(&self, token: &[u8], now: u64) -> Result<Verified, Error> {
        match self {
            Issuers::Single(v) => v.verify(token, now),
            Issuers::ByIss(map) => {
                // Size and shape rules first, with the same errors as a single verifier.
                let limits = map
                    .values()
                    .next()
                    .map(|v| v.limits().clone())
                    .unwrap_or_default();
                let parts = jws::split(token, &limits)?;
                let iss = peek_iss(parts.payload, limits.max_json_depth)?;
                let v = iss
                    .as_deref()
                    .and_then(|iss| map.get(iss))
                    .ok_or_else(|| Error::UnknownIssuer(iss.unwrap_or_else(|| "(none)".into())))?;
                v.verify(token, now)
            }
        }
    }

    /// The times at which the verdict for `v` (verified by [`Issuers::verify`] at `now`) holds; empty if no
    /// issuer matches.
    pub fn window(&self, v: &Verified, now: u64) -> (u64, u64) {
        match self {
            Issuers::Single(verifier) => verifier.window(v, now),
            Issuers::ByIss(map) => v
                .iss()
                .and_then(|iss| map.get(iss))
                .map_or((now, now), |verifier| verifier.window(v, now)),
        }
    }

    /// Verification keys across all issuers.
    pub fn keys_loaded(&self) -> usize {
        match self {
            Issuers::Single(v) => v.keys().len(),
            Issuers::ByIss(map) => map.values().map(|v| v.keys().len()).sum(),
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
