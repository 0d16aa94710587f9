//! The compact record of a queued message: what a message is while no actor works on it.
//!
//! A message waiting in its domain's active or delayed queue is a [`QueuedMessage`] — id,
//! arrival time, size, attempts, next attempt, and the envelope packed into one
//! allocation that also holds, per recipient, whether its outcome is final — with no
//! running actor, no mailbox and no body (the body stays in the spool). The domain
//! container wakes it into a message actor when a connection takes it, and the actor
//! hands the record back when the attempt is settled and the message must wait again
//! (it *hibernates*).
//!
//! Memory: one heap block per message (the packed envelope, allocated as class
//! `message`) plus the 64-byte record itself inside the queue that holds it; see
//! BENCHMARKS.md for the bytes per queued message this gives.

use impulse_runtime::alloc;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;

use crate::ids::MessageId;

/// Sender and recipients packed into one allocation, with an outcome flag per recipient
/// and, once an attempt was deferred, the last temporary response:
/// `sender_len u16 | sender | (flag u8 | rcpt_len u16 | rcpt)* | (tag u8 | len u16 | value)*`,
/// the trailer entries being the DSN parameters (tag 0xFE), the delay-report mark
/// (0xFD), the reception group (0xFC, the first part's id) and the last temporary
/// response (0xFB: its slot in [`crate::responses`], as hex; the text is shared by every
/// message that got it, and the envelope holds one reference, given back on drop).
/// Flags: 0 pending, 1 final (recovered from the spool, outcome not kept), 2 delivered,
/// 3 failed.
#[derive(Debug, PartialEq, Eq)]
pub struct PackedEnvelope(Box<[u8]>);

impl Clone for PackedEnvelope {
    fn clone(&self) -> Self {
        if let Some(id) = self.response_slot() {
            crate::responses::retain(id);
        }
        let _g = alloc::enter(ActorClass::Message);
        PackedEnvelope(self.0.clone())
    }
}

impl Drop for PackedEnvelope {
    fn drop(&mut self) {
        if let Some(id) = self.response_slot() {
            crate::responses::release(id);
        }
    }
}

impl PackedEnvelope {
    /// Pack `sender` and `recipients`, none final yet (each address at most 65 535
    /// bytes; longer ones are cut, which the SMTP line limit makes impossible anyway).
    pub fn new<'a>(sender: &str, recipients: impl IntoIterator<Item = &'a str>) -> PackedEnvelope {
        let _g = alloc::enter(ActorClass::Message);
        let recipients: Vec<&str> = recipients.into_iter().collect();
        let len = 2 + sender.len() + recipients.iter().map(|r| 3 + r.len()).sum::<usize>();
        let mut buf = Vec::with_capacity(len);
        put(&mut buf, sender);
        for r in recipients {
            buf.push(0);
            put(&mut buf, r);
        }
        PackedEnvelope(buf.into_boxed_slice())
    }

    /// The reverse-path ("" for the null sender).
    pub fn sender(&self) -> &str {
        field(&self.0, 0).map_or("", |(s, _)| s)
    }

    /// The sender's bytes, without the UTF-8 check (for scans over many records).
    pub fn sender_bytes(&self) -> &[u8] {
        let Some(len) = self.0.get(0..2) else {
            return &[];
        };
        let n = u16::from_le_bytes([len[0], len[1]]) as usize;
        &self.0[2..(2 + n).min(self.0.len())]
    }

    /// The recipients, in their original order, each with its "final" flag.
    fn entries(&self) -> impl Iterator<Item = (usize, bool, &str)> + '_ {
        self.flagged().map(|(at, flag, r)| (at, flag != PENDING, r))
    }

    /// Each recipient: the offset of its flag, the flag, the address.
    fn flagged(&self) -> impl Iterator<Item = (usize, u8, &str)> + '_ {
        let mut at = field(&self.0, 0).map_or(self.0.len(), |(_, end)| end);
        std::iter::from_fn(move || {
            let flag = *self.0.get(at)?;
            if flag >= LOWEST_TAG {
                return None;
            }
            let (r, end) = field(&self.0, at + 1)?;
            let flag_at = at;
            at = end;
            Some((flag_at, flag, r))
        })
    }

    /// Where the last-response trailer starts (the end when there is none).
    fn trailer_at(&self) -> usize {
        let start = field(&self.0, 0).map_or(self.0.len(), |(_, end)| end);
        self.flagged()
            .last()
            .and_then(|(at, _, _)| field(&self.0, at + 1).map(|(_, end)| end))
            .unwrap_or(start)
    }

    /// The outcome of recipient `i`.
    pub fn outcome(&self, i: usize) -> Outcome {
        match self.flagged().nth(i).map(|(_, f, _)| f) {
            Some(DELIVERED) => Outcome::Delivered,
            Some(FAILED) => Outcome::Failed,
            Some(PENDING) | None => Outcome::Pending,
            Some(_) => Outcome::Final,
        }
    }

    /// Record the final outcome of recipient `i`.
    pub fn set_outcome(&mut self, i: usize, delivered: bool) {
        let at = self.flagged().nth(i).map(|(at, _, _)| at);
        if let Some(at) = at {
            self.0[at] = if delivered { DELIVERED } else { FAILED };
        }
    }

    /// The trailer entries after the recipients: (tag, value).
    fn extras(&self) -> impl Iterator<Item = (u8, &str)> + '_ {
        let mut at = self.trailer_at();
        std::iter::from_fn(move || {
            let tag = *self.0.get(at)?;
            let (v, end) = field(&self.0, at + 1)?;
            at = end;
            Some((tag, v))
        })
    }

    fn extra(&self, tag: u8) -> Option<&str> {
        self.extras().find(|(t, _)| *t == tag).map(|(_, v)| v)
    }

    /// Set the trailer entry `tag` to `value` (removed when empty), keeping the others.
    fn set_extra(&mut self, tag: u8, value: &str) {
        let _g = alloc::enter(ActorClass::Message);
        let at = self.trailer_at();
        let others: Vec<(u8, String)> = self
            .extras()
            .filter(|(t, _)| *t != tag)
            .map(|(t, v)| (t, v.to_string()))
            .collect();
        let mut buf = Vec::with_capacity(self.0.len() + 3 + value.len());
        buf.extend_from_slice(&self.0[..at]);
        for (t, v) in &others {
            buf.push(*t);
            put(&mut buf, v);
        }
        if !value.is_empty() {
            buf.push(tag);
            put(&mut buf, value);
        }
        self.0 = buf.into_boxed_slice();
    }

    /// The slot of the last temporary response in [`crate::responses`].
    fn response_slot(&self) -> Option<u32> {
        self.extra(RESPONSE_TAG)
            .and_then(|v| u32::from_str_radix(v, 16).ok())
    }

    /// The last temporary response, if an attempt was deferred.
    pub fn last_response(&self) -> Option<std::sync::Arc<str>> {
        self.response_slot().and_then(crate::responses::get)
    }

    /// Keep `response` (cut to [`MAX_RESPONSE`] bytes) as the last temporary response.
    pub fn set_last_response(&mut self, response: &str) {
        let mut cut = response.len().min(MAX_RESPONSE);
        while !response.is_char_boundary(cut) {
            cut -= 1;
        }
        let response = &response[..cut];
        if self.last_response().as_deref() == Some(response) {
            return;
        }
        let old = self.response_slot();
        let id = crate::responses::intern(response);
        self.set_extra(RESPONSE_TAG, &format!("{id:x}"));
        if let Some(old) = old {
            crate::responses::release(old);
        }
    }

    /// The DSN parameters in their stored form ([`impulse_smtp::dsn::DsnParams`]), if
    /// the client gave any.
    pub fn dsn(&self) -> Option<&str> {
        self.extra(DSN_TAG)
    }

    /// Keep the DSN parameters (stored form; empty: none).
    pub fn set_dsn(&mut self, stored: &str) {
        if self.dsn().unwrap_or("") != stored {
            self.set_extra(DSN_TAG, stored);
        }
    }

    /// Whether the sender was sent its delay report (`NOTIFY=DELAY`) already.
    pub fn delay_warned(&self) -> bool {
        self.extra(WARNED_TAG).is_some()
    }

    /// Note that the delay report went out (it is sent once per message).
    pub fn set_delay_warned(&mut self) {
        if !self.delay_warned() {
            self.set_extra(WARNED_TAG, "1");
        }
    }

    /// The reception this message is one domain's part of (its first part's id), when
    /// its recipients were split over several domains.
    pub fn group(&self) -> Option<MessageId> {
        self.extra(GROUP_TAG).and_then(MessageId::parse)
    }

    /// Note the reception group (see [`PackedEnvelope::group`]).
    pub fn set_group(&mut self, group: MessageId) {
        if self.group() != Some(group) {
            self.set_extra(GROUP_TAG, &group.to_string());
        }
    }

    /// The recipients, in their original order.
    pub fn recipients(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries().map(|(_, _, r)| r)
    }

    /// Number of recipients.
    pub fn recipient_count(&self) -> usize {
        self.entries().count()
    }

    /// Whether recipient `i`'s outcome is final.
    pub fn is_done(&self, i: usize) -> bool {
        self.entries().nth(i).is_some_and(|(_, done, _)| done)
    }

    /// Mark recipient `i` final (an index beyond the list is ignored).
    pub fn set_done(&mut self, i: usize) {
        let at = self.entries().nth(i).map(|(at, _, _)| at);
        if let Some(at) = at {
            self.0[at] = 1;
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

const PENDING: u8 = 0;
const DELIVERED: u8 = 2;
const FAILED: u8 = 3;
/// Marks the DSN-parameters trailer entry.
const DSN_TAG: u8 = 0xFE;
/// Marks the delay-report-sent trailer entry.
const WARNED_TAG: u8 = 0xFD;
/// Marks the reception-group trailer entry.
const GROUP_TAG: u8 = 0xFC;
/// Marks the last-response trailer entry (a slot in [`crate::responses`]).
const RESPONSE_TAG: u8 = 0xFB;
/// The lowest tag: flags below it are recipients'.
const LOWEST_TAG: u8 = RESPONSE_TAG;
/// The last response is kept up to this many bytes.
pub const MAX_RESPONSE: usize = 200;

/// A recipient's outcome as far as the record knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Delivered,
    Failed,
    /// Final before the last restart (the spool keeps only that it is final).
    Final,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
            Outcome::Final => "final",
        }
    }
}

fn put(buf: &mut Vec<u8>, s: &str) {
    let n = s.len().min(u16::MAX as usize);
    buf.extend_from_slice(&(n as u16).to_le_bytes());
    buf.extend_from_slice(&s.as_bytes()[..n]);
}

/// The length-prefixed string at `at`, and where it ends.
fn field(buf: &[u8], at: usize) -> Option<(&str, usize)> {
    let len = buf.get(at..at + 2)?;
    let n = u16::from_le_bytes([len[0], len[1]]) as usize;
    let end = (at + 2 + n).min(buf.len());
    Some((std::str::from_utf8(&buf[at + 2..end]).unwrap_or(""), end))
}

/// A message in a queue, without an actor (64 bytes).
#[derive(Debug)]
pub struct QueuedMessage {
    pub id: MessageId,
    /// Milliseconds since the epoch when the message was received.
    pub received_at: u64,
    /// When the next attempt is due (milliseconds since the epoch; 0 = now).
    pub retry_at: u64,
    /// Bytes of message data in the spool (`smtp.max_message_size` keeps it in a u32).
    pub size: u32,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Sender, recipients, and which recipients are final (logged durably and marked in
    /// the spool).
    pub envelope: PackedEnvelope,
    /// The message's entry in the actor registry (state `queued` or `hibernating`).
    pub reg: Option<Registration>,
}

impl QueuedMessage {
    /// Indices and addresses of the recipients still pending.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &str)> + '_ {
        self.envelope
            .entries()
            .enumerate()
            .filter(|(_, (_, done, _))| !done)
            .map(|(i, (_, _, r))| (i, r))
    }

    /// Whether every recipient is final.
    pub fn is_finished(&self) -> bool {
        self.pending().next().is_none()
    }

    /// Set the registry state word, if registered.
    pub fn set_state(&self, state: &'static str) {
        if let Some(r) = &self.reg {
            r.set_state(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        let p = PackedEnvelope::new("s@a.example", ["x@b.example", "", "y@b.example"]);
        assert_eq!(p.sender(), "s@a.example");
        let r: Vec<&str> = p.recipients().collect();
        assert_eq!(r, vec!["x@b.example", "", "y@b.example"]);
        assert_eq!(p.recipient_count(), 3);
        let null = PackedEnvelope::new("", ["x@b"]);
        assert_eq!(null.sender(), "");
        assert_eq!(null.recipients().collect::<Vec<_>>(), vec!["x@b"]);
        let none = PackedEnvelope::new("s", []);
        assert_eq!(none.recipient_count(), 0);
    }

    #[test]
    fn final_flags_live_in_the_envelope() {
        let mut p = PackedEnvelope::new("s", ["a", "b", "c"]);
        p.set_done(1);
        p.set_done(99); // out of range: ignored
        assert!(!p.is_done(0) && p.is_done(1) && !p.is_done(2));
        assert_eq!(p.recipients().collect::<Vec<_>>(), vec!["a", "b", "c"]);
        let q = QueuedMessage {
            id: MessageId(1),
            received_at: 0,
            retry_at: 0,
            size: 0,
            attempts: 0,
            envelope: p,
            reg: None,
        };
        assert_eq!(q.pending().collect::<Vec<_>>(), vec![(0, "a"), (2, "c")]);
        assert!(!q.is_finished());
        assert!(std::mem::size_of::<QueuedMessage>() <= 64);
    }

    #[test]
    fn outcomes_and_the_last_response() {
        let mut p = PackedEnvelope::new("s@a", ["x@b", "y@b", "z@b"]);
        assert_eq!(p.last_response().as_deref(), None);
        p.set_last_response("451 4.3.0 later");
        p.set_outcome(0, true);
        p.set_outcome(2, false);
        p.set_done(1);
        assert_eq!(p.last_response().as_deref(), Some("451 4.3.0 later"));
        assert_eq!(
            (0..3).map(|i| p.outcome(i)).collect::<Vec<_>>(),
            [Outcome::Delivered, Outcome::Final, Outcome::Failed]
        );
        assert_eq!(p.recipients().collect::<Vec<_>>(), ["x@b", "y@b", "z@b"]);
        assert_eq!(p.recipient_count(), 3);
        assert_eq!(p.sender(), "s@a");
        p.set_last_response("421 4.4.2 timeout");
        assert_eq!(p.last_response().as_deref(), Some("421 4.4.2 timeout"));
        let long = "é".repeat(MAX_RESPONSE);
        p.set_last_response(&long);
        let kept = p.last_response().unwrap();
        assert!(kept.len() <= MAX_RESPONSE && long.starts_with(&*kept));
        assert_eq!(p.recipient_count(), 3, "the trailer is not a recipient");
        p.set_dsn("HDRS\tQQ1\nNEVER\t");
        assert_eq!(p.dsn(), Some("HDRS\tQQ1\nNEVER\t"));
        assert!(
            p.last_response().as_deref().is_some(),
            "the other entry stays"
        );
        p.set_last_response("452 4.2.2 full");
        assert_eq!(p.dsn(), Some("HDRS\tQQ1\nNEVER\t"));
        assert_eq!(p.recipient_count(), 3);
        p.set_dsn("");
        assert_eq!(
            (p.dsn(), p.last_response().as_deref()),
            (None, Some("452 4.2.2 full"))
        );
        assert_eq!(p.group(), None);
        p.set_group(MessageId(0x1F));
        p.set_delay_warned();
        assert_eq!(p.group(), Some(MessageId(0x1F)));
        assert!(p.delay_warned());
        assert_eq!(p.recipient_count(), 3, "the group is not a recipient");
        assert_eq!(p.last_response().as_deref(), Some("452 4.2.2 full"));
        let none = PackedEnvelope::new("s", []);
        let mut none2 = none.clone();
        none2.set_last_response("x");
        assert_eq!(
            (none2.recipient_count(), none2.last_response().as_deref()),
            (0, Some("x"))
        );
    }

    #[test]
    fn the_last_response_is_shared_and_given_back() {
        let text = "451 4.4.1 queued test: shared by many";
        let mut a = PackedEnvelope::new("s@a", ["x@b"]);
        a.set_last_response(text);
        let b = a.clone();
        let mut c = PackedEnvelope::new("s@a", ["y@b"]);
        c.set_last_response(text);
        assert_eq!(a.response_slot(), c.response_slot(), "one text for all");
        let slot = a.response_slot().unwrap();
        drop(a);
        drop(b);
        assert_eq!(
            crate::responses::get(slot).as_deref(),
            Some(text),
            "c holds it"
        );
        c.set_last_response("451 4.4.1 queued test: another");
        // (The slot may already serve another test's text.)
        assert_ne!(
            crate::responses::get(slot).as_deref(),
            Some(text),
            "given back"
        );
        assert_eq!(
            c.last_response().as_deref(),
            Some("451 4.4.1 queued test: another")
        );
        assert!(c.heap_bytes() < 40, "a slot number, not the text: {c:?}");
    }

    #[test]
    fn many_recipients() {
        let rcpts: Vec<String> = (0..200).map(|i| format!("r{i}@d")).collect();
        let mut p = PackedEnvelope::new("s", rcpts.iter().map(String::as_str));
        p.set_done(0);
        p.set_done(130);
        assert!(p.is_done(0) && p.is_done(130) && !p.is_done(129));
        assert_eq!(p.recipient_count(), 200);
    }
}
