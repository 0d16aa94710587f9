//! The SMTP server session: a byte-fed state machine, one per inbound connection.
//!
//! Owns the conversation with one client — command framing, the order of replies, the
//! transaction (sender, recipients, data) and the policy checks that need no I/O. It does
//! no I/O itself: the connection actor calls [`Session::ingest`] with whatever bytes the
//! socket gave, sends [`Session::take_output`], and handles [`Session::poll_event`]. The
//! message data is never modified (the actor prepends the `Received:` header).
//!
//! # States and their legal transitions
//!
//! ```text
//! Greeted ──EHLO/HELO──▶ Ready ──MAIL──▶ Mail ──RCPT──▶ Rcpt ──DATA──▶ Data
//!    ▲                    ▲  ▲             │              │              │
//!    │                    │  └─RSET/EHLO───┴──────────────┘    bad data: │ 550/552
//!    │                    └──────────────────────────────────────────────┤
//!    │                    ▲ message_done (250/451/554)            good:  ▼
//!    │                    └────────────────────────────────────── WaitingStore
//!  RSET before EHLO stays Greeted.   QUIT or too many errors: any ──▶ Closed
//! ```
//!
//! # Rules the connection actor relies on
//!
//! - After [`Event::Message`] the session is *paused* (`WaitingStore`): it queues no reply
//!   for the message and processes no further input until [`Session::message_done`], so
//!   replies stay in order under PIPELINING. `ingest` still buffers input meanwhile;
//!   [`Session::buffered`] tells the actor when to stop reading.
//! - Outside `WaitingStore` the input buffer holds at most one partial command line
//!   (`max_line_length + 2` bytes); DATA bytes are consumed as they come.
//! - Command lines end only at CRLF. A bare CR or LF gets `500 5.5.2` at once and the
//!   rest of that line, up to the next CRLF, is discarded unread. A line longer than
//!   `max_line_length` (CRLF excluded) gets `500 5.5.2 Line too long` and is discarded up
//!   to the next CRLF.
//! - Ten 5xx replies to commands in a row (every 2xx/3xx resets the count) are followed
//!   by `421 4.7.0 Too many errors` and [`Event::Close`].
//! - DATA lines may be `max(max_line_length, 998)` bytes long, CRLF excluded.

mod auth;
mod bdat;
mod data;
mod ehlo;
mod line;
mod mail;
mod rcpt;
mod reject;
mod reply;
mod simple;
mod tls;

pub use auth::MAX_SASL_LINE;
pub use reject::Rejected;

use std::collections::VecDeque;

use crate::command::Command;
use crate::data::DataReader;
use crate::envelope::Envelope;

/// Shortest data line limit, whatever `max_line_length` says (RFC 5321 §4.5.3.1.6).
pub const MIN_DATA_LINE_LENGTH: usize = 998;

/// Consecutive 5xx replies to commands after which the session closes, by default.
pub const MAX_ERRORS: u32 = 10;

/// What the server allows one session to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Our name, in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in unstuffed bytes; advertised as `SIZE`.
    pub max_message_size: u64,
    /// Most recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Longest command line, CRLF excluded; data lines may be
    /// `max(max_line_length, 998)` long.
    pub max_line_length: usize,
    /// Whether this client may send mail to any domain; if not, every RCPT gets `550 5.7.1`
    /// (unless it authenticated).
    pub relay_allowed: bool,
    /// STARTTLS is offered (the listener has a certificate).
    pub starttls: bool,
    /// AUTH PLAIN and LOGIN are offered over TLS (there are users).
    pub auth: bool,
    /// MAIL before AUTH gets `530 5.7.0`.
    pub require_auth: bool,
    /// Consecutive 5xx replies after which the session closes with `421 4.7.0`.
    pub max_errors: u32,
    /// Messages accepted on one connection; the next MAIL gets `421 4.7.0` and a close.
    pub max_messages: usize,
}

impl Policy {
    /// A policy with Postfix-like defaults: 10 240 000 bytes, 1000 recipients, 512-byte
    /// command lines, relaying denied.
    pub fn new(hostname: impl Into<String>) -> Policy {
        Policy {
            hostname: hostname.into(),
            max_message_size: 10_240_000,
            max_recipients: 1000,
            max_line_length: 512,
            relay_allowed: false,
            starttls: false,
            auth: false,
            require_auth: false,
            max_errors: MAX_ERRORS,
            max_messages: 1000,
        }
    }

    /// The longest data line accepted, CRLF excluded.
    pub fn data_line_length(&self) -> usize {
        self.max_line_length.max(MIN_DATA_LINE_LENGTH)
    }
}

/// Where the session is in the SMTP conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected (greeting sent); no EHLO/HELO yet.
    Greeted,
    /// EHLO/HELO done, no transaction open.
    Ready,
    /// MAIL accepted, no recipient yet.
    Mail,
    /// At least one RCPT accepted.
    Rcpt,
    /// Reading message data after `354`.
    Data,
    /// A message was handed out as [`Event::Message`]; waiting for `message_done`.
    WaitingStore,
    /// STARTTLS answered `220`; input is discarded until `tls_started`.
    TlsPending,
    /// Credentials were handed out as [`Event::Auth`]; waiting for `auth_done`.
    AuthWaiting,
    /// Reading the octets of a BDAT chunk.
    Chunk,
    /// QUIT answered or the session gave up; input is ignored.
    Closed,
}

/// Something the connection actor must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message was received completely; store it and call [`Session::message_done`].
    Message {
        /// Sender and recipients.
        envelope: Envelope,
        /// The unstuffed data, CRLF line endings exactly as received.
        data: Vec<u8>,
    },
    /// STARTTLS was answered with 220: flush the output, start the TLS handshake, and
    /// call [`Session::tls_started`] once it completes.
    StartTls,
    /// AUTH gave these credentials: check them and call [`Session::auth_done`].
    Auth { user: String, password: String },
    /// QUIT was answered with 221; flush the output and close.
    Quit,
    /// The session gave up (its last reply says why); flush the output and close.
    Close,
}

/// What became of a message handed out as [`Event::Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Durably stored: `250 2.0.0 Ok: queued as {id}`.
    Accepted {
        /// Queue id of the message.
        id: String,
    },
    /// Not stored for a transient reason: `451 4.3.0 {text}`.
    TempFail(String),
    /// Refused for good: `554 5.3.0 {text}`.
    Reject(String),
}

/// One server-side SMTP session.
#[derive(Debug)]
pub struct Session {
    policy: Policy,
    state: State,
    /// The name the client gave in its last EHLO/HELO.
    helo: Option<String>,
    /// Whether that was EHLO.
    esmtp: bool,
    envelope: Envelope,
    reader: Option<DataReader>,
    /// Received but unprocessed input.
    input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<Event>,
    /// Discarding the rest of a bad command line up to the next CRLF.
    discarding: bool,
    /// Consecutive 5xx replies to commands.
    errors: u32,
    /// While set, MAIL FROM is answered with this code, `4.3.1` and text (storage or
    /// memory trouble).
    mail_refusal: Option<(u16, String)>,
    /// The session runs over TLS (after STARTTLS, or implicit).
    tls: bool,
    /// The user the client authenticated as.
    auth_user: Option<String>,
    /// A SASL exchange waiting for the client's response line.
    sasl: Option<auth::Sasl>,
    /// Messages accepted on this connection.
    accepted: usize,
    /// Refusals not yet taken by the actor.
    rejections: Vec<Rejected>,
    /// The BDAT chunk being read.
    chunk: Option<bdat::Chunk>,
    /// The transaction's data so far, once it used BDAT.
    bdat: Option<Vec<u8>>,
    /// A chunk of the transaction was refused: the rest are, the same way.
    bdat_failed: Option<bdat::Refusal>,
}

impl Session {
    /// A new session, in [`State::Greeted`]; call [`Session::greeting`] to queue the banner.
    pub fn new(policy: Policy) -> Session {
        Session {
            policy,
            state: State::Greeted,
            helo: None,
            esmtp: false,
            envelope: Envelope::default(),
            reader: None,
            input: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            discarding: false,
            errors: 0,
            mail_refusal: None,
            tls: false,
            auth_user: None,
            sasl: None,
            accepted: 0,
            rejections: Vec::new(),
            chunk: None,
            bdat: None,
            bdat_failed: None,
        }
    }

    /// Refuse (with `Some(text)`) or accept (`None`) new transactions: while refused,
    /// MAIL FROM gets `452 4.3.1 {text}` (insufficient system storage, RFC 3463).
    pub fn refuse_mail(&mut self, reason: Option<&str>) {
        self.refuse_mail_with(452, reason);
    }

    /// [`refuse_mail`](Self::refuse_mail) with another code: `451 4.3.1` for memory
    /// pressure (RFC 3463: the system is out of a resource, try later).
    pub fn refuse_mail_with(&mut self, code: u16, reason: Option<&str>) {
        let same = match (&self.mail_refusal, reason) {
            (Some((c, r)), Some(new)) => *c == code && r == new,
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.mail_refusal = reason.map(|r| (code, r.to_string()));
        }
    }

    /// Queues the `220 {hostname} ESMTP Impulse` banner.
    pub fn greeting(&mut self) {
        let text = format!("{} ESMTP Impulse", self.policy.hostname);
        reply::single(&mut self.output, 220, None, &text);
    }

    /// Takes client bytes, processing every complete command and data chunk it can.
    pub fn ingest(&mut self, input: &[u8]) {
        match self.state {
            State::Closed | State::TlsPending => {}
            State::WaitingStore | State::AuthWaiting => self.input.extend_from_slice(input),
            _ if self.input.is_empty() => {
                // Fast path: work on the caller's slice, keep only the unprocessed tail.
                let used = self.process(input);
                if self.state != State::Closed {
                    self.input.extend_from_slice(&input[used..]);
                }
            }
            _ => {
                self.input.extend_from_slice(input);
                self.process_buffered();
            }
        }
    }

    /// The reply bytes queued so far, in order; the session's buffer is left empty.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Appends the queued reply bytes to `dst` and clears them, keeping both allocations.
    pub fn drain_output_into(&mut self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.output);
        self.output.clear();
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Answers the message handed out as [`Event::Message`] and resumes processing input.
    /// Ignored unless the session is in [`State::WaitingStore`].
    pub fn message_done(&mut self, outcome: MessageOutcome) {
        if self.state != State::WaitingStore {
            return;
        }
        self.answer_message(outcome);
        self.process_buffered();
    }

    /// Input bytes received but not yet processed.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// True while paused for [`Session::message_done`] or [`Session::auth_done`].
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, State::WaitingStore | State::AuthWaiting)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The policy this session runs under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The name the client gave in EHLO/HELO, for the `Received:` header.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// Whether the client greeted with EHLO (ESMTP) rather than HELO.
    pub fn is_esmtp(&self) -> bool {
        self.esmtp
    }

    /// Processes `self.input`, keeping what could not be processed yet.
    fn process_buffered(&mut self) {
        let input = std::mem::take(&mut self.input);
        let used = self.process(&input);
        if self.state != State::Closed {
            self.input = input;
            self.input.drain(..used);
        }
    }

    /// Processes as much of `input` as possible; returns the bytes used.
    fn process(&mut self, input: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            match self.state {
                State::Closed | State::TlsPending => return input.len(),
                State::WaitingStore | State::AuthWaiting => return pos,
                State::Chunk => {
                    pos += self.chunk_bytes(&input[pos..]);
                    if self.state == State::Chunk {
                        return input.len();
                    }
                }
                State::Data => {
                    let Some(reader) = self.reader.as_mut() else {
                        // Unreachable by construction; recover rather than panic.
                        self.state = State::Ready;
                        continue;
                    };
                    match reader.feed(&input[pos..]) {
                        crate::data::Feed::NeedMore => return input.len(),
                        crate::data::Feed::Done { consumed } => {
                            pos += consumed;
                            self.end_of_data();
                        }
                    }
                }
                _ => {
                    let rest = &input[pos..];
                    let max = if self.sasl.is_some() {
                        MAX_SASL_LINE
                    } else {
                        self.policy.max_line_length
                    };
                    match line::frame(rest, self.discarding, max) {
                        line::Frame::Partial => return pos,
                        line::Frame::Skipped { consumed, ended } => {
                            pos += consumed;
                            self.discarding = !ended;
                        }
                        line::Frame::Bad { error, consumed } => {
                            pos += consumed;
                            self.discarding = true;
                            if self.sasl.take().is_some() {
                                // A bad response line ends the exchange.
                                self.reply(501, "5.5.2", error.text());
                            } else if error == line::LineError::TooLong {
                                self.reject(500, "5.5.2", error.text(), "");
                            } else {
                                self.reply(500, "5.5.2", error.text());
                            }
                        }
                        line::Frame::Line { line, consumed } => {
                            pos += consumed;
                            if self.sasl.is_some() {
                                self.sasl_line(line);
                            } else {
                                self.command(line);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Parses and executes one command line.
    fn command(&mut self, line: &[u8]) {
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(crate::command::ParseError::BadChunk(text)) => return self.bad_chunk(text),
            Err(error) => {
                let (code, enhanced, text) = error.reply();
                self.reply(code, enhanced, text);
                return;
            }
        };
        match command {
            Command::Ehlo(domain) => self.ehlo(domain),
            Command::Helo(domain) => self.helo(domain),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Rset => self.rset(),
            Command::Noop => self.reply(250, "2.0.0", "Ok"),
            Command::Quit => self.quit(),
            Command::Vrfy(_) => self.vrfy(),
            Command::StartTls => self.starttls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Expn | Command::Help | Command::Turn => self.not_implemented(),
        }
    }

    /// Drops the open transaction (as RSET does), keeping the EHLO/HELO state.
    fn reset_transaction(&mut self) {
        self.envelope = Envelope::default();
        self.reader = None;
        self.bdat = None;
        self.bdat_failed = None;
        self.state = if self.helo.is_some() {
            State::Ready
        } else {
            State::Greeted
        };
    }
}
