//! Reading the daemon's message log (INTERFACE.md, "Message log"): one JSON record a
//! line, each with a `type` (`Reception`, `Delivery`, `TransientFailure`, `Bounce`, …), the
//! queue `id`, the `recipient` and the next hop's `response`. These helpers pick records
//! out of what [`super::Daemon::log_records`] and [`super::Daemon::wait_for_log`] return.

use std::collections::HashSet;

use serde_json::Value;

/// Records of type `kind` (optionally only for `recipient`), in log order.
pub fn of_type<'a>(records: &'a [Value], kind: &str, recipient: Option<&str>) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["type"] == kind && recipient.is_none_or(|rc| r["recipient"] == rc))
        .collect()
}

/// Whether there is a record of type `kind` for `recipient`.
pub fn has(records: &[Value], kind: &str, recipient: &str) -> bool {
    !of_type(records, kind, Some(recipient)).is_empty()
}

/// How many records of type `kind` there are.
pub fn count(records: &[Value], kind: &str) -> usize {
    of_type(records, kind, None).len()
}

/// The queue ids of the records of type `kind`.
pub fn ids_of(records: &[Value], kind: &str) -> HashSet<String> {
    of_type(records, kind, None)
        .into_iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

/// The next hop's reply code in a record (0 if absent).
pub fn code(r: &Value) -> u64 {
    r["response"]["code"].as_u64().unwrap_or(0)
}

/// The next hop's enhanced status code in a record ("" if absent).
pub fn enhanced(r: &Value) -> &str {
    r["response"]["enhanced"].as_str().unwrap_or("")
}

/// The next hop's reply text in a record ("" if absent).
pub fn text(r: &Value) -> &str {
    r["response"]["text"].as_str().unwrap_or("")
}
