//! Looking into a domain's queues for the operator: one message in detail
//! ([`Describe`], `impulsectl message ID`) and a search ([`Find`], `impulsectl find`).
//!
//! Both read the compact records where they wait (active and delayed queues) and ask the
//! message actors of messages in flight. A search scans at most [`SCAN_SLICE`] records
//! per turn of the container's mailbox and then lets it handle what queued up meanwhile
//! (deliveries, new messages) before going on, so a search of a million messages never
//! holds the container for more than a slice. [`matches`] and [`describe`] are pure.

use std::time::{Duration, UNIX_EPOCH};

use actix::prelude::*;
use impulse_runtime::control::{MessageDetail, MessageRow, RecipientInfo};

use super::Domain;
use crate::ids::{now_ms, MessageId};
use crate::message::DescribeMsg;
use crate::queued::{Outcome, QueuedMessage};

/// Records looked at per turn of the mailbox (a few milliseconds of work).
pub const SCAN_SLICE: usize = 5_000;

/// One message of this container, in detail (none if it is not here).
#[derive(Message)]
#[rtype(result = "Option<MessageDetail>")]
pub struct Describe(pub MessageId);

/// What a search looks for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// `active`, `delayed` or `in_flight`.
    pub state: Option<String>,
    pub limit: usize,
}

/// The messages of this container that match, up to the filter's limit, and how many
/// records were looked at.
#[derive(Message, Clone)]
#[rtype(result = "(Vec<MessageRow>, u64)")]
pub struct Find(pub Filter);

/// Whether `address` matches `pattern`: the same address (case-insensitive), or for a
/// pattern without `@` (or starting with `@`) an address in that domain; `<>` is the
/// null sender.
pub fn address_matches(pattern: &str, address: &str) -> bool {
    Pattern::new(pattern).matches(address.as_bytes())
}

/// An address pattern made once per search, compared without allocating.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `<>`: the null sender.
    Null,
    /// A domain (lower-cased): addresses in it.
    Domain(Vec<u8>),
    /// An address (lower-cased).
    Exact(Vec<u8>),
}

impl Pattern {
    pub fn new(pattern: &str) -> Pattern {
        let p = pattern.trim();
        if p == "<>" {
            return Pattern::Null;
        }
        let lower = p.to_ascii_lowercase().into_bytes();
        match lower.strip_prefix(b"@") {
            Some(d) => Pattern::Domain(d.to_vec()),
            None if !lower.contains(&b'@') => Pattern::Domain(lower),
            None => Pattern::Exact(lower),
        }
    }

    /// Whether `address` matches (see [`address_matches`]).
    pub fn matches(&self, address: &[u8]) -> bool {
        match self {
            Pattern::Null => address.is_empty(),
            Pattern::Exact(a) => address.eq_ignore_ascii_case(a),
            Pattern::Domain(d) => match memchr::memrchr(b'@', address) {
                Some(at) => address[at + 1..].eq_ignore_ascii_case(d),
                None => false,
            },
        }
    }
}

/// A [`Filter`] made ready to run over many records.
#[derive(Debug, Clone)]
pub struct Compiled {
    sender: Option<Pattern>,
    recipient: Option<Pattern>,
    state: Option<String>,
}

impl Filter {
    pub fn compile(&self) -> Compiled {
        Compiled {
            sender: self.sender.as_deref().map(Pattern::new),
            recipient: self.recipient.as_deref().map(Pattern::new),
            state: self.state.clone(),
        }
    }
}

/// Whether `msg`, in `state`, matches `f`.
pub fn matches(f: &Compiled, msg: &QueuedMessage, state: &str) -> bool {
    if f.state.as_deref().is_some_and(|s| s != state) {
        return false;
    }
    if let Some(p) = &f.sender {
        if !p.matches(msg.envelope.sender_bytes()) {
            return false;
        }
    }
    if let Some(p) = &f.recipient {
        if !msg.pending().any(|(_, r)| p.matches(r.as_bytes())) {
            return false;
        }
    }
    true
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The next attempt of a waiting message: (time, seconds from `now`).
fn next_attempt(msg: &QueuedMessage, state: &str, now: u64) -> (Option<String>, Option<u64>) {
    if state != "delayed" || msg.retry_at == 0 {
        return (None, None);
    }
    (
        Some(rfc3339(msg.retry_at)),
        Some(msg.retry_at.saturating_sub(now).div_ceil(1000)),
    )
}

/// `msg` in detail.
pub fn describe(
    msg: &QueuedMessage,
    domain: &str,
    binding: Option<&str>,
    state: &str,
    now: u64,
) -> MessageDetail {
    let last = msg.envelope.last_response().map(|r| r.to_string());
    let dsn = impulse_smtp::dsn::DsnParams::decode(msg.envelope.dsn().unwrap_or(""));
    let (next_attempt, next_attempt_secs) = next_attempt(msg, state, now);
    MessageDetail {
        id: msg.id.to_string(),
        domain: domain.to_string(),
        binding: binding.map(str::to_string),
        sender: msg.envelope.sender().to_string(),
        size: msg.size as u64,
        received_at: rfc3339(msg.received_at),
        state: state.to_string(),
        attempts: msg.attempts,
        next_attempt,
        next_attempt_secs,
        last_response: last.clone(),
        recipients: msg
            .envelope
            .recipients()
            .enumerate()
            .map(|(i, r)| {
                let outcome = msg.envelope.outcome(i);
                let d = dsn.recipient(i);
                RecipientInfo {
                    address: r.to_string(),
                    state: outcome.name().to_string(),
                    attempts: msg.attempts,
                    last_response: (outcome == Outcome::Pending)
                        .then(|| last.clone())
                        .flatten(),
                    notify: d.notify.map(|n| n.text()),
                    orcpt: d.orcpt,
                }
            })
            .collect(),
        ret: dsn.ret.map(|r| match r {
            impulse_smtp::dsn::Ret::Full => "FULL".to_string(),
            impulse_smtp::dsn::Ret::Hdrs => "HDRS".to_string(),
        }),
        envid: dsn.envid,
    }
}

/// `msg` as a search result.
pub fn row(
    msg: &QueuedMessage,
    domain: &str,
    binding: Option<&str>,
    state: &str,
    now: u64,
) -> MessageRow {
    MessageRow {
        id: msg.id.to_string(),
        domain: domain.to_string(),
        binding: binding.map(str::to_string),
        sender: msg.envelope.sender().to_string(),
        recipients: msg.pending().map(|(_, r)| r.to_string()).collect(),
        state: state.to_string(),
        attempts: msg.attempts,
        next_attempt_secs: next_attempt(msg, state, now).1,
        size: msg.size as u64,
    }
}

impl Handler<Describe> for Domain {
    type Result = ResponseActFuture<Self, Option<MessageDetail>>;

    fn handle(&mut self, Describe(id): Describe, _ctx: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let binding = self.binding.clone();
        let found = self
            .active
            .iter()
            .chain(self.pinned_messages())
            .find(|m| m.id == id)
            .map(|m| (m, "active"))
            .or_else(|| {
                self.delayed
                    .values()
                    .find(|m| m.id == id)
                    .map(|m| (m, "delayed"))
            })
            .map(|(m, state)| describe(m, &self.name, binding.as_deref(), state, now));
        if found.is_some() {
            return Box::pin(fut::ready(found));
        }
        let Some(actor) = self.in_flight.get(&id).cloned() else {
            return Box::pin(fut::ready(None));
        };
        Box::pin(
            async move {
                let mut d = actor.send(DescribeMsg).await.ok().flatten()?;
                d.binding = binding.map(|b| b.to_string());
                Some(d)
            }
            .into_actor(self),
        )
    }
}

/// Where a search stands between slices.
struct Scan {
    filter: Filter,
    compiled: Compiled,
    rows: Vec<MessageRow>,
    scanned: u64,
    /// 0: the active queue (at index `at`), 1: the delayed queue (after `after`), 2: done.
    phase: u8,
    at: usize,
    after: Option<(u64, MessageId)>,
}

impl Scan {
    fn full(&self) -> bool {
        self.rows.len() >= self.filter.limit
    }
}

type Slices = std::pin::Pin<Box<dyn ActorFuture<Domain, Output = Scan>>>;

/// The rest of `scan`, one slice per turn of the mailbox.
fn slices(scan: Scan) -> Slices {
    Box::pin(
        fut::wrap_future::<_, Domain>(tokio::task::yield_now()).then(move |_, act, _| {
            let mut scan = scan;
            if act.scan_slice(&mut scan) {
                Box::pin(fut::ready(scan)) as Slices
            } else {
                slices(scan)
            }
        }),
    )
}

impl Domain {
    /// Look at up to [`SCAN_SLICE`] more records; true once the scan is complete.
    /// Records that move between queues meanwhile may be missed: a search shows the
    /// queues as they were while it ran, not one instant of them.
    fn scan_slice(&self, scan: &mut Scan) -> bool {
        use std::ops::Bound::{Excluded, Unbounded};
        let now = now_ms();
        let binding = self.binding.as_deref();
        let mut budget = SCAN_SLICE;
        let wanted = |q: &str| scan.filter.state.as_deref().is_none_or(|s| s == q);
        if scan.phase == 0 {
            if !wanted("active") {
                scan.phase = 1;
            }
            while scan.phase == 0 && budget > 0 {
                let Some(m) = self.active.get(scan.at) else {
                    // Then the few waiting for other exchangers (shown as active).
                    for m in self.pinned_messages() {
                        scan.scanned += 1;
                        if matches(&scan.compiled, m, "active") {
                            scan.rows.push(row(m, &self.name, binding, "active", now));
                            if scan.full() {
                                return true;
                            }
                        }
                    }
                    scan.phase = 1;
                    break;
                };
                scan.at += 1;
                budget -= 1;
                scan.scanned += 1;
                if matches(&scan.compiled, m, "active") {
                    scan.rows.push(row(m, &self.name, binding, "active", now));
                    if scan.full() {
                        return true;
                    }
                }
            }
            if scan.phase == 0 {
                return false;
            }
        }
        if scan.phase == 1 {
            if !wanted("delayed") {
                return true;
            }
            let range = match scan.after {
                None => self.delayed.range(..),
                Some(k) => self.delayed.range((Excluded(k), Unbounded)),
            };
            for (k, m) in range {
                if budget == 0 {
                    return false;
                }
                budget -= 1;
                scan.after = Some(*k);
                scan.scanned += 1;
                if matches(&scan.compiled, m, "delayed") {
                    scan.rows.push(row(m, &self.name, binding, "delayed", now));
                    if scan.full() {
                        return true;
                    }
                }
            }
            scan.phase = 2;
        }
        true
    }
}

impl Handler<Find> for Domain {
    type Result = ResponseActFuture<Self, (Vec<MessageRow>, u64)>;

    fn handle(&mut self, Find(filter): Find, _ctx: &mut Context<Self>) -> Self::Result {
        let mut scan = Scan {
            compiled: filter.compile(),
            filter,
            rows: Vec::new(),
            scanned: 0,
            phase: 0,
            at: 0,
            after: None,
        };
        let first: Slices = if self.scan_slice(&mut scan) {
            Box::pin(fut::ready(scan))
        } else {
            slices(scan)
        };
        Box::pin(first.then(|scan, act, _| {
            // In flight last: their actors are asked (there are few of them).
            let want = scan
                .filter
                .state
                .as_deref()
                .is_none_or(|s| s == "in_flight");
            let actors: Vec<_> = if want && !scan.full() {
                act.in_flight.values().cloned().collect()
            } else {
                Vec::new()
            };
            let (limit, compiled) = (scan.filter.limit, scan.compiled.clone());
            let binding = act.binding.clone();
            async move {
                let (mut rows, mut scanned) = (scan.rows, scan.scanned);
                for a in actors {
                    if rows.len() >= limit {
                        break;
                    }
                    let Ok(Some(d)) = a.send(DescribeMsg).await else {
                        continue;
                    };
                    scanned += 1;
                    if detail_matches(&compiled, &d) {
                        let mut r = detail_row(d);
                        r.binding = binding.as_ref().map(|b| b.to_string());
                        rows.push(r);
                    }
                }
                (rows, scanned)
            }
            .into_actor(act)
        }))
    }
}

fn detail_matches(f: &Compiled, d: &MessageDetail) -> bool {
    f.sender
        .as_ref()
        .is_none_or(|p| p.matches(d.sender.as_bytes()))
        && f.recipient.as_ref().is_none_or(|p| {
            d.recipients
                .iter()
                .any(|r| r.state == "pending" && p.matches(r.address.as_bytes()))
        })
}

fn detail_row(d: MessageDetail) -> MessageRow {
    MessageRow {
        recipients: d
            .recipients
            .into_iter()
            .filter(|r| r.state == "pending")
            .map(|r| r.address)
            .collect(),
        id: d.id,
        domain: d.domain,
        binding: d.binding,
        sender: d.sender,
        state: d.state,
        attempts: d.attempts,
        next_attempt_secs: d.next_attempt_secs,
        size: d.size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queued::PackedEnvelope;

    fn msg(sender: &str, rcpts: &[&str]) -> QueuedMessage {
        QueuedMessage {
            id: MessageId(7),
            received_at: 1_000,
            retry_at: 61_000,
            size: 100,
            attempts: 2,
            envelope: PackedEnvelope::new(sender, rcpts.iter().copied()),
            reg: None,
        }
    }

    #[test]
    fn address_patterns() {
        let table = [
            ("a@example.com", "a@example.com", true),
            ("A@Example.COM", "a@example.com", true),
            ("b@example.com", "a@example.com", false),
            ("example.com", "a@example.com", true),
            ("@example.com", "a@EXAMPLE.com", true),
            ("example.org", "a@example.com", false),
            ("<>", "", true),
            ("<>", "a@example.com", false),
            ("example.com", "", false),
        ];
        for (pattern, address, want) in table {
            assert_eq!(
                address_matches(pattern, address),
                want,
                "{pattern} vs {address}"
            );
        }
    }

    #[test]
    fn filters_combine_and_only_pending_recipients_count() {
        let mut m = msg("s@from.test", &["x@to.test", "y@other.test"]);
        let f = |sender: Option<&str>, rcpt: Option<&str>, state: Option<&str>| Filter {
            sender: sender.map(Into::into),
            recipient: rcpt.map(Into::into),
            state: state.map(Into::into),
            limit: 10,
        };
        let ok = |f: Filter, m: &QueuedMessage| matches(&f.compile(), m, "delayed");
        assert!(ok(f(None, None, None), &m));
        assert!(ok(
            f(Some("from.test"), Some("y@other.test"), Some("delayed")),
            &m
        ));
        assert!(ok(f(Some("@FROM.test"), Some("Y@Other.Test"), None), &m));
        assert!(!ok(f(None, None, Some("active")), &m));
        assert!(!ok(f(Some("x@from.test"), None, None), &m));
        m.envelope.set_outcome(1, true);
        assert!(!ok(f(None, Some("other.test"), None), &m), "delivered");
    }

    #[test]
    fn details_name_every_recipient_and_the_next_attempt() {
        let mut m = msg("s@from.test", &["x@to.test", "y@to.test"]);
        m.envelope.set_last_response("451 4.3.0 try later");
        m.envelope.set_outcome(0, true);
        let d = describe(&m, "to.test", Some("b1"), "delayed", 1_000);
        assert_eq!(d.id, m.id.to_string());
        assert_eq!((d.state.as_str(), d.attempts), ("delayed", 2));
        assert_eq!(d.received_at, "1970-01-01T00:00:01Z");
        assert_eq!(d.next_attempt.as_deref(), Some("1970-01-01T00:01:01Z"));
        assert_eq!(d.next_attempt_secs, Some(60));
        assert_eq!(d.binding.as_deref(), Some("b1"));
        assert_eq!(d.recipients[0].state, "delivered");
        assert_eq!(d.recipients[0].last_response, None);
        assert_eq!(d.recipients[1].state, "pending");
        assert_eq!(
            d.recipients[1].last_response.as_deref(),
            Some("451 4.3.0 try later")
        );
        let r = row(&m, "to.test", None, "delayed", 1_000);
        assert_eq!(r.recipients, ["y@to.test"]);
        let active = describe(&m, "to.test", None, "active", 1_000);
        assert_eq!(
            (active.next_attempt, active.next_attempt_secs),
            (None, None)
        );
    }
}
