//! A client that pipelines a whole transaction plus QUIT and then shuts down its sending
//! side (`printf … | nc -N`) still gets every reply — including the 250 that is only
//! sent after the spool's fsync — and then an orderly end; the message is relayed once.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::relay::messages_to;
use common::{relay, wait_for_rcpt};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn half_closed_client_gets_every_reply() {
    let (_dir, sink, daemon) = relay("");
    let stream = TcpStream::connect(daemon.smtp).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220"), "greeting: {greeting:?}");

    let mut writer = stream;
    writer
        .write_all(
            b"EHLO x\r\n\
              MAIL FROM:<a@example.net>\r\n\
              RCPT TO:<b@example.com>\r\n\
              DATA\r\n\
              Subject: half close\r\n\
              \r\n\
              sent before the client shut its side\r\n\
              .\r\n\
              QUIT\r\n",
        )
        .unwrap();
    writer.shutdown(Shutdown::Write).unwrap();

    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .expect("the server ends the connection in order");
    let text = String::from_utf8_lossy(&rest);
    // The code of each final reply line (`NNN ` rather than `NNN-`).
    let codes: Vec<&str> = text
        .split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        codes,
        ["250", "250", "250", "354", "250", "221"],
        "replies:\n{text}"
    );

    let m = wait_for_rcpt(&sink, &daemon, "b@example.com");
    assert!(
        String::from_utf8_lossy(&m.data).contains("sent before the client shut its side"),
        "relayed: {}",
        String::from_utf8_lossy(&m.data)
    );
    assert_eq!(messages_to(&sink, "b@example.com").len(), 1, "relayed once");
}
