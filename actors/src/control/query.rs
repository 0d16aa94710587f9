//! `impulsectl message ID` and `impulsectl find`: questions about queued messages,
//! answered by the domain containers that hold them ([`crate::domain::search`]).
//!
//! A message id does not say which container holds the message, so `message` asks them
//! in turn until one knows it. `find` asks the containers of `--domain` (or all) in turn
//! for what is still missing of `--limit`; each scans in slices between its own work,
//! so a search never stops deliveries for long.

use actix::prelude::*;
use impulse_runtime::control::{MessageRow, Response};

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
        let Some(mid) = MessageId::parse(&id) else {
            let message = format!("{id:?} is not a message id");
            return self.reply(to, move || Response::Error { message }, ctx);
        };
        let domains = self.router.all();
        let fut = async move {
            for d in domains {
                if let Ok(Some(found)) = d.send(Describe(mid)).await {
                    return Some(found);
                }
            }
            None
        };
        ctx.spawn(fut.into_actor(self).map(move |found, act, ctx| {
            let response = match found {
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
