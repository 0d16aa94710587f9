//! Shared helpers for the server session tests: a test policy, a driver that feeds a
//! session chunk by chunk and answers stored messages, and chunk-splitting utilities.
#![allow(dead_code)]

use impulse_smtp::server::{Event, MessageOutcome, Policy, Session};

/// Small limits so the limit paths are easy to reach.
pub fn policy() -> Policy {
    Policy {
        hostname: "mx.test".into(),
        max_message_size: 1000,
        max_recipients: 3,
        max_line_length: 64,
        relay_allowed: true,
        starttls: false,
        auth: false,
        require_auth: false,
        max_errors: impulse_smtp::server::MAX_ERRORS,
        max_messages: 1000,
    }
}

/// [`policy`] for a submission listener: STARTTLS, AUTH, no relaying without it.
pub fn submission() -> Policy {
    Policy {
        starttls: true,
        auth: true,
        relay_allowed: false,
        ..policy()
    }
}

/// The password [`drain_events`] accepts for every user.
pub const PASSWORD: &str = "secret";

/// What a session produced: every reply byte and every event, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Run {
    pub output: Vec<u8>,
    pub events: Vec<Event>,
}

impl Run {
    /// The output as text, for readable assertions.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    /// The reply lines, without CRLF.
    pub fn lines(&self) -> Vec<String> {
        self.text()
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The messages received, as (sender, recipients, data).
    pub fn messages(&self) -> Vec<(String, Vec<String>, Vec<u8>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message { envelope, data } => Some((
                    envelope.sender.clone(),
                    envelope.recipients.clone(),
                    data.clone(),
                )),
                _ => None,
            })
            .collect()
    }
}

/// Handles pending events; stored messages get `Accepted { id: "Q<n>" }`, STARTTLS
/// completes at once, credentials with [`PASSWORD`] are right.
pub fn drain_events(session: &mut Session, run: &mut Run) {
    while let Some(event) = session.poll_event() {
        run.events.push(event.clone());
        match event {
            Event::Message { .. } => {
                let id = format!("Q{}", run.events.len());
                session.message_done(MessageOutcome::Accepted { id });
            }
            Event::StartTls => {
                run.output.extend(session.take_output());
                run.output.extend_from_slice(b"<TLS>\r\n");
                session.tls_started();
            }
            Event::Auth { user, password } => {
                session.auth_done((password == PASSWORD).then_some(user));
            }
            _ => {}
        }
        run.output.extend(session.take_output());
    }
}

/// Greets, feeds the chunks one by one answering messages at once, and collects output.
pub fn run_chunks<'a>(policy: Policy, chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut session = Session::new(policy);
    session.greeting();
    let mut run = Run::default();
    run.output.extend(session.take_output());
    for chunk in chunks {
        session.ingest(chunk);
        run.output.extend(session.take_output());
        drain_events(&mut session, &mut run);
    }
    run
}

/// Feeds the whole input at once.
pub fn run(policy: Policy, input: &[u8]) -> Run {
    run_chunks(policy, [input])
}

/// Feeds the input split at the given (sorted) cut positions.
pub fn run_split(policy: Policy, input: &[u8], cuts: &[usize]) -> Run {
    let mut chunks = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.clamp(start, input.len());
        chunks.push(&input[start..cut]);
        start = cut;
    }
    chunks.push(&input[start..]);
    run_chunks(policy, chunks)
}

/// Feeds every input byte separately.
pub fn run_bytewise(policy: Policy, input: &[u8]) -> Run {
    run_chunks(policy, input.chunks(1))
}

/// A tiny deterministic PRNG (xorshift64*) for random chunking without extra crates.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Sorted random cut positions in `0..=len`.
    pub fn cuts(&mut self, len: usize, count: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = (0..count)
            .map(|_| (self.next() % (len as u64 + 1)) as usize)
            .collect();
        cuts.sort_unstable();
        cuts
    }
}

/// Builds a transcript from lines, adding CRLF to each.
pub fn crlf(lines: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}
