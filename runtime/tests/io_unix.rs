//! The Unix-domain listener of the control socket: a round trip through the echo
//! actor, mode 0600, stale socket files replaced, live ones and non-sockets refused,
//! and the file removed when the listener closes.

mod io_common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use impulse_runtime::io::{self, CloseReason, IoConfig, PeerAddr};
use io_common::*;

/// A socket path no other test (or test run) uses.
fn socket_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("impulse-io-{}-{n}.sock", std::process::id()))
}

#[actix_rt::test]
async fn unix_round_trip() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let path = socket_path();
    let (echo, mut closed) = echo(&io);
    let id = io.listen_unix(&path, echo.recipient()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let p = path.clone();
    let got = blocking(move || {
        let mut s = UnixStream::connect(&p).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let msg = pattern(0, 200_000);
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || w.write_all(&msg).unwrap());
        let mut got = vec![0; 200_000];
        s.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        got
    })
    .await;
    assert_pattern(0, &got);
    let (_, reason) = bounded("Closed", closed.recv()).await.unwrap();
    assert_eq!(reason, CloseReason::PeerClosed);

    io.close_listener(id);
    wait_until("the socket file to go", || !path.exists()).await;
    io.shutdown();
}

#[actix_rt::test]
async fn unix_accept_reports_unix_addresses() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let path = socket_path();
    let (probe, mut events) = probe();
    let id = io.listen_unix(&path, probe.recipient()).unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    let acc = events.accepted().await;
    assert_eq!(acc.listener, id);
    assert_eq!((acc.peer, acc.local), (PeerAddr::Unix, PeerAddr::Unix));
    io.shutdown();
    wait_until("the socket file to go", || !path.exists()).await;
}

#[actix_rt::test]
async fn unix_stale_live_and_foreign_files() {
    let io = io::spawn(IoConfig::default()).unwrap();
    let (probe, _events) = probe();

    // A stale socket file (its listener is gone) is replaced.
    let path = socket_path();
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let id = io.listen_unix(&path, probe.clone().recipient()).unwrap();

    // A live one is not.
    let err = io
        .listen_unix(&path, probe.clone().recipient())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(
        UnixStream::connect(&path).is_ok(),
        "the first listener still serves"
    );
    io.close_listener(id);
    wait_until("the socket file to go", || !path.exists()).await;

    // Something that is not a socket is left alone.
    let file = socket_path();
    std::fs::write(&file, b"not a socket").unwrap();
    let err = io.listen_unix(&file, probe.recipient()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).unwrap(), b"not a socket");
    std::fs::remove_file(&file).unwrap();
    io.shutdown();
}
