//! `impulsectl message ID` and `impulsectl find`: questions about queued messages,
//! answered by the domain containers that hold them ([`crate::domain::search`]).
//!
//! A message id does not say which container holds the message, so `message` asks them
//! in turn until one knows it. `find` asks the containers of `--domain` (or all) in turn
//! for what is still missing of `--limit`; each scans in slices between its own work,
//! so a search never stops deliveries for long.

use actix::prelude::*;
use impulse_runtime::control::{MessageDetail, MessageRow, Response};

use super::reply::To;
use super::Control;
use crate::domain::search::{Describe, Filter, Find};
use crate::ids::MessageId;

/// Results `find` gives without `--limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// The most `find` gives.
pub const MAX_LIMIT: usize = 100_000;
const STATES: [&str; 3] = ["active", "delayed", "in_flight"];

impl Control {
    pub(super) fn message(&mut self, to: To, id: String, ctx: &mut Context<Self>) {
        // A message to several domains is queued as one part per domain, and its 250
        // names them all ("queued as A,B"): that list asks for the whole message.
        let ids: Option<Vec<MessageId>> = id.split(',').map(MessageId::parse).collect();
        let Some(ids) = ids.filter(|l| !l.is_empty()) else {
            let message = format!("{id:?} is not a message id");
            return self.reply(to, move || Response::Error { message }, ctx);
        };
        let domains = self.router.all();
        let fut = async move {
            let mut parts = Vec::new();
            for mid in ids {
                for d in &domains {
                    if let Ok(Some(found)) = d.send(Describe(mid)).await {
                        parts.push(found);
                        break;
                    }
                }
            }
            parts
        };
        ctx.spawn(fut.into_actor(self).map(move |parts, act, ctx| {
            let response = match merge(parts, &id) {
                Some(d) => Response::Message(Box::new(d)),
                None => Response::Error {
                    message: format!("no queued message {id} (delivered, bounced or never here)"),
                },
            };
            act.reply(to, move || response, ctx)
        }));
    }

    pub(super) fn find(
        &mut self,
        to: To,
        filter: Filter,
        domain: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(s) = filter.state.as_deref() {
            if !STATES.contains(&s) {
                let message = format!("--state {s:?}: one of {}", STATES.join(", "));
                return self.reply(to, move || Response::Error { message }, ctx);
            }
        }
        let domains = self.router.matching(domain.as_deref());
        let limit = filter.limit;
        let fut = async move {
            let mut rows: Vec<MessageRow> = Vec::new();
            let mut scanned = 0;
            for d in domains {
                let room = limit + 1 - rows.len();
                let f = Filter {
                    limit: room,
                    ..filter.clone()
                };
                if let Ok((found, n)) = d.send(Find(f)).await {
                    rows.extend(found);
                    scanned += n;
                }
                if rows.len() > limit {
                    break;
                }
            }
            (rows, scanned)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(mut rows, scanned), act, ctx| {
                    let more = rows.len() > limit;
                    rows.truncate(limit);
                    act.reply(
                        to,
                        move || Response::Found {
                            messages: rows,
                            scanned,
                            more,
                        },
                        ctx,
                    )
                }),
        );
    }
}

/// The parts still queued of one message (split by domain) as one view: its recipients
/// together, the most attempts, the busiest state and, when every part waits, the
/// earliest next attempt.
fn merge(parts: Vec<MessageDetail>, asked: &str) -> Option<MessageDetail> {
    let mut parts = parts.into_iter();
    let mut m = parts.next()?;
    let rest: Vec<MessageDetail> = parts.collect();
    if rest.is_empty() {
        return Some(m);
    }
    m.id = asked.to_string();
    let rank = |s: &str| {
        ["delayed", "active", "in_flight"]
            .iter()
            .position(|x| *x == s)
    };
    for p in rest {
        m.domain = format!("{},{}", m.domain, p.domain);
        m.size = m.size.max(p.size);
        m.attempts = m.attempts.max(p.attempts);
        if rank(&p.state) > rank(&m.state) {
            m.state = p.state.clone();
        }
        if p.next_attempt_secs.is_some()
            && (m.next_attempt_secs.is_none() || p.next_attempt_secs < m.next_attempt_secs)
        {
            m.next_attempt = p.next_attempt;
            m.next_attempt_secs = p.next_attempt_secs;
        }
        m.last_response = m.last_response.or(p.last_response);
        m.recipients.extend(p.recipients);
    }
    if m.state != "delayed" {
        // A part is due or in flight: the message's next attempt is now.
        m.next_attempt = None;
        m.next_attempt_secs = None;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use impulse_runtime::control::RecipientInfo;

    fn part(
        id: &str,
        domain: &str,
        state: &str,
        attempts: u32,
        next: Option<u64>,
    ) -> MessageDetail {
        MessageDetail {
            id: id.into(),
            domain: domain.into(),
            state: state.into(),
            attempts,
            next_attempt: next.map(|s| format!("in {s}s")),
            next_attempt_secs: next,
            recipients: vec![RecipientInfo {
                address: format!("x@{domain}"),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_parts_of_a_message_show_as_one() {
        assert_eq!(merge(vec![], "A"), None);
        let one = part("A", "one.test", "delayed", 2, Some(30));
        assert_eq!(
            merge(vec![one.clone()], "A,B"),
            Some(one.clone()),
            "one part left"
        );
        let m = merge(
            vec![
                one,
                part("B", "two.test", "active", 1, None),
                part("C", "three.test", "delayed", 3, Some(10)),
            ],
            "A,B,C",
        )
        .unwrap();
        assert_eq!(m.id, "A,B,C");
        assert_eq!(m.domain, "one.test,two.test,three.test");
        assert_eq!((m.state.as_str(), m.attempts), ("active", 3));
        assert_eq!(m.next_attempt_secs, None, "a part is due now");
        let waiting = merge(
            vec![
                part("A", "one.test", "delayed", 1, Some(30)),
                part("C", "three.test", "delayed", 1, Some(10)),
            ],
            "A,C",
        )
        .unwrap();
        assert_eq!(waiting.next_attempt_secs, Some(10));
        assert_eq!(waiting.next_attempt.as_deref(), Some("in 10s"));
        let rcpts: Vec<&str> = m.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(rcpts, ["x@one.test", "x@two.test", "x@three.test"]);
    }
}
