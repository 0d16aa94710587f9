//! [`Rate`]: a throttle written `"N/period"`, where the period is a unit (`s`, `m`, `h`,
//! `d`, or their long names) or any humantime duration: `"100/s"`, `"5000/h"`, `"100/5m"`.

use std::{fmt, str::FromStr, time};

use super::Duration;
use crate::ConfigError;

/// At most `count` events per `per`, e.g. `throttle: "1000/s"`. Both are non-zero when
/// parsed from a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// How many events the period allows (≥ 1).
    pub count: u64,
    /// The length of the period (non-zero).
    pub per: time::Duration,
}

impl Rate {
    /// A rate of `count` per `per`; both must be non-zero.
    pub fn new(count: u64, per: time::Duration) -> Result<Self, ConfigError> {
        if count == 0 {
            return Err(ConfigError::Value(
                "a rate needs a count of at least 1".into(),
            ));
        }
        if per.is_zero() {
            return Err(ConfigError::Value("a rate needs a non-zero period".into()));
        }
        Ok(Rate { count, per })
    }

    /// The rate as events per second.
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.per.as_secs_f64()
    }

    /// The even spacing between two events: `per / count`.
    pub fn interval(&self) -> time::Duration {
        let count = u32::try_from(self.count).unwrap_or(u32::MAX).max(1);
        self.per / count
    }
}

impl FromStr for Rate {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::Value(format!("invalid rate {s:?}: {why}"));
        let (count, period) = s
            .split_once('/')
            .ok_or_else(|| bad("expected \"N/period\", like \"100/s\" or \"100/5m\""))?;
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count must be a whole number"))?;
        let period = period.trim();
        let per = if period.starts_with(|c: char| c.is_ascii_digit()) {
            period.parse::<Duration>()
        } else {
            format!("1{period}").parse::<Duration>()
        }
        .map_err(|_| bad("the period must be s, m, h, d or a duration like \"5m\""))?;
        Rate::new(count, per.get()).map_err(|e| bad(&e.to_string()))
    }
}

impl fmt::Display for Rate {
    /// Writes `"100/s"`, `"5000/h"` for one-unit periods, else `"100/5m"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match (self.per.as_secs(), self.per.subsec_nanos()) {
            (1, 0) => Some("s"),
            (60, 0) => Some("m"),
            (3_600, 0) => Some("h"),
            (86_400, 0) => Some("d"),
            _ => None,
        };
        match unit {
            Some(u) => write!(f, "{}/{u}", self.count),
            None => write!(f, "{}/{}", self.count, Duration::new(self.per)),
        }
    }
}

super::string_serde!(Rate, "a rate string like \"100/s\" or \"100/5m\"");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for (text, count, secs, shown) in [
            ("100/s", 100, 1, "100/s"),
            ("5000/h", 5000, 3_600, "5000/h"),
            ("10/m", 10, 60, "10/m"),
            ("7/d", 7, 86_400, "7/d"),
            ("100/5m", 100, 300, "100/5m"),
            ("3 / hour", 3, 3_600, "3/h"),
            ("1/60s", 1, 60, "1/m"),
            ("2/1h 30m", 2, 5_400, "2/1h 30m"),
        ] {
            let r: Rate = text.parse().unwrap();
            assert_eq!((r.count, r.per.as_secs()), (count, secs), "{text}");
            assert_eq!(r.to_string(), shown, "{text}");
            assert_eq!(shown.parse::<Rate>().unwrap(), r, "{text} round trip");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "100",
            "100/",
            "/s",
            "0/s",
            "x/s",
            "100/0s",
            "100/fortnight",
            "-1/s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn helpers() {
        let r: Rate = "10/s".parse().unwrap();
        assert_eq!(r.per_second(), 10.0);
        assert_eq!(r.interval(), time::Duration::from_millis(100));
    }
}
