//! Inbound limits the connection actor enforces (the session enforces those it can see in
//! the protocol): sessions at once in total and per client address ([`Admission`], checked
//! by the listener before a session starts: `421 4.7.0` and a close), the data phase's
//! timeout and minimum rate (`421 4.4.2` and a close), and the Rejection records of every
//! limit, the session's included.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use impulse_smtp::domain_of;
use impulse_smtp::server::State;

use super::Inbound;
use crate::logger::{self, LogRecord, LoggedResponse, RecordType};

/// The data rate is judged only after this much of a data phase.
pub const RATE_GRACE: Duration = Duration::from_secs(30);

/// Inbound sessions open, in total and per client address.
#[derive(Default)]
pub struct Admission {
    total: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
}

impl Admission {
    /// Count a new session from `ip`, or say why it is refused.
    pub fn admit(
        &self,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<(), &'static str> {
        let total = self.total.fetch_add(1, Ordering::AcqRel);
        if total >= max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err("Too many connections, try again later");
        }
        let mut n = self.per_ip.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            drop(n);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err("Too many connections from your address, try again later");
        }
        *n += 1;
        Ok(())
    }

    /// A session from `ip` ended.
    pub fn release(&self, ip: IpAddr) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        let gone = match self.per_ip.get_mut(&ip) {
            Some(mut n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        };
        if gone {
            self.per_ip.remove_if(&ip, |_, n| *n == 0);
        }
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

/// A Rejection record for a refusal to `peer`.
pub fn rejection(
    peer: &str,
    code: u16,
    enhanced: &str,
    text: &str,
    sender: &str,
    recipient: &str,
) -> LogRecord {
    LogRecord {
        kind: RecordType::Rejection,
        id: String::new(),
        timestamp: logger::record::timestamp_now(),
        sender: sender.to_string(),
        recipient: recipient.to_string(),
        domain: recipient
            .split(',')
            .next()
            .map(domain_of)
            .unwrap_or_default(),
        size: 0,
        attempts: 0,
        response: LoggedResponse::new(code, Some(enhanced.to_string()), text),
        peer: peer.to_string(),
        tls: None,
        user: None,
    }
}

/// Whether a data phase `elapsed` long that got `bytes` is below `min_rate` bytes per
/// second (judged from [`RATE_GRACE`] on; a rate of 0 is no minimum).
pub fn too_slow(elapsed: Duration, bytes: u64, min_rate: u64) -> bool {
    let secs = elapsed.as_secs_f64();
    min_rate > 0 && elapsed >= RATE_GRACE && (bytes as f64) < min_rate as f64 * secs
}

impl Inbound {
    /// Log the session's refusals since the last call.
    pub(super) fn log_rejections(&mut self) {
        let list = self.session.take_rejections();
        if list.is_empty() {
            return;
        }
        let peer = self.peer.to_string();
        let records: Vec<LogRecord> = list
            .iter()
            .map(|r| rejection(&peer, r.code, r.enhanced, &r.text, &r.sender, &r.recipient))
            .collect();
        actix::spawn(logger::write(self.shared.logger.clone(), records, false));
    }

    /// Count the bytes of a data phase (for its rate).
    pub(super) fn note_data(&mut self, n: usize) {
        if matches!(self.session.state(), State::Data | State::Chunk) {
            let (_, bytes) = self.data_phase.get_or_insert((Instant::now(), 0));
            *bytes += n as u64;
        } else {
            self.data_phase = None;
        }
    }

    /// Close a session that waits too long for a command or a data block, or whose data
    /// arrives slower than the minimum rate.
    pub(super) fn check_timeouts(&mut self, idle: Duration, data: Duration, min_rate: u64) {
        if self.storing || self.closing {
            return;
        }
        let quiet = self.last_activity.elapsed();
        let in_data = matches!(self.session.state(), State::Data | State::Chunk);
        if !in_data {
            self.data_phase = None;
        }
        // The idle timeout bounds every wait, the data block's too.
        let why = if in_data && quiet >= data.min(idle) {
            Some("Timeout waiting for data, closing connection")
        } else if !in_data && quiet >= idle {
            Some("Idle timeout, closing connection")
        } else if let (true, Some((since, bytes))) = (in_data, self.data_phase) {
            too_slow(since.elapsed(), bytes, min_rate)
                .then_some("Data rate too low, closing connection")
        } else {
            None
        };
        if let Some(text) = why {
            let peer = self.peer.to_string();
            let record = rejection(&peer, 421, "4.4.2", text, "", "");
            actix::spawn(logger::write(
                self.shared.logger.clone(),
                vec![record],
                false,
            ));
            let line = format!("421 4.4.2 {text}\r\n");
            self.shared.io.write(self.conn, bytes::Bytes::from(line));
            self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_in_total_and_per_address() {
        let a = Admission::default();
        let (x, y): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        assert!(a.admit(x, 3, 2).is_ok());
        assert!(a.admit(x, 3, 2).is_ok());
        assert!(a.admit(x, 3, 2).unwrap_err().contains("your address"));
        assert!(a.admit(y, 3, 2).is_ok());
        assert!(a
            .admit(y, 3, 2)
            .unwrap_err()
            .starts_with("Too many connections,"));
        assert_eq!(a.open(), 3);
        a.release(x);
        assert!(a.admit(y, 3, 2).is_ok());
        a.release(x);
        a.release(y);
        a.release(y);
        assert_eq!(a.open(), 0);
        assert!(a.per_ip.is_empty());
    }

    #[test]
    fn the_data_rate_is_judged_after_the_grace() {
        let s = Duration::from_secs;
        assert!(!too_slow(s(10), 0, 256), "within the grace");
        assert!(too_slow(s(30), 256 * 30 - 1, 256));
        assert!(!too_slow(s(30), 256 * 30, 256));
        assert!(!too_slow(s(600), 0, 0), "0 = no minimum");
    }
}
