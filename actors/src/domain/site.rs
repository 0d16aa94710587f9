//! Sites: destinations that share connections and limits (KumoMTA's "site", Momentum's
//! MX rollup). Thousands of domains hosted by one provider have the same MX hosts; one
//! connection there can carry mail for any of them, and the provider's limits are per
//! connection source, not per domain.
//!
//! **Key.** The binding, then the sorted, de-duplicated names and ports of the
//! exchangers the domain resolved to (`b1|mx1.example.net:25,mx2.example.net:25`); for a
//! static route, its address and port. Names rather than addresses, so a provider that rotates addresses
//! stays one site; the whole set rather than the first host, so domains that share only
//! a backup MX stay apart.
//!
//! **What is shared.** The count of open connections (each domain still applies its own
//! `max_connections` to it, so the site never exceeds the smallest limit of the domains
//! that open connections), the strictest `throttle` and `connection_throttle` of the
//! domains that named the site in the newest configuration generation (a configured
//! limit is never exceeded because another domain shares the site; a reload starts
//! them again; the connection count stays), and idle connections: a container whose queue is empty hands
//! its idle connection to the site, and another container of the site takes it instead of
//! opening one. Each domain keeps its own queues, retries and `impulsectl queues` row.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use actix::Addr;
use dashmap::DashMap;
use impulse_config::{DomainCfg, Rate};
use impulse_runtime::registry::ActorId;

use super::throttle::Throttle;
use crate::dns::Hop;
use crate::outbound::Outbound;

/// Every site, by key.
#[derive(Default)]
pub struct Sites {
    by_key: DashMap<String, Arc<Site>>,
}

impl Sites {
    /// The site of `key`, created with `cfg`'s throttles if new; its throttles become
    /// `cfg`'s if they came from an older configuration `generation`.
    pub fn get(&self, key: &str, cfg: &DomainCfg, generation: u64) -> Arc<Site> {
        let site = match self.by_key.get(key) {
            Some(s) => s.clone(),
            None => self
                .by_key
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(Site::new(key, cfg, generation)))
                .clone(),
        };
        site.update_limits(cfg, generation);
        site
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The site key for `hops` from `binding`.
pub fn key(binding: Option<&str>, hops: &[Hop]) -> String {
    let names: BTreeSet<String> = hops
        .iter()
        .map(|h| {
            let name = h.name.trim_end_matches('.').to_ascii_lowercase();
            format!("{name}:{}", h.addr.port())
        })
        .collect();
    let names: Vec<String> = names.into_iter().collect();
    format!("{}|{}", binding.unwrap_or(""), names.join(","))
}

/// A site's throttles, from one configuration generation, with the rates they enforce.
struct Limits {
    generation: u64,
    rate: Option<Rate>,
    conn_rate: Option<Rate>,
    /// None: unlimited, and no lock is taken per message.
    throttle: Option<Mutex<Throttle>>,
    conn_throttle: Option<Mutex<Throttle>>,
}

impl Limits {
    fn of(rate: Option<Rate>, conn_rate: Option<Rate>, generation: u64) -> Limits {
        Limits {
            generation,
            rate,
            conn_rate,
            throttle: Throttle::optional(rate).map(Mutex::new),
            conn_throttle: Throttle::optional(conn_rate).map(Mutex::new),
        }
    }

    fn new(cfg: &DomainCfg, generation: u64) -> Limits {
        Limits::of(cfg.throttle, cfg.connection_throttle, generation)
    }
}

/// The stricter of two rates (none is unlimited).
pub fn stricter(a: Option<Rate>, b: Option<Rate>) -> Option<Rate> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(if b.per_second() < a.per_second() {
            b
        } else {
            a
        }),
    }
}

/// One site's shared state.
pub struct Site {
    pub key: String,
    open: AtomicUsize,
    limits: RwLock<Limits>,
    idle: Mutex<Vec<(ActorId, Addr<Outbound>)>>,
    /// How many connections are parked, so taking one back costs no lock when none is.
    parked: AtomicUsize,
}

impl Site {
    fn new(key: &str, cfg: &DomainCfg, generation: u64) -> Site {
        Site {
            key: key.to_string(),
            open: AtomicUsize::new(0),
            limits: RwLock::new(Limits::new(cfg, generation)),
            idle: Mutex::new(Vec::new()),
            parked: AtomicUsize::new(0),
        }
    }

    /// Connections open to the site now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Reserve a connection if fewer than `max` are open: the slot is given back when
    /// dropped (by the connection that holds it).
    pub fn try_open(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let mut n = self.open.load(Ordering::Acquire);
        loop {
            if n >= max {
                return None;
            }
            match self
                .open
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Take `cfg`'s throttles if the site's are from a generation before `generation`.
    pub fn update_limits(&self, cfg: &DomainCfg, generation: u64) {
        let wanted = |l: &Limits| {
            (
                stricter(l.rate, cfg.throttle),
                stricter(l.conn_rate, cfg.connection_throttle),
            )
        };
        {
            let l = self.limits();
            if l.generation > generation
                || (l.generation == generation && wanted(&l) == (l.rate, l.conn_rate))
            {
                return;
            }
        }
        let mut l = self.limits.write().unwrap_or_else(|e| e.into_inner());
        if l.generation < generation {
            *l = Limits::new(cfg, generation);
        } else if l.generation == generation {
            // A domain with a stricter limit joined: it applies to the whole site.
            let (rate, conn_rate) = wanted(&l);
            if rate != l.rate {
                l.rate = rate;
                l.throttle = Throttle::optional(rate).map(Mutex::new);
            }
            if conn_rate != l.conn_rate {
                l.conn_rate = conn_rate;
                l.conn_throttle = Throttle::optional(conn_rate).map(Mutex::new);
            }
        }
    }

    fn limits(&self) -> std::sync::RwLockReadGuard<'_, Limits> {
        self.limits.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The message throttle: `Err(wait)` when the next message must wait.
    pub fn admit_message(&self, now: Instant) -> Result<(), std::time::Duration> {
        self.limits()
            .throttle
            .as_ref()
            .map_or(Ok(()), |t| lock(t).admit(now))
    }

    /// The connection throttle.
    pub fn admit_connection(&self, now: Instant) -> Result<(), std::time::Duration> {
        self.limits()
            .conn_throttle
            .as_ref()
            .map_or(Ok(()), |t| lock(t).admit(now))
    }

    /// Offer an idle connection to the other domains of the site.
    pub fn park(&self, id: ActorId, conn: Addr<Outbound>) {
        let mut idle = lock(&self.idle);
        idle.retain(|(_, c)| c.connected());
        if !idle.iter().any(|(i, _)| *i == id) {
            idle.push((id, conn));
        }
        self.parked.store(idle.len(), Ordering::Release);
    }

    /// Take an idle connection of the site, if one is still alive.
    pub fn take_idle(&self) -> Option<(ActorId, Addr<Outbound>)> {
        if self.parked.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut idle = lock(&self.idle);
        let mut found = None;
        while let Some((id, c)) = idle.pop() {
            if c.connected() {
                found = Some((id, c));
                break;
            }
        }
        self.parked.store(idle.len(), Ordering::Release);
        found
    }

    /// Forget connection `id` (it quit or was taken back).
    pub fn unpark(&self, id: ActorId) {
        if self.parked.load(Ordering::Acquire) == 0 {
            return; // the common case, on every message: no lock
        }
        let mut idle = lock(&self.idle);
        idle.retain(|(i, _)| *i != id);
        self.parked.store(idle.len(), Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One open connection's place in its site; given back on drop.
pub struct Slot(Arc<Site>);

impl Slot {
    pub fn site(&self) -> &Arc<Site> {
        &self.0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(name: &str, addr: &str) -> Hop {
        Hop {
            name: name.into(),
            preference: 10,
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn the_key_is_the_binding_and_the_exchanger_names() {
        let a = [
            hop("MX2.p.test", "127.0.0.3:25"),
            hop("mx1.p.test.", "127.0.0.2:25"),
        ];
        let b = [
            hop("mx1.p.test", "127.0.0.9:25"),
            hop("mx2.p.test", "127.0.0.8:25"),
        ];
        assert_eq!(key(None, &a), "|mx1.p.test:25,mx2.p.test:25");
        let other_port = [
            hop("mx1.p.test", "127.0.0.2:2525"),
            hop("mx2.p.test", "127.0.0.3:25"),
        ];
        assert_ne!(
            key(None, &other_port),
            key(None, &a),
            "another port, another site"
        );
        assert_eq!(key(None, &a), key(None, &b), "addresses do not matter");
        assert_ne!(key(Some("b1"), &a), key(None, &a), "bindings stay apart");
        assert_ne!(
            key(None, &a[..1]),
            key(None, &a),
            "a different set is another site"
        );
    }

    #[test]
    fn slots_count_open_connections_up_to_the_limit() {
        let sites = Sites::default();
        let s = sites.get("k", &DomainCfg::default(), 1);
        let a = s.try_open(2).unwrap();
        let _b = s.try_open(2).unwrap();
        assert!(s.try_open(2).is_none());
        assert!(
            s.try_open(3).is_some(),
            "a domain with a higher limit may open one more"
        );
        drop(a);
        assert_eq!(s.open(), 1);
        assert!(Arc::ptr_eq(&s, &sites.get("k", &DomainCfg::default(), 1)));
    }

    #[test]
    fn a_newer_generation_replaces_the_throttles_and_keeps_the_count() {
        let sites = Sites::default();
        let limited = DomainCfg {
            throttle: Some("1/h".parse().unwrap()),
            ..Default::default()
        };
        let s = sites.get("k", &limited, 1);
        let _slot = s.try_open(5).unwrap();
        let now = Instant::now();
        assert!(s.admit_message(now).is_ok());
        assert!(s.admit_message(now).is_err(), "1/h admits one");
        // The same generation does not reset it; another domain's config does not either.
        let s = sites.get("k", &DomainCfg::default(), 1);
        assert!(s.admit_message(now).is_err());
        // Generation 2 without a throttle: unlimited, and the open connection still counts.
        let s2 = sites.get("k", &DomainCfg::default(), 2);
        assert!(Arc::ptr_eq(&s, &s2));
        assert!(s2.admit_message(now).is_ok() && s2.admit_message(now).is_ok());
        assert_eq!(s2.open(), 1);
        // An older generation never goes back.
        s2.update_limits(&limited, 1);
        assert!(s2.admit_message(now).is_ok());
    }

    #[test]
    fn the_strictest_throttle_of_the_sharing_domains_applies() {
        let sites = Sites::default();
        let rate = |r: &str| DomainCfg {
            throttle: Some(r.parse().unwrap()),
            connection_throttle: Some(r.parse().unwrap()),
            ..Default::default()
        };
        // An unlimited domain opens the site; one limited to 1/h joins it.
        let s = sites.get("k", &DomainCfg::default(), 1);
        let now = Instant::now();
        assert!(s.admit_message(now).is_ok() && s.admit_message(now).is_ok());
        sites.get("k", &rate("1/h"), 1);
        assert!(s.admit_message(now).is_ok());
        assert!(
            s.admit_message(now).is_err(),
            "the stricter limit holds for the site"
        );
        assert!(s.admit_connection(now).is_ok() && s.admit_connection(now).is_err());
        // A looser one does not loosen it.
        sites.get("k", &rate("1000/s"), 1);
        assert!(s.admit_message(now).is_err());
        assert_eq!(
            stricter(
                Some("10/s".parse().unwrap()),
                Some("100/m".parse().unwrap())
            ),
            Some("100/m".parse().unwrap())
        );
        assert_eq!(stricter(None, None), None);
    }
}
