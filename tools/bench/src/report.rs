//! The relay benchmark's arithmetic and its printed report: rates, and loss and
//! duplication found by comparing the Message-IDs the source saw accepted with those the
//! sink received. Plain functions over plain numbers, tested as such.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Everything measured in one relay run.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub messages: usize,
    pub size: usize,
    pub sessions: usize,
    /// Answered 250 by impulsed.
    pub accepted: usize,
    pub rejected: usize,
    pub errors: usize,
    /// Source start to source end.
    pub source_elapsed: Duration,
    /// Source start to the last message the sink received (None: nothing arrived).
    pub delivery_elapsed: Option<Duration>,
    /// impulsed's VmHWM in KiB.
    pub peak_rss_kib: Option<u64>,
    /// CPU time (user + system) impulsed used from the source's start to the last
    /// delivery.
    pub cpu: Option<Duration>,
}

/// Loss and duplication of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages the sink received (copies included).
    pub delivered: usize,
    /// Accepted Message-IDs that never reached the sink.
    pub lost: usize,
    /// Message-IDs that reached the sink more than once.
    pub duplicated: usize,
    /// Messages the sink received that the source never saw accepted (an error after
    /// the 250, or a message without a known id).
    pub unexpected: usize,
}

/// Compare accepted ids with delivered ones.
pub fn tally(accepted: &[String], delivered: &[Option<String>]) -> Tally {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(delivered.len());
    let mut without_id = 0;
    for id in delivered {
        match id {
            Some(id) => *seen.entry(id.as_str()).or_default() += 1,
            None => without_id += 1,
        }
    }
    let mut lost = 0;
    let mut known = 0;
    for id in accepted {
        match seen.get(id.as_str()) {
            Some(_) => known += 1,
            None => lost += 1,
        }
    }
    Tally {
        delivered: delivered.len(),
        lost,
        duplicated: seen.values().filter(|&&n| n > 1).count(),
        unexpected: without_id + seen.len() - known.min(seen.len()),
    }
}

/// The final report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub m: Measured,
    pub t: Tally,
}

impl Report {
    /// Accepted messages per second of source run time.
    pub fn accepted_per_sec(&self) -> f64 {
        impulse_source::per_sec(self.m.accepted, self.m.source_elapsed)
    }

    /// Messages the sink received per second, from source start to the last delivery.
    pub fn delivered_per_sec(&self) -> f64 {
        self.m
            .delivery_elapsed
            .map_or(0.0, |d| impulse_source::per_sec(self.t.delivered, d))
    }

    /// impulsed's CPU time per delivered message, in microseconds.
    pub fn cpu_us_per_message(&self) -> Option<f64> {
        let cpu = self.m.cpu?;
        (self.t.delivered > 0).then(|| cpu.as_secs_f64() * 1e6 / self.t.delivered as f64)
    }

    /// Nothing accepted was lost.
    pub fn complete(&self) -> bool {
        self.t.lost == 0
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "messages": self.m.messages,
            "size": self.m.size,
            "sessions": self.m.sessions,
            "accepted": self.m.accepted,
            "rejected": self.m.rejected,
            "errors": self.m.errors,
            "source_elapsed_s": self.m.source_elapsed.as_secs_f64(),
            "accepted_per_s": self.accepted_per_sec(),
            "delivered": self.t.delivered,
            "delivery_elapsed_s": self.m.delivery_elapsed.map(|d| d.as_secs_f64()),
            "delivered_per_s": self.delivered_per_sec(),
            "lost": self.t.lost,
            "duplicated": self.t.duplicated,
            "unexpected": self.t.unexpected,
            "peak_rss_kib": self.m.peak_rss_kib,
            "cpu_s": self.m.cpu.map(|d| d.as_secs_f64()),
            "cpu_us_per_message": self.cpu_us_per_message(),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (m, t) = (&self.m, &self.t);
        writeln!(
            f,
            "relay benchmark: impulse-source -> impulsed -> impulse-sink"
        )?;
        writeln!(
            f,
            "messages     {} x {} B body over {} sessions",
            m.messages, m.size, m.sessions
        )?;
        writeln!(
            f,
            "accepted     {} (rejected {}, errors {}) in {:.3}s = {:.0} msg/s",
            m.accepted,
            m.rejected,
            m.errors,
            m.source_elapsed.as_secs_f64(),
            self.accepted_per_sec()
        )?;
        match m.delivery_elapsed {
            Some(d) => writeln!(
                f,
                "delivered    {} in {:.3}s = {:.0} msg/s",
                t.delivered,
                d.as_secs_f64(),
                self.delivered_per_sec()
            )?,
            None => writeln!(f, "delivered    0")?,
        }
        writeln!(f, "lost         {}", t.lost)?;
        writeln!(f, "duplicated   {}", t.duplicated)?;
        if t.unexpected > 0 {
            writeln!(f, "unexpected   {}", t.unexpected)?;
        }
        if let (Some(cpu), Some(us)) = (m.cpu, self.cpu_us_per_message()) {
            writeln!(
                f,
                "impulsed CPU {:.2}s = {us:.0} µs per relayed message",
                cpu.as_secs_f64()
            )?;
        }
        match m.peak_rss_kib {
            Some(k) => write!(
                f,
                "peak RSS     {:.1} MiB (impulsed VmHWM)",
                k as f64 / 1024.0
            ),
            None => write!(f, "peak RSS     unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn got(v: &[&str]) -> Vec<Option<String>> {
        v.iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect()
    }

    #[test]
    fn tally_counts_loss_duplicates_and_strays() {
        let accepted = ids(&["a", "b", "c", "d"]);
        assert_eq!(
            tally(&accepted, &got(&["a", "b", "c", "d"])),
            Tally {
                delivered: 4,
                lost: 0,
                duplicated: 0,
                unexpected: 0
            }
        );
        assert_eq!(
            tally(&accepted, &got(&["a", "b", "b", "b", "d", "d", "x", ""])),
            Tally {
                delivered: 8,
                lost: 1,
                duplicated: 2,
                unexpected: 2
            }
        );
        assert_eq!(
            tally(&accepted, &[]),
            Tally {
                delivered: 0,
                lost: 4,
                duplicated: 0,
                unexpected: 0
            }
        );
        assert_eq!(
            tally(&[], &got(&["z"])),
            Tally {
                delivered: 1,
                lost: 0,
                duplicated: 0,
                unexpected: 1
            }
        );
    }

    #[test]
    fn rates() {
        let r = Report {
            m: Measured {
                messages: 20_000,
                size: 1024,
                sessions: 10,
                accepted: 20_000,
                source_elapsed: Duration::from_secs(4),
                delivery_elapsed: Some(Duration::from_secs(5)),
                peak_rss_kib: Some(51_200),
                cpu: Some(Duration::from_secs(2)),
                ..Measured::default()
            },
            t: Tally {
                delivered: 20_000,
                ..Tally::default()
            },
        };
        assert_eq!(r.accepted_per_sec(), 5000.0);
        assert_eq!(r.delivered_per_sec(), 4000.0);
        assert!(r.complete());
        let text = r.to_string();
        assert!(
            text.contains("= 5000 msg/s") && text.contains("= 4000 msg/s"),
            "{text}"
        );
        assert!(text.contains("50.0 MiB"));
        assert_eq!(r.cpu_us_per_message(), Some(100.0));
        assert!(text.contains("100 µs per relayed message"), "{text}");
        assert_eq!(r.to_json()["lost"], 0);
        let none = Report::default();
        assert_eq!(none.delivered_per_sec(), 0.0);
        assert_eq!(none.accepted_per_sec(), 0.0);
    }
}
