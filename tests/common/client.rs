//! A byte-level SMTP client for protocol scenarios.
//!
//! [`RawClient`] writes exactly the bytes a test gives it and reads replies as
//! `(code, text)`, code 0 meaning the server closed the connection; [`expect`] asserts a
//! reply's code and hands back its text, and the `RawClient` shortcuts ([`RawClient::ok`],
//! [`RawClient::open_data`], [`RawClient::end_data`]) cover the plain MAIL / RCPT / DATA
//! steps many scenarios share. (The bad-input scenarios use the stricter
//! [`super::abuse::Client`], which tells a hung server from a closed one.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Assert a reply's code, showing `what` and the reply text on failure; returns the text.
#[track_caller]
pub fn expect(reply: (u16, String), code: u16, what: &str) -> String {
    assert_eq!(reply.0, code, "{what}: got {:?}", reply.1);
    reply.1
}

/// Read one (possibly multi-line) reply from `r`: its code and its lines joined by "\n".
/// Code 0 means the server closed the connection.
pub fn read_reply(r: &mut impl BufRead) -> (u16, String) {
    let mut text = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return (0, text.join("\n")),
            Ok(_) => {}
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        let last = line.as_bytes().get(3) != Some(&b'-');
        text.push(line);
        if last {
            return (code, text.join("\n"));
        }
    }
}

/// A byte-level SMTP client for protocol scenarios.
pub struct RawClient {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawClient {
    /// Connect and read the greeting (asserting 220).
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = RawClient { stream, reader };
        let (code, text) = c.reply();
        assert_eq!(code, 220, "greeting: {text}");
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Read one (possibly multi-line) reply: its code and its lines joined by "\n".
    /// Code 0 means the server closed the connection.
    pub fn reply(&mut self) -> (u16, String) {
        read_reply(&mut self.reader)
    }

    /// Send a command line (CRLF added) and read its reply.
    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Send a command line and assert its reply code; returns the reply text.
    #[track_caller]
    pub fn ok(&mut self, line: &str, code: u16) -> String {
        expect(self.cmd(line), code, line)
    }

    /// `MAIL FROM:<from>`, `RCPT TO:<rcpt>` for each recipient (all 250), then `DATA`
    /// (354).
    #[track_caller]
    pub fn open_data(&mut self, from: &str, rcpts: &[&str]) {
        self.ok(&format!("MAIL FROM:<{from}>"), 250);
        for rcpt in rcpts {
            self.ok(&format!("RCPT TO:<{rcpt}>"), 250);
        }
        self.ok("DATA", 354);
    }

    /// Send `stuffed` (the message, already dot-stuffed, ending in CRLF) and the `.`
    /// terminator; assert the 250 and return its text.
    #[track_caller]
    pub fn end_data(&mut self, stuffed: &[u8]) -> String {
        let mut data = stuffed.to_vec();
        data.extend_from_slice(b".\r\n");
        self.send(&data);
        expect(self.reply(), 250, "end of DATA")
    }

    /// Whether the server has closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}
