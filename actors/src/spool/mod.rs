//! The spool actor: the durable message store.
//!
//! It owns the segment files and an index from message id to record location; callers
//! name messages by id only. It stores and answers, and never decides what happens to a
//! message next (see [`messages`]).
//!
//! # Group commit
//! What must reach the disk goes in two lanes, each a [`Batcher`] of [`Round`]s: new
//! records (`Store`) in the store lane; done and recipient marks (`Remove`,
//! `MarkRecipients`) and retry notes in the mark lane. They touch different files
//! (segments, journals), so one job of each runs at a time, side by side; what arrives
//! meanwhile waits for the lane's next round, written with one `fdatasync` per file
//! touched ([`commit`]). A `Store` is answered after its round is durable, and only then
//! does the inbound session send 250. The mark lane lingers [`MARK_LINGER`] before a
//! round so one `fdatasync` carries more marks; the store lane never waits. A compaction
//! (store lane) runs only while the mark lane is idle, and the mark lane waits for it.
//!
//! # Honest failures
//! A store whose write fails is answered with the error (the session says 451) and its
//! bytes are cut off again. A mark whose write fails is kept and retried (a message
//! never leaves the spool on a failed write). Any failed write, or free space below
//! `spool.min_free`, makes the spool unhealthy ([`health`]): new transactions are
//! refused at MAIL FROM while delivery and marking go on; a probe every second turns it
//! healthy again once writes succeed with room to spare.
//!
//! # Compaction
//! A closed segment whose live records fill less than a quarter of it is compacted: its
//! live records are copied forward with their journal state in a round of their own,
//! the index is pointed at the copies, and the old segment is deleted. Disk use and
//! recovery time follow live data, not history.
//!
//! Files: [`record`] and [`journal`] (formats), [`files`] and [`commit`] (blocking
//! operations), [`recover`] (the start-up scan), [`health`], [`messages`], `handlers`
//! (the actor's message handlers).

pub mod commit;
pub mod files;
pub mod fresh;
mod handlers;
pub mod health;
pub mod journal;
pub mod messages;
pub mod record;
pub mod recover;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use impulse_runtime::alloc;
use impulse_runtime::pool::Pool;
use impulse_runtime::registry::Registration;
use impulse_runtime::supervise::{contain, fault_point, PanicCount};
use impulse_runtime::ActorClass;
use tokio::sync::oneshot;

use crate::batch::{Batcher, Pending};
use crate::ids::MessageId;
use crate::stats::Stats;
use commit::{CommitJob, CommitOutcome, Compaction, JournalAppend, Written};
use files::{Location, Segment};
use health::SpoolHealth;
use journal::{Entry, RetryState};
pub use messages::*;

/// How long a failed write waits before it is tried again.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// How long done and recipient marks wait for company before their round starts: nobody
/// waits for them with a client in front, and under load a round then carries many.
pub const MARK_LINGER: Duration = Duration::from_millis(5);
/// A closed segment is compacted once its live bytes are below 1/`COMPACT_RATIO` of it…
const COMPACT_RATIO: u64 = 4;

/// Settings of the spool, from `spool` in the config.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    /// A segment is closed for writing once it grows past this.
    pub segment_size: u64,
    /// Below this much free space the spool refuses new mail.
    pub min_free: u64,
}

type Reply<T> = oneshot::Sender<Result<T, SpoolError>>;

struct PendingStore {
    messages: Vec<NewMessage>,
    /// The bodies of `messages`, kept for [`fresh`] once they are durable.
    bodies: Vec<Bytes>,
    reply: Reply<Vec<MessageId>>,
}

enum Mark {
    Done,
    Rcpts(Vec<u16>),
    Retry(RetryState),
}

struct PendingMark {
    id: MessageId,
    mark: Mark,
    reply: Option<Reply<()>>,
}

/// A [`Location`] as the index keeps it: 16 bytes, not 24 (a million queued messages
/// are a million entries). Segments are numbered from 0, one more per segment file, so
/// their number fits in 32 bits for any spool that will ever exist.
#[derive(Debug, Clone, Copy)]
struct IndexLoc {
    offset: u64,
    segment: u32,
    len: u32,
}

impl From<Location> for IndexLoc {
    fn from(l: Location) -> IndexLoc {
        IndexLoc {
            offset: l.offset,
            segment: u32::try_from(l.segment).expect("segment numbers fit in 32 bits"),
            len: l.len,
        }
    }
}

impl IndexLoc {
    fn loc(self) -> Location {
        Location {
            segment: self.segment as u64,
            offset: self.offset,
            len: self.len,
        }
    }
}

/// The two group-commit lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Stores,
    Marks,
}

/// Work waiting for the next group commit of a lane.
#[derive(Default)]
struct Round {
    stores: Vec<PendingStore>,
    marks: Vec<PendingMark>,
    /// A segment to compact (a round of its own).
    compact: Option<u64>,
}

impl Pending for Round {
    fn is_empty(&self) -> bool {
        self.stores.is_empty() && self.marks.is_empty() && self.compact.is_none()
    }
    fn append(&mut self, later: Self) {
        self.stores.extend(later.stores);
        self.marks.extend(later.marks);
        self.compact = self.compact.or(later.compact);
    }
}

struct PendingRead {
    file: Arc<std::fs::File>,
    loc: Location,
    reply: Reply<Bytes>,
}

struct SegState {
    segment: Segment,
    size: u64,
    journal_len: u64,
    live: usize,
    live_bytes: u64,
}

/// The durable message store.
pub struct Spool {
    settings: SpoolSettings,
    pool: Pool,
    reg: Registration,
    stats: Arc<Stats>,
    health: Arc<SpoolHealth>,
    panics: Arc<PanicCount>,
    ready: bool,
    current: Option<u64>,
    next_seq: u64,
    segments: HashMap<u64, SegState>,
    index: HashMap<MessageId, IndexLoc>,
    /// Stores and compactions.
    store_lane: Batcher<Round>,
    /// Done, recipient and retry marks.
    mark_lane: Batcher<Round>,
    /// A compaction is being written: the mark lane waits.
    compacting: bool,
    reads: Batcher<Vec<PendingRead>>,
    /// Bodies of recently stored messages, to answer reads without the disk.
    fresh: fresh::Fresh,
    flush_waiters: Vec<oneshot::Sender<()>>,
    /// A write failed: the spool stays unhealthy until one succeeds.
    write_failed: bool,
    probing: bool,
}

impl Spool {
    pub fn new(
        settings: SpoolSettings,
        pool: Pool,
        reg: Registration,
        stats: Arc<Stats>,
        health: Arc<SpoolHealth>,
        panics: Arc<PanicCount>,
    ) -> Spool {
        Spool {
            settings,
            pool,
            reg,
            stats,
            health,
            panics,
            ready: false,
            current: None,
            next_seq: 0,
            segments: HashMap::new(),
            index: HashMap::new(),
            store_lane: Batcher::default(),
            mark_lane: Batcher::with_linger(MARK_LINGER),
            compacting: false,
            reads: Batcher::default(),
            fresh: fresh::Fresh::new(fresh::DEFAULT_BUDGET),
            flush_waiters: Vec::new(),
            write_failed: false,
            probing: false,
        }
    }

    fn update_state(&self) {
        let busy = self.store_lane.is_busy() || self.mark_lane.is_busy();
        let state = match (self.ready, busy, self.health.is_healthy()) {
            (false, _, _) => "recovering",
            (true, _, false) => "unhealthy",
            (true, true, true) => "writing",
            (true, false, true) => "idle",
        };
        self.reg.set_state(state);
        let waiting = self.store_lane.peek().stores.len() + self.mark_lane.peek().marks.len();
        self.reg.set_mailbox(waiting);
        self.stats.messages_live.store(
            self.index.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn lane(&mut self, lane: Lane) -> &mut Batcher<Round> {
        match lane {
            Lane::Stores => &mut self.store_lane,
            Lane::Marks => &mut self.mark_lane,
        }
    }

    /// Nothing pending or in flight in either lane.
    fn is_idle(&self) -> bool {
        self.store_lane.is_idle() && self.mark_lane.is_idle()
    }

    /// Start the next group commit of each lane that has work and no job in flight.
    fn kick(&mut self, ctx: &mut Context<Self>) {
        if !self.ready {
            return;
        }
        self.kick_lane(Lane::Stores, ctx);
        self.kick_lane(Lane::Marks, ctx);
        self.check_flushed();
        self.update_state();
    }

    fn kick_lane(&mut self, lane: Lane, ctx: &mut Context<Self>) {
        if lane == Lane::Marks && self.compacting {
            return;
        }
        let now = Instant::now();
        if let Some(wait) = self.lane(lane).arm_retry(now) {
            ctx.run_later(wait, move |act, ctx| {
                act.lane(lane).retry_due();
                act.kick(ctx);
            });
        }
        let Some(mut round) = self.lane(lane).start(now) else {
            return;
        };
        // A compaction reads the old journal: it runs alone, with the mark lane idle, so
        // no mark written to that journal meanwhile can be missed by the copy.
        if round.compact.is_some() {
            if round.stores.is_empty() && !self.mark_lane.is_busy() {
                self.compacting = true;
            } else {
                round.compact = None; // tried again later by `maybe_compact`
            }
        }
        if round.is_empty() {
            self.lane(lane).done();
            return;
        }
        let compacting = round.compact.is_some();
        let job = self.build_job(&mut round);
        let fut = self.pool.run(move || commit::commit(job));
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let _g = alloc::enter(ActorClass::Spool);
            if compacting {
                act.compacting = false;
            }
            let retry = match res {
                Ok(outcome) => act.committed(round, outcome),
                Err(e) => {
                    // The job panicked: nothing is known to be durable. Stores are
                    // refused (their data went with the job); marks are tried again.
                    eprintln!("spool: commit job failed: {e}");
                    let err = SpoolError::Corrupt(format!("commit job failed: {e}"));
                    for p in std::mem::take(&mut round.stores) {
                        let _ = p.reply.send(Err(err.clone()));
                    }
                    round.marks
                }
            };
            if retry.is_empty() {
                act.lane(lane).done();
            } else {
                let again = Round {
                    marks: retry,
                    ..Round::default()
                };
                act.lane(lane).fail(again, Instant::now(), RETRY_BACKOFF);
            }
            act.kick(ctx);
            act.maybe_compact(ctx);
        }));
    }

    fn build_job(&self, round: &mut Round) -> CommitJob {
        let current = self.current.and_then(|seq| {
            self.segments
                .get(&seq)
                .map(|s| (s.segment.clone(), s.size, s.journal_len))
        });
        let mut journals: HashMap<u64, JournalAppend> = HashMap::new();
        for m in &round.marks {
            let Some(seg) = self
                .index
                .get(&m.id)
                .and_then(|l| self.segments.get(&l.loc().segment))
            else {
                continue;
            };
            let j = journals
                .entry(seg.segment.seq)
                .or_insert_with(|| JournalAppend {
                    seq: seg.segment.seq,
                    file: seg.segment.journal.clone(),
                    len: seg.journal_len,
                    buf: Vec::new(),
                    sync: false,
                });
            let entry = match &m.mark {
                Mark::Done => Entry::Done(m.id),
                Mark::Rcpts(idx) => Entry::Rcpts(m.id, idx.clone()),
                Mark::Retry(s) => Entry::Retry(m.id, *s),
            };
            j.sync |= !matches!(m.mark, Mark::Retry(_));
            journal::encode(&entry, &mut j.buf);
        }
        let compaction = round.compact.and_then(|seq| {
            let seg = self.segments.get(&seq)?;
            let live = self
                .index
                .iter()
                .map(|(id, l)| (*id, l.loc()))
                .filter(|(_, l)| l.segment == seq)
                .collect();
            Some(Compaction {
                source: seg.segment.clone(),
                live,
            })
        });
        CommitJob {
            dir: self.settings.dir.clone(),
            current,
            next_seq: self.next_seq,
            segment_limit: self.settings.segment_size,
            stores: round
                .stores
                .iter_mut()
                .map(|p| {
                    p.bodies = p.messages.iter().map(|m| m.data.clone()).collect();
                    std::mem::take(&mut p.messages)
                })
                .collect(),
            compaction,
            journals: journals.into_values().collect(),
        }
    }

    /// Apply what a commit did: answer and update the index; returns the marks whose
    /// journal write failed, to be tried again.
    fn committed(&mut self, round: Round, outcome: CommitOutcome) -> Vec<PendingMark> {
        let mut failure: Option<SpoolError> = None;
        let Round {
            stores,
            marks,
            compact,
        } = round;
        match outcome.records {
            Some(Ok(written)) => self.records_written(written, stores, compact),
            Some(Err(e)) => {
                let err = SpoolError::io("write", &e);
                eprintln!("spool: {err}");
                for p in stores {
                    let _ = p.reply.send(Err(err.clone()));
                }
                failure = Some(err);
            }
            None => {}
        }
        let mut failed_segments = Vec::new();
        for (seq, res) in outcome.journals {
            match res {
                Ok(len) => {
                    if let Some(s) = self.segments.get_mut(&seq) {
                        s.journal_len = len;
                    }
                }
                Err(e) => {
                    let err = SpoolError::io("journal append", &e);
                    eprintln!("spool: {err} (segment {seq:016x}); will retry");
                    failed_segments.push(seq);
                    failure = Some(err);
                }
            }
        }
        let mut retry = Vec::new();
        for m in marks {
            let seg = self.index.get(&m.id).map(|l| l.loc().segment);
            match seg {
                None => {
                    if let Some(r) = m.reply {
                        let _ = r.send(Err(SpoolError::NotFound));
                    }
                }
                Some(seq) if failed_segments.contains(&seq) => retry.push(m),
                Some(_) => self.mark_durable(m),
            }
        }
        self.write_failed = failure.is_some();
        self.judge_health(failure.map(|e| e.to_string()), outcome.free.ok());
        retry
    }

    fn records_written(&mut self, w: Written, stores: Vec<PendingStore>, compact: Option<u64>) {
        let seq = w.segment.seq;
        if w.created {
            self.next_seq = seq + 1;
            let old = self.current.replace(seq);
            self.segments.insert(
                seq,
                SegState {
                    segment: w.segment.clone(),
                    size: 0,
                    journal_len: 0,
                    live: 0,
                    live_bytes: 0,
                },
            );
            if let Some(old) = old {
                self.maybe_delete(old);
            }
        }
        if let Some(s) = self.segments.get_mut(&seq) {
            s.size = w.size;
            s.journal_len = w.journal_len;
        }
        for (p, stored) in stores.into_iter().zip(w.stored) {
            let ids = stored.iter().map(|(id, _)| *id).collect();
            for ((id, loc), body) in stored.into_iter().zip(p.bodies) {
                self.add_live(id, loc);
                self.fresh.insert(id, body);
            }
            let _ = p.reply.send(Ok(ids));
        }
        for (id, loc) in w.copied {
            self.forget(id);
            self.add_live(id, loc);
        }
        for id in w.unreadable {
            eprintln!("spool: message {id} no longer verifies; left in its segment");
        }
        if let Some(old) = compact {
            self.maybe_delete(old);
        }
    }

    fn add_live(&mut self, id: MessageId, loc: Location) {
        let _g = alloc::enter(ActorClass::Message);
        if let Some(s) = self.segments.get_mut(&loc.segment) {
            s.live += 1;
            s.live_bytes += loc.len as u64;
        }
        self.index.insert(id, IndexLoc::from(loc));
    }

    /// Drop `id` from the index and its segment's live count.
    fn forget(&mut self, id: MessageId) -> Option<u64> {
        self.fresh.remove(id);
        let loc = self.index.remove(&id)?.loc();
        if let Some(s) = self.segments.get_mut(&loc.segment) {
            s.live = s.live.saturating_sub(1);
            s.live_bytes = s.live_bytes.saturating_sub(loc.len as u64);
        }
        Some(loc.segment)
    }

    fn mark_durable(&mut self, m: PendingMark) {
        if matches!(m.mark, Mark::Done) {
            if let Some(seq) = self.forget(m.id) {
                self.maybe_delete(seq);
            }
        }
        if let Some(r) = m.reply {
            let _ = r.send(Ok(()));
        }
    }

    fn judge_health(&mut self, failure: Option<String>, free: Option<u64>) {
        let low = free.filter(|f| *f < self.settings.min_free);
        match (failure, low) {
            (Some(e), _) => self.health.set_unhealthy(e),
            (None, Some(f)) => self.health.set_unhealthy(format!(
                "only {f} bytes free in {} (spool.min_free is {})",
                self.settings.dir.display(),
                self.settings.min_free
            )),
            (None, None) if !self.write_failed => self.health.set_healthy(),
            (None, None) => {}
        }
    }

    /// While idle: check the free space (so a disk filled by someone else is noticed
    /// before a store fails) and, while unhealthy, whether writes work again.
    fn probe(&mut self, ctx: &mut Context<Self>) {
        if self.probing || !self.ready || !self.is_idle() {
            return;
        }
        self.probing = true;
        let dir = self.settings.dir.clone();
        let write = !self.health.is_healthy();
        let job = self.pool.run(move || {
            let free = files::free_bytes(&dir);
            let written = if write { files::probe(&dir) } else { Ok(()) };
            (written, free)
        });
        ctx.spawn(job.into_actor(self).map(|res, act, ctx| {
            act.probing = false;
            if let Ok((written, free)) = res {
                let failure = written
                    .err()
                    .map(|e| SpoolError::io("probe", &e).to_string());
                act.write_failed = failure.is_some();
                act.judge_health(failure, free.ok());
            }
            act.update_state();
            act.kick(ctx);
        }));
    }

    /// Delete a segment that is no longer written and holds no live message.
    fn maybe_delete(&mut self, seq: u64) {
        let empty = self.segments.get(&seq).is_some_and(|s| s.live == 0);
        if self.current == Some(seq) || !empty {
            return;
        }
        self.segments.remove(&seq);
        let dir = self.settings.dir.clone();
        self.pool.spawn(move || {
            if let Err(e) = files::delete_segment(&dir, seq) {
                eprintln!("spool: cannot delete segment {seq:016x}: {e}");
            }
        });
    }

    /// Queue the compaction of the emptiest closed segment that is mostly dead.
    fn maybe_compact(&mut self, ctx: &mut Context<Self>) {
        if !self.ready || !self.is_idle() || !self.health.is_healthy() {
            return;
        }
        let candidate = self
            .segments
            .iter()
            .filter(|(seq, s)| {
                Some(**seq) != self.current
                    && s.live > 0
                    && s.live_bytes * COMPACT_RATIO < s.size
                    && s.size - s.live_bytes >= self.settings.segment_size / 2
            })
            .min_by_key(|(_, s)| s.live_bytes)
            .map(|(seq, _)| *seq);
        if let Some(seq) = candidate {
            self.store_lane.pending().compact = Some(seq);
            self.kick(ctx);
        }
    }

    fn check_flushed(&mut self) {
        if !self.is_idle() {
            return;
        }
        for w in self.flush_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    fn kick_read(&mut self, ctx: &mut Context<Self>) {
        let Some(batch) = self.reads.start(Instant::now()) else {
            return;
        };
        let job = self.pool.run(move || {
            for r in batch {
                let res = files::read_at(&r.file, r.loc)
                    .map_err(|e| SpoolError::io("read", &e))
                    .and_then(|buf| match record::decode_view(&buf) {
                        Ok((v, _)) => Ok(Bytes::copy_from_slice(v.data)),
                        Err(e) => Err(SpoolError::Corrupt(format!("{:?}: {e:?}", r.loc))),
                    });
                let _ = r.reply.send(res);
            }
        });
        ctx.spawn(job.into_actor(self).map(|res, act, ctx| {
            if let Err(e) = res {
                eprintln!("spool: read job failed: {e}");
            }
            act.reads.done();
            act.kick_read(ctx);
        }));
    }

    /// Run a handler body with a panic contained: the request it was serving is dropped
    /// (its caller hears `Unavailable` and may ask again), the spool's state stays.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        let panics = self.panics.clone();
        contain("spool", Some(&panics), || {
            fault_point("spool");
            f(self, ctx)
        });
    }

    fn push_mark(&mut self, id: MessageId, mark: Mark, reply: Option<Reply<()>>) {
        self.mark_lane
            .pending()
            .marks
            .push(PendingMark { id, mark, reply });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_are_16_bytes_and_give_their_location_back() {
        assert_eq!(std::mem::size_of::<IndexLoc>(), 16);
        let loc = Location {
            segment: 7,
            offset: 5 << 33,
            len: u32::MAX,
        };
        assert_eq!(IndexLoc::from(loc).loc(), loc);
    }
}
