//! The logger actor: writes the per-message log records (JSON lines) to
//! `{data_dir}/logs/impulse.log`.
//!
//! Records are buffered and written by pool jobs, one at a time: whatever accumulated
//! while a write was in flight goes out in the next one (group commit). A record sent
//! with `durable: true` (a final outcome: the message is about to leave the spool) is
//! answered only after the write that carried it was fsynced.

pub mod record;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;
use impulse_runtime::alloc;
use impulse_runtime::pool::Pool;
use impulse_runtime::registry::Registration;
use impulse_runtime::ActorClass;
use tokio::sync::oneshot;

pub use record::{LogRecord, LoggedResponse, RecordType};

/// Write a record; with `durable`, answer only once it is fsynced.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Log {
    pub records: Vec<LogRecord>,
    pub durable: bool,
}

/// The message log writer.
pub struct Logger {
    file: Arc<File>,
    pool: Pool,
    reg: Registration,
    buffer: Vec<u8>,
    waiters: Vec<oneshot::Sender<()>>,
    writing: bool,
    /// Bytes were written since the last sync.
    unsynced: bool,
}

impl Logger {
    /// Open (create) `dir/impulse.log` for appending. Called once at start-up.
    pub fn open(dir: &Path, pool: Pool, reg: Registration) -> std::io::Result<Logger> {
        std::fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("impulse.log"))?;
        Ok(Logger {
            file: Arc::new(file),
            pool,
            reg,
            buffer: Vec::new(),
            waiters: Vec::new(),
            writing: false,
            unsynced: false,
        })
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.writing {
            return;
        }
        if self.buffer.is_empty() && (self.waiters.is_empty() || !self.unsynced) {
            // Nothing unwritten or unsynced: whoever waits for durability has it.
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        self.writing = true;
        self.reg.set_state("writing");
        let buf = std::mem::take(&mut self.buffer);
        let waiters = std::mem::take(&mut self.waiters);
        let sync = !waiters.is_empty();
        let file = self.file.clone();
        let job = self.pool.run(move || -> std::io::Result<()> {
            let mut f = &*file;
            f.write_all(&buf)?;
            if sync {
                f.sync_data()?;
            }
            Ok(())
        });
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            let _g = alloc::enter(ActorClass::Logger);
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("logger: write failed: {e}"),
                Err(e) => eprintln!("logger: write job failed: {e}"),
            }
            act.unsynced = !sync;
            for w in waiters {
                let _ = w.send(());
            }
            act.writing = false;
            act.reg.set_state("idle");
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
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Log, ctx: &mut Context<Self>) -> Self::Result {
        let _g = alloc::enter(ActorClass::Logger);
        for r in &msg.records {
            self.buffer.extend_from_slice(&r.to_line());
        }
        let rx = if msg.durable {
            let (tx, rx) = oneshot::channel();
            self.waiters.push(tx);
            Some(rx)
        } else {
            None
        };
        self.kick(ctx);
        Box::pin(async move {
            if let Some(rx) = rx {
                let _ = rx.await;
            }
        })
    }
}
