//! SMTP smuggling over a real socket: the real `impulsed` on port 0, relaying to a
//! recording sink on loopback.
//!
//! Inside DATA, each payload that a lax parser takes for the end of data (`LF . LF`,
//! `CR . CR`, `LF . CRLF`, `CRLF . LF`, `CRLF . CR`) is followed by a smuggled second
//! transaction, sent both in one write and one byte at a time around the payload. The
//! fake terminator never ends the data: the whole message is refused with one reply (550
//! 5.6.0 if 550), the smuggled MAIL / RCPT / DATA are never answered, neither the carrier
//! nor the smuggled recipient reaches the sink or the log, and the daemon still relays a
//! normal message end to end afterwards.

mod common;

use std::time::Duration;

use common::abuse::{assert_never_seen, assert_serves, expect, open_data, Client, Reply};
use common::relay;

/// The smuggling payloads: each looks like an end of data to a lax parser.
const SMUGGLING: [(&str, &[u8]); 5] = [
    ("lf-dot-lf", b"\n.\n"),
    ("cr-dot-cr", b"\r.\r"),
    ("lf-dot-crlf", b"\n.\r\n"),
    ("crlf-dot-lf", b"\r\n.\n"),
    ("crlf-dot-cr", b"\r\n.\r"),
];

/// The DATA stream of one smuggling attempt: a message, the fake terminator, a smuggled
/// second transaction, and the real terminator.
fn smuggling_stream(payload: &[u8], smuggled_rcpt: &str) -> Vec<u8> {
    let mut data = b"From: victim@client.test\r\nSubject: smuggling\r\n\r\nfirst part".to_vec();
    data.extend_from_slice(payload);
    data.extend_from_slice(
        format!(
            "MAIL FROM:<admin@client.test>\r\n\
             RCPT TO:<{smuggled_rcpt}>\r\n\
             DATA\r\n\
             From: admin@client.test\r\n\
             Subject: smuggled\r\n\
             \r\n\
             smuggled body\r\n\
             .\r\n"
        )
        .as_bytes(),
    );
    data
}

#[test]
fn smuggling_payloads_never_end_data_and_the_message_is_refused() {
    let (_dir, sink, daemon) = relay("");
    for (name, payload) in SMUGGLING {
        for split in [false, true] {
            let tag = format!("{name}{}", if split { "-split" } else { "" });
            let carrier = format!("carrier-{tag}@example.com");
            let smuggled = format!("smuggled-{tag}@example.com");
            let mut c = Client::connect(daemon.smtp);
            open_data(&mut c, &carrier);
            let stream = smuggling_stream(payload, &smuggled);
            if split {
                // One byte per write around the payload, so it may straddle reads.
                let at = stream
                    .windows(payload.len())
                    .position(|w| w == payload)
                    .unwrap();
                c.send(&stream[..at.saturating_sub(2)]);
                for b in &stream[at.saturating_sub(2)..at + payload.len() + 6] {
                    c.send(std::slice::from_ref(b));
                    std::thread::sleep(Duration::from_millis(2));
                }
                c.send(&stream[at + payload.len() + 6..]);
            } else {
                c.send(&stream);
            }
            // Exactly one reply for the whole stream: the message refused.
            let r = c.reply();
            let code = r.code();
            assert!(
                (500..600).contains(&code),
                "{tag}: the message with a bare line ending was not refused: {r:?}"
            );
            if code == 550 {
                let Reply::Reply(_, text) = &r else {
                    unreachable!()
                };
                assert!(text.starts_with("550 5.6.0"), "{tag}: {text}");
            }
            // Nothing else was answered: the smuggled MAIL/RCPT/DATA were message text.
            expect(
                c.cmd("NOOP"),
                250,
                &format!("{tag}: NOOP right after the refusal"),
            );
            // The transaction is over (refused as a whole).
            let r = c.cmd("DATA");
            assert!(
                matches!(r.code(), 503 | 554),
                "{tag}: DATA after the refusal: {r:?}"
            );
            expect(c.cmd("QUIT"), 221, &format!("{tag}: QUIT"));
            assert_serves(&daemon, &sink, &format!("smuggling-{tag}"));
            assert_never_seen(&daemon, &sink, &smuggled);
            assert_never_seen(&daemon, &sink, &carrier);
        }
    }
    // No delivered message contains the smuggled text either.
    for m in sink.messages() {
        assert!(
            !String::from_utf8_lossy(&m.data).contains("smuggled body"),
            "smuggled text was delivered: {m:#?}"
        );
    }
}
