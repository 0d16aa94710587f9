//! What each next hop has been doing lately, for `impulsectl domain NAME`: connections
//! opened (and how long they took), refused or failed, transactions and how long they
//! took, and the last error. The outbound connections report ([`HopEvent`], carried by
//! the `Ready` they send after each transaction, or alone when no `Ready` follows); the
//! container keeps one small record per hop address (the failure counts over the last
//! minute in [`Window`]s), forgotten with the hops.

use std::collections::HashMap;
use std::net::SocketAddr;

use actix::prelude::*;
use impulse_runtime::control::NextHopInfo;

use super::window::Window;
use super::Domain;
use crate::ids::now_ms;

/// What happened at a hop.
#[derive(Debug, Clone)]
pub enum HopKind {
    /// A connection was established after this many milliseconds.
    Connected(u32),
    /// A connection could not be made, or the greeting/EHLO refused it.
    Refused(String),
    /// A transaction ended after this many milliseconds; `accepted` of its recipients
    /// were taken, and `first` is the first refusal, if any.
    Transaction {
        ms: u32,
        accepted: usize,
        refused: Option<String>,
    },
}

/// An outbound connection's report about its hop: what happened there, oldest first.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct HopEvent {
    pub addr: SocketAddr,
    pub kinds: Vec<HopKind>,
}

/// One hop's recent history.
#[derive(Debug, Clone, Default)]
pub struct HopStats {
    connects: u64,
    last_connect_ms: Option<u32>,
    refusals: Window,
    transactions: u64,
    last_transaction_ms: Option<u32>,
    failures: Window,
    last_error: Option<String>,
}

impl HopStats {
    pub fn apply(&mut self, kind: HopKind, now: u64) {
        match kind {
            HopKind::Connected(ms) => {
                self.connects += 1;
                self.last_connect_ms = Some(ms);
            }
            HopKind::Refused(why) => {
                self.refusals.add(now, 1);
                self.last_error = Some(why);
            }
            HopKind::Transaction {
                ms,
                accepted,
                refused,
            } => {
                self.transactions += 1;
                self.last_transaction_ms = Some(ms);
                if let Some(why) = refused {
                    if accepted == 0 {
                        self.failures.add(now, 1);
                    }
                    self.last_error = Some(why);
                }
            }
        }
    }

    /// Fill the recent-history fields of `info`.
    pub fn describe(&self, info: &mut NextHopInfo, now: u64) {
        info.connects = self.connects;
        info.last_connect_ms = self.last_connect_ms;
        info.refused_last_minute = self.refusals.last_minute(now);
        info.transactions = self.transactions;
        info.last_transaction_ms = self.last_transaction_ms;
        info.failed_last_minute = self.failures.last_minute(now);
        info.last_error = self.last_error.clone();
    }
}

/// Per hop address.
pub type HopTable = HashMap<SocketAddr, HopStats>;

impl Handler<HopEvent> for Domain {
    type Result = ();

    fn handle(&mut self, ev: HopEvent, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, _| act.note_hop(ev));
    }
}

impl Domain {
    /// Add a hop's report to its record.
    pub(super) fn note_hop(&mut self, ev: HopEvent) {
        // Bounded by the hops a resolution gives; a stale address from before a new
        // resolution simply ages out of use.
        if self.hop_stats.len() > 256 && !self.hop_stats.contains_key(&ev.addr) {
            self.hop_stats.clear();
        }
        let now = now_ms();
        let stats = self.hop_stats.entry(ev.addr).or_default();
        for kind in ev.kinds {
            stats.apply(kind, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_keeps_its_recent_history() {
        let mut s = HopStats::default();
        let t = 10 * 60_000;
        s.apply(HopKind::Connected(12), t);
        s.apply(HopKind::Refused("421 busy".into()), t);
        s.apply(
            HopKind::Transaction {
                ms: 40,
                accepted: 0,
                refused: Some("550 5.1.1 no".into()),
            },
            t,
        );
        s.apply(
            HopKind::Transaction {
                ms: 30,
                accepted: 2,
                refused: None,
            },
            t,
        );
        let mut i = NextHopInfo::default();
        s.describe(&mut i, t);
        assert_eq!((i.connects, i.last_connect_ms), (1, Some(12)));
        assert_eq!((i.transactions, i.last_transaction_ms), (2, Some(30)));
        assert_eq!((i.refused_last_minute, i.failed_last_minute), (1, 1));
        assert_eq!(i.last_error.as_deref(), Some("550 5.1.1 no"));
        s.describe(&mut i, t + 3 * 60_000);
        assert_eq!((i.refused_last_minute, i.failed_last_minute), (0, 0));
    }
}
