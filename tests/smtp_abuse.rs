//! Bad input over a real socket: the real `impulsed` on port 0, relaying to a recording
//! sink on loopback.
//!
//! The issue: bad input never crashes the daemon, hangs it, or loses acknowledged mail.
//! Garbage, NUL bytes, bare CR / bare LF in commands, SMTP smuggling payloads inside DATA,
//! over-long lines, messages over SIZE, disconnects mid-DATA, a client sending one byte
//! at a time, fifty garbage connections at once, and a client outside `relay.allow` each
//! get a clear reply or a clean close — and after every case the daemon still relays a
//! normal message end to end (the sink receives it).

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::log::has;
use common::{relay, wait_for_rcpt, Daemon};
use impulse_sink::Sink;

/// Upper bound of every wait in this file.
const WAIT: Duration = Duration::from_secs(30);
/// How long one read may block before the server counts as hung.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// What reading one reply gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// A complete reply: code and lines joined by "\n".
    Reply(u16, String),
    /// The server closed the connection (EOF or reset) before a complete reply.
    Closed,
}

impl Reply {
    fn code(&self) -> u16 {
        match self {
            Reply::Reply(code, _) => *code,
            Reply::Closed => 0,
        }
    }
}

/// A raw SMTP client that tells a closed connection from a hung server (which fails the
/// test) and survives the server closing while it writes.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to impulsed");
        Client::wrap(stream)
    }

    fn wrap(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = Client { stream, reader };
        let greeting = c.reply();
        assert_eq!(greeting.code(), 220, "greeting: {greeting:?}");
        c
    }

    /// Write everything; `false` if the server closed the connection meanwhile.
    fn send(&mut self, bytes: &[u8]) -> bool {
        match self.stream.write_all(bytes) {
            Ok(()) => true,
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                false
            }
            Err(e) => panic!("write to impulsed failed: {e}"),
        }
    }

    /// Write `bytes` `times` times over; `false` (and stop) if the server closed the
    /// connection meanwhile.
    fn send_repeatedly(&mut self, bytes: &[u8], times: usize) -> bool {
        (0..times).all(|_| self.send(bytes))
    }

    /// Read one reply; panics if the server neither answers nor closes in time.
    fn reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => return Reply::Closed,
                Ok(_) if !line.ends_with(b"\n") => return Reply::Closed,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "impulsed neither answered nor closed within {READ_TIMEOUT:?} (so far: {lines:?})"
                    )
                }
                Err(_) => return Reply::Closed,
            }
            let line = String::from_utf8_lossy(&line);
            assert!(
                line.ends_with("\r\n"),
                "reply line not CRLF-terminated: {line:?}"
            );
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("malformed reply line {line:?}"));
            assert!(
                (200..600).contains(&code),
                "reply code out of range: {line:?}"
            );
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Reply::Reply(code, lines.join("\n"));
            }
        }
    }

    /// Send a command line (CRLF added) and read its reply.
    fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Read replies until the connection is closed; panics if it stays open (hangs).
    fn drain_until_closed(&mut self) -> Vec<Reply> {
        let mut replies = Vec::new();
        loop {
            let r = self.reply();
            if r == Reply::Closed {
                return replies;
            }
            replies.push(r);
            assert!(replies.len() < 100_000, "endless replies");
        }
    }
}

/// Assert a reply's code, showing the reply on failure.
#[track_caller]
fn expect(reply: Reply, code: u16, what: &str) -> String {
    match reply {
        Reply::Reply(c, text) if c == code => text,
        other => panic!("{what}: expected {code}, got {other:?}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), biased towards the bytes that matter
/// to SMTP framing.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let b = (r >> 56) as u8;
        out.push(match r & 0x1f {
            0 => b'\r',
            1 => b'\n',
            2 => 0,
            3 => b'.',
            _ => b,
        });
    }
    out
}

/// The daemon still relays a normal message end to end: accepted with 250, received by
/// the sink byte-identical after the `Received:` header, logged as a Delivery. Because
/// the log is written in order, every reception before this one is in the log afterwards.
#[track_caller]
fn assert_serves(daemon: &Daemon, sink: &Sink, tag: &str) {
    let rcpt = format!("ok-{tag}@example.com");
    let body = format!("Subject: still serving after {tag}\r\n\r\nnormal message {tag}\r\n");
    let mut c = Client::connect(daemon.smtp);
    expect(
        c.cmd("EHLO normal.client.test"),
        250,
        "EHLO (normal client)",
    );
    expect(
        c.cmd("MAIL FROM:<normal@client.test>"),
        250,
        "MAIL (normal client)",
    );
    expect(
        c.cmd(&format!("RCPT TO:<{rcpt}>")),
        250,
        "RCPT (normal client)",
    );
    expect(c.cmd("DATA"), 354, "DATA (normal client)");
    c.send(body.as_bytes());
    c.send(b".\r\n");
    expect(c.reply(), 250, "end of DATA (normal client)");
    expect(c.cmd("QUIT"), 221, "QUIT (normal client)");
    let m = wait_for_rcpt(sink, daemon, &rcpt);
    assert!(
        m.data.ends_with(body.as_bytes()) && m.data.starts_with(b"Received: "),
        "normal message after {tag} arrived altered: {:?}",
        String::from_utf8_lossy(&m.data)
    );
    daemon.wait_for_log(
        WAIT,
        &format!("Delivery of the normal message after {tag}"),
        |recs| has(recs, "Delivery", &rcpt),
    );
}

/// Neither the sink nor the daemon's log ever saw `rcpt`. Call after [`assert_serves`],
/// so that any reception of `rcpt` would already be logged.
#[track_caller]
fn assert_never_seen(daemon: &Daemon, sink: &Sink, rcpt: &str) {
    let delivered: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| m.recipients.iter().any(|r| r.eq_ignore_ascii_case(rcpt)))
        .collect();
    assert!(
        delivered.is_empty(),
        "the sink received mail for {rcpt}: {delivered:#?}"
    );
    let logged: Vec<_> = daemon
        .log_records()
        .into_iter()
        .filter(|r| {
            r["recipient"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(rcpt))
        })
        .collect();
    assert!(
        logged.is_empty(),
        "the log has records for {rcpt}: {logged:#?}"
    );
}

/// Open a transaction for `rcpt` and get to the 354.
fn open_data(c: &mut Client, rcpt: &str) {
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    expect(c.cmd("MAIL FROM:<sender@client.test>"), 250, "MAIL");
    expect(c.cmd(&format!("RCPT TO:<{rcpt}>")), 250, "RCPT");
    expect(c.cmd("DATA"), 354, "DATA");
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

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
fn a_message_over_size_gets_552_and_is_not_delivered() {
    let (_dir, sink, daemon) = relay("smtp: (max_message_size: 100000),");
    // Declared too big in MAIL FROM.
    let mut c = Client::connect(daemon.smtp);
    let ehlo = expect(c.cmd("EHLO client.test"), 250, "EHLO");
    assert!(ehlo.contains("SIZE 100000"), "SIZE not advertised: {ehlo}");
    let text = expect(
        c.cmd("MAIL FROM:<big@client.test> SIZE=200000"),
        552,
        "MAIL SIZE=200000",
    );
    assert!(text.starts_with("552 5.3.4"), "{text}");
    expect(
        c.cmd("MAIL FROM:<big@client.test> SIZE=1000"),
        250,
        "MAIL with an acceptable SIZE",
    );
    expect(c.cmd("RSET"), 250, "RSET");

    // Not declared, but too big when sent: 552 after the terminator, nothing delivered.
    c.send(b"MAIL FROM:<big@client.test>\r\n");
    expect(c.reply(), 250, "MAIL");
    expect(c.cmd("RCPT TO:<too-big@example.com>"), 250, "RCPT");
    expect(c.cmd("DATA"), 354, "DATA");
    let mut data = b"Subject: too big\r\n\r\n".to_vec();
    let line = [b'x'; 98];
    while data.len() < 150_000 {
        data.extend_from_slice(&line);
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    let text = expect(c.reply(), 552, "message over SIZE");
    assert!(text.starts_with("552 5.3.4"), "{text}");
    expect(c.cmd("NOOP"), 250, "NOOP after 552");
    let r = c.cmd("DATA");
    assert!(
        matches!(r.code(), 503 | 554),
        "the refused transaction is over: {r:?}"
    );
    // The limit is on the message: one just under it is fine.
    expect(c.cmd("MAIL FROM:<big@client.test>"), 250, "MAIL");
    expect(c.cmd("RCPT TO:<just-fits@example.com>"), 250, "RCPT");
    expect(c.cmd("DATA"), 354, "DATA");
    let mut fits = b"Subject: fits\r\n\r\n".to_vec();
    while fits.len() + 100 <= 90_000 {
        fits.extend_from_slice(&line);
        fits.extend_from_slice(b"\r\n");
    }
    c.send(&fits);
    c.send(b".\r\n");
    expect(c.reply(), 250, "message under SIZE");
    expect(c.cmd("QUIT"), 221, "QUIT");
    let m = wait_for_rcpt(&sink, &daemon, "just-fits@example.com");
    assert!(m.data.ends_with(&fits), "message under SIZE altered");

    // Far over SIZE, sent without reading: the daemon must drain it, not hang or buffer.
    let mut c = Client::connect(daemon.smtp);
    open_data(&mut c, "way-too-big@example.com");
    let chunk: Vec<u8> = line
        .iter()
        .copied()
        .chain(*b"\r\n")
        .cycle()
        .take(100 * 10_000)
        .collect();
    // Whole 100-byte lines, so the terminator below starts a line.
    if c.send_repeatedly(&chunk, 8) && c.send(b".\r\n") {
        match c.reply() {
            Reply::Reply(552, _) => expect(c.cmd("QUIT"), 221, "QUIT after 552"),
            Reply::Closed => String::new(),
            other => panic!("8 MB message over a 100 kB SIZE: {other:?}"),
        };
    }
    assert_serves(&daemon, &sink, "over-size");
    assert_never_seen(&daemon, &sink, "too-big@example.com");
    assert_never_seen(&daemon, &sink, "way-too-big@example.com");
}

/// Make the next close of `stream` send a RST instead of a FIN.
fn set_linger_zero(stream: &TcpStream) {
    use std::os::unix::io::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
}

#[test]
fn a_disconnect_mid_data_delivers_nothing() {
    let (_dir, sink, daemon) = relay("");
    // Where the client stops: mid-line, after a CRLF, after CRLF "." and after CRLF "." CR
    // (each a prefix of the terminator), and with a reset instead of a close.
    let cases: [(&str, &[u8], bool); 6] = [
        ("mid-line", b"Subject: cut\r\n\r\nhalf a li", false),
        ("after-crlf", b"Subject: cut\r\n\r\na whole line\r\n", false),
        ("after-dot", b"Subject: cut\r\n\r\nline\r\n.", false),
        ("after-dot-cr", b"Subject: cut\r\n\r\nline\r\n.\r", false),
        ("reset", b"Subject: cut\r\n\r\nline\r\n", true),
        (
            "reset-after-dot-cr",
            b"Subject: cut\r\n\r\nline\r\n.\r",
            true,
        ),
    ];
    for (name, partial, reset) in cases {
        let rcpt = format!("cut-{name}@example.com");
        let mut c = Client::connect(daemon.smtp);
        open_data(&mut c, &rcpt);
        c.send(partial);
        if reset {
            set_linger_zero(&c.stream);
        } else {
            c.stream.shutdown(Shutdown::Write).unwrap();
            // A half-closed client: the server must close too, without accepting the
            // message (no 250).
            let replies = c.drain_until_closed();
            assert!(
                replies.iter().all(|r| r.code() != 250),
                "{name}: a message cut short was acknowledged: {replies:?}"
            );
        }
        drop(c);
        assert_serves(&daemon, &sink, &format!("cut-{name}"));
        assert_never_seen(&daemon, &sink, &rcpt);
    }
    // The log has no Delivery (nor anything else) for the cut messages, and the sink
    // only the normal ones.
    assert_eq!(sink.count(), cases.len(), "sink: {:#?}", sink.messages());
}

#[test]
fn a_client_sending_one_byte_at_a_time_completes() {
    let (_dir, sink, daemon) = relay("");
    let mut c = Client::connect(daemon.smtp);
    let body = b"Subject: slow\r\n\r\none byte at a time\r\n.dot line\r\n";
    let stuffed = b"Subject: slow\r\n\r\none byte at a time\r\n..dot line\r\n.\r\n";
    let steps: [(&[u8], u16); 6] = [
        (b"EHLO slow.client.test\r\n", 250),
        (b"MAIL FROM:<slow@client.test>\r\n", 250),
        (b"RCPT TO:<slow@example.com>\r\n", 250),
        (b"DATA\r\n", 354),
        (stuffed, 250),
        (b"QUIT\r\n", 221),
    ];
    for (bytes, code) in steps {
        for b in bytes {
            assert!(
                c.send(std::slice::from_ref(b)),
                "server closed on a slow client"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        expect(c.reply(), code, &String::from_utf8_lossy(bytes));
    }
    assert_eq!(c.reply(), Reply::Closed, "still open after QUIT");
    let m = wait_for_rcpt(&sink, &daemon, "slow@example.com");
    assert!(
        m.data.ends_with(body),
        "slow message altered: {:?}",
        String::from_utf8_lossy(&m.data)
    );
    assert_serves(&daemon, &sink, "slow-client");
}

#[test]
fn fifty_garbage_connections_do_not_stop_a_normal_client() {
    let (_dir, sink, daemon) = relay("");
    const N: usize = 50;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    let mut threads = Vec::new();
    for i in 0..N {
        let addr = daemon.smtp;
        let ready_tx = ready_tx.clone();
        let release_rx = release_rx.clone();
        threads.push(std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("garbage client connects");
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
            let bytes = garbage(1000 + i as u64, 16 * 1024);
            let _ = s.write_all(&bytes);
            let _ = ready_tx.send(());
            // Hold the connection (reading whatever comes) until the normal client is
            // done, or at most WAIT.
            let deadline = Instant::now() + WAIT;
            let mut buf = [0u8; 4096];
            loop {
                let released = !matches!(
                    release_rx.lock().unwrap().try_recv(),
                    Err(mpsc::TryRecvError::Empty)
                );
                if released || Instant::now() > deadline {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(0) => std::thread::sleep(Duration::from_millis(50)),
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }));
    }
    drop(ready_tx);
    let deadline = Instant::now() + WAIT;
    for n in 0..N {
        let left = deadline.saturating_duration_since(Instant::now());
        ready_rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("only {n} of {N} garbage clients got going"));
    }
    // All fifty have sent their garbage and are (or were) connected.
    assert_serves(&daemon, &sink, "fifty-garbage");
    drop(release_tx);
    for t in threads {
        t.join().expect("garbage client thread");
    }
    assert_serves(&daemon, &sink, "fifty-garbage-after");
}

/// A client from 127.0.0.1 (outside `relay.allow`) whose first recipient has just been
/// refused with 550 5.7.1, in an open transaction.
fn denied_client(daemon: &Daemon) -> Client {
    let mut c = Client::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    expect(c.cmd("MAIL FROM:<outsider@client.test>"), 250, "MAIL");
    let text = expect(
        c.cmd("RCPT TO:<denied@example.com>"),
        550,
        "RCPT from 127.0.0.1",
    );
    assert!(text.starts_with("550 5.7.1"), "{text}");
    c
}

#[test]
fn clients_outside_relay_allow_get_550_5_7_1() {
    // Exactly the brief's config: loopback is not allowed to relay. (10.x only appears in
    // the config; no traffic goes there.)
    let (_dir, sink, daemon) = relay(r#"relay: (allow: ["10.0.0.0/8"]),"#);
    let mut c = denied_client(&daemon);
    // Pipelined, every recipient is refused, and DATA has nothing to send to.
    c.send(
        b"RCPT TO:<denied-2@example.com>\r\nRCPT TO:<postmaster@example.org>\r\nDATA\r\n\
          Subject: should not be accepted\r\n.\r\nNOOP\r\n",
    );
    let r1 = c.reply();
    let r2 = c.reply();
    assert!(
        matches!(&r1, Reply::Reply(550, t) if t.starts_with("550 5.7.1")),
        "{r1:?}"
    );
    assert!(
        matches!(&r2, Reply::Reply(550, t) if t.starts_with("550 5.7.1")),
        "{r2:?}"
    );
    let r = c.reply();
    assert!(
        matches!(r.code(), 503 | 554),
        "DATA without recipients: {r:?}"
    );
    // What followed DATA is read as commands (refused), then NOOP.
    let r = c.reply();
    assert!(
        (500..600).contains(&r.code()),
        "message text taken as a command: {r:?}"
    );
    let r = c.reply();
    assert!(
        (500..600).contains(&r.code()),
        "lone dot taken as a command: {r:?}"
    );
    expect(c.reply(), 250, "NOOP");
    expect(c.cmd("QUIT"), 221, "QUIT");
    // Nothing was queued (an empty spool: nothing is left to reach the sink); the daemon
    // still answers.
    daemon.wait_spool_empty(WAIT);
    assert_eq!(
        sink.count(),
        0,
        "denied mail was relayed: {:#?}",
        sink.messages()
    );
    assert!(
        daemon
            .log_records()
            .iter()
            .all(|r| r["type"] != "Reception"),
        "denied mail was received: {:#?}",
        daemon.log_records()
    );
    let mut c = Client::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO after denial");
    expect(c.cmd("QUIT"), 221, "QUIT");
    drop(daemon);

    // Same denial with a second loopback address allowed: 127.0.0.1 is refused while a
    // client bound to 127.0.0.2 relays end to end.
    let (_dir, sink, daemon) = relay(r#"relay: (allow: ["10.0.0.0/8", "127.0.0.2/32"]),"#);
    let mut c = denied_client(&daemon);
    expect(c.cmd("QUIT"), 221, "QUIT");
    let Some(stream) = connect_from("127.0.0.2", daemon.smtp) else {
        eprintln!("cannot bind 127.0.0.2 here; skipping the allowed-client half");
        return;
    };
    let mut c = Client::wrap(stream);
    expect(
        c.cmd("EHLO allowed.client.test"),
        250,
        "EHLO from 127.0.0.2",
    );
    expect(c.cmd("MAIL FROM:<insider@client.test>"), 250, "MAIL");
    expect(
        c.cmd("RCPT TO:<allowed@example.com>"),
        250,
        "RCPT from 127.0.0.2",
    );
    expect(c.cmd("DATA"), 354, "DATA");
    c.send(b"Subject: allowed\r\n\r\nfrom 127.0.0.2\r\n.\r\n");
    expect(c.reply(), 250, "end of DATA");
    expect(c.cmd("QUIT"), 221, "QUIT");
    let m = wait_for_rcpt(&sink, &daemon, "allowed@example.com");
    assert!(
        String::from_utf8_lossy(&m.data).contains("127.0.0.2"),
        "Received header peer"
    );
    daemon.wait_spool_empty(WAIT);
    assert_eq!(sink.count(), 1, "sink: {:#?}", sink.messages());
}

/// A TCP connection to `to` from the loopback address `from` (None if it cannot bind).
fn connect_from(from: &str, to: SocketAddr) -> Option<TcpStream> {
    use std::os::unix::io::FromRawFd;
    let SocketAddr::V4(to) = to else { return None };
    let from: std::net::Ipv4Addr = from.parse().unwrap();
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let local = sockaddr(from, 0);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
            libc::close(fd);
            return None;
        }
        let remote = sockaddr(*to.ip(), to.port());
        if libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0 {
            libc::close(fd);
            return None;
        }
        Some(TcpStream::from_raw_fd(fd))
    }
}

#[test]
fn a_client_that_stalls_mid_data_is_timed_out_and_nothing_is_delivered() {
    let (_dir, sink, daemon) = relay(r#"smtp: (idle_timeout: "2s"),"#);
    let mut c = Client::connect(daemon.smtp);
    open_data(&mut c, "stalled@example.com");
    c.send(b"Subject: stalled\r\n\r\nhalf a message\r\n.");
    // Then nothing: the daemon must give up on its own (421) and close.
    let replies = c.drain_until_closed();
    assert!(
        replies.iter().all(|r| r.code() != 250),
        "a stalled message was acknowledged: {replies:?}"
    );
    assert!(
        replies.iter().any(|r| r.code() == 421),
        "no 421 before the idle close: {replies:?}"
    );
    assert_serves(&daemon, &sink, "stalled");
    assert_never_seen(&daemon, &sink, "stalled@example.com");
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
