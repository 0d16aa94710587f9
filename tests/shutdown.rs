//! Scenario: graceful shutdown (INTERFACE.md, "impulsed": SIGTERM / SIGINT stop
//! accepting, finish or defer in-flight work, exit 0 within the grace period).
//!
//! - [`sigterm_when_idle_exits_0_and_removes_the_socket`]
//! - [`sigterm_says_421_to_idle_clients`]: a client that only got the greeting and one
//!   that said EHLO both get `421` and are disconnected; the daemon exits 0.
//! - [`impulsectl_shutdown_stops_the_daemon`]
//! - [`sigterm_during_a_flow_of_mail_loses_nothing`]: exit 0 mid-flow, then a restart on
//!   the same directory delivers every message that got a 250.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{config, Daemon, RawClient};
use impulse_sink::{Sink, SinkConfig};
use impulse_source::SourceConfig;

/// Grace period configured for these tests.
const GRACE: &str = "10s";
/// The daemon must be gone within the grace period; the margin covers process exit and
/// scheduling on a loaded machine, not work the daemon may still do.
const EXIT_WAIT: Duration = Duration::from_secs(15);

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("impulse-shutdown-")
        .tempdir()
        .unwrap()
}

fn grace_config(dir: &std::path::Path, sink: Option<std::net::SocketAddr>, extra: &str) -> String {
    config(
        dir,
        sink,
        &format!("shutdown_grace: \"{GRACE}\",\n    {extra}"),
    )
}

fn sigterm(d: &Daemon) {
    let pid = d.pid();
    assert!(pid > 0);
    // SAFETY: signalling the child we started.
    let r = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
}

fn assert_clean_exit(status: ExitStatus, d: &Daemon) {
    assert_eq!(
        status.code(),
        Some(0),
        "impulsed should exit 0 on a graceful stop, got {status:?}\nstderr:\n{}",
        d.stderr()
    );
}

/// Poll `pred` every 20 ms until it holds; panic with `what` after `timeout`.
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

#[test]
fn sigterm_when_idle_exits_0_and_removes_the_socket() {
    let tmp = tempdir();
    let dir = tmp.path();
    let mut d = Daemon::start(dir, &grace_config(dir, None, ""));
    let socket = d.socket();
    assert!(
        socket.exists(),
        "control socket {} exists while running",
        socket.display()
    );
    // The daemon answers on its control socket before we stop it.
    assert_eq!(d.ctl_json(&["status"])["type"], "status");
    let status = d.terminate(EXIT_WAIT);
    assert_clean_exit(status, &d);
    assert!(
        !socket.exists(),
        "control socket {} is removed on a clean stop",
        socket.display()
    );
    // Stopped accepting: the SMTP port is closed.
    assert!(std::net::TcpStream::connect_timeout(&d.smtp, Duration::from_secs(5)).is_err());
}

#[test]
fn sigterm_immediately_after_ready_exits_0() {
    // `ready` promises a running daemon: a SIGTERM right after it is a graceful stop too.
    for _ in 0..5 {
        let tmp = tempdir();
        let dir = tmp.path();
        let mut d = Daemon::start(dir, &grace_config(dir, None, ""));
        let status = d.terminate(EXIT_WAIT);
        assert_clean_exit(status, &d);
        assert!(!d.socket().exists());
    }
}

#[test]
fn sigterm_says_421_to_idle_clients() {
    let tmp = tempdir();
    let dir = tmp.path();
    let mut d = Daemon::start(dir, &grace_config(dir, None, ""));
    // One client that only read the greeting, one that said EHLO; both idle.
    let mut greeted = RawClient::connect(d.smtp);
    let mut ready = RawClient::connect(d.smtp);
    let (code, text) = ready.cmd("EHLO client.test");
    assert_eq!(code, 250, "{text}");
    // Both sessions exist before the signal.
    wait_until(
        Duration::from_secs(10),
        "both inbound sessions to be registered",
        || d.ctl_json(&["status"])["connections_in"] == 2,
        || format!("{:#}", d.ctl_json(&["status"])),
    );
    sigterm(&d);
    for (name, c) in [("greeted", &mut greeted), ("after EHLO", &mut ready)] {
        let (code, text) = c.reply();
        assert_eq!(
            code, 421,
            "{name} client: expected 421 on shutdown, got {text:?}"
        );
        assert!(
            c.is_closed(),
            "{name} client: the connection is closed after 421"
        );
    }
    let status = d.wait_exit(EXIT_WAIT);
    assert_clean_exit(status, &d);
    assert!(!d.socket().exists());
}

#[test]
fn sigterm_lets_an_open_transaction_finish() {
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let tmp = tempdir();
    let dir = tmp.path();
    let cfg = grace_config(dir, Some(sink.addr()), "");
    let mut d = Daemon::start(dir, &cfg);
    let mut c = RawClient::connect(d.smtp);
    assert_eq!(c.cmd("EHLO client.test").0, 250);
    assert_eq!(c.cmd("MAIL FROM:<sender@client.test>").0, 250);
    assert_eq!(c.cmd("RCPT TO:<rcpt@example.com>").0, 250);
    wait_until(
        Duration::from_secs(10),
        "the inbound session to be registered",
        || d.ctl_json(&["status"])["connections_in"] == 1,
        || format!("{:#}", d.ctl_json(&["status"])),
    );
    sigterm(&d);
    // Wait until the graceful stop has begun (listeners closed, sessions told).
    wait_until(
        Duration::from_secs(10),
        "impulsed to report the shutdown",
        || d.stderr().contains("shutting down (SIGTERM)"),
        || d.stderr(),
    );
    // The open transaction may still complete: 354, the data, 250, then 421.
    let (code, text) = c.cmd("DATA");
    assert_eq!(code, 354, "{text}");
    let message_id = format!("<shutdown-open-tx-{}@client.test>", std::process::id());
    c.send(
        format!("Message-ID: {message_id}\r\nSubject: in flight at SIGTERM\r\n\r\nbody\r\n.\r\n")
            .as_bytes(),
    );
    let (code, text) = c.reply();
    assert_eq!(code, 250, "end of DATA during shutdown: {text}");
    let (code, text) = c.reply();
    assert_eq!(code, 421, "then the session is closed: {text:?}");
    assert!(c.is_closed());
    let status = d.wait_exit(EXIT_WAIT);
    assert_clean_exit(status, &d);
    // Delivered before the exit, or after a restart — never lost.
    let delivered = |sink: &Sink| {
        sink.message_ids()
            .iter()
            .any(|id| id.as_deref() == Some(message_id.as_str()))
    };
    if !delivered(&sink) {
        let d2 = Daemon::start(dir, &cfg);
        wait_until(
            Duration::from_secs(30),
            "the message accepted during shutdown to be delivered after the restart",
            || delivered(&sink),
            || d2.stderr(),
        );
    }
}

#[test]
fn impulsectl_shutdown_stops_the_daemon() {
    let tmp = tempdir();
    let dir = tmp.path();
    let mut d = Daemon::start(dir, &grace_config(dir, None, ""));
    let out = d.ctl(&["shutdown"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "impulsectl shutdown: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.to_lowercase().contains("shutting down"),
        "impulsectl shutdown confirms: {stdout:?}"
    );
    let status = d.wait_exit(EXIT_WAIT);
    assert_clean_exit(status, &d);
    assert!(!d.socket().exists());
}

fn sink_ids(sink: &Sink) -> Vec<String> {
    sink.message_ids()
        .into_iter()
        .map(|id| id.expect("every relayed message keeps its Message-ID"))
        .collect()
}

fn repeated(ids: &[String]) -> Vec<String> {
    let mut m: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        *m.entry(id).or_insert(0) += 1;
    }
    let mut v: Vec<String> = m
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id.to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn sigterm_during_a_flow_of_mail_loses_nothing() {
    const MESSAGES: usize = 3000;
    const STOP_AT: usize = 300;
    let started = Instant::now();
    // A slightly slow sink and few connections to it, so a backlog of undelivered
    // messages exists at the stop (load shaping, not synchronisation).
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
    let cfg = grace_config(
        dir,
        Some(sink.addr()),
        r#"domains: { "*": (max_connections: 8) },"#,
    );
    let mut d = Daemon::start(dir, &cfg);

    let (tx, rx) = mpsc::channel();
    let addr = d.smtp;
    std::thread::spawn(move || {
        let _ = tx.send(impulse_source::run(SourceConfig {
            addr,
            messages: MESSAGES,
            size: 2048,
            sessions: 8,
            per_session: 100,
            ..Default::default()
        }));
    });
    let mut finished_early = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.count() < STOP_AT {
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
    let stopped_at = Instant::now();
    sigterm(&d);
    let status = d.wait_exit(EXIT_WAIT);
    let stop_took = stopped_at.elapsed();
    assert_clean_exit(status, &d);
    assert!(!d.socket().exists(), "control socket removed");
    slow_ms.store(0, Ordering::Relaxed);
    let source_done_before_stop = finished_early.is_some();
    let report = match finished_early {
        Some(r) => r,
        None => rx
            .recv_timeout(Duration::from_secs(180))
            .expect("the source returns once the server is gone"),
    };
    wait_until(
        Duration::from_secs(20),
        "the sink's connections from the stopped daemon to close",
        || sink.connections_open() == 0,
        || format!("open: {}", sink.connections_open()),
    );
    let before = sink_ids(&sink);
    assert!(
        repeated(&before).is_empty(),
        "duplicates before the stop: {:?}",
        repeated(&before)
    );
    let accepted: HashSet<String> = report.accepted_ids.iter().cloned().collect();
    assert_eq!(accepted.len(), report.sent_ok);
    let before_set: HashSet<String> = before.iter().cloned().collect();
    let backlog = accepted.difference(&before_set).count();
    println!(
        "SIGTERM: exit 0 after {stop_took:.1?}; source accepted {} of {MESSAGES} ({} errors, first {:?}); \
         sink had {}; {backlog} accepted and not yet delivered{}",
        report.sent_ok,
        report.errors,
        report.first_error,
        before.len(),
        if source_done_before_stop { " (note: the source had finished before the stop)" } else { "" }
    );

    // Restart on the same directory: everything accepted and not delivered goes out.
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
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    wait_until(
        Duration::from_secs(60),
        "the spool to empty after the restart",
        || {
            let s = d2.ctl_json(&["status"]);
            let done = s["messages_live"] == 0 && s["in_flight"] == 0;
            *last.borrow_mut() = s;
            done
        },
        || format!("{:#}\nstderr:\n{}", last.borrow(), d2.stderr()),
    );
    let all = sink_ids(&sink);
    let after = &all[before.len()..];
    assert!(
        repeated(after).is_empty(),
        "messages delivered twice after the restart: {:?}",
        repeated(after)
    );
    let redelivered = after.iter().filter(|id| before_set.contains(*id)).count();
    println!(
        "after restart: {} delivered ({} of them had already been delivered before the stop); \
         0 lost; {:.1?} in all",
        after.len(),
        redelivered,
        started.elapsed()
    );
}
