//! DATA: the verb, the end of the data, and the answer once the message is stored.
//!
//! `DATA` needs at least one accepted recipient: before MAIL it gets `503 5.5.1`, after a
//! MAIL whose recipients were all refused `554 5.5.1 No valid recipients` (RFC 2920 §3.1);
//! either way the bytes that follow are read as commands again. Otherwise `354` opens the
//! data phase, read by [`crate::data::DataReader`].
//!
//! At the terminator a good message becomes [`Event::Message`] and the session pauses in
//! [`State::WaitingStore`] until [`Session::message_done`]. A refused one is answered at
//! once (uncounted as a command error) and the transaction is reset:
//! bare CR/LF → `550 5.6.0`, too big → `552 5.3.4`, line too long → `552 5.3.4`.

use super::{Event, MessageOutcome, Session, State};
use crate::data::{DataError, DataReader};

/// The reply to a message refused for its data.
pub(super) fn refusal(error: DataError) -> (u16, &'static str, &'static str) {
    match error {
        DataError::BareLineEnding => (550, "5.6.0", "Bare LF or CR in message data not accepted"),
        DataError::TooBig => (552, "5.3.4", "Message too big"),
        DataError::LineTooLong => (552, "5.3.4", "Message line too long"),
    }
}

impl Session {
    pub(super) fn data(&mut self) {
        if self.bdat.is_some() {
            return self.reply(503, "5.5.1", "DATA not allowed after BDAT");
        }
        match self.state {
            State::Rcpt => {}
            State::Mail => return self.reply(554, "5.5.1", "No valid recipients"),
            _ => return self.reply(503, "5.5.1", "Need RCPT command"),
        }
        self.reader = Some(DataReader::new(
            self.policy.max_message_size,
            self.policy.data_line_length(),
        ));
        self.state = State::Data;
        self.reply(354, "", "End data with <CR><LF>.<CR><LF>");
    }

    /// Called when the reader consumed the terminator.
    pub(super) fn end_of_data(&mut self) {
        let result = match self.reader.take() {
            Some(reader) => reader.finish(),
            None => Ok(Vec::new()),
        };
        match result {
            Ok(data) => {
                self.accepted += 1;
                let envelope = std::mem::take(&mut self.envelope);
                self.events.push_back(Event::Message { envelope, data });
                self.state = State::WaitingStore;
            }
            Err(error) => {
                let (code, enhanced, text) = refusal(error);
                self.refused_data(code, enhanced, text);
                self.reset_transaction();
            }
        }
    }

    /// Answer a message (or a chunk of it) refused for its data — not a command error —
    /// and keep the refusal for the log.
    pub(super) fn refused_data(&mut self, code: u16, enhanced: &'static str, text: &'static str) {
        let recipients = self.envelope.recipients.join(",");
        self.note_rejection(code, enhanced, text, None, &recipients);
        self.reply_uncounted(code, enhanced, text);
    }

    /// Answers the stored (or not) message and resets the transaction.
    pub(super) fn answer_message(&mut self, outcome: MessageOutcome) {
        match outcome {
            MessageOutcome::Accepted { id } => {
                self.reply_uncounted(250, "2.0.0", &format!("Ok: queued as {id}"))
            }
            MessageOutcome::TempFail(text) => self.reply_uncounted(451, "4.3.0", &text),
            MessageOutcome::Reject(text) => self.reply_uncounted(554, "5.3.0", &text),
        }
        self.reset_transaction();
    }
}
