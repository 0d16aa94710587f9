//! Test messages: their headers, their deterministic bodies, and the DATA encoding
//! (dot-stuffing plus the terminating dot line) a client puts on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// Characters of a body line after its first (a printable, space-bearing mix).
const ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789+/=-_,;:!?";
/// Characters per body line before CRLF.
pub const LINE_CHARS: usize = 76;

/// The Message-ID (angle brackets included) of message `n` of run `run`.
pub fn message_id(run: u64, n: usize) -> String {
    format!("<src-{run}-{n}@impulse.test>")
}

/// Message `n` of run `run`: From, To, Subject, Date and Message-ID headers, a blank
/// line, and a body of exactly `size` bytes (`size` 1 gives a 2-byte body) of printable
/// 76-character lines ending in CRLF. Some lines begin with `.` or `..`, so a sender must
/// dot-stuff correctly for the body to arrive intact.
pub fn make_message(n: usize, run: u64, size: usize, sender: &str, rcpt: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(size + 256);
    m.extend_from_slice(b"From: <");
    m.extend_from_slice(sender.as_bytes());
    m.extend_from_slice(b">\r\nTo: <");
    m.extend_from_slice(rcpt.as_bytes());
    m.extend_from_slice(b">\r\nSubject: impulse test message ");
    m.extend_from_slice(n.to_string().as_bytes());
    m.extend_from_slice(b"\r\nDate: ");
    m.extend_from_slice(rfc5322_date(SystemTime::now()).as_bytes());
    m.extend_from_slice(b"\r\nMessage-ID: ");
    m.extend_from_slice(message_id(run, n).as_bytes());
    m.extend_from_slice(b"\r\n\r\n");
    push_body(&mut m, n, size);
    m
}

fn push_body(m: &mut Vec<u8>, n: usize, size: usize) {
    const FULL: usize = LINE_CHARS + 2;
    let (full, rest) = (size / FULL, size % FULL);
    let lines = full + usize::from(rest >= 2 || size == 1);
    for i in 0..lines {
        let chars = if i < full {
            // A 1-byte remainder lengthens the last full line by one character.
            LINE_CHARS + usize::from(rest == 1 && i + 1 == full)
        } else {
            rest.saturating_sub(2)
        };
        let seed = n.wrapping_mul(7).wrapping_add(i.wrapping_mul(13));
        for j in 0..chars {
            let b = match (j, i % 8, i % 13) {
                (0, 3, _) | (0, _, 6) | (1, _, 6) => b'.',
                _ => ALPHABET[(seed + j) % ALPHABET.len()],
            };
            m.push(b);
        }
        m.extend_from_slice(b"\r\n");
    }
}

/// Append `msg` as DATA content to `out`: lines starting with `.` get one more, a final
/// CRLF is added if missing, then the `.` terminator line. Lines are CRLF-delimited, as
/// in RFC 5321: a `.` after a bare LF is content and is not stuffed (the sink unstuffs
/// the same way, so such messages round-trip; generated messages have no bare LF).
pub fn encode_data(msg: &[u8], out: &mut Vec<u8>) {
    out.reserve(msg.len() + msg.len() / 64 + 5);
    let mut at_bol = true;
    let mut rest = msg;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        if at_bol && line[0] == b'.' {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        at_bol = line.ends_with(b"\r\n");
        rest = &rest[end..];
    }
    if !msg.is_empty() && !msg.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// `Tue, 25 Nov 2025 15:36:00 +0000` for `t` (UTC).
pub fn rfc5322_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (y, mo, d) = civil_from_days(days as i64);
    let s = secs % 86_400;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(mo - 1) as usize],
        y,
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) — Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn body(m: &[u8]) -> &[u8] {
        let i = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        &m[i + 4..]
    }

    #[test]
    fn body_has_exact_size_and_printable_lines() {
        for size in [0, 2, 3, 77, 78, 79, 80, 155, 156, 157, 1024, 10_000] {
            let m = make_message(5, 9, size, "s@a.test", "r@b.test");
            let b = body(&m);
            assert_eq!(b.len(), size, "size {size}");
            assert!(b.is_empty() || b.ends_with(b"\r\n"));
            for line in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let text = line.strip_suffix(b"\r").expect("CRLF line ends");
                assert!(text.len() <= LINE_CHARS + 1);
                assert!(text.iter().all(|c| (0x20..0x7f).contains(c)));
            }
        }
        assert_eq!(body(&make_message(0, 0, 1, "a", "b")), b"\r\n");
    }

    #[test]
    fn headers_and_dot_lines() {
        let m = make_message(42, 7, 2000, "s@a.test", "r@b.test");
        let text = String::from_utf8(m.clone()).unwrap();
        for h in [
            "From: <s@a.test>\r\n",
            "To: <r@b.test>\r\n",
            "Subject: ",
            "Date: ",
        ] {
            assert!(text.contains(h), "{h}");
        }
        assert!(text.contains("\r\nMessage-ID: <src-7-42@impulse.test>\r\n"));
        assert!(text.contains("\r\n.") && text.contains("\r\n.."));
        assert_ne!(
            make_message(1, 7, 100, "a", "b"),
            make_message(2, 7, 100, "a", "b")
        );
    }

    #[test]
    fn encode_data_stuffs_and_terminates() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"x\r\n..y\r\nz", b"x\r\n...y\r\nz\r\n.\r\n"),
            (b"a.\r\n.b\n.c\r\n", b"a.\r\n..b\n.c\r\n.\r\n"),
        ];
        for (input, wire) in cases {
            let mut out = Vec::new();
            encode_data(input, &mut out);
            assert_eq!(&out[..], *wire, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_764_084_960);
        assert_eq!(rfc5322_date(t), "Tue, 25 Nov 2025 15:36:00 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
