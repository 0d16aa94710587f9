//! The DATA phase reader: framing of the message text that follows a `354` reply.
//!
//! Owns the transparency rules of RFC 5321 §4.5.2 and the defences against SMTP
//! smuggling. A [`DataReader`] is fed arbitrary chunks of the client's byte stream and
//! answers [`Feed::NeedMore`] (every byte consumed) or [`Feed::Done`] (the terminator was
//! found; the bytes after it belong to the command phase). It never looks at message
//! content otherwise and never modifies it beyond dot-unstuffing.
//!
//! Rules:
//! - the message ends **only** at `CRLF "." CRLF` (or `"." CRLF` as the very first line,
//!   for an empty message). A bare LF or a bare CR is never a line end, so none of
//!   `"\n.\n"`, `"\r.\r"`, `"\n.\r\n"`, `"\r\n.\n"`, `"\r\n.\r"` ends the message;
//! - a bare LF or bare CR anywhere marks the message [`DataError::BareLineEnding`]; the
//!   reader keeps consuming up to the true terminator so the stream stays in sync, and the
//!   session rejects the message afterwards;
//! - a line that starts with `.` and is not the terminator loses that first dot
//!   (`..x` → `.x`, and also `.x` → `x`, as RFC 5321 §4.5.2 says);
//! - the unstuffed size (CRLFs included, the terminator excluded) is limited
//!   ([`DataError::TooBig`]) and so is the length of each line without its CRLF
//!   ([`DataError::LineTooLong`]); both are reported after the terminator.
//!
//! Once any error is found the reader frees its output and stops copying, so a rejected
//! message costs no memory while it is drained. The common path scans with `memchr2` and
//! copies whole runs of line content at once: no per-byte allocation or branching.

use memchr::memchr2;

/// Why a message was refused at the end of DATA. When several apply, the highest in this
/// order is reported: `BareLineEnding`, `TooBig`, `LineTooLong`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// A bare CR or bare LF was seen in the data (SMTP smuggling defence).
    BareLineEnding,
    /// The unstuffed message exceeded the maximum size.
    TooBig,
    /// A line (without its CRLF) exceeded the maximum line length.
    LineTooLong,
}

impl DataError {
    fn rank(self) -> u8 {
        match self {
            DataError::BareLineEnding => 3,
            DataError::TooBig => 2,
            DataError::LineTooLong => 1,
        }
    }
}

/// Check message data that came without dot-stuffing (BDAT): every line ends with CRLF
/// (no bare CR or LF; the last line may lack its CRLF) and no line is longer than
/// `max_line` octets without it. Errors are ranked as [`DataReader`] ranks them.
pub fn check_lines(data: &[u8], max_line: usize) -> Result<(), DataError> {
    let mut worst: Option<DataError> = None;
    let mut note = |e: DataError| {
        if worst.is_none_or(|w| e.rank() > w.rank()) {
            worst = Some(e);
        }
    };
    let mut start = 0;
    let mut at = 0;
    while let Some(i) = memchr2(b'\r', b'\n', &data[at..]) {
        let i = at + i;
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            if i - start > max_line {
                note(DataError::LineTooLong);
            }
            at = i + 2;
            start = at;
        } else {
            note(DataError::BareLineEnding);
            at = i + 1;
        }
    }
    if data.len() - start > max_line {
        note(DataError::LineTooLong);
    }
    worst.map_or(Ok(()), Err)
}

/// The result of feeding a chunk to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The whole chunk was consumed; the terminator has not been seen yet.
    NeedMore,
    /// The terminator ended at `consumed` bytes into the chunk; the rest is not data.
    Done {
        /// Bytes of the chunk that belonged to the message, terminator included.
        consumed: usize,
    },
}

/// Where the reader is, relative to line structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a line (after CRLF, or at the start of the data).
    LineStart,
    /// A line started with `.`; the dot is held back.
    Dot,
    /// A line started with `.` CR; the terminator if LF follows.
    DotCr,
    /// Inside a line.
    Mid,
    /// After a CR inside a line; a line end if LF follows.
    Cr,
    /// The terminator was seen.
    Done,
}

/// Incremental reader of one message's DATA.
#[derive(Debug)]
pub struct DataReader {
    at: At,
    out: Vec<u8>,
    size: u64,
    line: usize,
    max_size: u64,
    max_line: usize,
    error: Option<DataError>,
}

impl DataReader {
    /// A reader for one message: at most `max_size` unstuffed bytes, lines of at most
    /// `max_line_length` bytes (CRLF excluded).
    pub fn new(max_size: u64, max_line_length: usize) -> DataReader {
        DataReader {
            at: At::LineStart,
            out: Vec::new(),
            size: 0,
            line: 0,
            max_size,
            max_line: max_line_length,
            error: None,
        }
    }

    /// Consumes as much of `input` as belongs to the message.
    ///
    /// After [`Feed::Done`] further calls consume nothing and answer `Done { consumed: 0 }`.
    pub fn feed(&mut self, input: &[u8]) -> Feed {
        let mut i = 0;
        while i < input.len() {
            match self.at {
                At::Mid => {
                    let rest = &input[i..];
                    match memchr2(b'\r', b'\n', rest) {
                        None => {
                            self.content(rest);
                            i = input.len();
                        }
                        Some(k) => {
                            self.content(&rest[..k]);
                            if rest[k] == b'\n' {
                                self.fail(DataError::BareLineEnding);
                                self.emit(b"\n");
                            } else {
                                self.emit(b"\r");
                                self.at = At::Cr;
                            }
                            i += k + 1;
                        }
                    }
                }
                At::LineStart => {
                    if input[i] == b'.' {
                        self.at = At::Dot;
                        i += 1;
                    } else {
                        self.at = At::Mid;
                    }
                }
                At::Dot => {
                    if input[i] == b'\r' {
                        self.at = At::DotCr;
                        i += 1;
                    } else {
                        // ".x": the dot is dropped, the byte is ordinary line content.
                        self.at = At::Mid;
                    }
                }
                At::DotCr => {
                    if input[i] == b'\n' {
                        self.at = At::Done;
                        return Feed::Done { consumed: i + 1 };
                    }
                    // ".\r" then not LF: the CR was bare; the byte is seen afresh.
                    self.fail(DataError::BareLineEnding);
                    self.emit(b"\r");
                    self.at = At::Mid;
                }
                At::Cr => {
                    if input[i] == b'\n' {
                        self.emit(b"\n");
                        self.line = 0;
                        self.at = At::LineStart;
                        i += 1;
                    } else {
                        self.fail(DataError::BareLineEnding);
                        self.at = At::Mid;
                    }
                }
                At::Done => return Feed::Done { consumed: i },
            }
        }
        if self.at == At::Done {
            Feed::Done { consumed: i }
        } else {
            Feed::NeedMore
        }
    }

    /// True once the terminator has been consumed.
    pub fn is_done(&self) -> bool {
        self.at == At::Done
    }

    /// Unstuffed bytes seen so far (counted even after an error).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first (highest-ranked) error found so far, if any.
    pub fn error(&self) -> Option<DataError> {
        self.error
    }

    /// The unstuffed message, or why it is refused. Meant to be called after
    /// [`Feed::Done`]; called earlier it returns what was read so far.
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.out),
        }
    }

    /// Line content without CR or LF.
    #[inline]
    fn content(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.line = self.line.saturating_add(bytes.len());
        if self.line > self.max_line {
            self.fail(DataError::LineTooLong);
        }
        self.emit(bytes);
    }

    /// Counts and (while no error is known) copies output bytes.
    #[inline]
    fn emit(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.max_size {
            self.fail(DataError::TooBig);
        }
        if self.error.is_none() {
            self.out.extend_from_slice(bytes);
        }
    }

    fn fail(&mut self, error: DataError) {
        match self.error {
            Some(known) if known.rank() >= error.rank() => {}
            _ => {
                self.error = Some(error);
                self.out = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Result<Vec<u8>, DataError>, usize) {
        let mut reader = DataReader::new(1 << 20, 998);
        match reader.feed(input) {
            Feed::Done { consumed } => (reader.finish(), consumed),
            Feed::NeedMore => panic!("no terminator in {input:?}"),
        }
    }

    #[test]
    fn lines_of_chunked_data_are_checked() {
        assert_eq!(check_lines(b"a\r\nb\r\n", 10), Ok(()));
        assert_eq!(check_lines(b"a\r\nno final crlf", 20), Ok(()));
        assert_eq!(check_lines(b"", 1), Ok(()));
        assert_eq!(check_lines(b"a\nb\r\n", 10), Err(DataError::BareLineEnding));
        assert_eq!(check_lines(b"a\rb\r\n", 10), Err(DataError::BareLineEnding));
        assert_eq!(check_lines(b"a\r", 10), Err(DataError::BareLineEnding));
        assert_eq!(
            check_lines(b"0123456789ab\r\n", 10),
            Err(DataError::LineTooLong)
        );
        assert_eq!(
            check_lines(b"0123456789ab", 10),
            Err(DataError::LineTooLong)
        );
        assert_eq!(
            check_lines(b"0123456789ab\nx", 10),
            Err(DataError::BareLineEnding),
            "the bare line ending ranks first"
        );
    }

    #[test]
    fn empty_message_and_simple_message() {
        assert_eq!(read_all(b".\r\nX"), (Ok(Vec::new()), 3));
        assert_eq!(read_all(b"a\r\n.\r\nX"), (Ok(b"a\r\n".to_vec()), 6));
    }

    #[test]
    fn leading_dot_is_dropped() {
        let (out, _) = read_all(b"..\r\n..x\r\n.y\r\nz.\r\n.\r\n");
        assert_eq!(out, Ok(b".\r\n.x\r\ny\r\nz.\r\n".to_vec()));
    }

    #[test]
    fn bare_endings_never_terminate() {
        for bad in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\rX"] {
            let mut input = b"a".to_vec();
            input.extend_from_slice(bad);
            input.extend_from_slice(b"b\r\n.\r\n");
            let (out, consumed) = read_all(&input);
            assert_eq!(out, Err(DataError::BareLineEnding), "{bad:?}");
            assert_eq!(consumed, input.len(), "{bad:?}");
        }
    }
}
