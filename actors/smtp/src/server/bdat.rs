//! CHUNKING (RFC 3030): `BDAT size [LAST]` followed by exactly `size` octets of message
//! data, with no dot-stuffing and no terminator.
//!
//! The chunk is consumed as it arrives whatever the reply will be, so the command stream
//! stays in step: a BDAT refused (before RCPT `503`/`554`, over the size limit `552`) still
//! eats its chunk, and the refusal is answered once the chunk is through. A chunk that is
//! not the last is answered `250 2.0.0 N octets received`; the last one completes the
//! message, which is checked as DATA's is (bare CR or LF `550 5.6.0`, a line too long
//! `552 5.3.4`) and handed out as [`Event::Message`]. DATA after BDAT in the same
//! transaction gets `503 5.5.1`. Once a chunk failed, the rest of the transaction's
//! chunks are refused the same way and the transaction ends with its last.
//! A BDAT whose size cannot be read cannot be skipped: `501`, then `421` and a close.

use super::{Event, Session, State};
use crate::data::check_lines;

/// A refusal: code, enhanced code, text.
pub(super) type Refusal = (u16, &'static str, &'static str);

/// The chunk being read.
#[derive(Debug)]
pub(super) struct Chunk {
    /// The size the BDAT announced.
    size: u64,
    remaining: u64,
    last: bool,
    /// Answer this instead of taking the chunk.
    refusal: Option<Refusal>,
    /// Where the session goes once the chunk is through.
    resume: State,
}

impl Session {
    pub(super) fn bdat(&mut self, size: u64, last: bool) {
        let (refusal, in_tx) = match self.state {
            State::Rcpt => (self.bdat_failed, true),
            State::Mail => (Some((554, "5.5.1", "No valid recipients")), false),
            _ => (Some((503, "5.5.1", "Need RCPT command")), false),
        };
        let taken = self.bdat.as_ref().map_or(0, Vec::len) as u64;
        let refusal = refusal.or_else(|| {
            (taken.saturating_add(size) > self.policy.max_message_size).then_some((
                552,
                "5.3.4",
                "Message too big",
            ))
        });
        if in_tx {
            match refusal {
                Some(r) => {
                    self.bdat_failed = Some(r);
                    self.bdat = Some(Vec::new());
                }
                None => {
                    self.bdat.get_or_insert_with(Vec::new);
                }
            }
        }
        let resume = self.state;
        self.chunk = Some(Chunk {
            size,
            remaining: size,
            last,
            refusal,
            resume,
        });
        self.state = State::Chunk;
        if size == 0 {
            self.end_chunk();
        }
    }

    /// Take chunk bytes from the front of `input`; returns how many.
    pub(super) fn chunk_bytes(&mut self, input: &[u8]) -> usize {
        let Some(chunk) = self.chunk.as_mut() else {
            self.state = State::Ready;
            return 0;
        };
        let n = (chunk.remaining.min(input.len() as u64)) as usize;
        chunk.remaining -= n as u64;
        if chunk.refusal.is_none() {
            if let Some(data) = self.bdat.as_mut() {
                data.extend_from_slice(&input[..n]);
            }
        }
        if chunk.remaining == 0 {
            self.end_chunk();
        }
        n
    }

    fn end_chunk(&mut self) {
        let Some(chunk) = self.chunk.take() else {
            return;
        };
        self.state = chunk.resume;
        let in_tx = chunk.resume == State::Rcpt;
        if let Some((code, enhanced, text)) = chunk.refusal {
            if in_tx {
                self.refused_data(code, enhanced, text);
                if chunk.last {
                    self.reset_transaction();
                }
            } else {
                self.reply(code, enhanced, text);
            }
            return;
        }
        if !chunk.last {
            let text = format!("{} octets received", chunk.size);
            return self.reply_uncounted(250, "2.0.0", &text);
        }
        let data = self.bdat.take().unwrap_or_default();
        match check_lines(&data, self.policy.data_line_length()) {
            Ok(()) => {
                self.accepted += 1;
                let envelope = std::mem::take(&mut self.envelope);
                self.bdat_failed = None;
                self.events.push_back(Event::Message { envelope, data });
                self.state = State::WaitingStore;
            }
            Err(e) => {
                let (code, enhanced, text) = super::data::refusal(e);
                self.refused_data(code, enhanced, text);
                self.reset_transaction();
            }
        }
    }

    /// A BDAT without a readable size: the chunk cannot be skipped.
    pub(super) fn bad_chunk(&mut self, text: &'static str) {
        self.reply(501, "5.5.4", text);
        if self.state != State::Closed {
            self.close(
                421,
                "4.7.0",
                "Cannot find the end of the BDAT chunk, closing",
            );
        }
    }
}
