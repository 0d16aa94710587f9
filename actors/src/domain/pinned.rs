//! Messages sent through hops of their own. Recipients a next hop refused for want of
//! SMTPUTF8 go to the exchangers after it before they may bounce (RFC 6531 §3.2): the
//! outbound connection names those hops, the message actor leaves the recipients
//! pending and hands the message back with them. Here it waits in `pinned` until a
//! connection of its own to those hops can open (within `max_connections` and the
//! site's limits); that connection carries it alone and quits, so the domain's other
//! mail keeps to its preferred exchangers. If that connection fails before it is ready,
//! the message is deferred with the failure, as it would be with its domain's hops
//! down.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use impulse_runtime::registry::ActorId;

use super::site::Site;
use super::Domain;
use crate::dns::Hop;
use crate::logger::LoggedResponse;
use crate::message::Defer;
use crate::outbound::{Assign, Outbound};
use crate::queued::QueuedMessage;

impl Domain {
    /// Queue `msg` for a connection of its own to `hops`.
    pub(super) fn pin(&mut self, msg: QueuedMessage, hops: Arc<[Hop]>) {
        msg.set_state("queued");
        self.pinned.push_back((msg, hops));
    }

    /// Open a connection for each pinned message, first come first, while the limits
    /// allow.
    pub(super) fn open_pinned(&mut self, site: &Arc<Site>, now: Instant, ctx: &mut Context<Self>) {
        while let Some((msg, hops)) = self.pinned.pop_front() {
            let slot = (self.connections.len() < self.cfg.max_connections)
                .then(|| site.try_open(self.cfg.max_connections))
                .flatten();
            let Some(slot) = slot else {
                self.pinned.push_front((msg, hops));
                break;
            };
            if let Err(wait) = site.admit_connection(now) {
                drop(slot);
                self.pinned.push_front((msg, hops));
                self.wake_after(wait, ctx);
                break;
            }
            let id = self.open_connection(hops, slot, ctx);
            self.dedicated.insert(id, msg);
        }
    }

    /// Connection `conn` is ready: if it was opened for a pinned message, it carries
    /// that message now (true).
    pub(super) fn ready_pinned(
        &mut self,
        conn: ActorId,
        out: &Addr<Outbound>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some(msg) = self.dedicated.remove(&conn) else {
            return false;
        };
        let id = msg.id;
        let actor = self.wake(msg, ctx);
        // Only this message: the domain's own mail prefers its own exchangers.
        out.do_send(Assign {
            id,
            msg: actor,
            last: true,
        });
        true
    }

    /// Connection `conn` closed: if it was opened for a pinned message and never got to
    /// carry it, that message is deferred with the connection's failure (true).
    pub(super) fn closed_pinned(
        &mut self,
        conn: ActorId,
        failure: Option<&LoggedResponse>,
        peer: &str,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some(msg) = self.dedicated.remove(&conn) else {
            return false;
        };
        let response = failure.cloned().unwrap_or_else(|| {
            LoggedResponse::new(
                451,
                Some("4.4.2".into()),
                "connection to the other exchangers closed before it was ready".to_string(),
            )
        });
        let actor = self.wake(msg, ctx);
        actor.do_send(Defer {
            response,
            peer: peer.to_string(),
            attempted: true,
        });
        true
    }

    /// The messages waiting for a connection of their own (for `find` and `message`).
    pub(super) fn pinned_messages(&self) -> impl Iterator<Item = &QueuedMessage> + '_ {
        self.pinned
            .iter()
            .map(|(m, _)| m)
            .chain(self.dedicated.values())
    }

    /// Messages waiting for, or assigned to but not yet carried by, a connection of
    /// their own.
    pub(super) fn pinned_len(&self) -> usize {
        self.pinned.len() + self.dedicated.len()
    }
}
