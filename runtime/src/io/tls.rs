//! TLS inside the loop: rustls on the non-blocking socket, no thread per connection.
//!
//! An owner turns a plaintext connection into TLS with [`IoHandle::start_tls`]
//! (STARTTLS, RFC 3207: after its `220` has been written, or after reading the server's
//! `220`). From that command on, every byte read from the socket goes to rustls and every
//! byte the owner writes is encrypted; nothing read before the command is ever
//! reinterpreted (input that arrived earlier was already delivered as plaintext `Data`,
//! and the owner discards what a client pipelined behind STARTTLS). When the handshake
//! completes the owner gets `TlsReady` with the version and cipher; a failed handshake
//! or a bad record ends the connection (`Closed` with the TLS error). A graceful close
//! sends `close_notify` first.
//!
//! [`IoHandle::start_tls`]: super::IoHandle::start_tls

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use rustls::pki_types::ServerName;

use super::conn::{deliver, Conn, Step};
use super::stats::Counters;
use super::{CloseReason, ConnEvent};

/// How to start TLS on a connection.
#[derive(Clone)]
pub enum TlsStart {
    /// As the client (outbound STARTTLS), checking the name with the config's verifier.
    Client {
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    },
    /// As the server (inbound STARTTLS or implicit TLS).
    Server { config: Arc<rustls::ServerConfig> },
}

impl std::fmt::Debug for TlsStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsStart::Client { name, .. } => write!(f, "TlsStart::Client({name:?})"),
            TlsStart::Server { .. } => write!(f, "TlsStart::Server"),
        }
    }
}

/// What was negotiated, for the log records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsInfo {
    /// `TLSv1_3`, `TLSv1_2`.
    pub version: String,
    /// The IANA-style suite name rustls gives, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// A connection's TLS state.
pub(super) struct TlsLayer {
    conn: rustls::Connection,
    /// `TlsReady` has been sent.
    ready: bool,
    /// The owner closed: `close_notify` goes out once every queued byte went in.
    closing: bool,
    /// `close_notify` was handed to rustls.
    notified: bool,
}

impl TlsLayer {
    pub(super) fn new(start: TlsStart) -> Result<TlsLayer, rustls::Error> {
        let conn = match start {
            TlsStart::Client { config, name } => {
                rustls::ClientConnection::new(config, name).map(rustls::Connection::from)?
            }
            TlsStart::Server { config } => {
                rustls::ServerConnection::new(config).map(rustls::Connection::from)?
            }
        };
        Ok(TlsLayer {
            conn,
            ready: false,
            closing: false,
            notified: false,
        })
    }

    fn info(&self) -> TlsInfo {
        TlsInfo {
            version: self
                .conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher: self
                .conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
        }
    }

    /// Send `close_notify` after the output queued so far (from the next flush on: the
    /// alert must follow the last reply, or the peer never reads that reply).
    pub(super) fn close_notify(&mut self) {
        self.closing = true;
    }

    /// The owner closed but `close_notify` is not out yet.
    pub(super) fn closing_unsent(&self) -> bool {
        self.closing && !self.notified
    }

    /// Ciphertext waiting to be written.
    pub(super) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }
}

impl Conn {
    /// Read and decrypt until `WouldBlock`, the window fills, or the budget runs out;
    /// plaintext goes to the owner as `Data`, the end of the handshake as `TlsReady`.
    pub(super) fn read_tls(&mut self, buf: &mut [u8], mut budget: usize, c: &mut Counters) -> Step {
        let Some(credit) = self.credit.clone() else {
            return Step::Idle;
        };
        let _class = crate::alloc::enter(credit.class());
        loop {
            if let Err(step) = self.gate(&credit, budget, c) {
                return step;
            }
            let Some(tls) = self.tls.as_mut() else {
                return Step::Idle;
            };
            let n = match tls.conn.read_tls(&mut self.stream) {
                Ok(0) => return Step::ReadClosed,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Step::End(Some(CloseReason::Error(e.to_string()))),
            };
            c.read(n);
            budget = budget.saturating_sub(n);
            if let Err(e) = tls.conn.process_new_packets() {
                // Tell the peer why (the alert rustls queued), then give up.
                let _ = tls.conn.write_tls(&mut self.stream);
                return Step::End(Some(CloseReason::Error(format!("TLS: {e}"))));
            }
            if !tls.ready && !tls.conn.is_handshaking() {
                tls.ready = true;
                let event = ConnEvent::TlsReady {
                    conn: self.id,
                    info: tls.info(),
                };
                if !deliver(self.owner.as_ref(), event) {
                    return Step::End(None);
                }
            }
            loop {
                match tls.conn.reader().read(buf) {
                    Ok(0) => return Step::ReadClosed, // close_notify
                    Ok(m) => {
                        credit.delivered(m);
                        let event = ConnEvent::Data {
                            conn: self.id,
                            bytes: Bytes::copy_from_slice(&buf[..m]),
                        };
                        if !deliver(self.owner.as_ref(), event) {
                            return Step::End(None);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Step::ReadClosed,
                    Err(e) => return Step::End(Some(CloseReason::Error(e.to_string()))),
                }
            }
            // Handshake messages and alerts to answer.
            if tls.conn.wants_write() {
                if let Err(e) = self.flush_tls(c) {
                    return Step::End(Some(CloseReason::Error(e.to_string())));
                }
            }
        }
    }

    /// Encrypt the queued plaintext and write ciphertext until it is gone or the socket
    /// would block. Plaintext is held back until the handshake is done (rustls buffers
    /// it meanwhile, within its limit).
    pub(super) fn flush_tls(&mut self, c: &mut Counters) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        while let Some(front) = self.out.front_mut() {
            let n = tls.conn.writer().write(front)?;
            if n == 0 {
                break; // rustls's plaintext buffer is full until the handshake ends
            }
            self.out_len -= n;
            if n == front.len() {
                self.out.pop_front();
            } else {
                let _ = front.split_to(n);
            }
        }
        if self.out.is_empty() && tls.closing && !tls.notified {
            tls.conn.send_close_notify();
            tls.notified = true;
        }
        while tls.conn.wants_write() {
            match tls.conn.write_tls(&mut self.stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => c.wrote(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
