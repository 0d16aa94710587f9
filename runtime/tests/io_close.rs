//! Ending things: a graceful close flushes pending output first; a peer that shuts only
//! its sending side still gets the answer written after `ReadClosed`; abort drops at once;
//! commands for unknown connections are ignored; an owner that goes away gets its
//! connection aborted; an overfull write buffer closes with an error; closing a
//! listener stops accepting; shutdown closes everything and answers later commands.

mod io_common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use impulse_runtime::io::{self, CloseReason, ConnEvent, IoConfig, IoHandle, PeerAddr};
use io_common::*;

/// A listener owned by a fresh probe, and a client connected to it, attached to the
/// same probe. Returns the client and the attached connection's id and credit.
async fn attached_pair(
    io: &IoHandle,
) -> (
    TcpStream,
    io::ConnId,
    io::Credit,
    actix::Addr<Probe>,
    Events,
) {
    let (probe, mut events) = probe();
    let (listener, addr) = io.listen_tcp(local0(), probe.clone().recipient()).unwrap();
    let client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    let acc = events.accepted().await;
    assert_eq!(acc.listener, listener);
    assert_eq!(acc.peer, PeerAddr::Tcp(client.local_addr().unwrap()));
    assert_eq!(acc.local, PeerAddr::Tcp(addr));
    let credit = io.attach(acc.conn, probe.clone().recipient());
    (client, acc.conn, credit, probe, events)
}

#[actix_rt::test]
async fn graceful_close_flushes_pending_output() {
    const TOTAL: usize = 8 << 20;
    let io = io::spawn(IoConfig::default()).unwrap();
    let (mut client, conn, credit, _probe, mut events) = attached_pair(&io).await;
    let mut off = 0;
    while off < TOTAL {
        let n = (64 * 1024).min(TOTAL - off);
        io.write(conn, Bytes::from(pattern(off as u64, n)));
        off += n;
    }
    io.close(conn);
    // The client has read nothing yet: most of it is still queued in the loop.
    wait_until("a write backlog", || credit.write_backlog() > 0).await;
    let got = blocking(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        got
    })
    .await;
    assert_eq!(got.len(), TOTAL);
    assert_pattern(0, &got);
    match events.conn().await {
        ConnEvent::Closed { conn: c, reason } => {
            assert_eq!(c, conn);
            assert_eq!(reason, CloseReason::Local);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(credit.write_backlog(), 0);
    // Later commands for it are ignored.
    io.write(conn, Bytes::from_static(b"late"));
    io.close(conn);
    io.abort(conn);
    events.quiet(Duration::from_millis(100)).await;
    assert_eq!(io.stats().bytes_out, TOTAL as u64);
    io.shutdown();
}

#[actix_rt::test]
async fn half_closed_peer_still_gets_the_answer() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (mut client, conn, credit, _probe, mut events) = attached_pair(&io).await;
    let mut writer = client.try_clone().unwrap();
    blocking(move || {
        writer.write_all(b"QUIT\r\n").unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    })
    .await;
    let mut got = Vec::new();
    loop {
        match events.conn().await {
            ConnEvent::Data { conn: c, bytes } => {
                assert_eq!(c, conn);
                got.extend_from_slice(&bytes);
                credit.consumed(bytes.len());
            }
            ConnEvent::ReadClosed { conn: c } => {
                assert_eq!(c, conn);
                break;
            }
            other => panic!("expected Data or ReadClosed, got {other:?}"),
        }
    }
    assert_eq!(got, b"QUIT\r\n");
    // The loop keeps the connection open until its owner closes it.
    events.quiet(Duration::from_millis(100)).await;
    assert_eq!(io.stats().connections, 1);
    io.write(conn, Bytes::from_static(b"221 bye\r\n"));
    io.close(conn);
    let reply = blocking(move || {
        let mut got = Vec::new();
        client.read_to_end(&mut got).map(|_| got)
    })
    .await
    .expect("an orderly end");
    assert_eq!(reply, b"221 bye\r\n");
    match events.conn().await {
        ConnEvent::Closed { conn: c, reason } => {
            assert_eq!(c, conn);
            assert_eq!(reason, CloseReason::PeerClosed);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(io.stats().connections, 0);
    io.shutdown();
}

#[actix_rt::test]
async fn abort_drops_at_once() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (mut client, conn, _credit, _probe, mut events) = attached_pair(&io).await;
    io.abort(conn);
    match events.conn().await {
        ConnEvent::Closed { reason, .. } => assert_eq!(reason, CloseReason::Local),
        other => panic!("expected Closed, got {other:?}"),
    }
    let n = blocking(move || client.read(&mut [0; 16]).unwrap_or(0)).await;
    assert_eq!(n, 0);
    assert_eq!(io.stats().connections, 0);
    io.shutdown();
}

#[actix_rt::test]
async fn unknown_connections_are_ignored_or_answered() {
    let io = io::spawn(IoConfig::default()).unwrap();
    io.write(987_654, Bytes::from_static(b"x"));
    io.close(987_654);
    io.abort(987_654);
    let (probe, mut events) = probe();
    let _credit = io.attach(987_654, probe.recipient());
    match events.conn().await {
        ConnEvent::Closed { conn, reason } => {
            assert_eq!(conn, 987_654);
            assert!(matches!(reason, CloseReason::Error(_)), "{reason:?}");
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(io.is_running());
    io.shutdown();
}

#[actix_rt::test]
async fn a_gone_owner_gets_its_connection_aborted() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (mut client, _conn, _credit, probe, _events) = attached_pair(&io).await;
    probe.send(Stop).await.unwrap();
    wait_until("the probe to stop", || !probe.connected()).await;
    let n = blocking(move || {
        client.write_all(b"anyone there?\r\n").unwrap();
        client.read(&mut [0; 16]).unwrap_or(0)
    })
    .await;
    assert_eq!(n, 0, "the loop dropped the connection");
    wait_until("connection gone", || io.stats().connections == 0).await;
    io.shutdown();
}

#[actix_rt::test]
async fn overfull_write_buffer_closes_with_error() {
    let config = IoConfig {
        max_write_buffer: 1 << 20,
        ..IoConfig::default()
    };
    let io = io::spawn(config).unwrap();
    let (_client, conn, _credit, _probe, mut events) = attached_pair(&io).await;
    // The client never reads: the kernel buffers fill, then the loop's queue.
    for _ in 0..64 {
        io.write(conn, Bytes::from(vec![b'x'; 1 << 20]));
    }
    match events.conn().await {
        ConnEvent::Closed { conn: c, reason } => {
            assert_eq!(c, conn);
            assert!(matches!(reason, CloseReason::Error(_)), "{reason:?}");
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    io.shutdown();
}

#[actix_rt::test]
async fn close_listener_stops_accepting() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (probe, mut events) = probe();
    let (listener, addr) = io.listen_tcp(local0(), probe.recipient()).unwrap();
    let c1 = TcpStream::connect(addr).unwrap();
    let acc = events.accepted().await;
    assert_eq!(acc.listener, listener);
    assert_eq!(io.stats().listeners, 1);
    io.close_listener(listener);
    wait_until("listener closed", || io.stats().listeners == 0).await;
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
    // The accepted connection lives on until dealt with.
    assert_eq!(io.stats().connections, 1);
    io.abort(acc.conn);
    wait_until("connection gone", || io.stats().connections == 0).await;
    drop(c1);
    io.shutdown();
}

#[actix_rt::test]
async fn shutdown_closes_everything_and_answers_later_commands() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (mut client, conn, _credit, probe, mut events) = attached_pair(&io).await;
    io.shutdown();
    match events.conn().await {
        ConnEvent::Closed { conn: c, reason } => {
            assert_eq!(c, conn);
            assert_eq!(reason, CloseReason::Local);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    wait_until("the loop to stop", || !io.is_running()).await;
    let n = blocking(move || client.read(&mut [0; 16]).unwrap_or(0)).await;
    assert_eq!(n, 0);
    let stats = io.stats();
    assert_eq!((stats.listeners, stats.connections), (0, 0));

    // Commands that promise events are answered from the caller's thread.
    let (c2, _credit) = io.connect(local0(), None, probe.clone().recipient());
    assert!(matches!(events.conn().await, ConnEvent::ConnectFailed { conn, .. } if conn == c2));
    assert!(matches!(events.conn().await, ConnEvent::Closed { conn, .. } if conn == c2));
    let _credit = io.attach(12345, probe.clone().recipient());
    assert!(matches!(
        events.conn().await,
        ConnEvent::Closed { conn: 12345, .. }
    ));
    assert!(io.listen_tcp(local0(), probe.recipient()).is_err());
}

#[actix_rt::test]
async fn closing_a_paused_connection_still_ends_orderly() {
    // (On loopback Linux reads data and FIN before a reset, so this cannot show the
    // reset that draining input before close avoids on real networks.)
    let io = io::spawn(IoConfig::default()).unwrap();
    let (mut client, conn, _credit, _probe, mut events) = attached_pair(&io).await;
    // The client sends more than the window; nobody consumes, so the loop pauses
    // with the rest left unread in the kernel.
    let mut writer = client.try_clone().unwrap();
    let sent = blocking(move || writer.write_all(&pattern(0, 600_000)).is_ok()).await;
    assert!(sent);
    wait_until("the connection to pause", || io.stats().paused == 1).await;
    io.write(conn, Bytes::from_static(b"221 bye\r\n"));
    io.close(conn);
    let got = blocking(move || {
        let mut got = Vec::new();
        client.read_to_end(&mut got).map(|_| got)
    })
    .await
    .expect("an orderly end, not a reset");
    assert_eq!(got, b"221 bye\r\n");
    loop {
        match events.conn().await {
            ConnEvent::Data { .. } => {}
            ConnEvent::Closed { reason, .. } => {
                assert_eq!(reason, CloseReason::Local);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(io.stats().paused, 0);
    io.shutdown();
}
