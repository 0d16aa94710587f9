//! Scenario: per-recipient outcomes are durable. A message whose next hop takes some
//! recipients (250) and defers others (451) is retried for the deferred ones only — in
//! the same daemon, after a SIGTERM restart and after a kill -9 restart: a delivered
//! recipient never receives the message twice.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::delivery::send;
use common::log::of_type;
use common::{config, Daemon};
use impulse_sink::{Rule, Sink, SinkConfig, Stage};

const WAIT: Duration = Duration::from_secs(60);

fn start(dir: &Path, sink: &Sink) -> Daemon {
    let extra = "domains: { \"*\": (retry_interval: \"1s\", max_retry_interval: \"1s\") },";
    Daemon::start(dir, &config(dir, Some(sink.addr()), extra))
}

/// How many times each recipient reached the sink.
fn deliveries(sink: &Sink) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in sink.messages() {
        for r in m.recipients {
            *out.entry(r).or_default() += 1;
        }
    }
    out
}

/// Wait until the log holds more than `seen` TransientFailure records for `rcpt`.
fn wait_more_deferrals(daemon: &Daemon, rcpt: &str, seen: usize) -> usize {
    let mut n = 0;
    common::wait_until(
        WAIT,
        "another deferral of the soft recipient",
        || {
            n = of_type(&daemon.log_records(), "TransientFailure", Some(rcpt)).len();
            n > seen
        },
        || daemon.stderr(),
    );
    n
}

#[test]
fn delivered_recipients_are_never_sent_again_across_restarts() {
    let dir = common::tempdir("impulse-partial-");
    let sink = Sink::start(SinkConfig {
        rules: vec![Rule::always("soft", Stage::Rcpt, "451 4.3.0 later")],
        ..Default::default()
    })
    .unwrap();
    let rcpts = ["a@d.test", "soft@d.test", "b@d.test", "soft2@d.test"];
    let mut daemon = start(dir.path(), &sink);
    send(daemon.smtp, &rcpts, "partial\r\n");
    send(daemon.smtp, &["c@e.test", "soft3@e.test"], "second\r\n");
    assert!(sink.wait_for(2, WAIT), "{}", daemon.stderr());
    // Retried in the same daemon: only the soft recipients are tried again.
    let mut seen = wait_more_deferrals(&daemon, "soft@d.test", 1);
    let want: BTreeMap<String, usize> = [("a@d.test", 1), ("b@d.test", 1), ("c@e.test", 1)]
        .into_iter()
        .map(|(r, n)| (r.to_string(), n))
        .collect();
    assert_eq!(deliveries(&sink), want);

    for round in 0..4 {
        if round % 2 == 0 {
            daemon.sigterm();
            assert!(daemon.wait_exit(WAIT).success(), "{}", daemon.stderr());
        } else {
            daemon.kill9();
        }
        daemon = start(dir.path(), &sink);
        // The log file is kept across restarts: wait for a deferral made by this daemon.
        seen = wait_more_deferrals(&daemon, "soft@d.test", seen);
        wait_more_deferrals(&daemon, "soft3@e.test", 0);
        assert_eq!(
            deliveries(&sink),
            want,
            "after restart {round}; stderr:\n{}",
            daemon.stderr()
        );
    }
    let records = daemon.log_records();
    for r in ["a@d.test", "b@d.test", "c@e.test"] {
        assert_eq!(of_type(&records, "Delivery", Some(r)).len(), 1, "{r}");
    }
}
