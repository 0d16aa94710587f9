//! Accepting a message for delivery: the one path an SMTP session (inbound) and the HTTP
//! injection API (`POST /api/inject`) share, so both answer "accepted" only after the
//! same fsync and both produce the same records.
//!
//! In order: the `X-Impulse-Binding:` header is taken out and the binding chosen; the
//! message is DKIM-signed on the pool when its From domain has a key; it is split by
//! recipient domain (one stored message per domain, each with its own id and
//! `Received:` header); the spool stores them all (fsync) and only then are they
//! counted, handed to the router and logged as Reception records.

pub mod received;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use impulse_runtime::alloc;
use impulse_runtime::ActorClass;
use impulse_smtp::domain_of;

use crate::binding;
use crate::context::Shared;
use crate::ids::{now_ms, MessageId};
use crate::logger::{self, LogRecord, LoggedResponse, RecordType};
use crate::queued::{PackedEnvelope, QueuedMessage};
use crate::router::Router;
use crate::spool::record::MessageMeta;
use crate::spool::{NewMessage, Store};
use crate::stats::Stats;

/// One message handed in for delivery.
pub struct Submission {
    /// Reverse-path; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<String>,
    /// The content, CRLF line ends, not dot-stuffed.
    pub data: Vec<u8>,
    pub peer: SocketAddr,
    /// The name the client gave (EHLO), for the `Received:` header.
    pub helo: String,
    /// Our name in the `Received:` header.
    pub hostname: String,
    /// The protocol in the `Received:` header: `ESMTP`, `ESMTPS`, `ESMTPSA`, `HTTP`.
    pub with: &'static str,
    /// The TLS the message came over (in the `Received:` header and the records).
    pub tls: Option<impulse_runtime::io::TlsInfo>,
    /// The user the client authenticated as (in the Reception records).
    pub user: Option<String>,
    /// DSN parameters (RFC 3461), their recipients aligned with `recipients`.
    pub dsn: impulse_smtp::dsn::DsnParams,
    /// The class the caller's allocations count against.
    pub class: ActorClass,
}

/// Why a submission was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Will not be accepted as it is (an unknown binding).
    Permanent(String),
    /// May be accepted later (the spool could not store it).
    Temporary(String),
}

/// Accept `sub`: the ids of the stored messages (one per recipient domain), once they are
/// on disk.
pub async fn accept(
    shared: Arc<Shared>,
    router: Arc<Router>,
    sub: Submission,
) -> Result<Vec<MessageId>, Refusal> {
    let Submission {
        sender,
        recipients,
        data,
        peer,
        helo,
        hostname,
        with,
        tls,
        user,
        dsn,
        class,
    } = sub;
    // The binding header is taken out before anything else sees the message.
    let generation = shared.generation();
    let (header, stripped) = binding::take_header(&data);
    let data = stripped.unwrap_or(data);
    let binding =
        binding::choose(&generation.config, header.as_deref()).map_err(Refusal::Permanent)?;
    let (data, signature) = match generation.dkim.for_message(&data) {
        None => (data, None),
        Some(key) => {
            let job = shared.pool.run(move || {
                let signature = key.sign(&data);
                (data, signature)
            });
            match job.await {
                Ok((data, Ok(sig))) => (data, Some(sig)),
                Ok((data, Err(e))) => {
                    // A message is not refused for its signature: it goes unsigned, and
                    // the operator hears why.
                    eprintln!("dkim: cannot sign a message from {sender}: {e}");
                    (data, None)
                }
                Err(e) => return Err(Refusal::Temporary(format!("cannot sign the message: {e}"))),
            }
        }
    };
    let (messages, queued, records) = {
        let _g = alloc::enter(class);
        split(
            &shared,
            Parts {
                sender: &sender,
                recipients: &recipients,
                data: &data,
                signature: signature.as_deref(),
                binding: binding.as_deref(),
                peer,
                helo: &helo,
                hostname: &hostname,
                with,
                tls: tls.as_ref(),
                user: user.as_deref(),
                dsn: &dsn,
            },
        )
    };
    drop(data);
    let count = messages.len() as u64;
    match shared.spool.send(Store { messages }).await {
        Ok(Ok(ids)) => {
            let _g = alloc::enter(class);
            Stats::add(&shared.stats.received, count);
            expect_reports(&shared, queued.iter().map(|(_, q)| (q.id, &q.envelope)));
            for (domain, record) in queued {
                router.enqueue(&domain, record);
            }
            actix::spawn(logger::write(shared.logger.clone(), records, false));
            Ok(ids)
        }
        Ok(Err(e)) => Err(Refusal::Temporary(format!("cannot store the message: {e}"))),
        Err(_) => Err(Refusal::Temporary("spool unavailable".into())),
    }
}

/// Tell the bouncer which parts of split receptions are due together (each an id and
/// its envelope), before any of them is attempted, so their reports are gathered into
/// one per reception. Used at reception and after spool recovery.
pub fn expect_reports<'a>(
    shared: &Shared,
    parts: impl Iterator<Item = (MessageId, &'a PackedEnvelope)>,
) {
    let Some(bouncer) = shared.bouncer.get() else {
        return;
    };
    let mut groups: BTreeMap<MessageId, Vec<MessageId>> = BTreeMap::new();
    for (id, envelope) in parts {
        if let Some(g) = envelope.group() {
            groups.entry(g).or_default().push(id);
        }
    }
    for (group, parts) in groups {
        if parts.len() > 1 {
            bouncer.do_send(crate::bounce::ExpectReports { group, parts });
        }
    }
}

struct Parts<'a> {
    sender: &'a str,
    recipients: &'a [String],
    data: &'a [u8],
    signature: Option<&'a str>,
    binding: Option<&'a str>,
    peer: SocketAddr,
    helo: &'a str,
    hostname: &'a str,
    with: &'static str,
    tls: Option<&'a impulse_runtime::io::TlsInfo>,
    user: Option<&'a str>,
    dsn: &'a impulse_smtp::dsn::DsnParams,
}

type Split = (
    Vec<NewMessage>,
    Vec<(String, QueuedMessage)>,
    Vec<LogRecord>,
);

/// One stored message per recipient domain, its queue entry and its Reception records.
fn split(shared: &Shared, p: Parts<'_>) -> Split {
    let mut by_domain: BTreeMap<String, (Vec<String>, Vec<impulse_smtp::dsn::RcptDsn>)> =
        BTreeMap::new();
    for (i, r) in p.recipients.iter().enumerate() {
        let e = by_domain.entry(domain_of(r)).or_default();
        e.0.push(r.clone());
        e.1.push(p.dsn.recipient(i));
    }
    let now = now_ms();
    let mut messages = Vec::with_capacity(by_domain.len());
    let mut queued = Vec::with_capacity(by_domain.len());
    let peer_ip = p.peer.ip().to_string();
    // The parts of a reception split over domains report together (one DSN); a
    // message from the null sender gets no report at all.
    let split = by_domain.len() > 1 && !p.sender.is_empty();
    let mut group = None;
    for (domain, (recipients, rcpt_dsn)) in by_domain {
        let domain = binding::queue_key(&domain, p.binding);
        let dsn = impulse_smtp::dsn::DsnParams {
            ret: p.dsn.ret,
            envid: p.dsn.envid.clone(),
            requiretls: p.dsn.requiretls,
            recipients: rcpt_dsn,
        }
        .encode();
        let id = shared.ids.next();
        let group = split.then(|| *group.get_or_insert(id));
        let header = received::received_header(
            p.helo,
            &peer_ip,
            p.hostname,
            p.with,
            p.tls,
            &id.to_string(),
            SystemTime::now(),
        );
        // The body belongs to the message (the spool may keep it for its delivery).
        let full = {
            let _g = alloc::enter(ActorClass::Message);
            let sig = p.signature.unwrap_or("");
            let mut full = Vec::with_capacity(header.len() + sig.len() + p.data.len());
            full.extend_from_slice(header.as_bytes());
            full.extend_from_slice(sig.as_bytes());
            full.extend_from_slice(p.data);
            full
        };
        let mut envelope = PackedEnvelope::new(p.sender, recipients.iter().map(String::as_str));
        envelope.set_dsn(&dsn);
        if let Some(g) = group {
            envelope.set_group(g);
        }
        let record = QueuedMessage {
            id,
            received_at: now,
            size: full.len() as u32,
            attempts: 0,
            retry_at: 0,
            envelope,
            reg: None,
        };
        queued.push((domain.clone(), record));
        messages.push(NewMessage {
            meta: MessageMeta {
                id,
                received_at: now,
                sender: p.sender.to_string(),
                domain,
                recipients,
                peer: p.peer.to_string(),
                dsn,
                group,
            },
            data: Bytes::from(full),
        });
    }
    let at = crate::logger::record::timestamp_now();
    let records = messages
        .iter()
        .flat_map(|m| {
            let size = m.data.len() as u64;
            let at = &at;
            m.meta.recipients.iter().map(move |r| LogRecord {
                kind: RecordType::Reception,
                id: m.meta.id.to_string(),
                timestamp: at.clone(),
                sender: m.meta.sender.clone(),
                recipient: r.clone(),
                domain: binding::split_key(&m.meta.domain).1.to_string(),
                size,
                attempts: 0,
                response: LoggedResponse::new(250, Some("2.0.0".into()), "queued"),
                peer: m.meta.peer.clone(),
                tls: p.tls.cloned(),
                user: p.user.map(str::to_string),
            })
        })
        .collect();
    (messages, queued, records)
}
