//! The headline scenario: 1,000 messages relayed over 10 concurrent client
//! connections to the recording sink, each arriving exactly once with its headers and
//! body intact (dot-stuffed lines included), and the message log telling the same story.
//!
//! The client is lettre: ten threads, each with its own `SmtpConnection` (one connection
//! reused for its 100 messages; lettre's `SmtpTransport` would open a connection per
//! message without its `pool` feature, which the workspace does not enable).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::log::{count, of_type};
use common::relay;
use common::relay::{crlf_only, lettre_connect, received_header_problem};
use impulse_sink::{Sink, SinkConfig};
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::transport::smtp::client::SmtpConnection;
use lettre::Message;

const THREADS: usize = 10;
const PER_THREAD: usize = 100;
const TOTAL: usize = THREADS * PER_THREAD;
const SENDER: &str = "relay-sender@impulse.test";

/// One message to send: its Message-ID, recipient, envelope and the bytes lettre writes
/// between DATA's 354 and the terminator (before lettre's own dot-stuffing).
struct Outgoing {
    message_id: String,
    recipient: String,
    envelope: Envelope,
    formatted: Vec<u8>,
}

impl Outgoing {
    /// What a receiver reads as the message content: lettre always writes
    /// `CRLF . CRLF` after the formatted message, so the content is the formatted message
    /// followed by that CRLF.
    fn content(&self) -> Vec<u8> {
        let mut c = self.formatted.clone();
        c.extend_from_slice(b"\r\n");
        c
    }
}

/// A body with lines that must be dot-stuffed on the wire: a lone ".", "..", lines
/// starting with "." and "..", and ordinary text around them.
fn body(n: usize) -> String {
    let mut b = String::new();
    b.push_str(&format!("Message number {n} of the relay test.\n"));
    b.push_str(".\n");
    b.push_str(&format!(".leading dot on line three of {n}\n"));
    b.push('\n');
    b.push_str(&format!("..two leading dots in {n}\n"));
    b.push_str("..\n");
    b.push_str("...three\n");
    for k in 0..(n % 7) {
        b.push_str(&format!(
            "filler line {k} for message {n}: the quick brown fox\n"
        ));
    }
    b.push_str(". a dot and a space\n");
    b.push_str(&format!("last line of {n}\n"));
    b
}

fn outgoing(run: &str, n: usize) -> Outgoing {
    let message_id = format!("<relay1000-{run}-{n}@impulse.test>");
    let recipient = format!("rcpt{n}@example.com");
    let msg = Message::builder()
        .from(SENDER.parse().unwrap())
        .to(recipient.parse().unwrap())
        .subject(format!("relay test {n}"))
        .message_id(Some(message_id.clone()))
        .header(ContentType::TEXT_PLAIN)
        .body(body(n))
        .expect("build message");
    let formatted = msg.formatted();
    // The dotted lines must reach the wire as lines starting with "." (not transfer-encoded
    // away), so that the relay has something to stuff.
    for needle in [
        &b"\r\n.\r\n"[..],
        b"\r\n..two leading dots",
        b"\r\n.leading dot",
    ] {
        assert!(
            formatted.windows(needle.len()).any(|w| w == needle),
            "lettre encoded the body unexpectedly:\n{}",
            String::from_utf8_lossy(&formatted)
        );
    }
    Outgoing {
        message_id,
        recipient,
        envelope: msg.envelope().clone(),
        formatted,
    }
}

fn connect(addr: SocketAddr) -> SmtpConnection {
    lettre_connect(addr, "relay-client.test", Duration::from_secs(60))
}

/// Is `prefix` exactly one (possibly folded) `Received:` header written by Impulse?
fn is_one_received_header(prefix: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(prefix) else {
        return false;
    };
    received_header_problem(text).is_none() && text.contains("(Impulse)")
}

#[test]
fn relay_1000_messages_over_10_connections_exactly_once_and_intact() {
    let run = format!("{}-{}", std::process::id(), common::nanos());

    // Calibration: what a receiver makes of lettre's DATA when nobody is in between.
    {
        let direct = Sink::start(SinkConfig::default()).unwrap();
        let m = outgoing(&run, 999_999);
        let mut c = connect(direct.addr());
        let r = c.send(&m.envelope, &m.formatted).expect("direct send");
        assert!(r.is_positive());
        let _ = c.quit();
        assert!(direct.wait_for(1, Duration::from_secs(10)));
        let got = direct.messages().remove(0);
        assert_eq!(
            got.data,
            m.content(),
            "calibration: sink data differs from lettre's content"
        );
    }

    let (_tmp, sink, daemon) = relay("");

    // Build everything first so that the expectations are fixed before sending.
    let batches: Vec<Vec<Outgoing>> = (0..THREADS)
        .map(|t| {
            (0..PER_THREAD)
                .map(|i| outgoing(&run, t * PER_THREAD + i))
                .collect()
        })
        .collect();
    let expected: HashMap<String, (String, Vec<u8>)> = batches
        .iter()
        .flatten()
        .map(|m| (m.message_id.clone(), (m.recipient.clone(), m.content())))
        .collect();
    assert_eq!(expected.len(), TOTAL, "Message-IDs must be unique");

    let smtp = daemon.smtp;
    let handles: Vec<_> = batches
        .into_iter()
        .enumerate()
        .map(|(t, batch)| {
            std::thread::Builder::new()
                .name(format!("client-{t}"))
                .spawn(move || {
                    let mut conn = connect(smtp);
                    for m in &batch {
                        let r = conn
                            .send(&m.envelope, &m.formatted)
                            .unwrap_or_else(|e| panic!("thread {t}: {}: {e}", m.message_id));
                        assert!(r.is_positive(), "thread {t}: {}: {r:?}", m.message_id);
                    }
                    conn.quit().expect("QUIT");
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }

    // Everything accepted: now every message must arrive and be logged.
    daemon.wait_for_log(Duration::from_secs(180), "1000 Delivery records", |r| {
        count(r, "Delivery") >= TOTAL
    });
    assert!(
        sink.wait_for(TOTAL, Duration::from_secs(30)),
        "sink has {} of {TOTAL} messages",
        sink.count()
    );
    // Let a duplicate (if any) show up before counting: once the spool is empty, nothing
    // more can reach the sink.
    daemon.wait_spool_empty(Duration::from_secs(30));

    let messages = sink.messages();
    assert_eq!(
        messages.len(),
        TOTAL,
        "the sink must hold exactly {TOTAL} messages"
    );

    let mut seen: HashSet<String> = HashSet::new();
    for m in &messages {
        let mid = m
            .message_id
            .clone()
            .unwrap_or_else(|| panic!("message without Message-ID: {:?}", m.recipients));
        assert!(seen.insert(mid.clone()), "{mid} arrived more than once");
        let (rcpt, content) = expected
            .get(&mid)
            .unwrap_or_else(|| panic!("unexpected Message-ID {mid}"));
        assert_eq!(m.sender, SENDER, "{mid}: envelope sender");
        assert_eq!(
            &m.recipients,
            &vec![rcpt.clone()],
            "{mid}: envelope recipients"
        );
        assert!(
            m.data.len() > content.len() && m.data.ends_with(content),
            "{mid}: headers or body changed in transit.\n--- sent ---\n{}\n--- arrived ---\n{}",
            String::from_utf8_lossy(content),
            String::from_utf8_lossy(&m.data)
        );
        let prefix = &m.data[..m.data.len() - content.len()];
        assert!(
            is_one_received_header(prefix),
            "{mid}: expected exactly Impulse's Received header before the original, got:\n{}",
            String::from_utf8_lossy(prefix)
        );
        assert!(
            crlf_only(&m.data),
            "{mid}: bare CR or LF in the relayed data"
        );
    }
    assert_eq!(seen.len(), TOTAL);

    // The log: 1000 receptions and 1000 deliveries, one of each per queue id.
    // Receptions are logged without fsync and may trail the deliveries: wait for them too.
    let records = daemon.wait_for_log(Duration::from_secs(30), "1000 Reception records", |r| {
        count(r, "Reception") >= TOTAL
    });
    assert_eq!(count(&records, "Reception"), TOTAL, "Reception records");
    assert_eq!(count(&records, "Delivery"), TOTAL, "Delivery records");
    assert_eq!(count(&records, "Bounce"), 0, "Bounce records");
    let ids = |kind: &str| -> HashSet<&str> {
        of_type(&records, kind, None)
            .into_iter()
            .map(|x| x["id"].as_str().expect("id"))
            .collect()
    };
    let reception_ids = ids("Reception");
    let delivery_ids = ids("Delivery");
    assert_eq!(reception_ids.len(), TOTAL, "queue ids must be unique");
    assert_eq!(
        reception_ids, delivery_ids,
        "every received message is delivered"
    );
    let delivered_rcpts: HashSet<&str> = of_type(&records, "Delivery", None)
        .into_iter()
        .map(|x| x["recipient"].as_str().expect("recipient"))
        .collect();
    assert_eq!(delivered_rcpts.len(), TOTAL);
    for r in of_type(&records, "Delivery", None) {
        assert_eq!(
            r["response"]["code"].as_u64().map(|c| c / 100),
            Some(2),
            "{r}"
        );
        assert_eq!(r["sender"], SENDER, "{r}");
        assert_eq!(r["domain"], "example.com", "{r}");
        assert_eq!(r["peer"], sink.addr().to_string(), "{r}");
    }
}
