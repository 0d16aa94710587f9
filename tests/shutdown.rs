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

use std::collections::HashSet;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::relay::{repeated, sink_ids, wait_all_arrive, wait_sink_quiet, BusyRelay};
use common::{config, wait_until, Daemon, RawClient};
use impulse_sink::{Sink, SinkConfig};

/// Grace period configured for these tests.
const GRACE: &str = "10s";
/// The daemon must be gone within the grace period; the margin covers process exit and
/// scheduling on a loaded machine, not work the daemon may still do.
const EXIT_WAIT: Duration = Duration::from_secs(15);

fn tempdir() -> tempfile::TempDir {
    common::tempdir("impulse-shutdown-")
}

fn grace_config(dir: &std::path::Path, sink: Option<std::net::SocketAddr>, extra: &str) -> String {
    config(
        dir,
        sink,
        &format!("shutdown_grace: \"{GRACE}\",\n    {extra}"),
    )
}

fn assert_clean_exit(status: ExitStatus, d: &Daemon) {
    assert_eq!(
        status.code(),
        Some(0),
        "impulsed should exit 0 on a graceful stop, got {status:?}\nstderr:\n{}",
        d.stderr()
    );
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
    d.wait_sessions(2, Duration::from_secs(10));
    d.sigterm();
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
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<sender@client.test>", 250);
    c.ok("RCPT TO:<rcpt@example.com>", 250);
    d.wait_sessions(1, Duration::from_secs(10));
    d.sigterm();
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

#[test]
fn sigterm_during_a_flow_of_mail_loses_nothing() {
    const MESSAGES: usize = 3000;
    const STOP_AT: usize = 300;
    let started = Instant::now();
    // A slightly slow sink and few connections to it, so a backlog of undelivered
    // messages exists at the stop (load shaping, not synchronisation).
    let mut busy = BusyRelay::start(tempdir(), grace_config, MESSAGES, STOP_AT);
    let d = &mut busy.daemon;
    let stopped_at = Instant::now();
    d.sigterm();
    let status = d.wait_exit(EXIT_WAIT);
    let stop_took = stopped_at.elapsed();
    assert_clean_exit(status, d);
    assert!(!d.socket().exists(), "control socket removed");
    busy.slow.unslow();
    let source_done_before_stop = busy.flow.finished_early();
    let report = busy.flow.report();
    let sink = &busy.slow.sink;
    wait_sink_quiet(sink);
    let before = sink_ids(sink);
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
    let d2 = Daemon::start(busy.dir.path(), &busy.cfg);
    wait_all_arrive(sink, &accepted, &d2, Duration::from_secs(60));
    d2.wait_spool_empty(Duration::from_secs(60));
    let all = sink_ids(sink);
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
