//! Garbage in SMTP commands over a real socket: the real `impulsed` on port 0, relaying
//! to a recording sink on loopback.
//!
//! Random bytes (with extra CR, LF, NUL and dots), NUL bytes in commands and in message
//! text, a bare LF or bare CR inside a command line, over-long command lines (with and
//! without a line end, up to megabytes) and two hundred unknown commands in a row each
//! get a clear reply or a clean close: the daemon never crashes, hangs, or takes a bad
//! line as a good command — and after every case it still relays a normal message end to
//! end (the sink receives it).

mod common;

use common::abuse::{assert_never_seen, assert_serves, expect, garbage, open_data, Client, Reply};
use common::{relay, wait_for_rcpt};

#[test]
fn random_garbage_gets_replies_or_a_clean_close() {
    let (_dir, sink, daemon) = relay("");
    for seed in 1..=8u64 {
        let mut c = Client::connect(daemon.smtp);
        // Some rounds start with a greeting so that garbage hits a later state.
        if seed % 2 == 0 {
            expect(c.cmd("EHLO client.test"), 250, "EHLO");
        }
        let bytes = garbage(seed, 64 * 1024);
        let open = c.send(&bytes);
        // End whatever line the garbage left open, then ask to leave.
        let open = open && c.send(b"\r\nQUIT\r\n");
        let mut replies = Vec::new();
        loop {
            let r = c.reply();
            match &r {
                Reply::Closed => break,
                Reply::Reply(221, _) => {
                    assert!(
                        matches!(c.reply(), Reply::Closed),
                        "still open after 221 (seed {seed})"
                    );
                    replies.push(r);
                    break;
                }
                _ => replies.push(r),
            }
            assert!(replies.len() < 100_000, "endless replies (seed {seed})");
        }
        // Closing without a word is acceptable as a clean close: the next client must be
        // served (checked below).
        let _ = open;
        for r in &replies {
            assert!(
                matches!(r.code(), 221 | 250 | 252 | 354 | 421 | 500..=599),
                "unexpected reply to garbage (seed {seed}): {r:?}"
            );
        }
        assert_serves(&daemon, &sink, &format!("garbage-{seed}"));
    }
}

#[test]
fn nul_bytes_in_commands_are_refused_and_the_session_goes_on() {
    let (_dir, sink, daemon) = relay("");
    let mut c = Client::connect(daemon.smtp);
    let r = c.cmd("EH\0LO client.test");
    assert!(matches!(r.code(), 500 | 501), "NUL in EHLO: {r:?}");
    expect(
        c.cmd("MAIL FROM:<a@client.test>"),
        503,
        "MAIL: the NUL EHLO must not count",
    );
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    let r = c.cmd("MAIL FROM:<nul\0@client.test>");
    assert!(matches!(r.code(), 500 | 501 | 553), "NUL in MAIL: {r:?}");
    expect(
        c.cmd("MAIL FROM:<a@client.test>"),
        250,
        "MAIL after the refused one",
    );
    let r = c.cmd("RCPT TO:<nul-rcpt\0@example.com>");
    assert!(matches!(r.code(), 500 | 501 | 553), "NUL in RCPT: {r:?}");
    let r = c.cmd("\0\0\0\0");
    assert!(matches!(r.code(), 500 | 501), "NULs only: {r:?}");
    let r = c.cmd("DATA\0");
    assert!(matches!(r.code(), 500 | 501), "NUL after DATA: {r:?}");
    // No recipient was accepted, so there is no DATA phase to enter.
    let r = c.cmd("DATA");
    assert!(
        matches!(r.code(), 503 | 554),
        "DATA without valid RCPT: {r:?}"
    );
    expect(c.cmd("QUIT"), 221, "QUIT");
    assert_serves(&daemon, &sink, "nul-commands");
    assert_never_seen(&daemon, &sink, "nul-rcpt@example.com");
}

#[test]
fn nul_bytes_in_data_are_either_refused_or_delivered_intact() {
    let (_dir, sink, daemon) = relay("");
    let mut c = Client::connect(daemon.smtp);
    open_data(&mut c, "nul-data@example.com");
    let body = b"Subject: nul\r\n\r\nbefore\0after\r\n\0\r\n";
    c.send(body);
    c.send(b".\r\n");
    match c.reply() {
        Reply::Reply(250, _) => {
            // Acknowledged: it must arrive, unchanged.
            let m = wait_for_rcpt(&sink, &daemon, "nul-data@example.com");
            assert!(m.data.ends_with(body), "NUL message altered: {:?}", m.data);
        }
        Reply::Reply(code, text) if (500..600).contains(&code) => {
            let _ = text;
            expect(c.cmd("NOOP"), 250, "NOOP after the refused message");
            assert_serves(&daemon, &sink, "nul-data");
            assert_never_seen(&daemon, &sink, "nul-data@example.com");
        }
        other => panic!("message with NUL bytes: {other:?}"),
    }
    assert_serves(&daemon, &sink, "nul-data-2");
}

/// A bare line end (`end`, named `name`: "LF" or "CR") inside a command line never ends
/// the command: the whole line is one bad command, answered once, at the CRLF.
fn assert_bare_line_end_never_ends_a_command(name: &str, end: &str) {
    let (_dir, sink, daemon) = relay("");
    let tag = format!("bare-{}", name.to_ascii_lowercase());
    let mut c = Client::connect(daemon.smtp);
    // If the bare line end ended a line, EHLO would be accepted and MAIL answered too.
    c.send(format!("EHLO client.test{end}MAIL FROM:<a@client.test>\r\n").as_bytes());
    let text = expect(c.reply(), 500, &format!("EHLO with a bare {name}"));
    assert!(text.starts_with("500 5."), "no enhanced code: {text}");
    expect(
        c.cmd("NOOP"),
        250,
        "NOOP: exactly one reply for the bad line",
    );
    expect(
        c.cmd("MAIL FROM:<a@client.test>"),
        503,
        &format!("MAIL: the bare-{name} EHLO must not count"),
    );
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    // A bare line end alone, and one in the middle of a transaction.
    c.send(format!("{end}\r\n").as_bytes());
    expect(c.reply(), 500, &format!("a lone {name}"));
    expect(c.cmd("MAIL FROM:<a@client.test>"), 250, "MAIL");
    c.send(format!("RCPT TO:<{tag}@example.com>{end}RCPT TO:<{tag}-2@example.com>\r\n").as_bytes());
    expect(c.reply(), 500, &format!("RCPT with a bare {name}"));
    // Neither recipient was accepted.
    let r = c.cmd("DATA");
    assert!(
        matches!(r.code(), 503 | 554),
        "DATA without an accepted RCPT: {r:?}"
    );
    expect(c.cmd("QUIT"), 221, "QUIT");
    assert_serves(&daemon, &sink, &tag);
    assert_never_seen(&daemon, &sink, &format!("{tag}@example.com"));
    assert_never_seen(&daemon, &sink, &format!("{tag}-2@example.com"));
}

#[test]
fn a_bare_lf_never_ends_a_command() {
    assert_bare_line_end_never_ends_a_command("LF", "\n");
}

#[test]
fn a_bare_cr_never_ends_a_command() {
    assert_bare_line_end_never_ends_a_command("CR", "\r");
}

#[test]
fn an_over_long_command_line_gets_500_and_the_session_survives_or_closes() {
    let (_dir, sink, daemon) = relay("");
    // 100 KiB without any line end.
    let mut c = Client::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    let open = c.send(&vec![b'A'; 100 * 1024]);
    let r = c.reply();
    match r {
        Reply::Reply(500, _) => {
            if open && c.send(b"\r\nNOOP\r\n") {
                match c.reply() {
                    Reply::Reply(250, _) => {
                        expect(
                            c.cmd("MAIL FROM:<a@client.test>"),
                            250,
                            "MAIL after the long line",
                        );
                        expect(c.cmd("QUIT"), 221, "QUIT");
                    }
                    Reply::Closed => {}
                    other => panic!("after the over-long line: {other:?}"),
                }
            }
        }
        Reply::Closed => {}
        other => panic!("100 KiB command line: expected 500 or a close, got {other:?}"),
    }
    assert_serves(&daemon, &sink, "long-line-no-crlf");

    // An over-long line that does end in CRLF: one 500 for it, then the next command.
    let mut c = Client::connect(daemon.smtp);
    let mut line = b"EHLO ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 20_000));
    line.extend_from_slice(b"\r\nNOOP\r\n");
    c.send(&line);
    match c.reply() {
        Reply::Reply(500, _) => {
            expect(c.reply(), 250, "NOOP after the long line (exactly one 500)");
            expect(
                c.cmd("MAIL FROM:<a@client.test>"),
                503,
                "the long EHLO must not count",
            );
            expect(c.cmd("QUIT"), 221, "QUIT");
        }
        Reply::Closed => {}
        other => panic!("20 KB EHLO line: expected 500 or a close, got {other:?}"),
    }
    assert_serves(&daemon, &sink, "long-line-crlf");

    // Several megabytes of one line: the daemon must not buffer it all or fall over.
    let mut c = Client::connect(daemon.smtp);
    let chunk = vec![b'B'; 256 * 1024];
    if c.send_repeatedly(&chunk, 16) && c.send(b"\r\nQUIT\r\n") {
        let replies = c.drain_until_closed();
        assert!(
            replies.iter().all(|r| matches!(r.code(), 500 | 221 | 421)),
            "replies to a 4 MiB line: {replies:?}"
        );
    }
    assert_serves(&daemon, &sink, "long-line-4mib");
}

#[test]
fn many_errors_in_a_row_end_the_session_cleanly() {
    let (_dir, sink, daemon) = relay("");
    let mut c = Client::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    let mut batch = Vec::new();
    for i in 0..200 {
        batch.extend_from_slice(format!("FROB {i}\r\n").as_bytes());
    }
    c.send(&batch);
    // Every bad command is refused; the daemon may give up with 421 and close, but
    // must not answer anything else nor stay silent.
    let mut replies = Vec::new();
    loop {
        let r = c.reply();
        match r.code() {
            0 => break,
            500 | 502 => replies.push(r),
            421 => {
                replies.push(r);
                assert_eq!(c.reply(), Reply::Closed, "still open after 421");
                break;
            }
            _ => panic!("unexpected reply to an unknown command: {r:?}"),
        }
        if replies.len() == 200 {
            expect(c.cmd("QUIT"), 221, "QUIT");
            break;
        }
    }
    assert!(
        !replies.is_empty(),
        "no reply at all to 200 unknown commands"
    );
    assert_serves(&daemon, &sink, "many-errors");
}
