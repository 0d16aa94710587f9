//! Backpressure: an owner that does not consume stops the loop from reading, the
//! kernel buffers fill and the client's writes block; consuming resumes reading and
//! every byte arrives exactly once, in order, never more than `read_window` ahead.

mod io_common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use impulse_runtime::io::{self, CloseReason, ConnEvent, IoConfig};
use io_common::*;

const TOTAL: usize = 64 << 20;
const WINDOW: usize = 256 * 1024;

#[actix_rt::test]
async fn unconsumed_data_stops_reading_and_consuming_resumes() {
    let config = IoConfig {
        read_chunk: 64 * 1024,
        read_window: WINDOW,
        ..IoConfig::default()
    };
    let io = io::spawn(config).unwrap();
    let (probe, mut events) = probe();
    let (_, addr) = io.listen_tcp(local0(), probe.clone().recipient()).unwrap();

    // The client writes 64 MiB as fast as the connection takes it.
    let written = Arc::new(AtomicUsize::new(0));
    let progress = written.clone();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(LIMIT)).unwrap();
        let piece = 256 * 1024;
        let mut off = 0;
        while off < TOTAL {
            s.write_all(&pattern(off as u64, piece)).unwrap();
            off += piece;
            progress.store(off, Ordering::SeqCst);
        }
        s.shutdown(Shutdown::Write).unwrap();
    });

    let acc = events.accepted().await;
    let credit = io.attach(acc.conn, probe.recipient());

    // Take deliveries without consuming until the loop pauses.
    let mut received: Vec<u8> = Vec::new();
    wait_until_paused(&io).await;
    while received.len() < WINDOW {
        match events.conn().await {
            ConnEvent::Data { bytes, .. } => received.extend_from_slice(&bytes),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received.len(), WINDOW, "exactly one window is delivered");
    assert_eq!(credit.outstanding(), WINDOW);
    assert_eq!(io.stats().paused, 1);

    // The client is blocked: its progress stops well short of the total.
    let stalled = bounded("the client to stall", async {
        loop {
            let before = written.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let after = written.load(Ordering::SeqCst);
            if before == after {
                return after;
            }
        }
    })
    .await;
    assert!(
        stalled < TOTAL,
        "the client wrote everything ({stalled} bytes)"
    );
    events.quiet(Duration::from_millis(100)).await;
    assert_eq!(
        io.stats().bytes_in,
        WINDOW as u64,
        "the loop read nothing more"
    );

    // Consume: reading resumes and the rest arrives, in order, exactly once.
    credit.consumed(received.len());
    let mut offset = received.len() as u64;
    assert_pattern(0, &received);
    let reason = loop {
        match events.conn().await {
            ConnEvent::Data { bytes, .. } => {
                assert!(credit.outstanding() <= WINDOW);
                assert_pattern(offset, &bytes);
                offset += bytes.len() as u64;
                credit.consumed(bytes.len());
            }
            ConnEvent::ReadClosed { conn } => io.close(conn),
            ConnEvent::Closed { reason, .. } => break reason,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(reason, CloseReason::PeerClosed);
    assert_eq!(offset, TOTAL as u64);
    assert_eq!(credit.outstanding(), 0);
    blocking(move || client.join().unwrap()).await;
    let stats = io.stats();
    assert_eq!(stats.paused, 0);
    assert_eq!(stats.bytes_in, TOTAL as u64);
    io.shutdown();
}

async fn wait_until_paused(io: &io::IoHandle) {
    wait_until("the connection to pause", || io.stats().paused == 1).await;
}

#[actix_rt::test]
async fn consuming_bit_by_bit_loses_nothing() {
    const SMALL_TOTAL: usize = 2 << 20;
    let config = IoConfig {
        read_chunk: 4096,
        read_window: 10_000,
        ..IoConfig::default()
    };
    let io = io::spawn(config).unwrap();
    let (probe, mut events) = probe();
    let (_, addr) = io.listen_tcp(local0(), probe.clone().recipient()).unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(LIMIT)).unwrap();
        s.write_all(&pattern(0, SMALL_TOTAL)).unwrap();
    });
    let acc = events.accepted().await;
    let credit = io.attach(acc.conn, probe.recipient());
    let mut offset = 0u64;
    let reason = loop {
        match events.conn().await {
            ConnEvent::Data { bytes, .. } => {
                assert!(credit.outstanding() <= 10_000);
                assert_pattern(offset, &bytes);
                offset += bytes.len() as u64;
                // Consume in odd small steps, so resumption races with reading.
                for piece in bytes.chunks(333) {
                    credit.consumed(piece.len());
                }
            }
            ConnEvent::ReadClosed { conn } => io.close(conn),
            ConnEvent::Closed { reason, .. } => break reason,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(reason, CloseReason::PeerClosed);
    assert_eq!(offset, SMALL_TOTAL as u64);
    blocking(move || client.join().unwrap()).await;
    io.shutdown();
}
