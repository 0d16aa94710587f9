//! Blocking spool file operations. Everything here runs on a sync-pool thread, never on
//! an event loop.
//!
//! Layout of the spool directory: `{seq:016x}.seg` (message records, see
//! [`super::record`]), `{seq:016x}.jnl` (its journal, see [`super::journal`]) and
//! `quarantine/` (bytes recovery could not verify, kept for a person to look at). The
//! files of a segment are created together and the directory is fsynced before the
//! first record is acknowledged, so their names survive a crash.
//!
//! Appends are all-or-nothing as far as later readers can tell: an append that fails
//! (ENOSPC, EIO) truncates the file back to where it started, so a failed store leaves
//! nothing behind that recovery could mistake for an acknowledged record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a record lives: segment number, byte offset and total record length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

/// An open segment: its record file and its journal.
#[derive(Debug, Clone)]
pub struct Segment {
    pub seq: u64,
    pub records: Arc<File>,
    pub journal: Arc<File>,
}

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.seg"))
}

pub fn journal_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.jnl"))
}

pub fn quarantine_dir(dir: &Path) -> PathBuf {
    dir.join("quarantine")
}

/// Open (creating if needed) the two files of segment `seq`.
pub fn open_segment(dir: &Path, seq: u64) -> io::Result<Segment> {
    Ok(Segment {
        seq,
        records: Arc::new(open_append(&segment_path(dir, seq))?),
        journal: Arc::new(open_append(&journal_path(dir, seq))?),
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

/// Create segment `seq` and make its names durable; on failure nothing is left behind.
pub fn create_segment(dir: &Path, seq: u64) -> io::Result<Segment> {
    let made = open_segment(dir, seq).and_then(|s| sync_dir(dir).map(|_| s));
    if made.is_err() {
        let _ = delete_segment(dir, seq);
    }
    made
}

/// Append `buf` at `len` (the file's length before) and, with `sync`, make it durable.
/// On failure the file is cut back to `len`.
pub fn append_at(file: &File, len: u64, buf: &[u8], sync: bool) -> io::Result<()> {
    let mut f = file;
    let res = f
        .write_all(buf)
        .and_then(|_| if sync { f.sync_data() } else { Ok(()) });
    if res.is_err() {
        let _ = file.set_len(len);
    }
    res
}

/// Read `loc.len` bytes at `loc.offset`.
pub fn read_at(file: &File, loc: Location) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut buf, loc.offset)?;
    Ok(buf)
}

/// Remove the files of a segment.
pub fn delete_segment(dir: &Path, seq: u64) -> io::Result<()> {
    for path in [segment_path(dir, seq), journal_path(dir, seq)] {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Keep `bytes` (a damaged stretch of segment `seq` at `offset`) in the quarantine
/// directory; returns its path. An existing copy (from an earlier start) is kept.
pub fn quarantine(dir: &Path, seq: u64, offset: u64, bytes: &[u8]) -> io::Result<PathBuf> {
    let qdir = quarantine_dir(dir);
    fs::create_dir_all(&qdir)?;
    let path = qdir.join(format!("{seq:016x}-{offset:012x}.bad"));
    if !path.exists() {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        sync_dir(&qdir)?;
    }
    Ok(path)
}

/// Bytes available to unprivileged writers on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Write, sync and remove a small file: does the spool's file system take writes?
pub fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(".probe");
    let res = (|| {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(&[0u8; 4096])?;
        f.sync_data()
    })();
    let _ = fs::remove_file(&path);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_append_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let seg = create_segment(dir.path(), 3).unwrap();
        append_at(&seg.records, 0, b"abc", true).unwrap();
        // A read-only handle makes the write fail; the length must not change.
        let ro = File::open(segment_path(dir.path(), 3)).unwrap();
        assert!(append_at(&ro, 3, b"defg", true).is_err());
        assert_eq!(fs::read(segment_path(dir.path(), 3)).unwrap(), b"abc");
        let got = read_at(
            &seg.records,
            Location {
                segment: 3,
                offset: 1,
                len: 2,
            },
        )
        .unwrap();
        assert_eq!(got, b"bc");
        delete_segment(dir.path(), 3).unwrap();
        assert!(!journal_path(dir.path(), 3).exists());
        assert!(free_bytes(dir.path()).unwrap() > 0);
        probe(dir.path()).unwrap();
    }

    #[test]
    fn quarantine_keeps_the_first_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = quarantine(dir.path(), 1, 40, b"bad").unwrap();
        let q = quarantine(dir.path(), 1, 40, b"other").unwrap();
        assert_eq!(p, q);
        assert_eq!(fs::read(p).unwrap(), b"bad");
    }
}
