//! SMTP replies as the client sees them: the three-digit code, the optional enhanced
//! status code (RFC 3463) and the text, plus the incremental parser that turns server
//! bytes into complete (possibly multi-line) replies.
//!
//! Contract of [`ReplyParser`]: it is fed arbitrary chunks and yields a reply only when its
//! last line (`250 text`, after any `250-text` continuation lines) is complete. It accepts
//! CRLF and, liberally, a bare LF as line end. It is bounded: a line longer than
//! [`MAX_LINE`] bytes or a reply of more than [`MAX_LINES`] lines is an error, as is a line
//! without a valid code or a continuation line whose code differs from the first line's.
//! After an error the parser is poisoned: the connection is no longer in sync.

use std::fmt;

use memchr::memchr;

/// Longest reply line accepted, in bytes, without the line end.
pub const MAX_LINE: usize = 4096;
/// Most lines accepted in one multi-line reply.
pub const MAX_LINES: usize = 100;

/// An enhanced mail system status code (RFC 3463), e.g. `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// Subject, 0–999.
    pub subject: u16,
    /// Detail, 0–999.
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code found at the start of the first line's text, if any.
    pub enhanced: Option<EnhancedCode>,
    /// The text of every line, without code and enhanced code, joined with `"\n"`.
    pub text: String,
}

impl Reply {
    /// Builds a reply (used for replies synthesised locally, e.g. an oversized message).
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// 2yz: the requested action completed.
    pub fn is_positive_completion(&self) -> bool {
        self.code / 100 == 2
    }

    /// 3yz: accepted, more information needed (354 after DATA).
    pub fn is_intermediate(&self) -> bool {
        self.code / 100 == 3
    }

    /// 4yz: transient negative completion; try again later.
    pub fn is_transient(&self) -> bool {
        self.code / 100 == 4
    }

    /// 5yz: permanent negative completion; do not repeat as is.
    pub fn is_permanent(&self) -> bool {
        self.code / 100 == 5
    }

    /// The text lines of the reply.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }

    /// Picks an enhanced status code off the start of `text`: `c.s.d` followed by a space
    /// or the end, where `c` is 2, 4 or 5 and `s`, `d` have one to three digits. Returns
    /// the code and the text after it (and after the space).
    pub fn parse_enhanced(text: &str) -> Option<(EnhancedCode, &str)> {
        let b = text.as_bytes();
        let class = match b.first() {
            Some(c @ (b'2' | b'4' | b'5')) => c - b'0',
            _ => return None,
        };
        if b.get(1) != Some(&b'.') {
            return None;
        }
        let (subject, after_subject) = digits(b, 2)?;
        if b.get(after_subject) != Some(&b'.') {
            return None;
        }
        let (detail, end) = digits(b, after_subject + 1)?;
        let rest = match b.get(end) {
            None => "",
            Some(b' ') => text.get(end + 1..)?,
            Some(_) => return None,
        };
        Some((EnhancedCode::new(class, subject, detail), rest))
    }
}

/// One to three ASCII digits starting at `start`: their value and the index after them.
fn digits(b: &[u8], start: usize) -> Option<(u16, usize)> {
    let mut value = 0u16;
    let mut i = start;
    while i < b.len() && i - start < 3 && b[i].is_ascii_digit() {
        value = value * 10 + u16::from(b[i] - b'0');
        i += 1;
    }
    if i == start || b.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some((value, i))
}

impl fmt::Display for Reply {
    /// `250 2.0.0 text`; the text keeps its line breaks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

/// Why the reply stream cannot be parsed; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line exceeded [`MAX_LINE`] bytes.
    LineTooLong,
    /// A reply exceeded [`MAX_LINES`] lines.
    TooManyLines,
    /// A line did not start with a valid reply code and separator.
    Malformed {
        /// The start of the offending line (lossy, at most 64 bytes).
        line: String,
    },
    /// A continuation line carried a different code than the first line.
    CodeMismatch {
        /// The code of the first line.
        first: u16,
        /// The code of the offending line.
        found: u16,
    },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong => write!(f, "reply line longer than {MAX_LINE} bytes"),
            Self::TooManyLines => write!(f, "reply longer than {MAX_LINES} lines"),
            Self::Malformed { line } => write!(f, "malformed reply line {line:?}"),
            Self::CodeMismatch { first, found } => {
                write!(
                    f,
                    "reply code {found} in a multi-line reply begun with {first}"
                )
            }
        }
    }
}

impl std::error::Error for ReplyError {}

/// Incremental reply parser; see the module documentation for its contract.
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// Bytes of an unfinished line.
    partial: Vec<u8>,
    /// Code of the reply being assembled (set by its first line).
    code: Option<u16>,
    enhanced: Option<EnhancedCode>,
    text: String,
    lines: usize,
    failed: Option<ReplyError>,
}

impl ReplyParser {
    /// A parser expecting the start of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when part of a reply (a line or earlier lines) is buffered.
    pub fn is_mid_reply(&self) -> bool {
        !self.partial.is_empty() || self.code.is_some()
    }

    /// Feeds a chunk; every reply completed by it is appended to `out`, in order, even when
    /// an error follows later in the same chunk.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Reply>) -> Result<(), ReplyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.feed_inner(input, out);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn feed_inner(&mut self, mut rest: &[u8], out: &mut Vec<Reply>) -> Result<(), ReplyError> {
        while !rest.is_empty() {
            let Some(lf) = memchr(b'\n', rest) else {
                // The line may still end in CR, hence the one byte of slack.
                if self.partial.len() + rest.len() > MAX_LINE + 1 {
                    return Err(ReplyError::LineTooLong);
                }
                self.partial.extend_from_slice(rest);
                break;
            };
            let segment = &rest[..lf];
            rest = &rest[lf + 1..];
            if self.partial.is_empty() {
                self.line(segment, out)?;
            } else {
                if self.partial.len() + segment.len() > MAX_LINE + 1 {
                    return Err(ReplyError::LineTooLong);
                }
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(segment);
                let result = self.line(&line, out);
                line.clear();
                self.partial = line;
                result?;
            }
        }
        Ok(())
    }

    /// Handles one line without its LF.
    fn line(&mut self, raw: &[u8], out: &mut Vec<Reply>) -> Result<(), ReplyError> {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let malformed = || ReplyError::Malformed {
            line: String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned(),
        };
        let code = match raw {
            [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(malformed()),
        };
        let last = match raw.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(malformed()),
        };
        match self.code {
            Some(first) if first != code => {
                return Err(ReplyError::CodeMismatch { first, found: code })
            }
            _ => {}
        }
        self.lines += 1;
        if self.lines > MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let text = String::from_utf8_lossy(raw.get(4..).unwrap_or_default());
        let text = match Reply::parse_enhanced(&text) {
            Some((enhanced, rest)) => {
                if self.code.is_none() {
                    self.enhanced = Some(enhanced);
                }
                rest
            }
            None => &text,
        };
        if self.code.is_some() {
            self.text.push('\n');
        }
        self.text.push_str(text);
        self.code = Some(code);
        if last {
            out.push(Reply {
                code,
                enhanced: self.enhanced.take(),
                text: std::mem::take(&mut self.text),
            });
            self.code = None;
            self.lines = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_code_patterns() {
        let cases: &[(&str, Option<(EnhancedCode, &str)>)] = &[
            ("2.0.0 ok", Some((EnhancedCode::new(2, 0, 0), "ok"))),
            (
                "5.1.1 no such user",
                Some((EnhancedCode::new(5, 1, 1), "no such user")),
            ),
            ("4.7.123", Some((EnhancedCode::new(4, 7, 123), ""))),
            ("5.999.999 x", Some((EnhancedCode::new(5, 999, 999), "x"))),
            ("5.1000.1 x", None),
            ("3.0.0 x", None),
            ("2.0 x", None),
            ("2.0.0x", None),
            ("2..0 x", None),
            ("ok", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(Reply::parse_enhanced(text), *want, "{text:?}");
        }
    }

    #[test]
    fn display_forms() {
        let r = Reply::new(250, Some(EnhancedCode::new(2, 0, 0)), "ok");
        assert_eq!(r.to_string(), "250 2.0.0 ok");
        assert_eq!(Reply::new(354, None, "go").to_string(), "354 go");
        assert_eq!(Reply::new(250, None, "").to_string(), "250");
        assert_eq!(EnhancedCode::new(5, 1, 1).to_string(), "5.1.1");
    }
}
