//! Cache keys: a 128-bit keyed PRF of the whole token.
//!
//! Why not compare the token on a hit: it would mean keeping every token (400–2,000 bytes) beside its claims,
//! several times the memory of the entry itself. Why not the signature alone: a signature does not cover
//! which header and payload bytes it was attached to in *this* string (and some schemes are malleable), so a
//! different string could share it. A keyed PRF of every byte makes a hit for any other byte string a
//! 2^-128 event that an attacker cannot steer: the key is random per process and never leaves it, and no
//! output is ever shown (a timing side channel reveals at most hit/miss, i.e. equality, which the attacker
//! could only use if they already held the cached token).
//!
//! The PRF is SipHash-2-4 with 128-bit output, the variant its authors give as a PRF (SipHash-1-3, the speed
//! variant Rust's `HashMap` uses, has had less analysis; it would save about 70 ns on a 430-byte token).

use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;

/// Derives cache keys with a per-process random key.
#[derive(Clone)]
pub struct Keyer {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for Keyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyer(<secret>)")
    }
}

impl Keyer {
    /// A fresh random key from the operating system.
    pub fn random() -> Result<Keyer, getrandom::Error> {
        let mut k = [0u8; 16];
        getrandom::fill(&mut k)?;
        let (a, b) = k.split_at(8);
        Ok(Keyer {
            k0: u64::from_le_bytes(a.try_into().unwrap_or_default()),
            k1: u64::from_le_bytes(b.try_into().unwrap_or_default()),
        })
    }

    /// A fixed key, for tests and benchmarks that need reproducible keys.
    pub fn with_key(k0: u64, k1: u64) -> Keyer {
        Keyer { k0, k1 }
    }

    /// The cache key of `token`.
    #[inline]
    pub fn key(&self, token: &[u8]) -> u128 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write(token);
        h.finish128().as_u128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_byte_and_on_the_secret() {
        let k = Keyer::with_key(1, 2);
        let t = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let base = k.key(t);
        for i in 0..t.len() {
            let mut u = t.to_vec();
            u[i] ^= 1;
            assert_ne!(k.key(&u), base, "byte {i}");
        }
        assert_ne!(k.key(&t[..t.len() - 1]), base);
        assert_ne!(Keyer::with_key(1, 3).key(t), base);
        let r1 = Keyer::random().unwrap();
        let r2 = Keyer::random().unwrap();
        assert_ne!(r1.key(t), r2.key(t));
        assert!(!format!("{r1:?}").contains(&r1.k0.to_string()));
    }
}
