//! Turning a flat registry snapshot into a tree, and drawing it for `impulsectl tree`.
//!
//! Pure functions over [`ActorInfo`] lists — no registry, no actors — so the CLI can use
//! them on what the control socket returned and tests can feed them literals.
//!
//! Drawing rules: roots are printed flush left, descendants with `├── `, `└── ` and
//! `│   ` prefixes, siblings in id order, one line per actor:
//! `{class}:{name} #{id} [{state}] mbox={mailbox} {detail}`. Among siblings, a class with
//! more than [`COLLAPSE_OVER`] members is cut to its first [`COLLAPSE_KEEP`] followed by
//! `… and N more {class}` (unless `all`). A class filter keeps the actors of that class and
//! their ancestors only; a depth limit counts levels below the roots.

use std::collections::HashMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::{ActorId, ActorInfo};
use crate::class::ActorClass;

/// Siblings of one class are collapsed when there are more than this many…
pub const COLLAPSE_OVER: usize = 8;
/// …down to this many, plus a "… and N more" line.
pub const COLLAPSE_KEEP: usize = 5;

/// An actor and its children.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TreeNode {
    pub info: ActorInfo,
    pub children: Vec<TreeNode>,
}

/// Arrange `actors` into trees, siblings sorted by id. An actor whose parent is absent
/// (unregistered, or never given) is a root; so is one caught in a parent cycle.
pub fn build_tree(actors: &[ActorInfo]) -> Vec<TreeNode> {
    let mut order: Vec<usize> = (0..actors.len()).collect();
    order.sort_by_key(|&i| actors[i].id);
    let index: HashMap<ActorId, usize> = order.iter().map(|&i| (actors[i].id, i)).collect();

    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); actors.len()];
    let mut roots = Vec::new();
    for &i in &order {
        match actors[i].parent.and_then(|p| index.get(&p)) {
            Some(&p) if p != i => kids[p].push(i),
            _ => roots.push(i),
        }
    }

    let mut visited = vec![false; actors.len()];
    let mut out: Vec<TreeNode> = roots
        .iter()
        .map(|&r| build(r, actors, &kids, &mut visited))
        .collect();
    // Whatever is still unvisited hangs in a parent cycle: cut it open at its lowest id.
    for &i in &order {
        if !visited[i] {
            out.push(build(i, actors, &kids, &mut visited));
        }
    }
    out.sort_by_key(|n| n.info.id);
    out
}

fn build(i: usize, actors: &[ActorInfo], kids: &[Vec<usize>], visited: &mut [bool]) -> TreeNode {
    visited[i] = true;
    let mut children = Vec::with_capacity(kids[i].len());
    for &k in &kids[i] {
        if !visited[k] {
            children.push(build(k, actors, kids, visited));
        }
    }
    TreeNode {
        info: actors[i].clone(),
        children,
    }
}

/// Draw `nodes` as text, one line per actor, each line ending in `\n`.
///
/// - `depth`: levels below the roots to draw (`Some(0)`: roots only; `None`: all).
/// - `class`: draw only actors of this class and their ancestors.
/// - `all`: never collapse large sibling groups.
pub fn render_tree(
    nodes: &[TreeNode],
    depth: Option<usize>,
    class: Option<ActorClass>,
    all: bool,
) -> String {
    let nodes = only_class(nodes, class);
    let mut out = String::new();
    render_level(&mut out, &nodes, None, 0, depth, all);
    out
}

/// The actors [`render_tree`] draws for the same arguments, in drawing order (collapsed
/// groups keep their first [`COLLAPSE_KEEP`]).
pub fn drawn(
    nodes: &[TreeNode],
    depth: Option<usize>,
    class: Option<ActorClass>,
    all: bool,
) -> Vec<ActorInfo> {
    fn walk(
        out: &mut Vec<ActorInfo>,
        nodes: &[TreeNode],
        level: usize,
        depth: Option<usize>,
        all: bool,
    ) {
        for item in plan(nodes, all) {
            if let Item::Node(n) = item {
                out.push(n.info.clone());
                if depth.is_none_or(|d| level < d) {
                    walk(out, &n.children, level + 1, depth, all);
                }
            }
        }
    }
    let nodes = only_class(nodes, class);
    let mut out = Vec::new();
    walk(&mut out, &nodes, 0, depth, all);
    out
}

/// `nodes` restricted to the actors of `class` and their ancestors (all without a class).
fn only_class(nodes: &[TreeNode], class: Option<ActorClass>) -> std::borrow::Cow<'_, [TreeNode]> {
    match class {
        Some(c) => nodes
            .iter()
            .filter_map(|n| prune(n, c))
            .collect::<Vec<_>>()
            .into(),
        None => nodes.into(),
    }
}

/// `node` restricted to the actors of `class` and their ancestors, if any remain.
fn prune(node: &TreeNode, class: ActorClass) -> Option<TreeNode> {
    let children: Vec<TreeNode> = node
        .children
        .iter()
        .filter_map(|c| prune(c, class))
        .collect();
    (node.info.class == class || !children.is_empty()).then(|| TreeNode {
        info: node.info.clone(),
        children,
    })
}

enum Item<'a> {
    Node(&'a TreeNode),
    More(ActorClass, usize),
}

/// The lines to draw for one sibling group, with large classes collapsed.
fn plan(nodes: &[TreeNode], all: bool) -> Vec<Item<'_>> {
    let mut count = [0usize; ActorClass::COUNT];
    for n in nodes {
        count[n.info.class as usize] += 1;
    }
    let mut seen = [0usize; ActorClass::COUNT];
    let mut items = Vec::with_capacity(nodes.len().min(64));
    for n in nodes {
        let c = n.info.class as usize;
        if all || count[c] <= COLLAPSE_OVER {
            items.push(Item::Node(n));
            continue;
        }
        seen[c] += 1;
        if seen[c] <= COLLAPSE_KEEP {
            items.push(Item::Node(n));
        }
        if seen[c] == COLLAPSE_KEEP {
            items.push(Item::More(n.info.class, count[c] - COLLAPSE_KEEP));
        }
    }
    items
}

fn render_level(
    out: &mut String,
    nodes: &[TreeNode],
    prefix: Option<&str>,
    level: usize,
    depth: Option<usize>,
    all: bool,
) {
    let items = plan(nodes, all);
    let last = items.len().saturating_sub(1);
    for (i, item) in items.iter().enumerate() {
        let (lead, child_prefix) = match prefix {
            None => (String::new(), String::new()),
            Some(p) if i == last => (format!("{p}└── "), format!("{p}    ")),
            Some(p) => (format!("{p}├── "), format!("{p}│   ")),
        };
        match item {
            Item::More(class, n) => {
                let _ = writeln!(out, "{lead}… and {n} more {class}");
            }
            Item::Node(node) => {
                out.push_str(&lead);
                line(out, &node.info);
                if depth.is_none_or(|d| level < d) {
                    render_level(
                        out,
                        &node.children,
                        Some(&child_prefix),
                        level + 1,
                        depth,
                        all,
                    );
                }
            }
        }
    }
}

fn line(out: &mut String, a: &ActorInfo) {
    let _ = write!(
        out,
        "{}:{} #{} [{}] mbox={}",
        a.class, a.name, a.id, a.state, a.mailbox
    );
    if !a.detail.is_empty() {
        out.push(' ');
        out.push_str(&a.detail);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: ActorId, class: ActorClass, name: &str, parent: Option<ActorId>) -> ActorInfo {
        ActorInfo {
            id,
            class,
            name: name.to_string(),
            parent,
            state: "idle".to_string(),
            mailbox: 0,
            detail: String::new(),
            age_ms: 0,
            arbiter: 0,
        }
    }

    fn sample() -> Vec<ActorInfo> {
        use ActorClass::*;
        let mut v = vec![
            info(1, Root, "impulsed", None),
            info(2, Io, "io", Some(1)),
            info(3, Listener, "smtp", Some(1)),
            info(4, Inbound, "c1", Some(3)),
            info(5, Domain, "example.com", Some(1)),
            info(6, Message, "m1", Some(5)),
            info(7, Outbound, "o1", Some(5)),
        ];
        v[3].detail = "192.0.2.7:4711".to_string();
        v[3].state = "data".to_string();
        v[4].mailbox = 3;
        v
    }

    #[test]
    fn builds_nested_trees_and_orphans_become_roots() {
        let mut actors = sample();
        actors.push(info(9, ActorClass::Message, "orphan", Some(42)));
        actors.reverse(); // input order must not matter
        let trees = build_tree(&actors);
        let ids: Vec<_> = trees.iter().map(|n| n.info.id).collect();
        assert_eq!(ids, vec![1, 9]);
        let kids: Vec<_> = trees[0].children.iter().map(|n| n.info.id).collect();
        assert_eq!(kids, vec![2, 3, 5]);
        let dom: Vec<_> = trees[0].children[2]
            .children
            .iter()
            .map(|n| n.info.id)
            .collect();
        assert_eq!(dom, vec![6, 7]);
    }

    #[test]
    fn parent_cycles_do_not_loop() {
        let actors = vec![
            info(1, ActorClass::Other, "a", Some(2)),
            info(2, ActorClass::Other, "b", Some(1)),
            info(3, ActorClass::Other, "self", Some(3)),
        ];
        let trees = build_tree(&actors);
        let count = |n: &TreeNode| 1 + n.children.len();
        assert_eq!(trees.iter().map(count).sum::<usize>(), 3);
    }

    #[test]
    fn renders_with_branch_prefixes() {
        let text = render_tree(&build_tree(&sample()), None, None, false);
        let want = "\
root:impulsed #1 [idle] mbox=0
├── io:io #2 [idle] mbox=0
├── listener:smtp #3 [idle] mbox=0
│   └── inbound:c1 #4 [data] mbox=0 192.0.2.7:4711
└── domain:example.com #5 [idle] mbox=3
    ├── message:m1 #6 [idle] mbox=0
    └── outbound:o1 #7 [idle] mbox=0
";
        assert_eq!(text, want);
    }

    #[test]
    fn depth_limits_levels_below_roots() {
        let trees = build_tree(&sample());
        assert_eq!(
            render_tree(&trees, Some(0), None, false),
            "root:impulsed #1 [idle] mbox=0\n"
        );
        let one = render_tree(&trees, Some(1), None, false);
        assert_eq!(one.lines().count(), 4);
        assert!(!one.contains("inbound"));
    }

    #[test]
    fn class_filter_keeps_matches_and_their_ancestors() {
        let trees = build_tree(&sample());
        let text = render_tree(&trees, None, Some(ActorClass::Inbound), false);
        let want = "\
root:impulsed #1 [idle] mbox=0
└── listener:smtp #3 [idle] mbox=0
    └── inbound:c1 #4 [data] mbox=0 192.0.2.7:4711
";
        assert_eq!(text, want);
        assert_eq!(
            render_tree(&trees, None, Some(ActorClass::Spool), false),
            ""
        );
    }

    #[test]
    fn large_sibling_groups_collapse_unless_all() {
        use ActorClass::*;
        let mut actors = vec![info(1, Domain, "d", None)];
        for id in 2..14 {
            actors.push(info(id, Message, &format!("m{id}"), Some(1)));
        }
        actors.push(info(14, Outbound, "o", Some(1)));
        let trees = build_tree(&actors);
        let text = render_tree(&trees, None, None, false);
        let want = "\
domain:d #1 [idle] mbox=0
├── message:m2 #2 [idle] mbox=0
├── message:m3 #3 [idle] mbox=0
├── message:m4 #4 [idle] mbox=0
├── message:m5 #5 [idle] mbox=0
├── message:m6 #6 [idle] mbox=0
├── … and 7 more message
└── outbound:o #14 [idle] mbox=0
";
        assert_eq!(text, want);
        let full = render_tree(&trees, None, None, true);
        assert_eq!(full.lines().count(), 14);
        assert!(full.contains("└── outbound:o #14"));

        // Exactly COLLAPSE_OVER siblings are all shown; the summary can be the last line.
        let mut eight = vec![info(1, Domain, "d", None)];
        eight.extend((2..10).map(|id| info(id, Message, "m", Some(1))));
        assert_eq!(
            render_tree(&build_tree(&eight), None, None, false)
                .lines()
                .count(),
            9
        );
        eight.push(info(10, Message, "m", Some(1)));
        let nine = render_tree(&build_tree(&eight), None, None, false);
        assert!(nine.ends_with("└── … and 4 more message\n"), "{nine}");
    }

    #[test]
    fn drawn_lists_what_render_draws() {
        use ActorClass::*;
        let mut actors = vec![info(1, Domain, "d", None)];
        for id in 2..14 {
            actors.push(info(id, Message, "m", Some(1)));
        }
        actors.push(info(14, Outbound, "o", Some(1)));
        let trees = build_tree(&actors);
        let ids = |v: Vec<ActorInfo>| v.iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(
            ids(drawn(&trees, None, None, false)),
            vec![1, 2, 3, 4, 5, 6, 14]
        );
        assert_eq!(drawn(&trees, None, None, true).len(), 14);
        assert_eq!(ids(drawn(&trees, Some(0), None, false)), vec![1]);
        assert_eq!(ids(drawn(&trees, None, Some(Outbound), false)), vec![1, 14]);
    }
}
