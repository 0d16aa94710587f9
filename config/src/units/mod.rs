//! Values with units, as validated newtypes: each parses from the string users write
//! (`"5m"`, `"100/s"`, `"10.0.0.0/8"`, `"mx.example.com:25"`), rejects a bad one at
//! deserialize time (so RON reports its line and column), and writes itself back in the
//! same string form through `Display` and `Serialize`.
//!
//! This module owns the shared string-visitor plumbing; each unit lives in its own file.

mod bytes;
mod cidr;
mod duration;
mod host_port;
mod rate;

pub use bytes::ByteSize;
pub use cidr::Cidr;
pub use duration::Duration;
pub use host_port::HostPort;
pub use rate::Rate;

use std::{fmt, marker::PhantomData, str::FromStr};

use serde::{de, Deserializer, Serializer};

use crate::ConfigError;

/// Deserializes `T` from a string through its `FromStr`, naming `expecting` when the value
/// is not a string at all.
pub(crate) fn from_string<'de, D, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = ConfigError>,
{
    struct Visit<T>(&'static str, PhantomData<T>);

    impl<T: FromStr<Err = ConfigError>> de::Visitor<'_> for Visit<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(|e: ConfigError| E::custom(e))
        }
    }

    // `deserialize_any` (RON is self-describing) so a non-string is reported with `expecting`.
    d.deserialize_any(Visit(expecting, PhantomData))
}

/// Serializes a value through its `Display`.
pub(crate) fn to_string<S: Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Implements `Serialize` and `Deserialize` for a unit type through `Display` / `FromStr`.
macro_rules! string_serde {
    ($ty:ty, $expecting:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::units::to_string(self, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::units::from_string(d, $expecting)
            }
        }
    };
}
pub(crate) use string_serde;
