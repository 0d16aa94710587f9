//! One report per reception: the failures of a message's domain parts, gathered into
//! one delivery status notification. Pure bookkeeping, no actors.
//!
//! A reception whose recipients span several domains is stored as one part per domain
//! (each queued, limited and retried by its own domain container). The sender should
//! still get one report for what failed in one delivery pass, as Postfix sends one per
//! pass of the whole message. Two kinds of pass gather reports:
//!
//! - **Expected**: when a split reception is stored (or recovered with its parts due),
//!   its parts are expected; each part reports here when an attempt of it settles, with
//!   the report it owes (failures, success reports) or with none. Reports are *held*
//!   until the last expected part has settled, and then go out as one. A part that takes
//!   too long (a slow or suspended domain) does not hold the others' report forever:
//!   after [`REPORT_WAIT`] whatever is held goes out.
//! - **Lingering**: a report from a part with no pass under way (a retry, an expiry —
//!   the parts of a reception expire at the same instant —, an operator's bounce of a
//!   whole sender) waits [`LINGER`] for reports of the same reception's other parts.
//!
//! A report that joins a pass under way is held with it. A held report is not yet
//! durable: the part that owes it waits, its recipients not yet marked final, so a
//! crash meanwhile repeats their attempt and loses nothing.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::ids::MessageId;

/// Longest a report waits for the other expected parts of its reception.
pub const REPORT_WAIT: Duration = Duration::from_secs(60);
/// How long a report of a reception with no pass under way waits for its siblings'.
pub const LINGER: Duration = Duration::from_secs(5);

/// What a settled part's report does now.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// No report, or not one to gather: it goes out alone.
    Alone(Option<T>),
    /// Held until the pass ends.
    Held,
    /// The pass is complete: these reports go out as one (none: nothing failed).
    Ready(Vec<T>),
}

/// The passes under way, by group (the id of the reception's first part).
#[derive(Debug)]
pub struct Groups<T> {
    passes: HashMap<MessageId, Pass<T>>,
    /// When each pass runs out of time.
    deadlines: BTreeSet<(Instant, MessageId)>,
}

#[derive(Debug)]
struct Pass<T> {
    /// Expected parts yet to settle their attempt (none for a lingering pass).
    waiting: Vec<MessageId>,
    /// Reports held so far, with the part each came from.
    held: Vec<(MessageId, T)>,
    deadline: Instant,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups {
            passes: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl<T> Groups<T> {
    /// A pass of `group` begins over `parts` at `now`; a single part needs no gathering.
    /// (A pass already under way for `group` goes on, expecting these parts too.)
    pub fn expect(&mut self, group: MessageId, mut parts: Vec<MessageId>, now: Instant) {
        parts.sort_unstable();
        parts.dedup();
        if parts.len() < 2 {
            return;
        }
        let pass = self.begin(group, now + REPORT_WAIT);
        pass.waiting.extend(parts);
        pass.waiting.sort_unstable();
        pass.waiting.dedup();
    }

    /// The pass of `group`, begun with `deadline` if there is none.
    fn begin(&mut self, group: MessageId, deadline: Instant) -> &mut Pass<T> {
        let deadlines = &mut self.deadlines;
        self.passes.entry(group).or_insert_with(|| {
            deadlines.insert((deadline, group));
            Pass {
                waiting: Vec::new(),
                held: Vec::new(),
                deadline,
            }
        })
    }

    /// End the passes that ran out of time by `now`: what each holds.
    pub fn overdue(&mut self, now: Instant) -> Vec<Vec<T>> {
        let mut out = Vec::new();
        while let Some(&(at, group)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let held = self.end(group);
            if !held.is_empty() {
                out.push(held);
            }
        }
        out
    }

    /// Part `part` of `group` settled an attempt at `now`, owing `report` (if any).
    pub fn settled(
        &mut self,
        group: MessageId,
        part: MessageId,
        report: Option<T>,
        now: Instant,
    ) -> Step<T> {
        let expected = self
            .passes
            .get(&group)
            .and_then(|p| p.waiting.iter().position(|&w| w == part));
        let Some(at) = expected else {
            // Not waited for: a report joins the pass under way, or lingers for its
            // siblings'.
            let Some(r) = report else {
                return Step::Alone(None);
            };
            self.begin(group, now + LINGER).held.push((part, r));
            return Step::Held;
        };
        let pass = self.passes.get_mut(&group).expect("looked up above");
        pass.waiting.swap_remove(at);
        let held = report.is_some();
        if let Some(r) = report {
            pass.held.push((part, r));
        }
        if !pass.waiting.is_empty() {
            return if held { Step::Held } else { Step::Alone(None) };
        }
        Step::Ready(self.end(group))
    }

    /// End the pass of `group`: what it holds, to go out now.
    fn end(&mut self, group: MessageId) -> Vec<T> {
        let Some(pass) = self.passes.remove(&group) else {
            return Vec::new();
        };
        self.deadlines.remove(&(pass.deadline, group));
        let mut held = pass.held;
        // In the order of the parts (that is, of their domains at reception).
        held.sort_by_key(|(part, _)| *part);
        held.into_iter().map(|(_, r)| r).collect()
    }

    /// End every pass (shutting down): what each holds.
    pub fn end_all(&mut self) -> Vec<Vec<T>> {
        let groups: Vec<MessageId> = self.passes.keys().copied().collect();
        groups
            .into_iter()
            .map(|g| self.end(g))
            .filter(|h| !h.is_empty())
            .collect()
    }

    /// Passes under way.
    pub fn len(&self) -> usize {
        self.passes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: MessageId = MessageId(10);
    const A: MessageId = MessageId(10);
    const B: MessageId = MessageId(11);
    const C: MessageId = MessageId(12);

    #[test]
    fn reports_of_one_pass_go_out_together_in_part_order() {
        let (mut g, t) = (Groups::default(), Instant::now());
        g.expect(G, vec![A, B, C], t);
        assert_eq!(g.settled(G, C, Some("c"), t), Step::Held);
        assert_eq!(g.settled(G, B, None, t), Step::Alone(None));
        assert_eq!(g.settled(G, A, Some("a"), t), Step::Ready(vec!["a", "c"]));
        assert!(g.is_empty(), "the pass is over");
        assert!(
            g.overdue(t + REPORT_WAIT).is_empty(),
            "and its deadline with it"
        );
    }

    #[test]
    fn a_pass_where_nothing_failed_sends_nothing() {
        let (mut g, t) = (Groups::<&str>::default(), Instant::now());
        g.expect(G, vec![A, B], t);
        assert_eq!(g.settled(G, A, None, t), Step::Alone(None));
        assert_eq!(g.settled(G, B, None, t), Step::Ready(vec![]));
        assert_eq!(
            g.settled(G, B, None, t),
            Step::Alone(None),
            "no pass begins"
        );
        assert!(g.is_empty());
    }

    #[test]
    fn a_report_with_no_pass_under_way_lingers_for_its_siblings() {
        let (mut g, t) = (Groups::default(), Instant::now());
        assert_eq!(g.settled(G, B, Some("b"), t), Step::Held);
        assert_eq!(g.settled(G, A, Some("a"), t + LINGER / 2), Step::Held);
        assert_eq!(g.settled(G, C, None, t), Step::Alone(None));
        assert!(g.overdue(t + LINGER / 2).is_empty());
        assert_eq!(g.overdue(t + LINGER), vec![vec!["a", "b"]]);
        assert!(g.is_empty());
        // Another group's linger is its own.
        assert_eq!(g.settled(C, C, Some("c"), t), Step::Held);
        assert_eq!(g.overdue(t + LINGER), vec![vec!["c"]]);
    }

    #[test]
    fn a_report_from_a_part_not_expected_joins_the_pass() {
        let (mut g, t) = (Groups::default(), Instant::now());
        g.expect(G, vec![A, B], t);
        assert_eq!(g.settled(G, C, Some(3), t), Step::Held);
        assert_eq!(g.settled(G, A, Some(1), t), Step::Held);
        assert_eq!(g.settled(G, B, None, t), Step::Ready(vec![1, 3]));
    }

    #[test]
    fn a_single_part_needs_no_pass() {
        let (mut g, t) = (Groups::<u8>::default(), Instant::now());
        g.expect(G, vec![A], t);
        g.expect(B, vec![C, C], t);
        assert!(g.is_empty());
    }

    #[test]
    fn a_pass_that_runs_out_of_time_gives_up_what_it_holds() {
        let (mut g, t) = (Groups::default(), Instant::now());
        let other = MessageId(20);
        g.expect(G, vec![A, B, C], t);
        g.expect(other, vec![other, MessageId(21)], t);
        assert_eq!(g.settled(G, B, Some("b"), t), Step::Held);
        assert!(g.overdue(t + REPORT_WAIT / 2).is_empty());
        assert_eq!(g.len(), 2);
        assert_eq!(g.overdue(t + REPORT_WAIT), vec![vec!["b"]]);
        assert!(g.is_empty(), "a pass holding nothing ends too");
        // A part settling after its pass ended lingers on its own.
        let later = t + REPORT_WAIT * 2;
        assert_eq!(g.settled(G, A, Some("a"), later), Step::Held);
        assert!(g.overdue(later).is_empty());
        assert_eq!(g.overdue(later + LINGER), vec![vec!["a"]]);
    }

    #[test]
    fn shutting_down_ends_every_pass() {
        let (mut g, t) = (Groups::default(), Instant::now());
        g.expect(G, vec![A, B], t);
        g.expect(C, vec![A, C], t);
        assert_eq!(g.settled(G, A, Some("x"), t), Step::Held);
        assert_eq!(g.end_all(), vec![vec!["x"]]);
        assert!(g.is_empty());
        assert!(g.overdue(t + REPORT_WAIT).is_empty());
    }
}
