//! Counts over the last minute, in constant space: a sliding window estimated from two
//! fixed one-minute buckets (the current and the previous one, weighted by how much of
//! the previous minute the window still covers). 16 bytes per counter, so every domain
//! container can keep a few (`impulsectl queues`: finished and deferred in the last
//! minute) whatever the number of domains.

/// Events per sliding minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// The minute (since the epoch) `cur` counts.
    minute: u64,
    cur: u32,
    prev: u32,
}

const MINUTE_MS: u64 = 60_000;

impl Window {
    /// Count `n` events at `now_ms`.
    pub fn add(&mut self, now_ms: u64, n: u32) {
        self.roll(now_ms);
        self.cur = self.cur.saturating_add(n);
    }

    fn roll(&mut self, now_ms: u64) {
        let minute = now_ms / MINUTE_MS;
        if minute == self.minute {
            return;
        }
        self.prev = if minute == self.minute + 1 {
            self.cur
        } else {
            0
        };
        self.cur = 0;
        self.minute = minute;
    }

    /// About how many events happened in the minute before `now_ms`.
    pub fn last_minute(&self, now_ms: u64) -> u64 {
        let mut w = *self;
        w.roll(now_ms);
        let into = (now_ms % MINUTE_MS) as f64 / MINUTE_MS as f64;
        (w.cur as f64 + w.prev as f64 * (1.0 - into)).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slides_over_two_buckets() {
        let mut w = Window::default();
        let t0 = 10 * MINUTE_MS;
        w.add(t0, 30);
        w.add(t0 + 30_000, 30);
        assert_eq!(w.last_minute(t0 + 59_999), 60);
        // Half-way into the next minute half of the previous one still counts.
        assert_eq!(w.last_minute(t0 + MINUTE_MS + 30_000), 30);
        w.add(t0 + MINUTE_MS + 30_000, 10);
        assert_eq!(w.last_minute(t0 + MINUTE_MS + 30_000), 40);
        // A minute with nothing, then nothing is left.
        assert_eq!(w.last_minute(t0 + 3 * MINUTE_MS), 0);
        w.add(t0 + 5 * MINUTE_MS, 1);
        assert_eq!(w.last_minute(t0 + 5 * MINUTE_MS), 1);
        assert_eq!(std::mem::size_of::<Window>(), 16);
    }
}
