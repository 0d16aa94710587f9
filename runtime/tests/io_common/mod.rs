//! Helpers shared by the I/O loop tests: a probe actor that forwards every event it
//! receives to the test, an echo actor, a byte pattern that reveals loss, duplication
//! and reordering, and bounded waits (every wait here panics after `LIMIT`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use impulse_runtime::io::{Accepted, CloseReason, ConnEvent, ConnId, Credit, IoHandle};
use tokio::sync::{mpsc, oneshot};

/// The longest any single wait in a test may take.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Loopback, any port.
pub fn local0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Await `fut`, failing the test if it takes longer than `LIMIT`.
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Run blocking client code on its own thread; await its result (bounded).
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    bounded("a client thread", rx)
        .await
        .expect("client thread panicked")
}

/// Poll `cond` every 5 ms until it holds (bounded).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    bounded(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// The byte at stream offset `i`: the little-endian bytes of `i / 8`, so any lost,
/// repeated or reordered chunk shows.
pub fn pattern_byte(i: u64) -> u8 {
    ((i / 8) >> (8 * (i % 8))) as u8
}

/// `len` pattern bytes starting at stream offset `offset`.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|k| pattern_byte(offset + k)).collect()
}

/// Check that `bytes` are the pattern at `offset`.
pub fn assert_pattern(offset: u64, bytes: &[u8]) {
    for (k, b) in bytes.iter().enumerate() {
        let i = offset + k as u64;
        assert_eq!(*b, pattern_byte(i), "wrong byte at stream offset {i}");
    }
}

/// What a probe saw.
#[derive(Debug)]
pub enum Ev {
    Accepted(Accepted),
    Conn(ConnEvent),
}

/// Forwards every `Accepted` and `ConnEvent` to the test.
pub struct Probe {
    tx: mpsc::UnboundedSender<Ev>,
}

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<Accepted> for Probe {
    type Result = ();
    fn handle(&mut self, msg: Accepted, _: &mut Context<Self>) {
        let _ = self.tx.send(Ev::Accepted(msg));
    }
}

impl Handler<ConnEvent> for Probe {
    type Result = ();
    fn handle(&mut self, msg: ConnEvent, _: &mut Context<Self>) {
        let _ = self.tx.send(Ev::Conn(msg));
    }
}

/// Stops the actor that receives it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for Probe {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// The test's end of a probe.
pub struct Events {
    rx: mpsc::UnboundedReceiver<Ev>,
}

/// Start a probe actor (call inside a running System).
pub fn probe() -> (Addr<Probe>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Probe { tx }.start(), Events { rx })
}

impl Events {
    pub async fn next(&mut self) -> Ev {
        bounded("a probe event", self.rx.recv())
            .await
            .expect("probe stopped")
    }

    pub async fn accepted(&mut self) -> Accepted {
        match self.next().await {
            Ev::Accepted(a) => a,
            other => panic!("expected Accepted, got {other:?}"),
        }
    }

    pub async fn conn(&mut self) -> ConnEvent {
        match self.next().await {
            Ev::Conn(e) => e,
            other => panic!("expected a ConnEvent, got {other:?}"),
        }
    }

    /// Nothing arrives within `wait`.
    pub async fn quiet(&mut self, wait: Duration) {
        if let Ok(Some(ev)) = tokio::time::timeout(wait, self.rx.recv()).await {
            panic!("expected no event, got {ev:?}");
        }
    }

    /// Collect `Data` for `conn` (consuming it) until `Closed`, closing the connection
    /// when the peer shuts its side (`ReadClosed`); the bytes and the reason.
    pub async fn read_to_close(
        &mut self,
        io: &IoHandle,
        conn: ConnId,
        credit: &Credit,
    ) -> (Vec<u8>, CloseReason) {
        let mut got = Vec::new();
        loop {
            match self.conn().await {
                ConnEvent::Data { conn: c, bytes } => {
                    assert_eq!(c, conn);
                    got.extend_from_slice(&bytes);
                    credit.consumed(bytes.len());
                }
                ConnEvent::ReadClosed { conn: c } => {
                    assert_eq!(c, conn);
                    io.close(conn);
                }
                ConnEvent::Closed { conn: c, reason } => {
                    assert_eq!(c, conn);
                    return (got, reason);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// Echoes every byte back to its sender, closes a connection once its peer has shut its
/// side (after the echo of everything before it), and reports each `Closed` to the test.
pub struct Echo {
    io: IoHandle,
    credits: HashMap<ConnId, Credit>,
    closed: mpsc::UnboundedSender<(ConnId, CloseReason)>,
}

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Accepted> for Echo {
    type Result = ();
    fn handle(&mut self, msg: Accepted, ctx: &mut Context<Self>) {
        let credit = self.io.attach(msg.conn, ctx.address().recipient());
        self.credits.insert(msg.conn, credit);
    }
}

impl Handler<ConnEvent> for Echo {
    type Result = ();
    fn handle(&mut self, msg: ConnEvent, _: &mut Context<Self>) {
        match msg {
            ConnEvent::Data { conn, bytes } => {
                let n = bytes.len();
                self.io.write(conn, bytes);
                if let Some(credit) = self.credits.get(&conn) {
                    credit.consumed(n);
                }
            }
            ConnEvent::ReadClosed { conn } => {
                assert!(self.credits.contains_key(&conn), "ReadClosed for {conn}");
                self.io.close(conn);
            }
            ConnEvent::Closed { conn, reason } => {
                assert!(
                    self.credits.remove(&conn).is_some(),
                    "Closed twice for {conn}"
                );
                let _ = self.closed.send((conn, reason));
            }
            other => panic!("echo got {other:?}"),
        }
    }
}

/// Start an echo actor; the receiver gets `(conn, reason)` per closed connection.
pub fn echo(io: &IoHandle) -> (Addr<Echo>, mpsc::UnboundedReceiver<(ConnId, CloseReason)>) {
    let (closed, rx) = mpsc::unbounded_channel();
    let addr = Echo {
        io: io.clone(),
        credits: HashMap::new(),
        closed,
    }
    .start();
    (addr, rx)
}
