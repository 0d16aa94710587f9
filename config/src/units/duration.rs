//! [`Duration`]: a span of time written as a humantime string (`"30s"`, `"5m"`, `"3d"`,
//! `"1h 30m"`). `Display` writes the compact form (`"1h 30m"`), which parses back to the
//! same value.

use std::{fmt, str::FromStr, time};

use crate::ConfigError;

/// A duration from the config, e.g. `retry_interval: "20m"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(time::Duration);

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(time::Duration::from_secs(secs))
    }

    /// Wraps a `std::time::Duration`.
    pub const fn new(d: time::Duration) -> Self {
        Duration(d)
    }

    /// The value as a `std::time::Duration`.
    pub const fn get(self) -> time::Duration {
        self.0
    }

    /// True for a zero duration.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<time::Duration> for Duration {
    fn from(d: time::Duration) -> Self {
        Duration(d)
    }
}

impl From<Duration> for time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        humantime::parse_duration(s.trim())
            .map(Duration)
            .map_err(|e| ConfigError::Value(format!("invalid duration {s:?}: {e}")))
    }
}

impl fmt::Display for Duration {
    /// Writes the largest units first, space-separated: `"3d"`, `"1h 30m"`, `"250ms"`, `"0s"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = u64::from(self.0.subsec_nanos());
        let parts = [
            (secs / 86_400, "d"),
            (secs / 3_600 % 24, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
            (nanos / 1_000_000, "ms"),
            (nanos / 1_000 % 1_000, "us"),
            (nanos % 1_000, "ns"),
        ];
        let mut first = true;
        for (n, unit) in parts {
            if n > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{n}{unit}")?;
                first = false;
            }
        }
        if first {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

super::string_serde!(Duration, "a duration string like \"5m\" or \"1h 30m\"");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for (text, secs, shown) in [
            ("5m", 300, "5m"),
            ("3d", 259_200, "3d"),
            ("1h 30m", 5_400, "1h 30m"),
            ("90m", 5_400, "1h 30m"),
            (" 30s ", 30, "30s"),
            ("0s", 0, "0s"),
            ("4h", 14_400, "4h"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.get(), time::Duration::from_secs(secs), "{text}");
            assert_eq!(d.to_string(), shown, "{text}");
            assert_eq!(shown.parse::<Duration>().unwrap(), d, "{text} round trip");
        }
        let d = Duration::new(time::Duration::from_millis(1_250));
        assert_eq!(d.to_string(), "1s 250ms");
        assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "5", "5x", "m", "five minutes", "-5m"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?}");
        }
    }
}
