//! `impulsectl tree` against a running `impulsed` while mail flows: the JSON snapshot
//! links every actor to a live parent (root, its fixed children, the blocking pool's
//! workers, inbound sessions under the listener, outbound connections and messages under
//! their domain), and the drawing shows the same tree — collapsed (ten messages under a
//! domain drawn as five and a count) unless `--all`, filtered by `--class` (the class and
//! its ancestors) and cut by `--depth`. The daemon and its traffic are
//! [`common::ctl::Scenario`]'s.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::ctl::{actors, by_class, children_of, domain, Scenario, BLOCKING_THREADS, HELD, SLOW};
use serde_json::Value;

/// The drawn lines of the root's fixed children (the domains come and go).
const ROOT_CHILDREN: [&str; 6] = [
    "io:",
    "pool:blocking",
    "spool:",
    "control:",
    "logger:",
    "listener:",
];

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

    // --arbiter: every drawn actor says where it runs; a domain's messages run on its
    // arbiter (its connections too, but one another domain of the site adopted stays on
    // the arbiter of the container that opened it); the long-lived actors on arbiter 0.
    let arb = s.ctl_ok(&["tree", "--arbiter"]);
    for (_, l) in parse_tree(&arb) {
        assert!(
            l.starts_with("… and") || l.contains(" arbiter="),
            "{l}\n{arb}"
        );
    }
    assert!(arb.lines().next().unwrap().contains("arbiter=0"), "{arb}");
    let actors = common::ctl::actors(&s.daemon);
    for d in actors.iter().filter(|a| a["class"] == "domain") {
        let messages = actors
            .iter()
            .filter(|a| a["parent"] == d["id"] && a["class"] == "message");
        for child in messages {
            assert_eq!(child["arbiter"], d["arbiter"], "{child} under {d}");
        }
    }
}
