//! Reports parsed back with mail-parser, every field checked; sanitising and status
//! tables.

use mail_parser::{MessageParser, MimeHeaders};

use super::*;

const ORIGINAL: &[u8] = b"Received: from client ([127.0.0.1])\r\n\tby mta.test (Impulse) with ESMTP id 1A;\r\n\tThu, 1 Jan 2026 00:00:00 +0000\r\nFrom: <alice@sender.test>\r\nTo: <bob@dest.test>\r\nSubject: hello\r\nMessage-ID: <orig@sender.test>\r\n\r\nthe body must not come back\r\n";

fn failed() -> Vec<ReportedRecipient> {
    vec![
        ReportedRecipient {
            action: Action::Failed,
            address: "bob@dest.test".into(),
            status: "5.1.1".into(),
            remote_mta: Some("mx.dest.test".into()),
            diagnostic: "550 5.1.1 no such user".into(),
            from_smtp: true,
            expired: false,
            orcpt: None,
        },
        ReportedRecipient {
            action: Action::Failed,
            address: "carol@dest.test".into(),
            status: "4.2.2".into(),
            remote_mta: None,
            diagnostic: "451 4.2.2 mailbox full".into(),
            from_smtp: true,
            expired: true,
            orcpt: None,
        },
    ]
}

fn report<'a>(failed: &'a [ReportedRecipient], original: &'a [u8]) -> Vec<u8> {
    build(&report_args(failed, original))
}

/// `boundary("1B", 0xfeed)`, as a constant the reports can borrow.
const BOUNDARY: &str = "=_impulse_1B_000000000000feed";

#[test]
fn the_test_boundary_is_what_boundary_makes() {
    assert_eq!(boundary("1B", 0xfeed), BOUNDARY);
}

fn report_args<'a>(failed: &'a [ReportedRecipient], original: &'a [u8]) -> Report<'a> {
    Report {
        reporting_mta: "mta.test",
        original_id: "1A",
        sender: "alice@sender.test",
        arrival: 1_767_225_600,
        now: 1_767_229_200,
        message_id: "1B.dsn@mta.test",
        boundary: BOUNDARY,
        recipients: failed,
        original,
        envid: None,
        full: false,
        retry_until: None,
    }
}

/// The fields of a `message/delivery-status` body: one map per block.
fn blocks(body: &str) -> Vec<Vec<(String, String)>> {
    body.split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            b.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_report_parses_with_every_field() {
    let failed = failed();
    let raw = report(&failed, ORIGINAL);
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(!text.replace("\r\n", "").contains('\n'), "CRLF only");
    assert!(!text.replace("\r\n", "").contains('\r'), "CRLF only");

    let msg = MessageParser::default()
        .parse(&raw)
        .expect("mail-parser parses it");
    assert_eq!(
        msg.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("MAILER-DAEMON@mta.test")
    );
    assert_eq!(
        msg.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("alice@sender.test")
    );
    assert!(msg.subject().unwrap().contains("Undelivered"));
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));

    let part = |t: &str, s: &str| {
        msg.parts
            .iter()
            .find(|p| {
                p.content_type()
                    .is_some_and(|c| c.ctype() == t && c.subtype() == Some(s))
            })
            .unwrap_or_else(|| panic!("no {t}/{s} part in {text}"))
    };
    let human = String::from_utf8_lossy(part("text", "plain").contents()).into_owned();
    assert!(human.contains("<bob@dest.test>"), "{human}");
    assert!(human.contains("no such user"), "{human}");

    let status =
        String::from_utf8_lossy(part("message", "delivery-status").contents()).into_owned();
    let b = blocks(&status);
    assert_eq!(b.len(), 3, "per-message block and two recipients: {status}");
    assert_eq!(field(&b[0], "Reporting-MTA"), Some("dns; mta.test"));
    assert_eq!(
        field(&b[0], "Arrival-Date"),
        Some("Thu, 01 Jan 2026 00:00:00 +0000")
    );
    assert_eq!(
        field(&b[1], "Final-Recipient"),
        Some("rfc822; bob@dest.test")
    );
    assert_eq!(field(&b[1], "Action"), Some("failed"));
    assert_eq!(field(&b[1], "Status"), Some("5.1.1"));
    assert_eq!(field(&b[1], "Remote-MTA"), Some("dns; mx.dest.test"));
    assert_eq!(
        field(&b[1], "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 no such user")
    );
    assert_eq!(
        field(&b[2], "Final-Recipient"),
        Some("rfc822; carol@dest.test")
    );
    assert_eq!(
        field(&b[2], "Status"),
        Some("4.2.2"),
        "the last temporary status"
    );
    assert_eq!(field(&b[2], "Remote-MTA"), None);
    assert!(field(&b[2], "Last-Attempt-Date").is_some());

    let headers = String::from_utf8_lossy(part("text", "rfc822-headers").contents()).into_owned();
    assert!(
        headers.contains("Message-ID: <orig@sender.test>"),
        "{headers}"
    );
    assert!(headers.contains("Subject: hello"), "{headers}");
    assert!(
        !text.contains("the body must not come back"),
        "headers only"
    );
}

#[test]
fn outside_text_cannot_inject_a_header_or_a_line() {
    let evil = vec![ReportedRecipient {
        action: Action::Failed,
        address: "x@d.test>\r\nBcc: victim@else.test".into(),
        status: "5.7.1\r\nX-Evil: 1".into(),
        remote_mta: Some("mx.test\r\nX-Evil: 2".into()),
        diagnostic: "550 no\r\nX-Evil: 3\r\n\r\n--boundary".into(),
        from_smtp: true,
        expired: false,
        orcpt: None,
    }];
    let raw = report(&evil, b"Subject: a\rb\0c\nX: y\n\nbody");
    let text = String::from_utf8(raw).unwrap();
    for line in text.split("\r\n") {
        assert!(!line.starts_with("X-Evil"), "injected line in:\n{text}");
        assert!(!line.starts_with("Bcc"), "injected header in:\n{text}");
        assert!(!line.contains('\r') && !line.contains('\n') && !line.contains('\0'));
    }
    assert!(
        text.contains("Status: 5.0.0"),
        "a malformed status is replaced:\n{text}"
    );
    assert!(
        text.contains("Subject: abc\r\nX: y\r\n"),
        "headers re-terminated:\n{text}"
    );
}

#[test]
fn the_boundary_never_occurs_in_the_returned_headers() {
    let b = boundary("1B", 0xfeed);
    let original = format!("X-Trap: --{b}\r\n\r\n");
    let f = failed();
    let raw = report(&f, original.as_bytes());
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(text.contains(&format!("boundary=\"{b}_x\"")), "{text}");
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert!(msg.parts.len() >= 4, "the trap did not split the report");
}

#[test]
fn sanitize_table() {
    for (input, max, want) in [
        ("plain text", 100, "plain text"),
        ("  lead and  double  ", 100, "lead and double"),
        ("tab\tcr\rlf\nend", 100, "tab cr lf end"),
        ("nul\0bell\x07", 100, "nul?bell?"),
        ("ümlaut", 100, "?mlaut"),
        ("abcdef", 3, "abc"),
    ] {
        assert_eq!(sanitize(input, max), want, "{input:?}");
    }
}

#[test]
fn status_table() {
    use Action::{Failed, Relayed};
    for (input, action, expired, want) in [
        ("5.1.1", Failed, false, "5.1.1"),
        ("5.7.26", Failed, false, "5.7.26"),
        ("4.2.2", Failed, false, "5.0.0"),
        ("4.2.2", Failed, true, "4.2.2"),
        ("", Failed, true, "4.4.7"),
        ("", Failed, false, "5.0.0"),
        ("5.1", Failed, false, "5.0.0"),
        ("5.x.1", Failed, false, "5.0.0"),
        ("2.0.0", Failed, false, "5.0.0"),
        ("2.6.0", Relayed, false, "2.6.0"),
        ("", Relayed, false, "2.0.0"),
        ("5.1.1", Relayed, false, "2.0.0"),
        ("4.2.2", Action::Delayed, false, "4.2.2"),
        ("", Action::Delayed, false, "4.0.0"),
        ("5.1.1", Action::Delayed, false, "4.0.0"),
    ] {
        assert_eq!(
            status(input, action, expired),
            want,
            "{input:?} {action:?} expired={expired}"
        );
    }
}

#[test]
fn a_success_report_says_relayed_and_returns_headers_only() {
    let relayed = vec![ReportedRecipient {
        action: Action::Relayed,
        address: "bob@dest.test".into(),
        status: "2.0.0".into(),
        remote_mta: Some("127.0.0.1:25".into()),
        diagnostic: "250 2.0.0 queued as X".into(),
        from_smtp: true,
        expired: false,
        orcpt: Some("rfc822;bob@orig.test".into()),
    }];
    let raw = build(&Report {
        full: true,
        ..report_args(&relayed, ORIGINAL)
    });
    let text = String::from_utf8(raw.clone()).unwrap();
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.subject(), Some("Successful Mail Delivery Report"));
    let status = msg
        .parts
        .iter()
        .find(|p| p.content_type().is_some_and(|c| c.ctype() == "message"))
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
        .unwrap_or_else(|| panic!("no delivery-status part in {text}"));
    let b = blocks(&status);
    assert_eq!(field(&b[1], "Action"), Some("relayed"));
    assert_eq!(field(&b[1], "Status"), Some("2.0.0"));
    assert_eq!(
        field(&b[1], "Original-Recipient"),
        Some("rfc822;bob@orig.test")
    );
    assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
    assert!(
        !text.contains("the body must not come back"),
        "RET=FULL returns the message only with a failure (RFC 3461 §4.3)"
    );
}

#[test]
fn header_block_stops_at_the_body_and_the_bound() {
    assert_eq!(header_block(b"A: 1\nB: 2\r\n\r\nbody"), b"A: 1\r\nB: 2\r\n");
    let big = format!("{}\r\n\r\n", "X: y\r\n".repeat(20_000));
    assert!(header_block(big.as_bytes()).len() <= MAX_HEADERS);
}
