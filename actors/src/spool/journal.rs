//! The per-segment journal: what happened to the messages of one segment after they
//! were stored. Pure: bytes in, bytes out.
//!
//! Each segment `{seq}.seg` has a journal `{seq}.jnl` that lives and dies with it. An
//! entry is `0xA5 | kind u8 | len u16 LE | id u64 LE | payload (len bytes) | crc32 u32 LE`,
//! the CRC over every byte before it, so a torn or damaged entry never decodes:
//!
//! - [`Entry::Done`] — the message's final outcome was logged: never recover it again.
//! - [`Entry::Rcpts`] — these recipients (indices into the record's recipient list)
//!   reached a final outcome that was logged: never attempt them again.
//! - [`Entry::Retry`] — attempts made and when the next is due (written without waiting
//!   for the disk; losing one costs only retry timing).
//!
//! [`decode`] skips damaged entries by resynchronising byte by byte and reports where the
//! last whole entry ends, so the daemon trims a torn tail before it appends again.

use crate::ids::MessageId;

const MARK: u8 = 0xA5;
const FIXED: usize = 12; // mark, kind, len, id
const KIND_DONE: u8 = 1;
const KIND_RCPTS: u8 = 2;
const KIND_RETRY: u8 = 3;

/// Retry state of a deferred message: attempts made, when the next is due, and whether
/// its delay report went out (written as a 13th payload byte only when set, so entries
/// of earlier builds read the same).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryState {
    pub attempts: u32,
    /// Milliseconds since the epoch.
    pub retry_at: u64,
    pub delay_warned: bool,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Done(MessageId),
    Rcpts(MessageId, Vec<u16>),
    Retry(MessageId, RetryState),
}

impl Entry {
    pub fn id(&self) -> MessageId {
        match self {
            Entry::Done(id) | Entry::Rcpts(id, _) | Entry::Retry(id, _) => *id,
        }
    }
}

/// Append `entry` to `out`. An `Rcpts` entry with more indices than fit is split; one
/// with none writes nothing.
pub fn encode(entry: &Entry, out: &mut Vec<u8>) {
    match entry {
        Entry::Done(id) => put(out, KIND_DONE, *id, &[]),
        Entry::Retry(id, s) => {
            let mut p = [0u8; 13];
            p[..4].copy_from_slice(&s.attempts.to_le_bytes());
            p[4..12].copy_from_slice(&s.retry_at.to_le_bytes());
            p[12] = 1;
            let len = if s.delay_warned { 13 } else { 12 };
            put(out, KIND_RETRY, *id, &p[..len]);
        }
        Entry::Rcpts(id, idx) => {
            for chunk in idx.chunks(u16::MAX as usize / 2) {
                let p: Vec<u8> = chunk.iter().flat_map(|i| i.to_le_bytes()).collect();
                put(out, KIND_RCPTS, *id, &p);
            }
        }
    }
}

fn put(out: &mut Vec<u8>, kind: u8, id: MessageId, payload: &[u8]) {
    let start = out.len();
    out.push(MARK);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(&id.0.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The entry at the start of `buf` and its length, if it is whole and intact.
fn decode_one(buf: &[u8]) -> Option<(Entry, usize)> {
    if buf.len() < FIXED + 4 || buf[0] != MARK {
        return None;
    }
    let len = u16::from_le_bytes([buf[2], buf[3]]) as usize;
    let total = FIXED + len + 4;
    if buf.len() < total {
        return None;
    }
    let crc = u32::from_le_bytes([
        buf[total - 4],
        buf[total - 3],
        buf[total - 2],
        buf[total - 1],
    ]);
    if crc32fast::hash(&buf[..total - 4]) != crc {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&buf[4..12]);
    let id = MessageId(u64::from_le_bytes(a));
    let p = &buf[FIXED..FIXED + len];
    let entry = match (buf[1], len) {
        (KIND_DONE, 0) => Entry::Done(id),
        (KIND_RETRY, 12 | 13) => {
            let mut at = [0u8; 8];
            at.copy_from_slice(&p[4..12]);
            Entry::Retry(
                id,
                RetryState {
                    attempts: u32::from_le_bytes([p[0], p[1], p[2], p[3]]),
                    retry_at: u64::from_le_bytes(at),
                    delay_warned: p.get(12).is_some_and(|f| f & 1 == 1),
                },
            )
        }
        (KIND_RCPTS, n) if n % 2 == 0 => Entry::Rcpts(
            id,
            p.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        _ => return None,
    };
    Some((entry, total))
}

/// What a journal holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Every intact entry, in file order.
    pub entries: Vec<Entry>,
    /// End of the last intact entry: appends continue from here (a torn tail is cut).
    pub valid_end: usize,
    /// Bytes skipped because no intact entry started there (damage or a torn tail).
    pub skipped: usize,
}

/// Decode a whole journal, skipping damaged bytes.
pub fn decode(buf: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    let mut at = 0;
    while at < buf.len() {
        match decode_one(&buf[at..]) {
            Some((entry, len)) => {
                out.entries.push(entry);
                at += len;
                out.valid_end = at;
            }
            None => {
                at += 1;
                out.skipped += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::Rcpts(MessageId(1), vec![0, 2]),
            Entry::Retry(
                MessageId(1),
                RetryState {
                    attempts: 2,
                    retry_at: 1_700_000_000_123,
                    delay_warned: false,
                },
            ),
            Entry::Retry(
                MessageId(4),
                RetryState {
                    attempts: 5,
                    retry_at: 1_700_000_000_456,
                    delay_warned: true,
                },
            ),
            Entry::Done(MessageId(2)),
            Entry::Rcpts(MessageId(3), vec![7]),
        ]
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        for e in sample() {
            encode(&e, &mut buf);
        }
        let d = decode(&buf);
        assert_eq!(d.entries, sample());
        assert_eq!(d.valid_end, buf.len());
        assert_eq!(d.skipped, 0);
    }

    #[test]
    fn a_torn_tail_is_reported_and_earlier_entries_survive() {
        let mut buf = Vec::new();
        for e in sample() {
            encode(&e, &mut buf);
        }
        let whole = buf.len();
        encode(&Entry::Done(MessageId(9)), &mut buf);
        for cut in whole..buf.len() {
            let d = decode(&buf[..cut]);
            assert_eq!(d.entries, sample(), "cut at {cut}");
            assert_eq!(d.valid_end, whole);
        }
    }

    #[test]
    fn a_damaged_entry_costs_that_entry_only() {
        let mut starts = Vec::new();
        let mut buf = Vec::new();
        for e in sample() {
            starts.push(buf.len());
            encode(&e, &mut buf);
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let d = decode(&bad);
            let hit = starts.iter().rposition(|s| *s <= i).unwrap();
            let mut want = sample();
            want.remove(hit);
            assert_eq!(d.entries, want, "flip at {i}");
        }
    }

    #[test]
    fn long_recipient_lists_split() {
        let idx: Vec<u16> = (0..40_000).map(|i| i as u16).collect();
        let mut buf = Vec::new();
        encode(&Entry::Rcpts(MessageId(5), idx.clone()), &mut buf);
        let d = decode(&buf);
        assert_eq!(d.entries.len(), 2);
        let all: Vec<u16> = d
            .entries
            .iter()
            .flat_map(|e| match e {
                Entry::Rcpts(_, v) => v.clone(),
                _ => vec![],
            })
            .collect();
        assert_eq!(all, idx);
    }
}
