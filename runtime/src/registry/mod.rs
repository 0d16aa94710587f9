//! The actor registry: every live actor's id, class, name, parent, state and mailbox.
//!
//! actix cannot enumerate actors, so actors announce themselves here: each holds a
//! [`Registration`] (RAII: it unregisters on drop) and updates its state and mailbox
//! length as it goes. The registry is a `DashMap` behind an `Arc<Registry>` that is passed
//! explicitly to whoever needs it — there is no process-global instance. It is what
//! `impulsectl tree` prints ([`Registry::tree`]: its [`Shape`], then [`draw`]).
//!
//! Contracts:
//! - Ids are unique for the registry's lifetime and increase with registration order.
//! - Unregistering a parent does not remove its children (actors unregister themselves);
//!   a child whose parent is gone is shown as a root.
//! - Updates to an id that is not registered are ignored.

mod tree;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::class::ActorClass;

pub use tree::{draw, render_tree, Shape, TreeOptions, TreeView, COLLAPSE_KEEP, COLLAPSE_OVER};

/// Identifies an actor in the registry.
pub type ActorId = u64;

thread_local! {
    /// The index of the actix arbiter this thread runs (0 unless set).
    static ARBITER: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Record that this thread runs arbiter `index` (called once on each arbiter thread).
pub fn set_thread_arbiter(index: u8) {
    ARBITER.with(|a| a.set(index));
}

/// The arbiter index of the current thread.
pub fn thread_arbiter() -> u8 {
    ARBITER.try_with(|a| a.get()).unwrap_or(0)
}

/// An actor's name: text, or (for the many messages) an id printed as 16 hex digits,
/// which needs no allocation. The text sits behind a thin pointer so a name takes 16
/// bytes, not 24 (a million registry entries are a million names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Text(Box<String>),
    Hex(u64),
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::Text(Box::new(s))
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::Text(Box::new(s.to_string()))
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Text(s) => f.write_str(s.as_str()),
            Name::Hex(n) => write!(f, "{n:016X}"),
        }
    }
}

/// One registered actor, kept small: a million queued messages each have one (64 bytes,
/// no heap for a message's name or an empty detail).
struct Entry {
    class: ActorClass,
    arbiter: u8,
    mailbox: u32,
    /// 0: none (ids start at 1).
    parent: ActorId,
    state: &'static str,
    name: Name,
    /// Behind a thin pointer (8 bytes, not 16), none while empty (most actors have none).
    #[allow(clippy::box_collection)]
    detail: Option<Box<String>>,
    /// Milliseconds after the registry was created.
    born_ms: u64,
}

impl Entry {
    fn info(&self, id: ActorId, now_ms: u64) -> ActorInfo {
        ActorInfo {
            id,
            class: self.class,
            name: self.name.to_string(),
            parent: (self.parent != 0).then_some(self.parent),
            state: self.state.to_string(),
            mailbox: self.mailbox as usize,
            detail: self.detail.as_deref().cloned().unwrap_or_default(),
            age_ms: now_ms.saturating_sub(self.born_ms),
            arbiter: self.arbiter,
        }
    }
}

/// One actor as reported by the registry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ActorInfo {
    pub id: ActorId,
    pub class: ActorClass,
    pub name: String,
    pub parent: Option<ActorId>,
    /// Free-form state word set by the actor ("idle", "busy", "reading", …).
    pub state: String,
    /// Messages waiting, as last reported by the actor.
    pub mailbox: usize,
    /// Optional free text (peer address, queue sizes, …); empty if unset.
    pub detail: String,
    /// Milliseconds since registration.
    pub age_ms: u64,
    /// Index of the actix arbiter (event-loop thread) the actor runs on.
    #[serde(default)]
    pub arbiter: u8,
}

/// Every live actor. Create with [`Registry::new`] and pass the `Arc` around.
pub struct Registry {
    actors: DashMap<ActorId, Entry>,
    next_id: AtomicU64,
    created: Instant,
}

impl Registry {
    /// An empty registry; ids start at 1.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry {
            actors: DashMap::new(),
            next_id: AtomicU64::new(1),
            created: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.created.elapsed().as_millis() as u64
    }

    /// Add an actor in state "starting" and return its new id.
    pub fn register(
        &self,
        class: ActorClass,
        name: impl Into<Name>,
        parent: Option<ActorId>,
    ) -> ActorId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.actors.insert(
            id,
            Entry {
                class,
                arbiter: thread_arbiter(),
                mailbox: 0,
                parent: parent.unwrap_or(0),
                state: "starting",
                name: name.into(),
                detail: None,
                born_ms: self.now_ms(),
            },
        );
        id
    }

    /// Set the state word of `id`.
    pub fn set_state(&self, id: ActorId, state: &'static str) {
        if let Some(mut e) = self.actors.get_mut(&id) {
            e.state = state;
        }
    }

    /// Set the mailbox length of `id`.
    pub fn set_mailbox(&self, id: ActorId, len: usize) {
        if let Some(mut e) = self.actors.get_mut(&id) {
            e.mailbox = len.min(u32::MAX as usize) as u32;
        }
    }

    /// Record that `id` runs on the current thread's arbiter.
    pub fn set_arbiter_here(&self, id: ActorId) {
        if let Some(mut e) = self.actors.get_mut(&id) {
            e.arbiter = thread_arbiter();
        }
    }

    /// Set the free-text detail of `id`.
    pub fn set_detail(&self, id: ActorId, detail: String) {
        if let Some(mut e) = self.actors.get_mut(&id) {
            e.detail = (!detail.is_empty()).then(|| Box::new(detail));
        }
    }

    /// Make `parent` the parent of `id` (an actor handed to another supervisor, such as
    /// an idle connection another domain of the site adopts).
    pub fn set_parent(&self, id: ActorId, parent: ActorId) {
        if let Some(mut e) = self.actors.get_mut(&id) {
            e.parent = parent;
        }
    }

    /// Remove `id` (its children stay).
    pub fn unregister(&self, id: ActorId) {
        self.actors.remove(&id);
    }

    /// The actor `id`, if registered.
    pub fn get(&self, id: ActorId) -> Option<ActorInfo> {
        self.actors.get(&id).map(|e| e.info(id, self.now_ms()))
    }

    /// Every actor, sorted by id.
    pub fn snapshot(&self) -> Vec<ActorInfo> {
        let now = self.now_ms();
        let mut all: Vec<ActorInfo> = self.actors.iter().map(|e| e.info(*e.key(), now)).collect();
        all.sort_unstable_by_key(|a| a.id);
        all
    }

    /// The actor tree drawn with `opts`, and how many actors are live. Only the shape
    /// (id, parent, class) of every actor is read up front; the text of an actor is read
    /// for the lines drawn only, so a million collapsed messages cost little.
    pub fn tree(&self, opts: TreeOptions) -> (TreeView, usize) {
        let lights: Vec<_> = self
            .actors
            .iter()
            .map(|e| (*e.key(), (e.parent != 0).then_some(e.parent), e.class))
            .collect();
        let shape = Shape::new(lights);
        let view = draw(&shape, |i| self.get(shape.id(i)), opts);
        (view, shape.len())
    }

    /// Number of live actors per class, indexed by `ActorClass as usize`.
    pub fn count_by_class(&self) -> [usize; ActorClass::COUNT] {
        let mut counts = [0; ActorClass::COUNT];
        for e in self.actors.iter() {
            counts[e.class as usize] += 1;
        }
        counts
    }

    /// Live actors per arbiter index, and the sum of their mailbox lengths (index →
    /// (actors, queued)), for the arbiters that run any.
    pub fn count_by_arbiter(&self) -> std::collections::BTreeMap<u8, (usize, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for e in self.actors.iter() {
            let c = counts.entry(e.arbiter).or_insert((0, 0));
            c.0 += 1;
            c.1 += e.mailbox as usize;
        }
        counts
    }

    /// Ids of the registered actors whose parent is `parent`, sorted.
    pub fn children(&self, parent: ActorId) -> Vec<ActorId> {
        let mut ids: Vec<ActorId> = self
            .actors
            .iter()
            .filter(|e| e.parent == parent)
            .map(|e| *e.key())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Number of live actors.
    pub fn len(&self) -> usize {
        self.actors.len()
    }

    /// Whether no actor is registered.
    pub fn is_empty(&self) -> bool {
        self.actors.is_empty()
    }
}

/// An actor's place in the registry, removed when this drops. Actors hold one.
pub struct Registration {
    registry: Arc<Registry>,
    id: ActorId,
}

impl Registration {
    /// Register an actor in `registry`.
    pub fn new(
        registry: &Arc<Registry>,
        class: ActorClass,
        name: impl Into<Name>,
        parent: Option<ActorId>,
    ) -> Registration {
        let id = registry.register(class, name, parent);
        Registration {
            registry: Arc::clone(registry),
            id,
        }
    }

    /// This actor's id (the parent id to give its children).
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// The registry this registration lives in.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Set this actor's state word.
    pub fn set_state(&self, state: &'static str) {
        self.registry.set_state(self.id, state);
    }

    /// Set this actor's mailbox length.
    pub fn set_mailbox(&self, len: usize) {
        self.registry.set_mailbox(self.id, len);
    }

    /// Record that this actor runs on the current thread's arbiter (call from `started`).
    pub fn placed(&self) {
        self.registry.set_arbiter_here(self.id);
    }

    /// Set this actor's free-text detail.
    pub fn set_detail(&self, detail: String) {
        self.registry.set_detail(self.id, detail);
    }

    /// This actor answers to `parent` now.
    pub fn set_parent(&self, parent: ActorId) {
        self.registry.set_parent(self.id, parent);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.unregister(self.id);
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_update_query_unregister() {
        let reg = Registry::new();
        let root = reg.register(ActorClass::Root, "impulsed", None);
        let dom = reg.register(ActorClass::Domain, "example.com", Some(root));
        let m1 = reg.register(ActorClass::Message, "m1", Some(dom));
        let m2 = reg.register(ActorClass::Message, "m2", Some(dom));
        assert!(root < dom && dom < m1 && m1 < m2);

        reg.set_state(m1, "queued");
        reg.set_mailbox(dom, 7);
        reg.set_detail(dom, "mx=mx1.example.com".into());
        let d = reg.get(dom).unwrap();
        assert_eq!(d.mailbox, 7);
        assert_eq!(d.detail, "mx=mx1.example.com");
        assert_eq!(d.state, "starting");
        assert_eq!(reg.get(m1).unwrap().state, "queued");
        assert_eq!(reg.children(dom), vec![m1, m2]);
        assert_eq!(reg.children(root), vec![dom]);
        // Handed to another parent.
        let other = reg.register(ActorClass::Domain, "example.net", Some(root));
        reg.set_parent(m2, other);
        assert_eq!(reg.children(dom), vec![m1]);
        assert_eq!(reg.children(other), vec![m2]);
        assert_eq!(reg.get(m2).unwrap().parent, Some(other));
        reg.set_parent(m2, dom);
        reg.unregister(other);

        let counts = reg.count_by_class();
        assert_eq!(counts[ActorClass::Message as usize], 2);
        assert_eq!(counts[ActorClass::Domain as usize], 1);
        assert_eq!(counts.iter().sum::<usize>(), 4);

        let ids: Vec<_> = reg.snapshot().iter().map(|a| a.id).collect();
        assert_eq!(ids, vec![root, dom, m1, m2]);

        // Unregistering a parent leaves its children.
        reg.unregister(dom);
        assert!(reg.get(dom).is_none());
        assert_eq!(reg.len(), 3);
        assert_eq!(reg.children(dom), vec![m1, m2]);
        // Updates to a gone id are ignored.
        reg.set_state(dom, "x");
        assert!(reg.get(dom).is_none());
    }

    #[test]
    fn entries_stay_small_and_message_names_print_as_hex() {
        assert!(
            std::mem::size_of::<Entry>() <= 64,
            "{}",
            std::mem::size_of::<Entry>()
        );
        let reg = Registry::new();
        let id = reg.register(ActorClass::Message, Name::Hex(0x1A2B), None);
        let info = reg.get(id).unwrap();
        assert_eq!(info.name, "0000000000001A2B");
        assert_eq!(info.parent, None);
    }

    #[test]
    fn registration_unregisters_on_drop() {
        let reg = Registry::new();
        let r = Registration::new(&reg, ActorClass::Listener, "smtp:25", None);
        let id = r.id();
        r.set_state("listening");
        r.set_mailbox(3);
        r.set_detail("0.0.0.0:25".into());
        let info = reg.get(id).unwrap();
        assert_eq!(
            (info.class, info.name.as_str(), info.state.as_str()),
            (ActorClass::Listener, "smtp:25", "listening")
        );
        assert_eq!((info.mailbox, info.detail.as_str()), (3, "0.0.0.0:25"));
        drop(r);
        assert!(reg.is_empty());
    }

    #[test]
    fn concurrent_registration_gives_unique_ids() {
        let reg = Registry::new();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let reg = Arc::clone(&reg);
                std::thread::spawn(move || {
                    (0..500)
                        .map(|i| reg.register(ActorClass::Message, format!("m{i}"), None))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 2000);
        assert_eq!(reg.len(), 2000);
    }
}
