//! Reload: the configuration file read again and put in force as a new generation
//! (`impulsectl reload`, SIGHUP).
//!
//! The file, its DKIM keys and its `delivery.tls_ca` are loaded on the pool; any error
//! refuses the reload with every FILE:LINE:COL message, and the running generation stays.
//! Otherwise, in order: new listening sockets are bound (a bind failure refuses the
//! reload and closes those just bound); listeners kept take the new settings (greeting
//! name, certificate, AUTH) for their new sessions; the generation is installed, so every session,
//! connection and message that starts from now reads it; listeners gone from the file
//! stop accepting and let their sessions finish; the blocking pool and the arbiters take
//! their new sizes; every domain container reads its limits, route and binding again.
//! Work under way finishes under the generation it started with. Keys the running
//! process cannot change (`data_dir`, `spool`, `dns`, `delivery.port`) are named in the
//! answer as waiting for a restart. [`plan`] is the pure part: what changes.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use impulse_config::{Config, ListenerCfg};
use impulse_runtime::io::ListenerId;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;

use super::Root;
use crate::arbiters;
use crate::context::{Generation, Shared};
use crate::control::Control;
use crate::dkim::DkimKeys;
use crate::domain::Reconfigure;
use crate::http::Http;
use crate::listener::{self, Bound, Configure, Listener, ListenerSettings};
use crate::outbound::tls::TlsClients;
use crate::router::Router;

/// Read the configuration file again and put it in force: `Ok` says what changed,
/// `Err` why nothing did.
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
pub struct Reload;

/// What a new configuration changes in the running process.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Listeners to start.
    pub add: Vec<ListenerCfg>,
    /// Listeners to stop, by configured address.
    pub remove: Vec<SocketAddr>,
    /// Listeners kept (they take the new settings: name, certificate, AUTH).
    pub keep: Vec<SocketAddr>,
    /// The HTTP endpoint moves (or starts, or stops): the new address, if any.
    pub http: Option<Option<SocketAddr>>,
    /// Keys that changed but only take effect at a restart.
    pub restart_only: Vec<&'static str>,
}

/// Compare the running `old` configuration with `new`.
pub fn plan(old: &Config, new: &Config) -> Plan {
    let mut p = Plan::default();
    for l in &new.listeners {
        match old.listeners.iter().find(|o| o.address == l.address) {
            None => p.add.push(l.clone()),
            Some(_) => p.keep.push(l.address),
        }
    }
    for o in &old.listeners {
        if !new.listeners.iter().any(|l| l.address == o.address) {
            p.remove.push(o.address);
        }
    }
    let (was, is) = (
        old.http.as_ref().map(|h| h.address),
        new.http.as_ref().map(|h| h.address),
    );
    if was != is {
        p.http = Some(is);
    }
    for (changed, key) in [
        (old.data_dir != new.data_dir, "data_dir"),
        (old.spool != new.spool, "spool"),
        (old.dns != new.dns, "dns"),
        (old.delivery.port != new.delivery.port, "delivery.port"),
    ] {
        if changed {
            p.restart_only.push(key);
        }
    }
    p
}

/// Start an SMTP listener for `l` (its actor and its socket).
pub(super) fn start_listener(
    shared: &Arc<Shared>,
    router: &Arc<Router>,
    l: &ListenerCfg,
    settings: ListenerSettings,
) -> Result<(Addr<Listener>, SocketAddr), String> {
    let reg = Registration::new(
        &shared.registry,
        ActorClass::Listener,
        l.address.to_string(),
        Some(shared.root_id),
    );
    let listener = Listener::new(shared.clone(), router.clone(), reg, settings);
    let actor = Supervisor::start(move |_| listener);
    match shared.io.listen_tcp(l.address, actor.clone().recipient()) {
        Ok((id, local)) => {
            actor.do_send(Bound { id, local });
            Ok((actor, local))
        }
        Err(e) => Err(format!("cannot listen on {}: {e}", l.address)),
    }
}

/// Start the HTTP endpoint on `address`.
pub(super) fn start_http(
    shared: &Arc<Shared>,
    router: &Arc<Router>,
    control: &Addr<Control>,
    address: SocketAddr,
) -> Result<(Addr<Http>, ListenerId, SocketAddr), String> {
    let endpoint = Http::new(
        shared.clone(),
        router.clone(),
        control.clone(),
        Registration::new(
            &shared.registry,
            ActorClass::Http,
            "http",
            Some(shared.root_id),
        ),
    );
    let actor = Supervisor::start(move |_| endpoint);
    match shared.io.listen_tcp(address, actor.clone().recipient()) {
        Ok((id, local)) => Ok((actor, id, local)),
        Err(e) => Err(format!("cannot listen on {address} (http): {e}")),
    }
}

type Loaded = (Config, DkimKeys, TlsClients, Vec<ListenerSettings>, u64);

fn load(path: &std::path::Path) -> Result<Loaded, String> {
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    let dkim = DkimKeys::load(&cfg.dkim)?;
    let tls = TlsClients::load(cfg.delivery.tls_ca.as_deref())?;
    let listeners = ListenerSettings::load_all(&cfg)?;
    let memory_limit = crate::memory::limit_for(&cfg);
    Ok((cfg, dkim, tls, listeners, memory_limit))
}

impl Handler<Reload> for Root {
    type Result = ResponseActFuture<Self, Result<String, String>>;

    fn handle(&mut self, _: Reload, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(path) = self.config_path.clone() else {
            let why = "running on the embedded default: there is no file to read again";
            return Box::pin(fut::ready(Err(why.to_string())));
        };
        let job = self.shared.pool.run(move || load(&path));
        Box::pin(job.into_actor(self).map(|res, act, _| {
            if act.shutting_down {
                return Err("shutting down".to_string());
            }
            match res {
                Ok(Ok(loaded)) => act.apply(loaded),
                Ok(Err(why)) => Err(why),
                Err(e) => Err(format!("cannot read the configuration: {e}")),
            }
        }))
    }
}

impl Root {
    /// Put a loaded configuration in force (see the module documentation).
    fn apply(
        &mut self,
        (cfg, dkim, tls, settings, memory_limit): Loaded,
    ) -> Result<String, String> {
        let old = self.shared.generation();
        let p = plan(&old.config, &cfg);
        let number = old.number + 1;

        // Sockets first: a reload that cannot bind changes nothing.
        let mut started = Vec::new();
        let mut new_http = None;
        let mut failure = None;
        let shared = self.shared.clone();
        let provisional = Arc::new(cfg.clone());
        let settings_of = |address: SocketAddr| {
            cfg.listeners
                .iter()
                .position(|l| l.address == address)
                .and_then(|i| settings.get(i).cloned())
        };
        for l in &p.add {
            let Some(s) = settings_of(l.address) else {
                continue;
            };
            match start_listener(&shared, &self.router, l, s) {
                Ok((actor, local)) => {
                    started.push((l.address, actor, local));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none() {
            if let (Some(Some(addr)), Some(control)) = (p.http, &self.control) {
                match start_http(&shared, &self.router, control, addr) {
                    Ok(h) => new_http = Some((addr, h)),
                    Err(e) => failure = Some(e),
                }
            }
        }
        if let Some(why) = failure {
            for (_, actor, _) in started {
                actor.do_send(listener::Drain);
            }
            return Err(format!("{why}; the running configuration stays"));
        }

        shared.install(Generation {
            number,
            config: provisional,
            dkim: Arc::new(dkim),
            tls_clients: Arc::new(tls),
        });
        let mut said = vec![format!("configuration generation {number} in force")];
        for (address, actor, local) in started {
            eprintln!("listening on {local}");
            said.push(format!("listening on {local}"));
            self.listeners.push((address, actor));
        }
        for gone in &p.remove {
            self.listeners.retain(|(a, actor)| {
                if a == gone {
                    actor.do_send(listener::Drain);
                }
                a != gone
            });
            said.push(format!("stopped listening on {gone}"));
        }
        for address in &p.keep {
            let Some(s) = settings_of(*address) else {
                continue;
            };
            for (a, actor) in &self.listeners {
                if a == address {
                    actor.do_send(Configure(s.clone()));
                }
            }
        }
        if let Some(to) = p.http {
            if let Some((_, _, id)) = self.http.take() {
                shared.io.close_listener(id);
            }
            match (to, new_http) {
                (Some(_), Some((addr, (actor, id, local)))) => {
                    eprintln!("http listening on {local}");
                    said.push(format!("http listening on {local}"));
                    self.http = Some((addr, actor, id));
                }
                _ => said.push("http stopped".into()),
            }
        }
        shared.memory.set(memory_limit);
        let pools = &shared.config().pools;
        shared.pool.resize(pools.blocking);
        let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
        shared
            .arbiters
            .resize(arbiters::count(pools.arbiters, cores));
        let domains = self.router.all();
        for d in &domains {
            d.do_send(Reconfigure);
        }
        said.push(format!("{} domain containers reconfigured", domains.len()));
        if !p.restart_only.is_empty() {
            said.push(format!(
                "changed but waiting for a restart: {}",
                p.restart_only.join(", ")
            ));
        }
        self.reg.set_detail(format!("generation {number}"));
        Ok(said.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::from_ron(text, "t.ron").unwrap()
    }

    #[test]
    fn what_a_reload_changes() {
        let old = cfg(
            r#"(listeners: [(address: "127.0.0.1:2525"), (address: "127.0.0.1:2526")],
                         http: (address: "127.0.0.1:8025"))"#,
        );
        let same = plan(&old, &old.clone());
        assert_eq!(same.add.len() + same.remove.len(), 0);
        assert_eq!(same.keep.len(), 2);
        assert_eq!((same.http, same.restart_only.len()), (None, 0));

        let new = cfg(
            r#"(listeners: [(address: "127.0.0.1:2526", hostname: "mx2.test"),
                                      (address: "127.0.0.1:2527")],
                         dns: (servers: ["127.0.0.1:53"]),
                         domains: { "*": (max_connections: 5) })"#,
        );
        let p = plan(&old, &new);
        assert_eq!(
            p.add
                .iter()
                .map(|l| l.address.to_string())
                .collect::<Vec<_>>(),
            ["127.0.0.1:2527"]
        );
        assert_eq!(p.remove, ["127.0.0.1:2525".parse::<SocketAddr>().unwrap()]);
        assert_eq!(p.keep, ["127.0.0.1:2526".parse::<SocketAddr>().unwrap()]);
        assert_eq!(p.http, Some(None), "http stops");
        assert_eq!(p.restart_only, ["dns"]);

        let moved = cfg(
            r#"(listeners: [(address: "127.0.0.1:2525"), (address: "127.0.0.1:2526")],
                           http: (address: "127.0.0.1:8026"), data_dir: "elsewhere")"#,
        );
        let p = plan(&old, &moved);
        assert_eq!(p.http, Some(Some("127.0.0.1:8026".parse().unwrap())));
        assert_eq!(p.restart_only, ["data_dir"]);
    }
}
