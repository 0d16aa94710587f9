//! Scenario: compaction. Two long-deferred messages sit in a segment whose other
//! messages were all delivered; the segment is compacted (the two copied forward with
//! their state, the old file deleted), so a few deferred messages never pin a whole
//! segment. After a restart both are still there and are delivered exactly once.

mod common;

use std::path::Path;
use std::time::Duration;

use common::delivery::send;
use common::{config, Daemon};
use impulse_sink::{Rule, Sink, SinkConfig, Stage};

const WAIT: Duration = Duration::from_secs(60);
const FILLERS: usize = 24;

fn start(dir: &Path, sink: &Sink) -> Daemon {
    let extra = "spool: (segment_size: 1048576),\n    \
                 domains: { \"*\": (retry_interval: \"1s\", max_retry_interval: \"1s\") },";
    Daemon::start(dir, &config(dir, Some(sink.addr()), extra))
}

fn segments(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir.join("data").join("spool"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            let len = e.metadata().unwrap().len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_mostly_dead_segment_is_compacted_and_its_live_messages_survive() {
    let dir = common::tempdir("impulse-compact-");
    let sink = Sink::start(SinkConfig {
        rules: vec![Rule::always("held", Stage::Rcpt, "451 4.3.0 not now")],
        ..Default::default()
    })
    .unwrap();
    let mut daemon = start(dir.path(), &sink);
    send(daemon.smtp, &["held0@compact.test"], "held\r\n");
    send(daemon.smtp, &["held1@compact.test"], "held\r\n");
    let body = "x".repeat(70) + "\r\n";
    let big = body.repeat(60 * 1024 / body.len());
    for i in 0..FILLERS {
        send(daemon.smtp, &[&format!("f{i}@compact.test")], &big);
    }
    assert!(sink.wait_for(FILLERS, WAIT), "{}", daemon.stderr());
    // More than one segment's worth was written, so the first was closed at 1 MiB.
    let first = "0000000000000000.seg".to_string();
    common::wait_until(
        WAIT,
        "the first segment to be compacted away",
        || !segments(dir.path()).iter().any(|(n, _)| *n == first),
        || format!("{:?}\n{}", segments(dir.path()), daemon.stderr()),
    );
    // The last delivery's done mark may still be on its way.
    common::wait_until(
        WAIT,
        "only the two held messages live",
        || daemon.ctl_json(&["status"])["messages_live"] == 2,
        || daemon.stderr(),
    );
    let on_disk: u64 = segments(dir.path()).iter().map(|(_, n)| n).sum();
    assert!(on_disk < 1024 * 1024, "{:?}", segments(dir.path()));

    daemon.sigterm();
    assert!(daemon.wait_exit(WAIT).success(), "{}", daemon.stderr());
    let open = Sink::start(SinkConfig::default()).unwrap();
    let daemon = start(dir.path(), &open);
    assert!(open.wait_for(2, WAIT), "{}", daemon.stderr());
    daemon.wait_spool_empty(WAIT);
    let mut got: Vec<String> = open
        .messages()
        .into_iter()
        .flat_map(|m| m.recipients)
        .collect();
    got.sort();
    assert_eq!(got, vec!["held0@compact.test", "held1@compact.test"]);
}
