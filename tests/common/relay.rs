//! Relaying scenarios: a daemon in front of a recording sink, the load generator in the
//! background, next hops that refuse connections, and the checks on what arrived.
//!
//! [`relay`] / [`relay_with`] start a sink and an `impulsed` routing everything to it;
//! [`SlowSink`] is a sink that answers late until told otherwise (load shaping: a backlog
//! builds up in the spool); [`Flow`] runs `impulse-source` on its own thread;
//! [`ClosedPort`] is a next hop that refuses connections for as long as the test holds
//! it. The rest read the sink: by recipient, by Message-ID, duplicates, and the shape of
//! the relayed bytes.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use impulse_sink::{ReceivedMessage, Sink, SinkConfig};
use impulse_source::{SourceConfig, SourceReport};
use lettre::transport::smtp::client::SmtpConnection;
use lettre::transport::smtp::extension::ClientId;

use super::{config, poll, wait_until, Daemon};

/// How long [`wait_for_rcpt`] waits.
const RCPT_WAIT: Duration = Duration::from_secs(30);

/// A daemon relaying everything to a fresh sink, with `extra` config fields. Bind the
/// three (`let (_dir, sink, daemon) = …`): they are dropped daemon first.
pub fn relay(extra: &str) -> (tempfile::TempDir, Sink, Daemon) {
    relay_with(SinkConfig::default(), extra)
}

/// [`relay`] to a sink configured by `sink`.
pub fn relay_with(sink: SinkConfig, extra: &str) -> (tempfile::TempDir, Sink, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(sink).expect("start sink");
    let daemon = Daemon::start(dir.path(), &config(dir.path(), Some(sink.addr()), extra));
    (dir, sink, daemon)
}

/// Wait (bounded) until the sink holds a message for `rcpt`; return it.
#[track_caller]
pub fn wait_for_rcpt(sink: &Sink, daemon: &Daemon, rcpt: &str) -> ReceivedMessage {
    poll(
        RCPT_WAIT,
        &format!("the sink to receive a message for {rcpt}"),
        || messages_to(sink, rcpt).into_iter().next(),
        || {
            format!(
                "sink has {:?}\nlog:\n{:#?}\nstderr:\n{}",
                sink.messages()
                    .iter()
                    .map(|m| m.recipients.clone())
                    .collect::<Vec<_>>(),
                daemon.log_records(),
                daemon.stderr()
            )
        },
    )
}

/// Sink messages that include `recipient`.
pub fn messages_to(sink: &Sink, recipient: &str) -> Vec<ReceivedMessage> {
    sink.messages()
        .into_iter()
        .filter(|m| m.recipients.iter().any(|r| r == recipient))
        .collect()
}

/// Message-IDs the sink has recorded, in order (every sink message must carry one).
pub fn sink_ids(sink: &Sink) -> Vec<String> {
    sink.message_ids()
        .into_iter()
        .map(|id| id.expect("every relayed message keeps its Message-ID"))
        .collect()
}

/// Ids present more than once in `ids`, sorted.
pub fn repeated(ids: &[String]) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        *counts.entry(id.as_str()).or_insert(0) += 1;
    }
    let mut v: Vec<String> = counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id.to_string())
        .collect();
    v.sort();
    v
}

/// Wait until every id in `accepted` has reached the sink (the daemon `d` is the one
/// delivering; its stderr goes into the failure message).
pub fn wait_all_arrive(sink: &Sink, accepted: &HashSet<String>, d: &Daemon, timeout: Duration) {
    let missing = || -> Vec<String> {
        let seen: HashSet<String> = sink_ids(sink).into_iter().collect();
        let mut m: Vec<String> = accepted.difference(&seen).cloned().collect();
        m.sort();
        m
    };
    wait_until(
        timeout,
        "every accepted message to reach the sink after the restart",
        || missing().is_empty(),
        || {
            let m = missing();
            format!(
                "{} of {} accepted messages lost, e.g. {:?}\nstderr:\n{}",
                m.len(),
                accepted.len(),
                &m[..m.len().min(10)],
                d.stderr()
            )
        },
    );
}

/// The sink stopped receiving: no session left open (a session of a killed or stopped
/// daemon ends when its socket is closed or reset).
pub fn wait_sink_quiet(sink: &Sink) {
    wait_until(
        Duration::from_secs(20),
        "the sink's connections from the stopped daemon to close",
        || sink.connections_open() == 0,
        || format!("open: {}", sink.connections_open()),
    );
}

/// A sink (not recording bodies) that answers each message `ms` milliseconds late until
/// [`SlowSink::unslow`]: with few connections to it, reception outruns delivery and a
/// backlog of spooled, undelivered messages builds up (load shaping, not a wait).
pub struct SlowSink {
    pub sink: Sink,
    delay_ms: Arc<AtomicU64>,
}

impl SlowSink {
    pub fn start(ms: u64) -> SlowSink {
        let delay_ms = Arc::new(AtomicU64::new(ms));
        let delay = delay_ms.clone();
        let sink = Sink::start_with_observer(
            SinkConfig {
                record_bodies: false,
                ..Default::default()
            },
            Arc::new(move |_| {
                let ms = delay.load(Ordering::Relaxed);
                if ms > 0 {
                    std::thread::sleep(Duration::from_millis(ms));
                }
            }),
        )
        .unwrap();
        SlowSink { sink, delay_ms }
    }

    /// Answer at full speed from now on.
    pub fn unslow(&self) {
        self.delay_ms.store(0, Ordering::Relaxed);
    }
}

/// The load generator running on its own thread.
pub struct Flow {
    rx: mpsc::Receiver<SourceReport>,
    early: Option<SourceReport>,
}

impl Flow {
    pub fn start(cfg: SourceConfig) -> Flow {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(impulse_source::run(cfg));
        });
        Flow { rx, early: None }
    }

    /// Wait until `sink` holds `n` messages (mail is flowing), or the source has finished
    /// (on a machine where reception outruns delivery completely). Panics if neither
    /// happens within 120 s.
    pub fn wait_flowing(&mut self, sink: &Sink, n: usize, d: &Daemon) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while sink.count() < n {
            if let Ok(r) = self.rx.try_recv() {
                self.early = Some(r);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mail did not start flowing: sink has {} after 120 s\nstderr:\n{}",
                sink.count(),
                d.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the source had finished when [`Flow::wait_flowing`] returned.
    pub fn finished_early(&self) -> bool {
        self.early.is_some()
    }

    /// The source's report: it returns once it has sent everything or its server is gone.
    pub fn report(self) -> SourceReport {
        match self.early {
            Some(r) => r,
            None => self
                .rx
                .recv_timeout(Duration::from_secs(180))
                .expect("the source returns once its server is gone"),
        }
    }
}

/// The mail-flow scenario of the crash and shutdown tests: a daemon relaying to a
/// [`SlowSink`] over at most 8 connections while the load generator sends to it (8
/// sessions of 100 messages of 2 kB), so that a backlog of accepted, undelivered
/// messages is in the spool when the test stops the daemon.
pub struct BusyRelay {
    pub daemon: Daemon,
    pub flow: Flow,
    pub slow: SlowSink,
    /// The daemon's configuration, for a restart on the same directory.
    pub cfg: String,
    pub dir: tempfile::TempDir,
}

impl BusyRelay {
    /// Start the scenario in `dir`, the configuration made by `make_config(dir, route,
    /// extra)` (e.g. [`super::config`]), and return once the sink holds `flowing`
    /// messages or the source has sent all `messages`.
    pub fn start(
        dir: tempfile::TempDir,
        make_config: impl FnOnce(&std::path::Path, Option<SocketAddr>, &str) -> String,
        messages: usize,
        flowing: usize,
    ) -> BusyRelay {
        let slow = SlowSink::start(10);
        let cfg = make_config(
            dir.path(),
            Some(slow.sink.addr()),
            r#"domains: { "*": (max_connections: 8) },"#,
        );
        let daemon = Daemon::start(dir.path(), &cfg);
        let mut flow = Flow::start(SourceConfig {
            addr: daemon.smtp,
            messages,
            size: 2048,
            sessions: 8,
            per_session: 100,
            ..Default::default()
        });
        flow.wait_flowing(&slow.sink, flowing, &daemon);
        BusyRelay {
            daemon,
            flow,
            slow,
            cfg,
            dir,
        }
    }
}

/// A loopback port nothing listens on, held for the test's lifetime: the socket is bound
/// (so no other test or ephemeral connection can take the port) but never listens, so a
/// connection to it is refused at once.
pub struct ClosedPort {
    fd: libc::c_int,
    pub addr: SocketAddr,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
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

/// A lettre SMTP connection to `addr`, saying EHLO `client`.
pub fn lettre_connect(addr: SocketAddr, client: &str, timeout: Duration) -> SmtpConnection {
    SmtpConnection::connect(
        addr,
        Some(timeout),
        &ClientId::Domain(client.into()),
        None,
        None,
    )
    .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Every LF is preceded by CR and every CR followed by LF.
pub fn crlf_only(data: &[u8]) -> bool {
    data.iter().enumerate().all(|(i, &b)| match b {
        b'\n' => i > 0 && data[i - 1] == b'\r',
        b'\r' => data.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

/// What is wrong with `text` as exactly one `Received:` header field (folded lines
/// allowed, CRLF-terminated, no bare CR or LF), or `None` if nothing is.
pub fn received_header_problem(text: &str) -> Option<String> {
    if !text.starts_with("Received: ") {
        return Some(format!("prepended text is not a Received header: {text:?}"));
    }
    if !text.ends_with("\r\n") {
        return Some(format!("prepended header not CRLF-terminated: {text:?}"));
    }
    let body = &text[..text.len() - 2];
    for (i, line) in body.split("\r\n").enumerate() {
        if line.contains('\n') || line.contains('\r') {
            return Some(format!("bare line end in {text:?}"));
        }
        if i > 0 && !(line.starts_with(' ') || line.starts_with('\t')) {
            return Some(format!(
                "prepended text holds more than one header field: {text:?}"
            ));
        }
    }
    None
}
