//! Scenario: crash recovery — the durability contract (DESIGN.md, "Durability contract"):
//! once Impulse answered 250 to the end of DATA, the message survives `kill -9`.
//!
//! - [`kill9_while_mail_flows_loses_nothing`]: a load run relays through impulsed into a
//!   sink; impulsed is SIGKILLed mid-flow and restarted on the same directory; every
//!   message the source got a 250 for reaches the sink. Duplicates are tolerated only for
//!   messages the sink had already received before the kill (in flight at the crash).
//! - [`kill9_with_everything_deferred_requeues_all`]: nothing can be delivered before the
//!   kill (the route points to a closed port); after the restart every message arrives
//!   exactly once and the log shows a Delivery for each.
//! - [`kill9_right_after_250_keeps_the_message`]: one message sent by hand, SIGKILL the
//!   moment its 250 is read; after the restart it arrives.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::log::{ids_of, of_type};
use common::relay::{repeated, sink_ids, wait_all_arrive, wait_sink_quiet, BusyRelay, ClosedPort};
use common::{config, Daemon, RawClient};
use impulse_sink::{Sink, SinkConfig};
use impulse_source::{SourceConfig, SourceReport};

/// The queue id in a `250 2.0.0 Ok: queued as ID` reply.
fn queued_id(reply: &str) -> String {
    reply
        .rsplit_once("queued as ")
        .map(|(_, id)| id.trim().to_string())
        .unwrap_or_else(|| panic!("no queue id in {reply:?}"))
}

fn tempdir() -> tempfile::TempDir {
    common::tempdir("impulse-crash-")
}

#[test]
fn kill9_while_mail_flows_loses_nothing() {
    const MESSAGES: usize = 3000;
    const KILL_AT: usize = 300;
    let started = Instant::now();
    // The sink answers each message a little late until the kill, and impulsed may open
    // only a few connections to it, so reception outruns delivery and a backlog of
    // spooled, undelivered messages exists at the crash (load shaping, not a wait).
    // Kill once deliveries are well under way (or, on a machine where reception
    // outruns delivery completely, when the source is done).
    let mut busy = BusyRelay::start(tempdir(), config, MESSAGES, KILL_AT);
    busy.daemon.kill9();
    busy.slow.unslow();
    let source_done_before_kill = busy.flow.finished_early();
    let report = busy.flow.report();
    let sink = &busy.slow.sink;
    wait_sink_quiet(sink);
    let before = sink_ids(sink);
    let accepted: HashSet<String> = report.accepted_ids.iter().cloned().collect();
    assert_eq!(accepted.len(), report.sent_ok, "accepted ids are unique");
    assert!(
        report.sent_ok >= KILL_AT.min(before.len()),
        "the source saw {} accepted, the sink already {}",
        report.sent_ok,
        before.len()
    );
    println!(
        "kill -9 at: source accepted {} of {MESSAGES} ({} errors, first: {:?}); sink had {}; \
         {} accepted and not yet delivered{}",
        report.sent_ok,
        report.errors,
        report.first_error,
        before.len(),
        accepted
            .difference(&before.iter().cloned().collect())
            .count(),
        if source_done_before_kill || report.sent_ok == MESSAGES {
            " (note: the source had already finished before the kill)"
        } else {
            ""
        }
    );
    assert!(
        repeated(&before).is_empty(),
        "duplicates before any crash: {:?}",
        repeated(&before)
    );

    // Restart on the same directory and configuration.
    let d2 = Daemon::start(busy.dir.path(), &busy.cfg);
    wait_all_arrive(sink, &accepted, &d2, Duration::from_secs(60));
    // Let the spool drain completely so any late re-delivery is counted too.
    d2.wait_spool_empty(Duration::from_secs(60));

    let all = sink_ids(sink);
    let after = &all[before.len()..];
    let before_set: HashSet<&str> = before.iter().map(String::as_str).collect();
    let after_dups = repeated(after);
    assert!(
        after_dups.is_empty(),
        "messages delivered twice after the restart: {after_dups:?}"
    );
    let redelivered = after
        .iter()
        .filter(|id| before_set.contains(id.as_str()))
        .count();
    let unconfirmed = all
        .iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .filter(|id| !accepted.contains(*id))
        .count();
    println!(
        "after restart: {} delivered, {} of them duplicates of messages in flight at the crash; \
         {} delivered messages never got their 250 to the client; 0 lost; {:.1?} in all",
        after.len(),
        redelivered,
        unconfirmed,
        started.elapsed()
    );
    drop(d2);
}

/// Send `n` messages through `addr` (all must be accepted).
fn send_all(addr: SocketAddr, n: usize) -> SourceReport {
    let report = impulse_source::run(SourceConfig {
        addr,
        messages: n,
        size: 1024,
        sessions: 4,
        per_session: 50,
        ..Default::default()
    });
    assert_eq!(
        report.sent_ok, n,
        "every message is accepted (first error {:?}, first rejection {:?})",
        report.first_error, report.first_rejection
    );
    report
}

#[test]
fn kill9_with_everything_deferred_requeues_all() {
    const N: usize = 200;
    let started = Instant::now();
    let closed = ClosedPort::new();
    let tmp = tempdir();
    let dir = tmp.path();
    let extra = r#"domains: { "*": (retry_interval: "1s", max_retry_interval: "2s") },"#;
    let mut d = Daemon::start(dir, &config(dir, Some(closed.addr), extra));
    let report = send_all(d.smtp, N);

    // Each message was received and then deferred (its next hop refuses connections).
    let records = d.wait_for_log(
        Duration::from_secs(60),
        "a Reception and a TransientFailure for every message",
        |r| {
            let received = ids_of(r, "Reception");
            received.len() == N && received.is_subset(&ids_of(r, "TransientFailure"))
        },
    );
    let queue_ids = ids_of(&records, "Reception");
    assert_eq!(of_type(&records, "Delivery", None).len(), 0);
    d.kill9();

    let sink = Sink::start(SinkConfig {
        record_bodies: false,
        ..Default::default()
    })
    .unwrap();
    let d2 = Daemon::start(dir, &config(dir, Some(sink.addr()), extra));
    let accepted: HashSet<String> = report.accepted_ids.iter().cloned().collect();
    wait_all_arrive(&sink, &accepted, &d2, Duration::from_secs(60));
    let log = d2.wait_for_log(
        Duration::from_secs(30),
        "a Delivery record for every message",
        |r| queue_ids.is_subset(&ids_of(r, "Delivery")),
    );
    d2.wait_spool_empty(Duration::from_secs(30));

    // Nothing could reach any server before the kill, so nothing may arrive twice.
    let all = sink_ids(&sink);
    assert_eq!(repeated(&all), Vec::<String>::new(), "duplicates");
    assert_eq!(all.len(), N, "exactly the {N} messages arrive");
    let deliveries = of_type(&log, "Delivery", None);
    assert_eq!(deliveries.len(), N, "one Delivery record per message");
    for r in &deliveries {
        assert_eq!(r["response"]["code"], 250, "{r}");
        assert!(r["attempts"].as_u64().unwrap_or(0) >= 1, "{r}");
    }
    println!(
        "{N} deferred messages recovered and delivered once; {:.1?}",
        started.elapsed()
    );
}

/// Send one message by hand; return (queue id, Message-ID, body).
fn send_one(addr: SocketAddr, tag: &str) -> (String, String, String) {
    let mut c = RawClient::connect(addr);
    c.ok("EHLO client.test", 250);
    c.open_data("sender@client.test", &["rcpt@example.com"]);
    let message_id = format!("<{tag}-{}@client.test>", std::process::id());
    let body = format!("this message must survive kill -9 ({tag})\r\n..dot-stuffed line\r\n");
    let text = c.end_data(
        format!(
            "From: <sender@client.test>\r\nTo: <rcpt@example.com>\r\n\
             Subject: durability\r\nMessage-ID: {message_id}\r\n\r\n{body}"
        )
        .as_bytes(),
    );
    (
        queued_id(&text),
        message_id,
        body.replace("\r\n..", "\r\n."),
    )
}

#[test]
fn kill9_right_after_250_keeps_the_message() {
    let started = Instant::now();
    let closed = ClosedPort::new();
    let tmp = tempdir();
    let dir: &Path = tmp.path();
    // The first daemon may attempt (and defer) the message before the kill; a deferral's
    // retry time is kept across the restart, so keep it short.
    let retry = r#"domains: { "*": (retry_interval: "1s", max_retry_interval: "1s") },"#;
    let mut d = Daemon::start(dir, &config(dir, Some(closed.addr), retry));
    let (queue_id, message_id, body) = send_one(d.smtp, "kill-after-250");
    d.kill9();

    let sink = Sink::start(SinkConfig::default()).unwrap();
    let d2 = Daemon::start(dir, &config(dir, Some(sink.addr()), retry));
    assert!(
        sink.wait_for(1, Duration::from_secs(30)),
        "the message accepted before kill -9 was not delivered after the restart\nstderr:\n{}",
        d2.stderr()
    );
    d2.wait_for_log(
        Duration::from_secs(30),
        "the Delivery record of the recovered message",
        |r| {
            of_type(r, "Delivery", None)
                .iter()
                .any(|x| x["id"] == queue_id.as_str())
        },
    );
    d2.wait_spool_empty(Duration::from_secs(30));
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "delivered exactly once");
    let m = &msgs[0];
    assert_eq!(m.message_id.as_deref(), Some(message_id.as_str()));
    assert_eq!(m.recipients, vec!["rcpt@example.com".to_string()]);
    assert_eq!(m.sender, "sender@client.test");
    let data = String::from_utf8_lossy(&m.data);
    assert!(data.ends_with(&body), "body intact: {data:?}");
    println!(
        "message {queue_id} survived kill -9; {:.1?}",
        started.elapsed()
    );
}
