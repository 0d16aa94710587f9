//! What the container hears from its outbound connections: ready for a message, about to
//! quit while idle, adopted by another container of the site, closed (with the failure
//! that makes the next hop unusable, if any).

use std::time::Instant;

use actix::prelude::*;

use super::{ConnectionClosed, Domain, HandedOver, Leaving, Ready};

impl Handler<Ready> for Domain {
    type Result = ();

    fn handle(&mut self, msg: Ready, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            if let Some(ev) = msg.hop {
                act.note_hop(ev);
            }
            act.connecting.remove(&msg.conn);
            act.idle.retain(|(id, _)| *id != msg.conn);
            act.connections.insert(msg.conn, msg.addr.clone());
            if act.ready_pinned(msg.conn, &msg.addr, ctx) {
                act.update_registry();
                return;
            }
            act.idle.push((msg.conn, msg.addr));
            act.dispatch(ctx);
            act.park_idle();
        });
    }
}

impl Handler<Leaving> for Domain {
    type Result = ();

    fn handle(&mut self, msg: Leaving, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, _| {
            act.idle.retain(|(id, _)| *id != msg.conn);
            if let Some((_, site)) = &act.site {
                site.unpark(msg.conn);
            }
        });
    }
}

impl Handler<HandedOver> for Domain {
    type Result = ();

    /// Another container of the site adopted this idle connection: it is theirs now.
    fn handle(&mut self, msg: HandedOver, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, _| {
            act.idle.retain(|(id, _)| *id != msg.conn);
            act.connections.remove(&msg.conn);
            act.connecting.remove(&msg.conn);
            act.update_registry();
        });
    }
}

impl Handler<ConnectionClosed> for Domain {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, ctx: &mut Context<Self>) {
        self.guarded(ctx, move |act, ctx| {
            act.connections.remove(&msg.conn);
            act.connecting.remove(&msg.conn);
            act.idle.retain(|(id, _)| *id != msg.conn);
            // The other exchangers failing says nothing of the domain's own hops.
            if act.closed_pinned(msg.conn, msg.failure.as_ref(), &msg.peer, ctx) {
                act.dispatch(ctx);
                return;
            }
            if let Some(response) = msg.failure {
                // The next hop is unusable now: everything waiting for it retries later,
                // unless another connection to it is still working. Connections still being
                // set up do not count: they would be replaced as they fail, one after the
                // other, and the active queue would never be deferred (a connect storm).
                let working = act
                    .connections
                    .keys()
                    .any(|id| !act.connecting.contains(id));
                if !working {
                    act.defer_active(response.clone(), msg.peer.clone(), true, ctx);
                    let until = Instant::now() + act.cfg.retry_interval.get();
                    act.hop_down = Some((until, response, msg.peer));
                }
            }
            act.dispatch(ctx);
        });
    }
}
