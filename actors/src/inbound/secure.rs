//! The inbound session's TLS and AUTH, on the actor's side: starting the handshake in
//! the I/O actor when the session asks for it (STARTTLS) or at once (implicit TLS), and
//! checking AUTH credentials on the pool.
//!
//! Passwords are checked against `auth.users` (argon2 PHC hashes) on the blocking pool,
//! never on an event loop; a user that does not exist is checked against a fixed hash so
//! the answer takes as long. Each client address that fails gets a growing delay before
//! its next answer ([`Failures`]: 250 ms doubling per failure up to 8 s, forgotten 15
//! minutes after the last failure), so guessing passwords is slow however many
//! connections a client opens; a success clears it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix::prelude::*;
use argon2::password_hash::PasswordVerifier;
use argon2::Argon2;
use bytes::Bytes;
use dashmap::DashMap;
use impulse_runtime::io::{ConnEvent, TlsStart};

use super::Inbound;

/// First delay after a failure; doubles with each further one.
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(8);
/// A client's failures are forgotten this long after its last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// An argon2id hash of a random password nobody knows (made once): what an unknown
/// user's password is checked against, so the answer takes as long as for a real user.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        use argon2::password_hash::PasswordHasher;
        let secret = format!("{:?}{}", Instant::now(), std::process::id());
        Argon2::default()
            .hash_password(secret.as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Failed AUTH attempts per client address.
#[derive(Default)]
pub struct Failures {
    by_ip: DashMap<IpAddr, (u32, Instant)>,
}

impl Failures {
    /// How long to wait before answering `ip`'s attempt (zero for a clean record).
    pub fn delay(&self, ip: IpAddr, now: Instant) -> Duration {
        let Some(e) = self.by_ip.get(&ip) else {
            return Duration::ZERO;
        };
        let (n, last) = *e;
        if now.duration_since(last) > FORGET_AFTER || n == 0 {
            return Duration::ZERO;
        }
        FIRST_DELAY
            .saturating_mul(1 << (n - 1).min(16))
            .min(MAX_DELAY)
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut e = self.by_ip.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) > FORGET_AFTER {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        drop(e);
        if self.by_ip.len() > 100_000 {
            self.by_ip
                .retain(|_, (_, last)| now.duration_since(*last) <= FORGET_AFTER);
        }
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.by_ip.remove(&ip);
    }
}

/// Whether `password` is `user`'s, by `hash` (none: no such user).
pub fn verify(hash: Option<&str>, password: &str) -> bool {
    let decoy: &str = decoy();
    let known = hash.is_some();
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), hash.unwrap_or(decoy))
        .is_ok();
    known && ok
}

impl Inbound {
    /// Implicit TLS: take the connection with the handshake started, before any byte
    /// is read (the client's first bytes are its ClientHello).
    pub(super) fn start_implicit_tls(&mut self, owner: Recipient<ConnEvent>) {
        let Some(config) = self.settings.tls.clone() else {
            return;
        };
        self.session.set_implicit_tls();
        let credit = self
            .shared
            .io
            .attach_tls(self.conn, owner, TlsStart::Server { config });
        self.credit = Some(credit);
        self.reg.set_state("tls handshake");
    }

    /// STARTTLS was answered: write the `220` and switch to TLS in one step.
    pub(super) fn start_tls(&mut self) {
        let Some(config) = self.settings.tls.clone() else {
            self.close();
            return;
        };
        let out = self.session.take_output();
        self.shared.io.write_then_start_tls(
            self.conn,
            Bytes::from(out),
            TlsStart::Server { config },
        );
        self.reg.set_state("tls handshake");
    }

    /// The handshake completed.
    pub(super) fn tls_ready(
        &mut self,
        info: impulse_runtime::io::TlsInfo,
        ctx: &mut Context<Self>,
    ) {
        self.tls = Some(info);
        if self.settings.implicit && !self.greeted {
            self.greeted = true;
            self.session.greeting();
        } else {
            self.session.tls_started();
        }
        self.drive(ctx);
    }

    /// Check credentials on the pool, after the client's failure delay; the session
    /// waits meanwhile.
    pub(super) fn check_auth(&mut self, user: String, password: String, ctx: &mut Context<Self>) {
        self.storing = true;
        let hash = self.shared.config().auth.users.get(&user).cloned();
        let ip = self.peer.ip();
        let delay = self.shared.auth_failures.delay(ip, Instant::now());
        let pool = self.shared.pool.clone();
        let fut = async move {
            if !delay.is_zero() {
                actix_rt::time::sleep(delay).await;
            }
            let ok = pool
                .run(move || verify(hash.as_deref(), &password))
                .await
                .unwrap_or(false);
            (user, ok)
        };
        ctx.spawn(fut.into_actor(self).map(move |(user, ok), act, ctx| {
            act.storing = false;
            if ok {
                act.shared.auth_failures.succeeded(ip);
                act.session.auth_done(Some(user));
            } else {
                act.shared.auth_failures.failed(ip, Instant::now());
                eprintln!("auth: failed login for {user:?} from {ip}");
                act.session.auth_done(None);
            }
            act.drive(ctx);
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    #[test]
    fn passwords_verify_against_phc_hashes_and_unknown_users_never() {
        let hash = Argon2::default()
            .hash_password(b"s3cret")
            .unwrap()
            .to_string();
        assert!(verify(Some(&hash), "s3cret"));
        assert!(!verify(Some(&hash), "guess"));
        assert!(!verify(None, "s3cret"));
        assert!(
            !verify(Some("$argon2id$v=19$..."), "anything"),
            "a broken hash never matches"
        );
        assert!(decoy().starts_with("$argon2id$"), "{}", decoy());
    }

    #[test]
    fn failures_grow_the_delay_and_are_forgotten() {
        let f = Failures::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let t = Instant::now();
        assert_eq!(f.delay(ip, t), Duration::ZERO);
        f.failed(ip, t);
        assert_eq!(f.delay(ip, t), Duration::from_millis(250));
        f.failed(ip, t);
        f.failed(ip, t);
        assert_eq!(f.delay(ip, t), Duration::from_secs(1));
        for _ in 0..20 {
            f.failed(ip, t);
        }
        assert_eq!(f.delay(ip, t), MAX_DELAY);
        assert_eq!(
            f.delay(ip, t + FORGET_AFTER + Duration::from_secs(1)),
            Duration::ZERO
        );
        f.succeeded(ip);
        assert_eq!(f.delay(ip, t), Duration::ZERO);
    }
}
