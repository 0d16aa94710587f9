//! impulse-source against impulse-sink over loopback: every accepted message arrives once,
//! intact and unstuffed; scripted refusals are counted; reconnects happen as configured.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use impulse_sink::{ReceivedMessage, Rule, Sink, SinkConfig, Stage};
use impulse_source::{make_message, run, Connection, Outcome, SourceConfig, SourceReport};

fn sink(pipelining: bool) -> Sink {
    Sink::start(SinkConfig {
        pipelining,
        ..SinkConfig::default()
    })
    .unwrap()
}

fn cfg(sink: &Sink, messages: usize, sessions: usize) -> SourceConfig {
    SourceConfig {
        addr: sink.addr(),
        messages,
        size: 700,
        sessions,
        per_session: 100,
        ..SourceConfig::default()
    }
}

/// Without its Date header (the only part that depends on the clock).
fn undated(m: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(m.to_vec()).unwrap();
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        if !line.starts_with("Date: ") {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// Every accepted id arrived exactly once, with the generated body, from the right
/// envelope.
fn check_delivery(sink: &Sink, c: &SourceConfig, report: &SourceReport) {
    assert!(sink.wait_for(report.sent_ok, Duration::from_secs(10)));
    let got = sink.messages();
    assert_eq!(got.len(), report.sent_ok);
    let mut by_id: HashMap<&str, &ReceivedMessage> = HashMap::new();
    for m in &got {
        let id = m.message_id.as_deref().expect("Message-ID header");
        assert!(by_id.insert(id, m).is_none(), "{id} delivered twice");
    }
    for id in &report.accepted_ids {
        let m = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} never arrived"));
        let n: usize = id
            .trim_end_matches("@impulse.test>")
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let k = c.recipients_per_message;
        let rcpts: Vec<String> = (0..k)
            .map(|i| format!("user{}@{}", n * k + i, c.recipient_domain))
            .collect();
        assert_eq!(m.recipients, rcpts);
        assert_eq!(m.sender, c.sender);
        let expect = make_message(n, report.run, c.size, &c.sender, &rcpts.join(">, <"));
        assert_eq!(undated(&m.data), undated(&expect), "{id} body differs");
    }
}

#[test]
fn two_thousand_pipelined_messages_arrive_exactly_once() {
    let s = sink(true);
    let c = cfg(&s, 2000, 4);
    let r = run(c.clone());
    assert_eq!(
        (r.sent_ok, r.rejected, r.errors),
        (2000, 0, 0),
        "{:?}",
        r.first_error
    );
    assert_eq!(r.accepted_ids.len(), 2000);
    check_delivery(&s, &c, &r);
    // 100 messages per connection; each session's last connection may carry fewer.
    assert!(
        (20..=24).contains(&s.connections_total()),
        "{}",
        s.connections_total()
    );
    assert!(s.max_concurrent_connections() <= 4);
}

#[test]
fn two_thousand_lockstep_messages_arrive_exactly_once() {
    // The server does not offer PIPELINING: the source falls back to lockstep.
    let s = sink(false);
    let c = cfg(&s, 2000, 4);
    let r = run(c.clone());
    assert_eq!(
        (r.sent_ok, r.rejected, r.errors),
        (2000, 0, 0),
        "{:?}",
        r.first_error
    );
    check_delivery(&s, &c, &r);

    // The source declines to pipeline although the server offers it.
    let s = sink(true);
    let c = SourceConfig {
        pipelining: false,
        recipients_per_message: 3,
        per_session: 0,
        ..cfg(&s, 300, 2)
    };
    let r = run(c.clone());
    assert_eq!(r.sent_ok, 300, "{:?}", r.first_error);
    check_delivery(&s, &c, &r);
    assert_eq!(s.connections_total(), 2);
}

#[test]
fn dot_lines_arrive_unstuffed_and_identical() {
    let s = sink(true);
    let mut conn = Connection::open(s.addr(), true, None).unwrap();
    assert!(conn.pipelining());
    let rcpt = vec!["dots@example.com".to_string()];
    let generated = make_message(1, 1, 4000, "a@impulse.test", &rcpt[0]);
    assert!(generated.windows(3).any(|w| w == b"\n.."));
    let tricky = b"Message-ID: <t@x>\r\n\r\n.\r\n..\r\n.\r\n.x\r\n\r\n.. .\r\nend.\r\n".to_vec();
    for msg in [&generated, &tricky] {
        assert_eq!(
            conn.send("a@impulse.test", &rcpt, msg).unwrap(),
            Outcome::Accepted
        );
    }
    conn.quit();
    assert!(s.wait_for(2, Duration::from_secs(5)));
    let got = s.messages();
    assert_eq!(got[0].data, generated);
    assert_eq!(got[1].data, tricky);
}

#[test]
fn sink_rules_are_reported_as_rejections() {
    let s = Sink::start(SinkConfig {
        rules: vec![
            Rule::always("user7@", Stage::Rcpt, "550 5.1.1 no such user"),
            Rule::first(5, "user1", Stage::Data, "451 4.3.0 try later"),
        ],
        ..SinkConfig::default()
    })
    .unwrap();
    let c = cfg(&s, 100, 1);
    let r = run(c.clone());
    // user7 refused at RCPT; user1, user10..user13 refused at the end of DATA.
    assert_eq!((r.sent_ok, r.rejected, r.errors), (94, 6, 0));
    assert_eq!(r.first_rejection.as_deref(), Some("451 4.3.0 try later"));
    check_delivery(&s, &c, &r);
    let ids: Vec<&str> = r.accepted_ids.iter().map(String::as_str).collect();
    assert!(!ids
        .iter()
        .any(|id| id.ends_with("-7@impulse.test>") || id.ends_with("-13@impulse.test>")));
    assert!(ids.iter().any(|id| id.ends_with("-14@impulse.test>")));

    // The same refusals, lockstep and concurrent.
    let s = Sink::start(SinkConfig {
        pipelining: false,
        rules: vec![Rule::always("user2", Stage::Rcpt, "550 5.1.1 no such user")],
        ..SinkConfig::default()
    })
    .unwrap();
    let r = run(cfg(&s, 30, 3));
    // user2, user20..user29.
    assert_eq!((r.sent_ok, r.rejected, r.errors), (19, 11, 0));
    assert_eq!(r.first_rejection.as_deref(), Some("550 5.1.1 no such user"));
}

#[test]
fn unreachable_server_counts_errors() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = run(SourceConfig {
        addr: ([127, 0, 0, 1], port).into(),
        messages: 5,
        sessions: 2,
        ..SourceConfig::default()
    });
    assert_eq!((r.sent_ok, r.rejected, r.errors), (0, 0, 5));
    assert!(r.first_error.unwrap().starts_with("connect"));
}

#[test]
fn starttls_sessions_are_encrypted_and_checked() {
    let made =
        rcgen::generate_simple_self_signed(vec![impulse_source::client::TLS_NAME.into()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key.into())
    .unwrap();
    let s = Sink::start(SinkConfig {
        tls: Some(std::sync::Arc::new(server)),
        ..SinkConfig::default()
    })
    .unwrap();
    let client = impulse_source::client_config(made.cert.pem().as_bytes()).unwrap();
    let r = run(SourceConfig {
        starttls: Some(client),
        ..cfg(&s, 40, 2)
    });
    assert_eq!((r.sent_ok, r.errors), (40, 0), "{:?}", r.first_error);
    assert!(s.wait_for(40, Duration::from_secs(20)));
    assert!(
        s.messages().iter().all(|m| m.tls.is_some()),
        "every message came over TLS"
    );

    // A certificate the source does not trust: no session, no message.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let untrusted = impulse_source::client_config(other.cert.pem().as_bytes()).unwrap();
    let r = run(SourceConfig {
        starttls: Some(untrusted),
        ..cfg(&s, 2, 1)
    });
    assert_eq!(r.sent_ok, 0);
    assert!(r.errors > 0);
    assert_eq!(s.messages().len(), 40);
}
