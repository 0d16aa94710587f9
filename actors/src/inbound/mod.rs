//! The inbound connection actor: one SMTP server session per client connection.
//!
//! The I/O actor delivers the client's bytes; this actor feeds them to the pure server
//! [`Session`] and writes back what it answers. When the session completes a message,
//! the actor splits it by recipient domain, prepends the `Received:` header and asks the
//! spool to store it; the session stays paused (later pipelined commands wait) until the
//! spool answers, and only then — after the fsync — does it hand the stored messages to
//! the router and send `250`. While the spool is unhealthy (disk full, I/O errors), new
//! transactions get `452 4.3.1` at MAIL FROM. While the session holds
//! a lot of unprocessed input, the actor withholds read credit so the I/O actor stops
//! reading the socket (backpressure reaches the client through TCP). A client that
//! shuts its sending side (`ReadClosed`, e.g. a pipelined transaction plus `QUIT` and
//! `shutdown(SHUT_WR)`) still gets every answer: the actor closes only once no store
//! is in progress and the input it already has is processed.

pub mod limits;
pub mod messages;
pub mod secure;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use impulse_runtime::alloc;
use impulse_runtime::io::{ConnEvent, ConnId, Credit, TlsInfo};
use impulse_runtime::registry::Registration;
use impulse_runtime::supervise::{contain, fault_point};
use impulse_runtime::ActorClass;
use impulse_smtp::server::{Event, MessageOutcome, Policy, Session};
use impulse_smtp::Envelope;

use crate::accept::{self, Refusal, Submission};
use crate::context::Shared;
use crate::listener::ListenerSettings;
use crate::router::Router;
use crate::stats::Stats;
pub use messages::*;

/// The text of `452 4.3.1` while the spool cannot take mail.
const NO_STORAGE: &str = "Insufficient system storage, try again later";

/// The text of `451 4.3.1` while memory is near its limit.
const NO_MEMORY: &str = "Memory is short, try again later";

/// Unprocessed input above which the actor stops granting read credit.
const INPUT_HIGH_WATER: usize = 1024 * 1024;

/// One SMTP client connection.
pub struct Inbound {
    shared: Arc<Shared>,
    router: Arc<Router>,
    reg: Registration,
    conn: ConnId,
    credit: Option<Credit>,
    peer: SocketAddr,
    session: Session,
    /// Bytes received but not yet credited back to the I/O actor.
    owed: usize,
    storing: bool,
    closing: bool,
    /// The client shut its sending side: close once nothing is left to answer.
    read_closed: bool,
    draining: bool,
    last_activity: Instant,
    /// The listener's settings when the session started (TLS, AUTH, name).
    settings: Arc<ListenerSettings>,
    /// The TLS the session runs over, once the handshake completed.
    tls: Option<TlsInfo>,
    /// The greeting was sent (implicit TLS sends it after the handshake).
    greeted: bool,
    /// The current data phase: when it started and the bytes it got (for its rate).
    data_phase: Option<(Instant, u64)>,
}

impl Inbound {
    pub fn new(
        shared: Arc<Shared>,
        router: Arc<Router>,
        reg: Registration,
        conn: ConnId,
        peer: SocketAddr,
        settings: Arc<ListenerSettings>,
    ) -> Inbound {
        let config = shared.config();
        let smtp = &config.smtp;
        let policy = Policy {
            hostname: settings.hostname.clone(),
            max_message_size: smtp.max_message_size,
            max_recipients: smtp.max_recipients,
            max_line_length: smtp.max_line_length,
            relay_allowed: config.relay_allowed(peer.ip()),
            starttls: settings.tls.is_some() && !settings.implicit,
            auth: settings.tls.is_some() && !config.auth.users.is_empty(),
            require_auth: settings.require_auth,
            max_errors: smtp.max_errors,
            max_messages: smtp.max_messages_per_connection,
        };
        Inbound {
            shared,
            router,
            reg,
            conn,
            credit: None,
            peer,
            session: Session::new(policy),
            owed: 0,
            storing: false,
            closing: false,
            read_closed: false,
            draining: false,
            last_activity: Instant::now(),
            settings,
            tls: None,
            greeted: false,
            data_phase: None,
        }
    }

    fn flush(&mut self) {
        let out = self.session.take_output();
        if !out.is_empty() {
            self.shared.io.write(self.conn, Bytes::from(out));
        }
    }

    fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            self.reg.set_state("closing");
            self.shared.io.close(self.conn);
        }
    }

    /// Give back read credit unless the session is sitting on too much input.
    fn settle_credit(&mut self) {
        if self.session.buffered() <= INPUT_HIGH_WATER && self.owed > 0 {
            if let Some(c) = &self.credit {
                c.consumed(self.owed);
            }
            self.owed = 0;
        }
    }

    /// Tell the session whether new transactions can be stored now.
    fn check_storage(&mut self) {
        if !self.shared.spool_health.is_healthy() {
            self.session.refuse_mail(Some(NO_STORAGE));
        } else if self.shared.memory.pressed() {
            self.session.refuse_mail_with(451, Some(NO_MEMORY));
        } else {
            self.session.refuse_mail(None);
        }
    }

    /// Act on the session's events until it has none or waits for the spool.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        while !self.storing {
            let Some(event) = self.session.poll_event() else {
                break;
            };
            match event {
                Event::Message { envelope, data } => self.store(envelope, data, ctx),
                Event::StartTls => {
                    self.log_rejections();
                    self.start_tls();
                    self.settle_credit();
                    return;
                }
                Event::Auth { user, password } => self.check_auth(user, password, ctx),
                Event::Quit | Event::Close => {
                    self.log_rejections();
                    self.flush();
                    self.close();
                    return;
                }
            }
        }
        self.log_rejections();
        self.flush();
        if self.read_closed && !self.storing {
            // No more input will come: what could be answered has been.
            self.close();
            return;
        }
        if self.draining && !self.storing && self.is_idle() {
            self.say_goodbye();
        }
        self.settle_credit();
        self.reg
            .set_state(if self.storing { "storing" } else { "reading" });
    }

    fn is_idle(&self) -> bool {
        use impulse_smtp::server::State;
        matches!(self.session.state(), State::Greeted | State::Ready)
            && self.session.buffered() == 0
    }

    fn say_goodbye(&mut self) {
        let line = format!(
            "421 4.3.2 {} shutting down\r\n",
            self.session.policy().hostname
        );
        self.shared.io.write(self.conn, Bytes::from(line));
        self.close();
    }

    /// Spool a completed message through the shared acceptance path; the session waits
    /// for the answer (after the fsync).
    fn store(&mut self, envelope: Envelope, data: Vec<u8>, ctx: &mut Context<Self>) {
        self.storing = true;
        let sub = Submission {
            sender: envelope.sender,
            recipients: envelope.recipients,
            data,
            peer: self.peer,
            helo: self.session.helo_name().unwrap_or("").to_string(),
            hostname: self.session.policy().hostname.clone(),
            // RFC 3848: S for TLS, A for an authenticated client.
            with: match (self.tls.is_some(), self.session.auth_user().is_some()) {
                (false, false) => "ESMTP",
                (true, false) => "ESMTPS",
                (false, true) => "ESMTPA",
                (true, true) => "ESMTPSA",
            },
            tls: self.tls.clone(),
            user: self.session.auth_user().map(str::to_string),
            dsn: envelope.dsn,
            class: ActorClass::Inbound,
        };
        let fut = accept::accept(self.shared.clone(), self.router.clone(), sub);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let _g = alloc::enter(ActorClass::Inbound);
            act.storing = false;
            let outcome = match res {
                Ok(ids) => {
                    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                    MessageOutcome::Accepted { id: ids.join(",") }
                }
                Err(Refusal::Permanent(why)) => MessageOutcome::Reject(why),
                Err(Refusal::Temporary(why)) => MessageOutcome::TempFail(why),
            };
            act.check_storage();
            act.session.message_done(outcome);
            act.drive(ctx);
        }));
    }
}

impl Actor for Inbound {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Inbound);
        self.reg.placed();
        Stats::add(&self.shared.stats.connections_in, 1);
        if self.settings.implicit {
            self.start_implicit_tls(ctx.address().recipient());
        } else {
            self.credit = Some(self.shared.io.attach(self.conn, ctx.address().recipient()));
            self.greeted = true;
            self.session.greeting();
            self.flush();
        }
        self.reg.set_state("reading");
        let config = self.shared.config();
        let (timeouts, rate) = (
            limits::Timeouts::of(&config.smtp),
            config.smtp.min_data_rate,
        );
        ctx.run_interval(timeouts.tick(), move |act, _ctx| {
            act.check_timeouts(&timeouts, rate)
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Stats::sub(&self.shared.stats.connections_in, 1);
        self.shared.admission.release(self.peer.ip());
    }
}

impl Handler<ConnEvent> for Inbound {
    type Result = ();

    fn handle(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        let _g = alloc::enter(ActorClass::Inbound);
        let panics = self.shared.panics.clone();
        let done = contain("inbound session", Some(&panics), || {
            fault_point("inbound");
            self.on_conn_event(ev, ctx)
        });
        if done.is_none() {
            // Retired: the client hears why and the connection closes. Messages already
            // answered 250 are spooled and routed; one in the middle was not answered,
            // so the client still owns it.
            let line = format!(
                "421 4.3.0 {} internal error, closing connection\r\n",
                self.session.policy().hostname
            );
            self.shared.io.write(self.conn, Bytes::from(line));
            self.close();
        }
    }
}

impl Inbound {
    fn on_conn_event(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        match ev {
            ConnEvent::Data { bytes, .. } => {
                self.last_activity = Instant::now();
                self.owed += bytes.len();
                if !self.closing {
                    self.check_storage();
                    let in_data = self.in_data();
                    self.session.ingest(&bytes);
                    self.note_data(in_data, bytes.len());
                    self.drive(ctx);
                } else {
                    self.settle_credit();
                }
            }
            ConnEvent::ReadClosed { .. } => {
                self.read_closed = true;
                if !self.closing {
                    self.drive(ctx);
                }
            }
            ConnEvent::Closed { .. } => ctx.stop(),
            ConnEvent::TlsReady { info, .. } => {
                self.last_activity = Instant::now();
                self.tls_ready(info, ctx);
            }
            ConnEvent::Connected { .. } | ConnEvent::ConnectFailed { .. } => {}
        }
    }
}

impl Handler<Drain> for Inbound {
    type Result = ();

    fn handle(&mut self, _: Drain, _ctx: &mut Context<Self>) {
        self.draining = true;
        if !self.storing && self.is_idle() {
            self.say_goodbye();
        }
    }
}
