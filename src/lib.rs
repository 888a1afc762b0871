//! jwtd: a strict, fast JWT verifier.
//!
//! # Layout
//! - [`error`]: the error enum; every variant has a stable wire code.
//! - [`alg`]: the registered JWS algorithm names.
//! - [`jws`]: size caps, splitting, strict base64url, header parsing (knows no keys or claims).
//! - [`json`]: strict JSON helpers (depth cap, duplicate members, compaction).
//! - [`crypto`]: the only importer of ring / aws-lc-rs / p521: prepared verification keys, and signing.
//! - [`keys`]: JWK / JWKS / PEM loading into a [`keys::KeySet`], each key bound to one algorithm.
//! - [`claims`]: the registered-claims [`claims::Policy`]; `now` is an argument.
//! - [`verify`]: the [`Verifier`] that composes them.
//! - [`server`]: the daemon on top (tokio, Unix socket, line protocol); the modules above know nothing of it.
//!
//! ```
//! use jwtd::crypto::sign::{Private, SigningKey};
//! use jwtd::keys::SourceOptions;
//! use jwtd::{Alg, KeySet, Limits, Policy, Verifier};
//!
//! let secret = b"0123456789abcdef0123456789abcdef";
//! let mut keys = KeySet::new();
//! keys.add_secret(secret, &SourceOptions { default_alg: Some(Alg::HS256), kid: None }).unwrap();
//! let policy = Policy { audiences: Some(vec!["api".into()]), ..Policy::default() };
//! let verifier = Verifier::new(keys, policy, Limits::default());
//!
//! let signer = SigningKey::new(Alg::HS256, &Private::Hmac(secret.to_vec())).unwrap();
//! let token = signer.sign_compact(br#"{"alg":"HS256"}"#, br#"{"sub":"alice","aud":"api","exp":2000}"#).unwrap();
//!
//! let ok = verifier.verify(token.as_bytes(), 1000).unwrap();
//! assert_eq!(ok.sub(), Some("alice"));
//! assert_eq!(ok.claims_json(), r#"{"sub":"alice","aud":"api","exp":2000}"#);
//! // Time is an argument: the same token, later.
//! assert_eq!(verifier.verify(token.as_bytes(), 2060).unwrap_err().code(), "expired");
//! ```

#![forbid(unsafe_code)]
// `pub` only for what is an API.
#![warn(unreachable_pub)]

pub mod alg;
#[cfg(feature = "daemon")]
pub mod cache;
pub mod claims;
#[cfg(feature = "daemon")]
pub mod client;
#[cfg(feature = "daemon")]
pub mod config;
pub mod crypto;
pub mod error;
#[cfg(feature = "daemon")]
pub mod fleet;
pub mod issuers;
pub mod json;
pub mod jws;
pub mod keys;
#[cfg(feature = "bench")]
pub mod loadgen;
#[cfg(feature = "daemon")]
pub mod remote;
#[cfg(feature = "daemon")]
pub mod revocation;
#[cfg(feature = "daemon")]
pub mod routes;
#[cfg(feature = "daemon")]
pub mod server;
#[cfg(feature = "daemon")]
pub mod sessions;
#[cfg(feature = "daemon")]
pub mod sync;
pub mod verify;

pub use alg::Alg;
pub use claims::Policy;
pub use error::{Error, KeyError};
pub use jws::Limits;
pub use keys::KeySet;
pub use verify::{Verified, VerifiedJws, Verifier};
