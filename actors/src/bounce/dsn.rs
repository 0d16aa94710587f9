//! RFC 3464 delivery status notifications: a pure builder, no actors.
//!
//! A DSN is a `multipart/report; report-type=delivery-status` message (RFC 6522) from
//! the null sender to the original envelope sender, with three parts: a human-readable
//! explanation, the `message/delivery-status` report (per-message fields, then one
//! block per recipient: Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code)
//! and the original message's headers (`text/rfc822-headers`; the whole message for
//! `RET=FULL` when a recipient failed, RFC 3461 §4.3). A recipient is reported as
//! `failed`, or as `relayed` when it asked for a success report (`NOTIFY=SUCCESS`) and
//! the next hop, which took it, does not offer DSN and so will send none.
//!
//! Everything taken from outside — addresses, the next hop's reply text, the original
//! headers — is sanitised: no CR, LF or other control character from a reply or an
//! address reaches the output, so nothing can start a header or a line; the original
//! headers are re-terminated with CRLF line by line and cut at a size bound.

use crate::accept::received::rfc5322_date;

/// Longest reply text quoted in a report.
const MAX_TEXT: usize = 512;
/// Largest block of original headers returned.
const MAX_HEADERS: usize = 64 * 1024;

/// What happened to a reported recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    /// Handed to a next hop that sends no reports.
    Relayed,
    /// Still being retried (a delay report, `NOTIFY=DELAY`).
    Delayed,
}

/// One recipient the report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedRecipient {
    pub action: Action,
    pub address: String,
    /// RFC 3463 status, e.g. `5.1.1`, `4.4.7` for a message that expired, `2.0.0`.
    pub status: String,
    /// The host that answered, if a remote server gave the failure.
    pub remote_mta: Option<String>,
    /// The remote reply (`550 5.1.1 no such user`) or the local reason.
    pub diagnostic: String,
    /// The remote reply is an SMTP reply (`smtp;` diagnostic type); else a local reason.
    pub from_smtp: bool,
    /// The message expired with this recipient still pending.
    pub expired: bool,
    /// `ORCPT` the client gave for it (`rfc822;user@example.com`).
    pub orcpt: Option<String>,
}

/// What a report needs.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// This MTA's name (Reporting-MTA, the From address's domain).
    pub reporting_mta: &'a str,
    /// The original message's queue id.
    pub original_id: &'a str,
    /// The original envelope sender (the report's recipient).
    pub sender: &'a str,
    /// When the original arrived, seconds since the epoch.
    pub arrival: u64,
    /// Now, seconds since the epoch.
    pub now: u64,
    /// The report's own Message-ID, without brackets.
    pub message_id: &'a str,
    /// A MIME boundary that does not occur in the report (see [`boundary`]).
    pub boundary: &'a str,
    pub recipients: &'a [ReportedRecipient],
    /// The original message (headers at least); its header block is returned.
    pub original: &'a [u8],
    /// `ENVID` of the original (RFC 3461 §5.1), as given.
    pub envid: Option<&'a str>,
    /// `RET=FULL`: return the whole message (`message/rfc822`), not only its headers.
    pub full: bool,
    /// For delayed recipients: when retries end (seconds since the epoch).
    pub retry_until: Option<u64>,
}

/// A boundary for `id` and `salt` (random): long and unlikely enough that the original
/// headers, which are the only outside text in a report, do not contain it; `build`
/// checks and falls back to a longer one.
pub fn boundary(id: &str, salt: u64) -> String {
    format!("=_impulse_{}_{:016x}", sanitize(id, 64), salt)
}

/// `s` with every byte outside printable ASCII replaced by `?`, runs of white space
/// collapsed, cut at `max` bytes.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut space = false;
    for c in s.chars() {
        let c = match c {
            ' ' | '\t' | '\r' | '\n' => ' ',
            c if c.is_ascii_graphic() => c,
            _ => '?',
        };
        if c == ' ' {
            if space || out.is_empty() {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if out.len() >= max {
            break;
        }
        out.push(c);
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// An address for a header or report field: sanitised, no brackets or spaces.
fn address(s: &str) -> String {
    sanitize(s, 320).replace(['<', '>', ' '], "?")
}

/// The header block of `message` (up to the first empty line), each line CRLF-ended,
/// bare CR and NUL removed, at most [`MAX_HEADERS`] bytes (cut at a line end).
pub fn header_block(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line: Vec<u8> = line
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != 0)
            .collect();
        if line.is_empty() {
            break;
        }
        if out.len() + line.len() + 2 > MAX_HEADERS {
            break;
        }
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The report, CRLF line ends throughout.
pub fn build(r: &Report) -> Vec<u8> {
    let failures = r.recipients.iter().any(|f| f.action == Action::Failed);
    let full = r.full && failures && !r.original.is_empty();
    let headers = if full {
        r.original.to_vec()
    } else {
        header_block(r.original)
    };
    let mut boundary = r.boundary.to_string();
    while memchr::memmem::find(&headers, boundary.as_bytes()).is_some() {
        boundary.push_str("_x");
    }
    let host = sanitize(r.reporting_mta, 255).replace(' ', "");
    let sender = address(r.sender);
    let mut out = String::with_capacity(2048 + headers.len());
    let mut line = |s: &str| {
        out.push_str(s);
        out.push_str("\r\n");
    };
    line(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>"
    ));
    line(&format!("To: <{sender}>"));
    let any_expired = r.recipients.iter().any(|f| f.expired);
    let delays = !failures && r.recipients.iter().any(|f| f.action == Action::Delayed);
    line(if delays {
        "Subject: Delayed Mail (still being retried)"
    } else if !failures {
        "Subject: Successful Mail Delivery Report"
    } else if any_expired && r.recipients.iter().all(|f| f.expired) {
        "Subject: Undelivered Mail Returned to Sender (expired)"
    } else {
        "Subject: Undelivered Mail Returned to Sender"
    });
    line(&format!("Date: {}", rfc5322_date(r.now)));
    line(&format!("Message-ID: <{}>", sanitize(r.message_id, 200)));
    line("Auto-Submitted: auto-replied");
    line("MIME-Version: 1.0");
    line(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""
    ));
    line("");
    line("This is a MIME-encapsulated message.");
    line("");
    // 1. For people.
    line(&format!("--{boundary}"));
    line("Content-Type: text/plain; charset=us-ascii");
    line("Content-Description: Notification");
    line("");
    line(&format!("This is the mail system at host {host}."));
    line("");
    line(if failures {
        "Your message could not be delivered to one or more recipients."
    } else if delays {
        "Your message has not been delivered to the recipients below yet; delivery is still \
         being tried. No action is needed."
    } else {
        "Your message was relayed to the recipients' mail systems below, which send no \
         further delivery reports."
    });
    line(&format!(
        "It was received on {} with queue id {}.",
        rfc5322_date(r.arrival),
        sanitize(r.original_id, 64)
    ));
    line("");
    for f in r.recipients {
        let why = sanitize(&f.diagnostic, MAX_TEXT);
        let who = match &f.remote_mta {
            Some(m) => format!(" (said {})", sanitize(m, 255)),
            None => String::new(),
        };
        let expired = match (f.action, f.expired) {
            (Action::Relayed, _) => "relayed; ",
            (Action::Delayed, _) => "delayed, still trying; last error: ",
            (Action::Failed, true) => "delivery gave up after the message expired; last error: ",
            (Action::Failed, false) => "",
        };
        line(&format!("<{}>{who}: {expired}{why}", address(&f.address)));
    }
    line("");
    // 2. For programs (RFC 3464 §2).
    line(&format!("--{boundary}"));
    line("Content-Type: message/delivery-status");
    line("Content-Description: Delivery report");
    line("");
    if let Some(envid) = r.envid {
        line(&format!(
            "Original-Envelope-Id: {}",
            sanitize(envid, 100).replace(' ', "")
        ));
    }
    line(&format!("Reporting-MTA: dns; {host}"));
    line(&format!(
        "X-Impulse-Queue-ID: {}",
        sanitize(r.original_id, 64)
    ));
    line(&format!("Arrival-Date: {}", rfc5322_date(r.arrival)));
    for f in r.recipients {
        line("");
        if let Some(o) = &f.orcpt {
            line(&format!(
                "Original-Recipient: {}",
                sanitize(o, 500).replace(' ', "")
            ));
        }
        line(&format!("Final-Recipient: rfc822; {}", address(&f.address)));
        line(match f.action {
            Action::Failed => "Action: failed",
            Action::Relayed => "Action: relayed",
            Action::Delayed => "Action: delayed",
        });
        line(&format!(
            "Status: {}",
            status(&f.status, f.action, f.expired)
        ));
        if let Some(m) = &f.remote_mta {
            line(&format!(
                "Remote-MTA: dns; {}",
                sanitize(m, 255).replace(' ', "")
            ));
        }
        let kind = if f.from_smtp { "smtp" } else { "x-local" };
        line(&format!(
            "Diagnostic-Code: {kind}; {}",
            sanitize(&f.diagnostic, MAX_TEXT)
        ));
        if f.expired || f.action == Action::Delayed {
            line(&format!("Last-Attempt-Date: {}", rfc5322_date(r.now)));
        }
        if let (Action::Delayed, Some(until)) = (f.action, r.retry_until) {
            line(&format!("Will-Retry-Until: {}", rfc5322_date(until)));
        }
    }
    line("");
    // 3. What was sent.
    line(&format!("--{boundary}"));
    if full {
        line("Content-Type: message/rfc822");
        line("Content-Description: Undelivered Message");
    } else {
        line("Content-Type: text/rfc822-headers");
        line(if failures {
            "Content-Description: Undelivered Message Headers"
        } else {
            "Content-Description: Message Headers"
        });
    }
    line("");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&headers);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// A valid RFC 3463 status: `class.subject.detail` with class 4 or 5 for a failure (an
/// expired recipient may carry its last temporary status), class 2 for a relayed one;
/// else a fitting default.
fn status(s: &str, action: Action, expired: bool) -> String {
    let parts: Vec<&str> = s.split('.').collect();
    let digits = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
    let ok = parts.len() == 3 && parts.iter().all(|p| digits(p));
    if action == Action::Relayed {
        return if ok && parts[0] == "2" {
            s.to_string()
        } else {
            "2.0.0".into()
        };
    }
    if action == Action::Delayed {
        return if ok && parts[0] == "4" {
            s.to_string()
        } else {
            "4.0.0".into()
        };
    }
    match (ok, parts.first().copied()) {
        (true, Some("5")) => s.to_string(),
        (true, Some("4")) if expired => s.to_string(),
        _ if expired => "4.4.7".into(),
        _ => "5.0.0".into(),
    }
}

#[cfg(test)]
mod tests;
