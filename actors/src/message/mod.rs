//! The message actor: one per live spooled message, driving its lifecycle.
//!
//! It holds the envelope and the per-recipient state — never the body, which stays in
//! the spool and is read back by the outbound connection that sends it. On each attempt's
//! outcome it writes the log records, decides delivered / bounced / expired / retry
//! (see [`state`] for the legal transitions), removes itself from the spool once the
//! final records are durable, and tells its domain container what to do next.

pub mod messages;
pub mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use impulse_config::DomainCfg;
use impulse_runtime::alloc;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;
use impulse_smtp::client::RcptResult;
use impulse_smtp::Envelope;

use crate::context::Shared;
use crate::domain::messages::Finished;
use crate::domain::{backoff, Domain};
use crate::ids::now_ms;
use crate::logger::{Log, LogRecord, LoggedResponse, RecordType};
use crate::spool::record::RetryState;
use crate::spool::{NoteRetry, Remove, Spooled};
use crate::stats::Stats;
pub use messages::*;
use state::MsgState;

/// How one recipient's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Delivered,
    Transient,
    Permanent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rcpt {
    Pending,
    Done,
}

/// One live message.
pub struct MessageActor {
    shared: Arc<Shared>,
    reg: Registration,
    domain: Addr<Domain>,
    cfg: DomainCfg,
    spooled: Spooled,
    rcpts: Vec<(String, Rcpt)>,
    attempts: u32,
    state: MsgState,
    last_response: Option<LoggedResponse>,
}

impl MessageActor {
    pub fn new(
        shared: Arc<Shared>,
        reg: Registration,
        domain: Addr<Domain>,
        cfg: DomainCfg,
        spooled: Spooled,
        delayed: bool,
    ) -> MessageActor {
        let attempts = spooled.retry.map_or(0, |r| r.attempts);
        let rcpts = spooled
            .meta
            .recipients
            .iter()
            .map(|r| (r.clone(), Rcpt::Pending))
            .collect();
        MessageActor {
            shared,
            reg,
            domain,
            cfg,
            spooled,
            rcpts,
            attempts,
            state: if delayed {
                MsgState::Delayed
            } else {
                MsgState::Queued
            },
            last_response: None,
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
        self.reg.set_state(next.name());
    }

    fn record(
        &self,
        kind: RecordType,
        recipient: &str,
        response: &LoggedResponse,
        peer: &str,
    ) -> LogRecord {
        LogRecord {
            kind,
            id: self.spooled.meta.id.to_string(),
            timestamp: crate::logger::record::timestamp_now(),
            sender: self.spooled.meta.sender.clone(),
            recipient: recipient.to_string(),
            domain: self.spooled.meta.domain.clone(),
            size: self.spooled.size,
            attempts: self.attempts,
            response: response.clone(),
            peer: peer.to_string(),
        }
    }

    fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.spooled.meta.received_at))
    }

    /// Apply per-recipient results, log them and decide what comes next.
    fn settle(
        &mut self,
        results: Vec<(String, Verdict, LoggedResponse)>,
        peer: &str,
        ctx: &mut Context<Self>,
    ) {
        let mut records = Vec::new();
        let mut final_records = false;
        for (addr, verdict, response) in results {
            let Some(slot) = self
                .rcpts
                .iter_mut()
                .find(|(a, s)| *a == addr && *s == Rcpt::Pending)
            else {
                continue;
            };
            let kind = match verdict {
                Verdict::Delivered => RecordType::Delivery,
                Verdict::Permanent => RecordType::Bounce,
                Verdict::Transient => RecordType::TransientFailure,
            };
            if verdict != Verdict::Transient {
                slot.1 = Rcpt::Done;
                final_records = true;
            }
            match kind {
                RecordType::Delivery => Stats::add(&self.shared.stats.delivered, 1),
                RecordType::Bounce => Stats::add(&self.shared.stats.bounced, 1),
                _ => Stats::add(&self.shared.stats.deferred, 1),
            }
            records.push(self.record(kind, &addr, &response, peer));
            self.last_response = Some(response);
        }
        let pending: Vec<String> = self.pending().map(str::to_string).collect();
        if !pending.is_empty() && backoff::expired(self.age(), self.cfg.message_expiration.get()) {
            let response = LoggedResponse::new(
                550,
                Some("5.4.7".into()),
                format!(
                    "message expired after {} in queue; last response: {}",
                    humantime::format_duration(Duration::from_secs(self.age().as_secs())),
                    self.last_response
                        .as_ref()
                        .map(|r| r.text.as_str())
                        .unwrap_or("none")
                ),
            );
            for addr in &pending {
                records.push(self.record(RecordType::Expiration, addr, &response, peer));
                Stats::add(&self.shared.stats.expired, 1);
            }
            for r in &mut self.rcpts {
                r.1 = Rcpt::Done;
            }
            final_records = true;
        }
        if self.pending().next().is_none() {
            self.finish(records, ctx);
        } else {
            if !records.is_empty() {
                self.shared.logger.do_send(Log {
                    records,
                    durable: final_records,
                });
            }
            let delay = backoff::retry_delay(
                self.attempts.max(1),
                self.cfg.retry_interval.get(),
                self.cfg.max_retry_interval.get(),
            );
            self.move_to(MsgState::Delayed);
            self.shared.spool.do_send(NoteRetry {
                id: self.spooled.meta.id,
                loc: self.spooled.loc,
                state: RetryState {
                    attempts: self.attempts,
                    retry_at: now_ms() + delay.as_millis() as u64,
                },
            });
            self.domain.do_send(Finished {
                id: self.spooled.meta.id,
                retry_at: Some(Instant::now() + delay),
            });
        }
    }

    fn pending(&self) -> impl Iterator<Item = &str> {
        self.rcpts
            .iter()
            .filter(|(_, s)| *s == Rcpt::Pending)
            .map(|(a, _)| a.as_str())
    }

    /// Every recipient is final: log durably, leave the spool, tell the domain, stop.
    fn finish(&mut self, records: Vec<LogRecord>, ctx: &mut Context<Self>) {
        self.move_to(MsgState::Finishing);
        let logger = self.shared.logger.clone();
        let spool = self.shared.spool.clone();
        let id = self.spooled.meta.id;
        let loc = self.spooled.loc;
        let fut = async move {
            let _ = logger
                .send(Log {
                    records,
                    durable: true,
                })
                .await;
            spool.send(Remove { id, loc }).await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let _g = alloc::enter(ActorClass::Message);
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("message {id}: cannot leave the spool: {e}"),
                Err(e) => eprintln!("message {id}: spool gone: {e}"),
            }
            act.domain.do_send(Finished { id, retry_at: None });
            ctx.stop();
        }));
    }
}

impl Actor for MessageActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.reg.set_state(self.state.name());
    }
}

impl Handler<Begin> for MessageActor {
    type Result = Option<TxInfo>;

    fn handle(&mut self, _: Begin, _ctx: &mut Context<Self>) -> Option<TxInfo> {
        let _g = alloc::enter(ActorClass::Message);
        if self.state != MsgState::Queued {
            return None;
        }
        self.move_to(MsgState::InFlight);
        self.attempts += 1;
        let envelope = Envelope {
            sender: self.spooled.meta.sender.clone(),
            recipients: self.pending().map(str::to_string).collect(),
            body_8bit: false,
            declared_size: None,
        };
        Some(TxInfo {
            id: self.spooled.meta.id,
            envelope,
            loc: self.spooled.loc,
            size: self.spooled.size,
        })
    }
}

impl Handler<Outcome> for MessageActor {
    type Result = ();

    fn handle(&mut self, msg: Outcome, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Message);
        if self.state != MsgState::InFlight {
            return;
        }
        let results = msg
            .results
            .into_iter()
            .map(|(addr, r)| match r {
                RcptResult::Delivered(r) => {
                    (addr, Verdict::Delivered, LoggedResponse::from_reply(&r))
                }
                RcptResult::Transient(r) => {
                    (addr, Verdict::Transient, LoggedResponse::from_reply(&r))
                }
                RcptResult::Permanent(r) => {
                    (addr, Verdict::Permanent, LoggedResponse::from_reply(&r))
                }
            })
            .collect();
        self.settle(results, &msg.peer, ctx);
    }
}

impl Handler<Defer> for MessageActor {
    type Result = ();

    fn handle(&mut self, msg: Defer, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Message);
        if !matches!(self.state, MsgState::Queued | MsgState::InFlight) {
            return;
        }
        if self.state == MsgState::Queued && msg.attempted {
            self.attempts += 1;
        }
        let results = self
            .pending()
            .map(|a| (a.to_string(), Verdict::Transient, msg.response.clone()))
            .collect();
        self.state = MsgState::InFlight;
        self.settle(results, &msg.peer, ctx);
    }
}

impl Handler<Wake> for MessageActor {
    type Result = ();

    fn handle(&mut self, _: Wake, _ctx: &mut Context<Self>) {
        if self.state == MsgState::Delayed {
            self.move_to(MsgState::Queued);
        }
    }
}

/// The domain moved the message from its delayed queue back to the active queue.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Wake;
