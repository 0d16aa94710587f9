//! The on-disk record format of spool segments. Pure: bytes in, bytes out.
//!
//! A segment file is a sequence of records, each
//! `magic "IMPR" | kind u8 | 3 reserved bytes | payload_len u32 LE | crc32 u32 LE | payload`.
//! The CRC covers the payload, so a record torn by a crash (the tail of the last segment
//! written before the fsync that would have acknowledged it) is detected and ignored.
//! A message payload holds the envelope and the full message data; the separate `.done`
//! file of a segment holds 12-byte entries `id u64 LE | crc32(id) u32 LE`, one per message
//! whose final outcome was logged. The `.retry` file holds 24-byte entries
//! `id u64 LE | attempts u32 LE | retry_at_ms u64 LE | crc32 u32 LE`, appended without an
//! fsync after each deferral: the last intact entry of a message tells a restarted
//! daemon its attempt count and when to try again (losing one costs only timing).

use crate::ids::MessageId;

const MAGIC: &[u8; 4] = b"IMPR";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;
/// Bytes per `.done` entry.
pub const DONE_LEN: usize = 12;
/// Bytes per `.retry` entry.
pub const RETRY_LEN: usize = 24;
const KIND_MESSAGE: u8 = 1;

/// Everything the spool keeps about a message besides its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub id: MessageId,
    /// Milliseconds since the epoch when the message was received.
    pub received_at: u64,
    pub sender: String,
    /// Destination domain of every recipient in this record.
    pub domain: String,
    pub recipients: Vec<String>,
    /// The client's address, as text.
    pub peer: String,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the record needs: the torn tail of a segment.
    Truncated,
    /// Bad magic, unknown kind, CRC mismatch or malformed payload.
    Corrupt(&'static str),
}

/// Append one message record to `out`; returns the offset of the data inside the record.
pub fn encode_message(meta: &MessageMeta, data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[KIND_MESSAGE, 0, 0, 0]);
    out.extend_from_slice(&[0; 8]); // length and crc, patched below
    let payload_start = out.len();
    out.extend_from_slice(&meta.id.0.to_le_bytes());
    out.extend_from_slice(&meta.received_at.to_le_bytes());
    put_str(out, &meta.sender);
    put_str(out, &meta.domain);
    put_str(out, &meta.peer);
    out.extend_from_slice(&(meta.recipients.len() as u32).to_le_bytes());
    for r in &meta.recipients {
        put_str(out, r);
    }
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    let payload_len = (out.len() - payload_start) as u32;
    let crc = crc32fast::hash(&out[payload_start..]);
    out[start + 8..start + 12].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
}

/// Total length of the record at the start of `buf`, once its header is complete.
pub fn record_len(buf: &[u8]) -> Result<usize, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    if &buf[..4] != MAGIC {
        return Err(DecodeError::Corrupt("bad magic"));
    }
    let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    Ok(HEADER_LEN + len)
}

/// Decode the record at the start of `buf`: its metadata, the data and the record length.
pub fn decode_message(buf: &[u8]) -> Result<(MessageMeta, &[u8], usize), DecodeError> {
    let total = record_len(buf)?;
    if buf.len() < total {
        return Err(DecodeError::Truncated);
    }
    if buf[4] != KIND_MESSAGE {
        return Err(DecodeError::Corrupt("unknown record kind"));
    }
    let crc = u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]);
    let payload = &buf[HEADER_LEN..total];
    if crc32fast::hash(payload) != crc {
        return Err(DecodeError::Corrupt("checksum mismatch"));
    }
    let mut r = Reader { buf: payload };
    let id = MessageId(r.u64()?);
    let received_at = r.u64()?;
    let sender = r.string()?;
    let domain = r.string()?;
    let peer = r.string()?;
    let n = r.u32()? as usize;
    let mut recipients = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        recipients.push(r.string()?);
    }
    let data_len = r.u64()? as usize;
    let data = r.take(data_len)?;
    let meta = MessageMeta {
        id,
        received_at,
        sender,
        domain,
        recipients,
        peer,
    };
    Ok((meta, data, total))
}

/// One `.done` entry for `id`.
pub fn encode_done(id: MessageId, out: &mut Vec<u8>) {
    let bytes = id.0.to_le_bytes();
    out.extend_from_slice(&bytes);
    out.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
}

/// Every intact entry of a `.done` file; a torn or corrupt entry is skipped.
pub fn decode_done(buf: &[u8]) -> Vec<MessageId> {
    buf.chunks_exact(DONE_LEN)
        .filter_map(|e| {
            let id = [e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]];
            let crc = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
            (crc32fast::hash(&id) == crc).then(|| MessageId(u64::from_le_bytes(id)))
        })
        .collect()
}

/// Retry state of a deferred message: attempts made and when the next is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    pub attempts: u32,
    /// Milliseconds since the epoch.
    pub retry_at: u64,
}

/// One `.retry` entry.
pub fn encode_retry(id: MessageId, state: RetryState, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&id.0.to_le_bytes());
    out.extend_from_slice(&state.attempts.to_le_bytes());
    out.extend_from_slice(&state.retry_at.to_le_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Every intact `.retry` entry, in file order; torn or corrupt entries are skipped.
pub fn decode_retry(buf: &[u8]) -> Vec<(MessageId, RetryState)> {
    buf.chunks_exact(RETRY_LEN)
        .filter_map(|e| {
            let crc = u32::from_le_bytes([e[20], e[21], e[22], e[23]]);
            if crc32fast::hash(&e[..20]) != crc {
                return None;
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&e[..8]);
            let mut at = [0u8; 8];
            at.copy_from_slice(&e[12..20]);
            Some((
                MessageId(u64::from_le_bytes(id)),
                RetryState {
                    attempts: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
                    retry_at: u64::from_le_bytes(at),
                },
            ))
        })
        .collect()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Corrupt("field runs past the record"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Corrupt("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u64) -> MessageMeta {
        MessageMeta {
            id: MessageId(id),
            received_at: 1_700_000_000_000,
            sender: "a@b.example".into(),
            domain: "c.example".into(),
            recipients: vec!["x@c.example".into(), "y@c.example".into()],
            peer: "127.0.0.1:4000".into(),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode_message(&meta(7), b"Subject: hi\r\n\r\nbody\r\n", &mut buf);
        encode_message(&meta(8), b"", &mut buf);
        let (m, data, len) = decode_message(&buf).unwrap();
        assert_eq!(m, meta(7));
        assert_eq!(data, b"Subject: hi\r\n\r\nbody\r\n");
        let (m2, data2, len2) = decode_message(&buf[len..]).unwrap();
        assert_eq!(m2, meta(8));
        assert!(data2.is_empty());
        assert_eq!(len + len2, buf.len());
    }

    #[test]
    fn every_truncation_is_detected() {
        let mut buf = Vec::new();
        encode_message(&meta(9), b"hello\r\n", &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_message(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_byte_is_detected() {
        let mut buf = Vec::new();
        encode_message(&meta(9), b"hello\r\n", &mut buf);
        for i in HEADER_LEN..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(decode_message(&bad).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn retry_entries_round_trip_and_skip_corrupt() {
        let a = RetryState {
            attempts: 3,
            retry_at: 1_700_000_000_123,
        };
        let mut buf = Vec::new();
        encode_retry(MessageId(7), a, &mut buf);
        encode_retry(MessageId(8), a, &mut buf);
        buf[RETRY_LEN + 9] ^= 1;
        encode_retry(MessageId(9), a, &mut buf);
        buf.extend_from_slice(&[0; 5]);
        assert_eq!(
            decode_retry(&buf),
            vec![(MessageId(7), a), (MessageId(9), a)]
        );
    }

    #[test]
    fn done_entries_skip_torn_and_corrupt() {
        let mut buf = Vec::new();
        encode_done(MessageId(1), &mut buf);
        encode_done(MessageId(2), &mut buf);
        buf[DONE_LEN + 3] ^= 1;
        encode_done(MessageId(3), &mut buf);
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_done(&buf), vec![MessageId(1), MessageId(3)]);
    }
}
