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
