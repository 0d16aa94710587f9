//! Settling an attempt: per-recipient results in, log records and the message's next
//! step out. Plain code over a [`QueuedMessage`] — no actors, no I/O — used by the message
//! actor after a delivery attempt and by the domain container when it defers messages
//! without waking them (next hop down).
//!
//! Rules:
//! - 2xx → Delivery, 5xx → Bounce: the recipient is final. 4xx → TransientFailure.
//! - A recipient that is already final is never settled again (its result is ignored).
//! - If recipients are still pending and the message has outlived
//!   `message_expiration`, each gets an Expiration record and is final.
//! - Otherwise the next attempt is `retry_delay(attempts)` from now, jittered by ±10 %, but
//!   never after the expiry instant (the last attempt is made when the message expires);
//!   a message older than `delay_warning` that was not warned yet names the deferred
//!   recipients that asked `NOTIFY=DELAY`, for its one delay report (and while some ask
//!   and it is younger, a retry falls on the warning instant at the latest).

use std::time::Duration;

use impulse_config::DomainCfg;

use crate::domain::backoff;
use crate::logger::record::timestamp_now;
use crate::logger::{LogRecord, LoggedResponse, RecordType};
use crate::queued::QueuedMessage;

/// How one recipient's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Transient,
    Permanent,
    /// Failed by the operator (`impulsectl bounce`): final, logged as AdminBounce.
    Admin,
}

/// What an attempt settled to.
#[derive(Debug)]
pub struct Settlement {
    pub records: Vec<LogRecord>,
    /// Recipients (indices) that became final with this attempt.
    pub newly_final: Vec<usize>,
    /// Those of `newly_final` that were delivered (the others failed).
    pub delivered: Vec<usize>,
    /// The last temporary response of this attempt, as one line.
    pub last_transient: Option<String>,
    /// Every recipient is final now: the message leaves the spool.
    pub finished: bool,
    /// When the next attempt is due (ms since the epoch), if not finished.
    pub retry_at: u64,
    /// Counts for `status`: delivered, bounced, deferred, expired.
    pub counts: [u64; 4],
    /// For each recipient that expired: the last temporary response it got (this
    /// attempt's, if it was tried), which its bounce report quotes.
    pub expired_last: Vec<(String, LoggedResponse)>,
    /// No report to the sender for these failures (`impulsectl bounce --quiet`).
    pub quiet: bool,
    /// The deliveries whose recipient asked for `NOTIFY=SUCCESS` get a report from us
    /// (`relayed`): the next hop does not offer DSN.
    pub success_reports: bool,
    /// Deferred recipients (indices) due a delay report (`Action: delayed`): the
    /// message outlived `delay_warning` and was not warned yet.
    pub delay_report: Vec<usize>,
}

/// Settle `results` (recipient index, verdict, response) for `msg`.
pub fn settle(
    msg: &QueuedMessage,
    domain: &str,
    cfg: &DomainCfg,
    results: Vec<(usize, Verdict, LoggedResponse)>,
    peer: &str,
    now_ms: u64,
) -> Settlement {
    let mut s = Settlement {
        records: Vec::new(),
        newly_final: Vec::new(),
        delivered: Vec::new(),
        last_transient: None,
        finished: false,
        retry_at: 0,
        counts: [0; 4],
        expired_last: Vec::new(),
        quiet: false,
        success_reports: false,
        delay_report: Vec::new(),
    };
    let rcpts: Vec<&str> = msg.envelope.recipients().collect();
    let mut last: Option<LoggedResponse> = None;
    let mut transient: Vec<(usize, LoggedResponse)> = Vec::new();
    for (i, verdict, response) in results {
        if i >= rcpts.len() || msg.envelope.is_done(i) || s.newly_final.contains(&i) {
            continue;
        }
        let kind = match verdict {
            Verdict::Delivered => {
                s.counts[0] += 1;
                RecordType::Delivery
            }
            Verdict::Permanent => {
                s.counts[1] += 1;
                RecordType::Bounce
            }
            Verdict::Admin => {
                s.counts[1] += 1;
                RecordType::AdminBounce
            }
            Verdict::Transient => {
                s.counts[2] += 1;
                RecordType::TransientFailure
            }
        };
        match verdict {
            Verdict::Transient => {
                s.last_transient = Some(response.line());
                transient.push((i, response.clone()));
            }
            Verdict::Delivered => {
                s.delivered.push(i);
                s.newly_final.push(i);
            }
            _ => s.newly_final.push(i),
        }
        s.records
            .push(record(msg, domain, kind, rcpts[i], &response, peer));
        last = Some(response);
    }
    let pending: Vec<usize> = (0..rcpts.len())
        .filter(|i| !msg.envelope.is_done(*i) && !s.newly_final.contains(i))
        .collect();
    let age = Duration::from_millis(now_ms.saturating_sub(msg.received_at));
    if !pending.is_empty() && backoff::expired(age, cfg.message_expiration.get()) {
        let response = LoggedResponse::new(
            550,
            Some("5.4.7".into()),
            format!(
                "message expired after {} in queue; last response: {}",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                last.as_ref().map(|r| r.text.as_str()).unwrap_or("none")
            ),
        );
        for &i in &pending {
            let own = transient.iter().find(|(t, _)| *t == i).map(|(_, r)| r);
            if let Some(r) = own.or(last.as_ref()) {
                s.expired_last.push((rcpts[i].to_string(), r.clone()));
            }
            s.records.push(record(
                msg,
                domain,
                RecordType::Expiration,
                rcpts[i],
                &response,
                peer,
            ));
            s.counts[3] += 1;
            s.newly_final.push(i);
        }
        s.finished = true;
    } else if pending.is_empty() {
        s.finished = true;
    } else {
        let delay = backoff::retry_delay(
            msg.attempts.max(1),
            cfg.retry_interval.get(),
            cfg.max_retry_interval.get(),
        );
        let delay = backoff::jittered(delay, msg.id.0 ^ (msg.attempts as u64).rotate_left(48));
        // Never past the expiry: the last attempt is made when the message expires,
        // so the parts of a reception (same arrival, same expiration) expire together
        // and their failures go out in one report.
        let expires_at = msg.received_at + cfg.message_expiration.get().as_millis() as u64;
        s.retry_at = (now_ms + delay.as_millis() as u64).min(expires_at.max(now_ms));
        let warn = cfg.delay_warning.get();
        if !warn.is_zero() && !msg.envelope.delay_warned() {
            let dsn = impulse_smtp::dsn::DsnParams::decode(msg.envelope.dsn().unwrap_or(""));
            let asked: Vec<usize> = transient
                .iter()
                .map(|(i, _)| *i)
                .filter(|&i| dsn.recipient(i).notify.is_some_and(|n| n.delay))
                .collect();
            if age >= warn {
                s.delay_report = asked;
            } else if !asked.is_empty() {
                // Likewise a retry falls on the warning, so the parts of a reception
                // owe their delay reports at the same instant and send one.
                let warn_at = msg.received_at + warn.as_millis() as u64;
                s.retry_at = s.retry_at.min(warn_at.max(now_ms));
            }
        }
    }
    s
}

fn record(
    msg: &QueuedMessage,
    domain: &str,
    kind: RecordType,
    recipient: &str,
    response: &LoggedResponse,
    peer: &str,
) -> LogRecord {
    LogRecord {
        kind,
        id: msg.id.to_string(),
        timestamp: timestamp_now(),
        sender: msg.envelope.sender().to_string(),
        recipient: recipient.to_string(),
        domain: domain.to_string(),
        size: msg.size as u64,
        attempts: msg.attempts,
        response: response.clone(),
        peer: peer.to_string(),
        tls: None,
        user: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MessageId;
    use crate::queued::PackedEnvelope;

    fn msg(rcpts: &[&str]) -> QueuedMessage {
        QueuedMessage {
            id: MessageId(1),
            received_at: 1_000_000,
            size: 10,
            attempts: 1,
            retry_at: 0,
            envelope: PackedEnvelope::new("s@x", rcpts.iter().copied()),
            reg: None,
        }
    }

    fn ok() -> LoggedResponse {
        LoggedResponse::new(250, None, "ok")
    }

    #[test]
    fn a_delay_report_once_for_the_recipients_that_asked() {
        let cfg = DomainCfg {
            delay_warning: impulse_config::Duration::from_secs(60),
            ..DomainCfg::default()
        };
        let mut m = msg(&["a@d", "b@d", "c@d"]);
        m.envelope.set_dsn("\t\nDELAY,FAILURE\t\n\t\nSUCCESS\t");
        let later = || LoggedResponse::new(451, None, "later");
        let all = || {
            (0..3)
                .map(|i| (i, Verdict::Transient, later()))
                .collect::<Vec<_>>()
        };
        // Younger than delay_warning: nothing.
        let s = settle(&m, "d", &cfg, all(), "peer", 1_000_000 + 59_000);
        assert!(s.delay_report.is_empty());
        // Older: only the recipient with NOTIFY=DELAY (none given is FAILURE only).
        let s = settle(&m, "d", &cfg, all(), "peer", 1_000_000 + 61_000);
        assert_eq!(s.delay_report, vec![0]);
        // Once per message.
        m.envelope.set_delay_warned();
        let s = settle(&m, "d", &cfg, all(), "peer", 1_000_000 + 61_000);
        assert!(s.delay_report.is_empty());
        // 0 = never.
        let off = DomainCfg {
            delay_warning: impulse_config::Duration::from_secs(0),
            ..DomainCfg::default()
        };
        let fresh = {
            let mut f = msg(&["a@d"]);
            f.envelope.set_dsn("\t\nDELAY\t");
            f
        };
        let s = settle(
            &fresh,
            "d",
            &off,
            vec![(0, Verdict::Transient, later())],
            "p",
            9_000_000,
        );
        assert!(s.delay_report.is_empty());
    }

    #[test]
    fn partial_outcome_marks_final_and_retries_the_rest() {
        let cfg = DomainCfg::default();
        let m = msg(&["a@d", "soft@d", "bad@d"]);
        let s = settle(
            &m,
            "d",
            &cfg,
            vec![
                (0, Verdict::Delivered, ok()),
                (
                    1,
                    Verdict::Transient,
                    LoggedResponse::new(451, None, "later"),
                ),
                (2, Verdict::Permanent, LoggedResponse::new(550, None, "no")),
            ],
            "peer",
            1_000_500,
        );
        assert_eq!(s.newly_final, vec![0, 2]);
        assert!(!s.finished);
        assert_eq!(s.counts, [1, 1, 1, 0]);
        let kinds: Vec<RecordType> = s.records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            vec![
                RecordType::Delivery,
                RecordType::TransientFailure,
                RecordType::Bounce
            ]
        );
        // The first retry interval, jittered by at most ±10 %.
        let base = cfg.retry_interval.get().as_millis() as u64;
        let wait = s.retry_at - 1_000_500;
        assert!(
            wait >= base * 9 / 10 && wait <= base * 11 / 10,
            "{wait} vs {base}"
        );
    }

    #[test]
    fn final_recipients_are_never_settled_again() {
        let cfg = DomainCfg::default();
        let mut m = msg(&["a@d", "b@d"]);
        m.envelope.set_done(0);
        let s = settle(
            &m,
            "d",
            &cfg,
            vec![(0, Verdict::Delivered, ok()), (1, Verdict::Delivered, ok())],
            "p",
            1_000_001,
        );
        assert_eq!(s.newly_final, vec![1]);
        assert_eq!(s.records.len(), 1);
        assert!(s.finished);
    }

    #[test]
    fn the_last_retry_falls_on_the_expiry() {
        let cfg = DomainCfg::default();
        let m = msg(&["a@d"]);
        let expires = m.received_at + cfg.message_expiration.get().as_millis() as u64;
        let deferred_at = |now| {
            let r = vec![(0, Verdict::Transient, LoggedResponse::new(451, None, "x"))];
            settle(&m, "d", &cfg, r, "p", now)
        };
        // A retry due after the expiry is brought forward to it, not later.
        let s = deferred_at(expires - 1_000);
        assert!(!s.finished);
        assert_eq!(s.retry_at, expires);
        // Far from the expiry the retry is the backoff's.
        let s = deferred_at(m.received_at);
        assert!(s.retry_at < expires && s.retry_at > m.received_at);
    }

    #[test]
    fn a_retry_falls_on_the_delay_warning_when_a_recipient_asked_for_one() {
        let cfg = DomainCfg {
            retry_interval: "3h".parse().unwrap(),
            max_retry_interval: "3h".parse().unwrap(),
            ..Default::default()
        };
        let mut m = msg(&["a@d"]);
        let warn_at = m.received_at + cfg.delay_warning.get().as_millis() as u64;
        let deferred = |m: &QueuedMessage, now| {
            let r = vec![(0, Verdict::Transient, LoggedResponse::new(451, None, "x"))];
            settle(m, "d", &cfg, r, "p", now)
        };
        let now = warn_at - 1_000;
        assert!(
            deferred(&m, now).retry_at > warn_at,
            "no NOTIFY=DELAY: the backoff's"
        );
        m.envelope.set_dsn("\t\nDELAY\t");
        assert!(
            impulse_smtp::dsn::DsnParams::decode(m.envelope.dsn().unwrap())
                .recipient(0)
                .notify
                .is_some_and(|n| n.delay)
        );
        let s = deferred(&m, now);
        assert_eq!(s.retry_at, warn_at);
        assert!(s.delay_report.is_empty(), "not yet");
        assert_eq!(
            deferred(&m, warn_at).delay_report,
            vec![0],
            "then it is due"
        );
    }

    #[test]
    fn expiry_finishes_what_is_pending() {
        let cfg = DomainCfg::default();
        let m = msg(&["a@d", "b@d"]);
        let later = m.received_at + cfg.message_expiration.get().as_millis() as u64;
        let s = settle(
            &m,
            "d",
            &cfg,
            vec![(0, Verdict::Transient, LoggedResponse::new(451, None, "x"))],
            "p",
            later,
        );
        assert!(s.finished);
        assert_eq!(s.newly_final, vec![0, 1]);
        assert_eq!(s.counts[3], 2);
        assert!(s.records[2].response.text.contains("last response: x"));
    }
}
