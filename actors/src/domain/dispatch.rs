//! Dispatch: handing a container's active messages to connections, and opening new
//! ones, within the limits of the domain and of its [`site`](super::site).
//!
//! Order of preference for the next message: an idle connection of this container,
//! then an idle connection another container of the same site parked there (it is
//! adopted: from then on it reports to this container), then a new connection, while
//! the site has fewer open connections than this domain's `max_connections` and the
//! site's connection throttle admits one. Every message handed out passes the site's
//! message throttle first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use impulse_runtime::registry::{ActorId, Registration};
use impulse_runtime::ActorClass;

use super::site;
use super::{Domain, NextHop};
use crate::dns::Hop;
use crate::logger::LoggedResponse;
use crate::outbound::{Adopt, Assign, Outbound};
use crate::stats::Stats;

impl Domain {
    /// Hand active messages to idle connections, then open connections while there is
    /// more work than connections and the limits allow.
    pub(super) fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            self.update_registry();
            return;
        }
        let now_ms = crate::ids::now_ms();
        let suspension =
            self.shared
                .suspensions
                .check(&self.name, self.egress.name.as_deref(), now_ms);
        self.suspended = suspension.is_some();
        if let Some(until) = suspension {
            // Queued, not sent; look again when the suspension ends by itself.
            if let Some(until) = until {
                self.wake_after(Duration::from_millis(until.saturating_sub(now_ms) + 1), ctx);
            }
            self.update_registry();
            return;
        }
        if let Some((until, response, peer)) = &self.hop_down {
            if Instant::now() < *until {
                let (response, peer): (LoggedResponse, String) = (response.clone(), peer.clone());
                self.defer_active(response, peer, false, ctx);
                self.update_registry();
                return;
            }
            self.hop_down = None;
        }
        if self.active.is_empty() && self.pinned.is_empty() {
            self.update_registry();
            return;
        }
        let hops = match &self.hop {
            NextHop::Static(hops) => hops.clone(),
            NextHop::Lookup(target) => match &self.resolved {
                Some((until, hops)) if Instant::now() < *until => hops.clone(),
                _ => {
                    let target = target.clone();
                    self.resolve(target, ctx);
                    return;
                }
            },
        };
        let site = self.site_of(&hops);
        let now = Instant::now();
        self.open_pinned(&site, now, ctx);
        while !self.active.is_empty() {
            // Our own idle connection, else one the site has parked.
            let (id, out, adopted) = match self.idle.pop() {
                Some((id, out)) => {
                    site.unpark(id);
                    (id, out, false)
                }
                None => match site.take_idle() {
                    Some((id, out)) if !self.connections.contains_key(&id) => (id, out, true),
                    Some((id, out)) => (id, out, false),
                    None => break,
                },
            };
            if !out.connected() {
                continue;
            }
            if let Err(wait) = site.admit_message(now) {
                if adopted {
                    site.park(id, out);
                } else {
                    self.idle.push((id, out));
                }
                self.wake_after(wait, ctx);
                break;
            }
            let Some(msg) = self.active.pop_front() else {
                break;
            };
            let mid = msg.id;
            let actor = self.wake(msg, ctx);
            if adopted {
                out.do_send(Adopt {
                    domain: ctx.address(),
                    parent: self.reg.id(),
                    cfg: self.cfg.clone(),
                    id: mid,
                    msg: actor,
                });
            } else {
                out.do_send(Assign {
                    id: mid,
                    msg: actor,
                    last: false,
                });
            }
        }
        // Each connection still being set up will take one message when it is ready.
        while self.active.len() > self.connecting.len()
            && self.connections.len() < self.cfg.max_connections
        {
            let Some(slot) = site.try_open(self.cfg.max_connections) else {
                break;
            };
            if let Err(wait) = site.admit_connection(now) {
                drop(slot);
                self.wake_after(wait, ctx);
                break;
            }
            self.open_connection(hops.clone(), slot, ctx);
        }
        self.update_registry();
    }

    /// Start a connection to `hops` in the site slot `slot`; it will say `Ready`.
    pub(super) fn open_connection(
        &mut self,
        hops: Arc<[Hop]>,
        slot: site::Slot,
        ctx: &mut Context<Self>,
    ) -> ActorId {
        let reg = Registration::new(
            &self.shared.registry,
            ActorClass::Outbound,
            hops[0].addr.to_string(),
            Some(self.reg.id()),
        );
        let id = reg.id();
        let out = Outbound::new(
            self.shared.clone(),
            reg,
            ctx.address(),
            hops,
            self.cfg.clone(),
            self.egress.clone(),
        )
        .with_slot(slot)
        .start();
        self.connections.insert(id, out);
        self.connecting.insert(id);
        Stats::add(&self.shared.stats.connections_out, 1);
        id
    }

    /// The site of `hops` (looked up again only when the hops change).
    fn site_of(&mut self, hops: &Arc<[Hop]>) -> Arc<site::Site> {
        if let Some((for_hops, s)) = &self.site {
            if Arc::ptr_eq(for_hops, hops) {
                return s.clone();
            }
        }
        let key = site::key(self.egress.name.as_deref(), hops);
        let s = match &self.site {
            Some((_, s)) if s.key == key => s.clone(),
            _ => self.shared.sites.get(&key, &self.cfg, self.generation),
        };
        self.site = Some((hops.clone(), s.clone()));
        s
    }

    /// Dispatch again once a throttle admits (one pending wake at a time).
    pub(super) fn wake_after(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        if self.throttle_wake.is_some() {
            return;
        }
        self.throttle_wake = Some(ctx.run_later(wait, |act, ctx| {
            let _g = impulse_runtime::alloc::enter(ActorClass::Domain);
            act.throttle_wake = None;
            act.dispatch(ctx);
        }));
    }

    /// An idle connection with nothing to do here: offer it to the site as well.
    pub(super) fn park_idle(&mut self) {
        if !self.active.is_empty() {
            return;
        }
        if let (Some((_, site)), Some((id, out))) = (&self.site, self.idle.last()) {
            site.park(*id, out.clone());
        }
    }
}
