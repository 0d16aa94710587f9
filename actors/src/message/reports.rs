//! The reports a settlement owes the sender: failures (and, when the next hop sends
//! none, `NOTIFY=SUCCESS` successes) in one report stored before the recipients are
//! marked final; and the one delay report of a message that outlived `delay_warning`.

use actix::prelude::*;
use impulse_config::DomainCfg;

use super::settle::Settlement;
use crate::bounce::{Action, Bounce, Bouncer, ReportedRecipient};
use crate::logger::record::{LogRecord, RecordType};
use crate::logger::LoggedResponse;
use crate::queued::QueuedMessage;
use crate::spool::SpoolError;

/// The report due for the failures among `records` (Bounce, Expiration, AdminBounce)
/// and, with `successes` (the next hop does not offer DSN), for the deliveries whose
/// recipient asked for one with `NOTIFY=SUCCESS`, if any: none for a message from the
/// null sender.
pub(super) fn bounce_for(
    msg: &QueuedMessage,
    records: &[LogRecord],
    expired_last: &[(String, LoggedResponse)],
    successes: bool,
) -> Option<Bounce> {
    let sender = msg.envelope.sender();
    if sender.is_empty() {
        return None;
    }
    let dsn = impulse_smtp::dsn::DsnParams::decode(msg.envelope.dsn().unwrap_or(""));
    let index = |address: &str| msg.envelope.recipients().position(|r| r == address);
    let recipients: Vec<ReportedRecipient> = records
        .iter()
        .filter_map(|r| {
            let notify = index(&r.recipient).and_then(|i| dsn.recipient(i).notify);
            match r.kind {
                // NOTIFY=NEVER, or a NOTIFY without FAILURE: no report for this one.
                RecordType::Bounce | RecordType::Expiration | RecordType::AdminBounce => {
                    impulse_smtp::dsn::Notify::wants_failure(notify).then_some((r, Action::Failed))
                }
                RecordType::Delivery => {
                    (successes && notify.is_some_and(|n| n.success)).then_some((r, Action::Relayed))
                }
                _ => None,
            }
        })
        .map(|(r, action)| {
            let expired = r.kind == RecordType::Expiration;
            // An expired recipient is reported with the last temporary answer it got.
            let last = expired
                .then(|| expired_last.iter().find(|(a, _)| *a == r.recipient))
                .flatten()
                .map(|(_, resp)| resp);
            let response = last.unwrap_or(&r.response);
            let text = match response.enhanced.as_deref() {
                Some(e) => format!("{} {e} {}", response.code, response.text),
                None => format!("{} {}", response.code, response.text),
            };
            ReportedRecipient {
                action,
                address: r.recipient.clone(),
                status: match (expired, last) {
                    (true, None) => "4.4.7".into(),
                    _ => response.enhanced.clone().unwrap_or_default(),
                },
                remote_mta: (!r.peer.is_empty()).then(|| r.peer.clone()),
                diagnostic: text,
                from_smtp: !r.peer.is_empty(),
                expired,
                orcpt: index(&r.recipient).and_then(|i| dsn.recipient(i).orcpt),
            }
        })
        .collect();
    let full = dsn.ret == Some(impulse_smtp::dsn::Ret::Full);
    report(msg, &dsn, recipients, full, None)
}

/// Have the bouncer store the report; tried again every second until it is durable (a
/// full disk), so a failure is never marked final without its report. `Err` only when
/// the bouncer is gone (shutting down): the recipients then stay pending.
pub(super) async fn send_bounce(
    bounce: Option<(Bounce, Option<Addr<Bouncer>>)>,
) -> Result<(), SpoolError> {
    let Some((b, Some(bouncer))) = bounce else {
        return Ok(());
    };
    loop {
        match bouncer.send(b.clone()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => eprintln!("bounce of {}: {e}; trying again", b.original),
            Err(_) => return Err(SpoolError::Unavailable),
        }
        actix_rt::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The delay report for the recipients of `s.delay_report` (their TransientFailure
/// records give status and diagnostic), if the message has a sender.
pub(super) fn delay_report_for(
    msg: &QueuedMessage,
    s: &Settlement,
    cfg: &DomainCfg,
) -> Option<Bounce> {
    let sender = msg.envelope.sender();
    if sender.is_empty() {
        return None;
    }
    let dsn = impulse_smtp::dsn::DsnParams::decode(msg.envelope.dsn().unwrap_or(""));
    let rcpts: Vec<&str> = msg.envelope.recipients().collect();
    let recipients: Vec<ReportedRecipient> = s
        .delay_report
        .iter()
        .filter_map(|&i| {
            let address = *rcpts.get(i)?;
            let r = s
                .records
                .iter()
                .find(|r| r.kind == RecordType::TransientFailure && r.recipient == address)?;
            Some(ReportedRecipient {
                action: Action::Delayed,
                address: address.to_string(),
                status: r.response.enhanced.clone().unwrap_or_default(),
                remote_mta: (!r.peer.is_empty()).then(|| r.peer.clone()),
                diagnostic: r.response.line(),
                from_smtp: !r.peer.is_empty(),
                expired: false,
                orcpt: dsn.recipient(i).orcpt,
            })
        })
        .collect();
    let until = msg.received_at + cfg.message_expiration.get().as_millis() as u64;
    report(msg, &dsn, recipients, false, Some(until))
}

/// The report to `msg`'s sender about `recipients`, if there are any.
fn report(
    msg: &QueuedMessage,
    dsn: &impulse_smtp::dsn::DsnParams,
    recipients: Vec<ReportedRecipient>,
    full: bool,
    retry_until: Option<u64>,
) -> Option<Bounce> {
    (!recipients.is_empty()).then(|| Bounce {
        original: msg.id,
        sender: msg.envelope.sender().to_string(),
        received_at: msg.received_at,
        recipients,
        envid: dsn.envid.clone(),
        full,
        // Gathered with the reports of the reception's other parts (see bounce::groups).
        group: msg.envelope.group(),
        retry_until,
    })
}
