//! Retry scheduling maths: plain functions, no actors.
//!
//! A message that failed transiently waits `retry_interval` after its first attempt,
//! then twice that after each further attempt, capped at `max_retry_interval`. It expires
//! once it has been queued longer than `message_expiration`.

use std::time::Duration;

/// How long to wait after attempt number `attempts` (1 = the first attempt) failed.
pub fn retry_delay(attempts: u32, base: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    let factor = 1u64 << doublings;
    let millis = (base.as_millis() as u64).saturating_mul(factor);
    Duration::from_millis(millis).min(max)
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
    fn expiry_is_inclusive() {
        assert!(expired(Duration::from_secs(10), Duration::from_secs(10)));
        assert!(!expired(Duration::from_secs(9), Duration::from_secs(10)));
    }
}
