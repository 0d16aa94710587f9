//! Bounces: RFC 3464 delivery status notifications for permanent failures and
//! expirations, and the success reports (`relayed`) a sender asked for with
//! `NOTIFY=SUCCESS` when the next hop cannot send them itself ([`dsn`] builds them; the
//! [`Bouncer`] actor sends them).
//!
//! When an attempt makes recipients fail for good (a 5xx, a domain that cannot receive
//! mail, an expiry), the message actor logs the records durably and then hands the
//! failures to the bouncer *before* the spool marks those recipients: the bouncer reads
//! the original's headers from the spool, builds one report for all of them, stores it
//! durably as a new message from the null sender to the original sender and queues it
//! like any other (same queues, retries and limits). Only then are the recipients marked
//! final. A crash in between repeats the attempt and may send the report twice; it
//! never loses it.
//!
//! The parts of one reception split over several domains report together: see
//! [`groups`] (one report per delivery pass of the whole message).
//!
//! Never a report for a message whose sender is null (a report itself, or a message
//! that asked for none): a report that cannot be delivered is logged and dropped when it
//! expires, and loops are impossible.

pub mod dsn;
pub mod groups;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use impulse_runtime::alloc;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;
use impulse_smtp::domain_of;

use crate::binding;
use crate::context::Shared;
use crate::ids::{now_ms, MessageId};
use crate::logger::record::{timestamp_now, LogRecord, LoggedResponse, RecordType};
use crate::queued::{PackedEnvelope, QueuedMessage};
use crate::router::Router;
use crate::spool::record::MessageMeta;
use crate::spool::{NewMessage, ReadData, SpoolError, Store};
use crate::stats::Stats;
pub use dsn::{Action, ReportedRecipient};
use groups::{Groups, Step};
use tokio::sync::oneshot;

/// Send a report to `sender` about `recipients` of message `original`. Answers
/// once the report is durable (`Some(its id)`), or `None` when no report is due.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<MessageId>, SpoolError>")]
pub struct Bounce {
    pub original: MessageId,
    pub sender: String,
    /// When the original arrived, ms since the epoch.
    pub received_at: u64,
    pub recipients: Vec<ReportedRecipient>,
    /// `ENVID` the client gave (RFC 3461), quoted in the report.
    pub envid: Option<String>,
    /// `RET=FULL`: the whole message goes back, not only its headers.
    pub full: bool,
    /// For a delay report: when retries end, ms since the epoch.
    pub retry_until: Option<u64>,
    /// The reception `original` is one domain's part of (see [`groups`]): the report
    /// is gathered with its sibling parts' reports of the same pass into one.
    pub group: Option<MessageId>,
}

/// The reception `group` was split into `parts` (one per domain) that are all due now:
/// their reports are gathered into one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExpectReports {
    pub group: MessageId,
    pub parts: Vec<MessageId>,
}

/// Part `part` of reception `group` settled an attempt and owes no report.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PartSettled {
    pub group: MessageId,
    pub part: MessageId,
}

/// Shutting down: held reports go out now, and from now on every report alone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushReports;

/// Tell the bouncer that `msg`, if it is a part of a split reception, settled an
/// attempt owing no report, so the reports of its other parts need not wait for it.
pub fn settled_quietly(msg: &QueuedMessage, bouncer: Option<&Addr<Bouncer>>) {
    if let (Some(group), Some(bouncer)) = (msg.envelope.group(), bouncer) {
        bouncer.do_send(PartSettled {
            group,
            part: msg.id,
        });
    }
}

type Answer = Result<Option<MessageId>, SpoolError>;

/// One report for all of `held` (reports about parts of one reception: same sender,
/// arrival and DSN parameters), about the first part's message.
fn merge(held: &[(Bounce, oneshot::Sender<Answer>)]) -> Option<Bounce> {
    let (first, rest) = held.split_first()?;
    let mut b = first.0.clone();
    for (other, _) in rest {
        b.recipients.extend(other.recipients.iter().cloned());
        b.full |= other.full;
    }
    b.group = None;
    Some(b)
}

/// Builds, stores and queues delivery status notifications.
pub struct Bouncer {
    shared: Arc<Shared>,
    router: Arc<Router>,
    reg: Registration,
    salt: RandomState,
    working: usize,
    /// Reports held for the rest of their reception's pass.
    groups: Groups<(Bounce, oneshot::Sender<Answer>)>,
    /// Delay reports, gathered on their own (a report says failed or delayed, not both).
    delays: Groups<(Bounce, oneshot::Sender<Answer>)>,
    draining: bool,
}

impl Bouncer {
    pub fn new(shared: Arc<Shared>, router: Arc<Router>, reg: Registration) -> Bouncer {
        Bouncer {
            shared,
            router,
            reg,
            salt: RandomState::new(),
            working: 0,
            groups: Groups::default(),
            delays: Groups::default(),
            draining: false,
        }
    }

    /// Send `held` as one report, tried again every second until it is durable; each
    /// holder is answered then (or sees the bouncer gone, its recipients still pending).
    fn flush(&mut self, held: Vec<(Bounce, oneshot::Sender<Answer>)>, ctx: &mut Context<Self>) {
        let Some(report) = merge(&held) else { return };
        let me = ctx.address();
        actix::spawn(async move {
            loop {
                match me.send(report.clone()).await {
                    Ok(Ok(id)) => {
                        for (_, tx) in held {
                            let _ = tx.send(Ok(id));
                        }
                        return;
                    }
                    Ok(Err(e)) => eprintln!("bounce of {}: {e}; trying again", report.original),
                    Err(_) => return,
                }
                actix_rt::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    fn update_registry(&self) {
        self.reg.set_state(if self.working == 0 {
            "idle"
        } else {
            "bouncing"
        });
        self.reg.set_mailbox(self.working);
    }
}

impl Actor for Bouncer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reg.placed();
        self.update_registry();
        // Passes that ran out of time send what they hold.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let now = Instant::now();
            let mut due = act.groups.overdue(now);
            due.extend(act.delays.overdue(now));
            for held in due {
                act.flush(held, ctx);
            }
        });
    }
}

impl Handler<ExpectReports> for Bouncer {
    type Result = ();

    fn handle(&mut self, e: ExpectReports, _ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let _g = alloc::enter(ActorClass::Bouncer);
        self.groups.expect(e.group, e.parts, Instant::now());
    }
}

impl Handler<PartSettled> for Bouncer {
    type Result = ();

    fn handle(&mut self, p: PartSettled, ctx: &mut Context<Self>) {
        if let Step::Ready(held) = self.groups.settled(p.group, p.part, None, Instant::now()) {
            self.flush(held, ctx);
        }
    }
}

impl Handler<FlushReports> for Bouncer {
    type Result = ();

    fn handle(&mut self, _: FlushReports, ctx: &mut Context<Self>) {
        self.draining = true;
        let mut all = self.groups.end_all();
        all.extend(self.delays.end_all());
        for held in all {
            self.flush(held, ctx);
        }
    }
}

impl Handler<Bounce> for Bouncer {
    type Result = ResponseActFuture<Self, Result<Option<MessageId>, SpoolError>>;

    fn handle(&mut self, mut b: Bounce, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Bouncer);
        if b.sender.is_empty() || b.recipients.is_empty() {
            return Box::pin(fut::ready(Ok(None)));
        }
        if let Some(group) = b.group.take().filter(|_| !self.draining) {
            let (tx, rx) = oneshot::channel();
            let waiting = async move { rx.await.unwrap_or(Err(SpoolError::Unavailable)) };
            let groups = if b.retry_until.is_some() {
                &mut self.delays
            } else {
                &mut self.groups
            };
            match groups.settled(group, b.original, Some((b, tx)), Instant::now()) {
                Step::Held => return Box::pin(fut::wrap_future(waiting)),
                Step::Ready(held) => {
                    self.flush(held, ctx);
                    return Box::pin(fut::wrap_future(waiting));
                }
                Step::Alone(Some((alone, _))) => b = alone,
                Step::Alone(None) => return Box::pin(fut::ready(Ok(None))),
            }
        }
        self.working += 1;
        self.update_registry();
        let shared = self.shared.clone();
        let id = shared.ids.next();
        let salt = self.salt.hash_one(id.0);
        let work = async move {
            // The headers are what is returned; a body the spool cannot give any more
            // only costs the report its third part.
            let original = match shared.spool.send(ReadData { id: b.original }).await {
                Ok(Ok(data)) => data,
                _ => Bytes::new(),
            };
            let host = shared.config().delivery.ehlo_name.clone();
            let now = now_ms();
            let report = {
                let _g = alloc::enter(ActorClass::Message);
                dsn::build(&dsn::Report {
                    reporting_mta: &host,
                    original_id: &b.original.to_string(),
                    sender: &b.sender,
                    arrival: b.received_at / 1000,
                    now: now / 1000,
                    message_id: &format!("{id}.dsn@{host}"),
                    boundary: &dsn::boundary(&id.to_string(), salt),
                    recipients: &b.recipients,
                    original: &original,
                    envid: b.envid.as_deref(),
                    full: b.full,
                    retry_until: b.retry_until.map(|ms| ms / 1000),
                })
            };
            let domain = domain_of(&b.sender);
            // Reports go out from the default binding, like mail without a header.
            let key =
                binding::queue_key(&domain, shared.config().delivery.default_binding.as_deref());
            let size = report.len();
            let meta = MessageMeta {
                id,
                received_at: now,
                sender: String::new(),
                domain: key.clone(),
                recipients: vec![b.sender.clone()],
                peer: "bounce".into(),
                dsn: String::new(),
                group: None,
            };
            let stored = shared
                .spool
                .send(Store {
                    messages: vec![NewMessage {
                        meta,
                        data: Bytes::from(report),
                    }],
                })
                .await
                .unwrap_or(Err(SpoolError::Unavailable))?;
            let record = LogRecord {
                kind: RecordType::Reception,
                id: id.to_string(),
                timestamp: timestamp_now(),
                sender: String::new(),
                recipient: b.sender.clone(),
                domain: domain.clone(),
                size: size as u64,
                attempts: 0,
                response: LoggedResponse::new(
                    250,
                    Some("2.0.0".into()),
                    format!("delivery status notification for {}", b.original),
                ),
                peer: "bounce".into(),
                tls: None,
                user: None,
            };
            Ok((stored, key, b.sender, size, now, record))
        };
        Box::pin(work.into_actor(self).map(move |res, act, _ctx| {
            let _g = alloc::enter(ActorClass::Bouncer);
            act.working -= 1;
            act.update_registry();
            let (stored, domain, sender, size, now, record) = res?;
            Stats::add(&act.shared.stats.received, 1);
            let msg = {
                let _g = alloc::enter(ActorClass::Message);
                QueuedMessage {
                    id: stored[0],
                    received_at: now,
                    size: size as u32,
                    attempts: 0,
                    retry_at: 0,
                    envelope: PackedEnvelope::new("", std::iter::once(sender.as_str())),
                    reg: None,
                }
            };
            act.router.enqueue(&domain, msg);
            actix::spawn(crate::logger::write(
                act.shared.logger.clone(),
                vec![record],
                false,
            ));
            Ok(Some(stored[0]))
        }))
    }
}
