//! When to fetch next: the server's `Cache-Control: max-age` within the configured bounds, minus jitter so
//! that many daemons (and issuers) do not refresh in step; exponential backoff with jitter after failures.

use std::time::Duration;

/// Bounds on how long a fetched key set is used before it is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Never refresh more often than this, whatever the server says.
    pub min: Duration,
    /// Never keep a set longer than this without asking again.
    pub max: Duration,
    /// When the server says nothing.
    pub default: Duration,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            default: Duration::from_secs(300),
        }
    }
}

/// How long the server lets us keep a response: `max-age` (`no-store`/`no-cache` count as 0; `s-maxage` is
/// for shared caches and ignored), clamped to `bounds`.
pub fn freshness(cache_control: Option<&str>, bounds: &Bounds) -> Duration {
    let mut said = None;
    for directive in cache_control.unwrap_or("").split(',') {
        let d = directive.trim();
        let (name, value) = d.split_once('=').unwrap_or((d, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "max-age" => {
                if let Ok(secs) = value.trim().trim_matches('"').parse::<u64>() {
                    said = Some(said.map_or(secs, |s: u64| s.min(secs)));
                }
            }
            "no-store" | "no-cache" => said = Some(0),
            _ => {}
        }
    }
    said.map_or(bounds.default, Duration::from_secs)
        .clamp(bounds.min, bounds.max.max(bounds.min))
}

/// `d` shortened by up to a fifth, by `random` (any u64): refreshes spread out, and never come late.
pub fn jittered(d: Duration, random: u64) -> Duration {
    let fifth = d / 5;
    let cut = fifth.mul_f64((random >> 11) as f64 / (1u64 << 53) as f64);
    d - cut
}

/// The wait after `failures` consecutive failed fetches (≥ 1): `base`·2^(failures−1), at most `cap`, with
/// full jitter in its upper half (so a fleet that lost its IdP together does not retry together).
pub fn backoff(failures: u32, base: Duration, cap: Duration, random: u64) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let d = exp.min(cap);
    let half = d / 2;
    half + half.mul_f64((random >> 11) as f64 / (1u64 << 53) as f64)
}

/// A random u64 for jitter (not for secrets).
pub fn random() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn max_age_within_bounds() {
        let b = Bounds::default();
        assert_eq!(freshness(None, &b), s(300));
        assert_eq!(freshness(Some("public, max-age=600"), &b), s(600));
        assert_eq!(freshness(Some("max-age=5"), &b), s(60), "at least min");
        assert_eq!(freshness(Some("max-age=86400"), &b), s(3600), "at most max");
        assert_eq!(freshness(Some("no-cache"), &b), s(60));
        assert_eq!(freshness(Some("no-store, max-age=900"), &b), s(60));
        assert_eq!(freshness(Some("max-age=\"700\""), &b), s(700));
        assert_eq!(freshness(Some("max-age=junk"), &b), s(300));
        assert_eq!(freshness(Some("s-maxage=900"), &b), s(300));
        assert_eq!(freshness(Some("Max-Age=1200"), &b), s(1200));
    }

    #[test]
    fn jitter_only_shortens_by_up_to_a_fifth() {
        for r in [0, 1, u64::MAX / 3, u64::MAX] {
            let j = jittered(s(300), r);
            assert!(j <= s(300) && j >= s(240), "{j:?}");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let (base, cap) = (s(1), s(300));
        for (n, full) in [(1, 1), (2, 2), (3, 4), (9, 256), (10, 300), (60, 300)] {
            for r in [0, u64::MAX] {
                let d = backoff(n, base, cap, r);
                assert!(d >= s(full) / 2 && d <= s(full), "{n}: {d:?}");
            }
        }
    }
}
