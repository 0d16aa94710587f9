//! The sink's shared memory: the messages it accepted, its connection counters, and how
//! many attempts each [`Rule`] has answered. Every session thread writes here; the test or
//! benchmark reads. One mutex for the message log (taken once per message), one for the
//! rules (taken only when rules exist), atomics for the connection counters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::{Rule, Stage};

/// One message the sink answered 250 to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The MAIL FROM address without angle brackets (empty for the null sender).
    pub sender: String,
    /// The accepted RCPT TO addresses, without angle brackets, in order.
    pub recipients: Vec<String>,
    /// The message exactly as transmitted, dot-unstuffed, CRLF line ends, without the
    /// final `.` line. Empty in the record when the sink runs with `record_bodies: false`
    /// (an [`Observer`] still sees it).
    pub data: Vec<u8>,
    /// Index (from 0) of the connection the message came on.
    pub connection: usize,
    /// The Message-ID header value (angle brackets included), if the header is present.
    pub message_id: Option<String>,
    /// Size of the unstuffed data in bytes (kept even without bodies).
    pub size: usize,
    /// The client's address (its source address and port).
    pub peer: Option<std::net::SocketAddr>,
    /// The name the client gave in EHLO (or HELO).
    pub helo: String,
    /// MAIL carried `SMTPUTF8`.
    pub smtputf8: bool,
    /// MAIL carried `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// The DSN parameters MAIL carried (`RET=…`, `ENVID=…`, as sent, space-separated).
    pub mail_dsn: String,
    /// The DSN parameters of each accepted RCPT (`NOTIFY=…`, `ORCPT=…`), aligned with
    /// `recipients`.
    pub rcpt_dsn: Vec<String>,
    /// The data came in `BDAT` chunks (CHUNKING), not after DATA.
    pub chunked: bool,
    /// When the final 250 was decided.
    pub received_at: Instant,
    /// `None` for a message received in plaintext; after STARTTLS the negotiated protocol
    /// version and cipher suite, e.g. `"TLSv1_3 TLS13_AES_256_GCM_SHA384"`.
    pub tls: Option<String>,
}

/// Called on the session thread for every accepted message, before it is recorded.
pub type Observer = Arc<dyn Fn(&ReceivedMessage) + Send + Sync>;

/// The shared state behind a running sink.
pub(crate) struct Recorder {
    record_bodies: bool,
    log: Mutex<Log>,
    arrived: Condvar,
    rules: Mutex<Vec<RuleState>>,
    has_rules: bool,
    observer: Option<Observer>,
    connections_total: AtomicUsize,
    connections_now: AtomicUsize,
    connections_max: AtomicUsize,
}

#[derive(Default)]
struct Log {
    messages: Vec<ReceivedMessage>,
    last_at: Option<Instant>,
}

struct RuleState {
    rule: Rule,
    used: u32,
}

impl Recorder {
    pub(crate) fn new(record_bodies: bool, rules: Vec<Rule>, observer: Option<Observer>) -> Self {
        Recorder {
            record_bodies,
            log: Mutex::new(Log::default()),
            arrived: Condvar::new(),
            has_rules: !rules.is_empty(),
            rules: Mutex::new(
                rules
                    .into_iter()
                    .map(|rule| RuleState { rule, used: 0 })
                    .collect(),
            ),
            observer,
            connections_total: AtomicUsize::new(0),
            connections_now: AtomicUsize::new(0),
            connections_max: AtomicUsize::new(0),
        }
    }

    /// The scripted reply for this attempt at `stage`, if a rule with attempts left matches
    /// one of `recipients`; the attempt is counted against that rule.
    pub(crate) fn rule_reply<'a>(
        &self,
        stage: Stage,
        recipients: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Option<String> {
        if !self.has_rules {
            return None;
        }
        let mut rules = lock(&self.rules);
        for st in rules.iter_mut() {
            if st.rule.stage != stage || st.rule.times.is_some_and(|n| st.used >= n) {
                continue;
            }
            if recipients.clone().into_iter().any(|r| st.rule.matches(r)) {
                st.used = st.used.saturating_add(1);
                return Some(st.rule.reply.clone());
            }
        }
        None
    }

    /// Show an accepted message to the observer, record it (without its data unless
    /// bodies are recorded) and wake waiters. Returns the data buffer when it was not
    /// kept, for the session to reuse.
    pub(crate) fn accept(&self, mut msg: ReceivedMessage) -> Option<Vec<u8>> {
        if let Some(observer) = &self.observer {
            observer(&msg);
        }
        let spare = (!self.record_bodies).then(|| std::mem::take(&mut msg.data));
        let mut log = lock(&self.log);
        log.last_at = Some(msg.received_at);
        log.messages.push(msg);
        drop(log);
        self.arrived.notify_all();
        spare
    }

    /// Count a new connection; returns its index.
    pub(crate) fn connection_opened(&self) -> usize {
        let now = self.connections_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.connections_max.fetch_max(now, Ordering::SeqCst);
        self.connections_total.fetch_add(1, Ordering::SeqCst)
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_now.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn messages(&self) -> Vec<ReceivedMessage> {
        lock(&self.log).messages.clone()
    }

    pub(crate) fn count(&self) -> usize {
        lock(&self.log).messages.len()
    }

    pub(crate) fn last_message_at(&self) -> Option<Instant> {
        lock(&self.log).last_at
    }

    pub(crate) fn message_ids(&self) -> Vec<Option<String>> {
        lock(&self.log)
            .messages
            .iter()
            .map(|m| m.message_id.clone())
            .collect()
    }

    pub(crate) fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let log = lock(&self.log);
        let (log, _) = self
            .arrived
            .wait_timeout_while(log, timeout, |l| l.messages.len() < n)
            .unwrap_or_else(|e| e.into_inner());
        log.messages.len() >= n
    }

    pub(crate) fn connections_total(&self) -> usize {
        self.connections_total.load(Ordering::SeqCst)
    }

    pub(crate) fn connections_now(&self) -> usize {
        self.connections_now.load(Ordering::SeqCst)
    }

    pub(crate) fn max_concurrent_connections(&self) -> usize {
        self.connections_max.load(Ordering::SeqCst)
    }
}

/// Lock, ignoring poisoning: a panicked session thread must not take the test down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_limits_a_rule_then_mail_is_accepted() {
        let r = Recorder::new(
            true,
            vec![
                Rule::first(2, "slow", Stage::Rcpt, "451 4.3.0 later"),
                Rule::always("dead", Stage::Data, "550 5.1.1 no"),
            ],
            None,
        );
        let slow = ["a@x", "slow@x"];
        assert_eq!(r.rule_reply(Stage::Data, slow), None);
        assert_eq!(
            r.rule_reply(Stage::Rcpt, slow).as_deref(),
            Some("451 4.3.0 later")
        );
        assert_eq!(r.rule_reply(Stage::Rcpt, ["other@x"]), None);
        assert!(r.rule_reply(Stage::Rcpt, slow).is_some());
        assert_eq!(r.rule_reply(Stage::Rcpt, slow), None);
        for _ in 0..5 {
            assert!(r.rule_reply(Stage::Data, ["dead@x"]).is_some());
        }
    }

    #[test]
    fn connection_counters_track_peak() {
        let r = Recorder::new(false, vec![], None);
        assert_eq!(r.connection_opened(), 0);
        assert_eq!(r.connection_opened(), 1);
        r.connection_closed();
        assert_eq!(r.connection_opened(), 2);
        r.connection_closed();
        r.connection_closed();
        assert_eq!(r.connections_total(), 3);
        assert_eq!(r.max_concurrent_connections(), 2);
        assert_eq!(r.connections_now(), 0);
    }
}
