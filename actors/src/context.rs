//! The shared context every actor is handed at creation: the configuration generation,
//! registry, I/O handle, pool, counters, id generator and the addresses of the
//! long-lived actors.
//!
//! The configuration, and what is loaded from it (DKIM keys, TLS client settings), is a
//! [`Generation`]: `impulsectl reload` and SIGHUP install a new one, and whatever starts
//! after that reads the new one (a new session, a new connection, a new message), while
//! work already under way keeps the settings it was started with.
//!
//! It is built once by the root and passed down explicitly (an `Arc<Shared>`); nothing
//! here is a process-global singleton, so tests can run several daemons in one process.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use actix::Addr;
use impulse_config::Config;
use impulse_runtime::io::IoHandle;
use impulse_runtime::pool::Pool;
use impulse_runtime::registry::{ActorId, Registry};
use impulse_runtime::supervise::PanicCount;

use crate::arbiters::Arbiters;
use crate::bounce::Bouncer;
use crate::dkim::DkimKeys;
use crate::dns::Resolver;
use crate::ids::IdGen;
use crate::logger::Logger;
use crate::outbound::tls::TlsClients;
use crate::spool::health::SpoolHealth;
use crate::spool::Spool;
use crate::stats::Stats;

/// One configuration generation: the config and what was loaded from it.
pub struct Generation {
    /// 1 at start, one more per reload.
    pub number: u64,
    pub config: Arc<Config>,
    /// DKIM signing keys by sending domain.
    pub dkim: Arc<DkimKeys>,
    /// Outbound TLS client configurations (with `delivery.tls_ca` loaded).
    pub tls_clients: Arc<TlsClients>,
}

/// What every actor may reach.
pub struct Shared {
    /// The generation in force (see the module documentation).
    pub(crate) generation: RwLock<Arc<Generation>>,
    pub registry: Arc<Registry>,
    pub io: IoHandle,
    /// The blocking pool: spool writes and fsyncs, log writes, reads.
    pub pool: Pool,
    pub stats: Arc<Stats>,
    pub ids: Arc<IdGen>,
    pub logger: Addr<Logger>,
    pub spool: Addr<Spool>,
    /// The spool's health, read without asking the spool (MAIL FROM, `status`).
    pub spool_health: Arc<SpoolHealth>,
    /// Suspended destinations (`impulsectl suspend`).
    pub suspensions: Arc<crate::suspend::Suspensions>,
    /// Delivery status notifications (set once at boot, after the router exists).
    pub bouncer: OnceLock<Addr<Bouncer>>,
    /// Sites: destinations sharing connections and limits (MX rollup).
    pub sites: crate::domain::site::Sites,
    /// MX and address lookups (on an arbiter of their own).
    pub resolver: Addr<Resolver>,
    /// The actix arbiters actors are placed on.
    pub arbiters: Arc<Arbiters>,
    /// Registry id of the root, parent of the long-lived actors and domain containers.
    pub root_id: ActorId,
    pub started: Instant,
    /// Handler panics caught and turned into supervised restarts.
    pub panics: Arc<PanicCount>,
    /// Failed AUTH attempts per client address (the growing delay).
    pub auth_failures: crate::inbound::secure::Failures,
    /// Inbound sessions open, in total and per client address.
    pub admission: crate::inbound::limits::Admission,
    /// The memory budget (`memory.limit`).
    pub memory: crate::memory::Budget,
}

impl Shared {
    /// The generation in force now.
    pub fn generation(&self) -> Arc<Generation> {
        self.generation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.generation().config.clone()
    }

    /// Put `g` in force for everything that starts from now on.
    pub fn install(&self, g: Generation) {
        *self.generation.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(g);
    }
}
