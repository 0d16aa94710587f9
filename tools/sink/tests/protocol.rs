//! The sink driven over real loopback sockets by hand-written SMTP dialogues.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use impulse_sink::{Rule, Sink, SinkConfig, Stage};

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(sink: &Sink) -> Client {
        let w = TcpStream::connect(sink.addr()).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Client {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        };
        assert!(c.reply().starts_with("220 "));
        c
    }

    fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).unwrap();
    }

    /// One whole (possibly multi-line) reply, lines joined with '\n', CRLFs removed.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(
                self.r.read_line(&mut line).unwrap() > 0,
                "connection closed"
            );
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            all.push_str(line.trim_end());
            if line.as_bytes().get(3) == Some(&b'-') {
                all.push('\n');
            } else {
                return all;
            }
        }
    }

    fn cmd(&mut self, s: &str) -> String {
        self.send(&format!("{s}\r\n"));
        self.reply()
    }
}

fn sink(cfg: SinkConfig) -> Sink {
    Sink::start(cfg).unwrap()
}

#[test]
fn ehlo_advertises_extensions_and_pipelining_switch() {
    let s = sink(SinkConfig::default());
    let mut c = Client::connect(&s);
    let ehlo = c.cmd("EHLO client.test");
    for ext in ["PIPELINING", "8BITMIME", "SIZE ", "ENHANCEDSTATUSCODES"] {
        assert!(ehlo.contains(ext), "{ext} missing in {ehlo}");
    }
    assert!(ehlo.starts_with("250-") && ehlo.lines().last().unwrap().starts_with("250 "));
    assert!(c.cmd("HELO client.test").starts_with("250 "));
    assert!(c.cmd("NOOP").starts_with("250 "));
    assert!(c.cmd("QUIT").starts_with("221 "));

    let s = sink(SinkConfig {
        pipelining: false,
        ..SinkConfig::default()
    });
    let mut c = Client::connect(&s);
    let ehlo = c.cmd("EHLO client.test");
    assert!(!ehlo.contains("PIPELINING") && ehlo.contains("8BITMIME"));
}

#[test]
fn pipelined_batch_is_answered_in_order_and_body_unstuffed() {
    let s = sink(SinkConfig::default());
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    c.send("MAIL FROM:<a@src.test> SIZE=100\r\nRCPT TO:<x@dst.test>\r\nRCPT TO:<y@dst.test>\r\nNOOP\r\nDATA\r\n");
    let replies: Vec<String> = (0..5).map(|_| c.reply()).collect();
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(codes, ["250", "250", "250", "250", "354"]);
    // Stuffed body, then a pipelined second transaction in the same write.
    c.send(concat!(
        "Message-ID: <m1@test>\r\n\r\n..leading dot\r\n..\r\nmid\n.\nline\r\n.\r\n",
        "MAIL FROM:<>\r\nRCPT TO:<z@dst.test>\r\nDATA\r\n"
    ));
    assert!(c.reply().starts_with("250 2.0.0"));
    assert!(c.reply().starts_with("250 "));
    assert!(c.reply().starts_with("250 "));
    assert!(c.reply().starts_with("354 "));
    c.send("no header\r\n.\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250 "));
    assert!(c.reply().starts_with("221 "));

    assert!(s.wait_for(2, Duration::from_secs(5)));
    let m = s.messages();
    assert_eq!(m[0].sender, "a@src.test");
    assert_eq!(m[0].recipients, ["x@dst.test", "y@dst.test"]);
    assert_eq!(
        m[0].data,
        b"Message-ID: <m1@test>\r\n\r\n.leading dot\r\n.\r\nmid\n.\nline\r\n"
    );
    assert_eq!(m[0].message_id.as_deref(), Some("<m1@test>"));
    assert_eq!(m[0].size, m[0].data.len());
    assert_eq!(m[1].sender, "");
    assert_eq!(m[1].message_id, None);
    assert_eq!(m[0].connection, m[1].connection);
}

#[test]
fn out_of_order_commands_are_refused() {
    let s = sink(SinkConfig::default());
    let mut c = Client::connect(&s);
    assert!(c.cmd("MAIL FROM:<a@b>").starts_with("503 "));
    c.cmd("EHLO client.test");
    assert!(c.cmd("RCPT TO:<a@b>").starts_with("503 "));
    assert!(c.cmd("DATA").starts_with("503 "));
    assert!(c.cmd("MAIL FROM:<a@b>").starts_with("250 "));
    assert!(c.cmd("MAIL FROM:<a@b>").starts_with("503 "));
    assert!(c.cmd("DATA").starts_with("554 "));
    assert!(c.cmd("RSET").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<a@b>").starts_with("503 "));
    assert!(c
        .cmd("MAIL FROM:<a@b> SIZE=999999999999")
        .starts_with("552 "));
    assert!(c.cmd("MAIL FROM a@b").starts_with("501 "));
    assert!(c.cmd("XYZZY").starts_with("500 "));
    assert!(c.cmd("").starts_with("500 "));
    assert_eq!(s.count(), 0);
}

#[test]
fn rules_script_rcpt_and_data_replies() {
    let s = sink(SinkConfig {
        rules: vec![
            Rule::always("nouser", Stage::Rcpt, "550 5.1.1 no such user"),
            Rule::first(2, "later", Stage::Data, "451 4.3.0 try later"),
        ],
        ..SinkConfig::default()
    });
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<a@b>");
    assert_eq!(c.cmd("RCPT TO:<nouser@d>"), "550 5.1.1 no such user");
    assert!(c.cmd("DATA").starts_with("554 "));
    c.cmd("RSET");
    for attempt in 0..3 {
        c.cmd("MAIL FROM:<a@b>");
        assert!(c.cmd("RCPT TO:<ok@d>").starts_with("250 "));
        assert!(c.cmd("RCPT TO:<NOUSER@d>").starts_with("550 "));
        assert!(c.cmd("RCPT TO:<later@d>").starts_with("250 "));
        assert!(c.cmd("DATA").starts_with("354 "));
        let end = c.cmd("Subject: x\r\n\r\nhi\r\n.");
        if attempt < 2 {
            assert_eq!(end, "451 4.3.0 try later");
        } else {
            assert!(end.starts_with("250 "), "{end}");
        }
    }
    assert_eq!(s.count(), 1);
    assert_eq!(s.messages()[0].recipients, ["ok@d", "later@d"]);
}

#[test]
fn without_bodies_only_envelope_size_and_id_are_kept() {
    let s = sink(SinkConfig {
        record_bodies: false,
        ..SinkConfig::default()
    });
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<a@b>");
    c.cmd("RCPT TO:<c@d>");
    c.cmd("DATA");
    assert!(c
        .cmd("Message-Id: <nb@x>\r\n\r\nbody\r\n.")
        .starts_with("250 "));
    let m = &s.messages()[0];
    assert!(m.data.is_empty());
    assert_eq!(m.size, "Message-Id: <nb@x>\r\n\r\nbody\r\n".len());
    assert_eq!(m.message_id.as_deref(), Some("<nb@x>"));
    assert_eq!(s.message_ids(), vec![Some("<nb@x>".to_string())]);
    assert!(s.last_message_at().is_some());
}

#[test]
fn counts_connections_and_stops_with_clients_attached() {
    let s = sink(SinkConfig::default());
    let clients: Vec<Client> = (0..3).map(|_| Client::connect(&s)).collect();
    assert_eq!(s.connections_total(), 3);
    assert_eq!(s.max_concurrent_connections(), 3);
    assert_eq!(s.connections_open(), 3);
    assert!(!s.wait_for(1, Duration::from_millis(50)));
    let t = Instant::now();
    s.stop();
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(clients);
}

#[test]
fn observer_sees_data_even_when_bodies_are_not_kept() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = {
        let seen = Arc::clone(&seen);
        Sink::start_with_observer(
            SinkConfig {
                record_bodies: false,
                ..SinkConfig::default()
            },
            Arc::new(move |m: &impulse_sink::ReceivedMessage| {
                seen.lock().unwrap().push(m.data.clone())
            }),
        )
        .unwrap()
    };
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    for body in ["one", "two"] {
        c.cmd("MAIL FROM:<a@b>");
        c.cmd("RCPT TO:<c@d>");
        c.cmd("DATA");
        assert!(c.cmd(&format!("{body}\r\n.")).starts_with("250 "));
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [b"one\r\n".to_vec(), b"two\r\n".to_vec()]
    );
    assert!(s
        .messages()
        .iter()
        .all(|m| m.data.is_empty() && m.size == 5));
}

#[test]
fn a_partial_next_line_does_not_hold_back_a_reply() {
    let s = sink(SinkConfig::default());
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    c.send("NOOP\r\nNO");
    assert!(c.reply().starts_with("250 "));
    c.send("OP\r\n");
    assert!(c.reply().starts_with("250 "));
}

#[test]
fn chunking_takes_bdat_chunks_in_a_pipelined_group() {
    let s = sink(SinkConfig::default());
    let mut c = Client::connect(&s);
    assert!(!c.cmd("EHLO client.test").contains("CHUNKING"));
    assert!(c.cmd("BDAT 0 LAST").starts_with("500 "), "off by default");

    let s = sink(SinkConfig {
        chunking: true,
        ..SinkConfig::default()
    });
    let mut c = Client::connect(&s);
    assert!(c.cmd("EHLO client.test").contains("CHUNKING"));
    // Out of order: the chunk is read and dropped, the session goes on.
    c.send("BDAT 6\r\nQUIT\r\n");
    assert!(c.reply().starts_with("503 "));
    c.send("MAIL FROM:<a@src.test>\r\nRCPT TO:<x@dst.test>\r\nBDAT 9\r\n.\r\nline\r\nBDAT 6 LAST\r\nend\r\n\n");
    let codes: Vec<String> = (0..4).map(|_| c.reply()[..3].to_string()).collect();
    assert_eq!(codes, ["250", "250", "250", "250"]);
    assert!(
        c.cmd("NOOP").starts_with("250 "),
        "exactly the chunk was read"
    );
    // DATA after a chunk is out of order; a bad size is a syntax error.
    c.send("MAIL FROM:<>\r\nRCPT TO:<y@dst.test>\r\nBDAT 2\r\nhiDATA\r\nBDAT x\r\nRSET\r\n");
    let codes: Vec<String> = (0..6).map(|_| c.reply()[..3].to_string()).collect();
    assert_eq!(codes, ["250", "250", "250", "503", "501", "250"]);
    assert!(s.wait_for(1, Duration::from_secs(5)));
    let m = s.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].data, b".\r\nline\r\nend\r\n\n");
    assert!(m[0].chunked);
}
