//! Scenario: the spool's disk fills up while deliveries run. The data directory is a
//! small tmpfs; messages are accepted, deferred once by the next hop, and the disk is
//! filled to the last byte before their retry. Then:
//! - new transactions get `452 4.3.1` at MAIL FROM, `status` says the spool is
//!   unhealthy and `/health` answers 503;
//! - the retries are delivered meanwhile, and their log records and done marks, which
//!   cannot be written yet, are kept and retried — nothing is reported written that
//!   was not;
//! - once space returns the spool turns healthy by itself, every delivery has its
//!   Delivery record, new mail is accepted again, and after a restart nothing is sent
//!   again (the spool recovers no message).
//!
//! Needs `mount -t tmpfs` (root); elsewhere it is skipped with a printed reason.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::log::of_type;
use common::{config, Daemon, RawClient};
use impulse_sink::{Rule, Sink, SinkConfig, Stage};

const WAIT: Duration = Duration::from_secs(60);
const MESSAGES: usize = 10;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "note: skipping the ENOSPC scenario: cannot mount a tmpfs ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Write zeros into `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
    let _ = f.sync_all();
}

fn send(addr: std::net::SocketAddr, rcpt: &str) -> (u16, String) {
    let mut c = RawClient::connect(addr);
    c.ok("EHLO enospc.test", 250);
    let mail = c.cmd("MAIL FROM:<s@enospc.test>");
    if mail.0 != 250 {
        return mail;
    }
    c.ok(&format!("RCPT TO:<{rcpt}>"), 250);
    c.ok("DATA", 354);
    let r = c.cmd("Subject: disk\r\n\r\nfull or not\r\n.");
    let _ = c.cmd("QUIT");
    r
}

fn start(dir: &Path, sink: &Sink) -> Daemon {
    let extra = "spool: (min_free: 2097152, segment_size: 1048576),\n    \
                 domains: { \"*\": (retry_interval: \"3s\", max_retry_interval: \"3s\") },\n    \
                 http: (address: \"127.0.0.1:0\"),";
    Daemon::start(dir, &config(dir, Some(sink.addr()), extra))
}

#[test]
fn a_full_disk_refuses_new_mail_and_loses_or_repeats_nothing() {
    let dir = common::tempdir("impulse-enospc-");
    let Some(_fs) = Tmpfs::mount(&dir.path().join("data"), "16m") else {
        return;
    };
    let sink = Sink::start(SinkConfig {
        rules: vec![Rule::first(
            MESSAGES as u32,
            "later",
            Stage::Rcpt,
            "451 4.3.0 not yet",
        )],
        ..Default::default()
    })
    .unwrap();
    let mut daemon = start(dir.path(), &sink);
    for i in 0..MESSAGES {
        let r = send(daemon.smtp, &format!("later{i}@full.test"));
        assert_eq!(r.0, 250, "{r:?}");
    }
    // Each was deferred once: fill the disk before their retry.
    daemon.wait_for_log(WAIT, "every message deferred once", |recs| {
        of_type(recs, "TransientFailure", None).len() >= MESSAGES
    });
    let filler = dir.path().join("data").join("filler");
    fill(&filler);

    // New mail is refused with 452 4.3.1 once the spool has noticed (within a probe).
    // Until then a message may still fit in a page the spool already has (then it is
    // accepted, honestly, and must be delivered) or fail to store (451).
    let mut accepted_meanwhile = 0;
    common::wait_until(
        WAIT,
        "452 at MAIL FROM",
        || {
            let r = send(daemon.smtp, &format!("new{accepted_meanwhile}@full.test"));
            assert!(matches!(r.0, 250 | 451 | 452), "{r:?}");
            accepted_meanwhile += (r.0 == 250) as usize;
            r.0 == 452 && r.1.contains("4.3.1")
        },
        || daemon.stderr(),
    );
    let total = MESSAGES + accepted_meanwhile;
    let status = daemon.ctl_json(&["status"]);
    assert_eq!(status["spool_healthy"], false, "{status}");
    // The load balancer's view: /health says 503, with the reason.
    let health = common::http::get(daemon.http.unwrap(), "/health");
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["status"], "unhealthy");

    // The retries are delivered while the disk is full.
    assert!(sink.wait_for(total, WAIT), "{}", daemon.stderr());

    // Space returns: the spool recovers by itself and every delivery gets logged.
    std::fs::remove_file(&filler).unwrap();
    daemon.wait_spool_empty(WAIT);
    common::wait_until(
        WAIT,
        "the spool to be healthy",
        || daemon.ctl_json(&["status"])["spool_healthy"] == true,
        || daemon.stderr(),
    );
    assert_eq!(
        common::http::get(daemon.http.unwrap(), "/health").status,
        200
    );
    let records = daemon.log_records();
    for i in 0..MESSAGES {
        let r = format!("later{i}@full.test");
        assert_eq!(of_type(&records, "Delivery", Some(&r)).len(), 1, "{r}");
    }
    assert_eq!(send(daemon.smtp, "again@full.test").0, 250);
    assert!(sink.wait_for(total + 1, WAIT));

    // After a restart nothing is sent again.
    daemon.sigterm();
    assert!(daemon.wait_exit(WAIT).success(), "{}", daemon.stderr());
    let daemon = start(dir.path(), &sink);
    common::wait_until(
        WAIT,
        "recovery",
        || daemon.stderr().contains("spool: recovered"),
        || daemon.stderr(),
    );
    assert!(
        daemon.stderr().contains("spool: recovered 0 messages"),
        "{}",
        daemon.stderr()
    );
    assert_eq!(sink.count(), total + 1);
    let mut unique: Vec<String> = sink
        .messages()
        .into_iter()
        .flat_map(|m| m.recipients)
        .collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), total + 1);
}

/// A delay report due while the disk is full is stored (and sent) once space returns,
/// exactly once.
#[test]
fn a_delay_report_due_on_a_full_disk_is_sent_when_space_returns() {
    let dir = common::tempdir("impulse-enospc-delay-");
    let Some(_fs) = Tmpfs::mount(&dir.path().join("data"), "16m") else {
        return;
    };
    let sink = Sink::start(SinkConfig {
        rules: vec![Rule::always("later", Stage::Rcpt, "451 4.3.0 not yet")],
        ..Default::default()
    })
    .unwrap();
    let extra = "spool: (min_free: 2097152, segment_size: 1048576),\n    \
                 domains: { \"*\": (retry_interval: \"1s\", max_retry_interval: \"1s\", \
                 delay_warning: \"3s\") },";
    let daemon = Daemon::start(dir.path(), &config(dir.path(), Some(sink.addr()), extra));
    let mut c = RawClient::connect(daemon.smtp);
    c.ok("EHLO enospc.test", 250);
    c.ok("MAIL FROM:<s@enospc.test>", 250);
    c.ok("RCPT TO:<later@full.test> NOTIFY=DELAY,FAILURE", 250);
    c.ok("DATA", 354);
    // Headers larger than the slack a full tmpfs leaves in pages already allocated, so
    // the report (which quotes them) cannot be stored while the disk is full.
    let padding: String = (0..200)
        .map(|i| format!("X-Padding-{i}: {}\r\n", "p".repeat(100)))
        .collect();
    c.end_data(format!("Subject: slow\r\n{padding}\r\nwaiting\r\n").as_bytes());
    let _ = c.cmd("QUIT");
    daemon.wait_for_log(WAIT, "a first deferral", |recs| {
        !of_type(recs, "TransientFailure", None).is_empty()
    });
    let filler = dir.path().join("data").join("filler");
    fill(&filler);
    // The report falls due while nothing can be stored: it is tried again, not dropped.
    common::wait_until(
        WAIT,
        "the delay report to be refused by the full spool",
        || daemon.stderr().contains("trying again"),
        || daemon.stderr(),
    );
    let reports = || {
        sink.messages()
            .into_iter()
            .filter(|m| m.sender.is_empty() && m.recipients == ["s@enospc.test"])
            .count()
    };
    assert_eq!(reports(), 0);
    std::fs::remove_file(&filler).unwrap();
    common::wait_until(
        WAIT,
        "the delay report",
        || reports() == 1,
        || daemon.stderr(),
    );
    // Later retries do not warn again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(reports(), 1, "{}", daemon.stderr());
    let report = sink
        .messages()
        .into_iter()
        .find(|m| m.sender.is_empty())
        .unwrap();
    let text = String::from_utf8_lossy(&report.data).to_string();
    assert!(text.contains("Action: delayed"), "{text}");
}
