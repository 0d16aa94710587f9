//! Retry scheduling maths: plain functions, no actors.
//!
//! A message that failed transiently waits `retry_interval` after its first attempt,
//! then twice that after each further attempt, capped at `max_retry_interval`. It expires
//! once it has been queued longer than `message_expiration`. Each delay is spread by
//! ±10 % ([`jittered`], keyed by the message and its attempt), so messages deferred
//! together — a large queue after an outage — do not all come back in the same second.

use std::time::Duration;

/// How long to wait after attempt number `attempts` (1 = the first attempt) failed.
pub fn retry_delay(attempts: u32, base: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    let factor = 1u64 << doublings;
    let millis = (base.as_millis() as u64).saturating_mul(factor);
    Duration::from_millis(millis).min(max)
}

/// `delay` moved by up to ±10 %, the same for the same `key` (message id and attempt).
pub fn jittered(delay: Duration, key: u64) -> Duration {
    let permille = (splitmix64(key) % 201) as i64 - 100;
    let ms = delay.as_millis().min(i64::MAX as u128 / 2000) as i64;
    Duration::from_millis((ms + ms * permille / 1000).max(0) as u64)
}

/// A well-mixed 64-bit hash of `x` (SplitMix64's finaliser).
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Whether a message received `age` ago has outlived its expiration.
pub fn expired(age: Duration, expiration: Duration) -> bool {
    age >= expiration
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(600);
        let table = [
            (0, 60),
            (1, 60),
            (2, 120),
            (3, 240),
            (4, 480),
            (5, 600),
            (40, 600),
        ];
        for (attempts, secs) in table {
            assert_eq!(
                retry_delay(attempts, base, max),
                Duration::from_secs(secs),
                "{attempts}"
            );
        }
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let d = retry_delay(
            u32::MAX,
            Duration::from_secs(u64::MAX / 1000),
            Duration::from_secs(5),
        );
        assert_eq!(d, Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let d = Duration::from_secs(600);
        let mut seen = std::collections::HashSet::new();
        for key in 0..10_000u64 {
            let j = jittered(d, key);
            assert!(
                j >= Duration::from_secs(540) && j <= Duration::from_secs(660),
                "{j:?}"
            );
            seen.insert(j.as_secs());
        }
        assert!(
            seen.len() > 100,
            "delays spread over the window: {}",
            seen.len()
        );
        assert_eq!(
            jittered(d, 42),
            jittered(d, 42),
            "the same key, the same delay"
        );
        assert_eq!(jittered(Duration::ZERO, 7), Duration::ZERO);
        assert!(jittered(Duration::MAX, 7) > Duration::ZERO);
    }

    #[test]
    fn expiry_is_inclusive() {
        assert!(expired(Duration::from_secs(10), Duration::from_secs(10)));
        assert!(!expired(Duration::from_secs(9), Duration::from_secs(10)));
    }
}
