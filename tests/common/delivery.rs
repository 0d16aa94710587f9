//! Sending test mail into a daemon for the delivery scenarios (`delivery_outcomes`,
//! `delivery_connections`): [`send`] submits one message through lettre from [`SENDER`]
//! and returns its Message-ID; [`LOG_WAIT`] bounds the waits for log records.

use std::net::SocketAddr;
use std::time::Duration;

use lettre::address::Envelope;

use super::relay::lettre_connect;

/// The envelope sender (and `From:`) of every message [`send`] submits.
pub const SENDER: &str = "sender@impulse.test";
/// Upper bound of the waits for message-log records.
pub const LOG_WAIT: Duration = Duration::from_secs(60);

/// Send one message with `recipients` through lettre; returns its Message-ID.
pub fn send(addr: SocketAddr, recipients: &[&str], body: &str) -> String {
    let mid = format!(
        "<delivery-{}-{}@impulse.test>",
        std::process::id(),
        super::nanos()
    );
    let data = format!(
        "From: <{SENDER}>\r\nTo: {}\r\nSubject: delivery test\r\nMessage-ID: {mid}\r\n\r\n{body}",
        recipients.join(", ")
    );
    let envelope = Envelope::new(
        Some(SENDER.parse().unwrap()),
        recipients.iter().map(|r| r.parse().unwrap()).collect(),
    )
    .unwrap();
    let mut conn = lettre_connect(addr, "delivery-client.test", Duration::from_secs(30));
    let r = conn
        .send(&envelope, data.as_bytes())
        .expect("impulsed accepts");
    assert!(r.is_positive(), "{r:?}");
    let _ = conn.quit();
    mid
}
