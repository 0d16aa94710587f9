//! Bindings end to end: the sink sees each message come from its binding's source
//! address with its EHLO name; `X-Impulse-Binding:` picks the binding and never leaves
//! Impulse; without it `delivery.default_binding` applies; an unknown binding is
//! refused at the end of DATA; each binding × domain is a queue of its own.

mod common;

use std::time::Duration;

use common::delivery::LOG_WAIT;
use common::relay::{lettre_connect, relay_with};
use impulse_sink::SinkConfig;

const BINDINGS: &str = r#"bindings: {
        "b1": (source: "127.0.0.2", ehlo_name: "b1.impulse.test"),
        "b2": (source: "127.0.0.3", ehlo_name: "b2.impulse.test"),
    },
    delivery: (default_binding: "b1"),"#;

/// Submit a message with `extra` header lines; the server's final reply.
fn submit(
    addr: std::net::SocketAddr,
    to: &str,
    extra: &str,
) -> lettre::transport::smtp::response::Response {
    use lettre::address::Envelope;
    let data = format!(
        "From: <alice@impulse.test>\r\nTo: <{to}>\r\n{extra}Subject: binding test\r\n\r\nbody\r\n"
    );
    let envelope = Envelope::new(
        Some("alice@impulse.test".parse().unwrap()),
        vec![to.parse().unwrap()],
    )
    .unwrap();
    let mut conn = lettre_connect(addr, "client.test", Duration::from_secs(30));
    let r = match conn.send(&envelope, data.as_bytes()) {
        Ok(r) => r,
        Err(e) => {
            let code = e.status().map(|c| c.to_string()).unwrap_or_default();
            panic!("send failed: {e} ({code})");
        }
    };
    let _ = conn.quit();
    r
}

#[test]
fn each_message_leaves_from_its_binding() {
    let (_tmp, sink, d) = relay_with(SinkConfig::default(), BINDINGS);
    submit(d.smtp, "one@example.com", "");
    submit(d.smtp, "two@example.com", "X-Impulse-Binding: b2\r\n");
    assert!(sink.wait_for(2, LOG_WAIT), "{}", d.stderr());
    let msgs = sink.messages();
    let by = |rcpt: &str| msgs.iter().find(|m| m.recipients == [rcpt]).unwrap();
    let one = by("one@example.com");
    let two = by("two@example.com");
    assert_eq!(
        one.peer.unwrap().ip().to_string(),
        "127.0.0.2",
        "default binding b1"
    );
    assert_eq!(one.helo, "b1.impulse.test");
    assert_eq!(
        two.peer.unwrap().ip().to_string(),
        "127.0.0.3",
        "the header's b2"
    );
    assert_eq!(two.helo, "b2.impulse.test");
    let text = String::from_utf8_lossy(&two.data);
    assert!(
        !text.to_ascii_lowercase().contains("x-impulse-binding"),
        "the header is removed before sending:\n{text}"
    );

    // One queue per binding × domain.
    let q = d.ctl_json(&["queues"]);
    let rows = q["domains"].as_array().unwrap();
    let bindings: Vec<&str> = rows
        .iter()
        .filter(|r| r["domain"] == "example.com")
        .filter_map(|r| r["binding"].as_str())
        .collect();
    assert!(
        bindings.contains(&"b1") && bindings.contains(&"b2"),
        "{q:#}"
    );
    // The log names the domain, not the queue.
    let records = d.log_records();
    assert!(
        records.iter().all(|r| r["domain"] == "example.com"),
        "{records:#?}"
    );
}

#[test]
fn an_unknown_binding_is_refused_at_the_end_of_data() {
    use lettre::address::Envelope;
    let (_tmp, sink, d) = relay_with(SinkConfig::default(), BINDINGS);
    let data =
        "From: <alice@impulse.test>\r\nX-Impulse-Binding: nope\r\nSubject: s\r\n\r\nbody\r\n";
    let envelope = Envelope::new(
        Some("alice@impulse.test".parse().unwrap()),
        vec!["three@example.com".parse().unwrap()],
    )
    .unwrap();
    let mut conn = lettre_connect(d.smtp, "client.test", Duration::from_secs(30));
    let err = conn
        .send(&envelope, data.as_bytes())
        .expect_err("an unknown binding is refused");
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("unknown binding"), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.count(), 0);
}
