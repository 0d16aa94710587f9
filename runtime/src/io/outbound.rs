//! Outbound connections: starting a non-blocking connect and recognising its outcome.
//!
//! The socket is created and the connect started inside the loop (non-blocking calls
//! only), bound to a source address when one is given. The connection is registered
//! for readable and writable readiness; the first writable (or error) event settles it:
//! no pending socket error and a peer address mean `Connected`; anything else means
//! `ConnectFailed` followed by `Closed`. A spurious event (still in progress) waits for
//! the next one. Timing out is the owner's job (`abort`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix::Recipient;
use mio::{Interest, Token};

use super::conn::{deliver, Conn, State, Stream};
use super::credit::Credit;
use super::direct::Direct;
use super::event_loop::EventLoop;
use super::sock;
use super::{CloseReason, ConnEvent, ConnId};

/// Tell `owner` that connection `conn` could not be established.
fn connect_failed(owner: &Recipient<ConnEvent>, conn: ConnId, error: String) {
    owner.do_send(ConnEvent::ConnectFailed {
        conn,
        error: error.clone(),
    });
    owner.do_send(ConnEvent::Closed {
        conn,
        reason: CloseReason::Error(error),
    });
}

impl EventLoop {
    /// Start connecting `conn` to `addr`.
    pub(super) fn connect(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        source: Option<IpAddr>,
        owner: Recipient<ConnEvent>,
        credit: Credit,
        direct: Arc<Direct>,
    ) {
        let token = Token(conn as usize);
        let mut stream = match sock::tcp_connect(addr, source) {
            Ok(s) => Stream::Tcp(s),
            Err(e) => {
                self.shared.direct.remove(&conn);
                return connect_failed(&owner, conn, e.to_string());
            }
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
            self.shared.direct.remove(&conn);
            return connect_failed(&owner, conn, e.to_string());
        }
        let c = Conn::new(
            conn,
            stream,
            State::Connecting,
            Some(owner),
            Some(credit),
            direct,
        );
        self.conns.insert(token, c);
        self.publish_gauges();
    }

    /// A readiness event on a connecting socket: decide whether it connected.
    /// `failed` says the event carried an error or hang-up.
    pub(super) fn finish_connect(&mut self, token: Token, failed: bool) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let Stream::Tcp(s) = &conn.stream else {
            return;
        };
        let outcome = match s.take_error() {
            Ok(Some(e)) | Err(e) => Err(e.to_string()),
            Ok(None) => match s.peer_addr() {
                Ok(_) => s
                    .set_nodelay(true)
                    .and_then(|()| s.local_addr())
                    .map_err(|e| e.to_string()),
                Err(e)
                    if e.kind() == io::ErrorKind::NotConnected
                        || e.raw_os_error() == Some(libc::EINPROGRESS) =>
                {
                    if !failed {
                        return; // spurious: still in progress
                    }
                    Err("connection failed".to_string())
                }
                Err(e) => Err(e.to_string()),
            },
        };
        match outcome {
            Ok(local) => {
                conn.state = State::Open;
                let event = ConnEvent::Connected {
                    conn: conn.id,
                    local,
                };
                if !deliver(conn.owner.as_ref(), event) {
                    return self.finish(token, None);
                }
                // Writes queued while connecting; a greeting may already be waiting.
                self.flush_conn(token);
                self.read_conn(token);
            }
            // `finish` sends `ConnectFailed` before `Closed`.
            Err(error) => self.finish(token, Some(CloseReason::Error(error))),
        }
    }
}
