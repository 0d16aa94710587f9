//! Outbound connections: to a real std listener (with and without a source address,
//! writes queued before `Connected`), to a closed port (`ConnectFailed`, then
//! `Closed`), closed before they connect, and aborted while the connect hangs.

mod io_common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::os::fd::FromRawFd;
use std::time::Duration;

use bytes::Bytes;
use impulse_runtime::io::{self, CloseReason, ConnEvent, IoConfig};
use io_common::*;

/// Accept one connection: send a greeting, expect `ping`, answer `pong`, close.
/// Returns the client's address as seen by the server.
fn greeting_server(listener: TcpListener) -> std::net::SocketAddr {
    let (mut s, peer) = listener.accept().unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"220 hello\r\n").unwrap();
    let mut buf = [0; 6];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\r\n");
    s.write_all(b"pong\r\n").unwrap();
    peer
}

async fn converse(source: Option<IpAddr>) {
    let io = io::spawn(IoConfig::default()).unwrap();
    let listener = TcpListener::bind(local0()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || greeting_server(listener));

    let (probe, mut events) = probe();
    let (conn, credit) = io.connect(addr, source, probe.recipient());
    // Queued before the connection exists; sent once it does.
    io.write(conn, Bytes::from_static(b"ping\r\n"));
    let local = match events.conn().await {
        ConnEvent::Connected { conn: c, local } => {
            assert_eq!(c, conn);
            local
        }
        other => panic!("expected Connected, got {other:?}"),
    };
    assert_eq!(local.ip(), addr.ip());
    let (got, reason) = events.read_to_close(&io, conn, &credit).await;
    assert_eq!(got, b"220 hello\r\npong\r\n");
    assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");
    assert_eq!(credit.outstanding(), 0);

    let peer = blocking(move || server.join().unwrap()).await;
    assert_eq!(peer, local, "the server saw our local address");
    wait_until("connection gone", || io.stats().connections == 0).await;
    io.shutdown();
}

#[actix_rt::test]
async fn connect_converse_and_see_peer_close() {
    converse(None).await;
}

#[actix_rt::test]
async fn connect_from_a_source_address() {
    converse(Some(local0().ip())).await;
}

#[actix_rt::test]
async fn connect_to_a_closed_port_fails_then_closes() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let addr = {
        let l = TcpListener::bind(local0()).unwrap();
        l.local_addr().unwrap()
    }; // dropped: nothing listens there now
    let (probe, mut events) = probe();
    let (conn, _credit) = io.connect(addr, None, probe.clone().recipient());
    match events.conn().await {
        ConnEvent::ConnectFailed { conn: c, error } => {
            assert_eq!(c, conn);
            assert!(!error.is_empty());
        }
        other => panic!("expected ConnectFailed, got {other:?}"),
    }
    match events.conn().await {
        ConnEvent::Closed { conn: c, reason } => {
            assert_eq!(c, conn);
            assert!(matches!(reason, CloseReason::Error(_)), "{reason:?}");
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    events.quiet(std::time::Duration::from_millis(100)).await;
    assert_eq!(io.stats().connections, 0);
    io.shutdown();
}

#[actix_rt::test]
async fn connect_ids_are_unique_and_tagged_with_the_loop() {
    let io = io::spawn_indexed(IoConfig::default(), 3).unwrap();
    let listener = TcpListener::bind(local0()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (probe, mut events) = probe();
    let (a, _ca) = io.connect(addr, None, probe.clone().recipient());
    let (b, _cb) = io.connect(addr, None, probe.recipient());
    assert_ne!(a, b);
    assert_eq!(io::loop_index_of(a), 3);
    assert_eq!(io::loop_index_of(b), 3);
    assert_eq!(io.loop_index(), 3);
    for _ in 0..2 {
        assert!(matches!(events.conn().await, ConnEvent::Connected { .. }));
    }
    io.abort(a);
    io.abort(b);
    for _ in 0..2 {
        match events.conn().await {
            ConnEvent::Closed { reason, .. } => assert_eq!(reason, CloseReason::Local),
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    drop(listener);
    io.shutdown();
}

#[actix_rt::test]
async fn close_before_connected_still_delivers_queued_output() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let listener = TcpListener::bind(local0()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let (probe, mut events) = probe();
    let (conn, _credit) = io.connect(addr, None, probe.clone().recipient());
    io.write(conn, Bytes::from_static(b"QUIT\r\n"));
    io.close(conn);
    assert!(matches!(events.conn().await, ConnEvent::Connected { .. }));
    match events.conn().await {
        ConnEvent::Closed { reason, .. } => assert_eq!(reason, CloseReason::Local),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(blocking(move || server.join().unwrap()).await, b"QUIT\r\n");
    io.shutdown();
}

/// A listener with backlog 0 that never accepts: connects beyond the first hang
/// (their SYNs are dropped).
fn full_listener() -> TcpListener {
    let l = TcpListener::bind(local0()).unwrap();
    let fd = std::os::fd::IntoRawFd::into_raw_fd(l);
    // SAFETY: `fd` is a listening socket we own; `listen` only changes its backlog.
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0);
    // SAFETY: ownership of `fd` goes back to a TcpListener.
    unsafe { TcpListener::from_raw_fd(fd) }
}

#[actix_rt::test]
async fn abort_while_connecting_reports_connect_failed() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let listener = full_listener();
    let addr = listener.local_addr().unwrap();
    let (probe, mut events) = probe();
    let mut hanging = None;
    for _ in 0..8 {
        let (conn, _credit) = io.connect(addr, None, probe.clone().recipient());
        match tokio::time::timeout(Duration::from_millis(300), events.conn()).await {
            Ok(ConnEvent::Connected { conn: c, .. }) => assert_eq!(c, conn),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {
                hanging = Some(conn);
                break;
            }
        }
    }
    let conn = hanging.expect("some connect hangs on a full backlog");
    io.abort(conn);
    match events.conn().await {
        ConnEvent::ConnectFailed { conn: c, .. } => assert_eq!(c, conn),
        other => panic!("expected ConnectFailed, got {other:?}"),
    }
    match events.conn().await {
        ConnEvent::Closed { conn: c, reason } => {
            assert_eq!(c, conn);
            assert_eq!(reason, CloseReason::Local);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    io.shutdown();
    drop(listener);
}
