//! Parsing of one SMTP command line (RFC 5321 §4.1, RFC 1869/1870/6152 parameters).
//!
//! Owns the mapping from the bytes of a single command line — already framed by the
//! server session, *without* its CRLF — to a [`Command`], or to a [`ParseError`] that says
//! which reply the server sends (500 unrecognized, 501 bad arguments, 555 unknown
//! parameter). It knows nothing of session state or policy: whether `MAIL` is allowed now,
//! or whether a `SIZE` is too big, is decided by the server session.
//!
//! Rules chosen here:
//! - verbs are matched case-insensitively; arguments follow one or more spaces;
//! - `MAIL FROM:` / `RCPT TO:` accept optional spaces after the colon and require the
//!   angle brackets; `<>` is the null sender (MAIL only); a source route `<@a,@b:x@y>` is
//!   accepted and dropped; a path longer than 256 octets is refused;
//! - ESMTP parameters are `KEYWORD[=value]`; `SIZE` and `BODY` are typed, any other
//!   well-formed parameter is returned in `extra` for the session to refuse (555);
//! - a NUL byte anywhere in the line is refused (500) before anything else is looked at.

use memchr::memchr;

/// Longest reverse- or forward-path accepted, angle brackets excluded (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH_LENGTH: usize = 256;

/// One parsed client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain` — the argument as given, trimmed.
    Ehlo(String),
    /// `HELO domain` — the argument as given, trimmed.
    Helo(String),
    /// `MAIL FROM:<path> [params]`; `from` is empty for the null sender `<>`.
    Mail {
        /// Reverse-path without angle brackets (source route dropped).
        from: String,
        /// ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path> [params]`.
    Rcpt {
        /// Forward-path without angle brackets (source route dropped).
        to: String,
        /// ESMTP parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(String),
    /// `EXPN string` (not implemented by the server).
    Expn,
    /// `HELP [string]` (not implemented by the server).
    Help,
    /// `STARTTLS` (not implemented by the server yet).
    StartTls,
    /// `AUTH mechanism [initial-response]` (not implemented by the server yet).
    Auth {
        /// SASL mechanism name, upper-cased.
        mechanism: String,
        /// Initial response, if one was given on the command line.
        initial_response: Option<String>,
    },
    /// `BDAT chunk-size [LAST]` (CHUNKING, RFC 3030): `size` octets of message data follow.
    Bdat { size: u64, last: bool },
    /// `TURN` / `ETRN` / `ATRN` (not implemented).
    Turn,
}

/// The `BODY=` parameter of MAIL (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// A generic ESMTP parameter `KEYWORD[=value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Keyword, upper-cased.
    pub keyword: String,
    /// Value as given, if any.
    pub value: Option<String>,
}

/// The parameters of a MAIL command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=n` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=7BIT|8BITMIME` (RFC 6152).
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531): the transaction may use UTF-8 addresses and headers.
    pub smtputf8: bool,
    /// `RET=FULL|HDRS` (RFC 3461).
    pub ret: Option<crate::dsn::Ret>,
    /// `ENVID=xtext` (RFC 3461).
    pub envid: Option<String>,
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// Any other well-formed parameter; the server refuses these with 555.
    pub extra: Vec<Param>,
}

/// The parameters of a RCPT command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY=` (RFC 3461).
    pub notify: Option<crate::dsn::Notify>,
    /// `ORCPT=addr-type;xtext` (RFC 3461).
    pub orcpt: Option<String>,
    /// Any other well-formed parameter; the server refuses these with 555.
    pub extra: Vec<Param>,
}

/// Why a command line could not be parsed; each kind maps to one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Empty line or unknown verb: `500 5.5.2`.
    UnknownCommand,
    /// The line contains a NUL byte: `500 5.5.2`.
    NulByte,
    /// Malformed arguments: `501 5.5.4` with this text.
    Syntax(&'static str),
    /// Malformed reverse-path: `501 5.1.7` with this text.
    BadSender(&'static str),
    /// Malformed forward-path: `501 5.1.3` with this text.
    BadRecipient(&'static str),
    /// A BDAT whose chunk size cannot be read: `501 5.5.4`, and the session cannot know
    /// where the chunk ends.
    BadChunk(&'static str),
}

impl ParseError {
    /// The reply for this error: (code, enhanced status code, text).
    pub fn reply(&self) -> (u16, &'static str, &'static str) {
        match *self {
            ParseError::UnknownCommand => (500, "5.5.2", "Command unrecognized"),
            ParseError::NulByte => (500, "5.5.2", "NUL character in command not allowed"),
            ParseError::Syntax(text) => (501, "5.5.4", text),
            ParseError::BadSender(text) => (501, "5.1.7", text),
            ParseError::BadRecipient(text) => (501, "5.1.3", text),
            ParseError::BadChunk(text) => (501, "5.5.4", text),
        }
    }
}

impl Command {
    /// Parses one command line, given without its terminating CRLF.
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        if memchr(0, line).is_some() {
            return Err(ParseError::NulByte);
        }
        let (verb, args) = match memchr(b' ', line) {
            Some(sp) => (&line[..sp], trim(&line[sp + 1..])),
            None => (line, &line[..0]),
        };
        let is = |name: &str| verb.eq_ignore_ascii_case(name.as_bytes());
        if is("EHLO") || is("HELO") {
            let domain = text(args, "Syntax: EHLO hostname")?;
            if domain.is_empty() {
                return Err(ParseError::Syntax("Syntax: EHLO hostname"));
            }
            return Ok(if is("EHLO") {
                Command::Ehlo(domain)
            } else {
                Command::Helo(domain)
            });
        }
        if is("MAIL") {
            return parse_mail(args);
        }
        if is("RCPT") {
            return parse_rcpt(args);
        }
        if is("VRFY") {
            let arg = text(args, "Syntax: VRFY address")?;
            if arg.is_empty() {
                return Err(ParseError::Syntax("Syntax: VRFY address"));
            }
            return Ok(Command::Vrfy(arg));
        }
        if is("AUTH") {
            return parse_auth(args);
        }
        let bare = |command: Command, usage: &'static str| {
            if args.is_empty() {
                Ok(command)
            } else {
                Err(ParseError::Syntax(usage))
            }
        };
        match () {
            _ if is("DATA") => bare(Command::Data, "Syntax: DATA"),
            _ if is("RSET") => bare(Command::Rset, "Syntax: RSET"),
            _ if is("QUIT") => bare(Command::Quit, "Syntax: QUIT"),
            _ if is("STARTTLS") => bare(Command::StartTls, "Syntax: STARTTLS"),
            _ if is("NOOP") => Ok(Command::Noop),
            _ if is("HELP") => Ok(Command::Help),
            _ if is("EXPN") => Ok(Command::Expn),
            _ if is("BDAT") => parse_bdat(args),
            _ if is("TURN") || is("ETRN") || is("ATRN") => Ok(Command::Turn),
            _ => Err(ParseError::UnknownCommand),
        }
    }
}

/// Strips leading and trailing spaces and tabs.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Converts an argument to a `String`, refusing control characters and invalid UTF-8.
fn text(bytes: &[u8], usage: &'static str) -> Result<String, ParseError> {
    if bytes.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(ParseError::Syntax(usage));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(ParseError::Syntax("Invalid UTF-8 in command")),
    }
}

/// Strips a case-insensitive prefix such as `FROM:` and the spaces after it.
fn after_prefix<'a>(args: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    let p = prefix.as_bytes();
    if args.len() >= p.len() && args[..p.len()].eq_ignore_ascii_case(p) {
        Some(trim(&args[p.len()..]))
    } else {
        None
    }
}

fn parse_mail(args: &[u8]) -> Result<Command, ParseError> {
    const USAGE: &str = "Syntax: MAIL FROM:<address>";
    let rest = after_prefix(args, "FROM:").ok_or(ParseError::Syntax(USAGE))?;
    let (from, rest) = parse_path(rest, true).map_err(ParseError::BadSender)?;
    let mut params = MailParams::default();
    for param in parse_params(rest)? {
        match param.keyword.as_str() {
            "SIZE" => {
                let value = param.value.as_deref().unwrap_or("");
                let digits_ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                let size = value.parse::<u64>().ok().filter(|_| digits_ok);
                match (params.size, size) {
                    (None, Some(size)) => params.size = Some(size),
                    (Some(_), _) => return Err(ParseError::Syntax("Duplicate SIZE parameter")),
                    (None, None) => return Err(ParseError::Syntax("Bad SIZE parameter")),
                }
            }
            "BODY" => {
                if params.body.is_some() {
                    return Err(ParseError::Syntax("Duplicate BODY parameter"));
                }
                let value = param.value.as_deref().unwrap_or("");
                params.body = Some(if value.eq_ignore_ascii_case("7BIT") {
                    Body::SevenBit
                } else if value.eq_ignore_ascii_case("8BITMIME") {
                    Body::EightBitMime
                } else {
                    return Err(ParseError::Syntax("Unsupported BODY type"));
                });
            }
            "RET" => {
                if params.ret.is_some() {
                    return Err(ParseError::Syntax("Duplicate RET parameter"));
                }
                let v = param.value.as_deref().unwrap_or("");
                params.ret = Some(if v.eq_ignore_ascii_case("FULL") {
                    crate::dsn::Ret::Full
                } else if v.eq_ignore_ascii_case("HDRS") {
                    crate::dsn::Ret::Hdrs
                } else {
                    return Err(ParseError::Syntax("Bad RET parameter"));
                });
            }
            "ENVID" => {
                if params.envid.is_some() {
                    return Err(ParseError::Syntax("Duplicate ENVID parameter"));
                }
                let v = param.value.unwrap_or_default();
                crate::dsn::check_envid(&v).map_err(ParseError::Syntax)?;
                params.envid = Some(v);
            }
            "REQUIRETLS" => {
                if param.value.is_some() || params.requiretls {
                    return Err(ParseError::Syntax("Bad REQUIRETLS parameter"));
                }
                params.requiretls = true;
            }
            "SMTPUTF8" => {
                if param.value.is_some() {
                    return Err(ParseError::Syntax("SMTPUTF8 takes no value"));
                }
                if params.smtputf8 {
                    return Err(ParseError::Syntax("Duplicate SMTPUTF8 parameter"));
                }
                params.smtputf8 = true;
            }
            _ => params.extra.push(param),
        }
    }
    Ok(Command::Mail { from, params })
}

fn parse_bdat(args: &[u8]) -> Result<Command, ParseError> {
    const USAGE: &str = "Syntax: BDAT chunk-size [LAST]";
    let mut words = args
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    let size = words
        .next()
        .filter(|w| w.len() <= 19 && w.iter().all(u8::is_ascii_digit))
        .and_then(|w| std::str::from_utf8(w).ok()?.parse::<u64>().ok())
        .ok_or(ParseError::BadChunk(USAGE))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case(b"LAST") => true,
        Some(_) => return Err(ParseError::BadChunk(USAGE)),
    };
    if words.next().is_some() {
        return Err(ParseError::BadChunk(USAGE));
    }
    Ok(Command::Bdat { size, last })
}

fn parse_rcpt(args: &[u8]) -> Result<Command, ParseError> {
    const USAGE: &str = "Syntax: RCPT TO:<address>";
    let rest = after_prefix(args, "TO:").ok_or(ParseError::Syntax(USAGE))?;
    let (to, rest) = parse_path(rest, false).map_err(ParseError::BadRecipient)?;
    let mut params = RcptParams::default();
    for param in parse_params(rest)? {
        match param.keyword.as_str() {
            "NOTIFY" => {
                if params.notify.is_some() {
                    return Err(ParseError::Syntax("Duplicate NOTIFY parameter"));
                }
                let v = param.value.as_deref().unwrap_or("");
                params.notify = Some(crate::dsn::parse_notify(v).map_err(ParseError::Syntax)?);
            }
            "ORCPT" => {
                if params.orcpt.is_some() {
                    return Err(ParseError::Syntax("Duplicate ORCPT parameter"));
                }
                let v = param.value.unwrap_or_default();
                crate::dsn::check_orcpt(&v).map_err(ParseError::Syntax)?;
                params.orcpt = Some(v);
            }
            _ => params.extra.push(param),
        }
    }
    Ok(Command::Rcpt { to, params })
}

fn parse_auth(args: &[u8]) -> Result<Command, ParseError> {
    const USAGE: &str = "Syntax: AUTH mechanism [initial-response]";
    let line = text(args, USAGE)?;
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let mechanism = match words.next() {
        Some(m) => m.to_ascii_uppercase(),
        None => return Err(ParseError::Syntax(USAGE)),
    };
    let initial_response = words.next().map(str::to_owned);
    if words.next().is_some() {
        return Err(ParseError::Syntax(USAGE));
    }
    Ok(Command::Auth {
        mechanism,
        initial_response,
    })
}

/// Parses `<path>` at the start of `s`; returns the address and what follows the `>`.
///
/// `null_ok` allows the empty path `<>`. Addresses are checked loosely: one unquoted `@`
/// separating a non-empty local part and domain (or the bare `postmaster` for RCPT), no
/// unquoted spaces or control characters, valid UTF-8.
fn parse_path(s: &[u8], null_ok: bool) -> Result<(String, &[u8]), &'static str> {
    const BAD: &str = "Bad address syntax";
    let inner_start = match s.first() {
        Some(b'<') => 1,
        _ => return Err("Address must be enclosed in <>"),
    };
    // Find the closing '>' outside quoted strings; remember the last unquoted '@'.
    let (mut quoted, mut escaped, mut close, mut at) = (false, false, None, None);
    for (i, &b) in s.iter().enumerate().skip(inner_start) {
        if escaped {
            escaped = false;
        } else if quoted {
            match b {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => quoted = true,
                b'>' => {
                    close = Some(i);
                    break;
                }
                b'@' => at = Some(i),
                b' ' | b'\t' | b'<' => return Err(BAD),
                _ => {}
            }
        }
        if b < 0x20 || b == 0x7f {
            return Err(BAD);
        }
    }
    let close = close.ok_or("Missing closing >")?;
    let rest = &s[close + 1..];
    if !rest.is_empty() && rest[0] != b' ' {
        return Err(BAD);
    }
    let mut inner = &s[inner_start..close];
    if inner.len() > MAX_PATH_LENGTH {
        return Err("Path too long");
    }
    if inner.is_empty() {
        return if null_ok {
            Ok((String::new(), rest))
        } else {
            Err("Null recipient not allowed")
        };
    }
    let mut at = at.map(|i| i - inner_start);
    if inner[0] == b'@' {
        // Source route "@a,@b:" — accepted and ignored (RFC 5321 §4.1.2, C.).
        let colon = memchr(b':', inner).ok_or(BAD)?;
        inner = &inner[colon + 1..];
        at = at.and_then(|i| i.checked_sub(colon + 1));
    }
    let address = std::str::from_utf8(inner).map_err(|_| BAD)?;
    match at {
        Some(i) if i > 0 && i + 1 < inner.len() => {
            let domain = &inner[i + 1..];
            if domain
                .iter()
                .any(|&b| matches!(b, b'"' | b'\\' | b'(' | b')' | b','))
            {
                return Err(BAD);
            }
        }
        None if !null_ok && address.eq_ignore_ascii_case("postmaster") => {}
        _ => return Err(BAD),
    }
    Ok((address.to_owned(), rest))
}

/// Checks one address given outside SMTP (the HTTP injection API) by the rules MAIL FROM
/// (`sender`: the null sender allowed) or RCPT TO apply; the address comes back as it
/// would from the command.
pub fn check_address(address: &str, sender: bool) -> Result<String, &'static str> {
    let path = format!("<{address}>");
    match parse_path(path.as_bytes(), sender) {
        Ok((a, b"")) => Ok(a),
        Ok(_) => Err("Bad address syntax"),
        Err(e) => Err(e),
    }
}

/// Parses the space-separated `KEYWORD[=value]` list after a path.
fn parse_params(s: &[u8]) -> Result<Vec<Param>, ParseError> {
    const BAD: ParseError = ParseError::Syntax("Bad parameter syntax");
    let mut params = Vec::new();
    for word in s.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let (keyword, value) = match memchr(b'=', word) {
            Some(eq) => (&word[..eq], Some(&word[eq + 1..])),
            None => (word, None),
        };
        let keyword_ok = keyword.first().is_some_and(u8::is_ascii_alphanumeric)
            && keyword
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-');
        let value_ok = value.is_none_or(|v| {
            !v.is_empty() && v.iter().all(|&b| (0x21..=0x7e).contains(&b) && b != b'=')
        });
        if !keyword_ok || !value_ok {
            return Err(BAD);
        }
        params.push(Param {
            // Both are ASCII by the checks above.
            keyword: String::from_utf8_lossy(keyword).to_ascii_uppercase(),
            value: value.map(|v| String::from_utf8_lossy(v).into_owned()),
        });
    }
    Ok(params)
}
