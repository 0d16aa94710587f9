//! The on-disk format of message records in spool segments. Pure: bytes in, bytes out.
//!
//! A segment file is a sequence of records, each
//! `magic "IMPR" | kind u8 | 3 zero bytes | payload_len u32 LE | id u64 LE | crc32 u32 LE | payload`
//! (a 24-byte header). The CRC covers every header byte after the magic up to itself
//! (kind, padding, length, id) and the whole payload, so a damaged length or kind is
//! detected like damaged data. Recovery never trusts a record it cannot verify: on a
//! damaged record it [`resync`]s to the next offset where a whole record verifies, and
//! the bytes in between are quarantined.
//!
//! A message payload holds the envelope and the full message data:
//! `received_at u64 | sender | domain | peer | n u32 | n × recipient | data_len u64 | data
//! [| dsn [| group u64]]`, each string as `len u32 | bytes`; the DSN parameters (RFC
//! 3461, in the form of `impulse_smtp::dsn::DsnParams::encode`) follow only when the
//! client gave any or a group follows, and the group (the id of the first record of the
//! same reception, when its recipients were split over several domains) only for such a
//! split, so a record without them is byte for byte what older versions wrote and read.

use crate::ids::MessageId;

pub const MAGIC: &[u8; 4] = b"IMPR";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 24;
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
    /// The DSN parameters in their stored form; empty: none given.
    pub dsn: String,
    /// The reception this record is one domain's part of, named by its first part's id
    /// (`None`: the reception went to one domain only).
    pub group: Option<MessageId>,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the record needs: a torn tail, or a damaged length.
    Truncated,
    /// Bad magic, unknown kind, CRC mismatch or malformed payload.
    Corrupt(&'static str),
}

/// Append one message record to `out`.
pub fn encode_message(meta: &MessageMeta, data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[KIND_MESSAGE, 0, 0, 0]);
    out.extend_from_slice(&[0; 4]); // payload length, patched below
    out.extend_from_slice(&meta.id.0.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // crc, patched below
    let payload_start = out.len();
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
    if !meta.dsn.is_empty() || meta.group.is_some() {
        put_str(out, &meta.dsn);
    }
    if let Some(g) = meta.group {
        out.extend_from_slice(&g.0.to_le_bytes());
    }
    let payload_len = (out.len() - payload_start) as u32;
    out[start + 8..start + 12].copy_from_slice(&payload_len.to_le_bytes());
    let crc = checksum(&out[start..]);
    out[start + 20..start + 24].copy_from_slice(&crc.to_le_bytes());
}

/// CRC of a whole record (`rec` starts at the magic and holds the whole payload).
fn checksum(rec: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&rec[4..20]);
    h.update(&rec[HEADER_LEN..]);
    h.finalize()
}

/// Verify the record at the start of `buf`; its total length if it is whole and intact.
pub fn verify(buf: &[u8]) -> Result<usize, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    if &buf[..4] != MAGIC {
        return Err(DecodeError::Corrupt("bad magic"));
    }
    let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Err(DecodeError::Truncated);
    }
    let crc = u32::from_le_bytes([buf[20], buf[21], buf[22], buf[23]]);
    if checksum(&buf[..total]) != crc {
        return Err(DecodeError::Corrupt("checksum mismatch"));
    }
    if buf[4] != KIND_MESSAGE || buf[5..8] != [0, 0, 0] {
        return Err(DecodeError::Corrupt("unknown record kind"));
    }
    Ok(total)
}

/// The id in a record's header (meaningful only once [`verify`] passed).
pub fn header_id(buf: &[u8]) -> MessageId {
    let mut a = [0u8; 8];
    a.copy_from_slice(&buf[12..20]);
    MessageId(u64::from_le_bytes(a))
}

/// A decoded record, borrowing from the segment bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView<'a> {
    pub id: MessageId,
    pub received_at: u64,
    pub sender: &'a str,
    pub domain: &'a str,
    pub peer: &'a str,
    pub recipients: Vec<&'a str>,
    pub data: &'a [u8],
    /// The DSN parameters' stored form ("" when none).
    pub dsn: &'a str,
    pub group: Option<MessageId>,
}

impl MessageView<'_> {
    /// The owned metadata.
    pub fn meta(&self) -> MessageMeta {
        MessageMeta {
            id: self.id,
            received_at: self.received_at,
            sender: self.sender.to_string(),
            domain: self.domain.to_string(),
            recipients: self.recipients.iter().map(|r| r.to_string()).collect(),
            peer: self.peer.to_string(),
            dsn: self.dsn.to_string(),
            group: self.group,
        }
    }
}

/// Decode the record at the start of `buf` without copying; returns it and its length.
pub fn decode_view(buf: &[u8]) -> Result<(MessageView<'_>, usize), DecodeError> {
    let total = verify(buf)?;
    let id = header_id(buf);
    let mut r = Reader {
        buf: &buf[HEADER_LEN..total],
    };
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
    let dsn = if r.buf.is_empty() { "" } else { r.string()? };
    let group = if r.buf.is_empty() {
        None
    } else {
        Some(MessageId(r.u64()?))
    };
    if !r.buf.is_empty() {
        return Err(DecodeError::Corrupt("bytes after the last field"));
    }
    let view = MessageView {
        id,
        received_at,
        sender,
        domain,
        peer,
        recipients,
        data,
        dsn,
        group,
    };
    Ok((view, total))
}

/// Decode the record at the start of `buf`: its metadata, the data and the record length.
pub fn decode_message(buf: &[u8]) -> Result<(MessageMeta, &[u8], usize), DecodeError> {
    let (v, total) = decode_view(buf)?;
    Ok((v.meta(), v.data, total))
}

/// The first offset at or after `from` where a whole, intact record starts.
pub fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let finder = memchr::memmem::Finder::new(MAGIC);
    let mut at = from;
    while at < buf.len() {
        let pos = at + finder.find(&buf[at..])?;
        if verify(&buf[pos..]).is_ok() {
            return Some(pos);
        }
        at = pos + 1;
    }
    None
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
    fn string(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::Corrupt("string is not UTF-8"))
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
            dsn: String::new(),
            group: None,
        }
    }

    #[test]
    fn the_group_rides_along_with_or_without_dsn_parameters() {
        for dsn in ["", "FULL\t"] {
            let mut m = meta(11);
            m.dsn = dsn.into();
            m.group = Some(MessageId(10));
            let mut buf = Vec::new();
            encode_message(&m, b"data\r\n", &mut buf);
            let (back, data, len) = decode_message(&buf).unwrap();
            assert_eq!((back, data, len), (m, &b"data\r\n"[..], buf.len()));
        }
    }

    #[test]
    fn dsn_parameters_ride_along_and_old_records_still_read() {
        let mut with = meta(9);
        with.dsn = "HDRS\tQQ1\nNEVER\t\n\trfc822;y@c.example".into();
        let mut buf = Vec::new();
        encode_message(&with, b"data\r\n", &mut buf);
        let (m, data, len) = decode_message(&buf).unwrap();
        assert_eq!((m, data, len), (with, &b"data\r\n"[..], buf.len()));
        let mut old = Vec::new();
        encode_message(&meta(10), b"data\r\n", &mut old);
        assert_eq!(decode_message(&old).unwrap().0.dsn, "");
        assert!(old.len() < buf.len(), "no DSN field when none was given");
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
    fn a_flipped_byte_anywhere_is_detected_length_and_kind_included() {
        let mut buf = Vec::new();
        encode_message(&meta(9), b"hello\r\n", &mut buf);
        for i in 0..buf.len() {
            for bit in [0x01, 0x40, 0x80] {
                let mut bad = buf.clone();
                bad[i] ^= bit;
                assert!(decode_message(&bad).is_err(), "flip {bit:#x} at {i}");
            }
        }
    }

    #[test]
    fn resync_skips_damage_to_the_next_whole_record() {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for id in 1..=4 {
            starts.push(buf.len());
            encode_message(&meta(id), b"IMPR inside the data\r\n", &mut buf);
        }
        // Damage the second record's length field: the first still decodes, the second
        // does not, and resync lands exactly on the third.
        buf[starts[1] + 9] ^= 0xff;
        assert!(decode_message(&buf[starts[0]..]).is_ok());
        assert!(decode_message(&buf[starts[1]..]).is_err());
        assert_eq!(resync(&buf, starts[1] + 1), Some(starts[2]));
        // Past the last record there is nothing to find.
        assert_eq!(resync(&buf, starts[3] + 1), None);
        // A torn tail has no whole record after it.
        let cut = &buf[..buf.len() - 5];
        assert_eq!(resync(cut, starts[3]), None);
    }
}
