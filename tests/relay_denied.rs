//! Relay policy over a real socket: the real `impulsed` on port 0, relaying to a
//! recording sink on loopback.
//!
//! With `relay.allow` not covering the client (127.0.0.1), every RCPT gets 550 5.7.1 —
//! pipelined too — DATA has nothing to send to, what follows it is read (and refused) as
//! commands, nothing is received, spooled or relayed, and the next client is still
//! served. With 127.0.0.2 allowed as well, 127.0.0.1 is still refused while a client bound
//! to 127.0.0.2 relays end to end (skipped where 127.0.0.2 cannot be bound).

mod common;

use std::net::{SocketAddr, TcpStream};

use common::abuse::{expect, Client, Reply, WAIT};
use common::{relay, wait_for_rcpt, Daemon};

/// A client from 127.0.0.1 (outside `relay.allow`) whose first recipient has just been
/// refused with 550 5.7.1, in an open transaction.
fn denied_client(daemon: &Daemon) -> Client {
    let mut c = Client::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    expect(c.cmd("MAIL FROM:<outsider@client.test>"), 250, "MAIL");
    let text = expect(
        c.cmd("RCPT TO:<denied@example.com>"),
        550,
        "RCPT from 127.0.0.1",
    );
    assert!(text.starts_with("550 5.7.1"), "{text}");
    c
}

#[test]
fn clients_outside_relay_allow_get_550_5_7_1() {
    // Exactly the brief's config: loopback is not allowed to relay. (10.x only appears in
    // the config; no traffic goes there.)
    let (_dir, sink, daemon) = relay(r#"relay: (allow: ["10.0.0.0/8"]),"#);
    let mut c = denied_client(&daemon);
    // Pipelined, every recipient is refused, and DATA has nothing to send to.
    c.send(
        b"RCPT TO:<denied-2@example.com>\r\nRCPT TO:<postmaster@example.org>\r\nDATA\r\n\
          Subject: should not be accepted\r\n.\r\nNOOP\r\n",
    );
    let r1 = c.reply();
    let r2 = c.reply();
    assert!(
        matches!(&r1, Reply::Reply(550, t) if t.starts_with("550 5.7.1")),
        "{r1:?}"
    );
    assert!(
        matches!(&r2, Reply::Reply(550, t) if t.starts_with("550 5.7.1")),
        "{r2:?}"
    );
    let r = c.reply();
    assert!(
        matches!(r.code(), 503 | 554),
        "DATA without recipients: {r:?}"
    );
    // What followed DATA is read as commands (refused), then NOOP.
    let r = c.reply();
    assert!(
        (500..600).contains(&r.code()),
        "message text taken as a command: {r:?}"
    );
    let r = c.reply();
    assert!(
        (500..600).contains(&r.code()),
        "lone dot taken as a command: {r:?}"
    );
    expect(c.reply(), 250, "NOOP");
    expect(c.cmd("QUIT"), 221, "QUIT");
    // Nothing was queued (an empty spool: nothing is left to reach the sink); the daemon
    // still answers.
    daemon.wait_spool_empty(WAIT);
    assert_eq!(
        sink.count(),
        0,
        "denied mail was relayed: {:#?}",
        sink.messages()
    );
    assert!(
        daemon
            .log_records()
            .iter()
            .all(|r| r["type"] != "Reception"),
        "denied mail was received: {:#?}",
        daemon.log_records()
    );
    let mut c = Client::connect(daemon.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO after denial");
    expect(c.cmd("QUIT"), 221, "QUIT");
    drop(daemon);

    // Same denial with a second loopback address allowed: 127.0.0.1 is refused while a
    // client bound to 127.0.0.2 relays end to end.
    let (_dir, sink, daemon) = relay(r#"relay: (allow: ["10.0.0.0/8", "127.0.0.2/32"]),"#);
    let mut c = denied_client(&daemon);
    expect(c.cmd("QUIT"), 221, "QUIT");
    let Some(stream) = connect_from("127.0.0.2", daemon.smtp) else {
        eprintln!("cannot bind 127.0.0.2 here; skipping the allowed-client half");
        return;
    };
    let mut c = Client::wrap(stream);
    expect(
        c.cmd("EHLO allowed.client.test"),
        250,
        "EHLO from 127.0.0.2",
    );
    expect(c.cmd("MAIL FROM:<insider@client.test>"), 250, "MAIL");
    expect(
        c.cmd("RCPT TO:<allowed@example.com>"),
        250,
        "RCPT from 127.0.0.2",
    );
    expect(c.cmd("DATA"), 354, "DATA");
    c.send(b"Subject: allowed\r\n\r\nfrom 127.0.0.2\r\n.\r\n");
    expect(c.reply(), 250, "end of DATA");
    expect(c.cmd("QUIT"), 221, "QUIT");
    let m = wait_for_rcpt(&sink, &daemon, "allowed@example.com");
    assert!(
        String::from_utf8_lossy(&m.data).contains("127.0.0.2"),
        "Received header peer"
    );
    daemon.wait_spool_empty(WAIT);
    assert_eq!(sink.count(), 1, "sink: {:#?}", sink.messages());
}

/// A TCP connection to `to` from the loopback address `from` (None if it cannot bind).
fn connect_from(from: &str, to: SocketAddr) -> Option<TcpStream> {
    use std::os::unix::io::FromRawFd;
    let SocketAddr::V4(to) = to else { return None };
    let from: std::net::Ipv4Addr = from.parse().unwrap();
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let local = sockaddr(from, 0);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
            libc::close(fd);
            return None;
        }
        let remote = sockaddr(*to.ip(), to.port());
        if libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0 {
            libc::close(fd);
            return None;
        }
        Some(TcpStream::from_raw_fd(fd))
    }
}
