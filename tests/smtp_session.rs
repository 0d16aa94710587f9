//! SMTP server conformance over a real socket: the real `impulsed` on port 0, relaying
//! to a recording sink on loopback.
//!
//! What the issue asks of the server session: EHLO/HELO with PIPELINING, SIZE, 8BITMIME
//! and ENHANCEDSTATUSCODES advertised; each verb's reply (MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT, VRFY 252); sequence errors 503, syntax errors 501, unknown verbs 500/502;
//! replies in order when a whole conversation (two messages) arrives in one write;
//! dot-stuffing undone so the sink receives the message byte-identical apart from the
//! prepended `Received:` header; RSET clearing the transaction; QUIT answered 221 and
//! the connection closed.

mod common;

use std::io::Write;
use std::time::Duration;

use common::relay::received_header_problem;
use common::{expect, relay, wait_for_rcpt, RawClient};

const WAIT: Duration = Duration::from_secs(30);

/// The part of the sink's copy that the daemon prepended, after checking that the rest is
/// exactly `original`.
#[track_caller]
fn prepended<'a>(delivered: &'a [u8], original: &[u8]) -> &'a [u8] {
    assert!(
        delivered.ends_with(original),
        "the delivered message does not end with the original:\n--- delivered ---\n{}\n--- original ---\n{}",
        String::from_utf8_lossy(delivered),
        String::from_utf8_lossy(original)
    );
    &delivered[..delivered.len() - original.len()]
}

/// Check that `prefix` is exactly one `Received:` header field (folded lines allowed).
#[track_caller]
fn assert_one_received_header(prefix: &[u8]) {
    if let Some(problem) = received_header_problem(&String::from_utf8_lossy(prefix)) {
        panic!("{problem}");
    }
}

/// Send each `(command, code, what)` in turn and expect its reply code (`what` names the
/// step in a failure).
#[track_caller]
fn converse(c: &mut RawClient, steps: &[(&str, u16, &str)]) {
    for &(line, code, what) in steps {
        expect(c.cmd(line), code, what);
    }
}

/// Each of `bad` gets a syntax error (501), and a NOOP after it still gets 250.
#[track_caller]
fn assert_syntax_errors(c: &mut RawClient, bad: &[&str]) {
    for bad in bad {
        let reply = c.cmd(bad);
        assert_eq!(
            reply.0, 501,
            "{bad:?} should be a syntax error (501): {reply:?}"
        );
        // Keep the session's error count low: the server may close after many errors.
        expect(c.cmd("NOOP"), 250, "NOOP between syntax errors");
    }
}

/// Dot-stuff `body` (CRLF lines) for the wire and append the terminator.
fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[test]
fn ehlo_advertises_the_required_extensions() {
    let (_dir, _sink, daemon) = relay("smtp: (max_message_size: 123456),");
    let mut c = RawClient::connect(daemon.smtp);
    let text = expect(c.cmd("EHLO client.test"), 250, "EHLO");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 5, "EHLO reply too short: {text}");
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        assert!(
            line.starts_with("250") && line.as_bytes()[3] == sep as u8,
            "malformed multi-line EHLO reply: {text}"
        );
    }
    let keywords: Vec<String> = lines[1..]
        .iter()
        .map(|l| l[4..].trim().to_ascii_uppercase())
        .collect();
    for ext in ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"] {
        assert!(
            keywords.iter().any(|k| k == ext),
            "{ext} not advertised: {text}"
        );
    }
    assert!(
        keywords.iter().any(|k| k == "SIZE 123456"),
        "SIZE with the configured maximum not advertised: {text}"
    );

    // HELO is answered with a single 250 line, and mail can follow it.
    let mut c = RawClient::connect(daemon.smtp);
    let text = expect(c.cmd("HELO client.test"), 250, "HELO");
    assert!(
        !text.contains('\n'),
        "HELO reply should be one line: {text}"
    );
    expect(
        c.cmd("MAIL FROM:<helo@client.test>"),
        250,
        "MAIL after HELO",
    );
    expect(c.cmd("QUIT"), 221, "QUIT");
}

#[test]
fn every_verb_gets_its_reply() {
    let (_dir, sink, daemon) = relay("");
    let mut c = RawClient::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    expect(c.cmd("NOOP"), 250, "NOOP");
    expect(c.cmd("NOOP anything at all"), 250, "NOOP with an argument");
    let text = expect(c.cmd("VRFY postmaster"), 252, "VRFY");
    assert!(
        text.starts_with("252 2."),
        "VRFY without enhanced code: {text}"
    );
    expect(c.cmd("RSET"), 250, "RSET");
    let text = expect(c.cmd("MAIL FROM:<sender@client.test>"), 250, "MAIL");
    assert!(
        text.starts_with("250 2.1.0"),
        "MAIL reply lacks 2.1.0: {text}"
    );
    let text = expect(c.cmd("RCPT TO:<verbs@example.com>"), 250, "RCPT");
    assert!(
        text.starts_with("250 2.1.5"),
        "RCPT reply lacks 2.1.5: {text}"
    );
    expect(c.cmd("DATA"), 354, "DATA");
    let body = b"Subject: verbs\r\n\r\nhello\r\n";
    c.send(&stuffed(body));
    let text = expect(c.reply(), 250, "end of DATA");
    assert!(
        text.starts_with("250 2."),
        "end of data lacks an enhanced code: {text}"
    );
    // Lower-case verbs are the same verbs.
    expect(c.cmd("noop"), 250, "lower-case noop");
    // Unknown and unimplemented verbs.
    let text = expect(c.cmd("FROB nicate"), 500, "unknown verb");
    assert!(
        text.starts_with("500 5."),
        "unknown verb lacks 5.x.x: {text}"
    );
    assert_eq!(c.cmd("EXPN staff").0, 502, "EXPN is not implemented");
    let help = c.cmd("HELP");
    assert!(
        matches!(help.0, 214 | 502),
        "HELP: 214 or 502 expected, got {help:?}"
    );
    // Syntax errors.
    assert_syntax_errors(
        &mut c,
        &[
            "EHLO",
            "MAIL FROM:sender@client.test",
            "MAIL TO:<sender@client.test>",
            "MAIL FROM:<unterminated@client.test",
            "VRFY",
            "DATA now",
            "QUIT please",
            "RSET everything",
        ],
    );
    expect(c.cmd("MAIL FROM:<sender@client.test>"), 250, "MAIL");
    assert_syntax_errors(
        &mut c,
        &[
            "RCPT TO:verbs@example.com",
            "RCPT FROM:<verbs@example.com>",
            "RCPT TO:<>",
        ],
    );
    expect(c.cmd("QUIT"), 221, "QUIT");
    assert!(c.is_closed(), "connection still open after QUIT");

    let m = wait_for_rcpt(&sink, &daemon, "verbs@example.com");
    assert_eq!(m.sender, "sender@client.test");
    assert_eq!(m.recipients, vec!["verbs@example.com".to_string()]);
    assert_one_received_header(prepended(&m.data, body));
}

#[test]
fn out_of_sequence_commands_get_503() {
    let (_dir, _sink, daemon) = relay("");
    let mut c = RawClient::connect(daemon.smtp);
    // Nothing before EHLO/HELO.
    converse(
        &mut c,
        &[
            ("MAIL FROM:<a@client.test>", 503, "MAIL before EHLO"),
            ("RCPT TO:<seq@example.com>", 503, "RCPT before EHLO"),
            ("DATA", 503, "DATA before EHLO"),
            ("EHLO client.test", 250, "EHLO"),
            // No RCPT or DATA without MAIL.
            ("RCPT TO:<seq@example.com>", 503, "RCPT before MAIL"),
            ("DATA", 503, "DATA before MAIL"),
            ("MAIL FROM:<a@client.test>", 250, "MAIL"),
            // No nested MAIL.
            ("MAIL FROM:<b@client.test>", 503, "nested MAIL"),
        ],
    );
    // DATA without an accepted recipient: 503 (or 554 "no valid recipients", RFC 5321
    // §3.3 allows both).
    let reply = c.cmd("DATA");
    assert!(matches!(reply.0, 503 | 554), "DATA without RCPT: {reply:?}");
    converse(
        &mut c,
        &[
            ("NOOP", 250, "still in the session"),
            // The transaction is still open: RCPT works, DATA opens.
            ("RCPT TO:<seq@example.com>", 250, "RCPT after MAIL"),
            ("RSET", 250, "RSET"),
            // After RSET the transaction is gone again.
            ("RCPT TO:<seq@example.com>", 503, "RCPT after RSET"),
            ("DATA", 503, "DATA after RSET"),
            ("QUIT", 221, "QUIT"),
        ],
    );
    assert!(c.is_closed(), "connection still open after QUIT");
}

#[test]
fn a_whole_pipelined_conversation_in_one_write_is_answered_in_order() {
    let (_dir, sink, daemon) = relay("");
    let mut c = RawClient::connect(daemon.smtp);
    let body1: &[u8] = b"Subject: first\r\n\r\nfirst message\r\n.dotted line\r\n";
    let body2: &[u8] = b"Subject: second\r\n\r\nsecond message\r\n";
    let mut batch = Vec::new();
    batch.extend_from_slice(
        b"EHLO client.test\r\n\
          MAIL FROM:<pipe@client.test>\r\n\
          RCPT TO:<pipe-a@example.com>\r\n\
          RCPT TO:not-an-address\r\n\
          RCPT TO:<pipe-b@example.org>\r\n\
          DATA\r\n",
    );
    batch.extend_from_slice(&stuffed(body1));
    batch.extend_from_slice(
        b"NOOP\r\n\
          MAIL FROM:<pipe2@client.test>\r\n\
          RCPT TO:<pipe-c@example.com>\r\n\
          DATA\r\n",
    );
    batch.extend_from_slice(&stuffed(body2));
    batch.extend_from_slice(b"RSET\r\nVRFY someone\r\nDATA\r\nQUIT\r\n");
    c.stream.write_all(&batch).unwrap();

    let expected: [(u16, &str); 15] = [
        (250, "EHLO"),
        (250, "MAIL 1"),
        (250, "RCPT pipe-a"),
        (501, "RCPT without brackets"),
        (250, "RCPT pipe-b"),
        (354, "DATA 1"),
        (250, "end of message 1"),
        (250, "NOOP"),
        (250, "MAIL 2"),
        (250, "RCPT pipe-c"),
        (354, "DATA 2"),
        (250, "end of message 2"),
        (250, "RSET"),
        (252, "VRFY"),
        (503, "DATA after RSET"),
    ];
    let mut got = Vec::new();
    for (code, what) in expected {
        let reply = c.reply();
        got.push(reply.clone());
        assert_eq!(
            reply.0, code,
            "reply to {what} out of order; replies so far: {got:#?}"
        );
    }
    assert!(
        got[0].1.contains("PIPELINING"),
        "first reply is not the EHLO reply: {got:#?}"
    );
    assert!(
        got[3].1.starts_with("501 5."),
        "syntax error without 5.x.x: {got:#?}"
    );
    expect(c.reply(), 221, "QUIT");
    assert!(c.is_closed(), "connection still open after QUIT");

    let a = wait_for_rcpt(&sink, &daemon, "pipe-a@example.com");
    let b = wait_for_rcpt(&sink, &daemon, "pipe-b@example.org");
    let cc = wait_for_rcpt(&sink, &daemon, "pipe-c@example.com");
    for m in [&a, &b] {
        assert_eq!(m.sender, "pipe@client.test");
        assert_eq!(m.recipients.len(), 1, "{:?}", m.recipients);
        assert_one_received_header(prepended(&m.data, body1));
    }
    assert_eq!(cc.sender, "pipe2@client.test");
    assert_eq!(cc.recipients, vec!["pipe-c@example.com".to_string()]);
    assert_one_received_header(prepended(&cc.data, body2));
    // Exactly those three deliveries, nothing else: once the spool is empty nothing more
    // can reach the sink.
    daemon.wait_spool_empty(WAIT);
    assert_eq!(
        sink.count(),
        3,
        "unexpected deliveries: {:#?}",
        sink.messages()
    );
}

#[test]
fn hundreds_of_pipelined_messages_in_one_stream_are_answered_in_order() {
    let (_dir, sink, daemon) = relay("");
    let mut c = RawClient::connect(daemon.smtp);
    // About 6 MB in one stream: more than the daemon buffers, so it must push back on
    // the socket while each message is stored, and still answer every command in order.
    const N: usize = 300;
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.....\r\n";
    let mut batch = b"EHLO client.test\r\n".to_vec();
    for i in 0..N {
        batch.extend_from_slice(
            format!("MAIL FROM:<bulk@client.test>\r\nRCPT TO:<bulk-{i}@example.com>\r\nDATA\r\n")
                .as_bytes(),
        );
        batch.extend_from_slice(format!("Subject: bulk {i}\r\n\r\n").as_bytes());
        for _ in 0..250 {
            batch.extend_from_slice(line);
        }
        batch.extend_from_slice(b".\r\n");
    }
    batch.extend_from_slice(b"QUIT\r\n");
    let mut writer = c.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&batch));
    expect(c.reply(), 250, "EHLO");
    for i in 0..N {
        expect(c.reply(), 250, &format!("MAIL {i}"));
        expect(c.reply(), 250, &format!("RCPT {i}"));
        expect(c.reply(), 354, &format!("DATA {i}"));
        expect(c.reply(), 250, &format!("end of message {i}"));
    }
    expect(c.reply(), 221, "QUIT");
    assert!(c.is_closed(), "connection still open after QUIT");
    sender.join().unwrap().expect("write the batch");
    assert!(
        sink.wait_for(N, WAIT),
        "only {} of {N} delivered",
        sink.count()
    );
    let mut seen: Vec<String> = sink
        .messages()
        .into_iter()
        .flat_map(|m| m.recipients)
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), N, "each message delivered once");
}

#[test]
fn dot_stuffed_lines_arrive_unstuffed_and_byte_identical() {
    let (_dir, sink, daemon) = relay("");
    // Lines starting with dots, a line that is only a dot, 8-bit text, a line of dots, a
    // last line that starts with a dot.
    let body: &[u8] = "From: a@client.test\r\n\
        To: dots@example.com\r\n\
        Subject: dots\r\n\
        \r\n\
        .leading dot\r\n\
        ..two leading dots\r\n\
        .\r\n\
        ...\r\n\
        middle . dot\r\n\
        \u{e9}t\u{e9} \u{2014} 8-bit\r\n\
        . space after dot\r\n\
        \r\n\
        .end\r\n"
        .as_bytes();
    let mut c = RawClient::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    expect(
        c.cmd("MAIL FROM:<a@client.test> BODY=8BITMIME"),
        250,
        "MAIL",
    );
    expect(c.cmd("RCPT TO:<dots@example.com>"), 250, "RCPT");
    expect(c.cmd("DATA"), 354, "DATA");
    c.send(&stuffed(body));
    expect(c.reply(), 250, "end of DATA");
    expect(c.cmd("QUIT"), 221, "QUIT");

    let m = wait_for_rcpt(&sink, &daemon, "dots@example.com");
    let prefix = prepended(&m.data, body);
    assert_one_received_header(prefix);
    let text = String::from_utf8_lossy(prefix);
    assert!(
        text.contains("client.test"),
        "Received header lacks the HELO name: {text}"
    );
}

#[test]
fn rset_clears_the_transaction() {
    let (_dir, sink, daemon) = relay("");
    let mut c = RawClient::connect(daemon.smtp);
    converse(
        &mut c,
        &[
            ("EHLO client.test", 250, "EHLO"),
            ("MAIL FROM:<old@client.test>", 250, "MAIL"),
            ("RCPT TO:<rset-dropped@example.com>", 250, "RCPT"),
            ("RSET", 250, "RSET"),
            ("DATA", 503, "DATA after RSET"),
            ("RCPT TO:<rset-dropped@example.com>", 503, "RCPT after RSET"),
            // A new transaction carries only its own sender and recipients.
            ("MAIL FROM:<new@client.test>", 250, "MAIL after RSET"),
            ("RCPT TO:<rset-kept@example.com>", 250, "RCPT"),
            ("DATA", 354, "DATA"),
        ],
    );
    let body = b"Subject: after rset\r\n\r\nkept\r\n";
    c.send(&stuffed(body));
    expect(c.reply(), 250, "end of DATA");
    converse(
        &mut c,
        &[
            // EHLO also drops an open transaction (RFC 5321 §4.1.4).
            ("MAIL FROM:<other@client.test>", 250, "MAIL"),
            ("RCPT TO:<rset-dropped@example.com>", 250, "RCPT"),
            ("EHLO client.test", 250, "second EHLO"),
            ("DATA", 503, "DATA after EHLO"),
            ("QUIT", 221, "QUIT"),
        ],
    );

    let m = wait_for_rcpt(&sink, &daemon, "rset-kept@example.com");
    assert_eq!(m.sender, "new@client.test");
    assert_eq!(m.recipients, vec!["rset-kept@example.com".to_string()]);
    assert_one_received_header(prepended(&m.data, body));
    daemon.wait_spool_empty(WAIT);
    assert_eq!(
        sink.count(),
        1,
        "unexpected deliveries: {:#?}",
        sink.messages()
    );
    assert!(
        !daemon
            .log_records()
            .iter()
            .any(|r| r["recipient"] == "rset-dropped@example.com"),
        "a reset recipient appears in the log"
    );
}

#[test]
fn quit_answers_221_and_closes() {
    let (_dir, _sink, daemon) = relay("");
    // QUIT right after the greeting.
    let mut c = RawClient::connect(daemon.smtp);
    let text = expect(c.cmd("QUIT"), 221, "QUIT");
    assert!(
        text.starts_with("221 2."),
        "QUIT lacks an enhanced code: {text}"
    );
    assert!(c.is_closed(), "connection still open after QUIT");

    // QUIT inside a transaction, with commands pipelined after it: they are not
    // answered.
    let mut c = RawClient::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    expect(c.cmd("MAIL FROM:<q@client.test>"), 250, "MAIL");
    c.send(b"QUIT\r\nNOOP\r\nNOOP\r\n");
    expect(c.reply(), 221, "QUIT");
    assert!(
        c.is_closed(),
        "connection still open after QUIT (or commands after QUIT were answered)"
    );

    // The daemon goes on serving.
    let mut c = RawClient::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO on a new connection");
    expect(c.cmd("QUIT"), 221, "QUIT");
}
