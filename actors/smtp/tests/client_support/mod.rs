//! Shared harness for the client session tests: a scripted fake server.
//!
//! A script is a list of [`Step`]s: bytes the server sends, bytes the client must have
//! written since the previous check, calls on the session, and the events expected since
//! the previous check (described compactly by [`describe`]). [`run`] plays a script with
//! the server bytes cut up as a [`Feed`] says, so one script checks every split.

#![allow(dead_code)]

pub mod chunking;
pub mod scripts;

use bytes::Bytes;
use impulse_smtp::client::{ClientEvent, ClientSession, ClientState, OutboundTx, RcptResult};
use impulse_smtp::Envelope;

/// A message to send in a script.
#[derive(Debug, Clone, Copy)]
pub struct Msg {
    pub id: u64,
    pub from: &'static str,
    pub to: &'static [&'static str],
    pub body: &'static str,
    pub eight_bit: bool,
    /// DSN parameters in their stored form ([`impulse_smtp::dsn::DsnParams::encode`]).
    pub dsn: &'static str,
}

/// A 7-bit message.
pub const fn msg(
    id: u64,
    from: &'static str,
    to: &'static [&'static str],
    body: &'static str,
) -> Msg {
    Msg {
        id,
        from,
        to,
        body,
        eight_bit: false,
        dsn: "",
    }
}

impl Msg {
    pub fn tx(&self) -> OutboundTx {
        OutboundTx {
            id: self.id,
            envelope: Envelope {
                sender: self.from.to_owned(),
                recipients: self.to.iter().map(|s| (*s).to_owned()).collect(),
                body_8bit: self.eight_bit,
                declared_size: None,
                smtputf8: false,
                dsn: impulse_smtp::dsn::DsnParams::decode(self.dsn),
            },
            body: Bytes::from_static(self.body.as_bytes()),
        }
    }
}

/// One step of a script.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// The server sends these bytes.
    S(&'static str),
    /// The client has written exactly these bytes since the last `C`.
    C(&'static str),
    /// `send_message` succeeds.
    Send(Msg),
    /// `send_message` is refused (not idle).
    SendRefused(Msg),
    /// `quit()`.
    Quit,
    /// `abort(reason)`.
    Abort(&'static str),
    /// The events since the last `E`, described.
    E(&'static [&'static str]),
    /// The session is in this state.
    State(ClientState),
}

/// How server bytes are cut before `ingest`.
#[derive(Debug, Clone, Copy)]
pub enum Feed {
    /// Each `S` step in one piece.
    Whole,
    /// Each `S` step in two pieces, cut at this offset (clamped).
    SplitAt(usize),
    /// Each `S` step in pieces of this size.
    Chunks(usize),
}

/// An event in one line: `ready`, `closed`, `failed 421` / `failed -`,
/// `done 7: a@x=D250 b@y=P550` (D delivered, T transient, P permanent).
pub fn describe(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Ready => "ready".to_owned(),
        ClientEvent::Closed => "closed".to_owned(),
        ClientEvent::StartTls => "starttls".to_owned(),
        ClientEvent::Failed { reply, .. } => match reply {
            Some(r) => format!("failed {}", r.code),
            None => "failed -".to_owned(),
        },
        ClientEvent::Done { id, outcome } => {
            let mut s = format!("done {id}:");
            if outcome.dsn_relayed {
                s.push_str(" (dsn relayed)");
            }
            for (rcpt, result) in &outcome.recipients {
                let kind = match result {
                    RcptResult::Delivered(_) => 'D',
                    RcptResult::Transient(_) => 'T',
                    RcptResult::Permanent(_) => 'P',
                };
                s.push_str(&format!(" {rcpt}={kind}{}", result.reply().code));
            }
            s
        }
    }
}

fn feed(session: &mut ClientSession, bytes: &[u8], how: Feed) {
    match how {
        Feed::Whole => session.ingest(bytes),
        Feed::SplitAt(at) => {
            let at = at.min(bytes.len());
            session.ingest(&bytes[..at]);
            session.ingest(&bytes[at..]);
        }
        Feed::Chunks(size) => {
            for chunk in bytes.chunks(size.max(1)) {
                session.ingest(chunk);
            }
        }
    }
}

fn drain(session: &mut ClientSession) -> Vec<String> {
    std::iter::from_fn(|| session.poll_event())
        .map(|e| describe(&e))
        .collect()
}

/// Plays `script` against a fresh session named `client.example`; panics with the step
/// number on the first mismatch. At the end no output or event may be left unchecked.
pub fn run(name: &str, script: &[Step], how: Feed) -> ClientSession {
    let mut session = ClientSession::new("client.example".to_owned());
    for (n, step) in script.iter().enumerate() {
        let at = format!("{name}, step {n} ({step:?}), feed {how:?}");
        match *step {
            Step::S(bytes) => feed(&mut session, bytes.as_bytes(), how),
            Step::C(want) => {
                let got = session.take_output();
                assert_eq!(String::from_utf8_lossy(&got), want, "{at}");
            }
            Step::Send(m) => {
                assert!(session.send_message(m.tx()).is_ok(), "{at}: refused");
            }
            Step::SendRefused(m) => {
                let err = session.send_message(m.tx()).expect_err(&at);
                assert_eq!(err.0.id, m.id, "{at}: message handed back");
            }
            Step::Quit => session.quit(),
            Step::Abort(reason) => session.abort(reason),
            Step::E(want) => assert_eq!(drain(&mut session), want.to_vec(), "{at}"),
            Step::State(want) => assert_eq!(session.state(), want, "{at}"),
        }
    }
    let at = format!("{name}, end of script, feed {how:?}");
    assert_eq!(String::from_utf8_lossy(&session.take_output()), "", "{at}");
    assert_eq!(drain(&mut session), Vec::<String>::new(), "{at}");
    session
}

/// Longest server step of a script.
pub fn longest_server_step(script: &[Step]) -> usize {
    script
        .iter()
        .map(|s| match s {
            Step::S(b) => b.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}
