//! The compact record of a queued message: what a message is while no actor works on it.
//!
//! A message waiting in its domain's active or delayed queue is a [`QueuedMessage`] — id,
//! arrival time, size, attempts, next attempt, the envelope packed into one allocation
//! and the set of recipients whose outcome is final — with no running actor, no mailbox
//! and no body (the body stays in the spool). The domain container wakes it into a
//! message actor when a connection takes it, and the actor hands the record back when the
//! attempt is settled and the message must wait again (it *hibernates*).
//!
//! Memory: one heap block per message (the packed envelope, allocated as class
//! `message`) plus the record itself inside the queue that holds it; see BENCHMARKS.md
//! for the bytes per queued message this gives.

use impulse_runtime::alloc;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;

use crate::ids::MessageId;

/// Sender and recipients packed into one allocation:
/// `sender_len u16 | sender | (rcpt_len u16 | rcpt)*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedEnvelope(Box<[u8]>);

impl PackedEnvelope {
    /// Pack `sender` and `recipients` (each address at most 65 535 bytes; longer ones are
    /// cut, which the SMTP line limit makes impossible in practice).
    pub fn new<'a>(sender: &str, recipients: impl IntoIterator<Item = &'a str>) -> PackedEnvelope {
        let _g = alloc::enter(ActorClass::Message);
        let recipients: Vec<&str> = recipients.into_iter().collect();
        let len = 2 + sender.len() + recipients.iter().map(|r| 2 + r.len()).sum::<usize>();
        let mut buf = Vec::with_capacity(len);
        put(&mut buf, sender);
        for r in recipients {
            put(&mut buf, r);
        }
        PackedEnvelope(buf.into_boxed_slice())
    }

    /// The reverse-path ("" for the null sender).
    pub fn sender(&self) -> &str {
        let mut it = Fields(&self.0);
        it.next().unwrap_or("")
    }

    /// The recipients, in their original order.
    pub fn recipients(&self) -> impl Iterator<Item = &str> + '_ {
        let mut it = Fields(&self.0);
        it.next();
        it
    }

    /// Number of recipients.
    pub fn recipient_count(&self) -> usize {
        self.recipients().count()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

fn put(buf: &mut Vec<u8>, s: &str) {
    let n = s.len().min(u16::MAX as usize);
    buf.extend_from_slice(&(n as u16).to_le_bytes());
    buf.extend_from_slice(&s.as_bytes()[..n]);
}

struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.0.len() < 2 {
            return None;
        }
        let n = u16::from_le_bytes([self.0[0], self.0[1]]) as usize;
        let end = (2 + n).min(self.0.len());
        let s = std::str::from_utf8(&self.0[2..end]).unwrap_or("");
        self.0 = &self.0[end..];
        Some(s)
    }
}

/// Which recipients (by index in the envelope) have reached a final outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptSet {
    /// Up to 64 recipients: a bit per recipient.
    Small(u64),
    /// More: one bit per recipient in a boxed slice.
    Large(Box<[u64]>),
}

impl RcptSet {
    /// No recipient final, for a message of `count` recipients.
    pub fn empty(count: usize) -> RcptSet {
        if count <= 64 {
            RcptSet::Small(0)
        } else {
            let _g = alloc::enter(ActorClass::Message);
            RcptSet::Large(vec![0; count.div_ceil(64)].into_boxed_slice())
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        match self {
            RcptSet::Small(b) => i < 64 && b & (1 << i) != 0,
            RcptSet::Large(v) => v.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0),
        }
    }

    /// Mark recipient `i` final (indices beyond the set are ignored).
    pub fn insert(&mut self, i: usize) {
        match self {
            RcptSet::Small(b) if i < 64 => *b |= 1 << i,
            RcptSet::Large(v) => {
                if let Some(w) = v.get_mut(i / 64) {
                    *w |= 1 << (i % 64);
                }
            }
            RcptSet::Small(_) => {}
        }
    }
}

/// A message in a queue, without an actor.
#[derive(Debug)]
pub struct QueuedMessage {
    pub id: MessageId,
    /// Milliseconds since the epoch when the message was received.
    pub received_at: u64,
    /// Bytes of message data in the spool.
    pub size: u64,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (milliseconds since the epoch; 0 = now).
    pub retry_at: u64,
    pub envelope: PackedEnvelope,
    /// Recipients whose outcome is final (logged durably and marked in the spool).
    pub done: RcptSet,
    /// The message's entry in the actor registry (state `queued` or `hibernating`).
    pub reg: Option<Registration>,
}

impl QueuedMessage {
    /// Indices and addresses of the recipients still pending.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &str)> + '_ {
        self.envelope
            .recipients()
            .enumerate()
            .filter(|(i, _)| !self.done.contains(*i))
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
    }

    #[test]
    fn rcpt_sets_small_and_large() {
        let mut s = RcptSet::empty(3);
        s.insert(1);
        assert!(s.contains(1) && !s.contains(0) && !s.contains(2));
        s.insert(99); // out of range: ignored
        let mut l = RcptSet::empty(200);
        assert!(matches!(l, RcptSet::Large(_)));
        l.insert(0);
        l.insert(130);
        l.insert(500);
        assert!(l.contains(0) && l.contains(130) && !l.contains(129) && !l.contains(500));
    }
}
