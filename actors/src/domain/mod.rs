//! The domain container: one actor per destination domain.
//!
//! It owns the domain's active queue (messages ready now) and delayed queue (messages
//! waiting for their retry time), its outbound connections (at most `max_connections`,
//! each reused for up to `max_messages_per_connection` messages) and the message actors
//! of its messages. The scheduler moves message ids, never bodies: an idle connection
//! says [`Ready`](messages::Ready) and is assigned the next id; the message actor reports
//! [`Finished`](messages::Finished) with a retry time or none.
//!
//! Next hops come from the static `routes`; a domain without one defers its messages
//! with a clear reason (MX lookup comes later) — nothing is dropped.

pub mod backoff;
pub mod messages;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use impulse_config::DomainCfg;
use impulse_runtime::alloc;
use impulse_runtime::control::QueueRow;
use impulse_runtime::registry::{ActorId, Registration};
use impulse_runtime::supervise::guard;
use impulse_runtime::ActorClass;

use crate::context::Shared;
use crate::ids::{now_ms, MessageId};
use crate::logger::LoggedResponse;
use crate::message::{Defer, MessageActor, Wake};
use crate::outbound::{Assign, Outbound};
use crate::stats::Stats;
pub use messages::*;

/// How the domain reaches its next hop.
#[derive(Debug, Clone)]
enum NextHop {
    Static(SocketAddr),
    /// No route and no MX lookup yet: the reason messages are deferred.
    None(String),
}

/// One destination domain.
pub struct Domain {
    name: String,
    shared: Arc<Shared>,
    reg: Registration,
    cfg: DomainCfg,
    hop: NextHop,
    messages: HashMap<MessageId, Addr<MessageActor>>,
    active: VecDeque<MessageId>,
    delayed: BTreeSet<(Instant, MessageId)>,
    in_flight: usize,
    connections: HashMap<ActorId, Addr<Outbound>>,
    /// Connections that have not been ready yet.
    connecting: HashSet<ActorId>,
    idle: Vec<(ActorId, Addr<Outbound>)>,
    timer: Option<(Instant, SpawnHandle)>,
    /// After a connection failure: no new attempt before this time; messages that
    /// become active meanwhile are deferred with the failure's response.
    hop_down: Option<(Instant, LoggedResponse, String)>,
    /// Shutting down: open nothing, assign nothing, let connections quit.
    draining: bool,
    finished: u64,
    deferred: u64,
}

impl Domain {
    pub fn new(name: String, shared: Arc<Shared>, reg: Registration) -> Domain {
        let cfg = shared.config.domain(&name);
        let hop = match shared.config.route(&name) {
            Some(route) => match route.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(addr)) => NextHop::Static(addr),
                _ => NextHop::None(format!("route {route} for {name} does not resolve")),
            },
            None => NextHop::None(format!(
                "no route for {name}: MX lookup is not implemented yet; add a route"
            )),
        };
        Domain {
            name,
            shared,
            reg,
            cfg,
            hop,
            messages: HashMap::new(),
            active: VecDeque::new(),
            delayed: BTreeSet::new(),
            in_flight: 0,
            connections: HashMap::new(),
            connecting: HashSet::new(),
            idle: Vec::new(),
            timer: None,
            hop_down: None,
            draining: false,
            finished: 0,
            deferred: 0,
        }
    }

    fn state_name(&self) -> &'static str {
        if self.draining {
            "draining"
        } else if matches!(self.hop, NextHop::None(_)) {
            "no-route"
        } else if !self.connections.is_empty() {
            "delivering"
        } else if !self.active.is_empty() {
            "active"
        } else if !self.delayed.is_empty() {
            "backoff"
        } else {
            "idle"
        }
    }

    fn update_registry(&self) {
        self.reg.set_state(self.state_name());
        self.reg.set_mailbox(self.active.len());
    }

    /// Hand active messages to idle connections, then open connections while there is
    /// more work than connections and the limit allows.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            self.update_registry();
            return;
        }
        if let Some((until, response, peer)) = &self.hop_down {
            if Instant::now() < *until {
                let (response, peer) = (response.clone(), peer.clone());
                self.defer_active(response, peer, false);
                self.update_registry();
                return;
            }
            self.hop_down = None;
        }
        let addr = match &self.hop {
            NextHop::Static(addr) => *addr,
            NextHop::None(reason) => {
                let response = LoggedResponse::new(451, Some("4.4.4".into()), reason.clone());
                self.defer_active(response, String::new(), false);
                return;
            }
        };
        while !self.active.is_empty() {
            let Some((_, out)) = self.idle.pop() else {
                break;
            };
            if !out.connected() {
                continue;
            }
            let Some(id) = self.active.pop_front() else {
                break;
            };
            if let Some(msg) = self.messages.get(&id) {
                self.in_flight += 1;
                out.do_send(Assign {
                    id,
                    msg: msg.clone(),
                });
            }
        }
        // Each connection still being set up will take one message when it is ready.
        while self.active.len() > self.connecting.len()
            && self.connections.len() < self.cfg.max_connections
        {
            let reg = Registration::new(
                &self.shared.registry,
                ActorClass::Outbound,
                addr.to_string(),
                Some(self.reg.id()),
            );
            let id = reg.id();
            let out = Outbound::new(
                self.shared.clone(),
                reg,
                ctx.address(),
                addr,
                self.cfg.clone(),
            )
            .start();
            self.connections.insert(id, out);
            self.connecting.insert(id);
            Stats::add(&self.shared.stats.connections_out, 1);
        }
        self.update_registry();
    }

    /// Run a handler body under `supervise::guard` with allocations counted as the
    /// domain class: a panic restarts the container (see `Supervised for Domain`)
    /// instead of leaving it dead.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        let _g = alloc::enter(ActorClass::Domain);
        let panics = self.shared.panics.clone();
        guard(self, ctx, "domain container", Some(&panics), f);
    }

    /// Defer every message in the active queue (next hop unusable).
    fn defer_active(&mut self, response: LoggedResponse, peer: String, attempted: bool) {
        for id in self.active.drain(..) {
            if let Some(msg) = self.messages.get(&id) {
                self.in_flight += 1;
                msg.do_send(Defer {
                    response: response.clone(),
                    peer: peer.clone(),
                    attempted,
                });
            }
        }
    }

    /// Arm the timer for the earliest delayed message.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(&(due, _)) = self.delayed.first() else {
            if let Some((_, h)) = self.timer.take() {
                ctx.cancel_future(h);
            }
            return;
        };
        if let Some((at, h)) = self.timer {
            if at <= due {
                return;
            }
            ctx.cancel_future(h);
        }
        let wait = due.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(wait, |act, ctx| {
            let _g = alloc::enter(ActorClass::Domain);
            act.timer = None;
            act.promote_due();
            act.arm_timer(ctx);
            act.dispatch(ctx);
        });
        self.timer = Some((due, handle));
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        while let Some(&(due, id)) = self.delayed.first() {
            if due > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(msg) = self.messages.get(&id) {
                msg.do_send(Wake);
                self.active.push_back(id);
            }
        }
    }
}

impl Actor for Domain {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        // Also runs after a supervised restart: pick the queues up where they are.
        self.arm_timer(ctx);
        self.dispatch(ctx);
        self.update_registry();
    }
}

impl Supervised for Domain {
    /// A handler panicked (see `supervise::guard`). The queues and the message actors
    /// survive in the struct; the old context's timer did not.
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.timer = None;
        self.reg.set_state("restarting");
    }
}

impl Handler<Enqueue> for Domain {
    type Result = ();

    fn handle(&mut self, Enqueue(spooled): Enqueue, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            let id = spooled.meta.id;
            let reg = Registration::new(
                &act.shared.registry,
                ActorClass::Message,
                id.to_string(),
                Some(act.reg.id()),
            );
            // A message deferred before a restart waits for its noted retry time.
            let wait = spooled
                .retry
                .map(|r| r.retry_at.saturating_sub(now_ms()))
                .filter(|ms| *ms > 0);
            let msg = MessageActor::new(
                act.shared.clone(),
                reg,
                ctx.address(),
                act.cfg.clone(),
                spooled,
                wait.is_some(),
            )
            .start();
            act.messages.insert(id, msg);
            match wait {
                Some(ms) => {
                    act.delayed
                        .insert((Instant::now() + Duration::from_millis(ms), id));
                    act.arm_timer(ctx);
                }
                None => act.active.push_back(id),
            }
            act.dispatch(ctx);
        });
    }
}

impl Handler<Ready> for Domain {
    type Result = ();

    fn handle(&mut self, msg: Ready, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            act.connecting.remove(&msg.conn);
            act.idle.retain(|(id, _)| *id != msg.conn);
            act.idle.push((msg.conn, msg.addr));
            act.dispatch(ctx);
        });
    }
}

impl Handler<Release> for Domain {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            if act.messages.contains_key(&msg.id) {
                act.in_flight = act.in_flight.saturating_sub(1);
                act.active.push_front(msg.id);
            }
            act.dispatch(ctx);
        });
    }
}

impl Handler<Leaving> for Domain {
    type Result = ();

    fn handle(&mut self, msg: Leaving, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, _| {
            act.idle.retain(|(id, _)| *id != msg.conn);
        });
    }
}

impl Handler<ConnectionClosed> for Domain {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            act.connections.remove(&msg.conn);
            act.connecting.remove(&msg.conn);
            act.idle.retain(|(id, _)| *id != msg.conn);
            if let Some(response) = msg.failure {
                // The next hop is unusable now: everything waiting for it retries later,
                // unless another connection to it is still working. Connections still being
                // set up do not count: they would be replaced as they fail, one after the
                // other, and the active queue would never be deferred (a connect storm).
                let working = act
                    .connections
                    .keys()
                    .any(|id| !act.connecting.contains(id));
                if !working {
                    act.defer_active(response.clone(), msg.peer.clone(), true);
                    let until = Instant::now() + act.cfg.retry_interval.get();
                    act.hop_down = Some((until, response, msg.peer));
                }
            }
            act.dispatch(ctx);
        });
    }
}

impl Handler<Finished> for Domain {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            act.in_flight = act.in_flight.saturating_sub(1);
            match msg.retry_at {
                None => {
                    if act.messages.remove(&msg.id).is_some() {
                        act.finished += 1;
                    }
                }
                Some(at) => {
                    act.deferred += 1;
                    act.delayed.insert((at, msg.id));
                    act.arm_timer(ctx);
                }
            }
            act.update_registry();
        });
    }
}

impl Handler<Drain> for Domain {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, _| {
            act.draining = true;
            act.idle.clear();
            for conn in act.connections.values() {
                conn.do_send(crate::outbound::Drain);
            }
            act.update_registry();
        });
    }
}

impl Handler<QueueInfo> for Domain {
    type Result = MessageResult<QueueInfo>;

    fn handle(&mut self, _: QueueInfo, _ctx: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        MessageResult(QueueRow {
            domain: self.name.clone(),
            active: self.active.len(),
            delayed: self.delayed.len(),
            in_flight: self.in_flight,
            connections: self.connections.len(),
            max_connections: self.cfg.max_connections,
            state: self.state_name().to_string(),
            next_retry_secs: self
                .delayed
                .first()
                .map(|(due, _)| due.saturating_duration_since(now).as_secs()),
            finished: self.finished,
            deferred: self.deferred,
        })
    }
}
