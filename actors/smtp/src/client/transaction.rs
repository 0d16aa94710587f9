//! One mail transaction: RSET (when the previous one may have been left open), MAIL FROM,
//! RCPT TO for each recipient, DATA, the dot-stuffed body, and the final reply — or, to a
//! server offering CHUNKING (RFC 3030), `BDAT size LAST` carrying the whole body in place
//! of DATA, which saves waiting for the 354. With PIPELINING the BDAT and its body go in
//! the command group (a body over [`PIPELINED_BDAT_MAX`] waits for the RCPT replies, so a
//! large message is not sent to nobody).
//!
//! Contract: every transaction ends in exactly one `Done` with a result per recipient.
//! Recipients refused at RCPT keep their RCPT reply; a refused MAIL gives every recipient
//! that reply; a refused DATA or end of data gives every accepted recipient that reply
//! (4xx transient, 5xx permanent). Messages larger than the server's SIZE and addresses
//! that cannot be put on a command line are refused locally, without sending. With
//! PIPELINING the whole command group is written at once (RFC 2920): when no recipient
//! was accepted the DATA reply is consumed, and a surprising 354 is answered with the bare
//! terminator only. Any negative reply before the body sets up an RSET for the next one.

use std::io::Write;

use bytes::Bytes;

use super::outcome::local;
use super::{ClientEvent, ClientSession, Expect, OutboundTx, RcptResult, TxOutcome};
use crate::reply::Reply;
use crate::stuff::{canonical_into, canonical_len, dot_stuff};

/// Largest body sent in the pipelined command group as `BDAT … LAST` before any RCPT is
/// answered; a larger one waits for the replies.
pub const PIPELINED_BDAT_MAX: usize = 256 << 10;

/// Longest address sent in a path: RFC 5321 §4.5.3.1.3 allows 256 octets with the angle
/// brackets. This also bounds every command line the client writes well below 512 bytes.
const MAX_PATH: usize = 254;

/// Where one recipient stands.
#[derive(Debug)]
pub(super) enum Rcpt {
    /// Not answered yet (or not sent yet).
    Pending,
    /// 2xx to RCPT; the DATA / end-of-data reply decides.
    Accepted,
    /// Decided.
    Final(RcptResult),
}

/// The transaction in flight.
#[derive(Debug)]
pub(super) struct Tx {
    pub(super) id: u64,
    pub(super) rcpts: Vec<(String, Rcpt)>,
    sender: String,
    eight_bit: bool,
    /// Sent with `SMTPUTF8` on MAIL.
    utf8: bool,
    /// Sent with `REQUIRETLS` on MAIL (RFC 8689).
    requiretls: bool,
    /// DSN parameters, recipients aligned with `rcpts`; sent when the server offers DSN.
    dsn: crate::dsn::DsnParams,
    body: Bytes,
    /// With pipelining, a refused MAIL: the replies to the RCPTs and DATA already sent are
    /// consumed, then every recipient gets this reply.
    mail_failure: Option<Reply>,
    /// With pipelining and CHUNKING, a body too large for the command group: its BDAT
    /// goes out once the last RCPT is answered.
    bdat_waits: bool,
}

impl Tx {
    fn accepted(&self) -> usize {
        self.rcpts
            .iter()
            .filter(|(_, s)| matches!(s, Rcpt::Accepted))
            .count()
    }

    /// The first recipient still pending after index `after` (from the start if `None`).
    fn next_pending(&self, after: Option<usize>) -> Option<usize> {
        let start = after.map_or(0, |i| i + 1);
        (start..self.rcpts.len()).find(|&i| matches!(self.rcpts[i].1, Rcpt::Pending))
    }
}

/// Can the address be written between angle brackets on a command line?
fn sendable(address: &str) -> bool {
    address.len() <= MAX_PATH && !address.bytes().any(|b| b < 0x20 || b == 0x7f)
}

impl ClientSession {
    /// Validates the message, then writes its first command(s) (the session is idle).
    pub(super) fn start_transaction(&mut self, tx: OutboundTx) {
        let OutboundTx { id, envelope, body } = tx;
        let utf8 = envelope.needs_smtputf8();
        let requiretls = envelope.dsn.requiretls;
        let sender_ok = sendable(&envelope.sender);
        let rcpts = envelope
            .recipients
            .into_iter()
            .map(|address| {
                let state = if !sender_ok {
                    Rcpt::Final(RcptResult::Permanent(local::bad_sender()))
                } else if address.is_empty() || !sendable(&address) {
                    Rcpt::Final(RcptResult::Permanent(local::bad_recipient()))
                } else {
                    Rcpt::Pending
                };
                (address, state)
            })
            .collect();
        let mut tx = Tx {
            id,
            rcpts,
            sender: envelope.sender,
            eight_bit: envelope.body_8bit,
            utf8,
            requiretls,
            dsn: envelope.dsn,
            body,
            mail_failure: None,
            bdat_waits: false,
        };
        if requiretls && !(self.tls_active && self.caps.requiretls) {
            let reply = local::requiretls();
            for (_, state) in &mut tx.rcpts {
                if matches!(state, Rcpt::Pending) {
                    *state = Rcpt::Final(RcptResult::Permanent(reply.clone()));
                }
            }
        }
        if utf8 && !self.caps.smtputf8 {
            let reply = local::no_smtputf8();
            for (_, state) in &mut tx.rcpts {
                if matches!(state, Rcpt::Pending) {
                    *state = Rcpt::Final(RcptResult::Permanent(reply.clone()));
                }
            }
        }
        if let Some(limit) = self.caps.size_limit() {
            let size = u64::try_from(tx.body.len()).unwrap_or(u64::MAX);
            if size > limit {
                let reply = local::too_big(tx.body.len(), limit);
                for (_, state) in &mut tx.rcpts {
                    if matches!(state, Rcpt::Pending) {
                        *state = Rcpt::Final(RcptResult::Permanent(reply.clone()));
                    }
                }
            }
        }
        let first = tx.next_pending(None);
        self.tx = Some(tx);
        if first.is_none() {
            self.finish(None);
            return;
        }
        if self.need_rset {
            self.out.extend_from_slice(b"RSET\r\n");
            self.expects.push_back(Expect::Rset);
            if !self.caps.pipelining {
                return;
            }
        }
        self.write_mail();
        if self.caps.pipelining {
            let mut next = first;
            while let Some(index) = next {
                self.write_rcpt(index);
                next = self.tx.as_ref().and_then(|tx| tx.next_pending(Some(index)));
            }
            self.write_data();
        }
    }

    pub(super) fn on_rset(&mut self, reply: Reply) {
        if !reply.is_positive_completion() {
            self.fail(Some(reply), "RSET was refused");
            return;
        }
        self.need_rset = false;
        if !self.caps.pipelining {
            self.write_mail();
        }
    }

    pub(super) fn on_mail(&mut self, reply: Reply) {
        let pipelined = self.caps.pipelining;
        let Some(tx) = self.tx.as_mut() else {
            self.fail(Some(reply), "reply to MAIL without a transaction");
            return;
        };
        if reply.is_positive_completion() {
            if !pipelined {
                match tx.next_pending(None) {
                    Some(index) => self.write_rcpt(index),
                    None => self.finish(None),
                }
            }
        } else {
            self.need_rset = true;
            if pipelined {
                tx.mail_failure = Some(reply);
            } else {
                self.finish(Some(RcptResult::failure(reply)));
            }
        }
    }

    pub(super) fn on_rcpt(&mut self, index: usize, reply: Reply) {
        let Some(tx) = self.tx.as_mut() else {
            self.fail(Some(reply), "reply to RCPT without a transaction");
            return;
        };
        // After a refused MAIL the RCPT replies mean nothing (typically 503).
        if tx.mail_failure.is_none() {
            if let Some((_, state)) = tx.rcpts.get_mut(index) {
                if reply.is_positive_completion() {
                    *state = Rcpt::Accepted;
                } else {
                    *state = Rcpt::Final(RcptResult::failure(reply));
                    self.need_rset = true;
                }
            }
        }
        if self.caps.pipelining {
            if tx.bdat_waits && tx.next_pending(Some(index)).is_none() {
                // The last RCPT reply of a group whose large body waited for it.
                tx.bdat_waits = false;
                if tx.mail_failure.is_none() && tx.accepted() > 0 {
                    self.write_bdat();
                } else {
                    self.need_rset = true;
                    let open = tx.mail_failure.take().map(RcptResult::failure);
                    self.finish(open);
                }
            }
            return;
        }
        match tx.next_pending(Some(index)) {
            Some(next) => self.write_rcpt(next),
            None if tx.accepted() > 0 => self.write_data(),
            None => {
                self.need_rset = true;
                self.finish(None);
            }
        }
    }

    pub(super) fn on_data(&mut self, reply: Reply) {
        let Some(tx) = self.tx.as_mut() else {
            self.fail(Some(reply), "reply to DATA without a transaction");
            return;
        };
        if reply.is_intermediate() {
            if tx.accepted() == 0 {
                // RFC 2920 §3.1: nobody to deliver to; end the empty message at once.
                self.out.extend_from_slice(b".\r\n");
            } else {
                dot_stuff(&tx.body, &mut self.out);
            }
            self.expects.push_back(Expect::Body);
        } else if reply.is_positive_completion() {
            self.fail(Some(reply), "DATA was answered with 2xx, not 354");
        } else {
            self.need_rset = true;
            let decisive = tx.mail_failure.take().unwrap_or(reply);
            self.finish(Some(RcptResult::failure(decisive)));
        }
    }

    pub(super) fn on_body(&mut self, reply: Reply) {
        self.on_final(reply, "end of data");
    }

    /// The reply to `BDAT … LAST`: the final one, as for the end of data. Sent in the
    /// pipelined group it may follow a refused MAIL or refused RCPTs (then it is a refusal
    /// too and means nothing more).
    pub(super) fn on_bdat(&mut self, reply: Reply) {
        self.on_final(reply, "BDAT");
    }

    /// The final reply for every accepted recipient (to the end of data or to BDAT).
    fn on_final(&mut self, reply: Reply, what: &str) {
        let Some(tx) = self.tx.as_mut() else {
            self.fail(
                Some(reply),
                format!("reply to {what} without a transaction"),
            );
            return;
        };
        // No recipient accepted (a refused MAIL leaves none): the reply is ignored, as
        // is the one to the terminator sent after a stray 354.
        if tx.accepted() == 0 {
            self.need_rset = true;
            let open = tx.mail_failure.take().map(RcptResult::failure);
            self.finish(open);
        } else if reply.is_positive_completion() {
            self.finish(Some(RcptResult::Delivered(reply)));
        } else if reply.is_intermediate() {
            self.fail(Some(reply), format!("{what} was answered with 3xx"));
        } else {
            self.need_rset = true;
            self.finish(Some(RcptResult::failure(reply)));
        }
    }

    /// Ends the transaction: recipients not yet decided get `open`; reports `Done`, then
    /// becomes idle.
    fn finish(&mut self, open: Option<RcptResult>) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let recipients = tx
            .rcpts
            .into_iter()
            .map(|(address, state)| {
                let result = match state {
                    Rcpt::Final(result) => result,
                    Rcpt::Pending | Rcpt::Accepted => open.clone().unwrap_or_else(|| {
                        RcptResult::Transient(local::connection_failed("no reply decided"))
                    }),
                };
                (address, result)
            })
            .collect();
        self.events.push_back(ClientEvent::Done {
            id: tx.id,
            outcome: TxOutcome {
                recipients,
                dsn_relayed: self.caps.dsn,
            },
        });
        self.become_idle();
    }

    fn write_mail(&mut self) {
        let Some(tx) = &self.tx else {
            return;
        };
        self.out.extend_from_slice(b"MAIL FROM:<");
        self.out.extend_from_slice(tx.sender.as_bytes());
        self.out.push(b'>');
        if self.caps.size.is_some() {
            // Writing to a Vec cannot fail.
            let _ = write!(self.out, " SIZE={}", tx.body.len());
        }
        if tx.eight_bit && self.caps.eight_bit_mime {
            self.out.extend_from_slice(b" BODY=8BITMIME");
        }
        if tx.utf8 {
            self.out.extend_from_slice(b" SMTPUTF8");
        }
        if tx.requiretls {
            self.out.extend_from_slice(b" REQUIRETLS");
        }
        if self.caps.dsn {
            match tx.dsn.ret {
                Some(crate::dsn::Ret::Full) => self.out.extend_from_slice(b" RET=FULL"),
                Some(crate::dsn::Ret::Hdrs) => self.out.extend_from_slice(b" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = tx
                .dsn
                .envid
                .as_deref()
                .filter(|e| crate::dsn::check_envid(e).is_ok())
            {
                let _ = write!(self.out, " ENVID={envid}");
            }
        }
        self.out.extend_from_slice(b"\r\n");
        self.expects.push_back(Expect::Mail);
    }

    fn write_rcpt(&mut self, index: usize) {
        let Some((address, _)) = self.tx.as_ref().and_then(|tx| tx.rcpts.get(index)) else {
            return;
        };
        self.out.extend_from_slice(b"RCPT TO:<");
        self.out.extend_from_slice(address.as_bytes());
        self.out.push(b'>');
        if let Some(tx) = self.tx.as_ref().filter(|_| self.caps.dsn) {
            let d = tx.dsn.recipient(index);
            if let Some(n) = d.notify {
                let _ = write!(self.out, " NOTIFY={}", n.text());
            }
            // A UTF-8 ORCPT only to a server that takes UTF-8 (RFC 6533); it is
            // optional, so it is left out rather than converted.
            let orcpt = d.orcpt.filter(|o| {
                crate::dsn::check_orcpt(o).is_ok() && (o.is_ascii() || self.caps.smtputf8)
            });
            if let Some(o) = orcpt {
                let _ = write!(self.out, " ORCPT={o}");
            }
        }
        self.out.extend_from_slice(b"\r\n");
        self.expects.push_back(Expect::Rcpt(index));
    }

    /// DATA — or, to a server offering CHUNKING, the whole body as `BDAT … LAST` (in a
    /// pipelined group only when it is small enough; see [`PIPELINED_BDAT_MAX`]).
    fn write_data(&mut self) {
        if !self.caps.chunking {
            self.out.extend_from_slice(b"DATA\r\n");
            self.expects.push_back(Expect::Data);
            return;
        }
        let pipelined = self.caps.pipelining;
        if let Some(tx) = self.tx.as_mut() {
            if pipelined && tx.body.len() > PIPELINED_BDAT_MAX {
                tx.bdat_waits = true;
                return;
            }
        }
        self.write_bdat();
    }

    fn write_bdat(&mut self) {
        let Some(tx) = &self.tx else {
            return;
        };
        let _ = write!(self.out, "BDAT {} LAST\r\n", canonical_len(&tx.body));
        canonical_into(&tx.body, &mut self.out);
        self.expects.push_back(Expect::Bdat);
    }
}
