//! Size, time and connection limits of an SMTP session over a real socket: the real
//! `impulsed` on port 0, relaying to a recording sink on loopback.
//!
//! A message over SIZE (declared in MAIL FROM, or only found out while it arrives, up to
//! megabytes sent without reading) gets 552 5.3.4 and is not delivered, while one just
//! under the limit is; a client that disconnects or resets mid-DATA (at every prefix of
//! the terminator) gets nothing delivered; a client sending one byte at a time completes;
//! a client that stalls mid-DATA is timed out with 421 (`smtp.idle_timeout`); and fifty
//! garbage connections held open at once do not stop a normal client. After each case the
//! daemon still relays a normal message end to end.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::abuse::{
    assert_never_seen, assert_serves, expect, garbage, open_data, Client, Reply, READ_TIMEOUT, WAIT,
};
use common::{relay, wait_for_rcpt};

#[test]
fn a_message_over_size_gets_552_and_is_not_delivered() {
    let (_dir, sink, daemon) = relay("smtp: (max_message_size: 100000),");
    // Declared too big in MAIL FROM.
    let mut c = Client::connect(daemon.smtp);
    let ehlo = expect(c.cmd("EHLO client.test"), 250, "EHLO");
    assert!(ehlo.contains("SIZE 100000"), "SIZE not advertised: {ehlo}");
    let text = expect(
        c.cmd("MAIL FROM:<big@client.test> SIZE=200000"),
        552,
        "MAIL SIZE=200000",
    );
    assert!(text.starts_with("552 5.3.4"), "{text}");
    expect(
        c.cmd("MAIL FROM:<big@client.test> SIZE=1000"),
        250,
        "MAIL with an acceptable SIZE",
    );
    expect(c.cmd("RSET"), 250, "RSET");

    // Not declared, but too big when sent: 552 after the terminator, nothing delivered.
    c.send(b"MAIL FROM:<big@client.test>\r\n");
    expect(c.reply(), 250, "MAIL");
    expect(c.cmd("RCPT TO:<too-big@example.com>"), 250, "RCPT");
    expect(c.cmd("DATA"), 354, "DATA");
    let mut data = b"Subject: too big\r\n\r\n".to_vec();
    let line = [b'x'; 98];
    while data.len() < 150_000 {
        data.extend_from_slice(&line);
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    let text = expect(c.reply(), 552, "message over SIZE");
    assert!(text.starts_with("552 5.3.4"), "{text}");
    expect(c.cmd("NOOP"), 250, "NOOP after 552");
    let r = c.cmd("DATA");
    assert!(
        matches!(r.code(), 503 | 554),
        "the refused transaction is over: {r:?}"
    );
    // The limit is on the message: one just under it is fine.
    expect(c.cmd("MAIL FROM:<big@client.test>"), 250, "MAIL");
    expect(c.cmd("RCPT TO:<just-fits@example.com>"), 250, "RCPT");
    expect(c.cmd("DATA"), 354, "DATA");
    let mut fits = b"Subject: fits\r\n\r\n".to_vec();
    while fits.len() + 100 <= 90_000 {
        fits.extend_from_slice(&line);
        fits.extend_from_slice(b"\r\n");
    }
    c.send(&fits);
    c.send(b".\r\n");
    expect(c.reply(), 250, "message under SIZE");
    expect(c.cmd("QUIT"), 221, "QUIT");
    let m = wait_for_rcpt(&sink, &daemon, "just-fits@example.com");
    assert!(m.data.ends_with(&fits), "message under SIZE altered");

    // Far over SIZE, sent without reading: the daemon must drain it, not hang or buffer.
    let mut c = Client::connect(daemon.smtp);
    open_data(&mut c, "way-too-big@example.com");
    let chunk: Vec<u8> = line
        .iter()
        .copied()
        .chain(*b"\r\n")
        .cycle()
        .take(100 * 10_000)
        .collect();
    // Whole 100-byte lines, so the terminator below starts a line.
    if c.send_repeatedly(&chunk, 8) && c.send(b".\r\n") {
        match c.reply() {
            Reply::Reply(552, _) => expect(c.cmd("QUIT"), 221, "QUIT after 552"),
            Reply::Closed => String::new(),
            other => panic!("8 MB message over a 100 kB SIZE: {other:?}"),
        };
    }
    assert_serves(&daemon, &sink, "over-size");
    assert_never_seen(&daemon, &sink, "too-big@example.com");
    assert_never_seen(&daemon, &sink, "way-too-big@example.com");
}

/// Make the next close of `stream` send a RST instead of a FIN.
fn set_linger_zero(stream: &TcpStream) {
    use std::os::unix::io::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
}

#[test]
fn a_disconnect_mid_data_delivers_nothing() {
    let (_dir, sink, daemon) = relay("");
    // Where the client stops: mid-line, after a CRLF, after CRLF "." and after CRLF "." CR
    // (each a prefix of the terminator), and with a reset instead of a close.
    let cases: [(&str, &[u8], bool); 6] = [
        ("mid-line", b"Subject: cut\r\n\r\nhalf a li", false),
        ("after-crlf", b"Subject: cut\r\n\r\na whole line\r\n", false),
        ("after-dot", b"Subject: cut\r\n\r\nline\r\n.", false),
        ("after-dot-cr", b"Subject: cut\r\n\r\nline\r\n.\r", false),
        ("reset", b"Subject: cut\r\n\r\nline\r\n", true),
        (
            "reset-after-dot-cr",
            b"Subject: cut\r\n\r\nline\r\n.\r",
            true,
        ),
    ];
    for (name, partial, reset) in cases {
        let rcpt = format!("cut-{name}@example.com");
        let mut c = Client::connect(daemon.smtp);
        open_data(&mut c, &rcpt);
        c.send(partial);
        if reset {
            set_linger_zero(&c.stream);
        } else {
            c.stream.shutdown(Shutdown::Write).unwrap();
            // A half-closed client: the server must close too, without accepting the
            // message (no 250).
            let replies = c.drain_until_closed();
            assert!(
                replies.iter().all(|r| r.code() != 250),
                "{name}: a message cut short was acknowledged: {replies:?}"
            );
        }
        drop(c);
        assert_serves(&daemon, &sink, &format!("cut-{name}"));
        assert_never_seen(&daemon, &sink, &rcpt);
    }
    // The log has no Delivery (nor anything else) for the cut messages, and the sink
    // only the normal ones.
    assert_eq!(sink.count(), cases.len(), "sink: {:#?}", sink.messages());
}

#[test]
fn a_client_sending_one_byte_at_a_time_completes() {
    let (_dir, sink, daemon) = relay("");
    let mut c = Client::connect(daemon.smtp);
    let body = b"Subject: slow\r\n\r\none byte at a time\r\n.dot line\r\n";
    let stuffed = b"Subject: slow\r\n\r\none byte at a time\r\n..dot line\r\n.\r\n";
    let steps: [(&[u8], u16); 6] = [
        (b"EHLO slow.client.test\r\n", 250),
        (b"MAIL FROM:<slow@client.test>\r\n", 250),
        (b"RCPT TO:<slow@example.com>\r\n", 250),
        (b"DATA\r\n", 354),
        (stuffed, 250),
        (b"QUIT\r\n", 221),
    ];
    for (bytes, code) in steps {
        for b in bytes {
            assert!(
                c.send(std::slice::from_ref(b)),
                "server closed on a slow client"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        expect(c.reply(), code, &String::from_utf8_lossy(bytes));
    }
    assert_eq!(c.reply(), Reply::Closed, "still open after QUIT");
    let m = wait_for_rcpt(&sink, &daemon, "slow@example.com");
    assert!(
        m.data.ends_with(body),
        "slow message altered: {:?}",
        String::from_utf8_lossy(&m.data)
    );
    assert_serves(&daemon, &sink, "slow-client");
}

#[test]
fn fifty_garbage_connections_do_not_stop_a_normal_client() {
    let (_dir, sink, daemon) = relay("");
    const N: usize = 50;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    let mut threads = Vec::new();
    for i in 0..N {
        let addr = daemon.smtp;
        let ready_tx = ready_tx.clone();
        let release_rx = release_rx.clone();
        threads.push(std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("garbage client connects");
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
            let bytes = garbage(1000 + i as u64, 16 * 1024);
            let _ = s.write_all(&bytes);
            let _ = ready_tx.send(());
            // Hold the connection (reading whatever comes) until the normal client is
            // done, or at most WAIT.
            let deadline = Instant::now() + WAIT;
            let mut buf = [0u8; 4096];
            loop {
                let released = !matches!(
                    release_rx.lock().unwrap().try_recv(),
                    Err(mpsc::TryRecvError::Empty)
                );
                if released || Instant::now() > deadline {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(0) => std::thread::sleep(Duration::from_millis(50)),
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }));
    }
    drop(ready_tx);
    let deadline = Instant::now() + WAIT;
    for n in 0..N {
        let left = deadline.saturating_duration_since(Instant::now());
        ready_rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("only {n} of {N} garbage clients got going"));
    }
    // All fifty have sent their garbage and are (or were) connected.
    assert_serves(&daemon, &sink, "fifty-garbage");
    drop(release_tx);
    for t in threads {
        t.join().expect("garbage client thread");
    }
    assert_serves(&daemon, &sink, "fifty-garbage-after");
}

#[test]
fn a_client_that_stalls_mid_data_is_timed_out_and_nothing_is_delivered() {
    let (_dir, sink, daemon) = relay(r#"smtp: (idle_timeout: "2s"),"#);
    let mut c = Client::connect(daemon.smtp);
    open_data(&mut c, "stalled@example.com");
    c.send(b"Subject: stalled\r\n\r\nhalf a message\r\n.");
    // Then nothing: the daemon must give up on its own (421) and close.
    let replies = c.drain_until_closed();
    assert!(
        replies.iter().all(|r| r.code() != 250),
        "a stalled message was acknowledged: {replies:?}"
    );
    assert!(
        replies.iter().any(|r| r.code() == 421),
        "no 421 before the idle close: {replies:?}"
    );
    assert_serves(&daemon, &sink, "stalled");
    assert_never_seen(&daemon, &sink, "stalled@example.com");
}
