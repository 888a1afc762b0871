//! The one error type of the verification path, and the key-loading error.
//!
//! Every [`Error`] has a stable snake_case [`Error::code`]; these codes are the wire protocol's codes
//! (`ERR <code> <message>`) and are listed in `docs/ERRORS.md`. Never rename one: add a new variant.

use std::fmt;

/// Why a token was rejected. The variant is the machine-readable reason; the payload is detail for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The token (or one of its parts) is over a configured size cap; checked before any decoding.
    TooLarge(String),
    /// A JSON document nests deeper than the configured cap.
    TooDeep(usize),
    /// Not a compact JWS: wrong number of segments, empty segment, bytes outside base64url.
    Malformed(String),
    /// Five segments: a JWE (encrypted token). jwtd verifies signatures only.
    UnsupportedJwe,
    /// JWS JSON serialization (`{"payload":…}`). jwtd accepts the compact form only.
    UnsupportedSerialization,
    /// A segment is not canonical, unpadded base64url.
    BadBase64(&'static str),
    /// Header or payload is not the JSON (object) it must be.
    BadJson(String),
    /// The same member name appears twice in one JSON object.
    DuplicateMember(String),
    /// The header is well-formed JSON but breaks a JWS rule (missing `alg`, wrong member type).
    BadHeader(String),
    /// `alg` is `none`, unregistered, or not allowed by this verifier.
    AlgNotAllowed(String),
    /// The token's `alg` is not the algorithm its key is bound to (the key-confusion defence).
    AlgMismatch { token: String, key: String },
    /// No configured key matches the token's `kid` (or, without `kid`, its `alg`).
    UnknownKey(String),
    /// Without `kid`, more than one key fits, or a `kid` names several keys of this alg.
    AmbiguousKey(String),
    /// The header has a `crit` member: jwtd understands no extension, so it must reject (RFC 7515 §4.1.11).
    CritUnsupported,
    /// A header member jwtd deliberately does not implement (`b64`, `enc`, `zip`).
    UnsupportedHeader(&'static str),
    /// The signature does not verify under the selected key.
    BadSignature,
    /// `exp` is in the past (beyond leeway).
    Expired,
    /// `nbf` is in the future (beyond leeway).
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    IssuedInFuture,
    /// `iat` is older than the configured maximum token age.
    TooOld,
    /// A registered claim has the wrong JSON type (e.g. `"exp":"tomorrow"`).
    BadClaim(String),
    /// A required claim is absent.
    MissingClaim(String),
    /// `iss` is not one of the accepted issuers.
    WrongIssuer,
    /// No `aud` value is among the accepted audiences.
    WrongAudience,
    /// The header's `typ` is not an accepted token type.
    WrongType(String),
    /// With several issuers configured, the token's `iss` names none of them (or is absent).
    UnknownIssuer(String),
    /// The token is valid but was revoked (by `jti`, by subject, or as a whole token).
    Revoked(&'static str),
    /// The token's issuer publishes its keys remotely and no usable set is at hand: never fetched yet, or
    /// the last good one is older than the allowed staleness (fail closed). The reason says which.
    KeysUnavailable(String),
    /// Authorization at the gate (`[[route]]`): the token is valid, but the route the request matched asks
    /// for scopes it lacks; the payload is the route's scopes, space-separated (for `WWW-Authenticate`).
    /// HTTP answers these route codes with 403, not 401.
    InsufficientScope(String),
    /// The route's claim rule on this claim (named as configured) does not hold for the token.
    ClaimMismatch(String),
    /// The route accepts tokens of other issuers only.
    IssuerNotAllowed,
    /// Routes are configured and none applies: `default_route = "deny"`, or the original request's method
    /// and path are unknown (fail closed). The payload says which.
    NoRoute(&'static str),
}

impl Error {
    /// The stable machine-readable code: `CODES[self.index()]`, so the table below is the only list of names.
    pub fn code(&self) -> &'static str {
        Self::CODES[self.index()]
    }

    /// This error's position in [`Error::CODES`] (for counters indexed by code, without a string search).
    pub fn index(&self) -> usize {
        match self {
            Error::TooLarge(_) => 0,
            Error::TooDeep(_) => 1,
            Error::Malformed(_) => 2,
            Error::UnsupportedJwe => 3,
            Error::UnsupportedSerialization => 4,
            Error::BadBase64(_) => 5,
            Error::BadJson(_) => 6,
            Error::DuplicateMember(_) => 7,
            Error::BadHeader(_) => 8,
            Error::AlgNotAllowed(_) => 9,
            Error::AlgMismatch { .. } => 10,
            Error::UnknownKey(_) => 11,
            Error::AmbiguousKey(_) => 12,
            Error::CritUnsupported => 13,
            Error::UnsupportedHeader(_) => 14,
            Error::BadSignature => 15,
            Error::Expired => 16,
            Error::NotYetValid => 17,
            Error::IssuedInFuture => 18,
            Error::TooOld => 19,
            Error::BadClaim(_) => 20,
            Error::MissingClaim(_) => 21,
            Error::WrongIssuer => 22,
            Error::WrongAudience => 23,
            Error::WrongType(_) => 24,
            Error::UnknownIssuer(_) => 25,
            Error::Revoked(_) => 26,
            Error::KeysUnavailable(_) => 27,
            Error::InsufficientScope(_) => 28,
            Error::ClaimMismatch(_) => 29,
            Error::IssuerNotAllowed => 30,
            Error::NoRoute(_) => 31,
        }
    }

    /// Every code, in declaration order (for documentation and metrics).
    pub const CODES: &'static [&'static str] = &[
        "too_large",
        "too_deep",
        "malformed",
        "unsupported_jwe",
        "unsupported_serialization",
        "bad_base64",
        "bad_json",
        "duplicate_member",
        "bad_header",
        "alg_not_allowed",
        "alg_mismatch",
        "unknown_key",
        "ambiguous_key",
        "crit_unsupported",
        "unsupported_header",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "too_old",
        "bad_claim",
        "missing_claim",
        "wrong_issuer",
        "wrong_audience",
        "wrong_type",
        "unknown_issuer",
        "revoked",
        "keys_unavailable",
        "insufficient_scope",
        "claim_mismatch",
        "issuer_not_allowed",
        "no_route",
    ];

    /// Whether this is a route's refusal of a valid token (HTTP 403), rather than an invalid token (401).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Error::InsufficientScope(_)
                | Error::ClaimMismatch(_)
                | Error::IssuerNotAllowed
                | Error::NoRoute(_)
        )
    }
}

impl fmt::Display for Error {
    /// The human message. It never contains raw token bytes beyond short, sanitized names, and never a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLarge(what) => write!(f, "{what}"),
            Error::TooDeep(max) => write!(f, "JSON nesting deeper than {max} levels"),
            Error::Malformed(why) => write!(f, "not a compact JWS: {why}"),
            Error::UnsupportedJwe => write!(
                f,
                "token has 5 segments (JWE): encrypted tokens are not supported"
            ),
            Error::UnsupportedSerialization => {
                write!(
                    f,
                    "JWS JSON serialization is not supported; send the compact form"
                )
            }
            Error::BadBase64(part) => write!(f, "{part} is not canonical unpadded base64url"),
            Error::BadJson(why) => write!(f, "{why}"),
            Error::DuplicateMember(name) => write!(f, "duplicate JSON member {}", Sanitized(name)),
            Error::BadHeader(why) => write!(f, "{why}"),
            Error::AlgNotAllowed(alg) => write!(f, "algorithm {} is not allowed", Sanitized(alg)),
            Error::AlgMismatch { token, key } => write!(
                f,
                "token alg {} does not match its key's alg {key}",
                Sanitized(token)
            ),
            Error::UnknownKey(kid) => write!(f, "no key for {}", Sanitized(kid)),
            Error::AmbiguousKey(why) => write!(f, "{}", Sanitized(why)),
            Error::CritUnsupported => {
                write!(f, "header has crit: no critical extension is understood")
            }
            Error::UnsupportedHeader(name) => write!(f, "header parameter {name} is not supported"),
            Error::BadSignature => write!(f, "signature does not verify"),
            Error::Expired => write!(f, "token expired (exp)"),
            Error::NotYetValid => write!(f, "token not yet valid (nbf)"),
            Error::IssuedInFuture => write!(f, "token issued in the future (iat)"),
            Error::TooOld => write!(f, "token older than the maximum age (iat)"),
            Error::BadClaim(why) => write!(f, "{why}"),
            Error::MissingClaim(name) => write!(f, "required claim {} is missing", Sanitized(name)),
            Error::WrongIssuer => write!(f, "issuer not accepted"),
            Error::WrongAudience => write!(f, "audience not accepted"),
            Error::WrongType(typ) => write!(f, "token type {} not accepted", Sanitized(typ)),
            Error::UnknownIssuer(iss) => {
                write!(f, "no issuer configured for iss {}", Sanitized(iss))
            }
            Error::Revoked(how) => write!(f, "the token was revoked ({how})"),
            Error::KeysUnavailable(why) => {
                // Our own sentence (with the provider's URL and what failed): shown whole, one line.
                f.write_str("no usable key set for this issuer: ")?;
                for c in why.chars().take(512) {
                    if c.is_control() {
                        write!(f, "{}", c.escape_default())?;
                    } else {
                        write!(f, "{c}")?;
                    }
                }
                Ok(())
            }
            Error::InsufficientScope(scopes) => {
                write!(f, "this request needs scope {}", Sanitized(scopes))
            }
            Error::ClaimMismatch(name) => write!(
                f,
                "claim {} does not satisfy this request's rule",
                Sanitized(name)
            ),
            Error::IssuerNotAllowed => {
                write!(f, "this request does not accept tokens of this issuer")
            }
            Error::NoRoute(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Attacker-chosen text (a `kid`, an `alg`) shown in a message: truncated, control characters escaped,
/// so an error line can never be split or made huge by a token.
struct Sanitized<'a>(&'a str);

impl fmt::Display for Sanitized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 64;
        f.write_str("\"")?;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX {
                return f.write_str("…\"");
            }
            if c.is_control() || c == '"' || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
}

/// Why a key (or a whole key source) could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The source could not be read.
    Io(String),
    /// The source is not a JWK, JWKS or PEM document at all (a raw HMAC secret, perhaps).
    NotKeys,
    /// The source is a JWK, JWKS or PEM document, but a malformed one.
    Format(String),
    /// One key was refused; the rest of its set still loads. `kid` is `None` when the key had none.
    Refused { kid: Option<String>, why: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io(why) => write!(f, "cannot read key source: {why}"),
            KeyError::NotKeys => write!(
                f,
                "not a JWK, JWKS or PEM document (a raw HMAC secret is loaded as a secret, not as keys)"
            ),
            KeyError::Format(why) => write!(f, "{why}"),
            KeyError::Refused {
                kid: Some(kid),
                why,
            } => write!(f, "key {}: {why}", Sanitized(kid)),
            KeyError::Refused { kid: None, why } => write!(f, "key without kid: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_escapes_controls_and_truncates() {
        let s = format!("{}", Error::UnknownKey("a\nb".into()));
        assert!(!s.contains('\n'), "{s}");
        let long = "x".repeat(500);
        let s = format!("{}", Error::UnknownKey(long));
        assert!(s.len() < 100, "{s}");
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in Error::CODES {
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{c}"
            );
            assert!(seen.insert(c), "duplicate {c}");
        }
    }

    #[test]
    fn every_variant_has_its_own_code() {
        // One of each variant (a new variant that is not added here fails `exhaustive` below).
        let all = [
            Error::TooLarge(String::new()),
            Error::TooDeep(1),
            Error::Malformed(String::new()),
            Error::UnsupportedJwe,
            Error::UnsupportedSerialization,
            Error::BadBase64("x"),
            Error::BadJson(String::new()),
            Error::DuplicateMember(String::new()),
            Error::BadHeader(String::new()),
            Error::AlgNotAllowed(String::new()),
            Error::AlgMismatch {
                token: String::new(),
                key: String::new(),
            },
            Error::UnknownKey(String::new()),
            Error::AmbiguousKey(String::new()),
            Error::CritUnsupported,
            Error::UnsupportedHeader("x"),
            Error::BadSignature,
            Error::Expired,
            Error::NotYetValid,
            Error::IssuedInFuture,
            Error::TooOld,
            Error::BadClaim(String::new()),
            Error::MissingClaim(String::new()),
            Error::WrongIssuer,
            Error::WrongAudience,
            Error::WrongType(String::new()),
            Error::UnknownIssuer(String::new()),
            Error::Revoked("x"),
            Error::KeysUnavailable(String::new()),
            Error::InsufficientScope(String::new()),
            Error::ClaimMismatch(String::new()),
            Error::IssuerNotAllowed,
            Error::NoRoute("x"),
        ];
        let exhaustive = |e: &Error| match e {
            Error::TooLarge(_)
            | Error::TooDeep(_)
            | Error::Malformed(_)
            | Error::UnsupportedJwe
            | Error::UnsupportedSerialization
            | Error::BadBase64(_)
            | Error::BadJson(_)
            | Error::DuplicateMember(_)
            | Error::BadHeader(_)
            | Error::AlgNotAllowed(_)
            | Error::AlgMismatch { .. }
            | Error::UnknownKey(_)
            | Error::AmbiguousKey(_)
            | Error::CritUnsupported
            | Error::UnsupportedHeader(_)
            | Error::BadSignature
            | Error::Expired
            | Error::NotYetValid
            | Error::IssuedInFuture
            | Error::TooOld
            | Error::BadClaim(_)
            | Error::MissingClaim(_)
            | Error::WrongIssuer
            | Error::WrongAudience
            | Error::WrongType(_)
            | Error::UnknownIssuer(_)
            | Error::Revoked(_)
            | Error::KeysUnavailable(_)
            | Error::InsufficientScope(_)
            | Error::ClaimMismatch(_)
            | Error::IssuerNotAllowed
            | Error::NoRoute(_) => (),
        };
        all.iter().for_each(exhaustive);
        let mut indexes: Vec<usize> = all.iter().map(Error::index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, (0..Error::CODES.len()).collect::<Vec<_>>());
    }

    #[test]
    fn docs_errors_md_lists_exactly_the_codes() {
        let doc = include_str!("../docs/ERRORS.md");
        // The rejection table: from its header row to the first line that is not a table row.
        let table = doc
            .split("| code | meaning |")
            .nth(1)
            .expect("ERRORS.md has a | code | meaning | table");
        let documented: Vec<&str> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.split('`').nth(1))
            .collect();
        let mut want: Vec<&str> = Error::CODES.to_vec();
        let mut got = documented.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "docs/ERRORS.md and Error::CODES differ");
    }
}
