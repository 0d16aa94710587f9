//! One SMTP client connection: greeting, EHLO, optionally STARTTLS (rustls, then EHLO
//! again), then transactions — with PIPELINING (MAIL, every RCPT and DATA in one write,
//! the stuffed body plus terminator in a second) or in lockstep — and QUIT. Replies are
//! read from a large buffered reader.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::message::encode_data;

/// Read/write/connect timeout per operation.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Longest reply line accepted.
const MAX_LINE: u64 = 8192;
const EHLO_NAME: &str = "source.impulse.test";

/// A complete server reply: its code and its lines (without CRLF) joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How a transaction ended when the connection itself stayed usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx after the end of DATA.
    Accepted,
    /// The first refusing reply (of MAIL, every RCPT refused, DATA, or end of DATA).
    Rejected(Reply),
}

/// The name a STARTTLS client checks the server's certificate against.
pub const TLS_NAME: &str = "localhost";

/// The transport under the session.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// Only while the plain stream moves into TLS.
    Moving,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Moving => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Moving => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Moving => Ok(()),
        }
    }
}

/// An open SMTP session.
pub struct Connection {
    io: BufReader<Stream>,
    pipelining: bool,
    line: Vec<u8>,
    out: Vec<u8>,
}

impl Connection {
    /// Connect, read the greeting, send EHLO; with `tls`, STARTTLS (the certificate
    /// checked for [`TLS_NAME`]) and EHLO again. Pipelining is used when `pipelining` is
    /// asked and the server advertises it.
    pub fn open(
        addr: SocketAddr,
        pipelining: bool,
        tls: Option<&Arc<ClientConfig>>,
    ) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut c = Connection {
            io: BufReader::with_capacity(64 << 10, Stream::Plain(stream)),
            pipelining: false,
            line: Vec::with_capacity(512),
            out: Vec::with_capacity(16 << 10),
        };
        expect(c.read_reply()?, 220, "greeting")?;
        let mut ehlo = c.ehlo()?;
        if let Some(config) = tls {
            if !has_keyword(&ehlo, "STARTTLS") {
                return Err(bad("the server does not offer STARTTLS".into()));
            }
            c.write(b"STARTTLS\r\n")?;
            expect(c.read_reply()?, 220, "STARTTLS")?;
            if !c.io.buffer().is_empty() {
                return Err(bad("the server sent more after its 220 to STARTTLS".into()));
            }
            let Stream::Plain(tcp) = std::mem::replace(c.io.get_mut(), Stream::Moving) else {
                return Err(bad("STARTTLS twice".into()));
            };
            let name = ServerName::try_from(TLS_NAME).map_err(|e| bad(e.to_string()))?;
            let conn = ClientConnection::new(Arc::clone(config), name)
                .map_err(|e| bad(format!("TLS: {e}")))?;
            *c.io.get_mut() = Stream::Tls(Box::new(StreamOwned::new(conn, tcp)));
            ehlo = c.ehlo()?;
        }
        c.pipelining = pipelining && has_keyword(&ehlo, "PIPELINING");
        Ok(c)
    }

    fn ehlo(&mut self) -> io::Result<Reply> {
        self.write(format!("EHLO {EHLO_NAME}\r\n").as_bytes())?;
        expect(self.read_reply()?, 250, "EHLO")
    }

    /// Write `bytes` out (through TLS when it is on).
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let s = self.io.get_mut();
        s.write_all(bytes)?;
        s.flush()
    }

    /// Write out the command buffer `out`.
    fn send_out(&mut self) -> io::Result<()> {
        let s = self.io.get_mut();
        s.write_all(&self.out)?;
        s.flush()
    }

    /// Whether the session is encrypted.
    pub fn tls(&self) -> bool {
        matches!(self.io.get_ref(), Stream::Tls(_))
    }

    /// Whether transactions on this connection are pipelined.
    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    /// Run one transaction. `Err` means the connection is unusable (I/O error, closed,
    /// or a reply that breaks the protocol).
    pub fn send(&mut self, sender: &str, rcpts: &[String], msg: &[u8]) -> io::Result<Outcome> {
        if self.pipelining {
            self.send_pipelined(sender, rcpts, msg)
        } else {
            self.send_lockstep(sender, rcpts, msg)
        }
    }

    fn send_pipelined(
        &mut self,
        sender: &str,
        rcpts: &[String],
        msg: &[u8],
    ) -> io::Result<Outcome> {
        self.out.clear();
        push_envelope(&mut self.out, sender, rcpts);
        self.out.extend_from_slice(b"DATA\r\n");
        self.send_out()?;
        let mail = self.read_reply()?;
        let mut first_refusal = (!mail.ok()).then(|| mail.clone());
        let mut accepted = 0;
        for _ in rcpts {
            let r = self.read_reply()?;
            if r.ok() {
                accepted += 1;
            } else if first_refusal.is_none() {
                first_refusal = Some(r);
            }
        }
        let data = self.read_reply()?;
        if data.code == 354 {
            if mail.ok() && accepted > 0 {
                return self.send_body(msg);
            }
            // RFC 2920 3.1: nothing to deliver, end the (empty) data at once.
            self.write(b".\r\n")?;
            self.read_reply()?;
            return Ok(Outcome::Rejected(first_refusal.unwrap_or(data)));
        }
        if mail.ok() {
            self.rset()?;
        }
        Ok(Outcome::Rejected(first_refusal.unwrap_or(data)))
    }

    fn send_lockstep(&mut self, sender: &str, rcpts: &[String], msg: &[u8]) -> io::Result<Outcome> {
        self.out.clear();
        push_envelope(&mut self.out, sender, &[]);
        self.send_out()?;
        let mail = self.read_reply()?;
        if !mail.ok() {
            return Ok(Outcome::Rejected(mail));
        }
        let mut first_refusal = None;
        let mut accepted = 0;
        for rcpt in rcpts {
            self.out.clear();
            push_rcpt(&mut self.out, rcpt);
            self.send_out()?;
            let r = self.read_reply()?;
            if r.ok() {
                accepted += 1;
            } else if first_refusal.is_none() {
                first_refusal = Some(r);
            }
        }
        if accepted == 0 {
            self.rset()?;
            return Ok(Outcome::Rejected(first_refusal.unwrap_or(mail)));
        }
        self.write(b"DATA\r\n")?;
        let data = self.read_reply()?;
        if data.code != 354 {
            self.rset()?;
            return Ok(Outcome::Rejected(data));
        }
        self.send_body(msg)
    }

    fn send_body(&mut self, msg: &[u8]) -> io::Result<Outcome> {
        self.out.clear();
        encode_data(msg, &mut self.out);
        self.send_out()?;
        let end = self.read_reply()?;
        Ok(if end.ok() {
            Outcome::Accepted
        } else {
            Outcome::Rejected(end)
        })
    }

    fn rset(&mut self) -> io::Result<()> {
        self.write(b"RSET\r\n")?;
        expect(self.read_reply()?, 250, "RSET").map(drop)
    }

    /// Say QUIT and wait for the reply (errors ignored: the session is over either way).
    pub fn quit(mut self) {
        if self.write(b"QUIT\r\n").is_ok() {
            let _ = self.read_reply();
        }
    }

    /// Read one complete (possibly multi-line) reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let mut text = String::new();
        loop {
            self.line.clear();
            let n = self
                .io
                .by_ref()
                .take(MAX_LINE)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by server",
                ));
            }
            let line = trim_eol(&self.line);
            let (code, last) = parse_reply_line(line).ok_or_else(|| {
                bad(format!(
                    "malformed reply line {:?}",
                    String::from_utf8_lossy(line)
                ))
            })?;
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&String::from_utf8_lossy(line));
            if last {
                return Ok(Reply { code, text });
            }
        }
    }
}

/// Whether an EHLO reply lists `keyword`.
fn has_keyword(ehlo: &Reply, keyword: &str) -> bool {
    ehlo.text.lines().any(|l| {
        l.get(4..)
            .and_then(|k| k.split_ascii_whitespace().next())
            .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
    })
}

fn push_envelope(out: &mut Vec<u8>, sender: &str, rcpts: &[String]) {
    out.extend_from_slice(b"MAIL FROM:<");
    out.extend_from_slice(sender.as_bytes());
    out.extend_from_slice(b">\r\n");
    for r in rcpts {
        push_rcpt(out, r);
    }
}

fn push_rcpt(out: &mut Vec<u8>, rcpt: &str) {
    out.extend_from_slice(b"RCPT TO:<");
    out.extend_from_slice(rcpt.as_bytes());
    out.extend_from_slice(b">\r\n");
}

/// `250-text` → (250, false); `250 text` or `250` → (250, true).
fn parse_reply_line(line: &[u8]) -> Option<(u16, bool)> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None | Some(b' ') => Some((code, true)),
        Some(b'-') => Some((code, false)),
        _ => None,
    }
}

fn expect(r: Reply, code: u16, what: &str) -> io::Result<Reply> {
    if r.code == code {
        Ok(r)
    } else {
        Err(bad(format!("{what}: unexpected reply {r}")))
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(parse_reply_line(b"250-PIPELINING"), Some((250, false)));
        assert_eq!(parse_reply_line(b"354 go"), Some((354, true)));
        assert_eq!(parse_reply_line(b"221"), Some((221, true)));
        assert_eq!(parse_reply_line(b"25"), None);
        assert_eq!(parse_reply_line(b"650 x"), None);
        assert_eq!(parse_reply_line(b"250x"), None);
        assert_eq!(parse_reply_line(b"abc def"), None);
    }
}
