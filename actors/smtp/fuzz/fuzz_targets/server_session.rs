//! Fuzz target: the server session fed arbitrary bytes in arbitrary chunks.
//!
//! The first (up to) eight input bytes choose the chunk sizes and when stored messages
//! are answered; the rest is the client's byte stream. Besides "never panics", the target
//! checks the session's contract: the same stream gives the same replies and events
//! whether it arrives whole or chunked, and the input buffer stays within one command line
//! except while a message is waiting for `message_done`.
#![no_main]

use impulse_smtp::server::{Event, MessageOutcome, Policy, Session};
use libfuzzer_sys::fuzz_target;

fn policy() -> Policy {
    Policy {
        hostname: "fuzz.test".into(),
        max_message_size: 4096,
        max_recipients: 4,
        max_line_length: 64,
        relay_allowed: false,
        starttls: true,
        auth: true,
        require_auth: true,
        max_errors: 10,
        max_messages: 8,
    }
}

/// Feeds `stream` in chunks sized by `control`; returns all output and events.
fn drive(control: &[u8], stream: &[u8]) -> (Vec<u8>, Vec<Event>) {
    // A SASL response line may be longer than a command line.
    let bound = impulse_smtp::server::MAX_SASL_LINE + 2;
    let mut session = Session::new(policy());
    // Implicit TLS: AUTH is reachable, and the result does not depend on where the
    // input was split (a STARTTLS handshake would make it depend: what follows it in
    // the same read is discarded).
    session.set_implicit_tls();
    session.greeting();
    let mut output = session.take_output();
    let mut events = Vec::new();
    let mut start = 0;
    let mut step = 0usize;
    while start < stream.len() {
        let byte = control
            .get(step % control.len().max(1))
            .copied()
            .unwrap_or(0xff);
        let size = if control.is_empty() {
            stream.len()
        } else {
            1 + usize::from(byte & 0x3f)
        };
        let end = (start + size).min(stream.len());
        session.ingest(&stream[start..end]);
        start = end;
        output.extend(session.take_output());
        // Bit 6 of the control byte: answer stored messages late.
        if byte & 0x40 == 0 {
            answer(&mut session, &mut output, &mut events);
        }
        assert!(session.is_waiting() || session.buffered() <= bound);
        step += 1;
    }
    answer(&mut session, &mut output, &mut events);
    assert!(!session.is_waiting());
    (output, events)
}

/// Handles every pending event; stored messages are accepted with a counter id, the
/// password `pw` is right.
fn answer(session: &mut Session, output: &mut Vec<u8>, events: &mut Vec<Event>) {
    while let Some(event) = session.poll_event() {
        events.push(event.clone());
        match event {
            Event::Message { .. } => {
                let id = events.len().to_string();
                session.message_done(MessageOutcome::Accepted { id });
            }
            Event::Auth { user, password } => session.auth_done((password == "pw").then_some(user)),
            _ => {}
        }
        output.extend(session.take_output());
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.len().min(8);
    let (control, stream) = data.split_at(split);
    let chunked = drive(control, stream);
    let whole = drive(&[], stream);
    assert_eq!(chunked, whole);
});
