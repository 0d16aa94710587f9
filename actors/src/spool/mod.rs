//! The spool actor: the durable message store.
//!
//! Messages are appended to segment files in batches: while one batch is being written
//! and fsynced on the pool, new `Store` requests queue up, and the next batch takes them
//! all at once — one `fdatasync` for many messages (group commit). Only after the fsync
//! does the spool hand each message to its domain container (through the [`Router`]) and
//! answer the inbound session, which then sends 250. `Remove` marks messages done in the
//! segment's `.done` file, batched the same way; a segment whose every message is done
//! (and that is no longer being written) is deleted. On start the spool scans the
//! directory on the pool and requeues every live message.
//!
//! Files: [`record`] (format), [`files`] (blocking operations), [`messages`].

pub mod files;
pub mod messages;
pub mod record;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use impulse_runtime::alloc;
use impulse_runtime::pool::Pool;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;
use tokio::sync::oneshot;

use crate::ids::{IdGen, MessageId};
use crate::router::Router;
use crate::stats::Stats;
use files::{Location, Segment};
pub use messages::*;

/// A segment is closed for writing once it grows past this.
const SEGMENT_LIMIT: u64 = 64 * 1024 * 1024;
/// Largest batch written with one fsync.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

struct PendingStore {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<MessageId>, SpoolError>>,
}

struct PendingDone {
    id: MessageId,
    loc: Location,
    reply: oneshot::Sender<Result<(), SpoolError>>,
}

struct PendingRead {
    file: Arc<std::fs::File>,
    loc: Location,
    reply: oneshot::Sender<Result<Bytes, SpoolError>>,
}

struct SegState {
    segment: Segment,
    live: usize,
}

/// The durable message store.
pub struct Spool {
    dir: PathBuf,
    pool: Pool,
    reg: Registration,
    router: Arc<Router>,
    stats: Arc<Stats>,
    ids: Arc<IdGen>,
    ready: bool,
    current: Option<(Segment, u64)>,
    next_seq: u64,
    segments: HashMap<u64, SegState>,
    pending: VecDeque<PendingStore>,
    writing: bool,
    done_queue: Vec<PendingDone>,
    marking: bool,
    flush_waiters: Vec<oneshot::Sender<()>>,
    reads: Vec<PendingRead>,
    reading: bool,
    /// Retry notes waiting for the next append, per segment.
    notes: HashMap<u64, Vec<u8>>,
    noting: bool,
}

impl Spool {
    pub fn new(
        dir: PathBuf,
        pool: Pool,
        reg: Registration,
        router: Arc<Router>,
        stats: Arc<Stats>,
        ids: Arc<IdGen>,
    ) -> Spool {
        Spool {
            dir,
            pool,
            reg,
            router,
            stats,
            ids,
            ready: false,
            current: None,
            next_seq: 0,
            segments: HashMap::new(),
            pending: VecDeque::new(),
            writing: false,
            done_queue: Vec::new(),
            marking: false,
            flush_waiters: Vec::new(),
            reads: Vec::new(),
            reading: false,
            notes: HashMap::new(),
            noting: false,
        }
    }

    fn update_state(&self) {
        let state = match (self.ready, self.writing || self.marking) {
            (false, _) => "recovering",
            (true, true) => "writing",
            (true, false) => "idle",
        };
        self.reg.set_state(state);
        self.reg
            .set_mailbox(self.pending.len() + self.done_queue.len());
    }

    /// Start the next write batch if none is in flight.
    fn kick_write(&mut self, ctx: &mut Context<Self>) {
        if !self.ready || self.writing || self.pending.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(p) = self.pending.front() {
            let size: usize = p.messages.iter().map(|m| m.data.len() + 256).sum();
            if !batch.is_empty() && bytes + size > BATCH_BYTES {
                break;
            }
            bytes += size;
            batch.extend(self.pending.pop_front());
        }
        self.writing = true;
        let dir = self.dir.clone();
        let current = self.current.clone();
        let next_seq = self.next_seq;
        let records: Vec<Vec<NewMessage>> = batch
            .iter_mut()
            .map(|p| std::mem::take(&mut p.messages))
            .collect();
        let job = self
            .pool
            .run(move || write_batch(&dir, current, next_seq, records));
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            let _g = alloc::enter(ActorClass::Spool);
            act.writing = false;
            let res = match res {
                Ok(r) => r.map_err(|e| SpoolError::Io(e.to_string())),
                Err(e) => Err(SpoolError::Io(e.to_string())),
            };
            match res {
                Ok(written) => act.batch_written(written, batch),
                Err(e) => {
                    eprintln!("spool: batch write failed: {e}");
                    // The segment's tail is unknown now: continue in a fresh one.
                    act.current = None;
                    act.next_seq += 1;
                    for p in batch {
                        let _ = p.reply.send(Err(e.clone()));
                    }
                }
            }
            act.kick_write(ctx);
            act.check_flushed();
            act.update_state();
        }));
        self.update_state();
    }

    fn batch_written(&mut self, written: Written, batch: Vec<PendingStore>) {
        let seq = written.segment.seq;
        if written.created {
            self.next_seq = seq + 1;
            let old = self.current.take();
            self.segments.insert(
                seq,
                SegState {
                    segment: written.segment.clone(),
                    live: 0,
                },
            );
            if let Some((old, _)) = old {
                self.maybe_delete(old.seq);
            }
        }
        self.current = Some((written.segment, written.size));
        for (p, stored) in batch.into_iter().zip(written.stored) {
            let ids = stored.iter().map(|s| s.meta.id).collect();
            for s in stored {
                if let Some(seg) = self.segments.get_mut(&s.loc.segment) {
                    seg.live += 1;
                }
                Stats::add(&self.stats.messages_live, 1);
                self.router.enqueue(s);
            }
            let _ = p.reply.send(Ok(ids));
        }
    }

    /// Start the next done-marking batch if none is in flight.
    fn kick_done(&mut self, ctx: &mut Context<Self>) {
        if !self.ready || self.marking || self.done_queue.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.done_queue);
        let mut per_segment: HashMap<u64, (Arc<std::fs::File>, Vec<u8>)> = HashMap::new();
        let mut missing = Vec::new();
        for (i, d) in batch.iter().enumerate() {
            match self.segments.get(&d.loc.segment) {
                Some(seg) => {
                    let entry = per_segment
                        .entry(d.loc.segment)
                        .or_insert_with(|| (seg.segment.done.clone(), Vec::new()));
                    record::encode_done(d.id, &mut entry.1);
                }
                None => missing.push(i),
            }
        }
        if !missing.is_empty() {
            eprintln!("spool: {} done marks for unknown segments", missing.len());
        }
        self.marking = true;
        let job = self.pool.run(move || -> std::io::Result<()> {
            for (_, (file, buf)) in per_segment {
                files::append_durably(&file, &buf)?;
            }
            Ok(())
        });
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            let _g = alloc::enter(ActorClass::Spool);
            act.marking = false;
            let res = match res {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SpoolError::Io(e.to_string())),
                Err(e) => Err(SpoolError::Io(e.to_string())),
            };
            for d in batch {
                if res.is_ok() {
                    Stats::sub(&act.stats.messages_live, 1);
                    if let Some(seg) = act.segments.get_mut(&d.loc.segment) {
                        seg.live = seg.live.saturating_sub(1);
                    }
                    act.maybe_delete(d.loc.segment);
                }
                let _ = d.reply.send(res.clone());
            }
            act.kick_done(ctx);
            act.check_flushed();
            act.update_state();
        }));
        self.update_state();
    }

    /// Start the next read batch if none is in flight: one pool job reads every message
    /// asked for meanwhile (page-cache reads are short; the job hand-off is the cost).
    fn kick_read(&mut self, ctx: &mut Context<Self>) {
        if self.reading || self.reads.is_empty() {
            return;
        }
        self.reading = true;
        let batch = std::mem::take(&mut self.reads);
        let job = self.pool.run(move || {
            for r in batch {
                let res = files::read_record(&r.file, r.loc)
                    .map(|(_, data)| Bytes::from(data))
                    .map_err(|e| SpoolError::Io(e.to_string()));
                let _ = r.reply.send(res);
            }
        });
        ctx.spawn(job.into_actor(self).map(|res, act, ctx| {
            if let Err(e) = res {
                eprintln!("spool: read job failed: {e}");
            }
            act.reading = false;
            act.kick_read(ctx);
        }));
    }

    /// Append the retry notes gathered so far, one pool job at a time, without a sync.
    fn kick_notes(&mut self, ctx: &mut Context<Self>) {
        if self.noting || self.notes.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        for (seq, buf) in self.notes.drain() {
            if let Some(seg) = self.segments.get(&seq) {
                batch.push((seg.segment.retry.clone(), buf));
            }
        }
        self.noting = true;
        let job = self.pool.run(move || {
            for (file, buf) in batch {
                if let Err(e) = files::append(&file, &buf) {
                    eprintln!("spool: cannot note retry state: {e}");
                }
            }
        });
        ctx.spawn(job.into_actor(self).map(|_, act, ctx| {
            act.noting = false;
            act.kick_notes(ctx);
        }));
    }

    /// Delete a segment that is no longer written and holds no live message.
    fn maybe_delete(&mut self, seq: u64) {
        let is_current = self.current.as_ref().is_some_and(|(s, _)| s.seq == seq);
        let empty = self.segments.get(&seq).is_some_and(|s| s.live == 0);
        if is_current || !empty {
            return;
        }
        self.segments.remove(&seq);
        let dir = self.dir.clone();
        self.pool.spawn(move || {
            if let Err(e) = files::delete_segment(&dir, seq) {
                eprintln!("spool: cannot delete segment {seq:016x}: {e}");
            }
        });
    }

    fn check_flushed(&mut self) {
        if self.writing || self.marking || !self.pending.is_empty() || !self.done_queue.is_empty() {
            return;
        }
        for w in self.flush_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    fn recovered(&mut self, r: files::Recovery, ctx: &mut Context<Self>) {
        self.next_seq = r.next_seq;
        for (segment, live) in r.segments {
            self.segments
                .insert(segment.seq, SegState { segment, live });
        }
        eprintln!(
            "spool: recovered {} messages from {} segments ({} removed, {} torn tails cut)",
            r.messages.len(),
            self.segments.len(),
            r.removed_segments,
            r.truncated_tails
        );
        for m in r.messages {
            self.ids.observe(m.meta.id);
            Stats::add(&self.stats.messages_live, 1);
            self.router.enqueue(Spooled {
                meta: m.meta,
                loc: m.loc,
                size: m.size,
                retry: m.retry,
            });
        }
        self.ready = true;
        self.kick_write(ctx);
        self.kick_done(ctx);
        self.update_state();
    }
}

/// What one write batch produced.
struct Written {
    segment: Segment,
    created: bool,
    size: u64,
    /// Per pending `Store`, its spooled messages.
    stored: Vec<Vec<Spooled>>,
}

/// Runs on the pool: append every message of the batch to the current segment (or a new
/// one) with a single write and a single `fdatasync`.
fn write_batch(
    dir: &std::path::Path,
    current: Option<(Segment, u64)>,
    next_seq: u64,
    batch: Vec<Vec<NewMessage>>,
) -> std::io::Result<Written> {
    let (segment, start, created) = match current {
        Some((seg, size)) if size < SEGMENT_LIMIT => (seg, size, false),
        _ => (files::create_segment(dir, next_seq)?, 0, true),
    };
    let total: usize = batch.iter().flatten().map(|m| m.data.len() + 512).sum();
    let mut buf = Vec::with_capacity(total);
    let mut stored = Vec::with_capacity(batch.len());
    for group in batch {
        let mut out = Vec::with_capacity(group.len());
        for m in group {
            let offset = buf.len();
            record::encode_message(&m.meta, &m.data, &mut buf);
            out.push(Spooled {
                loc: Location {
                    segment: segment.seq,
                    offset: start + offset as u64,
                    len: (buf.len() - offset) as u32,
                },
                size: m.data.len() as u64,
                meta: m.meta,
                retry: None,
            });
        }
        stored.push(out);
    }
    files::append_durably(&segment.records, &buf)?;
    Ok(Written {
        size: start + buf.len() as u64,
        segment,
        created,
        stored,
    })
}

impl Actor for Spool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Spool);
        ctx.set_mailbox_capacity(1024);
        self.update_state();
        let dir = self.dir.clone();
        let job = self.pool.run(move || files::recover(&dir));
        ctx.spawn(job.into_actor(self).map(|res, act, ctx| {
            let _g = alloc::enter(ActorClass::Spool);
            match res {
                Ok(Ok(r)) => act.recovered(r, ctx),
                Ok(Err(e)) => fatal(&format!(
                    "spool recovery failed in {}: {e}",
                    act.dir.display()
                )),
                Err(e) => fatal(&format!("spool recovery failed: {e}")),
            }
        }));
    }
}

fn fatal(reason: &str) {
    eprintln!("impulsed: {reason}");
    System::current().stop_with_code(1);
}

impl Handler<Store> for Spool {
    type Result = ResponseFuture<Result<Vec<MessageId>, SpoolError>>;

    fn handle(&mut self, msg: Store, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Spool);
        let (reply, rx) = oneshot::channel();
        self.pending.push_back(PendingStore {
            messages: msg.messages,
            reply,
        });
        self.kick_write(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(SpoolError::Unavailable)) })
    }
}

impl Handler<Remove> for Spool {
    type Result = ResponseFuture<Result<(), SpoolError>>;

    fn handle(&mut self, msg: Remove, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Spool);
        let (reply, rx) = oneshot::channel();
        self.done_queue.push(PendingDone {
            id: msg.id,
            loc: msg.loc,
            reply,
        });
        self.kick_done(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(SpoolError::Unavailable)) })
    }
}

impl Handler<ReadData> for Spool {
    type Result = ResponseFuture<Result<Bytes, SpoolError>>;

    fn handle(&mut self, msg: ReadData, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Spool);
        let Some(seg) = self.segments.get(&msg.loc.segment) else {
            return Box::pin(async { Err(SpoolError::NotFound) });
        };
        let (reply, rx) = oneshot::channel();
        self.reads.push(PendingRead {
            file: seg.segment.records.clone(),
            loc: msg.loc,
            reply,
        });
        self.kick_read(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(SpoolError::Unavailable)) })
    }
}

impl Handler<NoteRetry> for Spool {
    type Result = ();

    fn handle(&mut self, msg: NoteRetry, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Spool);
        let buf = self.notes.entry(msg.loc.segment).or_default();
        record::encode_retry(msg.id, msg.state, buf);
        self.kick_notes(ctx);
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
