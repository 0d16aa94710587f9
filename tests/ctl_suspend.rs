//! `impulsectl suspend DOMAIN [--duration D]` / `resume DOMAIN`: deliveries to the
//! domain stop (mail is still accepted and queued, other domains go on), the state
//! says `suspended`, the suspension survives kill -9, and `resume` (or the end of the
//! duration) delivers what waited.

mod common;

use std::time::Duration;

use common::delivery::{send, LOG_WAIT};
use common::log::has;
use common::{config, Daemon};
use impulse_sink::{Sink, SinkConfig};

fn row(d: &Daemon, domain: &str) -> serde_json::Value {
    d.ctl_json(&["queues"])["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["domain"] == domain)
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_suspension_holds_mail_across_a_crash_until_resumed() {
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), Some(sink.addr()), "");
    let mut d = Daemon::start(tmp.path(), &cfg);
    let out = d.ctl(&["suspend", "held.test"]);
    assert!(out.status.success(), "{out:?}");

    send(d.smtp, &["a@held.test"], "waits\r\n");
    send(d.smtp, &["b@free.test"], "goes\r\n");
    d.wait_for_log(LOG_WAIT, "the free domain's Delivery", |r| {
        has(r, "Delivery", "b@free.test")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has(&d.log_records(), "Delivery", "a@held.test"));
    assert_eq!(row(&d, "held.test")["state"], "suspended");
    assert_eq!(d.ctl_json(&["domain", "held.test"])["state"], "suspended");

    d.kill9();
    let d = Daemon::start(tmp.path(), &cfg);
    common::wait_until(
        Duration::from_secs(30),
        "the recovered message queued, still suspended",
        || row(&d, "held.test")["state"] == "suspended",
        || format!("{:#}", d.ctl_json(&["queues"])),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.count(), 1, "still held after the restart");

    let out = d.ctl(&["resume", "held.test"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_for_log(LOG_WAIT, "the held Delivery", |r| {
        has(r, "Delivery", "a@held.test")
    });
    assert_eq!(sink.count(), 2);
    let again = d.ctl(&["resume", "held.test"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "not suspended any more: {again:?}"
    );
}

#[test]
fn a_suspension_with_a_duration_ends_by_itself() {
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(sink.addr()), ""));
    let out = d.ctl(&["suspend", "brief.test", "--duration", "2s"]);
    assert!(out.status.success(), "{out:?}");
    let start = std::time::Instant::now();
    send(d.smtp, &["a@brief.test"], "soon\r\n");
    d.wait_for_log(LOG_WAIT, "the Delivery after the suspension", |r| {
        has(r, "Delivery", "a@brief.test")
    });
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "delivered {:?} after a 2 s suspension began",
        start.elapsed()
    );
}
