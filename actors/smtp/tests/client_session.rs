//! The client session against scripted fake-server transcripts, fed whole (see
//! `client_support/scripts.rs` for the scenarios), plus the few checks a script cannot
//! express.

mod client_support;

use client_support::scripts::scripts;
use client_support::{run, Feed};
use impulse_smtp::client::{ClientEvent, ClientSession, RcptResult};
use impulse_smtp::reply::EnhancedCode;

#[test]
fn every_script_whole() {
    for (name, script) in scripts() {
        run(name, &script, Feed::Whole);
    }
}

#[test]
fn capabilities_are_recorded() {
    let session = run(
        "caps",
        &scripts()
            .into_iter()
            .find(|(n, _)| *n == "single message, pipelined")
            .map(|(_, s)| s[..5].to_vec())
            .unwrap_or_default(),
        Feed::Whole,
    );
    let caps = session.capabilities();
    assert!(caps.pipelining && caps.eight_bit_mime && caps.enhanced_status_codes);
    assert!(!caps.starttls);
    assert_eq!(caps.size_limit(), Some(1_000_000));
}

#[test]
fn replies_carry_enhanced_codes_and_text() {
    let mut s = ClientSession::new("client.example".to_owned());
    s.ingest(b"220 hi\r\n");
    s.ingest(b"250-mx\r\n250 PIPELINING\r\n");
    assert_eq!(s.poll_event(), Some(ClientEvent::Ready));
    let tx = client_support::msg(1, "a@b", &["c@d"], "x").tx();
    assert!(s.send_message(tx).is_ok());
    s.ingest(b"250 2.1.0 ok\r\n550-5.1.1 no such\r\n550 5.1.1 user here\r\n554 5.5.1 none\r\n");
    let Some(ClientEvent::Done { id, outcome }) = s.poll_event() else {
        panic!("expected Done");
    };
    assert_eq!(id, 1);
    let (rcpt, result) = &outcome.recipients[0];
    assert_eq!(rcpt, "c@d");
    let RcptResult::Permanent(reply) = result else {
        panic!("expected Permanent, got {result:?}");
    };
    assert_eq!(reply.code, 550);
    assert_eq!(reply.enhanced, Some(EnhancedCode::new(5, 1, 1)));
    assert_eq!(reply.text, "no such\nuser here");
    assert!(!outcome.all_delivered());
}

#[test]
fn ehlo_name_is_sanitised() {
    let mut s = ClientSession::new("bad name\r\nRSET".to_owned());
    s.ingest(b"220 hi\r\n");
    assert_eq!(s.take_output(), b"EHLO badnameRSET\r\n");
    let mut s = ClientSession::new(String::new());
    s.ingest(b"220 hi\r\n");
    assert_eq!(s.take_output(), b"EHLO localhost\r\n");
}

/// A session ready on a server with PIPELINING and CHUNKING.
fn chunking_session() -> ClientSession {
    let mut s = ClientSession::new("client.example".to_owned());
    s.ingest(b"220 hi\r\n");
    s.ingest(b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    assert_eq!(s.poll_event(), Some(ClientEvent::Ready));
    let _ = s.take_output();
    s
}

fn large_tx(id: u64, to: &[&str]) -> impulse_smtp::client::OutboundTx {
    let line = "x".repeat(98) + "\r\n";
    let body = line.repeat(impulse_smtp::client::PIPELINED_BDAT_MAX / 100 + 10);
    let mut tx = client_support::msg(id, "a@b", &[], "").tx();
    tx.envelope.recipients = to.iter().map(|s| (*s).to_owned()).collect();
    tx.body = bytes::Bytes::from(body);
    tx
}

#[test]
fn a_large_body_waits_for_the_rcpt_replies_before_its_bdat() {
    let mut s = chunking_session();
    let tx = large_tx(7, &["c@d", "e@f"]);
    let len = tx.body.len();
    assert!(len > impulse_smtp::client::PIPELINED_BDAT_MAX);
    assert!(s.send_message(tx).is_ok());
    assert_eq!(
        s.take_output(),
        b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\n",
        "no BDAT before the recipients are answered"
    );
    s.ingest(b"250 ok\r\n250 ok\r\n");
    assert!(s.take_output().is_empty(), "one RCPT is still unanswered");
    s.ingest(b"550 no\r\n");
    let out = s.take_output();
    let head = format!("BDAT {len} LAST\r\n");
    assert!(out.starts_with(head.as_bytes()));
    assert_eq!(out.len(), head.len() + len);
    s.ingest(b"250 queued\r\n");
    let Some(ClientEvent::Done { id: 7, outcome }) = s.poll_event() else {
        panic!("expected Done");
    };
    let codes: Vec<u16> = outcome
        .recipients
        .iter()
        .map(|(_, r)| r.reply().code)
        .collect();
    assert_eq!(codes, [250, 550]);
}

#[test]
fn a_large_body_goes_nowhere_when_every_recipient_is_refused() {
    let mut s = chunking_session();
    assert!(s.send_message(large_tx(8, &["c@d"])).is_ok());
    let _ = s.take_output();
    s.ingest(b"250 ok\r\n550 5.1.1 no\r\n");
    assert!(s.take_output().is_empty(), "no BDAT for nobody");
    let Some(ClientEvent::Done { id: 8, outcome }) = s.poll_event() else {
        panic!("expected Done");
    };
    assert!(matches!(outcome.recipients[0].1, RcptResult::Permanent(_)));
    assert_eq!(s.poll_event(), Some(ClientEvent::Ready));
    // The next transaction starts clean.
    assert!(s
        .send_message(client_support::msg(9, "a@b", &["c@d"], "x").tx())
        .is_ok());
    assert!(s.take_output().starts_with(b"RSET\r\nMAIL FROM:<a@b>\r\n"));
}
