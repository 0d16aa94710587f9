//! Operator requests answered from a container's own state: its `impulsectl queues`
//! row, and `impulsectl domain NAME`:
//! what a container knows about itself — limits in force, next
//! hops and where they came from, its site, back-off and each connection — read from
//! its own state (no registry scan), so it answers at once however large the queue.

use actix::prelude::*;
use impulse_runtime::control::{ConnectionInfo, DomainDetail, NextHopInfo, QueueRow};

use super::{AdminBounce, Domain, DomainInfo, NextHop, QueueInfo};
use crate::ids::{now_ms, MessageId};
use crate::logger::LoggedResponse;
use crate::message::settle::{settle, Verdict};
use crate::message::Apply;

impl Handler<DomainInfo> for Domain {
    type Result = MessageResult<DomainInfo>;

    fn handle(&mut self, _: DomainInfo, _ctx: &mut Context<Self>) -> Self::Result {
        let cfg = &self.cfg;
        let (from, hops) = match &self.hop {
            NextHop::Static(h) => ("route", Some(h.clone())),
            NextHop::Lookup(_) => match &self.resolved {
                Some((until, h)) if std::time::Instant::now() < *until => ("mx", Some(h.clone())),
                _ => ("unresolved", None),
            },
        };
        let now = now_ms();
        let next_hops = hops
            .iter()
            .flat_map(|h| h.iter())
            .map(|h| {
                let mut info = NextHopInfo {
                    name: h.name.to_string(),
                    preference: h.preference,
                    address: h.addr.to_string(),
                    ..Default::default()
                };
                if let Some(stats) = self.hop_stats.get(&h.addr) {
                    stats.describe(&mut info, now);
                }
                info
            })
            .collect();
        let mut connection_states: Vec<ConnectionInfo> = self
            .connections
            .keys()
            .filter_map(|id| self.shared.registry.get(*id))
            .map(|a| ConnectionInfo {
                id: a.id,
                peer: a.name,
                state: a.state,
            })
            .collect();
        connection_states.sort_by_key(|c| c.id);
        let now = now_ms();
        MessageResult(DomainDetail {
            domain: self.name.to_string(),
            binding: self.egress.name.clone(),
            other_queues: Vec::new(),
            state: self.state_name().to_string(),
            active: self.active.len() + self.pinned_len(),
            delayed: self.delayed.len(),
            in_flight: self.in_flight.len(),
            connections: self.connections.len(),
            max_connections: cfg.max_connections,
            max_messages_per_connection: cfg.max_messages_per_connection,
            throttle: cfg.throttle.map(|r| r.to_string()),
            connection_throttle: cfg.connection_throttle.map(|r| r.to_string()),
            tls: format!("{:?}", cfg.tls),
            retry_interval: cfg.retry_interval.to_string(),
            max_retry_interval: cfg.max_retry_interval.to_string(),
            message_expiration: cfg.message_expiration.to_string(),
            delay_warning: cfg.delay_warning.to_string(),
            next_hops_from: from.to_string(),
            next_hops,
            site: self.site.as_ref().map(|(_, s)| s.key.clone()),
            site_connections: self.site.as_ref().map_or(0, |(_, s)| s.open()),
            next_retry_secs: self
                .delayed
                .first_key_value()
                .map(|((due, _), _)| due.saturating_sub(now) / 1000),
            backoff_reason: self
                .hop_down
                .as_ref()
                .filter(|(until, _, _)| std::time::Instant::now() < *until)
                .map(|(_, r, _)| format!("{} {}", r.code, r.text)),
            connection_states,
        })
    }
}

impl Handler<AdminBounce> for Domain {
    type Result = MessageResult<AdminBounce>;

    /// Fail the matching queued messages: each pending recipient gets an AdminBounce
    /// record, the message leaves the spool (and its sender gets a report unless
    /// `quiet`), through the message actor as for any final outcome. Messages in flight
    /// are left to their attempt.
    fn handle(&mut self, b: AdminBounce, ctx: &mut Context<Self>) -> Self::Result {
        let matches = |m: &crate::queued::QueuedMessage| {
            b.message.as_ref().is_none_or(|ids| ids.contains(&m.id))
                && b.sender
                    .as_deref()
                    .is_none_or(|s| m.envelope.sender().eq_ignore_ascii_case(s))
        };
        let mut ids: Vec<MessageId> = self
            .active
            .iter()
            .filter(|m| matches(m))
            .map(|m| m.id)
            .chain(self.delayed.values().filter(|m| matches(m)).map(|m| m.id))
            .collect();
        ids.sort();
        if b.dry_run || ids.is_empty() {
            return MessageResult(ids);
        }
        let mut chosen = Vec::new();
        for m in std::mem::take(&mut self.active) {
            if ids.binary_search(&m.id).is_ok() {
                chosen.push(m);
            } else {
                self.active.push_back(m);
            }
        }
        let delayed_keys: Vec<(u64, MessageId)> = self
            .delayed
            .iter()
            .filter(|(_, m)| ids.binary_search(&m.id).is_ok())
            .map(|(k, _)| *k)
            .collect();
        for k in delayed_keys {
            if let Some(m) = self.delayed.remove(&k) {
                chosen.push(m);
            }
        }
        let response = LoggedResponse::new(550, Some("5.0.0".into()), b.reason.clone());
        let now = now_ms();
        for msg in chosen {
            let results = msg
                .pending()
                .map(|(i, _)| (i, Verdict::Admin, response.clone()))
                .collect();
            let mut s = settle(&msg, &self.name, &self.cfg, results, "", now);
            s.quiet = b.quiet;
            let actor = self.wake(msg, ctx);
            actor.do_send(Apply(s));
        }
        self.arm_timer(ctx);
        self.update_registry();
        MessageResult(ids)
    }
}

impl Handler<QueueInfo> for Domain {
    type Result = MessageResult<QueueInfo>;

    fn handle(&mut self, _: QueueInfo, _ctx: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        MessageResult(QueueRow {
            domain: self.name.to_string(),
            active: self.active.len() + self.pinned_len(),
            delayed: self.delayed.len(),
            in_flight: self.in_flight.len(),
            connections: self.connections.len(),
            max_connections: self.cfg.max_connections,
            state: self.state_name().to_string(),
            next_retry_secs: self
                .delayed
                .first_key_value()
                .map(|((due, _), _)| due.saturating_sub(now) / 1000),
            finished: self.finished,
            deferred: self.deferred,
            binding: self.egress.name.clone(),
            finished_last_minute: self.finished_window.last_minute(now),
            deferred_last_minute: self.deferred_window.last_minute(now),
            last_error: self.last_error.as_deref().map(str::to_string),
        })
    }
}
