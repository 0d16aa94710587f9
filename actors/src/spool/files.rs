//! Blocking spool file operations. Everything here runs on a sync-pool thread, never on
//! an event loop: appending a batch with one `fdatasync`, appending `.done` entries,
//! reading a record back, deleting an empty segment, and the start-up recovery scan.
//!
//! Layout of the spool directory: `{seq:016x}.seg` (message records, see
//! [`super::record`]), `{seq:016x}.done` (entries for records whose final outcome was
//! logged) and `{seq:016x}.retry` (attempt counts and retry times of deferred records).
//! The files of a segment are created together and the directory is fsynced
//! before the first record is acknowledged, so their names survive a crash.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, DecodeError, MessageMeta, RetryState};
use crate::ids::MessageId;

/// Where a record lives: segment number, byte offset and total record length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

/// An open segment: its record, `.done` and `.retry` files.
#[derive(Debug, Clone)]
pub struct Segment {
    pub seq: u64,
    pub records: Arc<File>,
    pub done: Arc<File>,
    pub retry: Arc<File>,
}

/// A message found live by the recovery scan.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub meta: MessageMeta,
    pub loc: Location,
    pub size: u64,
    /// Its last recorded retry state, if it was ever deferred.
    pub retry: Option<RetryState>,
}

/// What the recovery scan found.
#[derive(Debug, Default)]
pub struct Recovery {
    pub messages: Vec<Recovered>,
    /// Every segment that still holds live messages, with its live count.
    pub segments: Vec<(Segment, usize)>,
    pub next_seq: u64,
    /// Segments removed because nothing in them was live any more.
    pub removed_segments: usize,
    /// Torn or corrupt tails cut off (unacknowledged writes of a crash).
    pub truncated_tails: usize,
}

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.seg"))
}

pub fn done_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.done"))
}

pub fn retry_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.retry"))
}

/// Open (creating if needed) the three files of segment `seq`.
fn open_segment(dir: &Path, seq: u64) -> io::Result<Segment> {
    Ok(Segment {
        seq,
        records: Arc::new(open_append(&segment_path(dir, seq))?),
        done: Arc::new(open_append(&done_path(dir, seq))?),
        retry: Arc::new(open_append(&retry_path(dir, seq))?),
    })
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create segment `seq` (both files) and make their names durable.
pub fn create_segment(dir: &Path, seq: u64) -> io::Result<Segment> {
    let segment = open_segment(dir, seq)?;
    sync_dir(dir)?;
    Ok(segment)
}

/// Append `buf` to a file opened for append and make it durable.
pub fn append_durably(file: &File, buf: &[u8]) -> io::Result<()> {
    let mut f = file;
    f.write_all(buf)?;
    f.sync_data()
}

/// Read one record back: its metadata and data.
pub fn read_record(file: &File, loc: Location) -> io::Result<(MessageMeta, Vec<u8>)> {
    let mut buf = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut buf, loc.offset)?;
    match record::decode_message(&buf) {
        Ok((meta, data, _)) => Ok((meta, data.to_vec())),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("spool record {loc:?}: {e:?}"),
        )),
    }
}

/// Remove the files of a segment whose every message is done.
pub fn delete_segment(dir: &Path, seq: u64) -> io::Result<()> {
    fs::remove_file(segment_path(dir, seq))?;
    for path in [done_path(dir, seq), retry_path(dir, seq)] {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Append `buf` (retry entries) without waiting for the disk.
pub fn append(file: &File, buf: &[u8]) -> io::Result<()> {
    let mut f = file;
    f.write_all(buf)
}

/// Scan the spool directory: every live message, every segment still needed, the next
/// segment number. Torn tails are truncated; fully done segments are deleted.
pub fn recover(dir: &Path) -> io::Result<Recovery> {
    fs::create_dir_all(dir)?;
    let mut seqs = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(hex) = name.strip_suffix(".seg") {
            if let Ok(seq) = u64::from_str_radix(hex, 16) {
                seqs.insert(seq, ());
            }
        }
    }
    let mut out = Recovery::default();
    for &seq in seqs.keys() {
        out.next_seq = out.next_seq.max(seq + 1);
        let data = fs::read(segment_path(dir, seq))?;
        let done: HashSet<MessageId> = match fs::read(done_path(dir, seq)) {
            Ok(buf) => record::decode_done(&buf).into_iter().collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e),
        };
        let retries: HashMap<MessageId, RetryState> = match fs::read(retry_path(dir, seq)) {
            Ok(buf) => record::decode_retry(&buf).into_iter().collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        let mut offset = 0usize;
        let mut live = 0usize;
        while offset < data.len() {
            match record::decode_message(&data[offset..]) {
                Ok((meta, body, len)) => {
                    if !done.contains(&meta.id) {
                        live += 1;
                        out.messages.push(Recovered {
                            retry: retries.get(&meta.id).copied(),
                            size: body.len() as u64,
                            meta,
                            loc: Location {
                                segment: seq,
                                offset: offset as u64,
                                len: len as u32,
                            },
                        });
                    }
                    offset += len;
                }
                Err(DecodeError::Truncated) | Err(DecodeError::Corrupt(_)) => {
                    // Only an unacknowledged batch can be torn: cut it off.
                    let f = OpenOptions::new()
                        .write(true)
                        .open(segment_path(dir, seq))?;
                    f.set_len(offset as u64)?;
                    f.sync_all()?;
                    out.truncated_tails += 1;
                    break;
                }
            }
        }
        if live == 0 {
            delete_segment(dir, seq)?;
            out.removed_segments += 1;
        } else {
            out.segments.push((open_segment(dir, seq)?, live));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::record::encode_message;

    fn meta(id: u64) -> MessageMeta {
        MessageMeta {
            id: MessageId(id),
            received_at: 1,
            sender: "s@a.example".into(),
            domain: "b.example".into(),
            recipients: vec!["r@b.example".into()],
            peer: "127.0.0.1:1".into(),
        }
    }

    #[test]
    fn recovery_finds_live_skips_done_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let seg = create_segment(dir.path(), 0).unwrap();
        let mut buf = Vec::new();
        for id in 1..=3 {
            encode_message(&meta(id), b"data\r\n", &mut buf);
        }
        let mut torn = Vec::new();
        encode_message(&meta(4), b"torn\r\n", &mut torn);
        buf.extend_from_slice(&torn[..torn.len() - 3]);
        append_durably(&seg.records, &buf).unwrap();
        let mut done = Vec::new();
        record::encode_done(MessageId(2), &mut done);
        append_durably(&seg.done, &done).unwrap();

        let r = recover(dir.path()).unwrap();
        let ids: Vec<u64> = r.messages.iter().map(|m| m.meta.id.0).collect();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(r.truncated_tails, 1);
        assert_eq!(r.next_seq, 1);
        let (m, data) = read_record(&r.segments[0].0.records, r.messages[1].loc).unwrap();
        assert_eq!(m.id, MessageId(3));
        assert_eq!(data, b"data\r\n");
    }

    #[test]
    fn recovery_takes_the_last_retry_entry() {
        let dir = tempfile::tempdir().unwrap();
        let seg = create_segment(dir.path(), 0).unwrap();
        let mut buf = Vec::new();
        encode_message(&meta(1), b"x\r\n", &mut buf);
        encode_message(&meta(2), b"y\r\n", &mut buf);
        append_durably(&seg.records, &buf).unwrap();
        let mut retry = Vec::new();
        for (attempts, at) in [(1, 100), (2, 300)] {
            let state = RetryState {
                attempts,
                retry_at: at,
            };
            record::encode_retry(MessageId(1), state, &mut retry);
        }
        append(&seg.retry, &retry).unwrap();
        let r = recover(dir.path()).unwrap();
        let got: Vec<_> = r.messages.iter().map(|m| (m.meta.id.0, m.retry)).collect();
        let want = RetryState {
            attempts: 2,
            retry_at: 300,
        };
        assert_eq!(got, vec![(1, Some(want)), (2, None)]);
    }

    #[test]
    fn fully_done_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let seg = create_segment(dir.path(), 5).unwrap();
        let mut buf = Vec::new();
        encode_message(&meta(1), b"x\r\n", &mut buf);
        append_durably(&seg.records, &buf).unwrap();
        let mut done = Vec::new();
        record::encode_done(MessageId(1), &mut done);
        append_durably(&seg.done, &done).unwrap();
        let r = recover(dir.path()).unwrap();
        assert!(r.messages.is_empty());
        assert_eq!(r.removed_segments, 1);
        assert_eq!(r.next_seq, 6);
        assert!(!segment_path(dir.path(), 5).exists());
        assert!(!retry_path(dir.path(), 5).exists());
    }
}
