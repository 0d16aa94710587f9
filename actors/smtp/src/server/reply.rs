//! Writing replies: the wire format of single- and multi-line replies, and the count of
//! consecutive errors that ends a misbehaving session.
//!
//! Every reply the session sends goes through here. Texts that come from outside the
//! protocol code (queue ids, store errors, host names) are sanitized so that no CR, LF or
//! other control character can split a reply or inject another one.

use super::{Event, Session, State};

/// Appends one reply line `code[ enhanced] text` CRLF.
pub(super) fn single(out: &mut Vec<u8>, code: u16, enhanced: Option<&str>, text: &str) {
    line(out, code, b' ', enhanced, text);
}

/// Appends one line of a reply; `sep` is `-` for all but the last line, ` ` for the last.
pub(super) fn line(out: &mut Vec<u8>, code: u16, sep: u8, enhanced: Option<&str>, text: &str) {
    // Codes are always three digits; write them without formatting machinery.
    let code = code.clamp(200, 599);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        sep,
    ]);
    if let Some(enhanced) = enhanced {
        out.extend_from_slice(enhanced.as_bytes());
        out.push(b' ');
    }
    for &b in text.as_bytes() {
        out.push(if b < 0x20 || b == 0x7f { b' ' } else { b });
    }
    out.extend_from_slice(b"\r\n");
}

impl Session {
    /// Queues the reply to a command and keeps the error count: a 5xx counts, a 2xx or
    /// 3xx resets, a 4xx does neither. At the policy's `max_errors` the session closes. An empty
    /// `enhanced` writes no enhanced status code.
    pub(super) fn reply(&mut self, code: u16, enhanced: &str, text: &str) {
        let enhanced = (!enhanced.is_empty()).then_some(enhanced);
        single(&mut self.output, code, enhanced, text);
        if code >= 500 {
            self.errors += 1;
            if self.errors >= self.policy.max_errors.max(1) {
                self.note_rejection(421, "4.7.0", "Too many errors", None, "");
                self.close(421, "4.7.0", "Too many errors");
            }
        } else if code < 400 {
            self.errors = 0;
        }
    }

    /// Queues a reply that does not take part in the error count (end of data).
    pub(super) fn reply_uncounted(&mut self, code: u16, enhanced: &str, text: &str) {
        single(&mut self.output, code, Some(enhanced), text);
    }

    /// Queues a final reply, emits [`Event::Close`] and stops processing input.
    pub(super) fn close(&mut self, code: u16, enhanced: &str, text: &str) {
        single(&mut self.output, code, Some(enhanced), text);
        self.enter_closed(Event::Close);
    }

    /// Moves to [`State::Closed`], dropping the transaction and unprocessed input.
    pub(super) fn enter_closed(&mut self, event: Event) {
        self.state = State::Closed;
        self.envelope = Default::default();
        self.reader = None;
        self.input = Vec::new();
        self.events.push_back(event);
    }
}
