//! Messages the logger answers.

use actix::Message;

use super::record::LogRecord;

/// Write records; with `durable`, answer only once they are fsynced. A handler that
/// panicked (contained) hands the records back, unwritten: see [`write`].
#[derive(Message)]
#[rtype(result = "Result<(), Vec<LogRecord>>")]
pub struct Log {
    pub records: Vec<LogRecord>,
    pub durable: bool,
}
