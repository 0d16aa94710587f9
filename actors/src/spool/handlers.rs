//! The spool actor's handlers: one per message of [`super::messages`], plus start-up
//! (the recovery answer fills the index and segment table).

use actix::prelude::*;
use bytes::Bytes;
use impulse_runtime::alloc;
use impulse_runtime::ActorClass;
use tokio::sync::oneshot;

use super::*;

impl Actor for Spool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Spool);
        ctx.set_mailbox_capacity(4096);
        self.update_state();
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.probe(ctx);
            act.maybe_compact(ctx);
        });
    }
}

fn reply_future<T: Send + 'static>(
    rx: oneshot::Receiver<Result<T, SpoolError>>,
) -> ResponseFuture<Result<T, SpoolError>> {
    Box::pin(async move { rx.await.unwrap_or(Err(SpoolError::Unavailable)) })
}

impl Handler<Recover> for Spool {
    type Result =
        ResponseActFuture<Self, Result<Vec<(String, Vec<recover::Recovered>)>, SpoolError>>;

    fn handle(&mut self, _: Recover, _ctx: &mut Context<Self>) -> Self::Result {
        let dir = self.settings.dir.clone();
        let job = self.pool.run(move || recover::recover(&dir));
        Box::pin(job.into_actor(self).map(|res, act, ctx| {
            let _g = alloc::enter(ActorClass::Spool);
            let r = match res {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(SpoolError::io("recovery", &e)),
                Err(e) => return Err(SpoolError::Corrupt(e.to_string())),
            };
            act.next_seq = r.next_seq;
            for info in r.segments {
                act.segments.insert(
                    info.segment.seq,
                    SegState {
                        segment: info.segment,
                        size: info.size,
                        journal_len: info.journal_len,
                        live: 0,
                        live_bytes: 0,
                    },
                );
            }
            act.index.reserve(r.by_domain.iter().map(|(_, v)| v.len()).sum());
            for (_, list) in &r.by_domain {
                for m in list {
                    act.add_live(m.id, m.loc);
                }
            }
            for d in &r.damaged {
                eprintln!(
                    "spool: damaged record in segment {:016x} at offset {} ({} bytes); {}",
                    d.segment,
                    d.offset,
                    d.len,
                    match &d.quarantined {
                        Some(p) => format!("kept in {}", p.display()),
                        None => "could not be copied to quarantine".to_string(),
                    }
                );
            }
            act.health.add_quarantined(r.damaged.len() as u64);
            eprintln!(
                "spool: recovered {} messages from {} segments ({} removed, {} damaged records quarantined, {} journal bytes skipped)",
                act.index.len(),
                act.segments.len(),
                r.removed_segments,
                r.damaged.len(),
                r.journal_skipped
            );
            act.ready = true;
            act.kick(ctx);
            act.update_state();
            Ok(r.by_domain)
        }))
    }
}

impl Handler<Store> for Spool {
    type Result = ResponseFuture<Result<Vec<MessageId>, SpoolError>>;

    fn handle(&mut self, msg: Store, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Spool);
        let (reply, rx) = oneshot::channel();
        self.guarded(ctx, move |act, ctx| {
            act.store_lane.pending().stores.push(PendingStore {
                messages: msg.messages,
                bodies: Vec::new(),
                reply,
            });
            act.kick(ctx);
        });
        reply_future(rx)
    }
}

impl Handler<Remove> for Spool {
    type Result = ResponseFuture<Result<(), SpoolError>>;

    fn handle(&mut self, msg: Remove, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Spool);
        let (reply, rx) = oneshot::channel();
        self.guarded(ctx, move |act, ctx| {
            act.push_mark(msg.id, Mark::Done, Some(reply));
            act.kick(ctx);
        });
        reply_future(rx)
    }
}

impl Handler<MarkRecipients> for Spool {
    type Result = ResponseFuture<Result<(), SpoolError>>;

    fn handle(&mut self, msg: MarkRecipients, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Spool);
        let (reply, rx) = oneshot::channel();
        self.guarded(ctx, move |act, ctx| {
            act.push_mark(msg.id, Mark::Rcpts(msg.indices), Some(reply));
            act.kick(ctx);
        });
        reply_future(rx)
    }
}

impl Handler<NoteRetry> for Spool {
    type Result = ();

    fn handle(&mut self, msg: NoteRetry, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Spool);
        self.guarded(ctx, move |act, ctx| {
            act.push_mark(msg.id, Mark::Retry(msg.state), None);
            act.kick(ctx);
        });
    }
}

impl Handler<ReadData> for Spool {
    type Result = ResponseFuture<Result<Bytes, SpoolError>>;

    fn handle(&mut self, msg: ReadData, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Spool);
        if let Some(body) = self.fresh.get(msg.id) {
            return Box::pin(async move { Ok(body) });
        }
        let Some((loc, seg)) = self
            .index
            .get(&msg.id)
            .and_then(|l| Some((l.loc(), self.segments.get(&l.loc().segment)?)))
        else {
            return Box::pin(async { Err(SpoolError::NotFound) });
        };
        let (reply, rx) = oneshot::channel();
        self.reads.pending().push(PendingRead {
            file: seg.segment.records.clone(),
            loc,
            reply,
        });
        self.kick_read(ctx);
        reply_future(rx)
    }
}

impl Handler<Flush> for Spool {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        self.check_flushed();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
