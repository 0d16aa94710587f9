//! The router: finds (or starts) the domain container for a destination domain.
//!
//! Whoever had a message stored (the inbound session after its `Store`, the root after
//! spool recovery) hands it here; the router keeps one domain container actor per domain
//! in a DashMap and forwards the message to it. A container that died is replaced on the
//! next message for its domain.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;

use crate::context::Shared;
use crate::domain::{Domain, Drain, Enqueue, EnqueueMany};
use crate::queued::QueuedMessage;

/// Domain name → its container.
pub struct Router {
    shared: Arc<Shared>,
    domains: DashMap<String, Addr<Domain>>,
    /// Shutting down: containers started from now on start drained.
    draining: AtomicBool,
}

impl Router {
    pub fn new(shared: Arc<Shared>) -> Router {
        Router {
            shared,
            domains: DashMap::new(),
            draining: AtomicBool::new(false),
        }
    }

    /// Hand a spooled message to its domain container.
    pub fn enqueue(&self, domain: &str, msg: QueuedMessage) {
        self.domain(domain).do_send(Enqueue(msg));
    }

    /// Hand many spooled messages of one domain to its container.
    pub fn enqueue_many(&self, domain: &str, list: Vec<QueuedMessage>) {
        self.domain(domain).do_send(EnqueueMany(list));
    }

    /// The container for `name`, started if there is none (or it died).
    pub fn domain(&self, name: &str) -> Addr<Domain> {
        if let Some(addr) = self.domains.get(name) {
            if addr.connected() {
                return addr.clone();
            }
        }
        let mut entry = self
            .domains
            .entry(name.to_string())
            .or_insert_with(|| self.start(name));
        if !entry.connected() {
            *entry = self.start(name);
        }
        entry.clone()
    }

    fn start(&self, name: &str) -> Addr<Domain> {
        let _g = impulse_runtime::alloc::enter(ActorClass::Domain);
        let reg = Registration::new(
            &self.shared.registry,
            ActorClass::Domain,
            name.to_string(),
            Some(self.shared.root_id),
        );
        let shared = self.shared.clone();
        let name = name.to_string();
        let arbiter = self.shared.arbiters.for_key(&name);
        let addr = Supervisor::start_in_arbiter(&arbiter, move |_| Domain::new(name, shared, reg));
        if self.draining.load(Ordering::Acquire) {
            addr.do_send(Drain);
        }
        addr
    }

    /// Graceful stop: every container, present and future, stops opening connections
    /// and assigning messages; its connections finish their transaction and quit.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        for d in self.all() {
            d.do_send(Drain);
        }
    }

    /// The live containers of `domain`, with their queue keys, the one without a
    /// binding first.
    pub fn queues_of(&self, domain: &str) -> Vec<(String, Addr<Domain>)> {
        let mut v: Vec<(String, Addr<Domain>)> = self
            .domains
            .iter()
            .filter(|e| e.value().connected())
            .filter(|e| {
                crate::binding::split_key(e.key())
                    .1
                    .eq_ignore_ascii_case(domain)
            })
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by_key(|(k, _)| (k.contains('/'), k.clone()));
        v
    }

    /// Every live container whose domain is `domain` (any binding), or every one.
    pub fn matching(&self, domain: Option<&str>) -> Vec<Addr<Domain>> {
        match domain {
            Some(d) => self.queues_of(d).into_iter().map(|(_, a)| a).collect(),
            None => self.all(),
        }
    }

    /// Every live container.
    pub fn all(&self) -> Vec<Addr<Domain>> {
        self.domains
            .iter()
            .filter(|e| e.value().connected())
            .map(|e| e.value().clone())
            .collect()
    }
}
