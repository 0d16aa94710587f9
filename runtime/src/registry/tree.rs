//! Turning a flat list of actors into a tree, and drawing it for `impulsectl tree`.
//!
//! Pure functions — no registry, no actors — so tests can feed them literals. The tree
//! is first reduced to its [`Shape`] (id, parent and class of every actor: no text, no
//! allocation per actor), on which filtering, depth and collapsing are decided; the
//! text of an actor is asked for (`info`) only for the lines actually drawn. That is
//! what keeps `impulsectl tree` fast with a million messages in the registry.
//!
//! Drawing rules: roots are printed flush left, descendants with `├── `, `└── ` and
//! `│   ` prefixes, siblings in id order, one line per actor:
//! `{class}:{name} #{id} [{state}] mbox={mailbox} {detail}` (with `arbiter=N` after the
//! mailbox when asked). Among siblings, a class with
//! more than [`COLLAPSE_OVER`] members is cut to its first [`COLLAPSE_KEEP`] followed by
//! `… and N more {class}` (unless `all`). A class filter keeps the actors of that class and
//! their ancestors only; a depth limit counts levels below the roots. An actor whose
//! parent is absent (unregistered, or never given) is a root; so is one caught in a
//! parent cycle (cut open at its lowest id).

use std::fmt::Write;

use super::{ActorId, ActorInfo};
use crate::class::ActorClass;

/// Siblings of one class are collapsed when there are more than this many…
pub const COLLAPSE_OVER: usize = 8;
/// …down to this many, plus a "… and N more" line.
pub const COLLAPSE_KEEP: usize = 5;

/// The shape of a tree: for each actor (by index, in id order) its id, class and
/// children, and the roots.
#[derive(Debug, Default)]
pub struct Shape {
    ids: Vec<ActorId>,
    classes: Vec<ActorClass>,
    children: Vec<Vec<u32>>,
    roots: Vec<u32>,
}

impl Shape {
    /// The shape of `actors`: `(id, parent, class)` in any order.
    pub fn new(mut actors: Vec<(ActorId, Option<ActorId>, ActorClass)>) -> Shape {
        actors.sort_unstable_by_key(|a| a.0);
        actors.dedup_by_key(|a| a.0);
        let n = actors.len();
        let mut shape = Shape {
            ids: actors.iter().map(|a| a.0).collect(),
            classes: actors.iter().map(|a| a.2).collect(),
            children: vec![Vec::new(); n],
            roots: Vec::new(),
        };
        let mut parent = vec![None; n];
        for (i, a) in actors.iter().enumerate() {
            let p = a.1.and_then(|p| shape.ids.binary_search(&p).ok());
            match p {
                Some(p) if p != i => {
                    parent[i] = Some(p);
                    shape.children[p].push(i as u32);
                }
                _ => shape.roots.push(i as u32),
            }
        }
        // Whatever cannot reach a root hangs in a parent cycle: cut it open at its lowest
        // id (the first unreached index) by making that a root.
        let mut reached = vec![false; n];
        let mut stack: Vec<u32> = shape.roots.clone();
        let mut next = 0;
        loop {
            while let Some(i) = stack.pop() {
                reached[i as usize] = true;
                stack.extend(&shape.children[i as usize]);
            }
            while next < n && reached[next] {
                next += 1;
            }
            if next == n {
                break;
            }
            if let Some(p) = parent[next].take() {
                shape.children[p].retain(|&c| c as usize != next);
            }
            shape.roots.push(next as u32);
            stack.push(next as u32);
        }
        shape.roots.sort_unstable();
        shape
    }

    /// The shape of a list of actors.
    pub fn of(actors: &[ActorInfo]) -> Shape {
        Shape::new(actors.iter().map(|a| (a.id, a.parent, a.class)).collect())
    }

    /// Number of actors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of the actor at `index`.
    pub fn id(&self, index: usize) -> ActorId {
        self.ids[index]
    }
}

/// What to draw of a tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeOptions {
    /// Levels below the roots to draw (`Some(0)`: roots only; `None`: all).
    pub depth: Option<usize>,
    /// Draw only actors of this class and their ancestors.
    pub class: Option<ActorClass>,
    /// Never collapse large sibling groups.
    pub all: bool,
    /// Show the arbiter (event-loop thread) each actor runs on.
    pub arbiter: bool,
}

/// A drawn tree: its text and the actors drawn, in drawing order.
#[derive(Debug, Default)]
pub struct TreeView {
    pub text: String,
    pub drawn: Vec<ActorInfo>,
}

/// Draw `shape`; `info(index)` gives the actor at an index (`None`: gone since the
/// shape was taken — its line is skipped).
pub fn draw(
    shape: &Shape,
    info: impl Fn(usize) -> Option<ActorInfo>,
    opts: TreeOptions,
) -> TreeView {
    let keep = opts.class.map(|c| kept(shape, c));
    let mut d = Drawer {
        shape,
        info: &info,
        keep: keep.as_deref(),
        opts,
        view: TreeView::default(),
    };
    let roots = d.visible(&shape.roots);
    d.level(&roots, None, 0);
    d.view
}

/// Draw `actors` (a convenience over [`Shape::of`] and [`draw`]).
pub fn render_tree(actors: &[ActorInfo], opts: TreeOptions) -> TreeView {
    let shape = Shape::of(actors);
    let mut by_id: Vec<&ActorInfo> = actors.iter().collect();
    by_id.sort_by_key(|a| a.id);
    by_id.dedup_by_key(|a| a.id);
    draw(&shape, |i| Some(by_id[i].clone()), opts)
}

/// For each actor: is it of `class`, or an ancestor of one?
fn kept(shape: &Shape, class: ActorClass) -> Vec<bool> {
    fn mark(shape: &Shape, i: usize, class: ActorClass, out: &mut [bool]) -> bool {
        let mut any = shape.classes[i] == class;
        for &c in &shape.children[i] {
            any |= mark(shape, c as usize, class, out);
        }
        out[i] = any;
        any
    }
    let mut out = vec![false; shape.len()];
    for &r in &shape.roots {
        mark(shape, r as usize, class, &mut out);
    }
    out
}

enum Item {
    Node(usize),
    More(ActorClass, usize),
}

struct Drawer<'a, F> {
    shape: &'a Shape,
    info: &'a F,
    keep: Option<&'a [bool]>,
    opts: TreeOptions,
    view: TreeView,
}

impl<F: Fn(usize) -> Option<ActorInfo>> Drawer<'_, F> {
    /// The members of a sibling group that pass the class filter.
    fn visible(&self, group: &[u32]) -> Vec<usize> {
        group
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| self.keep.is_none_or(|k| k[i]))
            .collect()
    }

    /// The lines of one sibling group, with large classes collapsed.
    fn plan(&self, nodes: &[usize]) -> Vec<Item> {
        let mut count = [0usize; ActorClass::COUNT];
        for &n in nodes {
            count[self.shape.classes[n] as usize] += 1;
        }
        let mut seen = [0usize; ActorClass::COUNT];
        let mut items = Vec::with_capacity(nodes.len().min(64));
        for &n in nodes {
            let class = self.shape.classes[n];
            let c = class as usize;
            if self.opts.all || count[c] <= COLLAPSE_OVER {
                items.push(Item::Node(n));
                continue;
            }
            seen[c] += 1;
            if seen[c] <= COLLAPSE_KEEP {
                items.push(Item::Node(n));
            }
            if seen[c] == COLLAPSE_KEEP {
                items.push(Item::More(class, count[c] - COLLAPSE_KEEP));
            }
        }
        items
    }

    fn level(&mut self, nodes: &[usize], prefix: Option<&str>, level: usize) {
        let items = self.plan(nodes);
        let last = items.len().saturating_sub(1);
        for (i, item) in items.iter().enumerate() {
            let (lead, child_prefix) = match prefix {
                None => (String::new(), String::new()),
                Some(p) if i == last => (format!("{p}└── "), format!("{p}    ")),
                Some(p) => (format!("{p}├── "), format!("{p}│   ")),
            };
            match *item {
                Item::More(class, n) => {
                    let _ = writeln!(self.view.text, "{lead}… and {n} more {class}");
                }
                Item::Node(n) => {
                    let Some(info) = (self.info)(n) else { continue };
                    self.view.text.push_str(&lead);
                    line(&mut self.view.text, &info, self.opts.arbiter);
                    self.view.drawn.push(info);
                    if self.opts.depth.is_none_or(|d| level < d) {
                        let kids = self.visible(&self.shape.children[n]);
                        self.level(&kids, Some(&child_prefix), level + 1);
                    }
                }
            }
        }
    }
}

fn line(out: &mut String, a: &ActorInfo, arbiter: bool) {
    let _ = write!(
        out,
        "{}:{} #{} [{}] mbox={}",
        a.class, a.name, a.id, a.state, a.mailbox
    );
    if arbiter {
        let _ = write!(out, " arbiter={}", a.arbiter);
    }
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

    fn text(
        actors: &[ActorInfo],
        depth: Option<usize>,
        class: Option<ActorClass>,
        all: bool,
    ) -> String {
        render_tree(
            actors,
            TreeOptions {
                depth,
                class,
                all,
                arbiter: false,
            },
        )
        .text
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
        let drawn = text(&actors, None, None, false);
        let roots: Vec<&str> = drawn
            .lines()
            .filter(|l| !l.starts_with(['├', '└', '│', ' ']))
            .collect();
        assert_eq!(
            roots,
            vec![
                "root:impulsed #1 [idle] mbox=0",
                "message:orphan #9 [idle] mbox=0"
            ]
        );
        let kids: Vec<&str> = drawn
            .lines()
            .filter(|l| l.starts_with("├── ") || l.starts_with("└── "))
            .collect();
        assert_eq!(kids.len(), 3, "{drawn}");
        assert!(
            drawn.contains("    ├── message:m1 #6") && drawn.contains("    └── outbound:o1 #7"),
            "{drawn}"
        );
    }

    #[test]
    fn parent_cycles_do_not_loop() {
        let actors = vec![
            info(1, ActorClass::Other, "a", Some(2)),
            info(2, ActorClass::Other, "b", Some(1)),
            info(3, ActorClass::Other, "self", Some(3)),
        ];
        let drawn = text(&actors, None, None, false);
        assert_eq!(drawn.lines().count(), 3, "{drawn}");
        assert!(
            drawn.starts_with("other:a #1"),
            "cut open at the lowest id: {drawn}"
        );
    }

    #[test]
    fn renders_with_branch_prefixes() {
        let drawn = text(&sample(), None, None, false);
        let want = "\
root:impulsed #1 [idle] mbox=0
├── io:io #2 [idle] mbox=0
├── listener:smtp #3 [idle] mbox=0
│   └── inbound:c1 #4 [data] mbox=0 192.0.2.7:4711
└── domain:example.com #5 [idle] mbox=3
    ├── message:m1 #6 [idle] mbox=0
    └── outbound:o1 #7 [idle] mbox=0
";
        assert_eq!(drawn, want);
    }

    #[test]
    fn depth_limits_levels_below_roots() {
        let trees = sample();
        assert_eq!(
            text(&trees, Some(0), None, false),
            "root:impulsed #1 [idle] mbox=0\n"
        );
        let one = text(&trees, Some(1), None, false);
        assert_eq!(one.lines().count(), 4);
        assert!(!one.contains("inbound"));
    }

    #[test]
    fn class_filter_keeps_matches_and_their_ancestors() {
        let trees = sample();
        let drawn = text(&trees, None, Some(ActorClass::Inbound), false);
        let want = "\
root:impulsed #1 [idle] mbox=0
└── listener:smtp #3 [idle] mbox=0
    └── inbound:c1 #4 [data] mbox=0 192.0.2.7:4711
";
        assert_eq!(drawn, want);
        assert_eq!(text(&trees, None, Some(ActorClass::Spool), false), "");
    }

    #[test]
    fn large_sibling_groups_collapse_unless_all() {
        use ActorClass::*;
        let mut actors = vec![info(1, Domain, "d", None)];
        for id in 2..14 {
            actors.push(info(id, Message, &format!("m{id}"), Some(1)));
        }
        actors.push(info(14, Outbound, "o", Some(1)));
        let drawn = text(&actors, None, None, false);
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
        assert_eq!(drawn, want);
        let full = text(&actors, None, None, true);
        assert_eq!(full.lines().count(), 14);
        assert!(full.contains("└── outbound:o #14"));

        // Exactly COLLAPSE_OVER siblings are all shown; the summary can be the last line.
        let mut eight = vec![info(1, Domain, "d", None)];
        eight.extend((2..10).map(|id| info(id, Message, "m", Some(1))));
        assert_eq!(text(&eight, None, None, false).lines().count(), 9);
        eight.push(info(10, Message, "m", Some(1)));
        let nine = text(&eight, None, None, false);
        assert!(nine.ends_with("└── … and 4 more message\n"), "{nine}");
    }

    #[test]
    fn the_arbiter_is_shown_when_asked() {
        let mut actors = sample();
        actors[4].arbiter = 1;
        let opts = TreeOptions {
            depth: Some(1),
            arbiter: true,
            ..TreeOptions::default()
        };
        let text = render_tree(&actors, opts).text;
        assert!(
            text.contains("domain:example.com #5 [idle] mbox=3 arbiter=1"),
            "{text}"
        );
        assert!(
            text.starts_with("root:impulsed #1 [idle] mbox=0 arbiter=0\n"),
            "{text}"
        );
    }

    #[test]
    fn a_shape_skips_actors_gone_since_it_was_taken() {
        let actors = sample();
        let shape = Shape::of(&actors);
        assert_eq!(shape.len(), 7);
        let view = draw(
            &shape,
            |i| (shape.id(i) != 5).then(|| actors[i].clone()),
            TreeOptions::default(),
        );
        assert_eq!(
            view.drawn.len(),
            4,
            "the domain and its subtree are skipped"
        );
        assert!(!view.text.contains("example.com"));
    }

    #[test]
    fn drawn_lists_what_render_draws() {
        use ActorClass::*;
        let mut actors = vec![info(1, Domain, "d", None)];
        for id in 2..14 {
            actors.push(info(id, Message, "m", Some(1)));
        }
        actors.push(info(14, Outbound, "o", Some(1)));
        let drawn = |depth, class, all| {
            let v = render_tree(
                &actors,
                TreeOptions {
                    depth,
                    class,
                    all,
                    arbiter: false,
                },
            )
            .drawn;
            v.iter().map(|a| a.id).collect::<Vec<_>>()
        };
        assert_eq!(drawn(None, None, false), vec![1, 2, 3, 4, 5, 6, 14]);
        assert_eq!(drawn(None, None, true).len(), 14);
        assert_eq!(drawn(Some(0), None, false), vec![1]);
        assert_eq!(drawn(None, Some(Outbound), false), vec![1, 14]);
    }
}
