//! One group commit, as it runs on the pool (blocking).
//!
//! A commit appends, with one `fdatasync` per file touched:
//! - the new message records of every `Store` that arrived meanwhile, to the current
//!   segment (or a new one once the current is past `segment_limit`);
//! - for a compaction, the live records of the segment being compacted, copied forward
//!   with their journal state (recipients final, retry state) into the destination
//!   segment's journal;
//! - journal entries (done, recipients final, retry notes) to the journals of the
//!   segments the messages live in.
//!
//! Each append is all-or-nothing ([`files::append_at`] cuts a failed append back), and a
//! compaction's records and journal entries stand or fall together.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::files::{self, Location, Segment};
use super::journal::{self, Entry};
use super::messages::NewMessage;
use super::record;
use crate::ids::MessageId;

/// Entries for one journal.
pub struct JournalAppend {
    pub seq: u64,
    pub file: Arc<File>,
    /// The journal's length before this append.
    pub len: u64,
    pub buf: Vec<u8>,
    /// Whether the entries must be durable (done and recipient marks) or not (retry notes).
    pub sync: bool,
}

/// The live records of one segment, to copy forward.
pub struct Compaction {
    pub source: Segment,
    pub live: Vec<(MessageId, Location)>,
}

/// What one commit is asked to do.
pub struct CommitJob {
    pub dir: PathBuf,
    /// The segment being written, with its size and its journal's length.
    pub current: Option<(Segment, u64, u64)>,
    pub next_seq: u64,
    pub segment_limit: u64,
    /// Per `Store`, its messages.
    pub stores: Vec<Vec<NewMessage>>,
    pub compaction: Option<Compaction>,
    pub journals: Vec<JournalAppend>,
}

/// The records a commit wrote.
pub struct Written {
    pub segment: Segment,
    pub created: bool,
    /// The segment's size and its journal's length after the commit.
    pub size: u64,
    pub journal_len: u64,
    /// Per `Store`, its messages' ids and locations.
    pub stored: Vec<Vec<(MessageId, Location)>>,
    /// Records copied by a compaction, at their new locations.
    pub copied: Vec<(MessageId, Location)>,
    /// Records of the compacted segment that did not verify any more (left behind).
    pub unreadable: Vec<MessageId>,
}

/// What a commit did.
pub struct CommitOutcome {
    /// `None` when there were no records to write.
    pub records: Option<io::Result<Written>>,
    /// Per journal append (in the order given): its segment and new length, or the error.
    pub journals: Vec<(u64, io::Result<u64>)>,
    /// Free bytes on the spool's file system after the commit.
    pub free: io::Result<u64>,
}

/// Run one commit.
pub fn commit(job: CommitJob) -> CommitOutcome {
    let records = if job.stores.is_empty() && job.compaction.is_none() {
        None
    } else {
        Some(write_records(
            &job.dir,
            job.current,
            job.next_seq,
            job.segment_limit,
            job.stores,
            job.compaction,
        ))
    };
    let journals = job
        .journals
        .into_iter()
        .map(|j| {
            let res = files::append_at(&j.file, j.len, &j.buf, j.sync);
            (j.seq, res.map(|_| j.len + j.buf.len() as u64))
        })
        .collect();
    CommitOutcome {
        records,
        journals,
        free: files::free_bytes(&job.dir),
    }
}

fn write_records(
    dir: &std::path::Path,
    current: Option<(Segment, u64, u64)>,
    next_seq: u64,
    limit: u64,
    stores: Vec<Vec<NewMessage>>,
    compaction: Option<Compaction>,
) -> io::Result<Written> {
    let (segment, start, jstart, created) = match current {
        Some((seg, size, jlen)) if size < limit => (seg, size, jlen, false),
        _ => (files::create_segment(dir, next_seq)?, 0, 0, true),
    };
    let total: usize = stores.iter().flatten().map(|m| m.data.len() + 512).sum();
    let mut buf = Vec::with_capacity(total);
    let mut stored = Vec::with_capacity(stores.len());
    for group in stores {
        let mut out = Vec::with_capacity(group.len());
        for m in group {
            let offset = buf.len();
            record::encode_message(&m.meta, &m.data, &mut buf);
            out.push((m.meta.id, loc(segment.seq, start, offset, buf.len())));
        }
        stored.push(out);
    }
    let mut copied = Vec::new();
    let mut unreadable = Vec::new();
    let mut jbuf = Vec::new();
    if let Some(c) = compaction {
        let state = source_state(&c.source)?;
        for (id, at) in c.live {
            let bytes = files::read_at(&c.source.records, at)?;
            if record::verify(&bytes).is_err() || record::header_id(&bytes) != id {
                unreadable.push(id);
                continue;
            }
            let offset = buf.len();
            buf.extend_from_slice(&bytes);
            copied.push((id, loc(segment.seq, start, offset, buf.len())));
            for e in state.get(&id).into_iter().flatten() {
                journal::encode(e, &mut jbuf);
            }
        }
    }
    let res = files::append_at(&segment.records, start, &buf, jbuf.is_empty()).and_then(|_| {
        if jbuf.is_empty() {
            return Ok(());
        }
        let both = files::append_at(&segment.journal, jstart, &jbuf, true)
            .and_then(|_| segment.records.sync_data());
        if both.is_err() {
            let _ = segment.records.set_len(start);
            let _ = segment.journal.set_len(jstart);
        }
        both
    });
    if let Err(e) = res {
        if created {
            let _ = files::delete_segment(dir, segment.seq);
        }
        return Err(e);
    }
    Ok(Written {
        size: start + buf.len() as u64,
        journal_len: jstart + jbuf.len() as u64,
        segment,
        created,
        stored,
        copied,
        unreadable,
    })
}

fn loc(seq: u64, start: u64, offset: usize, end: usize) -> Location {
    Location {
        segment: seq,
        offset: start + offset as u64,
        len: (end - offset) as u32,
    }
}

/// The journal state of each message of `source`, as entries to copy forward: its final
/// recipients and its last retry state.
fn source_state(source: &Segment) -> io::Result<HashMap<MessageId, Vec<Entry>>> {
    let len = source.journal.metadata()?.len();
    let buf = files::read_at(
        &source.journal,
        Location {
            segment: source.seq,
            offset: 0,
            len: len as u32,
        },
    )?;
    let mut rcpts: HashMap<MessageId, Vec<u16>> = HashMap::new();
    let mut retry = HashMap::new();
    for e in journal::decode(&buf).entries {
        match e {
            Entry::Rcpts(id, idx) => rcpts.entry(id).or_default().extend(idx),
            Entry::Retry(id, s) => {
                retry.insert(id, s);
            }
            Entry::Done(_) => {}
        }
    }
    let mut out: HashMap<MessageId, Vec<Entry>> = HashMap::new();
    for (id, idx) in rcpts {
        out.entry(id).or_default().push(Entry::Rcpts(id, idx));
    }
    for (id, s) in retry {
        out.entry(id).or_default().push(Entry::Retry(id, s));
    }
    Ok(out)
}
