//! One SMTP server session on one connection: greeting, EHLO/HELO, STARTTLS, MAIL, RCPT,
//! DATA or BDAT (when CHUNKING is on), RSET, NOOP, QUIT. Commands are read from a large buffered reader; replies are
//! collected in an output buffer that is written out whenever no further complete command
//! is already buffered, so a pipelined batch is answered in order with one write.
//!
//! STARTTLS (when configured) ends the plaintext part: after the 220 the read buffer is
//! dropped unread (nothing pipelined behind STARTTLS is ever taken as a command), the
//! handshake runs on the same socket, and the session continues as after a fresh greeting
//! (RFC 3207): the client must EHLO again.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use rustls::ServerConfig;

use crate::config::Stage;
use crate::data::{self, DataEnd};
use crate::record::{ReceivedMessage, Recorder};
use crate::tls::{self, Stream};

/// Largest message accepted (advertised as SIZE).
pub(crate) const MAX_SIZE: usize = 64 << 20;
/// Longest command line accepted.
const MAX_COMMAND: u64 = 4096;
/// Most recipients per transaction.
const MAX_RECIPIENTS: usize = 1000;
const READ_BUFFER: usize = 64 << 10;
/// Replies held back beyond this size are written out even mid-batch.
const WRITE_BUFFER: usize = 16 << 10;

/// What every session of a sink offers.
pub(crate) struct Settings {
    pub(crate) pipelining: bool,
    /// Offer STARTTLS with this configuration.
    pub(crate) tls: Option<Arc<ServerConfig>>,
    pub(crate) smtputf8: bool,
    pub(crate) dsn: bool,
    pub(crate) chunking: bool,
}

/// Serve one accepted connection until QUIT, EOF, an I/O error or a failed TLS
/// handshake. The connection stops counting as open when QUIT is read (before the 221
/// goes out, so a client that waits for 221 before reconnecting is never seen twice) or
/// when the session ends.
pub(crate) fn serve(
    stream: TcpStream,
    rec: &Recorder,
    settings: &Settings,
    conn: usize,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut s = Session {
        rec,
        settings,
        conn,
        peer,
        helo: String::new(),
        reader: BufReader::with_capacity(READ_BUFFER, Stream::Plain(stream)),
        out: Vec::with_capacity(WRITE_BUFFER),
        tls: None,
        greeted: false,
        sender: None,
        recipients: Vec::new(),
        body: Vec::new(),
        accepted: 0,
        smtputf8: false,
        requiretls: false,
        mail_dsn: String::new(),
        rcpt_dsn: Vec::new(),
        chunks: false,
        open: Open { rec, open: true },
    };
    s.reply("220 sink.impulse.test ESMTP impulse-sink ready")?;
    s.flush()?;
    loop {
        match s.run()? {
            Next::StartTls(config) => {
                // `into_inner` drops whatever is buffered behind the STARTTLS line. If the
                // handshake fails, `s` is dropped without its reader and `Open` still
                // ends the connection's count.
                let (stream, negotiated) = tls::accept(s.reader.into_inner(), config)?;
                s.reader = BufReader::with_capacity(READ_BUFFER, stream);
                s.tls_started(negotiated);
            }
            Next::Continue | Next::Quit => {
                s.reader.get_mut().finish();
                return Ok(());
            }
        }
    }
}

struct Session<'a> {
    rec: &'a Recorder,
    settings: &'a Settings,
    conn: usize,
    /// The client's address.
    peer: Option<std::net::SocketAddr>,
    /// The name the client gave in its last EHLO or HELO.
    helo: String,
    reader: BufReader<Stream>,
    /// Replies not yet written.
    out: Vec<u8>,
    /// What TLS negotiated, once STARTTLS completed.
    tls: Option<String>,
    greeted: bool,
    /// MAIL FROM of the open transaction.
    sender: Option<String>,
    recipients: Vec<String>,
    /// DATA buffer, reused between messages when bodies are not recorded.
    body: Vec<u8>,
    accepted: usize,
    /// The open transaction's MAIL carried SMTPUTF8, REQUIRETLS.
    smtputf8: bool,
    requiretls: bool,
    /// DSN parameters of the open transaction's MAIL and of each accepted RCPT.
    mail_dsn: String,
    rcpt_dsn: Vec<String>,
    /// BDAT chunks of the open transaction were taken (DATA is then out of order).
    chunks: bool,
    open: Open<'a>,
}

/// Counts the connection as open until [`Open::close`] or drop.
struct Open<'a> {
    rec: &'a Recorder,
    open: bool,
}

impl Open<'_> {
    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            self.rec.connection_closed();
        }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// What to do after a command.
enum Next {
    Continue,
    /// QUIT or EOF: the session is over.
    Quit,
    /// The 220 to STARTTLS is out; hand the socket to TLS.
    StartTls(Arc<ServerConfig>),
}

impl Session<'_> {
    /// Answer commands until the session ends or switches to TLS.
    fn run(&mut self) -> io::Result<Next> {
        let mut line = Vec::with_capacity(512);
        loop {
            line.clear();
            let n = self
                .reader
                .by_ref()
                .take(MAX_COMMAND)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(Next::Quit);
            }
            let next = if line.ends_with(b"\n") {
                self.command(trim_eol(&line))?
            } else {
                self.skip_line()?;
                self.reply("500 5.5.2 line too long")?;
                Next::Continue
            };
            if !matches!(next, Next::Continue) {
                self.flush()?;
                return Ok(next);
            }
            if !self.complete_line_buffered() || self.out.len() >= WRITE_BUFFER {
                self.flush()?;
            }
        }
    }

    fn command(&mut self, line: &[u8]) -> io::Result<Next> {
        let split = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let (verb, arg) = (&line[..split], trim(&line[split..]));
        let verb = verb.to_ascii_uppercase();
        match &verb[..] {
            b"EHLO" => self.ehlo(arg)?,
            b"HELO" => {
                self.reset();
                self.greeted = true;
                self.helo = String::from_utf8_lossy(arg).into_owned();
                self.reply("250 sink.impulse.test")?;
            }
            b"MAIL" => self.mail(arg)?,
            b"RCPT" => self.rcpt(arg)?,
            b"DATA" => self.data()?,
            b"BDAT" if self.settings.chunking => self.bdat(arg)?,
            b"RSET" => {
                self.reset();
                self.reply("250 2.0.0 Ok")?;
            }
            b"NOOP" => self.reply("250 2.0.0 Ok")?,
            b"VRFY" => self.reply("252 2.5.0 Cannot VRFY user")?,
            b"STARTTLS" => return self.starttls(arg),
            b"QUIT" => {
                self.open.close();
                self.reply("221 2.0.0 Bye")?;
                return Ok(Next::Quit);
            }
            b"" => self.reply("500 5.5.2 Empty command")?,
            _ => self.reply("500 5.5.1 Command unrecognized")?,
        }
        Ok(Next::Continue)
    }

    fn ehlo(&mut self, arg: &[u8]) -> io::Result<()> {
        if arg.is_empty() {
            return self.reply("501 5.5.4 EHLO requires a domain");
        }
        self.reset();
        self.greeted = true;
        self.helo = String::from_utf8_lossy(arg).into_owned();
        let starttls = self.settings.tls.is_some() && self.tls.is_none();
        let w = &mut self.out;
        w.write_all(b"250-sink.impulse.test greets ")?;
        w.write_all(arg)?;
        w.write_all(b"\r\n")?;
        if self.settings.pipelining {
            w.write_all(b"250-PIPELINING\r\n")?;
        }
        if starttls {
            w.write_all(b"250-STARTTLS\r\n")?;
        }
        if self.settings.smtputf8 {
            w.write_all(b"250-SMTPUTF8\r\n")?;
        }
        if self.tls.is_some() {
            w.write_all(b"250-REQUIRETLS\r\n")?;
        }
        if self.settings.dsn {
            w.write_all(b"250-DSN\r\n")?;
        }
        if self.settings.chunking {
            w.write_all(b"250-CHUNKING\r\n")?;
        }
        write!(
            w,
            "250-8BITMIME\r\n250-SIZE {MAX_SIZE}\r\n250 ENHANCEDSTATUSCODES\r\n"
        )
    }

    fn starttls(&mut self, arg: &[u8]) -> io::Result<Next> {
        let config = match &self.settings.tls {
            Some(config) if self.tls.is_none() => Arc::clone(config),
            _ => {
                self.reply("502 5.5.1 STARTTLS not offered")?;
                return Ok(Next::Continue);
            }
        };
        if !arg.is_empty() {
            self.reply("501 5.5.4 Syntax: STARTTLS")?;
        } else if self.sender.is_some() {
            self.reply("503 5.5.1 STARTTLS not allowed in a mail transaction")?;
        } else {
            self.reply("220 2.0.0 Ready to start TLS")?;
            return Ok(Next::StartTls(config));
        }
        Ok(Next::Continue)
    }

    /// TLS is up: forget the greeting (RFC 3207, section 4.2) and note what was negotiated.
    fn tls_started(&mut self, negotiated: String) {
        self.reset();
        self.greeted = false;
        self.tls = Some(negotiated);
    }

    fn mail(&mut self, arg: &[u8]) -> io::Result<()> {
        if !self.greeted {
            return self.reply("503 5.5.1 EHLO or HELO first");
        }
        if self.sender.is_some() {
            return self.reply("503 5.5.1 Nested MAIL command");
        }
        let Some((addr, params)) = path_arg(arg, b"FROM:") else {
            return self.reply("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        for p in params.split(|&b| b == b' ').filter(|p| !p.is_empty()) {
            if p.len() > 5 && p[..5].eq_ignore_ascii_case(b"SIZE=") {
                let size = std::str::from_utf8(&p[5..])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                match size {
                    Some(n) if n > MAX_SIZE as u64 => {
                        return self.reply("552 5.3.4 Message size exceeds fixed limit")
                    }
                    Some(_) => {}
                    None => return self.reply("501 5.5.4 Bad SIZE parameter"),
                }
            } else if p.eq_ignore_ascii_case(b"REQUIRETLS") {
                if self.tls.is_none() {
                    return self.reply("530 5.7.10 REQUIRETLS needs TLS");
                }
                self.requiretls = true;
            } else if p.eq_ignore_ascii_case(b"SMTPUTF8") {
                if !self.settings.smtputf8 {
                    return self.reply("555 5.5.4 SMTPUTF8 not offered");
                }
                self.smtputf8 = true;
            } else if dsn_param(p, &[b"RET=", b"ENVID="]) {
                if !self.settings.dsn {
                    return self.reply("555 5.5.4 DSN not offered");
                }
                push_param(&mut self.mail_dsn, p);
            }
        }
        self.sender = Some(addr);
        self.reply("250 2.1.0 Ok")
    }

    fn rcpt(&mut self, arg: &[u8]) -> io::Result<()> {
        if self.sender.is_none() {
            return self.reply("503 5.5.1 MAIL first");
        }
        let Some((addr, params)) = path_arg(arg, b"TO:") else {
            return self.reply("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        let mut dsn = String::new();
        for p in params.split(|&b| b == b' ').filter(|p| !p.is_empty()) {
            if dsn_param(p, &[b"NOTIFY=", b"ORCPT="]) {
                if !self.settings.dsn {
                    return self.reply("555 5.5.4 DSN not offered");
                }
                push_param(&mut dsn, p);
            }
        }
        if addr.is_empty() {
            return self.reply("501 5.1.3 Bad recipient address syntax");
        }
        if self.recipients.len() >= MAX_RECIPIENTS {
            return self.reply("452 4.5.3 Too many recipients");
        }
        if let Some(reply) = self.rec.rule_reply(Stage::Rcpt, [addr.as_str()]) {
            return self.reply(&reply);
        }
        self.recipients.push(addr);
        self.rcpt_dsn.push(dsn);
        self.reply("250 2.1.5 Ok")
    }

    fn data(&mut self) -> io::Result<()> {
        if self.sender.is_none() {
            return self.reply("503 5.5.1 MAIL first");
        }
        if self.chunks {
            return self.reply("503 5.5.1 BDAT in progress");
        }
        if self.recipients.is_empty() {
            return self.reply("554 5.5.1 No valid recipients");
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        if !self.complete_line_buffered() {
            self.flush()?;
        }
        self.body.clear();
        match data::read_data(&mut self.reader, &mut self.body, MAX_SIZE)? {
            DataEnd::Eof => Err(io::ErrorKind::UnexpectedEof.into()),
            DataEnd::TooBig => {
                self.reset();
                self.reply("552 5.3.4 Message size exceeds fixed limit")
            }
            DataEnd::Complete => self.finish_message(),
        }
    }

    /// `BDAT size [LAST]` (RFC 3030): exactly `size` octets follow the command line; they
    /// are read (and dropped when the transaction cannot take them) whatever the reply.
    fn bdat(&mut self, arg: &[u8]) -> io::Result<()> {
        let mut words = arg.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let size = words
            .next()
            .and_then(|w| std::str::from_utf8(w).ok())
            .and_then(|w| w.parse::<u64>().ok());
        let last = match words.next() {
            None => Some(false),
            Some(w) if w.eq_ignore_ascii_case(b"LAST") => Some(true),
            Some(_) => None,
        };
        let (Some(size), Some(last), None) = (size, last, words.next()) else {
            return self.reply("501 5.5.4 Syntax: BDAT size [LAST]");
        };
        let refusal = if self.sender.is_none() {
            Some("503 5.5.1 MAIL first")
        } else if self.recipients.is_empty() {
            Some("554 5.5.1 No valid recipients")
        } else if self.body_len_after(size) > MAX_SIZE as u64 {
            Some("552 5.3.4 Message size exceeds fixed limit")
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let dropped = io::copy(&mut self.reader.by_ref().take(size), &mut io::sink())?;
            if dropped < size {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.reset();
            return self.reply(refusal);
        }
        if !self.chunks {
            self.body.clear();
            self.chunks = true;
        }
        let read = self
            .reader
            .by_ref()
            .take(size)
            .read_to_end(&mut self.body)?;
        if (read as u64) < size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if last {
            return self.finish_message();
        }
        self.reply(&format!("250 2.0.0 {size} octets received"))
    }

    /// The open transaction's data size once `more` octets are added.
    fn body_len_after(&self, more: u64) -> u64 {
        let held = if self.chunks { self.body.len() } else { 0 };
        held as u64 + more
    }

    fn finish_message(&mut self) -> io::Result<()> {
        let ruled = self
            .rec
            .rule_reply(Stage::Data, self.recipients.iter().map(String::as_str));
        if let Some(reply) = ruled {
            self.reset();
            return self.reply(&reply);
        }
        let size = self.body.len();
        let message_id = data::message_id(&self.body);
        let msg = ReceivedMessage {
            sender: self.sender.take().unwrap_or_default(),
            recipients: std::mem::take(&mut self.recipients),
            data: std::mem::take(&mut self.body),
            connection: self.conn,
            message_id,
            size,
            tls: self.tls.clone(),
            peer: self.peer,
            helo: self.helo.clone(),
            smtputf8: std::mem::take(&mut self.smtputf8),
            requiretls: std::mem::take(&mut self.requiretls),
            mail_dsn: std::mem::take(&mut self.mail_dsn),
            rcpt_dsn: std::mem::take(&mut self.rcpt_dsn),
            chunked: self.chunks,
            received_at: Instant::now(),
        };
        if let Some(spare) = self.rec.accept(msg) {
            self.body = spare;
        }
        self.accepted += 1;
        self.reset();
        write!(
            self.out,
            "250 2.0.0 Ok: queued as C{}M{}\r\n",
            self.conn, self.accepted
        )
    }

    /// Is a whole further line already buffered (a pipelined command or early data)?
    /// Replies are held back only then, so no client ever waits for one.
    fn complete_line_buffered(&self) -> bool {
        self.reader.buffer().contains(&b'\n')
    }

    /// Write out the held-back replies.
    fn flush(&mut self) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(&self.out)?;
        stream.flush()?;
        self.out.clear();
        Ok(())
    }

    fn reset(&mut self) {
        self.sender = None;
        self.recipients.clear();
        self.smtputf8 = false;
        self.requiretls = false;
        self.mail_dsn.clear();
        self.rcpt_dsn.clear();
        self.chunks = false;
    }

    fn reply(&mut self, line: &str) -> io::Result<()> {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Discard the rest of an overlong command line.
    fn skip_line(&mut self) -> io::Result<()> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                self.reader.consume(i + 1);
                return Ok(());
            }
            let n = buf.len();
            self.reader.consume(n);
        }
    }
}

/// Parse `FROM:<addr> params` / `TO:<addr> params`: the address without angle brackets
/// (source route dropped) and the parameter text.
fn path_arg<'a>(arg: &'a [u8], keyword: &[u8]) -> Option<(String, &'a [u8])> {
    if arg.len() < keyword.len() || !arg[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = trim(&arg[keyword.len()..]);
    let (path, params) = if rest.first() == Some(&b'<') {
        let close = rest.iter().position(|&b| b == b'>')?;
        (&rest[1..close], &rest[close + 1..])
    } else {
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        (&rest[..end], &rest[end..])
    };
    let path = match path.iter().position(|&b| b == b':') {
        Some(i) if path.first() == Some(&b'@') => &path[i + 1..],
        _ => path,
    };
    let addr = std::str::from_utf8(path).ok()?.to_string();
    Some((addr, trim(params)))
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether parameter `p` starts with one of `names` (ASCII case-insensitive).
fn dsn_param(p: &[u8], names: &[&[u8]]) -> bool {
    names
        .iter()
        .any(|n| p.len() > n.len() && p[..n.len()].eq_ignore_ascii_case(n))
}

/// Append `p` to a space-separated parameter list.
fn push_param(list: &mut String, p: &[u8]) {
    if !list.is_empty() {
        list.push(' ');
    }
    list.push_str(&String::from_utf8_lossy(p));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_args() {
        let (a, p) = path_arg(b"FROM:<a@b.c> SIZE=10 BODY=8BITMIME", b"FROM:").unwrap();
        assert_eq!((a.as_str(), p), ("a@b.c", &b"SIZE=10 BODY=8BITMIME"[..]));
        let (a, p) = path_arg(b"from: <>", b"FROM:").unwrap();
        assert_eq!((a.as_str(), p), ("", &b""[..]));
        let (a, _) = path_arg(b"TO:<@relay.x:u@d>", b"TO:").unwrap();
        assert_eq!(a, "u@d");
        let (a, _) = path_arg(b"to:u@d", b"TO:").unwrap();
        assert_eq!(a, "u@d");
        assert!(path_arg(b"FROM <a@b>", b"FROM:").is_none());
        assert!(path_arg(b"TO:<a@b", b"TO:").is_none());
    }
}
