//! The one composer: split → header → key → signature → claims. Checks run cheapest-first and every
//! rejection names its reason.

use std::ops::Range;

use crate::alg::Alg;
use crate::claims::{Policy, Registered, Text};
use crate::error::Error;
use crate::json;
use crate::jws::{self, Header, Limits, b64};
use crate::keys::{Key, KeySet};

/// Verifies tokens against a key set and a claims policy. Cheap to share across threads (`&self` only).
#[derive(Debug)]
pub struct Verifier {
    keys: KeySet,
    policy: Policy,
    limits: Limits,
}

/// A token whose signature and claims were accepted.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The decoded header, then the compact payload.
    buf: String,
    payload: Range<usize>,
    alg: Alg,
    kid: Option<Text>,
    typ: Option<Text>,
    claims: Registered,
}

impl Verified {
    pub fn alg(&self) -> Alg {
        self.alg
    }
    /// The token's `kid` (absent when it named none). A span of the decoded header, not a shared handle to the
    /// key's: no reference count for threads to contend on.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_ref().map(|t| t.resolve(&self.buf))
    }
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_ref().map(|t| t.resolve(&self.buf))
    }
    /// The claims as compact JSON on one line: the payload exactly as signed when it had no insignificant
    /// whitespace, otherwise the same document with that whitespace removed.
    pub fn claims_json(&self) -> &str {
        &self.buf[self.payload.clone()]
    }
    pub fn exp(&self) -> Option<f64> {
        self.claims.exp
    }
    pub fn nbf(&self) -> Option<f64> {
        self.claims.nbf
    }
    pub fn iat(&self) -> Option<f64> {
        self.claims.iat
    }
    pub fn iss(&self) -> Option<&str> {
        self.text(&self.claims.iss)
    }
    pub fn sub(&self) -> Option<&str> {
        self.text(&self.claims.sub)
    }
    pub fn jti(&self) -> Option<&str> {
        self.text(&self.claims.jti)
    }
    pub fn sid(&self) -> Option<&str> {
        self.text(&self.claims.sid)
    }
    /// The registered claims (times, and spans of the claims JSON for the strings).
    pub fn registered(&self) -> &Registered {
        &self.claims
    }
    fn text<'a>(&'a self, t: &'a Option<Text>) -> Option<&'a str> {
        t.as_ref()
            .map(|t| t.resolve(&self.buf[self.payload.clone()]))
    }
}

/// A JWS whose signature, header rules and key binding were accepted; the payload is not interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJws {
    pub alg: Alg,
    pub kid: Option<String>,
    pub payload: Vec<u8>,
}

/// Signatures longer than this cannot verify under any supported key (RSA-8192 is 1024 bytes).
const MAX_SIGNATURE: usize = 1024;

impl Verifier {
    pub fn new(keys: KeySet, policy: Policy, limits: Limits) -> Verifier {
        Verifier {
            keys,
            policy,
            limits,
        }
    }

    /// The range of Unix times `[start, until)` at which this verifier's time rules accept `v`, given that
    /// they accept it at `now` — what a cache may serve the verdict for (see [`Policy::window`]).
    pub fn window(&self, v: &Verified, now: u64) -> (u64, u64) {
        self.policy.window(&v.claims, now)
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Verifies a compact JWT at time `now` (Unix seconds).
    pub fn verify(&self, token: &[u8], now: u64) -> Result<Verified, Error> {
        let parts = jws::split(token, &self.limits)?;
        let header_len = b64::decoded_len(parts.header.len()).ok_or(Error::BadBase64("header"))?;
        let payload_len =
            b64::decoded_len(parts.payload.len()).ok_or(Error::BadBase64("payload"))?;
        let mut buf = Vec::with_capacity(header_len + payload_len);
        b64::decode_append(parts.header, &mut buf).map_err(|_| Error::BadBase64("header"))?;

        let (alg, kid, typ, key) = {
            let header = Header::parse(&buf[..header_len], self.limits.max_json_depth)?;
            self.policy.check_typ(header.typ.as_deref())?;
            let key = self.keys.select(header.alg, header.kid.as_deref())?;
            let typ = header.typ.map(|t| Text::new(t, &buf[..header_len]));
            (
                header.alg,
                header.kid.map(|k| Text::new(k, &buf[..header_len])),
                typ,
                key,
            )
        };
        // Decoding first gives a precise error for a mangled payload; nothing is parsed before the signature.
        b64::decode_append(parts.payload, &mut buf).map_err(|_| Error::BadBase64("payload"))?;
        check_signature(key, &parts)?;

        // One UTF-8 validation for the whole buffer; the JSON reader then slices strings out of it for free.
        let mut buf = String::from_utf8(buf).map_err(|e| {
            Error::BadJson(format!(
                "payload is not valid JSON: invalid UTF-8 at byte {}",
                e.utf8_error().valid_up_to()
            ))
        })?;
        let depth = self.limits.max_json_depth;
        let mut checked = self
            .policy
            .check(&buf[header_len..], &buf[header_len..], now, depth)?;
        if checked.had_whitespace {
            // Rare (issuers sign compact JSON): compact, and parse again so spans point into the output.
            let compact = json::compact(&buf[header_len..]);
            buf.truncate(header_len);
            buf.push_str(&compact);
            checked = self
                .policy
                .check(&buf[header_len..], &buf[header_len..], now, depth)?;
        }
        let claims = checked.registered;
        let payload = header_len..buf.len();
        Ok(Verified {
            buf,
            payload,
            alg,
            kid,
            typ,
            claims,
        })
    }

    /// Verifies the JWS layer only: size caps, segments, canonical base64url, header rules, key binding and
    /// signature. The payload may be any bytes.
    pub fn verify_jws(&self, token: &[u8]) -> Result<VerifiedJws, Error> {
        let parts = jws::split(token, &self.limits)?;
        let header_bytes = b64::decode(parts.header).map_err(|_| Error::BadBase64("header"))?;
        let header = Header::parse(&header_bytes, self.limits.max_json_depth)?;
        let key = self.keys.select(header.alg, header.kid.as_deref())?;
        let payload = b64::decode(parts.payload).map_err(|_| Error::BadBase64("payload"))?;
        check_signature(key, &parts)?;
        Ok(VerifiedJws {
            alg: header.alg,
            kid: header.kid.map(|k| k.into_owned()),
            payload,
        })
    }
}

fn check_signature(key: &Key, parts: &jws::Parts<'_>) -> Result<(), Error> {
    // Uninitialised stack space: zeroing 1 KiB per verification showed up in RSA profiles.
    let mut space = [const { std::mem::MaybeUninit::<u8>::uninit() }; MAX_SIGNATURE];
    if b64::decoded_len(parts.signature.len()).is_some_and(|n| n > MAX_SIGNATURE) {
        return Err(Error::BadSignature);
    }
    let sig = b64::decode_uninit(parts.signature, &mut space)
        .map_err(|_| Error::BadBase64("signature"))?;
    key.key
        .verify(parts.signing_input, sig)
        .map_err(|_| Error::BadSignature)
}
