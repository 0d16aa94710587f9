//! The control protocol: typed requests and responses between `impulsectl` and the
//! daemon's control actor.
//!
//! Framing is one JSON object per line over the Unix control socket: the client writes
//! one [`Request`] line, the daemon answers with one [`Response`] line and closes. The
//! types are the contract; `impulsectl --json` prints the response as received.

use serde::{Deserialize, Serialize};

use crate::alloc::MemoryReport;
use crate::pool::PoolStats;
use crate::registry::ActorInfo;

/// Largest request or response line either side accepts.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// One command sent by `impulsectl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Version, uptime, counters, queue totals, rates.
    Status,
    /// The actor tree, filtered and collapsed by the daemon (so the answer stays small
    /// with a million messages queued): `depth` levels below the roots, only actors of
    /// `class` and their ancestors, large sibling groups collapsed unless `all`.
    Tree {
        #[serde(default)]
        depth: Option<usize>,
        #[serde(default)]
        class: Option<crate::ActorClass>,
        #[serde(default)]
        all: bool,
        /// Show each actor's arbiter in the text.
        #[serde(default)]
        arbiter: bool,
    },
    /// Live bytes per actor class.
    Memory,
    /// Each sync pool's threads and queue depth.
    Pools,
    /// One row per domain container.
    Queues,
    /// Graceful stop.
    Shutdown,
    /// Read the configuration file again and put it in force as a new generation.
    Reload,
    /// Make delayed messages due now: every queue, or only `domain`'s (all its
    /// bindings). The domain's back-off after a failed connection is lifted too.
    Flush {
        #[serde(default)]
        domain: Option<String>,
    },
    /// One destination domain in detail (its queue without a binding first).
    Domain { name: String },
    /// Stop deliveries to `domain` (all bindings, or one), for good or for `duration_secs`;
    /// kept across restarts. Mail is still accepted and queued.
    Suspend {
        domain: String,
        #[serde(default)]
        binding: Option<String>,
        #[serde(default)]
        duration_secs: Option<u64>,
    },
    /// One queued message in detail: sender, each recipient's state, attempts, last
    /// response, next attempt.
    Message { id: String },
    /// Search the queues: messages whose sender, recipient, queue domain and state match
    /// (each filter optional; an address filter without `@`, or starting with `@`,
    /// matches the address's domain), at most `limit` (default 100).
    Find {
        #[serde(default)]
        sender: Option<String>,
        #[serde(default)]
        recipient: Option<String>,
        #[serde(default)]
        domain: Option<String>,
        #[serde(default)]
        state: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Lift every suspension of `domain`.
    Resume { domain: String },
    /// Fail queued messages for good (AdminBounce records, and a report to each sender
    /// unless `quiet`): those of `domain`, or the one `message`, or those from `sender`
    /// (the selectors combine). With `dry_run`, only list them.
    Bounce {
        #[serde(default)]
        domain: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        sender: Option<String>,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        quiet: bool,
        #[serde(default)]
        dry_run: bool,
    },
}

/// The daemon's answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Status(StatusReport),
    Tree {
        /// The actors drawn (collapsed groups keep their first few), in drawing order.
        actors: Vec<ActorInfo>,
        /// The tree as text, as `impulsectl tree` prints it.
        #[serde(default)]
        text: String,
        /// Every live actor, drawn or not.
        #[serde(default)]
        total: usize,
    },
    Memory(MemoryReport),
    Pools {
        pools: Vec<PoolStats>,
        /// The actor arbiters (event-loop threads).
        #[serde(default)]
        arbiters: Vec<ArbiterStats>,
    },
    Queues {
        domains: Vec<QueueRow>,
    },
    Domain(Box<DomainDetail>),
    Message(Box<MessageDetail>),
    Found {
        messages: Vec<MessageRow>,
        /// Messages looked at.
        scanned: u64,
        /// More matched than `limit`.
        more: bool,
    },
    /// The command was carried out.
    Ok {
        message: String,
    },
    /// The command was refused or failed.
    Error {
        message: String,
    },
}

/// One actor arbiter, as `impulsectl pools` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArbiterStats {
    pub index: u8,
    /// Registered actors running on it.
    pub actors: usize,
    /// The mailbox lengths its actors report, summed (work waiting on it).
    #[serde(default)]
    pub queued: usize,
    /// How late its lag probe last woke, and the worst since the last `pools`, in µs:
    /// how long an event waits on this thread before it is handled.
    #[serde(default)]
    pub lag_us: u64,
    #[serde(default)]
    pub worst_lag_us: u64,
    /// Event-loop turns completed since start (a turn runs every event ready when the
    /// thread wakes, then it parks).
    #[serde(default)]
    pub turns: u64,
    /// Mean wall time of a turn, in µs.
    #[serde(default)]
    pub mean_turn_us: f64,
    /// Share of the last second the thread spent running (not parked), in percent.
    #[serde(default)]
    pub busy_pct: f64,
    /// Whether new actors are placed on it (after a reload that lowered the count, the
    /// arbiters past it only finish the actors they have).
    pub placing: bool,
}

/// Answer to [`Request::Status`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub uptime_secs: u64,
    pub config_generation: u64,
    pub connections_in: u64,
    pub connections_out: u64,
    pub received: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub expired: u64,
    pub queued_active: u64,
    pub queued_delayed: u64,
    pub in_flight: u64,
    pub messages_live: u64,
    pub domains: u64,
    /// Handler panics caught and contained (actor restarted or retired).
    pub panics: u64,
    /// Whether the spool takes writes (while false, MAIL FROM gets `452 4.3.1`).
    pub spool_healthy: bool,
    /// Why the spool is unhealthy ("" while healthy).
    pub spool_error: String,
    /// Damaged spool records moved to quarantine at the last start.
    pub spool_quarantined: u64,
    /// Message actors alive now (the other queued messages are compact records).
    pub messages_working: u64,
    /// Messages received per second over the last sampling window.
    pub received_per_sec: f64,
    /// Messages delivered per second over the last sampling window.
    pub delivered_per_sec: f64,
    /// Messages received per second over the last minute.
    #[serde(default)]
    pub received_per_sec_1m: f64,
    /// Messages delivered per second over the last minute.
    #[serde(default)]
    pub delivered_per_sec_1m: f64,
}

/// Answer to [`Request::Domain`]: limits in force, next hops, connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainDetail {
    pub domain: String,
    /// The binding of this queue; `other_queues` names the domain's other bindings.
    pub binding: Option<String>,
    pub other_queues: Vec<String>,
    /// As in `queues`: `idle`, `active`, `delivering`, `backoff`, `resolving`, …
    pub state: String,
    pub active: usize,
    pub delayed: usize,
    pub in_flight: usize,
    pub connections: usize,
    pub max_connections: usize,
    pub max_messages_per_connection: usize,
    pub throttle: Option<String>,
    pub connection_throttle: Option<String>,
    pub tls: String,
    pub retry_interval: String,
    pub max_retry_interval: String,
    pub message_expiration: String,
    /// After this, one delay report for `NOTIFY=DELAY` ("0s": never).
    #[serde(default)]
    pub delay_warning: String,
    /// `route` (static), `mx` (resolved; `next_hops` until it expires) or `unresolved`.
    pub next_hops_from: String,
    pub next_hops: Vec<NextHopInfo>,
    /// The site these hops belong to, and its open connections (all its domains).
    pub site: Option<String>,
    pub site_connections: usize,
    pub next_retry_secs: Option<u64>,
    /// Why the next hop is being avoided now (after a failed connection), if it is.
    pub backoff_reason: Option<String>,
    /// Each connection: its registry id, peer and state.
    pub connection_states: Vec<ConnectionInfo>,
}

/// Answer to [`Request::Message`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDetail {
    pub id: String,
    /// The destination domain (its queue).
    pub domain: String,
    pub binding: Option<String>,
    pub sender: String,
    pub size: u64,
    /// RFC 3339 UTC.
    pub received_at: String,
    /// `active` (due), `delayed` (waiting for its retry), `in_flight` (being delivered).
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// RFC 3339 UTC time of the next attempt (none while due or in flight).
    pub next_attempt: Option<String>,
    /// Seconds until then.
    pub next_attempt_secs: Option<u64>,
    /// The last temporary response, as one line (`451 4.3.0 …`).
    pub last_response: Option<String>,
    pub recipients: Vec<RecipientInfo>,
    /// DSN `RET` (`FULL`, `HDRS`) and `ENVID` the client gave (RFC 3461).
    #[serde(default)]
    pub ret: Option<String>,
    #[serde(default)]
    pub envid: Option<String>,
}

/// One recipient of a queued message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecipientInfo {
    pub address: String,
    /// `pending`, `delivered`, `failed` (or `final`: done before the last restart).
    pub state: String,
    pub attempts: u32,
    /// For a pending recipient, the message's last temporary response.
    pub last_response: Option<String>,
    /// DSN `NOTIFY` (`NEVER`, or SUCCESS/FAILURE/DELAY) and `ORCPT` the client gave.
    #[serde(default)]
    pub notify: Option<String>,
    #[serde(default)]
    pub orcpt: Option<String>,
}

/// One message found by [`Request::Find`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: String,
    pub domain: String,
    pub binding: Option<String>,
    pub sender: String,
    /// The recipients still pending.
    pub recipients: Vec<String>,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_secs: Option<u64>,
    pub size: u64,
}

/// One next hop of a domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NextHopInfo {
    pub name: String,
    pub preference: u16,
    pub address: String,
    /// Connections made to it, and how long the last one took to establish.
    #[serde(default)]
    pub connects: u64,
    #[serde(default)]
    pub last_connect_ms: Option<u32>,
    /// Connections refused or failed (connect, greeting, EHLO) in the last minute.
    #[serde(default)]
    pub refused_last_minute: u64,
    /// Transactions it answered, and how long the last one took.
    #[serde(default)]
    pub transactions: u64,
    #[serde(default)]
    pub last_transaction_ms: Option<u32>,
    /// Transactions with every recipient refused, in the last minute.
    #[serde(default)]
    pub failed_last_minute: u64,
    /// The last refusal or failure it gave.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// One outbound connection of a domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub id: u64,
    pub peer: String,
    pub state: String,
}

/// One domain container, as `impulsectl queues` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    pub domain: String,
    pub active: usize,
    pub delayed: usize,
    pub in_flight: usize,
    pub connections: usize,
    pub max_connections: usize,
    /// `idle`, `active`, `delivering`, `backoff`, `suspended`, `no-route`.
    pub state: String,
    /// Seconds until the earliest delayed message is due, if any.
    pub next_retry_secs: Option<u64>,
    /// Messages that reached a final outcome (delivered, bounced or expired).
    pub finished: u64,
    /// Attempts that ended in a retry.
    pub deferred: u64,
    /// The binding this queue sends from (none: the system's own address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// About how many messages finished (delivered, bounced, expired) in the last minute.
    #[serde(default)]
    pub finished_last_minute: u64,
    /// About how many deferrals in the last minute.
    #[serde(default)]
    pub deferred_last_minute: u64,
    /// The last failure the next hop or the DNS gave.
    #[serde(default)]
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_command() {
        let line = serde_json::to_string(&Request::Queues).unwrap();
        assert_eq!(line, r#"{"command":"queues"}"#);
        let back: Request = serde_json::from_str(&line).unwrap();
        assert_eq!(back, Request::Queues);
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::Queues {
            domains: vec![QueueRow {
                domain: "example.com".into(),
                active: 3,
                ..Default::default()
            }],
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.starts_with(r#"{"type":"queues""#), "{line}");
        match serde_json::from_str::<Response>(&line).unwrap() {
            Response::Queues { domains } => assert_eq!(domains[0].active, 3),
            other => panic!("unexpected {other:?}"),
        }
    }
}
