//! Command-line framing: finding where a command line ends in the client's byte stream.
//!
//! A command line ends only at CRLF. A bare LF, or a CR not followed by LF, is never a
//! line end: it makes the line bad, the session answers `500 5.5.2` as soon as it is seen,
//! and the rest of the line up to the next CRLF is discarded. A line longer than the limit
//! (CRLF excluded) is bad as well, and is discarded the same way without being buffered,
//! so a client sending garbage without CRLF cannot grow the input buffer past the limit.
//! A CR at the very end of the available input is never consumed: it may be half a CRLF.

use memchr::{memchr2, memmem};

/// Why a command line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineError {
    /// A LF not preceded by CR.
    BareLf,
    /// A CR not followed by LF.
    BareCr,
    /// More than `max_line_length` bytes before the CRLF.
    TooLong,
}

impl LineError {
    /// Reply text (with `500 5.5.2`).
    pub(super) fn text(self) -> &'static str {
        match self {
            LineError::BareLf => "Bare LF in command not allowed",
            LineError::BareCr => "Bare CR in command not allowed",
            LineError::TooLong => "Line too long",
        }
    }
}

/// What was found at the front of the unprocessed input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame<'a> {
    /// Not enough input to decide; nothing consumed.
    Partial,
    /// A complete line, without its CRLF; `consumed` includes the CRLF.
    Line { line: &'a [u8], consumed: usize },
    /// A bad line: reply, drop `consumed` bytes, then discard up to the next CRLF.
    Bad { error: LineError, consumed: usize },
    /// Discard mode dropped `consumed` bytes; `ended` once the CRLF was dropped too.
    Skipped { consumed: usize, ended: bool },
}

/// Frames the front of `input`; `discarding` is true while dropping a bad line's rest.
pub(super) fn frame(input: &[u8], discarding: bool, max: usize) -> Frame<'_> {
    if discarding {
        return match memmem::find(input, b"\r\n") {
            Some(k) => Frame::Skipped {
                consumed: k + 2,
                ended: true,
            },
            None => {
                let consumed = input.len() - usize::from(input.last() == Some(&b'\r'));
                if consumed == 0 {
                    Frame::Partial
                } else {
                    Frame::Skipped {
                        consumed,
                        ended: false,
                    }
                }
            }
        };
    }
    let window = &input[..input.len().min(max.saturating_add(1))];
    match memchr2(b'\r', b'\n', window) {
        None if input.len() > max => Frame::Bad {
            error: LineError::TooLong,
            consumed: 0,
        },
        None => Frame::Partial,
        Some(k) if input[k] == b'\n' => Frame::Bad {
            error: LineError::BareLf,
            consumed: k + 1,
        },
        Some(k) => match input.get(k + 1) {
            None => Frame::Partial,
            Some(b'\n') => Frame::Line {
                line: &input[..k],
                consumed: k + 2,
            },
            Some(_) => Frame::Bad {
                error: LineError::BareCr,
                consumed: k + 1,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let line = |l: &'static [u8], consumed| Frame::Line { line: l, consumed };
        let bad = |error, consumed| Frame::Bad { error, consumed };
        assert_eq!(frame(b"NOOP\r\nX", false, 10), line(b"NOOP", 6));
        assert_eq!(frame(b"NOOP\r", false, 10), Frame::Partial);
        assert_eq!(frame(b"NOOP", false, 10), Frame::Partial);
        assert_eq!(frame(b"NO\nOP\r\n", false, 10), bad(LineError::BareLf, 3));
        assert_eq!(frame(b"NO\rOP\r\n", false, 10), bad(LineError::BareCr, 3));
        assert_eq!(frame(b"0123456789\r\n", false, 10), line(b"0123456789", 12));
        assert_eq!(frame(b"0123456789A", false, 10), bad(LineError::TooLong, 0));
        assert_eq!(
            frame(b"0123456789A\r\n", false, 10),
            bad(LineError::TooLong, 0)
        );
        let skipped = |consumed, ended| Frame::Skipped { consumed, ended };
        assert_eq!(frame(b"xx\r\nNOOP", true, 10), skipped(4, true));
        assert_eq!(frame(b"xx\nyy\r", true, 10), skipped(5, false));
        assert_eq!(frame(b"\r", true, 10), Frame::Partial);
    }
}
