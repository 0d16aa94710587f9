//! Scenario: a damaged spool costs the damaged record only. Messages are queued for a
//! closed next hop, the daemon stops, bytes of the segment are damaged (a flipped byte
//! in a record in the middle; a truncated last record), and the daemon restarts with a
//! working next hop: every other message is delivered exactly once, the damaged one is
//! kept in `spool/quarantine/`, reported on stderr with segment and offset, and counted
//! in `impulsectl status`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::delivery::send;
use common::{config, ClosedPort, Daemon};
use impulse_sink::{Sink, SinkConfig};

const WAIT: Duration = Duration::from_secs(60);
const MESSAGES: usize = 20;
const RETRY: &str = "domains: { \"*\": (retry_interval: \"1s\", max_retry_interval: \"1s\") },";

fn spool_dir(dir: &Path) -> PathBuf {
    dir.join("data").join("spool")
}

/// The only segment file, and the offsets where its records start.
fn segment(dir: &Path) -> (PathBuf, Vec<usize>) {
    let segs: Vec<PathBuf> = std::fs::read_dir(spool_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    let bytes = std::fs::read(&segs[0]).unwrap();
    let starts = memchr::memmem::find_iter(&bytes, b"IMPR").collect();
    (segs[0].clone(), starts)
}

/// Queue MESSAGES messages for a closed port, stop cleanly; returns their recipients.
fn queue_and_stop(dir: &Path) -> Vec<String> {
    let closed = ClosedPort::new();
    let mut daemon = Daemon::start(dir, &config(dir, Some(closed.addr), RETRY));
    let rcpts: Vec<String> = (0..MESSAGES).map(|i| format!("r{i}@damage.test")).collect();
    for r in &rcpts {
        send(daemon.smtp, &[r.as_str()], "keep me\r\n");
    }
    daemon.sigterm();
    assert!(daemon.wait_exit(WAIT).success(), "{}", daemon.stderr());
    rcpts
}

/// Restart with a working next hop; wait until `want` recipients arrived; return the
/// daemon, the sink and the recipients the sink got.
fn restart_and_deliver(dir: &Path, want: usize) -> (Daemon, Sink, Vec<String>) {
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let daemon = Daemon::start(dir, &config(dir, Some(sink.addr()), RETRY));
    assert!(
        sink.wait_for(want, WAIT),
        "got {} of {want}; stderr:\n{}",
        sink.count(),
        daemon.stderr()
    );
    daemon.wait_spool_empty(WAIT);
    let got = sink
        .messages()
        .into_iter()
        .flat_map(|m| m.recipients)
        .collect();
    (daemon, sink, got)
}

fn check(daemon: &Daemon, got: &[String], all: &[String], lost: &str, offset: usize) {
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "nothing delivered twice: {got:?}");
    let want: BTreeSet<&String> = all.iter().filter(|r| *r != lost).collect();
    assert_eq!(unique, want);
    let err = daemon.stderr();
    assert!(
        err.contains(&format!("at offset {offset} ")) && err.contains("damaged record in segment"),
        "{err}"
    );
    let status = daemon.ctl_json(&["status"]);
    assert_eq!(status["spool_quarantined"], 1, "{status}");
    assert_eq!(status["spool_healthy"], true, "{status}");
}

fn quarantined(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(spool_dir(dir).join("quarantine"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn a_flipped_byte_costs_one_message() {
    let dir = common::tempdir("impulse-damage-");
    let all = queue_and_stop(dir.path());
    let (path, starts) = segment(dir.path());
    assert_eq!(starts.len(), MESSAGES);
    let mut bytes = std::fs::read(&path).unwrap();
    let victim = MESSAGES / 2;
    let original = bytes[starts[victim]..starts[victim + 1]].to_vec();
    bytes[starts[victim] + 9] ^= 0x20; // inside the record's length field
    std::fs::write(&path, &bytes).unwrap();

    let (daemon, _sink, got) = restart_and_deliver(dir.path(), MESSAGES - 1);
    check(
        &daemon,
        &got,
        &all,
        &format!("r{victim}@damage.test"),
        starts[victim],
    );
    let kept = quarantined(dir.path());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].len(), original.len());
}

#[test]
fn a_truncated_segment_costs_its_last_message() {
    let dir = common::tempdir("impulse-torn-");
    let all = queue_and_stop(dir.path());
    let (path, starts) = segment(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 7).unwrap();
    let last = MESSAGES - 1;
    let (daemon, _sink, got) = restart_and_deliver(dir.path(), MESSAGES - 1);
    check(
        &daemon,
        &got,
        &all,
        &format!("r{last}@damage.test"),
        starts[last],
    );
}
