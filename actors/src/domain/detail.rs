//! `impulsectl domain NAME`: what a container knows about itself — limits in force, next
//! hops and where they came from, its site, back-off and each connection — read from
//! its own state (no registry scan), so it answers at once however large the queue.

use actix::prelude::*;
use impulse_runtime::control::{ConnectionInfo, DomainDetail, NextHopInfo};

use super::{Domain, DomainInfo, NextHop};
use crate::ids::now_ms;

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
        let next_hops = hops
            .iter()
            .flat_map(|h| h.iter())
            .map(|h| NextHopInfo {
                name: h.name.to_string(),
                preference: h.preference,
                address: h.addr.to_string(),
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
            active: self.active.len(),
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
