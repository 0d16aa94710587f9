//! A new configuration generation reaches a domain container ([`Reconfigure`]): its
//! limits, retry settings, TLS policy, route and binding identity are read again for
//! new work. Connections already open finish under the settings they were opened with;
//! the site's throttles are replaced by this generation's (see [`super::site`]). When
//! the route or the binding's identity changed, the resolved hops are forgotten and idle
//! connections (to the old place, from the old address) are asked to quit.

use actix::prelude::*;

use super::{next_hop, Domain};
use crate::binding::Egress;

/// Read the configuration generation in force again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure;

impl Handler<Reconfigure> for Domain {
    type Result = ();

    fn handle(&mut self, _: Reconfigure, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| act.reconfigure(ctx));
    }
}

impl Domain {
    fn reconfigure(&mut self, ctx: &mut Context<Self>) {
        let g = self.shared.generation();
        if g.number <= self.generation {
            return;
        }
        self.generation = g.number;
        self.cfg = g.config.domain(&self.name);
        let hop = next_hop(&self.name, g.config.route(&self.name));
        let egress = Egress::of(&g.config, self.binding.as_deref());
        let moved = hop != self.hop || egress != *self.egress;
        if moved {
            self.hop = hop;
            self.egress = std::sync::Arc::new(egress);
            self.resolved = None;
            self.hop_down = None;
            for (id, conn) in self.idle.drain(..) {
                if let Some((_, site)) = &self.site {
                    site.unpark(id);
                }
                conn.do_send(crate::outbound::Drain);
            }
        }
        // Looked up again, with this generation's throttles.
        self.site = None;
        self.dispatch(ctx);
        self.update_registry();
    }
}
