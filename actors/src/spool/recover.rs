//! The start-up recovery scan (blocking; runs on the pool).
//!
//! 1. Segments are read in order. Each segment's journal is read first (its entries
//!    apply to the records of that segment only); a torn journal tail is cut so appends
//!    continue after its last whole entry.
//! 2. The segment is scanned record by record. A record that verifies and is not done is
//!    live. A record that does not verify costs itself only: the scan resynchronises to
//!    the next record that verifies, and the bytes in between are copied to
//!    `quarantine/` and reported.
//! 3. Compaction copies a live record, with its journal state, into a newer segment
//!    before the old segment goes; a crash in between leaves two copies. The newest copy
//!    wins (it has every mark made since), and each older copy gets a `Done` entry in its
//!    own journal so it can never come back.
//! 4. A segment with nothing live is deleted.
//!
//! Live messages come back grouped by destination domain, already in their compact
//! queued form, so a million of them need no per-message strings on the way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::files::{self, Location, Segment};
use super::journal::{self, Entry, RetryState};
use super::record;
use crate::ids::MessageId;
use crate::queued::PackedEnvelope;

/// A live message found by the scan.
#[derive(Debug)]
pub struct Recovered {
    pub id: MessageId,
    pub received_at: u64,
    /// Bytes of message data.
    pub size: u64,
    pub loc: Location,
    /// Sender and recipients, those with a final outcome flagged.
    pub envelope: PackedEnvelope,
    pub retry: Option<RetryState>,
}

/// A segment that still holds live messages.
#[derive(Debug)]
pub struct SegmentInfo {
    pub segment: Segment,
    pub size: u64,
    pub journal_len: u64,
    pub live: usize,
    pub live_bytes: u64,
}

/// A stretch of a segment that did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
    /// Where its bytes were kept, if that worked.
    pub quarantined: Option<PathBuf>,
}

/// What the scan found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Live messages by destination domain.
    pub by_domain: Vec<(String, Vec<Recovered>)>,
    pub segments: Vec<SegmentInfo>,
    pub next_seq: u64,
    /// Segments removed because nothing in them was live any more.
    pub removed_segments: usize,
    pub damaged: Vec<Damage>,
    /// Journal bytes skipped (torn tails and damaged entries).
    pub journal_skipped: usize,
}

impl Recovery {
    pub fn message_count(&self) -> usize {
        self.by_domain.iter().map(|(_, v)| v.len()).sum()
    }
}

#[derive(Default)]
struct JournalState {
    done: HashSet<MessageId>,
    rcpts: HashMap<MessageId, Vec<u16>>,
    retry: HashMap<MessageId, RetryState>,
}

/// A live record found so far, with the index of its domain name.
struct Candidate {
    domain: usize,
    rec: Recovered,
}

struct Scan {
    candidates: HashMap<MessageId, Candidate>,
    domains: Vec<String>,
    domain_index: HashMap<String, usize>,
    /// Per segment: live count and live bytes.
    live: HashMap<u64, (usize, u64)>,
    /// Older copies of a record that was copied forward: (segment, id).
    superseded: Vec<(u64, MessageId)>,
}

/// Scan the spool directory (created if missing).
pub fn recover(dir: &Path) -> io::Result<Recovery> {
    fs::create_dir_all(dir)?;
    let mut seqs = BTreeSet::new();
    let mut journals = BTreeSet::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let (hex, is_seg) = match (name.strip_suffix(".seg"), name.strip_suffix(".jnl")) {
            (Some(h), _) => (h, true),
            (_, Some(h)) => (h, false),
            _ => continue,
        };
        if let Ok(seq) = u64::from_str_radix(hex, 16) {
            if is_seg {
                seqs.insert(seq);
            } else {
                journals.insert(seq);
            }
        }
    }
    let mut out = Recovery::default();
    // A journal whose segment is gone (deleted between the two unlinks) goes too.
    for seq in journals.difference(&seqs) {
        let _ = fs::remove_file(files::journal_path(dir, *seq));
    }
    let mut scan = Scan {
        candidates: HashMap::new(),
        domains: Vec::new(),
        domain_index: HashMap::new(),
        live: HashMap::new(),
        superseded: Vec::new(),
    };
    let mut sizes = HashMap::new();
    for &seq in &seqs {
        out.next_seq = out.next_seq.max(seq + 1);
        let (state, jlen) = read_journal(dir, seq, &mut out)?;
        let data = fs::read(files::segment_path(dir, seq))?;
        scan_segment(dir, seq, &data, &state, &mut scan, &mut out);
        sizes.insert(seq, (data.len() as u64, jlen));
    }
    // Older copies never come back, whatever happens to the newest one.
    let mut marks: HashMap<u64, Vec<u8>> = HashMap::new();
    for (seq, id) in &scan.superseded {
        journal::encode(&Entry::Done(*id), marks.entry(*seq).or_default());
    }
    for &seq in &seqs {
        let (size, mut jlen) = sizes[&seq];
        let (live, live_bytes) = scan.live.get(&seq).copied().unwrap_or((0, 0));
        if live == 0 {
            files::delete_segment(dir, seq)?;
            out.removed_segments += 1;
            continue;
        }
        let segment = files::open_segment(dir, seq)?;
        if let Some(buf) = marks.get(&seq) {
            files::append_at(&segment.journal, jlen, buf, true)?;
            jlen += buf.len() as u64;
        }
        out.segments.push(SegmentInfo {
            segment,
            size,
            journal_len: jlen,
            live,
            live_bytes,
        });
    }
    let mut by_domain: Vec<Vec<Recovered>> = scan.domains.iter().map(|_| Vec::new()).collect();
    for (_, c) in scan.candidates {
        by_domain[c.domain].push(c.rec);
    }
    out.by_domain = scan.domains.into_iter().zip(by_domain).collect();
    for (_, list) in &mut out.by_domain {
        list.sort_unstable_by_key(|m| m.id);
    }
    out.by_domain.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Read the journal of `seq`; cut a torn tail. Returns its state and (new) length.
fn read_journal(dir: &Path, seq: u64, out: &mut Recovery) -> io::Result<(JournalState, u64)> {
    let path = files::journal_path(dir, seq);
    let mut state = JournalState::default();
    let buf = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((state, 0)),
        Err(e) => return Err(e),
    };
    let d = journal::decode(&buf);
    out.journal_skipped += d.skipped;
    if d.valid_end < buf.len() {
        let f = OpenOptions::new().write(true).open(&path)?;
        f.set_len(d.valid_end as u64)?;
        f.sync_all()?;
    }
    for e in d.entries {
        match e {
            Entry::Done(id) => {
                state.done.insert(id);
            }
            Entry::Rcpts(id, idx) => state.rcpts.entry(id).or_default().extend(idx),
            Entry::Retry(id, s) => {
                state.retry.insert(id, s);
            }
        }
    }
    Ok((state, d.valid_end as u64))
}

/// Scan one segment's bytes into `scan`.
fn scan_segment(
    dir: &Path,
    seq: u64,
    data: &[u8],
    state: &JournalState,
    scan: &mut Scan,
    out: &mut Recovery,
) {
    let mut offset = 0usize;
    while offset < data.len() {
        match record::decode_view(&data[offset..]) {
            Ok((v, len)) => {
                offset += len;
                if state.done.contains(&v.id) {
                    continue;
                }
                let mut envelope = PackedEnvelope::new(v.sender, v.recipients.iter().copied());
                for &i in state.rcpts.get(&v.id).into_iter().flatten() {
                    envelope.set_done(i as usize);
                }
                envelope.set_dsn(v.dsn);
                if let Some(g) = v.group {
                    envelope.set_group(g);
                }
                let rec = Recovered {
                    id: v.id,
                    received_at: v.received_at,
                    size: v.data.len() as u64,
                    loc: Location {
                        segment: seq,
                        offset: (offset - len) as u64,
                        len: len as u32,
                    },
                    envelope,
                    retry: state.retry.get(&v.id).copied(),
                };
                let domain = match scan.domain_index.get(v.domain) {
                    Some(&i) => i,
                    None => {
                        scan.domains.push(v.domain.to_string());
                        scan.domain_index
                            .insert(v.domain.to_string(), scan.domains.len() - 1);
                        scan.domains.len() - 1
                    }
                };
                let live = scan.live.entry(seq).or_default();
                live.0 += 1;
                live.1 += len as u64;
                let old = scan.candidates.insert(v.id, Candidate { domain, rec });
                if let Some(old) = old {
                    let l = scan.live.entry(old.rec.loc.segment).or_default();
                    l.0 -= 1;
                    l.1 -= old.rec.loc.len as u64;
                    scan.superseded.push((old.rec.loc.segment, v.id));
                }
            }
            Err(_) => {
                let next = record::resync(data, offset + 1).unwrap_or(data.len());
                let bytes = &data[offset..next];
                let quarantined = files::quarantine(dir, seq, offset as u64, bytes).ok();
                out.damaged.push(Damage {
                    segment: seq,
                    offset: offset as u64,
                    len: bytes.len() as u64,
                    quarantined,
                });
                offset = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::record::{encode_message, MessageMeta};

    fn meta(id: u64, rcpts: &[&str]) -> MessageMeta {
        MessageMeta {
            id: MessageId(id),
            received_at: 1,
            sender: "s@a.example".into(),
            domain: "b.example".into(),
            recipients: rcpts.iter().map(|r| r.to_string()).collect(),
            peer: "127.0.0.1:1".into(),
            dsn: String::new(),
            group: None,
        }
    }

    fn write_segment(dir: &Path, seq: u64, ids: std::ops::RangeInclusive<u64>) -> Vec<usize> {
        let seg = files::create_segment(dir, seq).unwrap();
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for id in ids {
            starts.push(buf.len());
            encode_message(
                &meta(id, &["r@b.example", "q@b.example"]),
                b"data\r\n",
                &mut buf,
            );
        }
        files::append_at(&seg.records, 0, &buf, true).unwrap();
        starts
    }

    fn journal(dir: &Path, seq: u64, entries: &[Entry]) {
        let seg = files::open_segment(dir, seq).unwrap();
        let mut buf = Vec::new();
        for e in entries {
            journal::encode(e, &mut buf);
        }
        files::append_at(&seg.journal, 0, &buf, true).unwrap();
    }

    fn ids(r: &Recovery) -> Vec<u64> {
        r.by_domain
            .iter()
            .flat_map(|(_, v)| v.iter().map(|m| m.id.0))
            .collect()
    }

    #[test]
    fn journal_marks_apply_and_done_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 0, 1..=3);
        write_segment(dir.path(), 1, 4..=4);
        let state = RetryState {
            attempts: 2,
            retry_at: 300,
            delay_warned: false,
        };
        journal(
            dir.path(),
            0,
            &[
                Entry::Done(MessageId(2)),
                Entry::Rcpts(MessageId(3), vec![1]),
                Entry::Retry(MessageId(3), state),
            ],
        );
        journal(dir.path(), 1, &[Entry::Done(MessageId(4))]);
        let r = recover(dir.path()).unwrap();
        assert_eq!(ids(&r), vec![1, 3]);
        assert_eq!(r.removed_segments, 1);
        assert_eq!(r.next_seq, 2);
        let m3 = &r.by_domain[0].1[1];
        assert!(m3.envelope.is_done(1) && !m3.envelope.is_done(0));
        assert_eq!(m3.retry, Some(state));
        assert!(!files::segment_path(dir.path(), 1).exists());
        assert!(r.damaged.is_empty());
    }

    #[test]
    fn a_flipped_byte_costs_one_record_and_is_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let starts = write_segment(dir.path(), 0, 1..=5);
        let path = files::segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[starts[2] + 10] ^= 0x55; // the third record's length
        fs::write(&path, &bytes).unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!(ids(&r), vec![1, 2, 4, 5]);
        assert_eq!(r.damaged.len(), 1);
        let d = &r.damaged[0];
        assert_eq!(d.offset, starts[2] as u64);
        assert_eq!(d.len, (starts[3] - starts[2]) as u64);
        let kept = fs::read(d.quarantined.as_ref().unwrap()).unwrap();
        assert_eq!(kept, &bytes[starts[2]..starts[3]]);
    }

    #[test]
    fn damage_at_the_start_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let starts = write_segment(dir.path(), 0, 1..=4);
        let path = files::segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[1] ^= 1; // the first record's magic
        let len = bytes.len();
        bytes.truncate(len - 3); // the last record torn
        fs::write(&path, &bytes).unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!(ids(&r), vec![2, 3]);
        let offsets: Vec<u64> = r.damaged.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, vec![0, starts[3] as u64]);
    }

    #[test]
    fn a_torn_journal_tail_is_cut_and_the_newest_copy_wins() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 0, 1..=2);
        write_segment(dir.path(), 1, 2..=2); // a compaction copy of 2
        journal(dir.path(), 0, &[Entry::Rcpts(MessageId(1), vec![0])]);
        let jpath = files::journal_path(dir.path(), 0);
        let whole = fs::metadata(&jpath).unwrap().len();
        let mut torn = Vec::new();
        journal::encode(&Entry::Done(MessageId(1)), &mut torn);
        let mut f = OpenOptions::new().append(true).open(&jpath).unwrap();
        std::io::Write::write_all(&mut f, &torn[..torn.len() - 2]).unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!(ids(&r), vec![1, 2]);
        assert!(r.journal_skipped > 0);
        let two = r.by_domain[0].1.iter().find(|m| m.id.0 == 2).unwrap();
        assert_eq!(two.loc.segment, 1, "the copy forward wins");
        // The older copy got a Done mark in its own journal, after the cut tail.
        let d = journal::decode(&fs::read(&jpath).unwrap());
        assert_eq!(d.skipped, 0);
        assert_eq!(d.entries.last(), Some(&Entry::Done(MessageId(2))));
        assert!(fs::metadata(&jpath).unwrap().len() > whole);
        let again = recover(dir.path()).unwrap();
        assert_eq!(ids(&again), vec![1, 2]);
        assert!(again.damaged.is_empty() && again.journal_skipped == 0);
    }
}
