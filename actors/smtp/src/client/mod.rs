//! The client session: a pure state machine for one outbound SMTP connection that carries
//! any number of messages, one transaction at a time.
//!
//! The outbound connection actor drives it: server bytes go in through
//! [`ClientSession::ingest`], bytes to write come out of [`ClientSession::take_output`],
//! and [`ClientSession::poll_event`] reports what happened. The session never touches a
//! socket, never blocks and never panics on server input.
//!
//! ## States and transitions (the one place they are written down)
//!
//! ```text
//! Greeting --220--> Ehlo --2xx--> Idle            (Ready)
//!                   Ehlo --5xx--> Helo --2xx--> Idle (Ready)
//!                   Ehlo --2xx, STARTTLS wanted and offered--> StartTls
//! StartTls --220--> (StartTls event; driver runs the handshake) --tls_started--> Ehlo
//! StartTls --other, Opportunistic--> Idle (Ready, plaintext)
//! Ehlo --2xx, Required, STARTTLS not offered--> Closed (Failed)
//! Idle --send_message--> [Rset] Mail -> Rcpt* -> Data -> Body -> Idle (Done, Ready)
//! Idle --quit--> Quit --any reply--> Closed       (Closed)
//! any --421 / bad greeting / EHLO+HELO refused / protocol error / abort--> Closed
//!                                   (Done for the tx in flight, then Failed)
//! ```
//!
//! With PIPELINING the session writes `[RSET] MAIL RCPT… DATA` at once and matches the
//! replies in order; without it, one command per reply. The state is the command whose
//! reply is awaited next. Files: `handshake.rs` (greeting, EHLO, HELO), `transaction.rs`
//! (RSET, MAIL, RCPT, DATA, end of data), `capabilities.rs` (EHLO keywords), `outcome.rs`
//! (what goes in and comes out per message), `starttls.rs` (the TLS policy).
//!
//! After the `220` to STARTTLS nothing more the server sent in plaintext is believed:
//! the rest of that input is thrown away, and the session starts again with EHLO once
//! the driver says TLS is up (RFC 3207 §4.2).

mod capabilities;
mod handshake;
mod outcome;
mod starttls;
mod transaction;

use std::collections::VecDeque;

pub use capabilities::Capabilities;
pub use outcome::{local, NotIdle, OutboundTx, RcptResult, TxOutcome};
pub use starttls::TlsPolicy;
pub use transaction::PIPELINED_BDAT_MAX;

use crate::reply::{Reply, ReplyParser};
use transaction::{Rcpt, Tx};

/// Where the session is: the command whose reply is awaited, or Idle / Closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Waiting for the server's 220 greeting.
    Greeting,
    /// EHLO sent.
    Ehlo,
    /// HELO sent after EHLO was refused.
    Helo,
    /// STARTTLS sent; or answered 220 and the handshake is under way.
    StartTls,
    /// Ready for `send_message` (or `quit`).
    Idle,
    /// MAIL FROM sent.
    Mail,
    /// RCPT TO sent.
    Rcpt,
    /// DATA sent, waiting for 354.
    Data,
    /// Body and terminator sent, waiting for the final reply.
    Body,
    /// RSET sent.
    Rset,
    /// QUIT sent.
    Quit,
    /// Finished or failed: the connection is to be closed; input is ignored.
    Closed,
}

/// What the session reports to its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The session is idle and can take a message (after EHLO/HELO or a finished one).
    Ready,
    /// A message's transaction ended; one result per recipient.
    Done {
        /// The `OutboundTx::id`.
        id: u64,
        /// Per-recipient results.
        outcome: TxOutcome,
    },
    /// The connection is unusable and must be closed. Any message in flight was reported
    /// just before as `Done`: recipients the server had already refused at RCPT keep that
    /// result, every other recipient is transient (retried later, so nothing is lost).
    Failed {
        /// The server reply that caused it, if any.
        reply: Option<Reply>,
        /// Human-readable cause.
        reason: String,
    },
    /// STARTTLS was accepted: run the TLS handshake now, then call
    /// [`ClientSession::tls_started`].
    StartTls,
    /// QUIT was answered; close the connection.
    Closed,
}

/// The reply the session expects next, one entry per command sent and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Rset,
    Mail,
    /// RCPT for the recipient at this index of the transaction.
    Rcpt(usize),
    Data,
    Body,
    /// `BDAT … LAST` with the whole body (CHUNKING): its reply is the final one.
    Bdat,
    Quit,
}

/// One outbound SMTP connection's protocol state.
#[derive(Debug)]
pub struct ClientSession {
    ehlo_name: String,
    parser: ReplyParser,
    /// Scratch buffer for parsed replies, kept to reuse its allocation.
    replies: Vec<Reply>,
    expects: VecDeque<Expect>,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    caps: Capabilities,
    tx: Option<Tx>,
    /// A transaction may be left open on the server: send RSET before the next MAIL.
    need_rset: bool,
    /// `quit` was called: send QUIT as soon as the session is idle.
    quit_requested: bool,
    closed: bool,
    tls: TlsPolicy,
    /// TLS is up (after `tls_started`).
    tls_active: bool,
    /// STARTTLS got 220: input is ignored until `tls_started`.
    awaiting_tls: bool,
}

impl ClientSession {
    /// A session waiting for the greeting. `ehlo_name` is sent with EHLO/HELO; bytes that
    /// are not printable ASCII are dropped, it is cut to 255 bytes, and an empty name
    /// becomes `localhost`.
    pub fn new(ehlo_name: String) -> Self {
        Self::with_tls(ehlo_name, TlsPolicy::Disabled)
    }

    /// A session that uses STARTTLS as `tls` says.
    pub fn with_tls(ehlo_name: String, tls: TlsPolicy) -> Self {
        let mut name: String = ehlo_name.chars().filter(|c| c.is_ascii_graphic()).collect();
        name.truncate(255);
        if name.is_empty() {
            name.push_str("localhost");
        }
        Self {
            ehlo_name: name,
            parser: ReplyParser::new(),
            replies: Vec::new(),
            expects: VecDeque::from([Expect::Greeting]),
            out: Vec::new(),
            events: VecDeque::new(),
            caps: Capabilities::default(),
            tx: None,
            need_rset: false,
            quit_requested: false,
            closed: false,
            tls,
            tls_active: false,
            awaiting_tls: false,
        }
    }

    /// Feeds bytes received from the server.
    pub fn ingest(&mut self, input: &[u8]) {
        if self.closed || self.awaiting_tls {
            return;
        }
        let mut replies = std::mem::take(&mut self.replies);
        let parsed = self.parser.feed(input, &mut replies);
        for reply in replies.drain(..) {
            if self.closed {
                break;
            }
            self.on_reply(reply);
            if self.awaiting_tls {
                // Whatever followed the 220 in plaintext is not believed.
                self.parser = ReplyParser::new();
                break;
            }
        }
        replies.clear();
        self.replies = replies;
        if let Err(e) = parsed {
            if !self.awaiting_tls {
                self.fail(None, format!("protocol error: {e}"));
            }
        }
    }

    /// Bytes to write to the socket, in order.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Starts a transaction. Valid only when idle (after `Ready`, before `quit`);
    /// otherwise the message is handed back.
    pub fn send_message(&mut self, tx: OutboundTx) -> Result<(), NotIdle> {
        if self.state() != ClientState::Idle || self.quit_requested || self.tx.is_some() {
            return Err(NotIdle(Box::new(tx)));
        }
        self.start_transaction(tx);
        Ok(())
    }

    /// Ends the session politely: QUIT now if idle, else as soon as the session becomes
    /// idle (after the message in flight). `Closed` follows the server's answer.
    pub fn quit(&mut self) {
        if self.closed || self.quit_requested {
            return;
        }
        self.quit_requested = true;
        if self.state() == ClientState::Idle {
            self.send_quit();
        }
    }

    /// The connection broke (EOF, timeout, write error): report the message in flight as
    /// transient and emit `Failed`. No effect once closed.
    pub fn abort(&mut self, reason: &str) {
        self.fail(None, reason);
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        if self.closed {
            return ClientState::Closed;
        }
        match self.expects.front() {
            None if self.awaiting_tls => ClientState::StartTls,
            None => ClientState::Idle,
            Some(Expect::Greeting) => ClientState::Greeting,
            Some(Expect::Ehlo) => ClientState::Ehlo,
            Some(Expect::Helo) => ClientState::Helo,
            Some(Expect::StartTls) => ClientState::StartTls,
            Some(Expect::Rset) => ClientState::Rset,
            Some(Expect::Mail) => ClientState::Mail,
            Some(Expect::Rcpt(_)) => ClientState::Rcpt,
            Some(Expect::Data) => ClientState::Data,
            Some(Expect::Body) | Some(Expect::Bdat) => ClientState::Body,
            Some(Expect::Quit) => ClientState::Quit,
        }
    }

    /// What the server advertised in its EHLO reply (empty before it, or after HELO).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The id of the message in flight, if any.
    pub fn in_flight(&self) -> Option<u64> {
        self.tx.as_ref().map(|tx| tx.id)
    }

    /// Dispatches one complete reply to the handler of the command it answers.
    fn on_reply(&mut self, reply: Reply) {
        let Some(expect) = self.expects.pop_front() else {
            self.fail(Some(reply), "unsolicited reply while idle");
            return;
        };
        if expect == Expect::Quit {
            self.closed = true;
            self.expects.clear();
            self.events.push_back(ClientEvent::Closed);
            return;
        }
        if reply.code == 421 {
            self.fail(Some(reply), "server is closing the connection (421)");
            return;
        }
        match expect {
            Expect::Greeting => self.on_greeting(reply),
            Expect::Ehlo => self.on_ehlo(reply),
            Expect::Helo => self.on_helo(reply),
            Expect::StartTls => self.on_starttls(reply),
            Expect::Rset => self.on_rset(reply),
            Expect::Mail => self.on_mail(reply),
            Expect::Rcpt(index) => self.on_rcpt(index, reply),
            Expect::Data => self.on_data(reply),
            Expect::Body => self.on_body(reply),
            Expect::Bdat => self.on_bdat(reply),
            Expect::Quit => {}
        }
    }

    /// Nothing is awaited any more: report `Ready`, or send the requested QUIT.
    fn become_idle(&mut self) {
        if self.quit_requested {
            self.send_quit();
        } else {
            self.events.push_back(ClientEvent::Ready);
        }
    }

    fn send_quit(&mut self) {
        self.out.extend_from_slice(b"QUIT\r\n");
        self.expects.push_back(Expect::Quit);
    }

    /// The connection is unusable: report the message in flight (recipients without a
    /// final RCPT answer become transient), then `Failed`.
    fn fail(&mut self, reply: Option<Reply>, reason: impl Into<String>) {
        let reason = reason.into();
        if self.closed {
            return;
        }
        self.closed = true;
        self.expects.clear();
        if let Some(tx) = self.tx.take() {
            let transient = reply
                .clone()
                .unwrap_or_else(|| outcome::local::connection_failed(&reason));
            let recipients = tx
                .rcpts
                .into_iter()
                .map(|(address, state)| {
                    let result = match state {
                        Rcpt::Final(result) => result,
                        Rcpt::Pending | Rcpt::Accepted => RcptResult::Transient(transient.clone()),
                    };
                    (address, result)
                })
                .collect();
            self.events.push_back(ClientEvent::Done {
                id: tx.id,
                outcome: TxOutcome {
                    recipients,
                    dsn_relayed: self.caps.dsn,
                },
            });
        }
        self.events.push_back(ClientEvent::Failed { reply, reason });
    }
}
