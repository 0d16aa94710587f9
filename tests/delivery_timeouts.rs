//! Per-phase client timeouts (RFC 5321 §4.5.3.2): a next hop that accepts the
//! connection but never greets is given up after `banner_timeout`; one that takes the
//! data but never answers the final dot, after `data_timeout`. Either way the message is
//! deferred (TransientFailure naming the phase), never lost.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::delivery::{send, LOG_WAIT};
use common::log::{has, of_type, text};
use common::{config, Daemon};

/// A next hop that keeps every connection and, with `greet`, answers everything up to
/// DATA and then goes silent.
fn hop(greet: bool) -> (std::net::SocketAddr, Arc<Mutex<Vec<std::net::TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let keep = Arc::new(Mutex::new(Vec::new()));
    let held = keep.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            held.lock().unwrap().push(s.try_clone().unwrap());
            if !greet {
                continue;
            }
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let _ = w.write_all(b"220 slow.test ESMTP\r\n");
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let verb = line.to_ascii_uppercase();
                    let reply: &[u8] = if verb.starts_with("EHLO") {
                        b"250 slow.test\r\n"
                    } else if verb.starts_with("DATA") {
                        b"354 go on\r\n"
                    } else if line == ".\r\n" {
                        b"" // the final dot is never answered
                    } else if verb.starts_with("MAIL") || verb.starts_with("RCPT") {
                        b"250 ok\r\n"
                    } else {
                        b""
                    };
                    let _ = w.write_all(reply);
                    line.clear();
                }
            });
        }
    });
    (addr, keep)
}

fn deferral(timeouts: &str, greet: bool) -> String {
    let (addr, _held) = hop(greet);
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!("domains: {{ \"*\": ({timeouts}, retry_interval: \"1h\") }},");
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(addr), &extra));
    send(d.smtp, &["user@example.com"], "waiting\r\n");
    let records = d.wait_for_log(LOG_WAIT, "a TransientFailure", |r| {
        has(r, "TransientFailure", "user@example.com")
    });
    assert!(!has(&records, "Delivery", "user@example.com"));
    text(of_type(&records, "TransientFailure", Some("user@example.com"))[0]).to_string()
}

#[test]
fn a_hop_that_never_greets_times_out_on_the_banner() {
    let why = deferral("banner_timeout: \"2s\"", false);
    assert!(why.contains("timed out after 2s (greeting)"), "{why}");
}

#[test]
fn a_hop_that_never_answers_the_final_dot_times_out_on_the_data() {
    let why = deferral("data_timeout: \"2s\"", true);
    assert!(why.contains("timed out after 2s (sending)"), "{why}");
}
