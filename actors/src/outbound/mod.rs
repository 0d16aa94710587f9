//! The outbound connection actor: one SMTP client session to a next hop.
//!
//! It is given the domain's next hops in order (MX preference, then each exchanger's
//! addresses) and asks the I/O actor to connect to the first. While nothing has worked
//! yet — the connection is refused or times out, or the greeting or EHLO is refused —
//! it moves on to the next hop within the same attempt; only when every hop has failed
//! does the domain hear of a failure (the last one). It drives the pure [`ClientSession`] with the bytes
//! that come back, and sends the messages its domain container assigns, one transaction
//! at a time, reusing the connection for up to `max_messages_per_connection` messages.
//! Message data is read from the spool (on the pool) just before it is sent. Results go
//! to each message actor; the connection's own fate (and whether the next hop failed
//! before anything worked) goes to the domain when it closes.

mod hops;
pub mod messages;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use impulse_config::DomainCfg;
use impulse_runtime::alloc;
use impulse_runtime::io::{ConnEvent, ConnId, Credit, TlsInfo, TlsStart};
use impulse_runtime::registry::Registration;
use impulse_runtime::supervise::{contain, fault_point};
use impulse_runtime::ActorClass;
use impulse_smtp::client::{ClientEvent, ClientSession, ClientState, OutboundTx, TlsPolicy};

use crate::binding::Egress;
use crate::context::Shared;
use crate::dns::Hop;
use crate::domain::hops::HopKind;
use crate::domain::site::Slot;
use crate::domain::{ConnectionClosed, Domain, HandedOver, Leaving, Ready};
use crate::ids::MessageId;
use crate::logger::LoggedResponse;
use crate::message::{Begin, Defer, MessageActor, Outcome, Requeue};
use crate::spool::ReadData;
use crate::stats::Stats;
use impulse_smtp::client::RcptResult;
pub use messages::*;

/// How long an idle connection waits for another message before it quits.
const IDLE_LINGER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// Connected; greeting and EHLO under way.
    Greeting,
    Idle,
    Busy,
    Quitting,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Greeting => "greeting",
            Phase::Idle => "idle",
            Phase::Busy => "sending",
            Phase::Quitting => "quitting",
        }
    }
}

/// One SMTP client connection.
pub struct Outbound {
    shared: Arc<Shared>,
    reg: Registration,
    domain: Addr<Domain>,
    /// Where to connect, in order; `at` is the one in use.
    hops: Arc<[Hop]>,
    at: usize,
    addr: SocketAddr,
    cfg: DomainCfg,
    conn: Option<(ConnId, Credit)>,
    session: ClientSession,
    phase: Phase,
    current: Option<(MessageId, Addr<MessageActor>)>,
    sent: usize,
    /// The next hop answered a transaction: failures after this are not its fault.
    worked: bool,
    draining: bool,
    failure: Option<LoggedResponse>,
    last_activity: Instant,
    finished: bool,
    /// STARTTLS policy of this connection (Opportunistic becomes Disabled for a retry in
    /// plaintext after a failed handshake).
    tls_policy: TlsPolicy,
    /// What the handshake negotiated.
    tls: Option<TlsInfo>,
    /// The binding: source address and EHLO name.
    egress: Arc<Egress>,
    /// Why the transaction in flight was given up, for its deferral.
    lost: Option<String>,
    /// Its place among the site's open connections (given back when it stops).
    _slot: Option<Slot>,
    /// When the connection attempt, and the transaction in flight, started.
    connect_started: Instant,
    tx_started: Instant,
    /// What the hop did since the container last heard ([`HopEvent`]).
    hop_news: Vec<HopKind>,
}

impl Outbound {
    pub fn new(
        shared: Arc<Shared>,
        reg: Registration,
        domain: Addr<Domain>,
        hops: Arc<[Hop]>,
        cfg: DomainCfg,
        egress: Arc<Egress>,
    ) -> Outbound {
        assert!(!hops.is_empty(), "an outbound connection needs a next hop");
        let tls_policy = tls::policy(cfg.tls);
        let session = ClientSession::with_tls(egress.ehlo_name.clone(), tls_policy);
        let addr = hops[0].addr;
        Outbound {
            shared,
            reg,
            domain,
            hops,
            at: 0,
            addr,
            cfg,
            conn: None,
            session,
            phase: Phase::Connecting,
            current: None,
            sent: 0,
            worked: false,
            draining: false,
            failure: None,
            last_activity: Instant::now(),
            finished: false,
            tls_policy,
            tls: None,
            egress,
            lost: None,
            _slot: None,
            connect_started: Instant::now(),
            tx_started: Instant::now(),
            hop_news: Vec::new(),
        }
    }

    /// Hold `slot` (the site's count of open connections) for the connection's life.
    pub fn with_slot(mut self, slot: Slot) -> Outbound {
        self._slot = Some(slot);
        self
    }

    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        self.last_activity = Instant::now();
        self.reg.set_state(phase.name());
    }

    fn fail(&mut self, code: u16, enhanced: &str, text: String) {
        if !self.worked && self.failure.is_none() {
            self.failure = Some(LoggedResponse::new(code, Some(enhanced.into()), text));
        }
    }

    /// Connect to hop `self.at`.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        let hop = &self.hops[self.at];
        self.addr = hop.addr;
        if self.at > 0 {
            self.reg.set_detail(format!(
                "hop {} of {}: {}",
                self.at + 1,
                self.hops.len(),
                hop.name
            ));
        }
        let source = self.egress.source;
        let (conn, credit) = self
            .shared
            .io
            .connect(self.addr, source, ctx.address().recipient());
        self.conn = Some((conn, credit));
        self.connect_started = Instant::now();
        self.set_phase(Phase::Connecting);
    }

    fn flush(&mut self) {
        let out = self.session.take_output();
        if !out.is_empty() {
            if let Some((conn, _)) = &self.conn {
                self.shared.io.write(*conn, Bytes::from(out));
            }
        }
    }

    /// Act on everything the client session has to say.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::Ready => self.ready(ctx),
                ClientEvent::Done { id, outcome } => {
                    self.worked = true;
                    let accepted = outcome
                        .recipients
                        .iter()
                        .filter(|(_, r)| matches!(r, RcptResult::Delivered(_)))
                        .count();
                    let refused = outcome.recipients.iter().find_map(|(_, r)| match r {
                        RcptResult::Delivered(_) => None,
                        RcptResult::Transient(reply) | RcptResult::Permanent(reply) => {
                            Some(reply.to_string())
                        }
                    });
                    self.report(HopKind::Transaction {
                        ms: ms_since(self.tx_started),
                        accepted,
                        refused,
                    });
                    if let Some((cur, msg)) = self.current.take() {
                        debug_assert_eq!(cur.0, id);
                        msg.do_send(Outcome {
                            utf8_hops: self.other_exchangers(&outcome),
                            dsn_relayed: outcome.dsn_relayed,
                            results: outcome.recipients,
                            tls: self.tls.clone(),
                            peer: self.addr.to_string(),
                        });
                    }
                    self.sent += 1;
                }
                ClientEvent::Failed { reply, reason } => {
                    if self.phase == Phase::Greeting {
                        let why = match &reply {
                            Some(r) => format!("{r}"),
                            None => reason.clone(),
                        };
                        self.report(HopKind::Refused(why));
                    }
                    match &reply {
                        Some(r) => self.fail(r.code, "4.4.2", format!("{}: {reason}", r)),
                        None => self.fail(451, "4.4.2", reason),
                    }
                    // Refused at the greeting or EHLO: the next MX may take it.
                    if self.phase == Phase::Greeting && self.next_hop(ctx) {
                        return;
                    }
                    self.close();
                }
                ClientEvent::StartTls => {
                    if let Some((conn, _)) = &self.conn {
                        let hop = &self.hops[self.at];
                        let start = TlsStart::Client {
                            config: self.shared.generation().tls_clients.for_mode(self.cfg.tls),
                            name: tls::server_name(&hop.name, hop.addr.ip()),
                        };
                        self.shared.io.start_tls(*conn, start);
                    }
                }
                ClientEvent::Closed => self.close(),
            }
        }
        self.flush();
    }

    /// The session can take a message: announce it, or quit when done here.
    fn ready(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.sent >= self.cfg.max_messages_per_connection {
            self.send_hop_news();
            self.quit();
            return;
        }
        self.set_phase(Phase::Idle);
        let hop = self.take_hop_news();
        self.domain.do_send(Ready {
            conn: self.reg.id(),
            addr: ctx.address(),
            hop,
        });
    }

    fn quit(&mut self) {
        self.set_phase(Phase::Quitting);
        self.session.quit();
        self.flush();
    }

    fn close(&mut self) {
        if let Some((conn, _)) = &self.conn {
            self.shared.io.close(*conn);
        }
    }

    /// The connection is over: report what is unfinished and stop.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.send_hop_news();
        if let Some((_, msg)) = self.current.take() {
            msg.do_send(Defer {
                response: LoggedResponse::new(
                    451,
                    Some("4.4.2".into()),
                    self.lost.take().unwrap_or_else(|| {
                        format!("connection to {} lost during the transaction", self.addr)
                    }),
                ),
                peer: self.addr.to_string(),
                attempted: true,
            });
        }
        self.domain.do_send(ConnectionClosed {
            conn: self.reg.id(),
            failure: self.failure.take(),
            peer: self.addr.to_string(),
        });
        ctx.stop();
    }

    /// Give up on a connection that stopped answering.
    fn check_timeouts(&mut self, ctx: &mut Context<Self>) {
        let idle_for = self.last_activity.elapsed();
        let limit = match self.phase {
            Phase::Connecting => self.cfg.connect_timeout.get(),
            Phase::Idle => {
                if idle_for >= IDLE_LINGER {
                    self.domain.do_send(Leaving {
                        conn: self.reg.id(),
                    });
                    self.quit();
                }
                return;
            }
            // Before the 220 (RFC 5321 §4.5.3.2.1); after it, each EHLO/STARTTLS reply.
            Phase::Greeting if self.session.state() == ClientState::Greeting => {
                self.cfg.banner_timeout.get()
            }
            // Sending the data and waiting for the reply to the final dot.
            Phase::Busy if self.session.state() == ClientState::Body => self.cfg.data_timeout.get(),
            _ => self.cfg.command_timeout.get(),
        };
        if idle_for >= limit {
            if matches!(self.phase, Phase::Connecting | Phase::Greeting) && self.next_hop(ctx) {
                return;
            }
            let why = format!(
                "{} timed out after {:?} ({})",
                self.addr,
                limit,
                self.phase.name()
            );
            self.lost = Some(why.clone());
            self.fail(451, "4.4.2", why);
            if let Some((conn, _)) = &self.conn {
                self.shared.io.abort(*conn);
            }
            self.finish(ctx);
        }
    }

    /// Send the assigned message: take it from its actor, read its data, start the
    /// transaction.
    fn start(&mut self, id: MessageId, msg: Addr<MessageActor>, ctx: &mut Context<Self>) {
        self.set_phase(Phase::Busy);
        self.tx_started = Instant::now();
        self.current = Some((id, msg.clone()));
        let spool = self.shared.spool.clone();
        let fut = async move {
            let Ok(Some(tx)) = msg.send(Begin).await else {
                return Ok(None);
            };
            let data = spool.send(ReadData { id: tx.id }).await;
            match data {
                Ok(Ok(body)) => Ok(Some((tx, body))),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let _g = alloc::enter(ActorClass::Outbound);
            match res {
                Ok(Some((mut tx, body))) => {
                    // 8-bit content is declared (BODY=8BITMIME, RFC 6152) when the next
                    // hop offers it; the spool keeps no flag for it, the bytes tell.
                    tx.envelope.body_8bit = body.iter().any(|&b| b >= 0x80);
                    let tx = OutboundTx {
                        id: tx.id.0,
                        envelope: tx.envelope,
                        body,
                    };
                    if let Err(e) = act.session.send_message(tx) {
                        act.defer_current(format!("client session refused the message: {e:?}"));
                        act.ready(ctx);
                    }
                    act.drive(ctx);
                }
                Ok(None) => {
                    act.current = None;
                    act.ready(ctx);
                }
                Err(e) => {
                    act.defer_current(format!("cannot read the message from the spool: {e}"));
                    act.ready(ctx);
                }
            }
        }));
    }

    fn defer_current(&mut self, text: String) {
        if let Some((_, msg)) = self.current.take() {
            msg.do_send(Defer {
                response: LoggedResponse::new(451, Some("4.3.0".into()), text),
                peer: self.addr.to_string(),
                attempted: false,
            });
        }
    }
}

impl Actor for Outbound {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Outbound);
        self.connect(ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let _g = alloc::enter(ActorClass::Outbound);
            act.check_timeouts(ctx);
        });
    }

    /// `connections_out` counts open connections, like `connections_in`: the domain adds
    /// one when it starts a connection, the connection takes it back when it ends.
    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Stats::sub(&self.shared.stats.connections_out, 1);
    }
}

impl Handler<ConnEvent> for Outbound {
    type Result = ();

    fn handle(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| act.on_conn_event(ev, ctx));
    }
}

impl Outbound {
    /// Run a handler body with a panic contained: the connection is retired — dropped,
    /// its message deferred back to the queue (retried later), its domain told — and
    /// the panic counted. Not the next hop's fault, so it does not mark the hop down.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        let _g = alloc::enter(ActorClass::Outbound);
        let panics = self.shared.panics.clone();
        let done = contain("outbound connection", Some(&panics), || {
            fault_point("outbound");
            f(self, ctx)
        });
        if done.is_none() {
            if let Some((conn, _)) = &self.conn {
                self.shared.io.abort(*conn);
            }
            self.finish(ctx);
        }
    }

    fn on_conn_event(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        // Events of a hop given up on (its `Closed` after the abort) are stale.
        if self.conn.as_ref().map(|(c, _)| *c) != Some(ev.conn()) {
            return;
        }
        match ev {
            ConnEvent::Connected { .. } => {
                self.report(HopKind::Connected(ms_since(self.connect_started)));
                self.set_phase(Phase::Greeting);
            }
            ConnEvent::ConnectFailed { error, .. } => {
                self.report(HopKind::Refused(format!("connect: {error}")));
                self.fail(
                    451,
                    "4.4.1",
                    format!("connection to {} failed: {error}", self.addr),
                );
                if !self.next_hop(ctx) {
                    self.finish(ctx);
                }
            }
            ConnEvent::Data { bytes, .. } => {
                self.last_activity = Instant::now();
                self.session.ingest(&bytes);
                if let Some((_, credit)) = &self.conn {
                    credit.consumed(bytes.len());
                }
                self.drive(ctx);
            }
            ConnEvent::TlsReady { info, .. } => {
                self.last_activity = Instant::now();
                self.tls = Some(info);
                self.session.tls_started();
                self.drive(ctx);
            }
            ConnEvent::ReadClosed { .. } => {
                // The server shut its side: nothing more will be answered. Close; the
                // `Closed` that follows (`PeerClosed`) finishes the connection.
                self.close();
            }
            ConnEvent::Closed { reason, .. } => {
                let handshaking =
                    self.session.state() == impulse_smtp::client::ClientState::StartTls;
                if handshaking && self.phase == Phase::Greeting {
                    if self.tls_failed(&format!("{reason:?}"), ctx) {
                        return;
                    }
                    self.finish(ctx);
                    return;
                }
                if self.phase != Phase::Quitting {
                    self.fail(
                        451,
                        "4.4.2",
                        format!("connection to {} closed: {reason:?}", self.addr),
                    );
                }
                self.finish(ctx);
            }
        }
    }
}

impl Handler<Assign> for Outbound {
    type Result = ();

    fn handle(&mut self, msg: Assign, ctx: &mut Context<Self>) {
        if self.phase != Phase::Idle || self.finished {
            msg.msg.do_send(Requeue);
            return;
        }
        // After it, nothing more: the ready that follows becomes a QUIT.
        self.draining |= msg.last;
        self.guarded(ctx, move |act, ctx| act.start(msg.id, msg.msg, ctx));
    }
}

impl Handler<Adopt> for Outbound {
    type Result = ();

    fn handle(&mut self, a: Adopt, ctx: &mut Context<Self>) {
        if self.phase != Phase::Idle || self.finished {
            a.msg.do_send(Requeue);
            return;
        }
        let old = std::mem::replace(&mut self.domain, a.domain);
        old.do_send(HandedOver {
            conn: self.reg.id(),
        });
        self.reg.set_parent(a.parent);
        self.cfg = a.cfg;
        self.guarded(ctx, move |act, ctx| act.start(a.id, a.msg, ctx));
    }
}

impl Handler<Drain> for Outbound {
    type Result = ();

    fn handle(&mut self, _: Drain, _ctx: &mut Context<Self>) {
        self.draining = true;
        if self.phase == Phase::Idle {
            self.domain.do_send(Leaving {
                conn: self.reg.id(),
            });
            self.quit();
        }
    }
}

/// Milliseconds since `t`, saturating.
fn ms_since(t: Instant) -> u32 {
    t.elapsed().as_millis().min(u32::MAX as u128) as u32
}
