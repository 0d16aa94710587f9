//! The strict client and the checks of the bad-input scenarios (`smtp_garbage`,
//! `smtp_smuggling`, `smtp_limits`, `relay_denied`).
//!
//! [`Client`] tells a closed connection ([`Reply::Closed`]) from a hung server (which
//! fails the test) and survives the server closing while it writes; [`expect`] asserts a
//! [`Reply`]'s code. [`assert_serves`] is the check after every case: the daemon still
//! relays a normal message end to end; [`assert_never_seen`] that a refused recipient
//! reached neither the sink nor the log. [`garbage`] makes deterministic junk biased
//! towards SMTP framing bytes, and [`open_data`] gets a transaction to its 354.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use impulse_sink::Sink;

use super::log::has;
use super::{wait_for_rcpt, Daemon};

/// Upper bound of every wait in the bad-input scenarios.
pub const WAIT: Duration = Duration::from_secs(30);
/// How long one read may block before the server counts as hung.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// What reading one reply gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A complete reply: code and lines joined by "\n".
    Reply(u16, String),
    /// The server closed the connection (EOF or reset) before a complete reply.
    Closed,
}

impl Reply {
    pub fn code(&self) -> u16 {
        match self {
            Reply::Reply(code, _) => *code,
            Reply::Closed => 0,
        }
    }
}

/// A raw SMTP client that tells a closed connection from a hung server (which fails the
/// test) and survives the server closing while it writes.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to impulsed");
        Client::wrap(stream)
    }

    pub fn wrap(stream: TcpStream) -> Client {
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
    pub fn send(&mut self, bytes: &[u8]) -> bool {
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
    pub fn send_repeatedly(&mut self, bytes: &[u8], times: usize) -> bool {
        (0..times).all(|_| self.send(bytes))
    }

    /// Read one reply; panics if the server neither answers nor closes in time.
    pub fn reply(&mut self) -> Reply {
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
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Read replies until the connection is closed; panics if it stays open (hangs).
    pub fn drain_until_closed(&mut self) -> Vec<Reply> {
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
pub fn expect(reply: Reply, code: u16, what: &str) -> String {
    match reply {
        Reply::Reply(c, text) if c == code => text,
        other => panic!("{what}: expected {code}, got {other:?}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), biased towards the bytes that matter
/// to SMTP framing.
pub fn garbage(seed: u64, len: usize) -> Vec<u8> {
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
pub fn assert_serves(daemon: &Daemon, sink: &Sink, tag: &str) {
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

/// Neither the sink nor the daemon's log ever saw `rcpt` get in (a Rejection record of its
/// refusal is fine). Call after [`assert_serves`],
/// so that any reception of `rcpt` would already be logged.
#[track_caller]
pub fn assert_never_seen(daemon: &Daemon, sink: &Sink, rcpt: &str) {
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
        // A refusal is logged (Rejection); anything else would mean it got in.
        .filter(|r| r["type"] != "Rejection")
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
pub fn open_data(c: &mut Client, rcpt: &str) {
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    expect(c.cmd("MAIL FROM:<sender@client.test>"), 250, "MAIL");
    expect(c.cmd(&format!("RCPT TO:<{rcpt}>")), 250, "RCPT");
    expect(c.cmd("DATA"), 354, "DATA");
}
