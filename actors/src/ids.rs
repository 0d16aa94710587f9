//! Message identifiers.
//!
//! A [`MessageId`] is a u64 that is unique across restarts of one node: it is the larger
//! of "last id + 1" and "now in milliseconds shifted left by 20 bits", so ids grow with
//! time, a restart never reuses an id (the clock moved on), and up to a million ids per
//! millisecond fit before the counter borrows from the future. Printed as 16 hex digits.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Identifier of one spooled message (one record in the spool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

impl MessageId {
    /// Parse the 16-hex-digit form printed by `Display`.
    pub fn parse(s: &str) -> Option<MessageId> {
        u64::from_str_radix(s, 16).ok().map(MessageId)
    }
}

/// Hands out [`MessageId`]s; shared by every inbound session.
#[derive(Debug, Default)]
pub struct IdGen {
    last: AtomicU64,
}

impl IdGen {
    pub fn new() -> IdGen {
        IdGen::default()
    }

    /// The next id: strictly greater than every id handed out before.
    pub fn next(&self) -> MessageId {
        let floor = now_ms() << 20;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = floor.max(last + 1);
            match self.last.compare_exchange_weak(
                last,
                candidate,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return MessageId(candidate),
                Err(seen) => last = seen,
            }
        }
    }

    /// Make sure later ids are greater than `seen` (used after spool recovery).
    pub fn observe(&self, seen: MessageId) {
        self.last.fetch_max(seen.0, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_strictly_increase_and_print_as_hex() {
        let g = IdGen::new();
        let a = g.next();
        let b = g.next();
        assert!(b > a);
        let s = a.to_string();
        assert_eq!(s.len(), 16);
        assert_eq!(MessageId::parse(&s), Some(a));
    }

    #[test]
    fn observe_moves_the_floor() {
        let g = IdGen::new();
        g.observe(MessageId(u64::MAX / 2));
        assert!(g.next().0 > u64::MAX / 2);
    }
}
