//! Sending an answer to an `impulsectl` client: the response is built (when that is
//! work, e.g. the tree) and encoded as one JSON line on the pool, never on the control
//! actor's arbiter; then it is written in chunks of [`CHUNK`] bytes, each only while the
//! connection's unsent backlog is under [`HIGH_WATER`], paced by a 1 ms wake-up. So an
//! answer of any size (`tree --all` with a million messages) arrives whole and never
//! trips the I/O actor's write-buffer cap; once all is written the connection closes.
//! An answer for another actor (the HTTP endpoint's [`Ask`](super::Ask)) is built on the
//! pool the same way and handed back typed, through its channel.

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use impulse_runtime::control::Response;
use impulse_runtime::io::ConnId;

use super::Control;

/// Bytes handed to the I/O actor per step.
const CHUNK: usize = 256 * 1024;
/// No new chunk while this much is still unsent. With one chunk per millisecond, even a
/// loop that falls 50 ms behind stays far below its write-buffer cap.
const HIGH_WATER: usize = 2 * 1024 * 1024;
const TICK: Duration = Duration::from_millis(1);

/// Where an answer goes.
pub enum To {
    /// A control-socket client: one JSON line, then close.
    Socket(ConnId),
    /// Another actor, typed (the HTTP endpoint).
    Caller(tokio::sync::oneshot::Sender<Response>),
}

/// An answer being written.
pub(super) struct Outgoing {
    pub conn: ConnId,
    data: Bytes,
    at: usize,
}

/// One JSON line.
fn encode(resp: &Response) -> Vec<u8> {
    let mut line = serde_json::to_vec(resp).unwrap_or_else(|e| {
        format!("{{\"type\":\"error\",\"message\":\"cannot encode: {e}\"}}").into_bytes()
    });
    line.push(b'\n');
    line
}

impl Control {
    /// Answer `to` with what `make` builds (on the pool); a socket client is closed after.
    pub(super) fn reply(
        &mut self,
        to: To,
        make: impl FnOnce() -> Response + Send + 'static,
        ctx: &mut Context<Self>,
    ) {
        let conn = match to {
            To::Socket(conn) => conn,
            To::Caller(tx) => {
                let job = self.shared.pool.run(make);
                ctx.spawn(job.into_actor(self).map(move |res, _, _| {
                    let response = res.unwrap_or_else(|e| Response::Error {
                        message: format!("cannot build the answer: {e}"),
                    });
                    let _ = tx.send(response);
                }));
                return;
            }
        };
        let job = self.shared.pool.run(move || encode(&make()));
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            let data = res.unwrap_or_else(|e| {
                encode(&Response::Error {
                    message: format!("cannot build the answer: {e}"),
                })
            });
            act.outgoing.push(Outgoing {
                conn,
                data: Bytes::from(data),
                at: 0,
            });
            act.pump(ctx);
        }));
    }

    /// Answer `to` with `response` at once, on this thread (a small answer that must
    /// be on its way before what follows it, e.g. `shutdown`'s before the daemon stops).
    pub(super) fn reply_now(&mut self, to: To, response: Response, ctx: &mut Context<Self>) {
        match to {
            To::Caller(tx) => {
                let _ = tx.send(response);
            }
            To::Socket(conn) => {
                self.outgoing.push(Outgoing {
                    conn,
                    data: Bytes::from(encode(&response)),
                    at: 0,
                });
                self.pump(ctx);
            }
        }
    }

    /// Write the next chunk of every answer whose connection has room; close those
    /// finished; come back in a millisecond while any is left.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        let io = self.shared.io.clone();
        let clients = &self.clients;
        self.outgoing.retain_mut(|o| {
            let Some(client) = clients.get(&o.conn) else {
                return false; // the client went away
            };
            if client.credit.write_backlog() < HIGH_WATER {
                let end = (o.at + CHUNK).min(o.data.len());
                io.write(o.conn, o.data.slice(o.at..end));
                o.at = end;
            }
            if o.at < o.data.len() {
                return true;
            }
            io.close(o.conn);
            false
        });
        if !self.outgoing.is_empty() && !self.pumping {
            self.pumping = true;
            ctx.run_later(TICK, |act, ctx| {
                act.pumping = false;
                act.pump(ctx);
            });
        }
    }
}
