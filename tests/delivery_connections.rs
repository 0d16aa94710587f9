//! Delivery connections end to end: how the outbound connections to a next hop are
//! opened, shared and used on the wire.
//!
//! - `max_connections` caps the concurrent connections to the next hop.
//! - connections are reused, each carrying several messages.
//! - `max_messages_per_connection` caps the messages one connection carries.
//! - PIPELINING used when offered (and not otherwise), dot-stuffed CRLF data on the wire.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::delivery::{send, LOG_WAIT};
use common::log::{has, of_type};
use common::relay::crlf_only;
use common::{config, relay, Daemon};
use impulse_sink::Sink;
use impulse_source::SourceConfig;

// ---------------------------------------------------------------------------------------
// helpers

/// How many messages each of the sink's connections carried.
fn messages_per_connection(sink: &Sink) -> HashMap<usize, usize> {
    let mut per_conn: HashMap<usize, usize> = HashMap::new();
    for m in sink.messages() {
        *per_conn.entry(m.connection).or_default() += 1;
    }
    per_conn
}

// ---------------------------------------------------------------------------------------
// connections

/// Send `n` generated messages over `sessions` client connections; all must be accepted.
fn load(d: &Daemon, n: usize, sessions: usize, domain: &str) -> Vec<String> {
    let report = impulse_source::run(SourceConfig {
        addr: d.smtp,
        messages: n,
        size: 512,
        sessions,
        per_session: n.div_ceil(sessions),
        recipient_domain: domain.to_string(),
        ..Default::default()
    });
    assert_eq!(report.sent_ok, n, "source: {report:?}");
    report.accepted_ids
}

/// Wait until the sink has `n` messages and the log `n` deliveries; check each Message-ID
/// arrived exactly once.
fn all_delivered(d: &Daemon, sink: &Sink, ids: &[String]) {
    let n = ids.len();
    assert!(
        sink.wait_for(n, Duration::from_secs(120)),
        "sink has {} of {n}",
        sink.count()
    );
    d.wait_for_log(Duration::from_secs(60), "all Delivery records", |r| {
        of_type(r, "Delivery", None).len() >= n
    });
    let got: Vec<String> = sink.message_ids().into_iter().flatten().collect();
    assert_eq!(got.len(), n, "exactly {n} messages at the sink");
    let got: HashSet<String> = got.into_iter().collect();
    let want: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(got, want, "each message exactly once");
}

#[test]
fn max_connections_is_respected() {
    let extra = r#"domains: { "*": (max_connections: 2) },"#;
    let (_tmp, sink, d) = relay(extra);

    let ids = load(&d, 200, 10, "example.com");
    all_delivered(&d, &sink, &ids);
    eprintln!(
        "connections_total {}, max concurrent {}",
        sink.connections_total(),
        sink.max_concurrent_connections()
    );
    assert!(
        sink.max_concurrent_connections() <= 2,
        "{} concurrent connections with max_connections 2",
        sink.max_concurrent_connections()
    );
}

#[test]
fn connections_are_reused() {
    let extra = r#"domains: { "*": (max_connections: 4) },"#;
    let (_tmp, sink, d) = relay(extra);

    let ids = load(&d, 100, 10, "example.com");
    all_delivered(&d, &sink, &ids);
    let total = sink.connections_total();
    eprintln!(
        "connections_total {total}, max concurrent {}",
        sink.max_concurrent_connections()
    );
    assert!(
        total <= 8,
        "{total} connections for 100 messages with max_connections 4: not reused"
    );
    // And the connections did carry several messages each.
    let per_conn = messages_per_connection(&sink);
    assert!(per_conn.values().any(|&k| k > 1), "{per_conn:?}");
}

#[test]
fn max_messages_per_connection_is_respected() {
    let extra = r#"domains: { "*": (max_messages_per_connection: 5) },"#;
    let (_tmp, sink, d) = relay(extra);

    let ids = load(&d, 50, 5, "example.com");
    all_delivered(&d, &sink, &ids);
    assert!(
        sink.connections_total() >= 10,
        "{} connections for 50 messages at 5 per connection",
        sink.connections_total()
    );
    let per_conn = messages_per_connection(&sink);
    assert!(
        per_conn.values().all(|&k| k <= 5),
        "a connection carried more than 5 messages: {per_conn:?}"
    );
}

// ---------------------------------------------------------------------------------------
// the wire: pipelining, dot-stuffing, CRLF

/// What a scripted next hop saw.
struct Seen {
    /// Lines received after EHLO and before the server answered anything.
    first_group: Vec<String>,
    /// Bytes that arrived after MAIL before MAIL was answered (non-pipelining server).
    early_bytes: usize,
    /// The raw DATA bytes up to and including the terminator.
    wire_data: Vec<u8>,
}

/// A one-connection SMTP server that offers PIPELINING or not and records the first
/// command group and the raw DATA.
fn scripted_hop(pipelining: bool) -> (SocketAddr, mpsc::Receiver<Seen>) {
    scripted_hop_offering(pipelining, "")
}

/// [`scripted_hop`], with `extra` EHLO keyword lines (each `250-KEYWORD\r\n`).
fn scripted_hop_offering(
    pipelining: bool,
    extra: &'static str,
) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        let read_line = |r: &mut BufReader<TcpStream>, line: &mut String| {
            line.clear();
            r.read_line(line).expect("read a command");
            line.clone()
        };
        w.write_all(b"220 hop.test ESMTP\r\n").unwrap();
        let ehlo = read_line(&mut r, &mut line);
        assert!(ehlo.to_ascii_uppercase().starts_with("EHLO"), "{ehlo}");
        w.write_all(b"250-hop.test\r\n").unwrap();
        w.write_all(extra.as_bytes()).unwrap();
        if pipelining {
            w.write_all(b"250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n")
                .unwrap();
        } else {
            w.write_all(b"250 ENHANCEDSTATUSCODES\r\n").unwrap();
        }
        let mut first_group = Vec::new();
        let mut early_bytes = 0;
        if pipelining {
            // A pipelining client sends MAIL, RCPT and DATA before any answer.
            for _ in 0..3 {
                first_group.push(read_line(&mut r, &mut line).trim_end().to_string());
            }
            w.write_all(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
                .unwrap();
        } else {
            first_group.push(read_line(&mut r, &mut line).trim_end().to_string());
            // A lockstep client waits for this answer: nothing else may arrive.
            early_bytes = r.buffer().len();
            r.get_ref()
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            if let Ok(buf) = r.fill_buf() {
                early_bytes += buf.len();
            }
            r.get_ref()
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            w.write_all(b"250 2.1.0 ok\r\n").unwrap();
            read_line(&mut r, &mut line);
            w.write_all(b"250 2.1.5 ok\r\n").unwrap();
            read_line(&mut r, &mut line);
            w.write_all(b"354 go ahead\r\n").unwrap();
        }
        let mut wire_data = Vec::new();
        loop {
            let mut l = Vec::new();
            if r.read_until(b'\n', &mut l).unwrap_or(0) == 0 {
                break;
            }
            wire_data.extend_from_slice(&l);
            if l == b".\r\n" {
                break;
            }
        }
        w.write_all(b"250 2.0.0 queued\r\n").unwrap();
        let _ = tx.send(Seen {
            first_group,
            early_bytes,
            wire_data,
        });
        // QUIT (whenever the client gets to it), then close.
        let mut rest = String::new();
        if r.read_line(&mut rest).is_ok() {
            let _ = w.write_all(b"221 2.0.0 bye\r\n");
        }
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
    });
    (addr, rx)
}

const DOTTY_BODY: &str = "first\r\n.\r\n.one dot\r\n..two dots\r\n\r\nlast\r\n";

fn check_wire(seen: &Seen) {
    let data = &seen.wire_data;
    assert!(data.ends_with(b"\r\n.\r\n"), "terminated by CRLF . CRLF");
    let body = String::from_utf8_lossy(data);
    for stuffed in ["\r\n..\r\n", "\r\n..one dot\r\n", "\r\n...two dots\r\n"] {
        assert!(
            body.contains(stuffed),
            "{stuffed:?} not dot-stuffed on the wire:\n{body}"
        );
    }
    // Only the terminator is a lone dot line.
    assert_eq!(body.matches("\r\n.\r\n").count(), 1, "{body}");
    assert!(crlf_only(data), "bare CR or LF on the wire:\n{body:?}");
}

#[test]
fn pipelines_when_offered_and_stuffs_dots() {
    let (hop, seen) = scripted_hop(true);
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(hop), ""));

    send(d.smtp, &["pipe@example.com"], DOTTY_BODY);
    let seen = seen
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "the next hop never got MAIL+RCPT+DATA in one group; stderr:\n{}",
                d.stderr()
            )
        });
    let upper: Vec<String> = seen
        .first_group
        .iter()
        .map(|l| l.to_ascii_uppercase())
        .collect();
    assert!(
        upper[0].starts_with("MAIL FROM:<SENDER@IMPULSE.TEST>"),
        "{upper:?}"
    );
    assert!(
        upper[1].starts_with("RCPT TO:<PIPE@EXAMPLE.COM>"),
        "{upper:?}"
    );
    assert_eq!(upper[2], "DATA", "{upper:?}");
    check_wire(&seen);
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "pipe@example.com")
    });
}

#[test]
fn does_not_pipeline_when_not_offered() {
    let (hop, seen) = scripted_hop(false);
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(hop), ""));

    send(d.smtp, &["lockstep@example.com"], DOTTY_BODY);
    let seen = seen
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the transaction did not complete; stderr:\n{}", d.stderr()));
    assert!(
        seen.first_group[0]
            .to_ascii_uppercase()
            .starts_with("MAIL FROM:"),
        "{:?}",
        seen.first_group
    );
    assert_eq!(
        seen.early_bytes, 0,
        "the client sent more before MAIL was answered, to a server without PIPELINING"
    );
    check_wire(&seen);
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "lockstep@example.com")
    });
}

#[test]
fn eight_bit_content_is_declared_when_the_hop_offers_8bitmime() {
    for (offer, declared) in [("250-8BITMIME\r\n", true), ("", false)] {
        let (hop, seen) = scripted_hop_offering(true, offer);
        let tmp = tempfile::tempdir().unwrap();
        let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(hop), ""));
        send(
            d.smtp,
            &["utf8@example.com"],
            "Gr\u{fc}\u{df}e aus K\u{f6}ln\r\n",
        );
        let seen = seen
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no transaction; stderr:\n{}", d.stderr()));
        let mail = seen.first_group[0].to_ascii_uppercase();
        assert_eq!(
            mail.contains("BODY=8BITMIME"),
            declared,
            "offer {offer:?}: {mail}"
        );
    }
}
