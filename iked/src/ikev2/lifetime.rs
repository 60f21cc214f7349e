//! Soft and hard lifetimes: the configured value is the hard limit, and
//! we rekey at a soft limit drawn below it.
//!
//! RFC 7296 §2.8: "To reduce the probability of this happening [both ends
//! rekeying at once], the timing of rekeying requests SHOULD be jittered
//! (delayed by a random amount of time after the need for rekeying is
//! noticed)." The soft limit is 80–90% of the hard one, drawn uniformly
//! (per mille) from the core's random source for each SA, so two peers with
//! the same configuration rarely rekey the same SA at once, and a rekey
//! still has at least a tenth of the lifetime to complete (with the default
//! retransmission schedule a rekey gives up after about a minute).

use std::time::{Duration, Instant};

use libracoon::crypto::Random;
use pfkey::Lifetime;

use crate::ikev2::config::ChildLifetime;

/// Lowest soft limit, per mille of the hard limit.
pub const SOFT_MIN_PERMILLE: u32 = 800;
/// Width of the soft limit's random spread, per mille of the hard limit.
pub const SOFT_SPREAD_PERMILLE: u32 = 100;

/// How long to wait before retrying an exchange the peer answered with
/// TEMPORARY_FAILURE (RFC 7296 §2.25: "it MUST NOT immediately retry").
pub const RETRY_MIN: Duration = Duration::from_secs(2);
/// Upper bound of that wait.
pub const RETRY_MAX: Duration = Duration::from_secs(10);

/// The share of the hard limit at which to rekey, in per mille: uniform
/// in 800..900, or 850 if the random source fails.
pub(crate) fn soft_permille(rng: &mut dyn Random) -> u32 {
    let mut b = [0u8; 4];
    match rng.fill(&mut b) {
        Ok(()) => SOFT_MIN_PERMILLE + u32::from_be_bytes(b) % SOFT_SPREAD_PERMILLE,
        Err(_) => SOFT_MIN_PERMILLE + SOFT_SPREAD_PERMILLE / 2,
    }
}

/// The kernel lifetime of one CHILD SA: the configured hard limits and
/// soft limits at `permille` of them.
pub(crate) fn child_sa(cfg: &ChildLifetime, permille: u32) -> Lifetime {
    Lifetime {
        soft_bytes: cfg.bytes.map(|b| scale_bytes(b, permille)),
        hard_bytes: cfg.bytes,
        soft_packets: None,
        hard_packets: None,
        soft_time: cfg.time.map(|t| scale(t, permille)),
        hard_time: cfg.time,
    }
}

/// When an IKE SA established at `now` with hard lifetime `hard` is
/// rekeyed, and when it is deleted if the rekey never succeeded.
pub(crate) fn ike_deadlines(now: Instant, hard: Duration, permille: u32) -> (Instant, Instant) {
    let far = |d: Duration| now.checked_add(d).unwrap_or(now);
    (far(scale(hard, permille)), far(hard))
}

/// A random wait in `RETRY_MIN..RETRY_MAX` before retrying after
/// TEMPORARY_FAILURE.
pub(crate) fn retry_delay(rng: &mut dyn Random) -> Duration {
    let mut b = [0u8; 4];
    let spread = (RETRY_MAX - RETRY_MIN).as_millis() as u32;
    let ms = match rng.fill(&mut b) {
        Ok(()) => u32::from_be_bytes(b) % spread,
        Err(_) => spread / 2,
    };
    RETRY_MIN + Duration::from_millis(u64::from(ms))
}

fn scale(d: Duration, permille: u32) -> Duration {
    // At most 2^64 s * 10^9 * 1000 < 2^104: no overflow in u128.
    let nanos = d.as_nanos() * u128::from(permille.min(1000)) / 1000;
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, sub)
}

fn scale_bytes(b: u64, permille: u32) -> u64 {
    let p = u64::from(permille);
    (b / 1000).saturating_mul(p) + (b % 1000) * p / 1000
}

#[cfg(test)]
mod tests {
    use libracoon::crypto::SeededRandom;

    use super::*;

    #[test]
    fn soft_limits_are_80_to_90_percent_of_the_hard_ones() {
        let cfg = ChildLifetime {
            time: Some(Duration::from_secs(3600)),
            bytes: Some(1_000_000),
        };
        let mut rng = SeededRandom::new(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let p = soft_permille(&mut rng);
            assert!((800..900).contains(&p));
            seen.insert(p);
            let l = child_sa(&cfg, p);
            assert_eq!(l.hard_time, Some(Duration::from_secs(3600)));
            assert_eq!(
                l.soft_time,
                Some(Duration::from_millis(3600 * u64::from(p)))
            );
            assert_eq!(l.soft_bytes, Some(1000 * u64::from(p)));
            assert_eq!(l.hard_bytes, Some(1_000_000));
        }
        assert!(seen.len() > 50, "the soft limit is jittered");
    }

    #[test]
    fn no_configured_limit_means_no_soft_limit_either() {
        assert_eq!(
            child_sa(&ChildLifetime::default(), 850),
            Lifetime::default()
        );
    }

    #[test]
    fn scaling_neither_overflows_nor_loses_small_values() {
        assert!(scale(Duration::MAX, 850) < Duration::MAX);
        assert_eq!(
            scale(Duration::from_secs(10), 850),
            Duration::from_millis(8500)
        );
        assert_eq!(
            scale_bytes(u64::MAX, 900),
            u64::MAX / 1000 * 900 + 615 * 900 / 1000
        );
        assert_eq!(scale_bytes(10, 800), 8);
    }

    #[test]
    fn ike_deadlines_rekey_before_expiry() {
        let now = Instant::now();
        let (rekey, expire) = ike_deadlines(now, Duration::from_secs(100), 850);
        assert_eq!(rekey - now, Duration::from_secs(85));
        assert_eq!(expire - now, Duration::from_secs(100));
    }

    #[test]
    fn retry_delays_stay_in_range() {
        let mut rng = SeededRandom::new(3);
        for _ in 0..100 {
            let d = retry_delay(&mut rng);
            assert!(d >= RETRY_MIN && d < RETRY_MAX);
        }
    }
}
