//! Sessions (docs/SESSIONS.md): short-lived access tokens signed by this daemon, rotating refresh tokens,
//! and reuse detection that ends a family — and its access tokens, through a `sid` revocation rule — when a
//! used refresh token comes back.
//!
//! - [`token`]: refresh tokens, their keyed digests and derived successors, the session key;
//! - [`record`]: the log records of families and rotations;
//! - [`book`]: the families in memory and the decisions (taken by the revocation writer, on durable state);
//! - [`mint`]: access tokens (RFC 9068);
//! - [`form`]: the requests (line protocol and HTTP forms) and the RFC 6749 answers.

pub mod book;
pub mod form;
pub mod mint;
pub mod record;
pub mod token;

use record::Family;

/// Lifetimes and the reuse grace interval, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Access token lifetime.
    pub access: u64,
    /// A family unused for this long ends.
    pub idle: u64,
    /// A family ends this long after its creation, whatever happens.
    pub absolute: u64,
    /// How long after a rotation the previous refresh token is answered again (a retry after a lost
    /// reply) instead of counting as a reuse.
    pub reuse_grace: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            access: 600,
            idle: 14 * 86_400,
            absolute: 30 * 86_400,
            reuse_grace: 5,
        }
    }
}

impl Lifetimes {
    pub fn idle_expired(&self, f: &Family, now: u64) -> bool {
        now >= f.last_used.saturating_add(self.idle)
    }

    /// Whether `f` can no longer be refreshed at `now` (its refresh tokens are then refused as unknown
    /// once a compaction drops it).
    pub fn expired(&self, f: &Family, now: u64) -> bool {
        now >= f.absolute_end || self.idle_expired(f, now)
    }
}

/// What an access token of a family carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub sid: String,
    pub sub: String,
    pub client_id: Option<String>,
    pub scope: String,
    pub aud: String,
    pub claims: Option<String>,
}

impl View {
    pub fn of(f: &Family) -> View {
        View {
            sid: f.sid.clone(),
            sub: f.sub.clone(),
            client_id: f.client_id.clone(),
            scope: f.scope.clone(),
            aud: f.aud.clone(),
            claims: f.claims.clone(),
        }
    }
}

/// A request to the writer.
#[derive(Debug)]
pub enum Request {
    /// Create a family whose first refresh token has this digest (the caller drew the token).
    Issue(NewFamily),
    /// Rotate with this refresh token.
    Refresh {
        token: String,
        digest: token::Digest,
        client_id: Option<String>,
        /// A narrower scope asked for (RFC 6749 §6), checked before anything changes.
        scope: Option<String>,
    },
    /// End the family this refresh token belongs to (RFC 7009 logout).
    Logout { digest: token::Digest },
}

/// What a login asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFamily {
    pub sub: String,
    pub client_id: Option<String>,
    pub scope: String,
    pub aud: String,
    pub claims: Option<String>,
    pub first: token::Digest,
}

/// The writer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A family was created (durably); the caller holds its first refresh token.
    Issued(View),
    /// The family rotated (durably, or a retry within the grace interval): here is the successor.
    Refreshed {
        view: View,
        refresh_token: String,
    },
    Refused(book::Refusal),
    /// Reuse detected: the family and its access tokens ended (durably).
    Reused {
        sid: String,
    },
    /// Logout: whether a family was found (and ended).
    LoggedOut {
        sid: Option<String>,
    },
}

/// The sessions part of the store: the key, the lifetimes.
#[derive(Debug)]
pub struct Settings {
    pub key: token::SessionKey,
    pub lifetimes: Lifetimes,
}

/// What the server needs to issue: the signing key and the default audience.
#[derive(Debug)]
pub struct Service {
    pub minter: mint::Minter,
    /// The `aud` of issued tokens when the request names none.
    pub default_aud: Option<String>,
}

#[cfg(test)]
mod durable_tests;
