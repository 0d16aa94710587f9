//! Table tests of the server session, verb by verb: each case is a transcript of client
//! lines and the reply lines expected for the last of them (or for all of them).

mod server_support;

use impulse_smtp::server::{Event, MessageOutcome, Policy, Session, State};
use server_support::{crlf, policy, run, Run};

/// Runs the lines (CRLF added) after the greeting and returns the reply lines.
fn replies(policy: Policy, lines: &[&str]) -> Vec<String> {
    let mut lines = run(policy, &crlf(lines)).lines();
    lines.remove(0); // greeting
    lines
}

/// The last reply line of a transcript.
fn last(lines: &[&str]) -> String {
    replies(policy(), lines).pop().unwrap_or_default()
}

#[test]
fn greeting_and_ehlo() {
    let r = run(policy(), b"EHLO client.test\r\nHELO client.test\r\n");
    assert_eq!(
        r.text(),
        "220 mx.test ESMTP Impulse\r\n\
         250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n\
         250 mx.test\r\n"
    );
}

#[test]
fn last_reply_per_transcript() {
    let table: &[(&[&str], &str)] = &[
        // MAIL
        (&["MAIL FROM:<a@b>"], "503 5.5.1 Send EHLO or HELO first"),
        (&["EHLO c", "MAIL FROM:<a@b>"], "250 2.1.0 Ok"),
        (&["HELO c", "MAIL FROM:<>"], "250 2.1.0 Ok"),
        (
            &["EHLO c", "MAIL FROM:<a@b> SIZE=1000 BODY=8BITMIME"],
            "250 2.1.0 Ok",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b> SIZE=1001"],
            "552 5.3.4 Message size exceeds fixed maximum message size",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b> X-RET=HDRS"],
            "555 5.5.4 Unsupported MAIL parameter",
        ),
        (&["EHLO c", "MAIL FROM:<a@b> SMTPUTF8"], "250 2.1.0 Ok"),
        (
            &["EHLO c", "MAIL FROM:<jöran@bücher.example>"],
            "553 5.6.7 SMTPUTF8 is required for a non-ASCII address",
        ),
        (
            &[
                "EHLO c",
                "MAIL FROM:<a@b>",
                "RCPT TO:<jöran@bücher.example>",
            ],
            "553 5.6.7 SMTPUTF8 is required for a non-ASCII address",
        ),
        (
            &[
                "EHLO c",
                "MAIL FROM:<jöran@bücher.example> SMTPUTF8",
                "RCPT TO:<ü@bücher.example>",
            ],
            "250 2.1.5 Ok",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "MAIL FROM:<a@b>"],
            "503 5.5.1 Nested MAIL command",
        ),
        (
            &["EHLO c", "MAIL FROM:a@b"],
            "501 5.1.7 Address must be enclosed in <>",
        ),
        // RCPT
        (&["EHLO c", "RCPT TO:<x@y>"], "503 5.5.1 Need MAIL command"),
        (&["RCPT TO:<x@y>"], "503 5.5.1 Need MAIL command"),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@y>"],
            "250 2.1.5 Ok",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@y> X-NOTIFY=NEVER"],
            "555 5.5.4 Unsupported RCPT parameter",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<>"],
            "501 5.1.3 Null recipient not allowed",
        ),
        (
            &[
                "EHLO c",
                "MAIL FROM:<a@b>",
                "RCPT TO:<1@y>",
                "RCPT TO:<2@y>",
                "RCPT TO:<3@y>",
                "RCPT TO:<4@y>",
            ],
            "452 4.5.3 Too many recipients",
        ),
        // DATA
        (&["DATA"], "503 5.5.1 Need RCPT command"),
        (&["EHLO c", "DATA"], "503 5.5.1 Need RCPT command"),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "DATA"],
            "554 5.5.1 No valid recipients",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@y>", "DATA"],
            "354 End data with <CR><LF>.<CR><LF>",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@y>", "DATA x"],
            "501 5.5.4 Syntax: DATA",
        ),
        // Others
        (&["RSET"], "250 2.0.0 Ok"),
        (&["NOOP"], "250 2.0.0 Ok"),
        (
            &["VRFY someone"],
            "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery",
        ),
        (&["QUIT"], "221 2.0.0 Bye"),
        (&["FOO"], "500 5.5.2 Command unrecognized"),
        (&[""], "500 5.5.2 Command unrecognized"),
        (
            &["NOOP\0"],
            "500 5.5.2 NUL character in command not allowed",
        ),
        (&["EXPN list"], "502 5.5.1 Command not implemented"),
        (&["HELP"], "502 5.5.1 Command not implemented"),
        (&["STARTTLS"], "502 5.5.1 Command not implemented"),
        (
            &["EHLO c", "AUTH PLAIN AGE="],
            "502 5.5.1 Command not implemented",
        ),
        (&["EHLO c", "BDAT 0 LAST"], "503 5.5.1 Need RCPT command"),
        (&["TURN"], "502 5.5.1 Command not implemented"),
        (&["EHLO"], "501 5.5.4 Syntax: EHLO hostname"),
        // RSET and EHLO end the transaction.
        (
            &["EHLO c", "MAIL FROM:<a@b>", "RSET", "RCPT TO:<x@y>"],
            "503 5.5.1 Need MAIL command",
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "EHLO c", "MAIL FROM:<a@b>"],
            "250 2.1.0 Ok",
        ),
        (
            &["RSET", "MAIL FROM:<a@b>"],
            "503 5.5.1 Send EHLO or HELO first",
        ),
    ];
    for &(lines, expected) in table {
        assert_eq!(last(lines), expected, "{lines:?}");
    }
}

#[test]
fn relay_denied() {
    let policy = Policy {
        relay_allowed: false,
        ..policy()
    };
    let r = replies(
        policy,
        &["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@y>", "DATA"],
    );
    assert_eq!(r[r.len() - 2], "550 5.7.1 Relaying denied");
    assert_eq!(r[r.len() - 1], "554 5.5.1 No valid recipients");
}

#[test]
fn bad_command_lines() {
    let mut p = policy();
    p.max_line_length = 16;
    // bare LF: one reply at the LF, the rest of the line up to CRLF discarded.
    let r = replies(p.clone(), &["NOOP\nMAIL FROM:<a@b>", "NOOP"]);
    assert_eq!(
        r,
        ["500 5.5.2 Bare LF in command not allowed", "250 2.0.0 Ok"]
    );
    let r = replies(p.clone(), &["NO\rOP", "NOOP"]);
    assert_eq!(
        r,
        ["500 5.5.2 Bare CR in command not allowed", "250 2.0.0 Ok"]
    );
    let r = replies(
        p.clone(),
        &["NOOP 0123456789A", "NOOP 0123456789AB\n\r", "NOOP"],
    );
    assert_eq!(
        r,
        ["250 2.0.0 Ok", "500 5.5.2 Line too long", "250 2.0.0 Ok"]
    );
    // A bare CR followed by a CRLF: the CRLF ends the bad line.
    let r = run(p, b"EHLO x\r\r\nNOOP\r\n").lines();
    assert_eq!(
        r[1..],
        ["500 5.5.2 Bare CR in command not allowed", "250 2.0.0 Ok"]
    );
}

#[test]
fn garbage_without_crlf_does_not_grow_the_buffer() {
    let mut session = Session::new(policy());
    session.greeting();
    for _ in 0..1000 {
        session.ingest(&[b'x'; 100]);
        assert!(session.buffered() <= 66, "{}", session.buffered());
    }
    session.ingest(b"\r\nNOOP\r\n");
    let out = String::from_utf8(session.take_output()).unwrap_or_default();
    assert!(
        out.ends_with("500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n"),
        "{out}"
    );
    assert_eq!(session.buffered(), 0);
}

#[test]
fn ten_errors_in_a_row_close_the_session() {
    let mut lines = vec!["EHLO c"];
    lines.extend(["FOO"; 9]);
    lines.push("NOOP"); // resets the count
    lines.extend(["BAR"; 10]);
    lines.push("NOOP"); // never read
    let r = run(policy(), &crlf(&lines));
    let replies = r.lines();
    assert_eq!(replies.iter().filter(|l| l.starts_with("500")).count(), 19);
    assert_eq!(
        replies.last().map(String::as_str),
        Some("421 4.7.0 Too many errors")
    );
    assert_eq!(r.events, vec![Event::Close]);
}

#[test]
fn quit_emits_event_and_ignores_the_rest() {
    let mut session = Session::new(policy());
    session.ingest(b"QUIT\r\nNOOP\r\n");
    assert_eq!(session.take_output(), b"221 2.0.0 Bye\r\n");
    assert_eq!(session.poll_event(), Some(Event::Quit));
    assert_eq!(session.poll_event(), None);
    assert_eq!(session.state(), State::Closed);
    session.ingest(b"NOOP\r\n");
    assert!(session.take_output().is_empty());
    assert_eq!(session.buffered(), 0);
}

#[test]
fn full_transaction_states_and_message() {
    let mut s = Session::new(policy());
    s.greeting();
    assert_eq!(s.state(), State::Greeted);
    s.ingest(b"EHLO client.test\r\n");
    assert_eq!(
        (s.state(), s.helo_name(), s.is_esmtp()),
        (State::Ready, Some("client.test"), true)
    );
    s.ingest(b"MAIL FROM:<a@b> BODY=8BITMIME SIZE=20\r\n");
    assert_eq!(s.state(), State::Mail);
    s.ingest(b"RCPT TO:<x@y>\r\nRCPT TO:<z@y>\r\n");
    assert_eq!(s.state(), State::Rcpt);
    s.ingest(b"DATA\r\n");
    assert_eq!(s.state(), State::Data);
    s.ingest(b"Subject: hi\r\n\r\n..dot\r\n.\r\nRCPT TO:<late@y>\r\n");
    assert_eq!(s.state(), State::WaitingStore);
    assert!(s.is_waiting());
    assert_eq!(s.buffered(), b"RCPT TO:<late@y>\r\n".len());
    let Some(Event::Message { envelope, data }) = s.poll_event() else {
        panic!("no message");
    };
    assert_eq!(envelope.sender, "a@b");
    assert_eq!(envelope.recipients, ["x@y", "z@y"]);
    assert!(envelope.body_8bit);
    assert_eq!(envelope.declared_size, Some(20));
    assert_eq!(data, b"Subject: hi\r\n\r\n.dot\r\n");
    // Nothing is said about the message, nor the RCPT after it, until message_done.
    let before = String::from_utf8(s.take_output()).unwrap_or_default();
    assert!(
        before.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{before}"
    );
    s.message_done(MessageOutcome::Accepted {
        id: "ABC123".into(),
    });
    // The transaction was reset, so the pipelined RCPT is out of sequence.
    assert_eq!(
        s.take_output(),
        b"250 2.0.0 Ok: queued as ABC123\r\n503 5.5.1 Need MAIL command\r\n"
    );
    assert_eq!(s.state(), State::Ready);
    assert_eq!(s.buffered(), 0);
    // message_done outside WaitingStore is ignored.
    s.message_done(MessageOutcome::Reject("x".into()));
    assert!(s.take_output().is_empty());
}

#[test]
fn message_outcomes_and_reply_injection() {
    let outcomes = [
        (
            MessageOutcome::TempFail("Spool unavailable".into()),
            "451 4.3.0 Spool unavailable\r\n",
        ),
        (
            MessageOutcome::Reject("Content refused".into()),
            "554 5.3.0 Content refused\r\n",
        ),
        (
            MessageOutcome::TempFail("x\r\n250 injected".into()),
            "451 4.3.0 x  250 injected\r\n",
        ),
        (
            MessageOutcome::Accepted { id: "A\nB".into() },
            "250 2.0.0 Ok: queued as A B\r\n",
        ),
    ];
    for (outcome, expected) in outcomes {
        let mut s = Session::new(policy());
        s.ingest(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\n.\r\n");
        assert!(matches!(s.poll_event(), Some(Event::Message { .. })));
        s.take_output();
        s.message_done(outcome);
        assert_eq!(String::from_utf8_lossy(&s.take_output()), expected);
        assert_eq!(s.state(), State::Ready);
    }
}

#[test]
fn data_rejections() {
    let head = "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\n";
    let big = format!("{head}{}\r\n.\r\nNOOP\r\n", "x\r\n".repeat(400));
    let long = format!("{head}{}\r\n.\r\nNOOP\r\n", "y".repeat(999));
    let fits = format!("{head}{}\r\n.\r\nNOOP\r\n", "y".repeat(998));
    let bare = format!("{head}a\nb\r\n.\r\nNOOP\r\n");
    let roomy = Policy {
        max_message_size: 2000,
        ..policy()
    };
    let table = [
        (big, policy(), "552 5.3.4 Message too big"),
        (long, roomy.clone(), "552 5.3.4 Message line too long"),
        (
            bare,
            policy(),
            "550 5.6.0 Bare LF or CR in message data not accepted",
        ),
    ];
    for (input, policy, expected) in table {
        let r = run(policy, input.as_bytes());
        let lines = r.lines();
        assert_eq!(lines[lines.len() - 2..], [expected, "250 2.0.0 Ok"]);
        assert!(r.events.is_empty());
    }
    let r = run(roomy, fits.as_bytes());
    assert_eq!(r.messages().len(), 1);
}

#[test]
fn pipelined_data_after_refused_data_is_read_as_commands() {
    let input = crlf(&[
        "EHLO c",
        "MAIL FROM:<a@b>",
        "RCPT TO:<x@y> FOO=1",
        "DATA",
        "NOOP",
        ".",
        "QUIT",
    ]);
    let r = run(policy(), &input);
    let lines = r.lines();
    assert_eq!(
        lines[lines.len() - 5..],
        [
            "555 5.5.4 Unsupported RCPT parameter",
            "554 5.5.1 No valid recipients",
            "250 2.0.0 Ok",
            "500 5.5.2 Command unrecognized",
            "221 2.0.0 Bye",
        ]
    );
    assert_eq!(r.events, vec![Event::Quit]);
}

#[test]
fn policy_defaults() {
    let p = Policy::new("h");
    assert_eq!(
        (p.max_line_length, p.data_line_length(), p.relay_allowed),
        (512, 998, false)
    );
    let wide = Policy {
        max_line_length: 4096,
        ..p
    };
    assert_eq!(wide.data_line_length(), 4096);
    let r: Run = run(wide, b"");
    assert_eq!(r.text(), "220 h ESMTP Impulse\r\n");
}
