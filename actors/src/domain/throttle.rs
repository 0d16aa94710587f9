//! Rate limits as plain values: `throttle` (messages per period) and
//! `connection_throttle` (new connections per period) of a domain.
//!
//! A [`Throttle`] is a GCRA ("virtual scheduling") limiter: each admitted event moves a
//! theoretical arrival time on by `period / count`; an event is admitted while that time
//! is no further ahead of now than the burst allowance (a tenth of the period's count,
//! at least one event). So `10/s` admits about one message every 100 ms after a first
//! burst of one, and never more than `count + burst` in any period. No timers here: the
//! domain asks [`Throttle::admit`] and, when refused, waits the duration it is given.

use std::time::{Duration, Instant};

use impulse_config::Rate;

/// A rate limiter for one kind of event.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run.
    tolerance: Duration,
    /// Theoretical arrival time of the next event.
    tat: Option<Instant>,
}

impl Throttle {
    pub fn new(rate: Rate) -> Throttle {
        let interval = rate.interval().max(Duration::from_nanos(1));
        let burst = (rate.count / 10).max(1);
        let tolerance = interval.saturating_mul(burst.saturating_sub(1) as u32);
        Throttle {
            interval,
            tolerance,
            tat: None,
        }
    }

    /// A limiter for `rate`, or none for "unlimited".
    pub fn optional(rate: Option<Rate>) -> Option<Throttle> {
        rate.map(Throttle::new)
    }

    /// Admit one event at `now` (`Ok`), or say how long to wait before asking again.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let tat = self.tat.map_or(now, |t| t.max(now));
        let ahead = tat.saturating_duration_since(now);
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        self.tat = Some(tat + self.interval);
        Ok(())
    }

    /// Whether an event at `now` would be admitted (without taking it).
    pub fn would_admit(&self, now: Instant) -> bool {
        self.clone().admit(now).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    /// Events admitted when asking as fast as possible for `span`, in steps of `step`.
    fn admitted(t: &mut Throttle, start: Instant, span: Duration, step: Duration) -> usize {
        let mut n = 0;
        let mut at = start;
        while at < start + span {
            while t.admit(at).is_ok() {
                n += 1;
            }
            at += step;
        }
        n
    }

    #[test]
    fn ten_per_second_spaces_events_100ms_apart() {
        let mut t = Throttle::new(rate("10/s"));
        let now = Instant::now();
        assert!(t.admit(now).is_ok());
        let wait = t.admit(now).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(t.admit(now + Duration::from_millis(99)).is_err());
        assert!(t.admit(now + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn long_runs_stay_within_the_rate_plus_the_burst() {
        for (r, secs, want) in [("10/s", 10, 100), ("100/s", 5, 500), ("60/m", 120, 120)] {
            let mut t = Throttle::new(rate(r));
            let start = Instant::now();
            let span = Duration::from_secs(secs);
            let n = admitted(&mut t, start, span, Duration::from_millis(7));
            let burst = (rate(r).count / 10).max(1) as usize;
            // Asking only every 7 ms makes some events late (a limiter never hands out
            // time it was not asked for), so the lower bound has slack; the upper one not.
            assert!(
                n >= want * 9 / 10 && n <= want + burst,
                "{r} over {secs}s: {n}"
            );
        }
    }

    #[test]
    fn an_idle_limiter_does_not_save_up_more_than_its_burst() {
        let mut t = Throttle::new(rate("100/s"));
        let start = Instant::now();
        assert!(t.admit(start).is_ok());
        // An hour idle, then as fast as possible: at most the burst (10) at once.
        let later = start + Duration::from_secs(3600);
        let mut n = 0;
        while t.admit(later).is_ok() {
            n += 1;
        }
        assert_eq!(n, 10);
    }

    #[test]
    fn would_admit_takes_nothing() {
        let mut t = Throttle::new(rate("1/s"));
        let now = Instant::now();
        assert!(t.would_admit(now));
        assert!(t.would_admit(now));
        assert!(t.admit(now).is_ok());
        assert!(!t.would_admit(now));
    }
}
