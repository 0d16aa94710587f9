//! The `Received:` trace header Impulse prepends to every message it accepts
//! (RFC 5321 §4.4), and the RFC 5322 date it carries. Pure functions.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Thu, 26 Nov 2026 15:34:55 +0000` for `secs` since the epoch (UTC).
pub fn rfc5322_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm: (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The trace header, CRLF-terminated.
pub fn received_header(
    helo: &str,
    peer: &str,
    hostname: &str,
    with: &str,
    tls: Option<&impulse_runtime::io::TlsInfo>,
    id: &str,
    now: SystemTime,
) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let helo = if helo.is_empty() { "unknown" } else { helo };
    // RFC 8314 §4.3 style: the TLS version and cipher as a comment.
    let tls = tls.map_or(String::new(), |t| {
        format!("\r\n\t(using {} with cipher {})", t.version, t.cipher)
    });
    format!(
        "Received: from {helo} ([{peer}])\r\n\tby {hostname} (Impulse) with {with} id {id}{tls};\r\n\t{}\r\n",
        rfc5322_date(secs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_table() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_707_295),
            "Thu, 26 Nov 2026 15:34:55 +0000"
        );
    }

    #[test]
    fn header_is_crlf_folded_and_names_everything() {
        let h = received_header(
            "client.example",
            "127.0.0.1",
            "mx.example",
            "ESMTP",
            None,
            "ABC",
            UNIX_EPOCH + Duration::from_secs(0),
        );
        assert!(h.starts_with("Received: from client.example ([127.0.0.1])\r\n\tby mx.example"));
        assert!(h.contains("with ESMTP id ABC;"));
        assert!(h.ends_with("+0000\r\n"));
        assert!(!h.replace("\r\n", "").contains('\n'));
    }
}
