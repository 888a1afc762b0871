//! The JWS signature algorithms jwtd implements (RFC 7518 §3, RFC 8037), by their registered names.

use std::fmt;

/// A JWS signature algorithm. `none` is deliberately not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// Which kind of key an algorithm needs; a key is usable only by algorithms of its own family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Hmac,
    Rsa,
    Ecdsa,
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 13] = [
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::EdDSA,
    ];

    /// Exact, case-sensitive match against the registered names (RFC 7515 §4.1.1: "a case-sensitive ASCII
    /// string"). `none`, `None`, `NONE`, `HS256 ` and `hs256` are all `None` here.
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "HS256" => Alg::HS256,
            "HS384" => Alg::HS384,
            "HS512" => Alg::HS512,
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            "EdDSA" => Alg::EdDSA,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Alg::HS256 | Alg::HS384 | Alg::HS512 => Family::Hmac,
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                Family::Rsa
            }
            Alg::ES256 | Alg::ES384 | Alg::ES512 => Family::Ecdsa,
            Alg::EdDSA => Family::EdDsa,
        }
    }

    /// For HMAC: the hash output length, which is also the minimum key length (RFC 7518 §3.2).
    /// For ECDSA: the length of one of R and S in the fixed-width JWS signature (RFC 7518 §3.4).
    pub fn size(self) -> usize {
        match self {
            Alg::HS256 => 32,
            Alg::HS384 => 48,
            Alg::HS512 => 64,
            Alg::ES256 => 32,
            Alg::ES384 => 48,
            Alg::ES512 => 66,
            Alg::EdDSA => 32,
            _ => 0,
        }
    }

    /// The JWK `crv` an EC or OKP key must have for this algorithm.
    pub fn curve(self) -> Option<&'static str> {
        match self {
            Alg::ES256 => Some("P-256"),
            Alg::ES384 => Some("P-384"),
            Alg::ES512 => Some("P-521"),
            Alg::EdDSA => Some("Ed25519"),
            _ => None,
        }
    }

    /// The ECDSA algorithm for a curve name (used when a JWKS omits `alg` and the curve fixes it).
    pub fn for_curve(crv: &str) -> Option<Alg> {
        match crv {
            "P-256" => Some(Alg::ES256),
            "P-384" => Some(Alg::ES384),
            "P-521" => Some(Alg::ES512),
            "Ed25519" => Some(Alg::EdDSA),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Alg, String> {
        Alg::from_name(s).ok_or_else(|| {
            let names: Vec<_> = Alg::ALL.iter().map(|a| a.name()).collect();
            format!(
                "unknown algorithm {s:?} (expected one of {})",
                names.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_never_an_alg() {
        for a in Alg::ALL {
            assert_eq!(Alg::from_name(a.name()), Some(a));
        }
        for bad in [
            "none", "None", "NONE", "nOnE", "", "hs256", "HS256 ", "ES521", "RS1",
        ] {
            assert_eq!(Alg::from_name(bad), None, "{bad}");
        }
    }
}
