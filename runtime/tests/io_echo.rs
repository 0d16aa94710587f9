//! Echo over real loopback sockets: many concurrent clients, 8 MiB each way (so the
//! loop's writes hit `WouldBlock`), a tiny credit window, and clients that vanish
//! mid-stream.

mod io_common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use impulse_runtime::io::{self, CloseReason, IoConfig};
use io_common::*;

/// Send `total` pattern bytes in `piece`-sized writes while reading the echo; once all
/// of it is back, shut our side and check that the server closes too.
fn echo_client(addr: SocketAddr, total: usize, piece: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut off = 0;
        while off < total {
            let n = piece.min(total - off);
            w.write_all(&pattern(off as u64, n)).unwrap();
            off += n;
        }
    });
    let mut got = vec![0; total];
    s.read_exact(&mut got).unwrap();
    writer.join().unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(s.read(&mut [0; 16]).unwrap(), 0, "server closes after us");
    got
}

#[actix_rt::test]
async fn many_concurrent_clients_are_echoed() {
    const CLIENTS: usize = 48;
    const EACH: usize = 128 * 1024;
    let io = io::spawn(IoConfig::default()).unwrap();
    let (echo, mut closed) = echo(&io);
    let (_, addr) = io.listen_tcp(local0(), echo.recipient()).unwrap();
    assert_eq!(addr.ip(), local0().ip());
    assert_ne!(addr.port(), 0);

    let results = blocking(move || {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| std::thread::spawn(move || echo_client(addr, EACH, 4096)))
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().unwrap())
            .collect::<Vec<_>>()
    })
    .await;
    for got in &results {
        assert_eq!(got.len(), EACH);
        assert_pattern(0, got);
    }
    let mut ids = Vec::new();
    for _ in 0..CLIENTS {
        let (conn, reason) = bounded("Closed", closed.recv()).await.unwrap();
        assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");
        ids.push(conn);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CLIENTS, "connection ids are unique");
    wait_until("all connections gone", || io.stats().connections == 0).await;
    let stats = io.stats();
    assert_eq!(stats.listeners, 1);
    assert_eq!(stats.accepted_total, CLIENTS as u64);
    assert_eq!(stats.bytes_in, (CLIENTS * EACH) as u64);
    assert_eq!(stats.bytes_out, (CLIENTS * EACH) as u64);
    assert_eq!(stats.paused, 0);
    io.shutdown();
}

#[actix_rt::test]
async fn eight_mib_each_way() {
    const TOTAL: usize = 8 << 20;
    let io = io::spawn(IoConfig::default()).unwrap();
    let (echo, mut closed) = echo(&io);
    let (_, addr) = io.listen_tcp(local0(), echo.recipient()).unwrap();
    let got = blocking(move || echo_client(addr, TOTAL, 1 << 20)).await;
    assert_eq!(got.len(), TOTAL);
    assert_pattern(0, &got);
    let (_, reason) = bounded("Closed", closed.recv()).await.unwrap();
    assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");
    io.shutdown();
}

#[actix_rt::test]
async fn tiny_window_pauses_and_resumes_without_loss() {
    const TOTAL: usize = 4 << 20;
    let config = IoConfig {
        read_chunk: 7 * 1024,
        read_window: 20 * 1024,
        max_write_buffer: 1 << 20,
    };
    let io = io::spawn(config).unwrap();
    let (echo, mut closed) = echo(&io);
    let (_, addr) = io.listen_tcp(local0(), echo.recipient()).unwrap();
    let got = blocking(move || echo_client(addr, TOTAL, 100_000)).await;
    assert_eq!(got.len(), TOTAL);
    assert_pattern(0, &got);
    let (_, reason) = bounded("Closed", closed.recv()).await.unwrap();
    assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");
    io.shutdown();
}

#[actix_rt::test]
async fn clients_vanishing_mid_stream_close_once_and_others_go_on() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (echo, mut closed) = echo(&io);
    let (_, addr) = io.listen_tcp(local0(), echo.recipient()).unwrap();

    // Writes 1 MiB, never reads the echo, and drops the socket (likely a reset).
    blocking(move || {
        for _ in 0..4 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_write_timeout(Some(LIMIT)).unwrap();
            let _ = s.write_all(&pattern(0, 1 << 20));
            drop(s);
        }
    })
    .await;
    for _ in 0..4 {
        let (_, reason) = bounded("Closed", closed.recv()).await.unwrap();
        assert!(
            matches!(reason, CloseReason::PeerClosed | CloseReason::Error(_)),
            "{reason:?}"
        );
    }
    wait_until("vanished connections gone", || io.stats().connections == 0).await;

    // The loop is unharmed.
    let got = blocking(move || echo_client(addr, 300_000, 10_000)).await;
    assert_pattern(0, &got);
    assert_eq!(got.len(), 300_000);
    let (_, reason) = bounded("Closed", closed.recv()).await.unwrap();
    assert!(matches!(reason, CloseReason::PeerClosed));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(closed.try_recv().is_err(), "no further Closed");
    io.shutdown();
}
