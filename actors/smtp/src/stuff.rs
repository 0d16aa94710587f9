//! The wire forms of a message body: dot-stuffed after DATA's 354 (RFC 5321 §4.5.2), or
//! as one `BDAT … LAST` chunk (RFC 3030).
//!
//! [`dot_stuff`] owns the DATA form: every line that starts with `.` gets a second `.`,
//! every line end becomes CRLF (a bare LF and a bare CR both become CRLF, so no lone CR or
//! LF is ever sent: the next hop cannot be smuggled a terminator), the body is made to end
//! with CRLF, and the `.` CRLF terminator is appended. [`canonical_into`] writes the same
//! lines without stuffing or terminator, and [`canonical_len`] says how long that is (the
//! size a `BDAT` announces). They scan with `memchr` and copy whole line runs, never byte
//! by byte.

use memchr::memchr2;

/// Appends `body`, dot-stuffed, CRLF-normalised and terminated by `.\r\n`, to `out`.
///
/// An empty body yields just the terminator (an empty message).
pub fn dot_stuff(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 64 + 8);
    crlf_lines(body, out, true);
    out.extend_from_slice(b".\r\n");
}

/// `body` with every line end made CRLF (bare LF and bare CR both become CRLF) and a final
/// CRLF added when missing: the stored form of a message that did not arrive over SMTP
/// (the HTTP injection API), so signing and delivery see the same bytes as for SMTP.
pub fn canonical_lines(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 2);
    crlf_lines(body, &mut out, false);
    out
}

/// Append `body` to `out` with every line ended by CRLF and a final CRLF added when
/// missing (no dot-stuffing, no terminator): the chunk of a `BDAT … LAST`.
pub fn canonical_into(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(canonical_len(body));
    crlf_lines(body, out, false);
}

/// How many bytes [`canonical_into`] writes for `body`.
pub fn canonical_len(body: &[u8]) -> usize {
    let mut len = 0;
    let mut rest = body;
    while !rest.is_empty() {
        match memchr2(b'\r', b'\n', rest) {
            None => return len + rest.len() + 2,
            Some(i) => {
                len += i + 2;
                let crlf = rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n');
                rest = &rest[i + if crlf { 2 } else { 1 }..];
            }
        }
    }
    len
}

/// Append `body` to `out` line by line, each line ended by CRLF whatever ended it (CRLF,
/// a bare LF or a bare CR, or the end of the body); with `stuff`, a line starting with
/// `.` gets a second one. Whole runs of line content are copied at once.
fn crlf_lines(body: &[u8], out: &mut Vec<u8>, stuff: bool) {
    let mut rest = body;
    while !rest.is_empty() {
        // At the start of a line.
        if stuff && rest[0] == b'.' {
            out.push(b'.');
        }
        match memchr2(b'\r', b'\n', rest) {
            None => {
                out.extend_from_slice(rest);
                out.extend_from_slice(b"\r\n");
                break;
            }
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                out.extend_from_slice(b"\r\n");
                // CRLF consumes two bytes; a bare CR or bare LF one.
                let eol = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + eol..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        dot_stuff(body, &mut out);
        out
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
            (b"a\rb", b"a\r\nb\r\n.\r\n"),
            (b"a\r", b"a\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"x\r\n.\r\ny", b"x\r\n..\r\ny\r\n.\r\n"),
            (b"..two\r\n", b"...two\r\n.\r\n"),
            (b"a.b\r\n", b"a.b\r\n.\r\n"),
            (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
            (b"x\n.\ny", b"x\r\n..\r\ny\r\n.\r\n"),
            (b"x\r.\r", b"x\r\n..\r\n.\r\n"),
            (b"\n\r", b"\r\n\r\n.\r\n"),
            (b"\r\r\n", b"\r\n\r\n.\r\n"),
        ];
        for (body, want) in cases {
            assert_eq!(
                stuffed(body),
                *want,
                "body {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn canonical_lines_table() {
        let table: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"a", b"a\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"a\rb", b"a\r\nb\r\n"),
            (b"a\r\n\r\nb\r\n", b"a\r\n\r\nb\r\n"),
            (b".x\n", b".x\r\n"),
            (b"\n\r", b"\r\n\r\n"),
        ];
        for (input, want) in table {
            assert_eq!(&canonical_lines(input), want, "{input:?}");
        }
    }

    #[test]
    fn canonical_len_is_what_canonical_into_writes() {
        let bodies: &[&[u8]] = &[
            b"",
            b"a",
            b"a\r\n",
            b"a\nb\n",
            b"a\rb",
            b"a\r",
            b"\r\r\n",
            b"\n\r",
            b".x\n",
            b"x\r\n.\r\ny",
            b"\r\n\r\n",
        ];
        for body in bodies {
            let mut out = b"BDAT".to_vec();
            canonical_into(body, &mut out);
            assert_eq!(&out[4..], canonical_lines(body), "{body:?}");
            assert_eq!(canonical_len(body), out.len() - 4, "{body:?}");
        }
    }

    #[test]
    fn appends_to_existing_output() {
        let mut out = b"prefix".to_vec();
        dot_stuff(b".x", &mut out);
        assert_eq!(out, b"prefix..x\r\n.\r\n");
    }
}
