//! The root: boots the actor system in order and supervises it for the process's life.
//!
//! Boot order: registry → I/O actor → blocking pool → actor arbiters → logger → spool →
//! control socket → HTTP endpoint (if configured) → listeners. Then `listening on ADDR` per listener and `ready` go to
//! stderr, while the root asks the spool to recover and hands every live message it
//! answers with to the router (the spool only stores and answers). The root actor then
//! samples allocator peaks, watches the actors whose loss would stop mail (spool,
//! logger) and runs the graceful shutdown: stop accepting, let sessions finish (up to
//! `shutdown_grace`), flush the spool and the log, stop the I/O thread, stop the system.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use impulse_config::Config;
use impulse_runtime::io::{self, IoConfig, IoHandle};
use impulse_runtime::pool::Pool;
use impulse_runtime::registry::{Registration, Registry};
use impulse_runtime::supervise::PanicCount;
use impulse_runtime::{alloc, ActorClass};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::arbiters;
use crate::bounce::Bouncer;
use crate::context::{Generation, Shared};
use crate::control::{Control, Shutdown};
use crate::dkim::DkimKeys;
use crate::dns::{DnsSettings, Resolver};
use crate::http::Http;
use crate::ids::IdGen;
use crate::listener::{self, Listener};
use crate::logger::{Log, Logger};
use crate::outbound::tls::TlsClients;
use crate::queued::QueuedMessage;
use crate::router::Router;
use crate::spool::health::SpoolHealth;
use crate::spool::{Flush, Recover, Spool, SpoolSettings};
use crate::stats::Stats;

mod reload;

pub use reload::Reload;

/// Recovered messages are handed to their domain in batches of this many.
const RECOVERY_BATCH: usize = 10_000;
/// How long one DNS query may take (the resolver tries each name server twice).
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// What `boot` hands back: the root's address and the bound listener addresses.
pub struct Booted {
    pub root: Addr<Root>,
    pub listening: Vec<SocketAddr>,
    /// The HTTP endpoint's bound address, when `http` is configured.
    pub http: Option<SocketAddr>,
    pub control_socket: PathBuf,
}

/// The long-lived supervisor actor.
pub struct Root {
    shared: Arc<Shared>,
    reg: Registration,
    _io_reg: Registration,
    /// Each SMTP listener, by the configured address it was started for.
    listeners: Vec<(std::net::SocketAddr, Addr<Listener>)>,
    router: Arc<Router>,
    control: Option<Addr<Control>>,
    /// The HTTP endpoint, by its configured address, and its listening socket.
    http: Option<(SocketAddr, Addr<Http>, impulse_runtime::io::ListenerId)>,
    shutting_down: bool,
    /// SIGTERM, SIGINT and SIGHUP streams, registered during `boot` (so a signal that
    /// arrives right after `ready` is already handled) and watched from `started`.
    signals: Option<(Signal, Signal, Signal)>,
    /// The file the configuration came from (none: the embedded default).
    config_path: Option<PathBuf>,
}

/// Start every long-lived actor. Must run inside a running actix `System`.
pub fn boot(config: Config) -> Result<Booted, String> {
    boot_from(config, None)
}

/// [`boot`], for a configuration read from `path` (what SIGHUP reads again).
pub fn boot_from(config: Config, path: Option<PathBuf>) -> Result<Booted, String> {
    let config = Arc::new(config);
    // Keys are read once per configuration: a key that does not load stops the start.
    let dkim = Arc::new(DkimKeys::load(&config.dkim)?);
    let tls_clients = Arc::new(TlsClients::load(config.delivery.tls_ca.as_deref())?);
    let listener_settings = crate::listener::ListenerSettings::load_all(&config)?;
    let registry = Registry::new();
    let root_reg = Registration::new(&registry, ActorClass::Root, "impulsed", None);
    let root_id = root_reg.id();
    let io = io::spawn(IoConfig {
        read_chunk: 64 * 1024,
        read_window: 256 * 1024,
        max_write_buffer: 16 * 1024 * 1024,
    })
    .map_err(|e| format!("cannot start the I/O thread: {e}"))?;
    let io_reg = Registration::new(&registry, ActorClass::Io, "io", Some(root_id));
    io_reg.set_state("polling");
    let pool = Pool::start(
        "blocking",
        config.pools.blocking.max(1),
        &registry,
        Some(root_id),
    );
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let suspensions = Arc::new(crate::suspend::Suspensions::load(&data_dir)?);
    let panics: Arc<PanicCount> = Arc::default();
    let logger = Logger::open(
        &data_dir.join("logs"),
        pool.clone(),
        Registration::new(&registry, ActorClass::Logger, "logger", Some(root_id)),
        panics.clone(),
    )
    .map_err(|e| {
        format!(
            "cannot open the log in {}: {e}",
            data_dir.join("logs").display()
        )
    })?
    .start();

    let stats = Arc::new(Stats::default());
    let ids = Arc::new(IdGen::new());
    let spool_health = Arc::new(SpoolHealth::default());
    let spool = Spool::new(
        SpoolSettings {
            dir: data_dir.join("spool"),
            segment_size: config.spool.segment_size,
            min_free: config.spool.min_free,
        },
        pool.clone(),
        Registration::new(&registry, ActorClass::Spool, "spool", Some(root_id)),
        stats.clone(),
        spool_health.clone(),
        panics.clone(),
    )
    .start();
    let arbiters = arbiters::start(config.pools.arbiters);
    let resolver = Resolver::start(
        DnsSettings {
            servers: config.dns.servers.clone(),
            port: config.delivery.port,
            timeout: DNS_TIMEOUT,
        },
        Registration::new(&registry, ActorClass::Resolver, "resolver", Some(root_id)),
    );
    let shared = Arc::new(Shared {
        generation: std::sync::RwLock::new(Arc::new(Generation {
            number: 1,
            config: config.clone(),
            dkim,
            tls_clients,
        })),
        registry: registry.clone(),
        io: io.clone(),
        pool: pool.clone(),
        stats: stats.clone(),
        ids: ids.clone(),
        logger: logger.clone(),
        spool,
        spool_health,
        bouncer: OnceLock::new(),
        suspensions,
        sites: Default::default(),
        resolver,
        arbiters,
        root_id,
        started: Instant::now(),
        panics,
        auth_failures: Default::default(),
        admission: Default::default(),
        memory: Default::default(),
    });
    shared.memory.set(crate::memory::limit_for(&config));
    let router = Arc::new(Router::new(shared.clone()));
    let bouncer = Bouncer::new(
        shared.clone(),
        router.clone(),
        Registration::new(&registry, ActorClass::Bouncer, "bouncer", Some(root_id)),
    )
    .start();
    let _ = shared.bouncer.set(bouncer);

    // Take over SIGTERM and SIGINT now, before `ready`: until a stream exists, their
    // default action would kill the process without a graceful stop.
    // SIGHUP too: its default action would kill the daemon.
    let signals = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(term), Ok(int), Ok(hup)) => Some((term, int, hup)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            io.shutdown();
            return Err(format!("cannot install signal handlers: {e}"));
        }
    };

    let control_socket = data_dir.join("control.sock");
    let mut failure: Option<String> = None;
    let mut listening = Vec::new();
    let mut http_bound = None;
    let root = Root::create(|ctx| {
        let control = Control::new(
            shared.clone(),
            Registration::new(&registry, ActorClass::Control, "control", Some(root_id)),
            router.clone(),
            ctx.address().recipient(),
            ctx.address().recipient(),
        );
        let control = Supervisor::start(move |_| control);
        if let Err(e) = io.listen_unix(&control_socket, control.clone().recipient()) {
            failure = Some(format!(
                "cannot listen on {}: {e}",
                control_socket.display()
            ));
        }
        let mut http = None;
        if let Some(h) = &config.http {
            match reload::start_http(&shared, &router, &control, h.address) {
                Ok((actor, id, local)) => {
                    http_bound = Some(local);
                    http = Some((h.address, actor, id));
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        let mut listeners = Vec::new();
        for (l, settings) in config.listeners.iter().zip(listener_settings) {
            match reload::start_listener(&shared, &router, l, settings) {
                Ok((actor, local)) => {
                    listening.push(local);
                    listeners.push((l.address, actor));
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        Root {
            shared: shared.clone(),
            reg: root_reg,
            _io_reg: io_reg,
            listeners,
            router,
            control: Some(control),
            http,
            shutting_down: false,
            signals,
            config_path: path,
        }
    });
    if let Some(reason) = failure {
        io.shutdown();
        return Err(reason);
    }
    Ok(Booted {
        root,
        listening,
        http: http_bound,
        control_socket,
    })
}

impl Root {
    fn io(&self) -> &IoHandle {
        &self.shared.io
    }

    /// Ask the spool for every live message and hand them to their domain containers.
    fn recover(&mut self, ctx: &mut Context<Self>) {
        let fut = self.shared.spool.send(Recover);
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            let by_domain = match res {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    eprintln!("impulsed: spool recovery failed: {e}");
                    return System::current().stop_with_code(1);
                }
                Err(e) => {
                    eprintln!("impulsed: spool recovery failed: {e}");
                    return System::current().stop_with_code(1);
                }
            };
            let _g = alloc::enter(ActorClass::Message);
            act.expect_recovered_reports(&by_domain);
            for (domain, list) in by_domain {
                let mut batch = Vec::with_capacity(list.len().min(RECOVERY_BATCH));
                for r in list {
                    act.shared.ids.observe(r.id);
                    let mut envelope = r.envelope;
                    if r.retry.is_some_and(|s| s.delay_warned) {
                        envelope.set_delay_warned();
                    }
                    batch.push(QueuedMessage {
                        id: r.id,
                        received_at: r.received_at,
                        size: r.size as u32,
                        attempts: r.retry.map_or(0, |s| s.attempts),
                        retry_at: r.retry.map_or(0, |s| s.retry_at),
                        envelope,
                        reg: None,
                    });
                    if batch.len() == RECOVERY_BATCH {
                        act.router.enqueue_many(&domain, std::mem::take(&mut batch));
                    }
                }
                if !batch.is_empty() {
                    act.router.enqueue_many(&domain, batch);
                }
            }
        }));
    }

    /// The parts of split receptions that recovery found due now report together, as
    /// they would have before the restart (parts still waiting for a retry do not hold
    /// the others' report).
    fn expect_recovered_reports(
        &self,
        by_domain: &[(String, Vec<crate::spool::recover::Recovered>)],
    ) {
        let now = crate::ids::now_ms();
        let due = by_domain
            .iter()
            .flat_map(|(_, list)| list)
            .filter(|r| r.retry.is_none_or(|s| s.retry_at <= now))
            .map(|r| (r.id, &r.envelope));
        crate::accept::expect_reports(&self.shared, due);
    }

    /// Stop once inbound sessions and outbound connections are gone (or the grace
    /// period ran out) and the spool and the log are flushed.
    fn wait_and_stop(&mut self, deadline: Instant, ctx: &mut Context<Self>) {
        let counts = self.shared.registry.count_by_class();
        let busy = counts[ActorClass::Inbound as usize]
            + counts[ActorClass::Outbound as usize]
            + Stats::get(&self.shared.stats.messages_working) as usize;
        if busy > 0 && Instant::now() < deadline {
            ctx.run_later(Duration::from_millis(50), move |act, ctx| {
                act.wait_and_stop(deadline, ctx)
            });
            return;
        }
        let spool = self.shared.spool.clone();
        let logger = self.shared.logger.clone();
        let io = self.io().clone();
        // Bounded: a spool or log that cannot write (disk full) does not hold the exit;
        // what it could not mark is simply recovered and retried after the restart.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let fut = async move {
            let flush = async {
                let _ = logger
                    .send(Log {
                        records: Vec::new(),
                        durable: true,
                    })
                    .await;
                let _ = spool.send(Flush).await;
            };
            if actix_rt::time::timeout(left, flush).await.is_err() {
                eprintln!("impulsed: spool or log not flushed within the grace period");
            }
            io.shutdown();
            // `shutdown` returns at once; the process must not exit before the loop has
            // written what was queued before it (e.g. the answer to `impulsectl
            // shutdown`). Bounded: a stuck loop does not hold the exit.
            let until = Instant::now() + Duration::from_secs(2);
            while io.is_running() && Instant::now() < until {
                actix_rt::time::sleep(Duration::from_millis(2)).await;
            }
        };
        ctx.spawn(fut.into_actor(self).map(|_, _, _| {
            eprintln!("impulsed: stopped");
            System::current().stop();
        }));
    }
}

impl Actor for Root {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reg.set_state("running");
        self.recover(ctx);
        ctx.run_interval(Duration::from_millis(100), |_, _| alloc::sample_peaks());
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            if !act.shared.spool.connected() || !act.shared.logger.connected() {
                eprintln!("impulsed: the spool or the logger stopped; exiting so a restart recovers the spool");
                System::current().stop_with_code(1);
            }
        });
        let addr = ctx.address();
        let Some((mut term, mut int, mut hup)) = self.signals.take() else {
            return;
        };
        let me = ctx.address();
        ctx.spawn(
            async move {
                while hup.recv().await.is_some() {
                    match me.send(Reload).await {
                        Ok(Ok(done)) => eprintln!("reload (SIGHUP): {done}"),
                        Ok(Err(why)) => eprintln!("reload (SIGHUP) refused: {why}"),
                        Err(_) => return,
                    }
                }
            }
            .into_actor(self),
        );
        ctx.spawn(
            async move {
                let which = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                addr.do_send(Shutdown {
                    reason: which.to_string(),
                });
            }
            .into_actor(self),
        );
    }
}

impl Handler<Shutdown> for Root {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.reg.set_state("stopping");
        eprintln!("impulsed: shutting down ({})", msg.reason);
        for (_, l) in &self.listeners {
            l.do_send(listener::Drain);
        }
        self.router.drain();
        if let Some(b) = self.shared.bouncer.get() {
            b.do_send(crate::bounce::FlushReports);
        }
        self.control.take();
        if let Some((_, _, id)) = self.http.take() {
            self.shared.io.close_listener(id);
        }
        let deadline = Instant::now() + self.shared.config().shutdown_grace.get();
        self.wait_and_stop(deadline, ctx);
    }
}
