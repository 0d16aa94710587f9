//! The listener actor: one per configured listener address.
//!
//! The I/O actor owns the listening socket and reports each accepted connection here;
//! the listener starts an [`Inbound`] session actor for it (its child in the actor tree)
//! and, on shutdown, stops accepting and asks its sessions to finish. It runs under a
//! `Supervisor`: a panic in its handler drops the connection being accepted and
//! restarts the listener with its state.

pub mod messages;
pub mod settings;

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use impulse_runtime::alloc;
use impulse_runtime::io::{Accepted, ConnId, ListenerId, PeerAddr};
use impulse_runtime::registry::Registration;
use impulse_runtime::supervise::{fault_point, guard};
use impulse_runtime::ActorClass;

use crate::context::Shared;
use crate::inbound::{self, Inbound};
use crate::router::Router;
pub use messages::*;
pub use settings::ListenerSettings;

/// One listening address.
pub struct Listener {
    shared: Arc<Shared>,
    router: Arc<Router>,
    reg: Registration,
    /// What its sessions run with: greeting name, TLS, AUTH (replaced by a reload).
    settings: Arc<ListenerSettings>,
    id: Option<ListenerId>,
    sessions: HashMap<ConnId, Addr<Inbound>>,
    draining: bool,
}

impl Listener {
    pub fn new(
        shared: Arc<Shared>,
        router: Arc<Router>,
        reg: Registration,
        settings: ListenerSettings,
    ) -> Listener {
        Listener {
            shared,
            router,
            reg,
            settings: Arc::new(settings),
            id: None,
            sessions: HashMap::new(),
            draining: false,
        }
    }
}

/// Restarted by its `Supervisor` after a contained panic, with its sessions and
/// listening socket as they were (the struct is kept).
impl Supervised for Listener {}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        self.reg.set_state("binding");
    }
}

impl Handler<Bound> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Bound, _ctx: &mut Context<Self>) {
        self.id = Some(msg.id);
        self.reg.set_state("accepting");
        self.reg.set_detail(msg.local.to_string());
    }
}

impl Handler<Accepted> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Accepted, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Listener);
        let conn = msg.conn;
        let panics = self.shared.panics.clone();
        let started = guard(self, ctx, "listener", Some(&panics), move |act, _| {
            fault_point("listener");
            act.accept(msg)
        });
        if started.is_none() {
            // The listener restarts (supervised); the connection it could not take goes.
            self.shared.io.abort(conn);
        }
    }
}

impl Listener {
    fn accept(&mut self, msg: Accepted) {
        let PeerAddr::Tcp(peer) = msg.peer else {
            self.shared.io.abort(msg.conn);
            return;
        };
        let smtp = &self.shared.config().smtp;
        if let Err(why) = self.shared.admission.admit(
            peer.ip(),
            smtp.max_connections,
            smtp.max_connections_per_ip,
        ) {
            // Said before anything else, and the connection closes (RFC 5321 §3.1).
            let line = format!("421 4.7.0 {} {why}\r\n", self.settings.hostname);
            self.shared.io.write(msg.conn, bytes::Bytes::from(line));
            self.shared.io.close(msg.conn);
            let record =
                crate::inbound::limits::rejection(&peer.to_string(), 421, "4.7.0", why, "", "");
            actix::spawn(crate::logger::write(
                self.shared.logger.clone(),
                vec![record],
                false,
            ));
            return;
        }
        self.sessions.retain(|_, a| a.connected());
        let reg = Registration::new(
            &self.shared.registry,
            ActorClass::Inbound,
            peer.to_string(),
            Some(self.reg.id()),
        );
        let session = {
            let _g = alloc::enter(ActorClass::Inbound);
            let inbound = Inbound::new(
                self.shared.clone(),
                self.router.clone(),
                reg,
                msg.conn,
                peer,
                self.settings.clone(),
            );
            Inbound::start_in_arbiter(&self.shared.arbiters.next(), move |_| inbound)
        };
        if self.draining {
            // Accepted just before the listening socket closed: finish it at once.
            session.do_send(inbound::Drain);
        }
        self.sessions.insert(msg.conn, session);
        self.reg.set_mailbox(self.sessions.len());
    }
}

impl Handler<Configure> for Listener {
    type Result = ();

    fn handle(&mut self, Configure(settings): Configure, _ctx: &mut Context<Self>) {
        self.settings = Arc::new(settings);
    }
}

impl Handler<Drain> for Listener {
    type Result = ();

    fn handle(&mut self, _: Drain, _ctx: &mut Context<Self>) {
        if let Some(id) = self.id.take() {
            self.shared.io.close_listener(id);
        }
        self.draining = true;
        self.reg.set_state("draining");
        for s in self.sessions.values() {
            s.do_send(inbound::Drain);
        }
    }
}
