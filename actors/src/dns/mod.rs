//! The resolver actor: MX and address lookups for delivery, off every mail thread.
//!
//! # Where DNS runs, and why there
//! hickory-resolver on an actix arbiter of its own (a current-thread tokio runtime: its
//! UDP and TCP sockets are tokio's, on that thread). The alternative — the mio I/O actor
//! owning the resolver sockets, with hickory-proto for the wire format — would mean
//! rewriting what the resolver already does right (retries and timeouts per name server,
//! TCP after a truncated answer, EDNS, `resolv.conf` parsing, its record cache) inside
//! the event loop that carries every SMTP byte. A lookup is one small datagram per
//! query and answers are cached, so the one extra thread costs little; no actor that
//! handles mail ever waits on DNS — a domain container sends [`Resolve`] and goes on.
//!
//! # Caching and coalescing
//! Each answer (the ordered next hops of a domain, or why there are none) is kept for
//! its TTL — the smallest TTL of the MX and address records, or the negative TTL of an
//! NXDOMAIN — clamped to [1 s, 1 h]; a temporary failure for 5 s. Concurrent requests
//! for the same destination share one lookup: the first starts it, the others wait for
//! its answer.
//!
//! Name servers come from `dns.servers` (UDP, then TCP on the same port), or the system
//! resolver configuration when none are listed. The meaning of the answers is in
//! [`plan`] (plain functions).

pub mod plan;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use actix::prelude::*;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver as Hickory, TokioResolver};
use impulse_runtime::alloc;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;
use tokio::sync::oneshot;

use crate::logger::LoggedResponse;
pub use plan::{Hop, Resolution};
use plan::{LookupError, MxPlan};

/// What to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A mail domain: its MX hosts (or itself), on `delivery.port`.
    Mx(String),
    /// A host of a static route, on its port.
    Host(String, u16),
}

/// Resolve a destination into its next hops.
#[derive(Message)]
#[rtype(result = "Resolved")]
pub struct Resolve(pub Target);

/// The answer to [`Resolve`], and until when it may be reused without asking again.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resolution: Resolution,
    pub until: Instant,
}

/// Name servers and limits for the resolver.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Empty: the system resolver configuration.
    pub servers: Vec<SocketAddr>,
    /// Port of MX delivery (`delivery.port`).
    pub port: u16,
    /// Per query.
    pub timeout: Duration,
}

/// The resolver actor.
pub struct Resolver {
    settings: DnsSettings,
    /// The hickory resolver, or why it could not be built (every lookup then fails
    /// temporarily with that reason).
    inner: Result<TokioResolver, String>,
    cache: HashMap<Target, Resolved>,
    waiting: HashMap<Target, Vec<oneshot::Sender<Resolved>>>,
    reg: Registration,
    seed: RandomState,
}

impl Resolver {
    /// Start the resolver on an arbiter of its own (call inside the running System).
    pub fn start(settings: DnsSettings, reg: Registration) -> Addr<Resolver> {
        let arbiter = Arbiter::new();
        let addr = Resolver::start_in_arbiter(&arbiter.handle(), move |_| {
            let _g = alloc::enter(ActorClass::Resolver);
            let inner = build(&settings);
            if let Err(e) = &inner {
                eprintln!("dns: {e}; every lookup will be deferred");
            }
            Resolver {
                settings,
                inner,
                cache: HashMap::new(),
                waiting: HashMap::new(),
                reg,
                seed: RandomState::new(),
            }
        });
        // The arbiter lives as long as the System; its handle is not needed again.
        drop(arbiter);
        addr
    }

    fn update_registry(&self) {
        let state = if self.waiting.is_empty() {
            "idle"
        } else {
            "resolving"
        };
        self.reg.set_state(state);
        self.reg.set_mailbox(self.waiting.len());
    }

    fn answered(&mut self, target: Target, resolution: Resolution, ttl: Option<Duration>) {
        let now = Instant::now();
        let answer = Resolved {
            until: now + plan::cache_for(&resolution, ttl),
            resolution,
        };
        if self.cache.len() > 100_000 {
            self.cache.retain(|_, r| r.until > now);
        }
        self.cache.insert(target.clone(), answer.clone());
        for w in self.waiting.remove(&target).unwrap_or_default() {
            let _ = w.send(answer.clone());
        }
        self.update_registry();
    }
}

/// The hickory resolver for `settings`.
fn build(settings: &DnsSettings) -> Result<TokioResolver, String> {
    let mut builder = if settings.servers.is_empty() {
        Hickory::builder_tokio()
            .map_err(|e| format!("cannot read the system resolver configuration: {e}"))?
    } else {
        let servers = settings
            .servers
            .iter()
            .map(|s| {
                let mut udp = ConnectionConfig::udp();
                udp.port = s.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = s.port();
                NameServerConfig::new(s.ip(), true, vec![udp, tcp])
            })
            .collect();
        Hickory::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = settings.timeout;
    opts.attempts = 2;
    opts.ndots = 0;
    builder
        .build()
        .map_err(|e| format!("cannot start the resolver: {e}"))
}

/// The resolver's error as what it means for mail.
fn classify(e: &NetError) -> (LookupError, Option<Duration>) {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(NoRecords {
            response_code,
            negative_ttl,
            ..
        })) => {
            let ttl = negative_ttl.map(|t| Duration::from_secs(t as u64));
            match *response_code {
                ResponseCode::NXDomain => (LookupError::NoSuchName, ttl),
                ResponseCode::NoError => (LookupError::NoRecords, ttl),
                other => (LookupError::Failed(other.to_string()), None),
            }
        }
        other => (LookupError::Failed(other.to_string()), None),
    }
}

/// Absolute form of a name, so no search domain is appended.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn min_ttl(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The addresses of `host`, and how long they may be kept.
async fn addresses(
    r: &TokioResolver,
    host: &str,
) -> (Result<Vec<IpAddr>, LookupError>, Option<Duration>) {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return (Ok(vec![ip]), None);
    }
    match r.lookup_ip(absolute(host)).await {
        Ok(l) => {
            let ttl = l.valid_until().saturating_duration_since(Instant::now());
            (Ok(l.iter().collect()), Some(ttl))
        }
        Err(e) => {
            let (err, ttl) = classify(&e);
            (Err(err), ttl)
        }
    }
}

/// Look `target` up from scratch: the resolution and its TTL.
async fn lookup(
    r: TokioResolver,
    target: Target,
    port: u16,
    seed: u64,
) -> (Resolution, Option<Duration>) {
    match target {
        Target::Host(host, port) => {
            let (addrs, ttl) = addresses(&r, &host).await;
            let res = plan::hops(&host, port, false, vec![(host.clone(), 0, addrs)]);
            let res = match res {
                // A route's host that does not resolve is an operator's mistake:
                // temporary, so mail waits for the fix instead of bouncing.
                Resolution::Permanent(p) => {
                    Resolution::Temporary(LoggedResponse::new(451, Some("4.4.4".into()), p.text))
                }
                other => other,
            };
            (res, ttl)
        }
        Target::Mx(domain) => {
            let (answer, mut ttl) = match r.mx_lookup(absolute(&domain)).await {
                Ok(l) => {
                    let records = l
                        .answers()
                        .iter()
                        .filter_map(|rec| match &rec.data {
                            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                            _ => None,
                        })
                        .collect();
                    let ttl = l.valid_until().saturating_duration_since(Instant::now());
                    (Ok(records), Some(ttl))
                }
                Err(e) => {
                    let (err, ttl) = classify(&e);
                    (Err(err), ttl)
                }
            };
            let implicit = matches!(answer, Err(LookupError::NoRecords));
            let exchangers = match plan::mx_plan(&domain, answer, seed) {
                Ok(MxPlan::Exchangers(list)) => list,
                Ok(MxPlan::NullMx) => return (plan::null_mx(&domain), ttl),
                Err(res) => return (res, ttl),
            };
            let mut resolved = Vec::with_capacity(exchangers.len());
            for (name, pref) in exchangers {
                let (addrs, t) = addresses(&r, &name).await;
                if addrs.is_ok() {
                    ttl = min_ttl(ttl, t);
                }
                resolved.push((name, pref, addrs));
            }
            (plan::hops(&domain, port, implicit, resolved), ttl)
        }
    }
}

impl Actor for Resolver {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.reg.placed();
        self.update_registry();
    }
}

impl Handler<Resolve> for Resolver {
    type Result = ResponseFuture<Resolved>;

    fn handle(&mut self, Resolve(target): Resolve, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Resolver);
        if let Some(hit) = self.cache.get(&target) {
            if hit.until > Instant::now() {
                let hit = hit.clone();
                return Box::pin(async move { hit });
            }
        }
        let (tx, rx) = oneshot::channel();
        let first = !self.waiting.contains_key(&target);
        self.waiting.entry(target.clone()).or_default().push(tx);
        if first {
            match &self.inner {
                Ok(r) => {
                    let seed = self.seed.hash_one((&target, Instant::now()));
                    let fut = lookup(r.clone(), target.clone(), self.settings.port, seed);
                    ctx.spawn(fut.into_actor(self).map(move |(res, ttl), act, _| {
                        let _g = alloc::enter(ActorClass::Resolver);
                        act.answered(target, res, ttl);
                    }));
                }
                Err(why) => {
                    let res = Resolution::Temporary(LoggedResponse::new(
                        451,
                        Some("4.4.3".into()),
                        why.clone(),
                    ));
                    self.answered(target, res, None);
                }
            }
        }
        self.update_registry();
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| Resolved {
                resolution: Resolution::Temporary(LoggedResponse::new(
                    451,
                    Some("4.4.3".into()),
                    "the resolver stopped",
                )),
                until: Instant::now(),
            })
        })
    }
}
