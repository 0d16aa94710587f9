//! An outbound connection and its next hops: what it tells its container of each hop,
//! moving on to the next hop while nothing has worked, the plaintext retry after a
//! failed opportunistic handshake, and the exchangers after one that lacks SMTPUTF8.

use std::sync::Arc;

use actix::prelude::*;
use impulse_smtp::client::{ClientSession, RcptResult, TlsPolicy};

use super::Outbound;
use crate::dns::Hop;
use crate::domain::hops::{HopEvent, HopKind};

impl Outbound {
    /// Note what the hop did; the container hears it with the next `Ready` (sent after
    /// every transaction anyway), or at once for a refusal, after which none follows.
    pub(super) fn report(&mut self, kind: HopKind) {
        let refused = matches!(kind, HopKind::Refused(_));
        self.hop_news.push(kind);
        if refused {
            self.send_hop_news();
        }
    }

    /// For a transaction that refused recipients because this hop lacks SMTPUTF8: the
    /// hops of the exchangers after this one, if there are any.
    pub(super) fn other_exchangers(
        &self,
        outcome: &impulse_smtp::client::TxOutcome,
    ) -> Option<Arc<[Hop]>> {
        let refused = outcome.recipients.iter().any(|(_, r)| {
            matches!(r, RcptResult::Permanent(reply)
                if impulse_smtp::client::local::is_no_smtputf8(reply))
        });
        if !refused {
            return None;
        }
        let name = &self.hops[self.at].name;
        let next = (self.at + 1..self.hops.len()).find(|&i| self.hops[i].name != *name)?;
        Some(self.hops[next..].into())
    }

    /// Send what was noted of the hop on its own (no `Ready` will carry it).
    pub(super) fn send_hop_news(&mut self) {
        if let Some(ev) = self.take_hop_news() {
            self.domain.do_send(ev);
        }
    }

    pub(super) fn take_hop_news(&mut self) -> Option<HopEvent> {
        (!self.hop_news.is_empty()).then(|| HopEvent {
            addr: self.addr,
            kinds: std::mem::take(&mut self.hop_news),
        })
    }

    /// Nothing has worked on this hop: go on to the next one, if there is one (the
    /// failure just recorded is forgotten, the next hop's own counts). False when every
    /// hop has been tried.
    pub(super) fn next_hop(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.worked || self.at + 1 >= self.hops.len() || self.draining {
            return false;
        }
        if let Some((conn, _)) = self.conn.take() {
            self.shared.io.abort(conn);
        }
        self.at += 1;
        self.restart(ctx);
        true
    }

    /// A fresh session and connection to hop `self.at`.
    fn restart(&mut self, ctx: &mut Context<Self>) {
        self.failure = None;
        self.tls = None;
        self.session = ClientSession::with_tls(self.egress.ehlo_name.clone(), self.tls_policy);
        self.connect(ctx);
    }

    /// The TLS handshake with this hop failed. `Opportunistic` tries the same hop once
    /// more in plaintext (as Postfix does), since a broken TLS stack should not stop
    /// mail that may go in the clear; otherwise it is a failure of this hop.
    pub(super) fn tls_failed(&mut self, error: &str, ctx: &mut Context<Self>) -> bool {
        let text = format!("TLS handshake with {} failed: {error}", self.addr);
        if self.tls_policy == TlsPolicy::Opportunistic && !self.worked && !self.draining {
            if let Some((conn, _)) = self.conn.take() {
                self.shared.io.abort(conn);
            }
            self.tls_policy = TlsPolicy::Disabled;
            self.reg
                .set_detail(format!("{text}; trying again in plaintext"));
            self.restart(ctx);
            return true;
        }
        self.fail(451, "4.7.5", text);
        self.next_hop(ctx)
    }
}
