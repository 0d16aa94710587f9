//! Inbound limits the connection actor enforces (the session enforces those it can see in
//! the protocol): sessions at once in total and per client address ([`Admission`], checked
//! by the listener before a session starts: `421 4.7.0` and a close), a timeout per phase
//! ([`phase_limit`]) and the data phase's minimum rate (`421 4.4.2` and a close), and the
//! Rejection records of every limit, the session's included.

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

/// The inbound timeouts of one session (from `smtp`, as the session's generation had it).
///
/// RFC 5321 §4.5.3.2 lists how long a client waits for each reply; a server's phases are
/// the same exchanges seen from the other side: after its greeting the client has
/// `greeting` for a first command, after MAIL `mail` for RCPT, after RCPT `rcpt` for the
/// next RCPT or DATA, after the 354 `data_init` for the first byte, then `data` between
/// bytes; `idle` covers every other wait and bounds them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub idle: Duration,
    pub greeting: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data: Duration,
}

impl Timeouts {
    pub fn of(s: &impulse_config::SmtpCfg) -> Timeouts {
        Timeouts {
            idle: s.idle_timeout.get(),
            greeting: s.greeting_timeout.get(),
            mail: s.mail_timeout.get(),
            rcpt: s.rcpt_timeout.get(),
            data_init: s.data_init_timeout.get(),
            data: s.data_timeout.get(),
        }
    }

    /// How often the session looks at its clock: every second, or more often when a
    /// timeout is shorter.
    pub fn tick(&self) -> Duration {
        [
            Duration::from_secs(1),
            self.idle,
            self.greeting,
            self.mail,
            self.rcpt,
            self.data_init,
            self.data,
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1))
    }
}

/// How long a session in `state` may stay quiet, and what it is told when that runs out
/// (after `421 4.4.2`); `None` while the session waits on Impulse (a store, a password
/// check), not on the client. `data_started`: a byte arrived since the 354.
pub fn phase_limit(
    state: State,
    data_started: bool,
    t: &Timeouts,
) -> Option<(Duration, &'static str)> {
    let (limit, text) = match state {
        State::Greeted => (t.greeting, "Timeout waiting for EHLO, closing connection"),
        State::Mail => (t.mail, "Timeout waiting for RCPT, closing connection"),
        State::Rcpt => (
            t.rcpt,
            "Timeout waiting for RCPT or DATA, closing connection",
        ),
        State::Data if !data_started => {
            (t.data_init, "Timeout waiting for data, closing connection")
        }
        State::Data | State::Chunk => (t.data, "Timeout waiting for data, closing connection"),
        State::Ready | State::TlsPending => (t.idle, "Idle timeout, closing connection"),
        State::WaitingStore | State::AuthWaiting | State::Closed => return None,
    };
    Some((limit.min(t.idle), text))
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

    /// Whether the session is reading message data (DATA or a BDAT chunk).
    pub(super) fn in_data(&self) -> bool {
        matches!(self.session.state(), State::Data | State::Chunk)
    }

    /// Count `n` bytes that arrived while the session was in a data phase or not
    /// (`in_data`, looked at before the session read them: the DATA command's own bytes
    /// are not data).
    pub(super) fn note_data(&mut self, in_data: bool, n: usize) {
        if in_data && self.in_data() {
            let (_, bytes) = self.data_phase.get_or_insert((Instant::now(), 0));
            *bytes += n as u64;
        } else if self.in_data() {
            // The phase began with these bytes (the 354 is owed or just sent).
            self.data_phase = Some((Instant::now(), 0));
        } else {
            self.data_phase = None;
        }
    }

    /// Close a session that waits too long for the client in its phase, or whose data
    /// arrives slower than the minimum rate.
    pub(super) fn check_timeouts(&mut self, t: &Timeouts, min_rate: u64) {
        if self.storing || self.closing {
            return;
        }
        let quiet = self.last_activity.elapsed();
        let state = self.session.state();
        let in_data = self.in_data();
        if !in_data {
            self.data_phase = None;
        }
        let started = self.data_phase.is_some_and(|(_, bytes)| bytes > 0);
        let why = match phase_limit(state, started, t) {
            Some((limit, text)) if quiet >= limit => Some(text),
            _ => match (in_data, self.data_phase) {
                (true, Some((since, bytes))) => too_slow(since.elapsed(), bytes, min_rate)
                    .then_some("Data rate too low, closing connection"),
                _ => None,
            },
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
    fn each_phase_has_its_timeout_bounded_by_idle() {
        let s = Duration::from_secs;
        let t = Timeouts {
            idle: s(300),
            greeting: s(10),
            mail: s(20),
            rcpt: s(30),
            data_init: s(40),
            data: s(50),
        };
        let cases = [
            (State::Greeted, false, Some((s(10), "EHLO"))),
            (State::Ready, false, Some((s(300), "Idle"))),
            (State::TlsPending, false, Some((s(300), "Idle"))),
            (State::Mail, false, Some((s(20), "waiting for RCPT,"))),
            (State::Rcpt, false, Some((s(30), "RCPT or DATA"))),
            (State::Data, false, Some((s(40), "data"))),
            (State::Data, true, Some((s(50), "data"))),
            (State::Chunk, false, Some((s(50), "data"))),
            (State::WaitingStore, false, None),
            (State::AuthWaiting, false, None),
            (State::Closed, false, None),
        ];
        for (state, started, want) in cases {
            let got = phase_limit(state, started, &t);
            match (got, want) {
                (Some((d, text)), Some((wd, wtext))) => {
                    assert_eq!(d, wd, "{state:?}");
                    assert!(text.contains(wtext), "{state:?}: {text}");
                }
                (None, None) => {}
                other => panic!("{state:?}: {other:?}"),
            }
        }
        let short = Timeouts { idle: s(5), ..t };
        assert_eq!(phase_limit(State::Data, true, &short).unwrap().0, s(5));
        assert_eq!(short.tick(), s(1));
        assert_eq!(
            Timeouts {
                greeting: Duration::from_millis(300),
                ..t
            }
            .tick(),
            Duration::from_millis(300)
        );
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
