//! [`ByteSize`]: an amount of memory or disk, written `"4GiB"`, `"512MiB"`, `"64KiB"`,
//! `"2G"`, `"100M"` (decimal units) or a bare number of bytes.

use std::{fmt, str::FromStr};

use crate::ConfigError;

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError::Value(format!(
                "invalid size {s:?}: expected a number of bytes or \"4GiB\", \"512MiB\", \"2G\""
            ))
        };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            "K" | "KB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "T" | "TB" => 1_000_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, m) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= m && self.0.is_multiple_of(m) {
                return write!(f, "{}{unit}", self.0 / m);
            }
        }
        write!(f, "{}", self.0)
    }
}

super::string_serde!(ByteSize, "a size like \"4GiB\" or \"512MiB\"");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for (text, bytes, shown) in [
            ("4GiB", 4u64 << 30, "4GiB"),
            ("512MiB", 512 << 20, "512MiB"),
            ("64KiB", 64 << 10, "64KiB"),
            ("2G", 2_000_000_000, "1953125KiB"),
            ("100M", 100_000_000, "100000000"),
            ("1048576", 1 << 20, "1MiB"),
            (" 3 MiB ", 3 << 20, "3MiB"),
        ] {
            let b: ByteSize = text.parse().unwrap();
            assert_eq!(b.get(), bytes, "{text}");
            assert_eq!(b.to_string(), shown);
        }
        for bad in ["", "GiB", "4 parsecs", "-1", "99999999999TiB", "1.5GiB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?}");
        }
    }
}
