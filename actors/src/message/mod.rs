//! The message actor: one per message being worked on, from dispatch to the end of one
//! delivery attempt (see [`state`] for the legal moves).
//!
//! Its domain container wakes it from a compact [`QueuedMessage`] when a connection
//! takes the message. It holds the envelope and the per-recipient state — never the
//! body, which stays in the spool and is read by the outbound connection that sends it.
//! When the attempt ends it [`settle`]s: log records first; then, for recipients that
//! became final, the log is made durable *before* the spool marks them (so a final
//! recipient is never attempted again, and never marked without its record); a message
//! with every recipient final leaves the spool (`Remove`) and the actor stops; one with
//! recipients pending goes back to its domain's delayed queue as a record (it
//! hibernates) and the actor stops.
//!
//! Promises to neighbours: the domain gets exactly one [`Finished`] per dispatch, with
//! the record back unless the message is gone; a panic in a handler is contained and
//! the record goes back to the active queue unchanged.

pub mod messages;
mod reports;
pub mod settle;
pub mod state;

use std::sync::Arc;

use actix::prelude::*;
use impulse_config::DomainCfg;
use impulse_runtime::alloc;
use impulse_runtime::supervise::{contain, fault_point};
use impulse_runtime::ActorClass;
use impulse_smtp::client::RcptResult;
use impulse_smtp::Envelope;

use crate::context::Shared;
use crate::domain::messages::Finished;
use crate::domain::Domain;
use crate::ids::now_ms;
use crate::logger::record::RecordType;
use crate::logger::{self, LoggedResponse};
use crate::queued::QueuedMessage;
use crate::spool::journal::RetryState;
use crate::spool::{MarkRecipients, NoteRetry, Remove, Spool, SpoolError};
use crate::stats::Stats;
pub use messages::*;
use settle::{settle, Settlement, Verdict};
use state::MsgState;

/// One message being worked on.
pub struct MessageActor {
    shared: Arc<Shared>,
    domain: Addr<Domain>,
    domain_name: Arc<str>,
    cfg: DomainCfg,
    /// `None` once handed back (or after a contained panic).
    msg: Option<QueuedMessage>,
    state: MsgState,
    /// Indices of the recipients sent in the current attempt, in envelope order.
    sent: Vec<usize>,
    /// The exchangers to try next for the recipients a hop without SMTPUTF8 refused
    /// (see [`Outcome::utf8_hops`]); handed back with the message.
    utf8_hops: Option<Arc<[crate::dns::Hop]>>,
}

impl MessageActor {
    pub fn new(
        shared: Arc<Shared>,
        domain: Addr<Domain>,
        domain_name: Arc<str>,
        cfg: DomainCfg,
        msg: QueuedMessage,
    ) -> MessageActor {
        Stats::add(&shared.stats.messages_working, 1);
        MessageActor {
            shared,
            domain,
            domain_name,
            cfg,
            msg: Some(msg),
            state: MsgState::Queued,
            sent: Vec::new(),
            utf8_hops: None,
        }
    }

    fn move_to(&mut self, next: MsgState) {
        debug_assert!(
            self.state.can_move_to(next),
            "illegal message transition {:?} -> {:?}",
            self.state,
            next
        );
        self.state = next;
        if let Some(m) = &self.msg {
            m.set_state(next.name());
        }
    }

    /// Hand the record back to the domain and stop.
    fn hand_back(&mut self, requeue: bool, ctx: &mut Context<Self>) {
        let hops = self.utf8_hops.take();
        // Recipients left for other exchangers go on at once, through them.
        let requeue = requeue || hops.is_some();
        if let Some(mut msg) = self.msg.take() {
            if hops.is_some() {
                // The other exchangers are the same attempt (its Begin counts again).
                msg.attempts = msg.attempts.saturating_sub(1);
            }
            msg.set_state(if requeue { "queued" } else { "hibernating" });
            self.domain.do_send(Finished {
                id: msg.id,
                msg: Some(msg),
                requeue,
                hops,
            });
        }
        ctx.stop();
    }

    /// Run a handler body with panics contained: after a panic the record goes back to
    /// the active queue unchanged and the actor stops.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        let _g = alloc::enter(ActorClass::Message);
        let panics = self.shared.panics.clone();
        let done = contain("message", Some(&panics), || {
            fault_point("message");
            f(self, ctx)
        });
        if done.is_none() {
            self.hand_back(true, ctx);
        }
    }

    /// Settle the attempt's results (by recipient index).
    fn settle_results(
        &mut self,
        results: Vec<(usize, Verdict, LoggedResponse)>,
        peer: &str,
        ctx: &mut Context<Self>,
    ) {
        self.settle_results_via(results, peer, None, false, ctx);
    }

    /// [`settle_results`](Self::settle_results) for a session that had `tls` (the
    /// Delivery records say so) and whose next hop took DSN parameters or not (without
    /// them, `NOTIFY=SUCCESS` is answered by a report of ours).
    fn settle_results_via(
        &mut self,
        results: Vec<(usize, Verdict, LoggedResponse)>,
        peer: &str,
        tls: Option<impulse_runtime::io::TlsInfo>,
        success_reports: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(msg) = &self.msg else { return };
        let mut s = settle(msg, &self.domain_name, &self.cfg, results, peer, now_ms());
        s.success_reports = success_reports;
        if tls.is_some() {
            for r in &mut s.records {
                if r.kind == RecordType::Delivery {
                    r.tls = tls.clone();
                }
            }
        }
        self.apply(s, ctx);
    }

    /// Carry out a settlement: log, mark, then finish or hibernate.
    fn apply(&mut self, s: Settlement, ctx: &mut Context<Self>) {
        let Some(msg) = self.msg.as_mut() else { return };
        let stats = &self.shared.stats;
        for (counter, n) in [
            &stats.delivered,
            &stats.bounced,
            &stats.deferred,
            &stats.expired,
        ]
        .into_iter()
        .zip(s.counts)
        {
            Stats::add(counter, n);
        }
        for &i in &s.newly_final {
            msg.envelope.set_outcome(i, s.delivered.contains(&i));
        }
        if let Some(last) = &s.last_transient {
            msg.envelope.set_last_response(last);
        }
        let id = msg.id;
        let logger = self.shared.logger.clone();
        let spool = self.shared.spool.clone();
        let bounce = (!s.quiet)
            .then(|| reports::bounce_for(msg, &s.records, &s.expired_last, s.success_reports))
            .flatten()
            .map(|b| (b, self.shared.bouncer.get().cloned()));
        if bounce.is_none() {
            crate::bounce::settled_quietly(msg, self.shared.bouncer.get());
        }
        if s.finished {
            self.move_to(MsgState::Finishing);
            let records = s.records;
            let fut = async move {
                // The log is durable before the message leaves the spool, and so is
                // the report of its failures; all retry until they succeed, so no
                // answer is an error but shutdown.
                if !logger::write(logger, records, true).await {
                    return Err(SpoolError::Unavailable);
                }
                reports::send_bounce(bounce).await?;
                ask_spool(&spool, || Remove { id }).await
            };
            ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
                let _g = alloc::enter(ActorClass::Message);
                if let Err(e) = res {
                    eprintln!("message {id}: cannot leave the spool: {e}");
                }
                act.msg = None;
                act.domain.do_send(Finished {
                    id,
                    msg: None,
                    requeue: false,
                    hops: None,
                });
                ctx.stop();
            }));
            return;
        }
        msg.retry_at = s.retry_at;
        if !s.delay_report.is_empty() {
            // Once per message; the mark rides on the retry state below. A report that
            // cannot be stored yet (a full disk) is tried again every second while the
            // daemon runs; a crash before it is stored loses it (it is a courtesy).
            msg.envelope.set_delay_warned();
            if let (Some(r), Some(bouncer)) = (
                reports::delay_report_for(msg, &s, &self.cfg),
                self.shared.bouncer.get(),
            ) {
                let report = Some((r, Some(bouncer.clone())));
                actix::spawn(async move {
                    let _ = reports::send_bounce(report).await;
                });
            }
        }
        let note = NoteRetry {
            id,
            state: RetryState {
                attempts: msg.attempts,
                retry_at: s.retry_at,
                delay_warned: msg.envelope.delay_warned(),
            },
        };
        if s.newly_final.is_empty() {
            if !s.records.is_empty() {
                actix::spawn(logger::write(logger, s.records, false));
            }
            spool.do_send(note);
            self.hand_back(false, ctx);
            return;
        }
        self.move_to(MsgState::Settling);
        let indices: Vec<u16> = s.newly_final.iter().map(|&i| i as u16).collect();
        let records = s.records;
        let fut = async move {
            if !logger::write(logger, records, true).await {
                return Err(SpoolError::Unavailable);
            }
            reports::send_bounce(bounce).await?;
            let marked = ask_spool(&spool, || MarkRecipients {
                id,
                indices: indices.clone(),
            })
            .await;
            spool.do_send(note);
            marked
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if res.is_err() {
                eprintln!("message {id}: final recipients not marked in the spool: {res:?}");
            }
            act.hand_back(false, ctx);
        }));
    }
}

impl Handler<DescribeMsg> for MessageActor {
    type Result = Option<impulse_runtime::control::MessageDetail>;

    fn handle(&mut self, _: DescribeMsg, _ctx: &mut Context<Self>) -> Self::Result {
        let msg = self.msg.as_ref()?;
        let d =
            crate::domain::search::describe(msg, &self.domain_name, None, "in_flight", now_ms());
        Some(d)
    }
}

/// Ask the spool until it answers: a request whose handler panicked (contained) is
/// answered `Unavailable` and is asked again a second later. `Err` only for a real
/// refusal (the message is not in the spool) or a spool that is gone.
async fn ask_spool<M>(spool: &Addr<Spool>, make: impl Fn() -> M) -> Result<(), SpoolError>
where
    M: actix::Message<Result = Result<(), SpoolError>> + Send + 'static,
    Spool: Handler<M>,
{
    loop {
        match spool.send(make()).await {
            Ok(Err(SpoolError::Unavailable)) if spool.connected() => {}
            Ok(res) => return res,
            Err(_) => return Err(SpoolError::Unavailable),
        }
        actix_rt::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

impl Actor for MessageActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        if let Some(m) = &self.msg {
            m.set_state(self.state.name());
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Stats::sub(&self.shared.stats.messages_working, 1);
        // Stopped without handing back (the system is going down): the domain must
        // still hear of it so its in-flight count stays right.
        if let Some(msg) = self.msg.take() {
            self.domain.do_send(Finished {
                id: msg.id,
                msg: Some(msg),
                requeue: true,
                hops: None,
            });
        }
    }
}

impl Handler<Begin> for MessageActor {
    type Result = Option<TxInfo>;

    fn handle(&mut self, _: Begin, ctx: &mut Context<Self>) -> Option<TxInfo> {
        let mut out = None;
        self.guarded(ctx, |act, _| {
            if act.state != MsgState::Queued {
                return;
            }
            let Some(msg) = act.msg.as_mut() else { return };
            msg.attempts += 1;
            let (sent, recipients): (Vec<usize>, Vec<String>) =
                msg.pending().map(|(i, r)| (i, r.to_string())).unzip();
            let info = TxInfo {
                id: msg.id,
                envelope: Envelope {
                    sender: msg.envelope.sender().to_string(),
                    recipients,
                    body_8bit: false,
                    declared_size: None,
                    // Needed for a UTF-8 address, which the addresses themselves show.
                    smtputf8: false,
                    // The DSN parameters (and REQUIRETLS) go on with the message, for
                    // the recipients sent this time; the client sends them only to a
                    // next hop that offers DSN (RFC 3461 §6.2.1).
                    dsn: pending_dsn(msg.envelope.dsn(), &sent),
                },
                size: msg.size as u64,
            };
            act.sent = sent;
            act.move_to(MsgState::InFlight);
            out = Some(info);
        });
        out
    }
}

impl Handler<Outcome> for MessageActor {
    type Result = ();

    fn handle(&mut self, msg: Outcome, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            if act.state != MsgState::InFlight {
                return;
            }
            let other_hops = msg.utf8_hops.is_some();
            act.utf8_hops = msg.utf8_hops;
            let results = msg
                .results
                .into_iter()
                .zip(act.sent.iter().copied())
                // Refused for want of SMTPUTF8 with other exchangers left: still pending.
                .filter(|((_, r), _)| {
                    !(other_hops
                        && matches!(r, RcptResult::Permanent(reply)
                            if impulse_smtp::client::local::is_no_smtputf8(reply)))
                })
                .map(|((_, r), i)| match r {
                    RcptResult::Delivered(r) => {
                        (i, Verdict::Delivered, LoggedResponse::from_reply(&r))
                    }
                    RcptResult::Transient(r) => {
                        (i, Verdict::Transient, LoggedResponse::from_reply(&r))
                    }
                    RcptResult::Permanent(r) => {
                        (i, Verdict::Permanent, LoggedResponse::from_reply(&r))
                    }
                })
                .collect();
            act.settle_results_via(results, &msg.peer, msg.tls, !msg.dsn_relayed, ctx);
        });
    }
}

/// The DSN parameters of a message's stored form, for the recipients at indices `sent`.
fn pending_dsn(stored: Option<&str>, sent: &[usize]) -> impulse_smtp::dsn::DsnParams {
    let all = impulse_smtp::dsn::DsnParams::decode(stored.unwrap_or(""));
    impulse_smtp::dsn::DsnParams {
        recipients: sent.iter().map(|&i| all.recipient(i)).collect(),
        ..all
    }
}

impl Handler<Defer> for MessageActor {
    type Result = ();

    fn handle(&mut self, d: Defer, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            if !matches!(act.state, MsgState::Queued | MsgState::InFlight) {
                return;
            }
            let Some(msg) = act.msg.as_mut() else { return };
            if act.state == MsgState::Queued && d.attempted {
                msg.attempts += 1;
            }
            let results = msg
                .pending()
                .map(|(i, _)| (i, Verdict::Transient, d.response.clone()))
                .collect();
            act.settle_results(results, &d.peer, ctx);
        });
    }
}

impl Handler<Requeue> for MessageActor {
    type Result = ();

    fn handle(&mut self, _: Requeue, ctx: &mut Context<Self>) {
        if self.state == MsgState::Queued {
            self.hand_back(true, ctx);
        }
    }
}

impl Handler<Apply> for MessageActor {
    type Result = ();

    fn handle(&mut self, Apply(s): Apply, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| act.apply(s, ctx));
    }
}
