//! `impulsectl` against a running `impulsed` while mail flows: the actor tree (JSON and
//! drawn), memory per actor class, the sync pools, the domain queues, the status counters,
//! the exit codes and the `IMPULSE_SOCKET` variable.
//!
//! The scenario is built to be deterministic, so every kind of actor is in the tree at
//! the same moment:
//! - two SMTP clients stay connected after EHLO → two `inbound` actors under the listener;
//! - `fast.test` is routed to a recording sink that accepts → delivered, nothing left;
//! - `slow.test` goes to the same sink, which answers `451` to every `slow` recipient, and
//!   the retry interval is an hour → the messages wait as `message` actors under their
//!   domain (more than eight of them, so the drawn tree collapses them);
//! - `held.test` is routed to a socket that accepts and never greets → its `outbound`
//!   connection waits for the greeting (command timeout: minutes) with its `message`
//!   under the domain.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config, impulsectl_bin, impulsectl_in, wait_until, Daemon, RawClient};
use impulse_sink::{Rule, Sink, SinkConfig, Stage};
use serde_json::Value;

const FAST: usize = 3;
const SLOW: usize = 10;
const HELD: usize = 1;
const BLOCKING_THREADS: u64 = 3;
const WAIT: Duration = Duration::from_secs(60);
/// The drawn lines of the root's fixed children (the domains come and go).
const ROOT_CHILDREN: [&str; 6] = [
    "io:",
    "pool:blocking",
    "spool:",
    "control:",
    "logger:",
    "listener:",
];

/// A next hop that accepts connections and never says anything.
struct Holder {
    addr: SocketAddr,
    _conns: Arc<Mutex<Vec<TcpStream>>>,
}

fn silent_next_hop() -> Holder {
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

struct Scenario {
    daemon: Daemon,
    sink: Sink,
    held_hop: Holder,
    /// Client sessions held open after EHLO; their local addresses name the inbound actors.
    _clients: Vec<RawClient>,
    client_addrs: BTreeSet<String>,
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

fn actors(daemon: &Daemon) -> Vec<Value> {
    let v = daemon.ctl_json(&["tree"]);
    assert_eq!(v["type"], "tree", "{v}");
    v["actors"].as_array().expect("actors list").clone()
}

fn by_class<'a>(actors: &'a [Value], class: &str) -> Vec<&'a Value> {
    actors.iter().filter(|a| a["class"] == class).collect()
}

fn children_of<'a>(actors: &'a [Value], parent: &Value, class: &str) -> Vec<&'a Value> {
    actors
        .iter()
        .filter(|a| a["class"] == class && a["parent"] == parent["id"])
        .collect()
}

fn domain<'a>(actors: &'a [Value], name: &str) -> Option<&'a Value> {
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
        && slow_msgs.iter().all(|m| m["state"] == "delayed")
        && children_of(actors, held, "message").len() == HELD
        && children_of(actors, held, "outbound").len() == 1
}

impl Scenario {
    fn start() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start(SinkConfig {
            rules: vec![Rule::always("slow", Stage::Rcpt, "451 4.3.0 later")],
            ..Default::default()
        })
        .unwrap();
        let held_hop = silent_next_hop();
        let extra = format!(
            "routes: {{ \"*\": \"{}\", \"held.test\": \"{}\" }},\n    \
             pools: (blocking: {BLOCKING_THREADS}),\n    \
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

    fn ctl_ok(&self, args: &[&str]) -> String {
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

/// A drawn tree line: its depth (from the branch prefix) and the text after the prefix.
fn parse_tree(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.ends_with(" actors") && !line.contains(':') {
            continue; // the closing "N actors" count
        }
        let prefix: usize = line
            .chars()
            .take_while(|c| matches!(c, '│' | '├' | '└' | '─' | ' '))
            .count();
        assert_eq!(prefix % 4, 0, "odd branch prefix in {line:?}");
        let body: String = line.chars().skip(prefix).collect();
        out.push((prefix / 4, body));
    }
    out
}

/// For each drawn line, the index of its parent line.
fn parents(lines: &[(usize, String)]) -> Vec<Option<usize>> {
    let mut stack: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for (i, (depth, _)) in lines.iter().enumerate() {
        stack.truncate(*depth);
        assert_eq!(stack.len(), *depth, "line {i} jumps a level: {lines:?}");
        out.push(stack.last().copied());
        stack.push(i);
    }
    out
}

fn line_of(a: &Value) -> String {
    format!(
        "{}:{} #{} [{}] mbox=",
        a["class"].as_str().unwrap(),
        a["name"].as_str().unwrap(),
        a["id"],
        a["state"].as_str().unwrap()
    )
}

#[test]
fn tree_json_links_every_actor_to_its_parent() {
    let s = Scenario::start();
    let all = actors(&s.daemon);
    let ids: HashMap<u64, &Value> = all.iter().map(|a| (a["id"].as_u64().unwrap(), a)).collect();
    assert_eq!(ids.len(), all.len(), "actor ids are unique");
    for a in &all {
        for key in ["id", "class", "name", "parent", "state", "mailbox"] {
            assert!(a.get(key).is_some(), "actor without {key}: {a}");
        }
        assert!(a["mailbox"].is_u64(), "{a}");
    }

    let roots = by_class(&all, "root");
    assert_eq!(roots.len(), 1, "{all:#?}");
    let root = roots[0];
    assert!(root["parent"].is_null(), "{root}");
    assert_eq!(root["name"], "impulsed");

    let of_root = |class: &str| children_of(&all, root, class);
    for class in ["io", "spool", "control", "logger", "listener"] {
        assert_eq!(
            of_root(class).len(),
            1,
            "one {class} under the root: {all:#?}"
        );
    }
    let pools = of_root("pool");
    assert_eq!(pools.len(), 1, "{all:#?}");
    assert_eq!(pools[0]["name"], "blocking");
    assert_eq!(
        children_of(&all, pools[0], "pool").len() as u64,
        BLOCKING_THREADS,
        "one worker per pool thread: {all:#?}"
    );

    let domains: BTreeSet<&str> = of_root("domain")
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        domains,
        BTreeSet::from(["fast.test", "held.test", "slow.test"]),
        "every domain container hangs off the root"
    );
    assert_eq!(by_class(&all, "domain").len(), 3);

    // Inbound sessions under the listener, named by the client's address.
    let listener = of_root("listener")[0];
    assert_eq!(
        listener["detail"],
        s.daemon.smtp.to_string(),
        "the listener shows its real address"
    );
    let inbound: BTreeSet<String> = children_of(&all, listener, "inbound")
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(inbound, s.client_addrs);
    assert_eq!(by_class(&all, "inbound").len(), s.client_addrs.len());

    // Outbound connections and messages under their domain.
    let held = domain(&all, "held.test").unwrap();
    let out = children_of(&all, held, "outbound");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["name"], s.held_hop.addr.to_string());
    assert_eq!(out[0]["state"], "greeting", "{}", out[0]);
    for o in by_class(&all, "outbound") {
        let parent = &ids[&o["parent"].as_u64().expect("outbound has a parent")];
        assert_eq!(parent["class"], "domain", "{o}");
    }
    let slow = domain(&all, "slow.test").unwrap();
    assert_eq!(children_of(&all, slow, "message").len(), SLOW);
    assert_eq!(children_of(&all, held, "message").len(), HELD);
    let messages = by_class(&all, "message");
    assert_eq!(messages.len(), SLOW + HELD, "{all:#?}");
    for m in messages {
        let parent = &ids[&m["parent"].as_u64().expect("message has a parent")];
        assert_eq!(parent["class"], "domain", "{m}");
    }

    // Nothing is orphaned: every parent is a live actor.
    for a in &all {
        if let Some(p) = a["parent"].as_u64() {
            assert!(ids.contains_key(&p), "parent of {a} is not in the tree");
        }
    }
}

#[test]
fn tree_is_drawn_filtered_limited_and_collapsed() {
    let s = Scenario::start();

    // The full drawing, collapsed.
    let text = s.ctl_ok(&["tree"]);
    let lines = parse_tree(&text);
    let up = parents(&lines);
    assert!(
        lines[0].0 == 0 && lines[0].1.starts_with("root:impulsed #"),
        "{text}"
    );
    assert!(
        lines.iter().skip(1).all(|(d, _)| *d > 0),
        "a single root: {text}"
    );
    let parent_text = |i: usize| up[i].map(|p| lines[p].1.as_str()).unwrap_or("");
    for class in ROOT_CHILDREN {
        let at: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].1.starts_with(class))
            .collect();
        assert!(!at.is_empty(), "no {class} line in:\n{text}");
        assert_eq!(lines[at[0]].0, 1, "{class} is a child of the root:\n{text}");
    }
    let listener_line = lines
        .iter()
        .find(|(_, l)| l.starts_with("listener:"))
        .unwrap();
    assert!(
        listener_line.1.ends_with(&s.daemon.smtp.to_string()),
        "the listener line shows the real address: {}",
        listener_line.1
    );
    let mut inbound_seen = BTreeSet::new();
    let mut outbound_seen = 0;
    let mut slow_msgs = 0;
    let mut held_msgs = 0;
    let mut more = Vec::new();
    for (i, (_, l)) in lines.iter().enumerate() {
        let parent = parent_text(i);
        if let Some(rest) = l.strip_prefix("inbound:") {
            assert!(parent.starts_with("listener:"), "{l} under {parent}");
            inbound_seen.insert(rest.split(' ').next().unwrap().to_string());
        } else if l.starts_with("outbound:") {
            assert!(parent.starts_with("domain:"), "{l} under {parent}");
            if parent.starts_with("domain:held.test ") {
                outbound_seen += 1;
            }
        } else if l.starts_with("message:") {
            if parent.starts_with("domain:slow.test ") {
                slow_msgs += 1;
            } else if parent.starts_with("domain:held.test ") {
                held_msgs += 1;
            } else {
                panic!("{l} under {parent}:\n{text}");
            }
        } else if l.starts_with("… and ") {
            more.push((l.clone(), parent.to_string()));
        } else if l.starts_with("domain:") {
            assert!(parent.starts_with("root:"), "{l} under {parent}");
        }
    }
    assert_eq!(inbound_seen, s.client_addrs, "{text}");
    assert_eq!(outbound_seen, 1, "{text}");
    assert_eq!(held_msgs, HELD, "{text}");
    // Ten messages under slow.test collapse to five and a count.
    assert_eq!(slow_msgs, 5, "{text}");
    assert_eq!(more.len(), 1, "{text}");
    assert_eq!(more[0].0, format!("… and {} more message", SLOW - 5));
    assert!(more[0].1.starts_with("domain:slow.test "), "{text}");
    let last = text.lines().last().unwrap();
    assert!(
        last.ends_with(" actors") && last.split(' ').next().unwrap().parse::<usize>().is_ok(),
        "closing count line: {last:?}"
    );

    // Every line of the JSON snapshot has its drawn counterpart (ids and classes agree).
    let all = actors(&s.daemon);
    let full = s.ctl_ok(&["tree", "--all"]);
    assert!(!full.contains("… and"), "--all does not collapse:\n{full}");
    for a in &all {
        if [
            "inbound", "outbound", "message", "domain", "listener", "root",
        ]
        .contains(&a["class"].as_str().unwrap())
        {
            assert!(
                full.contains(&line_of(a)),
                "{} missing from:\n{full}",
                line_of(a)
            );
        }
    }
    let full_lines = parse_tree(&full);
    let full_up = parents(&full_lines);
    let slow_all = (0..full_lines.len())
        .filter(|&i| {
            full_lines[i].1.starts_with("message:")
                && full_up[i].is_some_and(|p| full_lines[p].1.starts_with("domain:slow.test "))
        })
        .count();
    assert_eq!(slow_all, SLOW, "{full}");

    // --class keeps that class and its ancestors.
    let msgs = s.ctl_ok(&["tree", "--class", "message", "--all"]);
    let msg_lines = parse_tree(&msgs);
    for (_, l) in &msg_lines {
        assert!(
            l.starts_with("root:")
                || l.starts_with("message:")
                || l.starts_with("domain:slow.test ")
                || l.starts_with("domain:held.test "),
            "unexpected line {l:?} in --class message:\n{msgs}"
        );
    }
    assert_eq!(
        msg_lines
            .iter()
            .filter(|(_, l)| l.starts_with("message:"))
            .count(),
        SLOW + HELD,
        "{msgs}"
    );
    assert!(
        !msgs.contains("domain:fast.test"),
        "fast.test has no messages left:\n{msgs}"
    );
    let collapsed = s.ctl_ok(&["tree", "--class", "message"]);
    assert!(
        collapsed.contains(&format!("└── … and {} more message", SLOW - 5)),
        "{collapsed}"
    );
    let inb = s.ctl_ok(&["tree", "--class", "inbound"]);
    let inb_lines = parse_tree(&inb);
    assert_eq!(inb_lines.len(), 2 + s.client_addrs.len(), "{inb}");
    assert!(inb_lines[1].1.starts_with("listener:"), "{inb}");

    // --depth 1: the root and its children only.
    let shallow = s.ctl_ok(&["tree", "--depth", "1"]);
    let shallow_lines = parse_tree(&shallow);
    assert!(shallow_lines[0].1.starts_with("root:"), "{shallow}");
    assert!(
        shallow_lines.iter().skip(1).all(|(d, _)| *d == 1),
        "{shallow}"
    );
    for want in ROOT_CHILDREN.iter().chain(&["domain:slow.test"]) {
        assert!(
            shallow_lines.iter().any(|(_, l)| l.starts_with(want)),
            "{want} missing at depth 1:\n{shallow}"
        );
    }
    for gone in ["inbound:", "outbound:", "message:", "blocking-worker"] {
        assert!(!shallow.contains(gone), "{gone} below depth 1:\n{shallow}");
    }
    let root_only = s.ctl_ok(&["tree", "--depth", "0"]);
    assert_eq!(parse_tree(&root_only).len(), 1, "{root_only}");
}

#[test]
fn memory_is_counted_per_class_and_adds_up() {
    let s = Scenario::start();

    // The per-class counters and the total are read one after the other while other
    // threads may allocate; they agree at a quiescent moment, which an idle daemon
    // reaches quickly.
    let mut last = Value::Null;
    let mut agreed = false;
    for _ in 0..100 {
        let m = s.daemon.ctl_json(&["memory"]);
        assert_eq!(m["type"], "memory", "{m}");
        let sum: i64 = m["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["live_bytes"].as_i64().unwrap())
            .sum();
        let total = m["total_live_bytes"].as_i64().unwrap();
        last = m;
        if sum == total {
            agreed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        agreed,
        "sum of the classes never matched total_live_bytes; last report:\n{last:#}"
    );
    let m = &last;
    assert_eq!(m["installed"], true, "the counting allocator is installed");
    assert!(m["total_live_bytes"].as_i64().unwrap() > 0);
    let classes: BTreeMap<&str, &Value> = m["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["class"].as_str().unwrap(), c))
        .collect();
    assert_eq!(classes.len(), 12, "one entry per class: {m:#}");
    for class in ["message", "domain", "inbound", "outbound", "io", "spool"] {
        let c = classes
            .get(class)
            .unwrap_or_else(|| panic!("no {class} in {m:#}"));
        assert!(
            c["live_bytes"].as_i64().unwrap() > 0,
            "{class} has live actors but no live bytes: {c}"
        );
        assert!(c["live_allocs"].as_i64().unwrap() > 0, "{c}");
        assert!(c["total_allocs"].as_u64().unwrap() > 0, "{c}");
        assert!(
            c["peak_bytes"].as_i64().unwrap() >= c["live_bytes"].as_i64().unwrap(),
            "the peak is at least what is live now: {c}"
        );
    }

    // The human table: a header, one row per class, and the total line.
    let text = s.ctl_ok(&["memory"]);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header[0], "CLASS", "{text}");
    assert!(text.lines().next().unwrap().contains("LIVE"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("total"))
        .collect();
    assert_eq!(rows.len(), 12, "{text}");
    for class in classes.keys() {
        assert!(
            rows.iter()
                .any(|r| r.split_whitespace().next() == Some(class)),
            "no row for {class}:\n{text}"
        );
    }
    let total = text.lines().last().unwrap();
    assert!(total.starts_with("total live "), "{text}");
    assert!(total.contains("sum of classes"), "{text}");
    assert!(!total.contains("not installed"), "{text}");

    // memory CLASS keeps one row.
    let one = s.ctl_ok(&["memory", "message"]);
    let rows: Vec<&str> = one
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("total"))
        .collect();
    assert_eq!(rows.len(), 1, "{one}");
    assert!(rows[0].starts_with("message "), "{one}");
}

#[test]
fn pools_queues_and_status_match_the_traffic() {
    let s = Scenario::start();

    // pools: the blocking pool with the configured threads, and it has done work.
    let p = s.daemon.ctl_json(&["pools"]);
    assert_eq!(p["type"], "pools", "{p}");
    let pools = p["pools"].as_array().unwrap();
    let blocking = pools
        .iter()
        .find(|x| x["name"] == "blocking")
        .unwrap_or_else(|| panic!("no blocking pool: {p:#}"));
    assert_eq!(
        blocking["threads"].as_u64(),
        Some(BLOCKING_THREADS),
        "{p:#}"
    );
    assert!(blocking["completed"].as_u64().unwrap() > 0, "{p:#}");
    assert!(
        blocking["busy"].as_u64().unwrap() <= BLOCKING_THREADS,
        "{p:#}"
    );
    let text = s.ctl_ok(&["pools"]);
    assert!(text.lines().next().unwrap().starts_with("POOL"), "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("blocking "))
        .unwrap_or_else(|| panic!("no blocking row:\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], BLOCKING_THREADS.to_string(), "{text}");

    // queues: one row per domain container.
    let q = s.daemon.ctl_json(&["queues"]);
    assert_eq!(q["type"], "queues", "{q}");
    let rows: BTreeMap<&str, &Value> = q["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["domain"].as_str().unwrap(), r))
        .collect();
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        vec!["fast.test", "held.test", "slow.test"],
        "{q:#}"
    );
    assert_eq!(q["domains"].as_array().unwrap().len(), 3, "{q:#}");
    let slow = rows["slow.test"];
    assert_eq!(slow["delayed"].as_u64(), Some(SLOW as u64), "{slow}");
    assert_eq!(slow["active"].as_u64(), Some(0), "{slow}");
    assert_eq!(slow["in_flight"].as_u64(), Some(0), "{slow}");
    assert!(slow["next_retry_secs"].as_u64().is_some(), "{slow}");
    let fast = rows["fast.test"];
    assert_eq!(fast["delayed"].as_u64(), Some(0), "{fast}");
    assert_eq!(fast["active"].as_u64(), Some(0), "{fast}");
    assert_eq!(fast["finished"].as_u64(), Some(FAST as u64), "{fast}");
    let held = rows["held.test"];
    assert_eq!(held["delayed"].as_u64(), Some(0), "{held}");
    assert_eq!(
        held["active"].as_u64().unwrap() + held["in_flight"].as_u64().unwrap(),
        HELD as u64,
        "{held}"
    );
    assert_eq!(held["connections"].as_u64(), Some(1), "{held}");

    let text = s.ctl_ok(&["queues"]);
    assert!(text.lines().next().unwrap().starts_with("DOMAIN"), "{text}");
    let body: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(body.len(), 3, "{text}");
    let slow_row = body
        .iter()
        .find(|r| r[0] == "slow.test")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(slow_row[1], "0", "active: {text}");
    assert_eq!(slow_row[2], SLOW.to_string(), "delayed: {text}");

    // status: the counters match what was sent and delivered.
    let st = s.daemon.ctl_json(&["status"]);
    assert_eq!(st["type"], "status", "{st}");
    let total = (FAST + SLOW + HELD) as u64;
    assert_eq!(st["received"].as_u64(), Some(total), "{st:#}");
    assert_eq!(
        st["delivered"].as_u64(),
        Some(s.sink.count() as u64),
        "{st:#}"
    );
    assert_eq!(st["delivered"].as_u64(), Some(FAST as u64), "{st:#}");
    assert_eq!(st["deferred"].as_u64(), Some(SLOW as u64), "{st:#}");
    assert_eq!(st["bounced"].as_u64(), Some(0), "{st:#}");
    assert_eq!(st["expired"].as_u64(), Some(0), "{st:#}");
    assert_eq!(st["queued_delayed"].as_u64(), Some(SLOW as u64), "{st:#}");
    assert_eq!(
        st["messages_live"].as_u64(),
        Some((SLOW + HELD) as u64),
        "{st:#}"
    );
    assert_eq!(st["domains"].as_u64(), Some(3), "{st:#}");
    // Connections in and out are those open now: the two idle sessions (the one that
    // sent the mail has quit), and at least the connection waiting for held.test.
    assert_eq!(
        st["connections_in"].as_u64(),
        Some(s.client_addrs.len() as u64),
        "{st:#}"
    );
    assert!(st["connections_out"].as_u64().unwrap() >= 1, "{st:#}");
    assert!(!st["version"].as_str().unwrap().is_empty(), "{st:#}");

    let text = s.ctl_ok(&["status"]);
    let field = |name: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} line:\n{text}"));
        line[name.len()..].trim().to_string()
    };
    assert_eq!(field("received"), total.to_string(), "{text}");
    assert_eq!(field("delivered"), FAST.to_string(), "{text}");
    assert_eq!(field("deferred"), SLOW.to_string(), "{text}");

    // Once the connections to the sink have lingered idle and quit, only the one waiting
    // for held.test's greeting is open.
    let outbound = || by_class(&actors(&s.daemon), "outbound").len();
    wait_until(
        WAIT,
        "the idle connections to the sink to quit",
        || outbound() == 1 && s.sink.connections_open() == 0,
        || {
            format!(
                "{} outbound actors, {} sink connections still open",
                outbound(),
                s.sink.connections_open()
            )
        },
    );
    let st = s.daemon.ctl_json(&["status"]);
    assert_eq!(st["connections_out"].as_u64(), Some(1), "{st:#}");
    assert_eq!(
        st["connections_in"].as_u64(),
        Some(s.client_addrs.len() as u64),
        "{st:#}"
    );
}

fn ctl_raw(
    socket: &std::path::Path,
    env_socket: Option<&std::path::Path>,
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(impulsectl_bin());
    cmd.env_remove("IMPULSE_SOCKET");
    if let Some(e) = env_socket {
        cmd.env("IMPULSE_SOCKET", e);
    }
    if !socket.as_os_str().is_empty() {
        cmd.arg("--socket").arg(socket);
    }
    cmd.args(args).output().expect("run impulsectl")
}

fn one_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line of reason on stderr, got:\n{err}"
    );
    assert!(!err.trim().is_empty());
    err
}

#[test]
fn exit_codes_json_and_socket_variable() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), None, ""));
    let socket = daemon.socket();
    let none = std::path::Path::new("");

    // Unreachable: a socket that does not exist.
    let missing = dir.path().join("no-such-dir").join("control.sock");
    for args in [
        &["status"][..],
        &["--json", "tree"],
        &["memory"],
        &["pools"],
        &["queues"],
    ] {
        let out = ctl_raw(&missing, None, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = one_line(&out);
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    // Unreachable: a path that is not a socket.
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, "not a socket").unwrap();
    let out = ctl_raw(&plain, None, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    one_line(&out);

    // Unknown class: refused with exit 1 and a one-line reason.
    for args in [
        &["tree", "--class", "no-such-class"][..],
        &["--json", "tree", "--class", "no-such-class"],
        &["memory", "no-such-class"],
    ] {
        let out = ctl_raw(&socket, None, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = one_line(&out);
        assert!(err.contains("no-such-class"), "{err}");
    }

    // Every command's --json output parses and says which response it is.
    for (cmd, ty) in [
        ("status", "status"),
        ("tree", "tree"),
        ("memory", "memory"),
        ("pools", "pools"),
        ("queues", "queues"),
    ] {
        let out = ctl_raw(&socket, None, &["--json", cmd]);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{cmd} --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(v["type"], ty, "{v}");
        // --json is global: after the command as well.
        let after = ctl_raw(&socket, None, &[cmd, "--json"]);
        assert_eq!(after.status.code(), Some(0), "{cmd} --json: {after:?}");
        let v: Value = serde_json::from_slice(&after.stdout).expect("JSON after the command");
        assert_eq!(v["type"], ty, "{v}");
    }

    // IMPULSE_SOCKET instead of --socket.
    let out = ctl_raw(none, Some(&socket), &["--json", "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "status");
    let out = ctl_raw(none, Some(&socket), &["tree"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("root:impulsed #"));
    // --socket wins over the variable.
    let out = ctl_raw(&socket, Some(&missing), &["--json", "pools"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The variable pointing nowhere: unreachable.
    let out = ctl_raw(none, Some(&missing), &["status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(one_line(&out).contains(&missing.display().to_string()));
    // Neither: the default, impulse-data/control.sock relative to the working directory.
    let out = impulsectl_in(dir.path(), &["--json", "status"]);
    assert_eq!(out.status.code(), Some(2), "no impulse-data here: {out:?}");
    assert!(one_line(&out).contains("impulse-data/control.sock"));

    // After the daemon is gone the socket is unreachable.
    let mut daemon = daemon;
    let out = ctl_raw(&socket, None, &["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = daemon.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    let out = ctl_raw(&socket, None, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    one_line(&out);
}
