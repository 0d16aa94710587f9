//! The control actor: serves `impulsectl` on the Unix control socket.
//!
//! The I/O actor owns the socket (mode 0600) and delivers each client's bytes here. A
//! client sends one JSON [`Request`] line; the actor answers with one JSON [`Response`]
//! line and closes. Answers come from the registry, the allocator, the pools, the
//! counters and the domain containers; `shutdown` is forwarded to the root. Answers are
//! encoded on the pool and written in chunks as the connection drains ([`reply`]), so a
//! listing of any length arrives whole.

pub mod messages;
mod query;
mod reply;

use reply::To;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use impulse_runtime::alloc;
use impulse_runtime::control::{QueueRow, Request, Response, StatusReport, MAX_LINE};
use impulse_runtime::io::{Accepted, ConnEvent, ConnId, Credit};
use impulse_runtime::registry::{Registration, TreeOptions};
use impulse_runtime::supervise::{fault_point, guard};
use impulse_runtime::ActorClass;

use crate::context::Shared;
use crate::domain::{AdminBounce, DomainInfo, FlushDelayed, QueueInfo};
use crate::ids::MessageId;
use crate::router::Router;
use crate::stats::Stats;
pub use messages::*;

struct Client {
    buf: Vec<u8>,
    credit: Credit,
    answered: bool,
}

/// The control-socket server.
pub struct Control {
    shared: Arc<Shared>,
    reg: Registration,
    router: Arc<Router>,
    shutdown: Recipient<Shutdown>,
    reload: Recipient<crate::root::Reload>,
    clients: HashMap<ConnId, Client>,
    /// Answers being written out, chunk by chunk.
    outgoing: Vec<reply::Outgoing>,
    /// A pump wake-up is scheduled.
    pumping: bool,
    /// Rate samples, one a second for the last minute: when, received, delivered.
    samples: std::collections::VecDeque<(Instant, u64, u64)>,
    /// Per second over the last second, and over the last minute.
    rates: (f64, f64),
    rates_1m: (f64, f64),
}

impl Control {
    pub fn new(
        shared: Arc<Shared>,
        reg: Registration,
        router: Arc<Router>,
        shutdown: Recipient<Shutdown>,
        reload: Recipient<crate::root::Reload>,
    ) -> Control {
        Control {
            shared,
            reg,
            router,
            shutdown,
            reload,
            clients: HashMap::new(),
            outgoing: Vec::new(),
            pumping: false,
            samples: std::collections::VecDeque::from([(Instant::now(), 0, 0)]),
            rates: (0.0, 0.0),
            rates_1m: (0.0, 0.0),
        }
    }

    fn sample_rates(&mut self) {
        let now = Instant::now();
        let received = Stats::get(&self.shared.stats.received);
        let delivered = Stats::get(&self.shared.stats.delivered);
        let rate = |from: (Instant, u64, u64)| {
            let secs = now.duration_since(from.0).as_secs_f64();
            if secs <= 0.0 {
                return (0.0, 0.0);
            }
            (
                received.saturating_sub(from.1) as f64 / secs,
                delivered.saturating_sub(from.2) as f64 / secs,
            )
        };
        if let Some(&last) = self.samples.back() {
            self.rates = rate(last);
        }
        if let Some(&first) = self.samples.front() {
            self.rates_1m = rate(first);
        }
        self.samples.push_back((now, received, delivered));
        while self.samples.len() > 61 {
            self.samples.pop_front();
        }
    }

    fn answer(&mut self, to: To, request: Result<Request, String>, ctx: &mut Context<Self>) {
        let request = match request {
            Ok(r) => r,
            Err(e) => return self.reply(to, move || Response::Error { message: e }, ctx),
        };
        match request {
            Request::Tree {
                depth,
                class,
                all,
                arbiter,
            } => {
                // Built on the pool: with a million messages this is real work.
                let registry = self.shared.registry.clone();
                self.reply(
                    to,
                    move || {
                        let (view, total) = registry.tree(TreeOptions {
                            depth,
                            class,
                            all,
                            arbiter,
                        });
                        Response::Tree {
                            text: view.text,
                            actors: view.drawn,
                            total,
                        }
                    },
                    ctx,
                )
            }
            Request::Memory => {
                let mut report = alloc::snapshot();
                self.reply(
                    to,
                    move || {
                        report.rss_bytes = alloc::rss_bytes();
                        Response::Memory(report)
                    },
                    ctx,
                )
            }
            Request::Pools => {
                let pools = vec![self.shared.pool.stats()];
                let registry = self.shared.registry.clone();
                let placing = self.shared.arbiters.len();
                let started = self.shared.arbiters.started();
                let gauges = self.shared.arbiters.gauges();
                self.reply(
                    to,
                    move || {
                        let counts = registry.count_by_arbiter();
                        let arbiters = (0..started.max(placing))
                            .map(|i| {
                                let (actors, queued) =
                                    counts.get(&(i as u8)).copied().unwrap_or((0, 0));
                                let g = gauges.get(i).copied().unwrap_or_default();
                                impulse_runtime::control::ArbiterStats {
                                    index: i as u8,
                                    actors,
                                    queued,
                                    lag_us: g.lag_us,
                                    worst_lag_us: g.worst_lag_us,
                                    turns: g.turns,
                                    mean_turn_us: if g.turns == 0 {
                                        0.0
                                    } else {
                                        g.busy_ns as f64 / g.turns as f64 / 1000.0
                                    },
                                    busy_pct: g.busy_pct,
                                    placing: i < placing,
                                }
                            })
                            .collect();
                        Response::Pools { pools, arbiters }
                    },
                    ctx,
                )
            }
            Request::Shutdown => {
                // The answer is written before the root hears of it: an idle daemon
                // stops within milliseconds, and the client must still get its line.
                let message = "shutting down".to_string();
                self.reply_now(to, Response::Ok { message }, ctx);
                self.shutdown.do_send(Shutdown {
                    reason: "impulsectl shutdown".into(),
                });
            }
            Request::Message { id } => self.message(to, id, ctx),
            Request::Find {
                sender,
                recipient,
                domain,
                state,
                limit,
            } => {
                let filter = crate::domain::search::Filter {
                    sender,
                    recipient,
                    state,
                    limit: limit
                        .unwrap_or(query::DEFAULT_LIMIT)
                        .clamp(1, query::MAX_LIMIT),
                };
                self.find(to, filter, domain, ctx)
            }
            Request::Reload => {
                let fut = self.reload.send(crate::root::Reload);
                ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
                    let response = match res {
                        Ok(Ok(message)) => Response::Ok { message },
                        Ok(Err(why)) => Response::Error {
                            message: format!("reload refused: {why}"),
                        },
                        Err(e) => Response::Error {
                            message: format!("the root did not answer: {e}"),
                        },
                    };
                    act.reply(to, move || response, ctx)
                }));
            }
            Request::Domain { name } => {
                let queues = self.router.queues_of(&name);
                let Some((_, first)) = queues.first().cloned() else {
                    let message = format!("no queue for {name}");
                    return self.reply(to, move || Response::Error { message }, ctx);
                };
                let others: Vec<String> = queues.iter().skip(1).map(|(k, _)| k.clone()).collect();
                let fut = async move { first.send(DomainInfo).await };
                ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(mut d) => {
                        d.other_queues = others;
                        act.reply(to, move || Response::Domain(Box::new(d)), ctx)
                    }
                    Err(e) => {
                        let message = format!("the container of {name} did not answer: {e}");
                        act.reply(to, move || Response::Error { message }, ctx)
                    }
                }));
            }
            Request::Suspend {
                domain,
                binding,
                duration_secs,
            } => {
                let until_ms = duration_secs.map(|s| crate::ids::now_ms() + s * 1000);
                let list = self.shared.suspensions.suspend(crate::suspend::Suspension {
                    domain: domain.clone(),
                    binding: binding.clone(),
                    until_ms,
                });
                let what = match (&binding, duration_secs) {
                    (Some(b), Some(s)) => format!("{domain} (binding {b}) suspended for {s}s"),
                    (Some(b), None) => format!("{domain} (binding {b}) suspended"),
                    (None, Some(s)) => format!("{domain} suspended for {s}s"),
                    (None, None) => format!("{domain} suspended"),
                };
                self.persist_suspensions(to, list, domain, what, ctx);
            }
            Request::Resume { domain } => {
                let (n, list) = self.shared.suspensions.resume(&domain);
                if n == 0 {
                    let message = format!("{domain} is not suspended");
                    return self.reply(to, move || Response::Error { message }, ctx);
                }
                let what = format!("{domain} resumed");
                self.persist_suspensions(to, list, domain, what, ctx);
            }
            Request::Bounce {
                domain,
                message,
                sender,
                reason,
                quiet,
                dry_run,
            } => {
                // A message to several domains: the list its 250 named ("A,B").
                let parse = |l: &str| -> Option<Vec<MessageId>> {
                    l.split(',').map(MessageId::parse).collect()
                };
                let id = match message.as_deref().map(parse) {
                    Some(None) => {
                        let message =
                            format!("{:?} is not a message id", message.unwrap_or_default());
                        return self.reply(to, move || Response::Error { message }, ctx);
                    }
                    Some(Some(id)) => Some(id),
                    None => None,
                };
                if domain.is_none() && id.is_none() && sender.is_none() {
                    let message = "bounce needs a DOMAIN, --message ID or --sender S".to_string();
                    return self.reply(to, move || Response::Error { message }, ctx);
                }
                let ask = AdminBounce {
                    message: id,
                    sender,
                    reason: reason.unwrap_or_else(|| "bounced by the operator".into()),
                    quiet,
                    dry_run,
                };
                let domains = self.router.matching(domain.as_deref());
                let fut = async move {
                    let mut ids = Vec::new();
                    for d in domains {
                        ids.extend(d.send(ask.clone()).await.unwrap_or_default());
                    }
                    ids
                };
                ctx.spawn(
                    fut.into_actor(self)
                        .map(move |ids: Vec<MessageId>, act, ctx| {
                            let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                            let verb = if dry_run { "would bounce" } else { "bounced" };
                            let mut message = format!("{verb} {} messages", list.len());
                            if !list.is_empty() {
                                message.push_str(": ");
                                message.push_str(&list.join(" "));
                            }
                            act.reply(to, move || Response::Ok { message }, ctx)
                        }),
                );
            }
            Request::Flush { domain } => {
                let domains = self.router.matching(domain.as_deref());
                if domains.is_empty() {
                    let message = match &domain {
                        Some(d) => format!("no queue for {d}"),
                        None => "no queues".into(),
                    };
                    return self.reply(to, move || Response::Error { message }, ctx);
                }
                let queues = domains.len();
                let fut = async move {
                    let mut n = 0;
                    for d in domains {
                        n += d.send(FlushDelayed).await.unwrap_or(0);
                    }
                    n
                };
                ctx.spawn(fut.into_actor(self).map(move |n: usize, act, ctx| {
                    let message = format!("{n} delayed messages due now, in {queues} queues");
                    act.reply(to, move || Response::Ok { message }, ctx)
                }));
            }
            Request::Queues | Request::Status => {
                let domains = self.router.all();
                let status = self.status_base();
                let fut = async move {
                    let mut rows = Vec::with_capacity(domains.len());
                    for d in domains {
                        if let Ok(row) = d.send(QueueInfo).await {
                            rows.push(row);
                        }
                    }
                    rows.sort_by(|a, b| a.domain.cmp(&b.domain));
                    rows
                };
                ctx.spawn(
                    fut.into_actor(self)
                        .map(move |rows: Vec<QueueRow>, act, ctx| {
                            if request == Request::Queues {
                                return act.reply(
                                    to,
                                    move || Response::Queues { domains: rows },
                                    ctx,
                                );
                            }
                            let mut s = status;
                            s.domains = rows.len() as u64;
                            for r in &rows {
                                s.queued_active += r.active as u64;
                                s.queued_delayed += r.delayed as u64;
                                s.in_flight += r.in_flight as u64;
                            }
                            act.reply(to, move || Response::Status(s), ctx)
                        }),
                );
            }
        }
    }

    fn status_base(&self) -> StatusReport {
        let st = &self.shared.stats;
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.shared.started.elapsed().as_secs(),
            config_generation: self.shared.generation().number,
            connections_in: Stats::get(&st.connections_in),
            connections_out: Stats::get(&st.connections_out),
            received: Stats::get(&st.received),
            delivered: Stats::get(&st.delivered),
            deferred: Stats::get(&st.deferred),
            bounced: Stats::get(&st.bounced),
            expired: Stats::get(&st.expired),
            messages_live: Stats::get(&st.messages_live),
            panics: self.shared.panics.get(),
            spool_healthy: self.shared.spool_health.is_healthy(),
            spool_error: self.shared.spool_health.reason(),
            spool_quarantined: self.shared.spool_health.quarantined(),
            messages_working: Stats::get(&st.messages_working),
            received_per_sec: self.rates.0,
            delivered_per_sec: self.rates.1,
            received_per_sec_1m: self.rates_1m.0,
            delivered_per_sec_1m: self.rates_1m.1,
            ..Default::default()
        }
    }
}

impl Actor for Control {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reg.set_state("serving");
        ctx.run_interval(std::time::Duration::from_secs(1), |act, _| {
            act.sample_rates()
        });
        // After a supervised restart: go on writing what was being written.
        self.pump(ctx);
    }
}

impl Handler<Accepted> for Control {
    type Result = ();

    fn handle(&mut self, msg: Accepted, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Control);
        let credit = self.shared.io.attach(msg.conn, ctx.address().recipient());
        self.clients.insert(
            msg.conn,
            Client {
                buf: Vec::new(),
                credit,
                answered: false,
            },
        );
        self.reg.set_mailbox(self.clients.len());
    }
}

impl Handler<Ask> for Control {
    type Result = ();

    fn handle(&mut self, msg: Ask, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Control);
        let panics = self.shared.panics.clone();
        // A request that breaks the handler drops `reply`: the caller hears "no answer".
        let _ = guard(self, ctx, "control", Some(&panics), move |act, ctx| {
            fault_point("control");
            act.answer(To::Caller(msg.reply), Ok(msg.request), ctx)
        });
    }
}

impl Handler<ConnEvent> for Control {
    type Result = ();

    fn handle(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Control);
        let conn = ev.conn();
        let panics = self.shared.panics.clone();
        let done = guard(self, ctx, "control", Some(&panics), move |act, ctx| {
            fault_point("control");
            act.on_conn_event(ev, ctx)
        });
        if done.is_none() {
            // The client whose request broke the handler gets no answer, only a close.
            self.clients.remove(&conn);
            self.shared.io.abort(conn);
        }
    }
}

/// Restarted by its `Supervisor` after a contained panic. Answers still being gathered
/// (their futures belonged to the old context) are dropped: those clients are closed.
impl Supervised for Control {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.pumping = false;
        let writing: Vec<ConnId> = self.outgoing.iter().map(|o| o.conn).collect();
        for (conn, client) in self.clients.drain() {
            if writing.contains(&conn) {
                continue;
            }
            if !client.answered {
                self.shared.io.close(conn);
            }
        }
    }
}

impl Control {
    /// Write the suspensions durably (on the pool), then tell `domain`'s containers and
    /// answer `what`; a failed write is an error answer (and the change stays in memory
    /// only, which the answer says).
    fn persist_suspensions(
        &mut self,
        to: To,
        list: Vec<crate::suspend::Suspension>,
        domain: String,
        what: String,
        ctx: &mut Context<Self>,
    ) {
        let path = self.shared.suspensions.path().to_path_buf();
        let job = self
            .shared
            .pool
            .run(move || crate::suspend::persist(&path, &list));
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            for d in act.router.matching(Some(&domain)) {
                d.do_send(crate::domain::Wake);
            }
            let response = match res {
                Ok(Ok(())) => Response::Ok { message: what },
                Ok(Err(e)) => Response::Error {
                    message: format!("{what}, but not saved (lost at a restart): {e}"),
                },
                Err(e) => Response::Error {
                    message: format!("{what}, but not saved (lost at a restart): {e}"),
                },
            };
            act.reply(to, move || response, ctx)
        }));
    }
}

impl Control {
    fn on_conn_event(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        match ev {
            ConnEvent::Data { conn, bytes } => {
                let Some(client) = self.clients.get_mut(&conn) else {
                    return;
                };
                client.credit.consumed(bytes.len());
                if client.answered {
                    return;
                }
                client.buf.extend_from_slice(&bytes);
                let request = if let Some(end) = memchr::memchr(b'\n', &client.buf) {
                    serde_json::from_slice::<Request>(&client.buf[..end])
                        .map_err(|e| format!("bad request: {e}"))
                } else if client.buf.len() > MAX_LINE {
                    Err("request too long".to_string())
                } else {
                    return;
                };
                client.answered = true;
                self.answer(To::Socket(conn), request, ctx);
            }
            ConnEvent::ReadClosed { conn } => {
                // The client sent all it will: answer a request without its newline, or
                // just close.
                let Some(client) = self.clients.get_mut(&conn) else {
                    return;
                };
                if client.answered {
                    return;
                }
                client.answered = true;
                let line = client.buf.trim_ascii();
                if line.is_empty() {
                    self.shared.io.close(conn);
                    return;
                }
                let request = serde_json::from_slice::<Request>(line)
                    .map_err(|e| format!("bad request: {e}"));
                self.answer(To::Socket(conn), request, ctx);
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
}
