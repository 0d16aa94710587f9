//! The domain container: one actor per destination domain.
//!
//! It owns the domain's active queue (messages ready now) and delayed queue (messages
//! waiting for their retry time), both holding compact [`QueuedMessage`] records — no
//! actor, no body — and its outbound connections (at most `max_connections`, each
//! reused for up to `max_messages_per_connection` messages). When an idle connection
//! says [`Ready`](messages::Ready), the next record is woken into a [`MessageActor`]
//! (on this container's arbiter) and assigned; the actor reports
//! [`Finished`](messages::Finished) with the record back (it hibernates in the delayed
//! queue) or without (the message is gone). While the next hop is down, messages that
//! come due are deferred in place, without waking them.
//!
//! Next hops: a static `routes` entry (an address, or a host name resolved like an MX
//! host), else the domain's MX records through the resolver actor ([`crate::dns`]):
//! the container asks once, keeps the ordered hops for their TTL, and hands them to
//! each new connection, which tries them in order. A domain that cannot receive mail
//! (NXDOMAIN, null MX) fails its messages permanently; a DNS failure defers them.

pub mod backoff;
mod connections;
mod detail;
mod dispatch;
pub mod hops;
pub mod messages;
mod pinned;
mod reconfigure;
pub mod search;
pub mod site;
pub mod throttle;
pub mod window;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use impulse_config::DomainCfg;
use impulse_runtime::alloc;
use impulse_runtime::registry::{ActorId, Name, Registration};
use impulse_runtime::supervise::guard;
use impulse_runtime::ActorClass;

use crate::binding::{self, Egress};
use crate::context::Shared;
use crate::dns::{Hop, Resolution, Resolve, Resolved, Target};
use crate::ids::{now_ms, MessageId};
use crate::logger::{self, LoggedResponse};
use crate::message::settle::{settle, Verdict};
use crate::message::{Apply, MessageActor};
use crate::outbound::Outbound;
use crate::queued::QueuedMessage;
use crate::spool::journal::RetryState;
use crate::spool::NoteRetry;
use crate::stats::Stats;
pub use messages::*;
pub use reconfigure::Reconfigure;
use site::Site;

/// How the domain reaches its next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NextHop {
    /// A static route to an address.
    Static(Arc<[Hop]>),
    /// Ask the resolver (MX lookup, or the host name of a static route).
    Lookup(Target),
}

/// One destination domain.
pub struct Domain {
    name: Arc<str>,
    shared: Arc<Shared>,
    reg: Registration,
    cfg: DomainCfg,
    /// The configuration generation `cfg`, `egress` and `hop` come from.
    generation: u64,
    /// The binding named in the queue key (kept even if a reload drops it).
    binding: Option<Arc<str>>,
    /// The binding its connections send from.
    egress: Arc<Egress>,
    hop: NextHop,
    /// The last resolution's hops, until they expire.
    resolved: Option<(Instant, Arc<[Hop]>)>,
    /// A `Resolve` is on its way.
    resolving: bool,
    active: VecDeque<QueuedMessage>,
    /// By (next attempt in ms since the epoch, id).
    delayed: BTreeMap<(u64, MessageId), QueuedMessage>,
    /// Messages woken into actors (assigned to a connection, or settling).
    in_flight: HashMap<MessageId, Addr<MessageActor>>,
    connections: HashMap<ActorId, Addr<Outbound>>,
    /// Connections that have not been ready yet.
    connecting: HashSet<ActorId>,
    idle: Vec<(ActorId, Addr<Outbound>)>,
    /// Messages for hops of their own, and the connections opened for them
    /// ([`pinned`]).
    pinned: VecDeque<(QueuedMessage, Arc<[Hop]>)>,
    dedicated: HashMap<ActorId, QueuedMessage>,
    timer: Option<(u64, SpawnHandle)>,
    /// After a connection failure: no new attempt before this time; messages that
    /// become active meanwhile are deferred with the failure's response.
    hop_down: Option<(Instant, LoggedResponse, String)>,
    /// The site its hops belong to (shared connections and limits, [`site`]), and the
    /// hops it was computed for.
    site: Option<(Arc<[Hop]>, Arc<Site>)>,
    /// A dispatch is scheduled for when a throttle admits again.
    throttle_wake: Option<SpawnHandle>,
    /// Suspended by the operator: nothing is assigned or opened (see [`crate::suspend`]).
    suspended: bool,
    /// Shutting down: open nothing, assign nothing, let connections quit.
    draining: bool,
    finished: u64,
    deferred: u64,
    /// Messages finished and deferred over the last minute.
    finished_window: window::Window,
    deferred_window: window::Window,
    /// The last failure the next hop or the DNS gave (`impulsectl queues`).
    last_error: Option<Box<str>>,
    /// Each hop's recent history (`impulsectl domain`).
    hop_stats: hops::HopTable,
}

impl Domain {
    /// The container of queue `key`: a domain, or `BINDING/DOMAIN` ([`binding`]).
    pub fn new(key: String, shared: Arc<Shared>, reg: Registration) -> Domain {
        let (binding_name, name) = binding::split_key(&key);
        let generation = shared.generation();
        let config = &generation.config;
        let egress = Egress::of(config, binding_name);
        if binding_name.is_some() && egress.name.is_none() {
            eprintln!(
                "domain {key}: binding {binding_name:?} is not configured any more; \
                 sending from the system's own address"
            );
        }
        let name = name.to_string();
        let cfg = config.domain(&name);
        let hop = next_hop(&name, config.route(&name));
        Domain {
            name: name.into(),
            egress: Arc::new(egress),
            shared,
            reg,
            cfg,
            generation: generation.number,
            binding: binding_name.map(Arc::from),
            hop,
            resolved: None,
            resolving: false,
            active: VecDeque::new(),
            delayed: BTreeMap::new(),
            in_flight: HashMap::new(),
            connections: HashMap::new(),
            connecting: HashSet::new(),
            idle: Vec::new(),
            pinned: VecDeque::new(),
            dedicated: HashMap::new(),
            timer: None,
            hop_down: None,
            site: None,
            throttle_wake: None,
            suspended: false,
            draining: false,
            finished: 0,
            deferred: 0,
            finished_window: Default::default(),
            deferred_window: Default::default(),
            last_error: None,
            hop_stats: Default::default(),
        }
    }

    fn state_name(&self) -> &'static str {
        if self.draining {
            "draining"
        } else if self.suspended {
            "suspended"
        } else if self.resolving {
            "resolving"
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

    /// Ask the resolver for the next hops; the answer dispatches again, or settles the
    /// active messages when there are no hops.
    fn resolve(&mut self, target: Target, ctx: &mut Context<Self>) {
        if self.resolving {
            return;
        }
        self.resolving = true;
        self.update_registry();
        let ask = self.shared.resolver.send(Resolve(target));
        ctx.spawn(ask.into_actor(self).map(|answer, act, ctx| {
            let _g = alloc::enter(ActorClass::Domain);
            act.resolving = false;
            let Resolved { resolution, until } = answer.unwrap_or_else(|e| Resolved {
                resolution: Resolution::Temporary(LoggedResponse::new(
                    451,
                    Some("4.4.3".into()),
                    format!("the resolver is unavailable: {e}"),
                )),
                until: Instant::now(),
            });
            match resolution {
                Resolution::Hops(hops) => {
                    act.resolved = Some((until, hops));
                    act.dispatch(ctx);
                }
                // The lookup was this attempt: it counts in `attempts`.
                Resolution::Permanent(response) => {
                    act.settle_active(Verdict::Permanent, response, true, ctx);
                }
                Resolution::Temporary(response) => {
                    // Like a next hop that is down: these and the messages that come
                    // due before `until` wait for their next attempt.
                    act.settle_active(Verdict::Transient, response.clone(), true, ctx);
                    let until = until.max(Instant::now() + Duration::from_secs(1));
                    act.hop_down = Some((until, response, String::new()));
                }
            }
            act.update_registry();
        }));
    }

    /// Run a handler body under `supervise::guard` with allocations counted as the
    /// domain class: a panic restarts the container (see `Supervised for Domain`)
    /// instead of leaving it dead.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        let _g = alloc::enter(ActorClass::Domain);
        let panics = self.shared.panics.clone();
        guard(self, ctx, "domain container", Some(&panics), f);
    }

    /// Start the actor of a queued message (on this arbiter) and count it in flight.
    fn wake(&mut self, msg: QueuedMessage, ctx: &Context<Self>) -> Addr<MessageActor> {
        let _g = alloc::enter(ActorClass::Message);
        let id = msg.id;
        let actor = MessageActor::new(
            self.shared.clone(),
            ctx.address(),
            self.name.clone(),
            self.cfg.clone(),
            msg,
        )
        .start();
        self.in_flight.insert(id, actor.clone());
        actor
    }

    /// Defer every message in the active queue (next hop unusable), in place: each
    /// pending recipient gets a TransientFailure record and the record goes back to the
    /// delayed queue (with the timer armed for it). Only a message that expires with it
    /// is woken, to finish.
    fn defer_active(
        &mut self,
        response: LoggedResponse,
        peer: String,
        attempted: bool,
        ctx: &mut Context<Self>,
    ) {
        self.settle_active_with(Verdict::Transient, response, peer, attempted, ctx);
    }

    /// Settle every pending recipient of the active queue with `verdict` (a DNS answer
    /// that leaves no next hop), without a connection.
    fn settle_active(
        &mut self,
        verdict: Verdict,
        response: LoggedResponse,
        attempted: bool,
        ctx: &mut Context<Self>,
    ) {
        self.settle_active_with(verdict, response, String::new(), attempted, ctx);
    }

    fn settle_active_with(
        &mut self,
        verdict: Verdict,
        response: LoggedResponse,
        peer: String,
        attempted: bool,
        ctx: &mut Context<Self>,
    ) {
        let now = now_ms();
        self.last_error = Some(response.line().into());
        let mut records = Vec::new();
        for mut msg in std::mem::take(&mut self.active) {
            msg.attempts += attempted as u32;
            let results = msg
                .pending()
                .map(|(i, _)| (i, verdict, response.clone()))
                .collect();
            let s = settle(&msg, &self.name, &self.cfg, results, &peer, now);
            // Woken to finish, or to send its delay report.
            if s.finished || !s.delay_report.is_empty() {
                let actor = self.wake(msg, ctx);
                actor.do_send(Apply(s));
                continue;
            }
            Stats::add(&self.shared.stats.deferred, s.counts[2]);
            crate::bounce::settled_quietly(&msg, self.shared.bouncer.get());
            records.extend(s.records);
            msg.retry_at = s.retry_at;
            if let Some(last) = &s.last_transient {
                msg.envelope.set_last_response(last);
            }
            self.shared.spool.do_send(NoteRetry {
                id: msg.id,
                state: RetryState {
                    attempts: msg.attempts,
                    retry_at: msg.retry_at,
                    delay_warned: msg.envelope.delay_warned(),
                },
            });
            self.deferred += 1;
            self.deferred_window.add(now, 1);
            self.hibernate(msg);
        }
        if !records.is_empty() {
            actix::spawn(logger::write(self.shared.logger.clone(), records, false));
        }
        self.arm_timer(ctx);
    }

    /// Put a record in the delayed queue.
    fn hibernate(&mut self, msg: QueuedMessage) {
        let _g = alloc::enter(ActorClass::Message);
        msg.set_state("hibernating");
        self.delayed.insert((msg.retry_at, msg.id), msg);
    }

    /// Queue a record: active if due, delayed otherwise.
    fn queue(&mut self, mut msg: QueuedMessage) {
        let _g = alloc::enter(ActorClass::Message);
        if msg.reg.is_none() {
            msg.reg = Some(Registration::new(
                &self.shared.registry,
                ActorClass::Message,
                Name::Hex(msg.id.0),
                Some(self.reg.id()),
            ));
        }
        if msg.retry_at > now_ms() {
            self.hibernate(msg);
        } else {
            msg.set_state("queued");
            self.active.push_back(msg);
        }
    }

    /// Arm the timer for the earliest delayed message.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let Some((&(due, _), _)) = self.delayed.first_key_value() else {
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
        let wait = Duration::from_millis(due.saturating_sub(now_ms()));
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
        let now = now_ms();
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let msg = entry.remove();
            msg.set_state("queued");
            self.active.push_back(msg);
        }
    }
}

/// The next hop of `domain`: its static route (an address, or a host to resolve), else
/// its MX records.
fn next_hop(domain: &str, route: Option<&str>) -> NextHop {
    let Some(route) = route else {
        return NextHop::Lookup(Target::Mx(domain.to_string()));
    };
    if let Ok(addr) = route.parse::<SocketAddr>() {
        let hop = Hop {
            name: addr.ip().to_string().into(),
            preference: 0,
            addr,
        };
        return NextHop::Static(Arc::from(vec![hop]));
    }
    match route.parse::<impulse_config::HostPort>() {
        Ok(hp) => match hp.host().parse::<std::net::IpAddr>() {
            Ok(ip) => next_hop(domain, Some(&SocketAddr::new(ip, hp.port()).to_string())),
            Err(_) => NextHop::Lookup(Target::Host(hp.host().to_string(), hp.port())),
        },
        // The config loader refuses such a route; if one gets here, look the domain up.
        Err(_) => NextHop::Lookup(Target::Mx(domain.to_string())),
    }
}

impl Actor for Domain {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        self.reg.placed();
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
        self.throttle_wake = None;
        self.reg.set_state("restarting");
    }
}

impl Handler<Enqueue> for Domain {
    type Result = ();

    fn handle(&mut self, Enqueue(msg): Enqueue, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            act.queue(msg);
            act.arm_timer(ctx);
            act.dispatch(ctx);
        });
    }
}

impl Handler<EnqueueMany> for Domain {
    type Result = ();

    fn handle(&mut self, EnqueueMany(list): EnqueueMany, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            for msg in list {
                act.queue(msg);
            }
            act.arm_timer(ctx);
            act.dispatch(ctx);
        });
    }
}

impl Handler<Wake> for Domain {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| {
            // A new suspension's end may come sooner than the pending wake-up.
            if let Some(h) = act.throttle_wake.take() {
                ctx.cancel_future(h);
            }
            act.dispatch(ctx);
        });
    }
}

impl Handler<FlushDelayed> for Domain {
    type Result = usize;

    fn handle(&mut self, _: FlushDelayed, ctx: &mut Context<Self>) -> usize {
        let mut n = 0;
        self.guarded(ctx, |act, ctx| {
            n = act.delayed.len();
            act.hop_down = None;
            for (_, mut msg) in std::mem::take(&mut act.delayed) {
                msg.retry_at = 0;
                msg.set_state("queued");
                act.active.push_back(msg);
            }
            act.arm_timer(ctx);
            act.dispatch(ctx);
        });
        n
    }
}

impl Handler<Finished> for Domain {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            act.in_flight.remove(&msg.id);
            match (msg.msg, msg.hops) {
                (None, _) => {
                    act.finished += 1;
                    act.finished_window.add(now_ms(), 1);
                }
                (Some(m), Some(hops)) => {
                    act.pin(m, hops);
                    act.dispatch(ctx);
                }
                (Some(m), None) if msg.requeue => {
                    m.set_state("queued");
                    act.active.push_front(m);
                    act.dispatch(ctx);
                }
                (Some(m), None) => {
                    act.deferred += 1;
                    act.deferred_window.add(now_ms(), 1);
                    if let Some(last) = m.envelope.last_response() {
                        act.last_error = Some((*last).into());
                    }
                    act.hibernate(m);
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
