//! Writes from the caller's thread (the direct path) against writes queued in the loop:
//! whatever mix of the two a connection's output takes, the peer reads every byte once,
//! in the order written — with a slow reader (so the socket fills and writes queue), from
//! several threads writing one after another, on outbound connections written before
//! they are connected, and up to a close.

mod io_common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use impulse_runtime::io::{self, Accepted, ConnEvent, IoConfig, IoHandle};
use io_common::*;

/// Sizes cycling from one byte to 256 KiB, so writes go direct, partly direct, and
/// queued behind a backlog.
fn sizes() -> impl Iterator<Item = usize> + Clone {
    [1, 7, 512, 4096, 65_536, 3, 262_144, 100, 16_384, 1_000_000].into_iter()
}

/// A client connected to a fresh listener, and its accepted connection, attached.
async fn accepted(io: &IoHandle) -> (TcpStream, Accepted, actix::Addr<Probe>, Events) {
    let (probe, mut events) = probe();
    let (_l, addr) = io.listen_tcp(local0(), probe.clone().recipient()).unwrap();
    let client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    let acc = events.accepted().await;
    let _credit = io.attach(acc.conn, probe.clone().recipient());
    (client, acc, probe, events)
}

#[actix_rt::test]
async fn a_slow_reader_gets_every_byte_in_order() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (client, acc, _probe, mut events) = accepted(&io).await;
    let mut off = 0u64;
    for _round in 0..12 {
        for n in sizes() {
            io.write(acc.conn, Bytes::from(pattern(off, n)));
            off += n as u64;
        }
        // Let the reader fall behind and catch up between rounds.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    io.close(acc.conn);
    let total = off;
    let got = blocking(move || {
        let mut client = client;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 7_919];
        loop {
            match client.read(&mut buf).unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
            // A slow reader: the socket fills, later writes must queue behind.
            std::thread::sleep(Duration::from_micros(200));
        }
        got
    })
    .await;
    assert_eq!(got.len() as u64, total);
    assert_pattern(0, &got);
    match events.conn().await {
        ConnEvent::Closed { .. } => {}
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(io.stats().bytes_out, total);
    io.shutdown();
}

#[actix_rt::test]
async fn writers_on_several_threads_keep_their_order() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (client, acc, _probe, _events) = accepted(&io).await;
    // Each piece is written by a different thread, one after the other (a baton), as
    // an actor that moves between arbiters would.
    let io2 = io.clone();
    let conn = acc.conn;
    let total = async {
        blocking(move || {
            let io = Arc::new(io2);
            let mut off = 0u64;
            for (k, n) in sizes().cycle().take(60).enumerate() {
                let io = io.clone();
                let bytes = Bytes::from(pattern(off, n));
                std::thread::Builder::new()
                    .name(format!("writer-{k}"))
                    .spawn(move || io.write(conn, bytes))
                    .unwrap()
                    .join()
                    .unwrap();
                off += n as u64;
            }
            io.close(conn);
            off
        })
        .await
    };
    // Reading from the start, on a thread of its own.
    let reader = std::thread::spawn(move || {
        let mut client = client;
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        got
    });
    let total = total.await;
    let got = blocking(move || reader.join().unwrap()).await;
    assert_eq!(got.len() as u64, total);
    assert_pattern(0, &got);
    io.shutdown();
}

#[actix_rt::test]
async fn writes_before_connected_then_direct_after() {
    let listener = TcpListener::bind(local0()).unwrap();
    let addr = listener.local_addr().unwrap();
    let io = io::spawn(IoConfig::default()).unwrap();
    let (probe, mut events) = probe();
    let (conn, _credit) = io.connect(addr, None, probe.clone().recipient());
    // Queued while connecting.
    io.write(conn, Bytes::from(pattern(0, 10_000)));
    match events.conn().await {
        ConnEvent::Connected { .. } => {}
        other => panic!("expected Connected, got {other:?}"),
    }
    // Likely direct now, and never ahead of the queued bytes.
    let mut off = 10_000u64;
    for n in sizes() {
        io.write(conn, Bytes::from(pattern(off, n)));
        off += n as u64;
    }
    io.close(conn);
    let got = blocking(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        // The close reached us after the data; the socket still takes a reply.
        let _ = s.write_all(b"bye");
        got
    })
    .await;
    assert_eq!(got.len() as u64, off);
    assert_pattern(0, &got);
    io.shutdown();
}
