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
//!
//! ```
//! use jwtd::{KeySet, Policy, Limits, Verifier, keys::SourceOptions, Alg};
//! let mut keys = KeySet::new();
//! keys.add_secret(b"0123456789abcdef0123456789abcdef", &SourceOptions {
//!     default_alg: Some(Alg::HS256), kid: None,
//! }).unwrap();
//! let v = Verifier::new(keys, Policy::default(), Limits::default());
//! let token = b"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjB9.sig";
//! assert_eq!(v.verify(token, 0).unwrap_err().code(), "bad_base64");
//! ```

#![forbid(unsafe_code)]

pub mod alg;
pub mod claims;
pub mod crypto;
pub mod error;
pub mod json;
pub mod jws;
pub mod keys;
pub mod verify;

pub use alg::Alg;
pub use claims::Policy;
pub use error::{Error, KeyError};
pub use jws::Limits;
pub use keys::KeySet;
pub use verify::{Verified, VerifiedJws, Verifier};
