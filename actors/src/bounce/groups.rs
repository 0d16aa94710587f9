//! One report per reception: the failures of a message's domain parts, gathered until
//! every part has had its first attempt. Pure bookkeeping, no actors.
//!
//! A reception whose recipients span several domains is stored as one part per domain
//! (each queued, limited and retried by its own domain container). The sender should
//! still get one delivery status notification for what failed on the first delivery
//! pass, as Postfix sends one per pass of the whole message. So when a split reception
//! is stored, its parts are *expected*; each part reports here when an attempt of it
//! settles, with the report it owes (failures, success reports) or with none; a report
//! is *held* until the last expected part has settled, and then all held reports go out
//! as one. A part that takes too long (a slow or suspended domain) does not hold the
//! others' report forever: after [`REPORT_WAIT`] whatever is held goes out, and the
//! pass is over. Later attempts (retries of deferred parts, expiries) report on their
//! own, as do parts of a reception this bookkeeping does not know (a pass that ended, a
//! restart recovered only some of its parts).
//!
//! A held report is not yet durable: the part that owes it waits, its recipients not
//! yet marked final, so a crash meanwhile repeats their attempt and loses nothing.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::ids::MessageId;

/// Longest a report waits for the other parts of its reception.
pub const REPORT_WAIT: Duration = Duration::from_secs(60);

/// What a settled part's report does now.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// Not part of a pass under way: the report (if any) goes out alone.
    Alone(Option<T>),
    /// Held until the other parts have settled.
    Held,
    /// The pass is complete: these reports go out as one (none: nothing failed).
    Ready(Vec<T>),
}

/// The delivery passes under way, by group (the id of the reception's first part).
#[derive(Debug)]
pub struct Groups<T> {
    passes: HashMap<MessageId, Pass<T>>,
    /// When each pass runs out of time, in the order they began (the wait is fixed).
    deadlines: VecDeque<(Instant, MessageId)>,
}

#[derive(Debug)]
struct Pass<T> {
    /// Parts yet to settle their first attempt.
    waiting: Vec<MessageId>,
    /// Reports held so far, with the part each came from.
    held: Vec<(MessageId, T)>,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups {
            passes: HashMap::new(),
            deadlines: VecDeque::new(),
        }
    }
}

impl<T> Groups<T> {
    /// A pass of `group` begins over `parts` at `now`; a single part needs no gathering.
    pub fn expect(&mut self, group: MessageId, mut parts: Vec<MessageId>, now: Instant) {
        parts.sort_unstable();
        parts.dedup();
        if parts.len() < 2 {
            return;
        }
        self.passes.insert(
            group,
            Pass {
                waiting: parts,
                held: Vec::new(),
            },
        );
        self.deadlines.push_back((now + REPORT_WAIT, group));
    }

    /// End the passes that ran out of time by `now`: what each holds.
    pub fn overdue(&mut self, now: Instant) -> Vec<Vec<T>> {
        let mut out = Vec::new();
        while let Some(&(at, group)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            let held = self.end(group);
            if !held.is_empty() {
                out.push(held);
            }
        }
        out
    }

    /// Part `part` of `group` settled an attempt, owing `report` (if any).
    pub fn settled(&mut self, group: MessageId, part: MessageId, report: Option<T>) -> Step<T> {
        let Some(pass) = self.passes.get_mut(&group) else {
            return Step::Alone(report);
        };
        let Some(at) = pass.waiting.iter().position(|&p| p == part) else {
            return Step::Alone(report);
        };
        pass.waiting.swap_remove(at);
        if let Some(r) = report {
            pass.held.push((part, r));
        }
        if !pass.waiting.is_empty() {
            return if pass.held.iter().any(|(p, _)| *p == part) {
                Step::Held
            } else {
                Step::Alone(None)
            };
        }
        Step::Ready(self.end(group))
    }

    /// End the pass of `group`: what it holds, to go out now.
    fn end(&mut self, group: MessageId) -> Vec<T> {
        let mut held = self.passes.remove(&group).map_or(Vec::new(), |p| p.held);
        // In the order of the parts (that is, of their domains at reception).
        held.sort_by_key(|(part, _)| *part);
        held.into_iter().map(|(_, r)| r).collect()
    }

    /// End every pass (shutting down): what each holds.
    pub fn end_all(&mut self) -> Vec<Vec<T>> {
        self.deadlines.clear();
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

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn reports_of_one_pass_go_out_together_in_part_order() {
        let mut g = Groups::default();
        g.expect(G, vec![A, B, C], t0());
        assert_eq!(g.settled(G, C, Some("c")), Step::Held);
        assert_eq!(g.settled(G, B, None), Step::Alone(None));
        assert_eq!(g.settled(G, A, Some("a")), Step::Ready(vec!["a", "c"]));
        assert!(g.is_empty(), "the pass is over");
        // A later attempt of a part reports alone.
        assert_eq!(g.settled(G, B, Some("b")), Step::Alone(Some("b")));
    }

    #[test]
    fn a_pass_where_nothing_failed_sends_nothing() {
        let mut g: Groups<&str> = Groups::default();
        g.expect(G, vec![A, B], t0());
        assert_eq!(g.settled(G, A, None), Step::Alone(None));
        assert_eq!(g.settled(G, B, None), Step::Ready(vec![]));
    }

    #[test]
    fn unknown_groups_and_parts_report_alone() {
        let mut g = Groups::default();
        assert_eq!(g.settled(G, A, Some(1)), Step::Alone(Some(1)));
        g.expect(G, vec![A, B], t0());
        assert_eq!(g.settled(G, C, Some(3)), Step::Alone(Some(3)));
        assert_eq!(g.settled(G, A, Some(1)), Step::Held);
        // The same part settling twice (a retry within the pass) is not waited for.
        assert_eq!(g.settled(G, A, Some(2)), Step::Alone(Some(2)));
        assert_eq!(g.settled(G, B, Some(4)), Step::Ready(vec![1, 4]));
    }

    #[test]
    fn a_single_part_needs_no_pass() {
        let mut g = Groups::default();
        g.expect(G, vec![A], t0());
        g.expect(B, vec![C, C], t0());
        assert!(g.is_empty());
        assert_eq!(g.settled(G, A, Some(1)), Step::Alone(Some(1)));
    }

    #[test]
    fn a_pass_that_runs_out_of_time_gives_up_what_it_holds() {
        let mut g = Groups::default();
        let start = t0();
        g.expect(G, vec![A, B, C], start);
        g.expect(MessageId(20), vec![MessageId(20), MessageId(21)], start);
        assert_eq!(g.settled(G, B, Some("b")), Step::Held);
        assert!(g.overdue(start + REPORT_WAIT / 2).is_empty());
        assert_eq!(g.len(), 2);
        assert_eq!(g.overdue(start + REPORT_WAIT), vec![vec!["b"]]);
        assert!(g.is_empty(), "a pass holding nothing ends too");
        assert!(g.overdue(start + REPORT_WAIT * 2).is_empty(), "ended once");
        assert_eq!(g.settled(G, A, Some("a")), Step::Alone(Some("a")));
    }

    #[test]
    fn shutting_down_ends_every_pass() {
        let mut g = Groups::default();
        g.expect(G, vec![A, B], t0());
        g.expect(C, vec![A, C], t0());
        assert_eq!(g.settled(G, A, Some("x")), Step::Held);
        assert_eq!(g.end_all(), vec![vec!["x"]]);
        assert!(g.is_empty());
        assert!(g.overdue(t0() + REPORT_WAIT).is_empty());
    }
}
