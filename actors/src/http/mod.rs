//! The HTTP endpoint (when `http` is configured): `GET /metrics` (Prometheus text),
//! `GET /health` (200 while the spool takes writes, 503 otherwise), the control requests
//! under `/api/` and `POST /api/inject`.
//!
//! Like every socket, the endpoint's is the epoll I/O actor's: this actor gets each
//! client's bytes, frames one request ([`request`]), routes it ([`route`]) and answers
//! once, closing the connection. Control requests go to the control actor as typed
//! [`Ask`]s, so `impulsectl` and HTTP answer the same way. An injection takes the same
//! acceptance path as SMTP ([`crate::accept`]) and gets `200` only after the fsync.
//! `/api/` answers clients that may relay (`relay.allow`); `/metrics` and `/health` answer
//! anyone who can reach the address. A client gets [`REQUEST_TIMEOUT`] to send its
//! request, and at most [`MAX_CLIENTS`] are served at once.

pub mod metrics;
pub mod request;
pub mod route;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use impulse_runtime::alloc;
use impulse_runtime::control::{Request, Response};
use impulse_runtime::io::{Accepted, ConnEvent, ConnId, Credit, PeerAddr};
use impulse_runtime::registry::Registration;
use impulse_runtime::supervise::{fault_point, guard};
use impulse_runtime::ActorClass;
use serde_json::json;

use crate::accept::{self, Refusal, Submission};
use crate::context::Shared;
use crate::control::{Ask, Control};
use crate::router::Router;
use request::{Framing, HttpRequest};
use route::{Injection, Route};

/// How long a client may take to send its whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients served at once; more get `503` and a close.
pub const MAX_CLIENTS: usize = 256;
/// Bodies other than an injection's are small JSON objects.
const MAX_API_BODY: usize = 64 * 1024;

struct Client {
    peer: SocketAddr,
    buf: Vec<u8>,
    credit: Credit,
    since: Instant,
    /// `100 Continue` was sent.
    continued: bool,
    /// The request is complete: no more bytes are read.
    answered: bool,
}

/// The HTTP endpoint.
pub struct Http {
    shared: Arc<Shared>,
    router: Arc<Router>,
    control: Addr<Control>,
    reg: Registration,
    clients: HashMap<ConnId, Client>,
}

impl Http {
    pub fn new(
        shared: Arc<Shared>,
        router: Arc<Router>,
        control: Addr<Control>,
        reg: Registration,
    ) -> Http {
        Http {
            shared,
            router,
            control,
            reg,
            clients: HashMap::new(),
        }
    }

    /// The largest body a request may carry: an injection up to the message size limit
    /// (JSON escaping may double it).
    fn max_body(&self) -> usize {
        let message = self.shared.config().smtp.max_message_size as usize;
        message
            .saturating_mul(2)
            .saturating_add(64 * 1024)
            .max(MAX_API_BODY)
    }

    /// Write the whole answer and close.
    fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
        self.shared.io.write(conn, Bytes::from(bytes));
        self.shared.io.close(conn);
    }

    fn send_json(&mut self, conn: ConnId, status: u16, body: &serde_json::Value) {
        let mut text = serde_json::to_vec(body).unwrap_or_default();
        text.push(b'\n');
        let out = request::response(status, "application/json", &[], &text);
        self.send(conn, out);
    }

    fn send_error(&mut self, conn: ConnId, status: u16, why: &str, allow: Option<&str>) {
        let mut text =
            serde_json::to_vec(&json!({"type": "error", "message": why})).unwrap_or_default();
        text.push(b'\n');
        let extra: Vec<(&str, &str)> = allow.map(|a| ("Allow", a)).into_iter().collect();
        let out = request::response(status, "application/json", &extra, &text);
        self.send(conn, out);
    }

    fn on_request(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        req: HttpRequest,
        ctx: &mut Context<Self>,
    ) {
        let route = route::route(&req);
        let api = req.path.starts_with("/api/");
        if api && !self.shared.config().relay_allowed(peer.ip()) {
            return self.send_error(
                conn,
                403,
                "the API answers only clients in relay.allow",
                None,
            );
        }
        match route {
            Route::Refuse(status, why, allow) => self.send_error(conn, status, &why, allow),
            Route::Health => {
                let health = &self.shared.spool_health;
                if health.is_healthy() {
                    self.send_json(conn, 200, &json!({"status": "ok"}))
                } else {
                    let why = health.reason();
                    self.send_json(conn, 503, &json!({"status": "unhealthy", "reason": why}))
                }
            }
            Route::Metrics => self.metrics(conn, ctx),
            Route::Api(request) => self.api(conn, request, ctx),
            Route::Inject(i) => self.inject(conn, peer, i, ctx),
        }
    }

    fn api(&mut self, conn: ConnId, request: Request, ctx: &mut Context<Self>) {
        let ask = ask(self.control.clone(), request);
        let pool = self.shared.pool.clone();
        let fut = async move {
            let response = ask.await;
            let status = if matches!(response, Response::Error { .. }) {
                400
            } else {
                200
            };
            // A listing may be large: encoded on the pool.
            let body = pool
                .run(move || {
                    let mut v = serde_json::to_vec(&response).unwrap_or_default();
                    v.push(b'\n');
                    v
                })
                .await
                .unwrap_or_default();
            request::response(status, "application/json", &[], &body)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |out, act, _| act.send(conn, out)),
        );
    }

    fn metrics(&mut self, conn: ConnId, ctx: &mut Context<Self>) {
        let c = self.control.clone();
        let pool = self.shared.pool.clone();
        let fut = async move {
            let (status, queues, memory, pools) = tokio::join!(
                ask(c.clone(), Request::Status),
                ask(c.clone(), Request::Queues),
                ask(c.clone(), Request::Memory),
                ask(c.clone(), Request::Pools),
            );
            let snapshot = match (status, queues, memory, pools) {
                (
                    Response::Status(status),
                    Response::Queues { domains },
                    Response::Memory(memory),
                    Response::Pools { pools, arbiters },
                ) => metrics::Snapshot {
                    status,
                    queues: domains,
                    memory,
                    pools,
                    arbiters,
                },
                _ => return Err("the control actor did not answer".to_string()),
            };
            pool.run(move || metrics::render(&snapshot))
                .await
                .map_err(|e| e.to_string())?
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| match res {
            Ok(text) => {
                let out = request::response(200, metrics::CONTENT_TYPE, &[], &text);
                act.send(conn, out)
            }
            Err(why) => act.send_error(conn, 500, &why, None),
        }));
    }

    fn inject(&mut self, conn: ConnId, peer: SocketAddr, i: Injection, ctx: &mut Context<Self>) {
        let cfg = self.shared.config();
        if !self.shared.spool_health.is_healthy() {
            let why = format!(
                "cannot take mail now: {}",
                self.shared.spool_health.reason()
            );
            return self.send_error(conn, 503, &why, None);
        }
        let sender = match impulse_smtp::command::check_address(&i.sender, true) {
            Ok(s) => s,
            Err(e) => return self.send_error(conn, 400, &format!("sender: {e}"), None),
        };
        if i.recipients.is_empty() {
            return self.send_error(conn, 400, "no recipients", None);
        }
        if i.recipients.len() > cfg.smtp.max_recipients {
            let why = format!("more than {} recipients", cfg.smtp.max_recipients);
            return self.send_error(conn, 400, &why, None);
        }
        let mut recipients = Vec::with_capacity(i.recipients.len());
        for r in &i.recipients {
            match impulse_smtp::command::check_address(r, false) {
                Ok(a) => recipients.push(a),
                Err(e) => {
                    let why = format!("recipient {r:?}: {e}");
                    return self.send_error(conn, 400, &why, None);
                }
            }
        }
        let data = impulse_smtp::stuff::canonical_lines(i.content.as_bytes());
        if data.len() as u64 > cfg.smtp.max_message_size {
            let why = format!("message larger than {} bytes", cfg.smtp.max_message_size);
            return self.send_error(conn, 413, &why, None);
        }
        let count = recipients.len();
        let sub = Submission {
            sender,
            recipients,
            data,
            peer,
            helo: "api".into(),
            hostname: cfg.smtp.hostname.clone(),
            with: "HTTP",
            tls: None,
            user: None,
            dsn: Default::default(),
            class: ActorClass::Http,
        };
        let fut = accept::accept(self.shared.clone(), self.router.clone(), sub);
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| match res {
            Ok(ids) => {
                let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                let body = json!({"type": "injected", "id": ids.join(","), "ids": ids, "recipients": count});
                act.send_json(conn, 200, &body)
            }
            Err(Refusal::Permanent(why)) => act.send_error(conn, 422, &why, None),
            Err(Refusal::Temporary(why)) => act.send_error(conn, 503, &why, None),
        }));
    }

    fn on_conn_event(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        match ev {
            ConnEvent::Data { conn, bytes } => {
                let max_body = self.max_body();
                let Some(client) = self.clients.get_mut(&conn) else {
                    return;
                };
                client.credit.consumed(bytes.len());
                if client.answered {
                    return;
                }
                client.buf.extend_from_slice(&bytes);
                match request::frame(&client.buf, max_body) {
                    Framing::Incomplete { expect_continue } => {
                        if expect_continue && !client.continued {
                            client.continued = true;
                            self.shared
                                .io
                                .write(conn, Bytes::from_static(request::CONTINUE));
                        }
                    }
                    Framing::Refuse(status, why) => {
                        client.answered = true;
                        self.send_error(conn, status, why, None);
                    }
                    Framing::Complete(req) => {
                        client.answered = true;
                        client.buf = Vec::new();
                        let peer = client.peer;
                        self.on_request(conn, peer, req, ctx);
                    }
                }
            }
            ConnEvent::ReadClosed { conn } => {
                // A client that stops sending before its request is whole gets no answer.
                if self.clients.get(&conn).is_some_and(|c| !c.answered) {
                    self.shared.io.close(conn);
                }
            }
            ConnEvent::Closed { conn, .. } => {
                self.clients.remove(&conn);
                self.reg.set_mailbox(self.clients.len());
            }
            ConnEvent::Connected { .. }
            | ConnEvent::ConnectFailed { .. }
            | ConnEvent::TlsReady { .. } => {}
        }
    }

    /// Close the connections of clients that did not send a whole request in time.
    fn reap(&mut self) {
        let now = Instant::now();
        for (conn, c) in self.clients.iter_mut() {
            if !c.answered && now.duration_since(c.since) > REQUEST_TIMEOUT {
                c.answered = true;
                let out = request::response(408, "text/plain", &[], b"request timeout\n");
                self.shared.io.write(*conn, Bytes::from(out));
                self.shared.io.close(*conn);
            }
        }
    }
}

/// One typed control request; a control actor that drops it answers as an error.
async fn ask(control: Addr<Control>, request: Request) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    control.do_send(Ask { request, reply: tx });
    rx.await.unwrap_or_else(|_| Response::Error {
        message: "the control actor did not answer".into(),
    })
}

impl Actor for Http {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reg.set_state("serving");
        ctx.run_interval(Duration::from_secs(1), |act, _| act.reap());
    }
}

/// Restarted by its `Supervisor` after a contained panic; its clients are closed.
impl Supervised for Http {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        for (conn, _) in self.clients.drain() {
            self.shared.io.abort(conn);
        }
    }
}

impl Handler<Accepted> for Http {
    type Result = ();

    fn handle(&mut self, msg: Accepted, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Http);
        let PeerAddr::Tcp(peer) = msg.peer else {
            return self.shared.io.abort(msg.conn);
        };
        let credit = self.shared.io.attach(msg.conn, ctx.address().recipient());
        self.clients.insert(
            msg.conn,
            Client {
                peer,
                buf: Vec::new(),
                credit,
                since: Instant::now(),
                continued: false,
                answered: false,
            },
        );
        self.reg.set_mailbox(self.clients.len());
        if self.clients.len() > MAX_CLIENTS {
            if let Some(c) = self.clients.get_mut(&msg.conn) {
                c.answered = true;
            }
            self.send_error(msg.conn, 503, "too many HTTP clients", None);
        }
    }
}

impl Handler<ConnEvent> for Http {
    type Result = ();

    fn handle(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Http);
        let conn = ev.conn();
        let panics = self.shared.panics.clone();
        let done = guard(self, ctx, "http", Some(&panics), move |act, ctx| {
            fault_point("http");
            act.on_conn_event(ev, ctx)
        });
        if done.is_none() {
            self.clients.remove(&conn);
            self.shared.io.abort(conn);
        }
    }
}
