//! The control scenarios' daemon (`ctl_tree`, `ctl_memory`, `ctl_counters`): a running
//! `impulsed` with mail in every state at once, and the reading of its actor tree.
//!
//! [`Scenario::start`] builds it deterministically, so every kind of actor is in the tree
//! at the same moment:
//! - two SMTP clients stay connected after EHLO → two `inbound` actors under the listener;
//! - `fast.test` is routed to a recording sink that accepts → delivered, nothing left;
//! - `slow.test` goes to the same sink, which answers `451` to every `slow` recipient, and
//!   the retry interval is an hour → the messages wait as `message` actors under their
//!   domain (more than eight of them, so the drawn tree collapses them);
//! - `held.test` is routed to a socket that accepts and never greets → its `outbound`
//!   connection waits for the greeting (command timeout: minutes) with its `message`
//!   under the domain.
//!
//! [`actors`], [`by_class`], [`children_of`] and [`domain`] pick actors out of
//! `impulsectl --json tree`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use impulse_sink::{Rule, Sink, SinkConfig, Stage};
use serde_json::Value;

use super::{config, wait_until, Daemon, RawClient};

/// Messages to `fast.test` (delivered at once).
pub const FAST: usize = 3;
/// Messages to `slow.test` (deferred, waiting an hour for their retry).
pub const SLOW: usize = 10;
/// Messages to `held.test` (waiting on a next hop that never greets).
pub const HELD: usize = 1;
/// Threads of the blocking pool.
pub const BLOCKING_THREADS: u64 = 3;
/// Upper bound of every wait in the control scenarios.
pub const WAIT: Duration = Duration::from_secs(60);

/// A next hop that accepts connections and never says anything.
pub struct Holder {
    pub addr: SocketAddr,
    _conns: Arc<Mutex<Vec<TcpStream>>>,
}

pub fn silent_next_hop() -> Holder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(Mutex::new(Vec::new()));
    let keep = conns.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    Holder {
        addr,
        _conns: conns,
    }
}

pub struct Scenario {
    pub daemon: Daemon,
    pub sink: Sink,
    pub held_hop: Holder,
    /// Client sessions held open after EHLO; their local addresses name the inbound actors.
    _clients: Vec<RawClient>,
    pub client_addrs: BTreeSet<String>,
    _dir: tempfile::TempDir,
}

/// One SMTP session sending one single-recipient message per address, then QUIT.
fn send_all(addr: SocketAddr, rcpts: &[String]) {
    let mut c = RawClient::connect(addr);
    c.ok("EHLO sender.test", 250);
    for (i, rcpt) in rcpts.iter().enumerate() {
        c.open_data("sender@sender.test", &[rcpt]);
        c.end_data(
            format!(
                "From: sender@sender.test\r\nTo: {rcpt}\r\nSubject: control {i}\r\n\r\nhello {i}\r\n"
            )
            .as_bytes(),
        );
    }
    c.ok("QUIT", 221);
}

pub fn actors(daemon: &Daemon) -> Vec<Value> {
    let v = daemon.ctl_json(&["tree", "--all"]);
    assert_eq!(v["type"], "tree", "{v}");
    v["actors"].as_array().expect("actors list").clone()
}

pub fn by_class<'a>(actors: &'a [Value], class: &str) -> Vec<&'a Value> {
    actors.iter().filter(|a| a["class"] == class).collect()
}

pub fn children_of<'a>(actors: &'a [Value], parent: &Value, class: &str) -> Vec<&'a Value> {
    actors
        .iter()
        .filter(|a| a["class"] == class && a["parent"] == parent["id"])
        .collect()
}

pub fn domain<'a>(actors: &'a [Value], name: &str) -> Option<&'a Value> {
    actors
        .iter()
        .find(|a| a["class"] == "domain" && a["name"] == name)
}

/// Whether the snapshot shows the whole scenario settled: every fast message gone,
/// every slow one waiting, the held one and its connection waiting, both clients there.
fn settled(actors: &[Value], s: &Scenario) -> bool {
    let inbound: BTreeSet<String> = by_class(actors, "inbound")
        .iter()
        .map(|a| a["name"].as_str().unwrap_or("").to_string())
        .collect();
    let (Some(fast), Some(slow), Some(held)) = (
        domain(actors, "fast.test"),
        domain(actors, "slow.test"),
        domain(actors, "held.test"),
    ) else {
        return false;
    };
    let slow_msgs = children_of(actors, slow, "message");
    inbound == s.client_addrs
        && children_of(actors, fast, "message").is_empty()
        && slow_msgs.len() == SLOW
        && slow_msgs.iter().all(|m| m["state"] == "hibernating")
        && children_of(actors, held, "message").len() == HELD
        && children_of(actors, held, "outbound").len() == 1
}

impl Scenario {
    pub fn start() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start(SinkConfig {
            rules: vec![Rule::always("slow", Stage::Rcpt, "451 4.3.0 later")],
            ..Default::default()
        })
        .unwrap();
        let held_hop = silent_next_hop();
        let extra = format!(
            "routes: {{ \"*\": \"{}\", \"held.test\": \"{}\" }},\n    \
             pools: (blocking: {BLOCKING_THREADS}, arbiters: 2),\n    \
             domains: {{ \"*\": (retry_interval: \"1h\", max_retry_interval: \"1h\") }},",
            sink.addr(),
            held_hop.addr
        );
        let daemon = Daemon::start(dir.path(), &config(dir.path(), None, &extra));

        // Two sessions that stay open after EHLO.
        let mut clients = Vec::new();
        let mut client_addrs = BTreeSet::new();
        for _ in 0..2 {
            let mut c = RawClient::connect(daemon.smtp);
            c.ok("EHLO idle.test", 250);
            client_addrs.insert(c.stream.local_addr().unwrap().to_string());
            clients.push(c);
        }

        let mut rcpts: Vec<String> = (0..FAST).map(|i| format!("ok{i}@fast.test")).collect();
        rcpts.extend((0..SLOW).map(|i| format!("slow{i}@slow.test")));
        rcpts.extend((0..HELD).map(|i| format!("held{i}@held.test")));
        send_all(daemon.smtp, &rcpts);

        let s = Scenario {
            daemon,
            sink,
            held_hop,
            _clients: clients,
            client_addrs,
            _dir: dir,
        };
        assert!(
            s.sink.wait_for(FAST, WAIT),
            "the sink got {} of {FAST} messages; stderr:\n{}",
            s.sink.count(),
            s.daemon.stderr()
        );
        let last = std::cell::RefCell::new(Vec::new());
        wait_until(
            WAIT,
            "the scenario to settle",
            || {
                let now = actors(&s.daemon);
                let done = settled(&now, &s);
                *last.borrow_mut() = now;
                done
            },
            || {
                format!(
                    "tree:\n{}\nstderr:\n{}",
                    serde_json::to_string_pretty(&*last.borrow()).unwrap(),
                    s.daemon.stderr()
                )
            },
        );
        s
    }

    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.daemon.ctl(args);
        assert!(
            out.status.success(),
            "impulsectl {args:?}: {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }
}
