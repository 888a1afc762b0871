//! Reproducible request popularity: rand's seeded `StdRng` (the same sequence for the same seed, for a given
//! rand version) and rand_distr's Zipf(s) sampler over `n` items (item `i` drawn with probability
//! proportional to 1/(i+1)^s; s = 0 is uniform). Well-kept crates, rather than our own generator and table.

use rand::SeedableRng;
use rand_distr::Distribution;

pub use rand::RngExt;
pub use rand::rngs::StdRng as Rng;

/// The generator for `seed`.
pub fn seeded(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Zipf sampling over item indices `0..n`.
#[derive(Debug, Clone)]
pub struct Zipf {
    dist: rand_distr::Zipf<f64>,
    n: usize,
}

impl Zipf {
    /// `n` items (at least 1), exponent `s` (0 = uniform; 1.0 is the classic web-like skew; negative or NaN
    /// is taken as 0).
    pub fn new(n: usize, s: f64) -> Zipf {
        let n = n.max(1);
        let s = if s > 0.0 { s } else { 0.0 };
        let dist = rand_distr::Zipf::new(n as f64, s)
            .or_else(|_| rand_distr::Zipf::new(n as f64, 0.0))
            .expect("n ≥ 1 and s = 0 are valid Zipf parameters");
        Zipf { dist, n }
    }

    /// An item index in [0, n).
    pub fn sample(&self, rng: &mut Rng) -> usize {
        // rand_distr draws ranks 1..=n as floats.
        (self.dist.sample(rng) as usize)
            .saturating_sub(1)
            .min(self.n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_zipf_frequencies_follow_the_law() {
        let (mut a, mut b) = (seeded(7), seeded(7));
        assert!((0..100).all(|_| a.random::<u64>() == b.random::<u64>()));
        let z = Zipf::new(100, 1.0);
        let mut rng = seeded(1);
        let mut counts = [0u32; 100];
        let draws = 200_000;
        for _ in 0..draws {
            counts[z.sample(&mut rng)] += 1;
        }
        // P(0) = 1/H(100) ≈ 0.1928, P(1) = P(0)/2, P(9) = P(0)/10.
        let p = |i: usize| counts[i] as f64 / draws as f64;
        assert!((p(0) - 0.1928).abs() < 0.01, "{}", p(0));
        assert!((p(0) / p(1) - 2.0).abs() < 0.15, "{}", p(0) / p(1));
        assert!((p(0) / p(9) - 10.0).abs() < 1.5, "{}", p(0) / p(9));
        // Uniform when s = 0.
        let u = Zipf::new(4, 0.0);
        let mut c = [0u32; 4];
        for _ in 0..40_000 {
            c[u.sample(&mut rng)] += 1;
        }
        assert!(c.iter().all(|&n| (9_000..11_000).contains(&n)), "{c:?}");
        let one = Zipf::new(1, 1.0);
        assert!((0..1000).all(|_| one.sample(&mut rng) == 0));
    }
}
