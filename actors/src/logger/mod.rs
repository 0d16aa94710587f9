//! The logger actor: writes the per-message log records (JSON lines) to
//! `{data_dir}/logs/impulse.log`.
//!
//! Records are buffered and written by pool jobs, one at a time ([`Batcher`]): whatever
//! accumulated while a write was in flight goes out in the next one (group commit). A
//! record sent with `durable: true` (a final outcome: the message is about to leave the
//! spool, or a recipient to be marked final) is answered only after the write that
//! carried it was fsynced. A write that fails is cut off again, kept, and retried after
//! a second: nobody waiting for durability is answered before it really is, so a
//! message never leaves the spool without its record.

pub mod messages;
pub mod record;

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use impulse_runtime::alloc;
use impulse_runtime::pool::Pool;
use impulse_runtime::registry::Registration;
use impulse_runtime::supervise::{contain, fault_point, PanicCount};
use impulse_runtime::ActorClass;
use tokio::sync::oneshot;

pub use messages::*;
pub use record::{LogRecord, LoggedResponse, RecordType};

use crate::batch::{Batcher, Pending};
use crate::spool;

/// How long a failed write waits before it is tried again.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// Log `records` (durably if asked), trying again every second while the logger hands
/// them back. `false` only when the logger is gone (the daemon is stopping): then the
/// records were not written, and nothing that depends on them may happen.
pub async fn write(logger: Addr<Logger>, mut records: Vec<LogRecord>, durable: bool) -> bool {
    loop {
        match logger.send(Log { records, durable }).await {
            Ok(Ok(())) => return true,
            Err(_) => return false,
            Ok(Err(back)) => records = back,
        }
        actix_rt::time::sleep(RETRY_BACKOFF).await;
    }
}

/// Log lines waiting for a write, and who waits for them to be durable.
#[derive(Default)]
struct LogBatch {
    bytes: Vec<u8>,
    waiters: Vec<oneshot::Sender<()>>,
}

impl Pending for LogBatch {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.waiters.is_empty()
    }
    fn append(&mut self, later: Self) {
        self.bytes.extend_from_slice(&later.bytes);
        self.waiters.extend(later.waiters);
    }
}

/// The message log writer.
pub struct Logger {
    file: Arc<File>,
    /// Length of the file as far as whole writes go.
    len: u64,
    pool: Pool,
    reg: Registration,
    batch: Batcher<LogBatch>,
    panics: Arc<PanicCount>,
}

impl Logger {
    /// Open (create) `dir/impulse.log` for appending. Called once at start-up.
    pub fn open(
        dir: &Path,
        pool: Pool,
        reg: Registration,
        panics: Arc<PanicCount>,
    ) -> std::io::Result<Logger> {
        std::fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("impulse.log"))?;
        let len = file.metadata()?.len();
        Ok(Logger {
            file: Arc::new(file),
            len,
            pool,
            reg,
            batch: Batcher::with_linger(spool::MARK_LINGER),
            panics,
        })
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some(wait) = self.batch.arm_retry(now) {
            ctx.run_later(wait, |act, ctx| {
                act.batch.retry_due();
                act.kick(ctx);
            });
        }
        let Some(batch) = self.batch.start(now) else {
            return;
        };
        self.reg.set_state("writing");
        let sync = !batch.waiters.is_empty();
        let file = self.file.clone();
        let len = self.len;
        let bytes = Arc::new(batch.bytes);
        let shared = bytes.clone();
        let job = self
            .pool
            .run(move || spool::files::append_at(&file, len, &shared, sync));
        let waiters = batch.waiters;
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            let _g = alloc::enter(ActorClass::Logger);
            let bytes = Arc::try_unwrap(bytes).unwrap_or_else(|b| (*b).clone());
            match res {
                Ok(Ok(())) => {
                    act.len += bytes.len() as u64;
                    for w in waiters {
                        let _ = w.send(());
                    }
                    act.batch.done();
                    act.reg.set_state("idle");
                }
                Ok(Err(e)) => {
                    eprintln!("logger: write failed: {e}; will retry");
                    act.reg.set_state("failing");
                    let again = LogBatch { bytes, waiters };
                    act.batch.fail(again, Instant::now(), RETRY_BACKOFF);
                }
                Err(e) => {
                    // The job panicked: nothing is known to be written. Keep it all.
                    eprintln!("logger: write job failed: {e}; will retry");
                    let again = LogBatch { bytes, waiters };
                    act.batch.fail(again, Instant::now(), RETRY_BACKOFF);
                }
            }
            act.kick(ctx);
        }));
    }
}

impl Actor for Logger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        self.reg.set_state("idle");
    }
}

impl Handler<Log> for Logger {
    type Result = ResponseFuture<Result<(), Vec<LogRecord>>>;

    fn handle(&mut self, msg: Log, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Logger);
        let pending = self.batch.pending();
        let before = pending.bytes.len();
        let added = contain("logger", Some(&self.panics), || {
            fault_point("logger");
            for r in &msg.records {
                pending.bytes.extend_from_slice(&r.to_line());
            }
        });
        if added.is_none() {
            // Contained: nothing of this call stays buffered; the caller tries again.
            pending.bytes.truncate(before);
            return Box::pin(std::future::ready(Err(msg.records)));
        }
        let rx = if msg.durable {
            let (tx, rx) = oneshot::channel();
            pending.waiters.push(tx);
            Some(rx)
        } else {
            None
        };
        self.kick(ctx);
        Box::pin(async move {
            if let Some(rx) = rx {
                let _ = rx.await;
            }
            Ok(())
        })
    }
}
