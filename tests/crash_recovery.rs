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

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{config, Daemon, RawClient};
use impulse_sink::{Sink, SinkConfig};
use impulse_source::{SourceConfig, SourceReport};

/// A loopback port nothing listens on, held for the test's lifetime: the socket is bound
/// (so no other test or ephemeral connection can take the port) but never listens, so a
/// connection to it is refused at once.
struct ClosedPort {
    fd: libc::c_int,
    addr: SocketAddr,
}

impl ClosedPort {
    fn new() -> ClosedPort {
        // SAFETY: plain socket calls on a descriptor we own; the sockaddr is a zeroed
        // sockaddr_in of the right size.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            sa.sin_port = 0;
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let r = libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len);
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let mut got = len;
            let r = libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut got);
            assert_eq!(r, 0, "getsockname: {}", std::io::Error::last_os_error());
            let addr = SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::LOCALHOST,
                u16::from_be(sa.sin_port),
            ));
            let p = ClosedPort { fd, addr };
            assert!(
                TcpStream::connect_timeout(&p.addr, Duration::from_secs(5)).is_err(),
                "{} should refuse connections",
                p.addr
            );
            p
        }
    }
}

impl Drop for ClosedPort {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// Poll `pred` every 20 ms until it holds; panic with `what` (and `detail()`) after
/// `timeout`.
fn wait_until(
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut() -> bool,
    detail: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                detail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run the load generator on its own thread; its report comes on the channel.
fn spawn_source(cfg: SourceConfig) -> mpsc::Receiver<SourceReport> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(impulse_source::run(cfg));
    });
    rx
}

/// Wait until the daemon's spool holds no live message and nothing is in flight.
fn wait_spool_empty(d: &Daemon, timeout: Duration) {
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    wait_until(
        timeout,
        "the spool to empty (status messages_live == 0)",
        || {
            let s = d.ctl_json(&["status"]);
            let done = s["messages_live"] == 0 && s["in_flight"] == 0;
            *last.borrow_mut() = s;
            done
        },
        || format!("last status: {:#}\nstderr:\n{}", last.borrow(), d.stderr()),
    );
}

/// Message-IDs the sink has recorded, in order (every sink message must carry one).
fn sink_ids(sink: &Sink) -> Vec<String> {
    sink.message_ids()
        .into_iter()
        .map(|id| id.expect("every relayed message keeps its Message-ID"))
        .collect()
}

fn counts(ids: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id.as_str()).or_insert(0) += 1;
    }
    m
}

/// Ids present more than once in `ids`.
fn repeated(ids: &[String]) -> Vec<String> {
    let mut v: Vec<String> = counts(ids)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id.to_string())
        .collect();
    v.sort();
    v
}

/// The queue id in a `250 2.0.0 Ok: queued as ID` reply.
fn queued_id(reply: &str) -> String {
    reply
        .rsplit_once("queued as ")
        .map(|(_, id)| id.trim().to_string())
        .unwrap_or_else(|| panic!("no queue id in {reply:?}"))
}

fn records_of<'a>(
    records: &'a [serde_json::Value],
    kind: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    records.iter().filter(move |r| r["type"] == kind)
}

fn ids_of(records: &[serde_json::Value], kind: &str) -> HashSet<String> {
    records_of(records, kind)
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

/// The sink stopped receiving: no session left open (a session of the killed daemon
/// ends when its socket is reset).
fn wait_sink_quiet(sink: &Sink) {
    wait_until(
        Duration::from_secs(20),
        "the sink's connections from the killed daemon to close",
        || sink.connections_open() == 0,
        || format!("open: {}", sink.connections_open()),
    );
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("impulse-crash-")
        .tempdir()
        .unwrap()
}

#[test]
fn kill9_while_mail_flows_loses_nothing() {
    const MESSAGES: usize = 3000;
    const KILL_AT: usize = 300;
    let started = Instant::now();
    // The sink answers each message a little late until the kill, and impulsed may open
    // only a few connections to it, so reception outruns delivery and a backlog of
    // spooled, undelivered messages exists at the crash (load shaping, not a wait).
    let slow_ms = Arc::new(AtomicU64::new(10));
    let sink = {
        let slow_ms = slow_ms.clone();
        Sink::start_with_observer(
            SinkConfig {
                record_bodies: false,
                ..Default::default()
            },
            Arc::new(move |_| {
                let ms = slow_ms.load(Ordering::Relaxed);
                if ms > 0 {
                    std::thread::sleep(Duration::from_millis(ms));
                }
            }),
        )
        .unwrap()
    };
    let tmp = tempdir();
    let dir = tmp.path();
    let cfg = config(
        dir,
        Some(sink.addr()),
        r#"domains: { "*": (max_connections: 8) },"#,
    );
    let mut d = Daemon::start(dir, &cfg);

    let rx = spawn_source(SourceConfig {
        addr: d.smtp,
        messages: MESSAGES,
        size: 2048,
        sessions: 8,
        per_session: 100,
        ..Default::default()
    });
    // Kill once deliveries are well under way (or, on a machine where reception
    // outruns delivery completely, when the source is done).
    let mut finished_early = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.count() < KILL_AT {
        if let Ok(r) = rx.try_recv() {
            finished_early = Some(r);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mail did not start flowing: sink has {} after 120 s\nstderr:\n{}",
            sink.count(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill9();
    slow_ms.store(0, Ordering::Relaxed);
    let source_done_before_kill = finished_early.is_some();
    let report = match finished_early {
        Some(r) => r,
        None => rx
            .recv_timeout(Duration::from_secs(180))
            .expect("the source returns once its server is gone"),
    };
    wait_sink_quiet(&sink);
    let before = sink_ids(&sink);
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
    let d2 = Daemon::start(dir, &cfg);
    let missing = || -> Vec<String> {
        let seen: HashSet<String> = sink_ids(&sink).into_iter().collect();
        let mut m: Vec<String> = accepted.difference(&seen).cloned().collect();
        m.sort();
        m
    };
    wait_until(
        Duration::from_secs(60),
        "every accepted message to reach the sink after the restart",
        || missing().is_empty(),
        || {
            let m = missing();
            format!(
                "{} of {} accepted messages lost, e.g. {:?}\nstderr:\n{}",
                m.len(),
                accepted.len(),
                &m[..m.len().min(10)],
                d2.stderr()
            )
        },
    );
    // Let the spool drain completely so any late re-delivery is counted too.
    wait_spool_empty(&d2, Duration::from_secs(60));

    let all = sink_ids(&sink);
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
    assert_eq!(records_of(&records, "Delivery").count(), 0);
    d.kill9();

    let sink = Sink::start(SinkConfig {
        record_bodies: false,
        ..Default::default()
    })
    .unwrap();
    let d2 = Daemon::start(dir, &config(dir, Some(sink.addr()), extra));
    let accepted: HashSet<String> = report.accepted_ids.iter().cloned().collect();
    let missing = || -> Vec<String> {
        let seen: HashSet<String> = sink_ids(&sink).into_iter().collect();
        accepted.difference(&seen).cloned().collect()
    };
    wait_until(
        Duration::from_secs(60),
        "every deferred message to reach the sink after the restart",
        || missing().is_empty(),
        || {
            format!(
                "{} of {N} missing\nstderr:\n{}",
                missing().len(),
                d2.stderr()
            )
        },
    );
    let log = d2.wait_for_log(
        Duration::from_secs(30),
        "a Delivery record for every message",
        |r| queue_ids.is_subset(&ids_of(r, "Delivery")),
    );
    wait_spool_empty(&d2, Duration::from_secs(30));

    // Nothing could reach any server before the kill, so nothing may arrive twice.
    let all = sink_ids(&sink);
    assert_eq!(repeated(&all), Vec::<String>::new(), "duplicates");
    assert_eq!(all.len(), N, "exactly the {N} messages arrive");
    let deliveries: Vec<&serde_json::Value> = records_of(&log, "Delivery").collect();
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
    assert_eq!(c.cmd("EHLO client.test").0, 250);
    assert_eq!(c.cmd("MAIL FROM:<sender@client.test>").0, 250);
    assert_eq!(c.cmd("RCPT TO:<rcpt@example.com>").0, 250);
    let (code, text) = c.cmd("DATA");
    assert_eq!(code, 354, "{text}");
    let message_id = format!("<{tag}-{}@client.test>", std::process::id());
    let body = format!("this message must survive kill -9 ({tag})\r\n..dot-stuffed line\r\n");
    c.send(
        format!(
            "From: <sender@client.test>\r\nTo: <rcpt@example.com>\r\n\
             Subject: durability\r\nMessage-ID: {message_id}\r\n\r\n{body}.\r\n"
        )
        .as_bytes(),
    );
    let (code, text) = c.reply();
    assert_eq!(code, 250, "end of DATA: {text}");
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
    let mut d = Daemon::start(dir, &config(dir, Some(closed.addr), ""));
    let (queue_id, message_id, body) = send_one(d.smtp, "kill-after-250");
    d.kill9();

    let sink = Sink::start(SinkConfig::default()).unwrap();
    let d2 = Daemon::start(dir, &config(dir, Some(sink.addr()), ""));
    assert!(
        sink.wait_for(1, Duration::from_secs(30)),
        "the message accepted before kill -9 was not delivered after the restart\nstderr:\n{}",
        d2.stderr()
    );
    d2.wait_for_log(
        Duration::from_secs(30),
        "the Delivery record of the recovered message",
        |r| records_of(r, "Delivery").any(|x| x["id"] == queue_id.as_str()),
    );
    wait_spool_empty(&d2, Duration::from_secs(30));
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
