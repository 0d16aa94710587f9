//! The DATA phase on the receiving side: read lines until the terminating `CRLF.CRLF`,
//! undo dot-stuffing, and find the Message-ID header in what arrived.
//!
//! Strictness is deliberate (this sink tests a sender): only a `.` line that follows a
//! CRLF ends the data — `LF.LF`, `CR.CR` or `LF.CRLF` are ordinary content, as are lines
//! that start with `.` after a bare LF (those are not unstuffed either).

use std::io::{self, BufRead, Read};

/// Longest piece of a line appended in one step (longer lines are read in pieces).
const PIECE: u64 = 1 << 20;

/// How a DATA read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataEnd {
    /// The terminating dot line was read; `out` holds the whole message.
    Complete,
    /// The terminator was read but the message exceeded the limit; `out` was cut short.
    TooBig,
    /// The peer closed the connection before the terminator.
    Eof,
}

/// Read DATA content from `r` up to and including the terminating dot line, appending
/// the unstuffed bytes to `out`. Beyond `limit` bytes the rest is read and discarded.
pub(crate) fn read_data<R: BufRead>(
    r: &mut R,
    out: &mut Vec<u8>,
    limit: usize,
) -> io::Result<DataEnd> {
    let base = out.len();
    // At the start of a line that follows CRLF (the DATA command line ended with one).
    let mut at_bol = true;
    // The previous piece ended with CR (a CRLF split across pieces).
    let mut after_cr = false;
    let mut too_big = false;
    loop {
        let start = out.len();
        let n = r.by_ref().take(PIECE).read_until(b'\n', out)?;
        if n == 0 {
            out.truncate(start);
            return Ok(DataEnd::Eof);
        }
        let piece = &out[start..];
        let ends_lf = piece.ends_with(b"\n");
        let ends_crlf = piece.ends_with(b"\r\n") || (piece == b"\n" && after_cr);
        let ends_cr = piece.ends_with(b"\r");
        let dot = piece[0] == b'.';
        if at_bol && piece == b".\r\n" {
            out.truncate(start);
            return Ok(if too_big {
                DataEnd::TooBig
            } else {
                DataEnd::Complete
            });
        }
        if at_bol && dot {
            out.remove(start);
        }
        after_cr = ends_cr;
        at_bol = ends_lf && ends_crlf;
        if out.len() - base > limit {
            too_big = true;
            out.truncate(start.max(base + limit).min(out.len()));
        }
    }
}

/// The value of the first `Message-ID` header (unfolded, trimmed) in `msg`'s header block.
pub(crate) fn message_id(msg: &[u8]) -> Option<String> {
    let mut lines = msg.split_inclusive(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let text = trim_eol(line);
        if text.is_empty() {
            return None;
        }
        const NAME: &[u8] = b"message-id:";
        if text.len() >= NAME.len() && text[..NAME.len()].eq_ignore_ascii_case(NAME) {
            let mut value = String::from_utf8_lossy(&text[NAME.len()..]).into_owned();
            while let Some(next) =
                lines.next_if(|l| l.first().is_some_and(|&b| b == b' ' || b == b'\t'))
            {
                value.push_str(&String::from_utf8_lossy(trim_eol(next)));
            }
            let value = value.trim();
            return (!value.is_empty()).then(|| value.to_string());
        }
    }
    None
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn read(input: &[u8], cap: usize) -> (DataEnd, Vec<u8>, Vec<u8>) {
        let mut r = BufReader::with_capacity(cap, input);
        let mut out = Vec::new();
        let end = read_data(&mut r, &mut out, 1 << 20).unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        (end, out, rest)
    }

    /// Input, how it ends, the unstuffed data, what is left unread.
    type Case = (&'static [u8], DataEnd, &'static [u8], &'static [u8]);

    #[test]
    fn table() {
        let cases: &[Case] = &[
            (b".\r\n", DataEnd::Complete, b"", b""),
            (
                b"a\r\n.\r\nQUIT\r\n",
                DataEnd::Complete,
                b"a\r\n",
                b"QUIT\r\n",
            ),
            (b"..\r\n.\r\n", DataEnd::Complete, b".\r\n", b""),
            (
                b"..x\r\n...\r\n.\r\n",
                DataEnd::Complete,
                b".x\r\n..\r\n",
                b"",
            ),
            (b"a\n.\nb\r\n.\r\n", DataEnd::Complete, b"a\n.\nb\r\n", b""),
            (
                b"a\n.\r\nb\r\n.\r\n",
                DataEnd::Complete,
                b"a\n.\r\nb\r\n",
                b"",
            ),
            (
                b"a\r.\r\n\r\n.\r\n",
                DataEnd::Complete,
                b"a\r.\r\n\r\n",
                b"",
            ),
            (b"a\r\n.\n.\r\n", DataEnd::Eof, b"a\r\n\n.\r\n", b""),
            (b"a\r\n.\n\r\n.\r\n", DataEnd::Complete, b"a\r\n\n\r\n", b""),
            (b"a\r\n.x", DataEnd::Eof, b"a\r\nx", b""),
            (b"", DataEnd::Eof, b"", b""),
        ];
        for (i, (input, end, body, rest)) in cases.iter().enumerate() {
            // Every buffer size from 1 byte up splits the input at every position.
            for cap in 1..=input.len().max(1) + 1 {
                let got = read(input, cap);
                assert_eq!(got.0, *end, "case {i} cap {cap}");
                assert_eq!(got.1, *body, "case {i} cap {cap}");
                assert_eq!(got.2, *rest, "case {i} cap {cap}");
            }
        }
    }

    #[test]
    fn oversize_is_drained_and_cut() {
        let mut input = Vec::new();
        for _ in 0..100 {
            input.extend_from_slice(b"0123456789\r\n");
        }
        input.extend_from_slice(b".\r\nNOOP\r\n");
        let mut r = BufReader::with_capacity(7, &input[..]);
        let mut out = Vec::new();
        assert_eq!(read_data(&mut r, &mut out, 50).unwrap(), DataEnd::TooBig);
        assert!(out.len() <= 50 + 12);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn finds_message_id_in_headers_only() {
        let m = b"From: a\r\nMessage-Id: <x@y>\r\n\r\nbody";
        assert_eq!(message_id(m).as_deref(), Some("<x@y>"));
        let folded = b"Subject: s\r\nMESSAGE-ID:\r\n <f@y>\r\n\r\n";
        assert_eq!(message_id(folded).as_deref(), Some("<f@y>"));
        assert_eq!(message_id(b"From: a\r\n\r\nMessage-ID: <no@y>\r\n"), None);
        assert_eq!(message_id(b""), None);
    }
}
