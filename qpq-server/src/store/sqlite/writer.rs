//! The writer thread, the only owner of the connection, and its group
//! commit: queued jobs run in batches, one transaction per batch and one
//! savepoint per job, and are answered only after the batch is durable (the
//! parent module's docs say why).
//!
//! Making a batch durable is the syncer thread's: the connection runs with
//! `synchronous=NORMAL`, so `COMMIT` only writes the batch's frames to the
//! write-ahead log, and the syncer then `fdatasync`s the log file and
//! answers the batch's jobs. Meanwhile the writer already runs the next
//! batch: executing and syncing overlap instead of taking turns, and one
//! sync covers every batch committed while the previous sync ran.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// Most jobs run in one transaction.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before callers wait to send (backpressure).
pub(super) const QUEUE_CAPACITY: usize = 1024;

/// A unit of work for the writer thread, its result held until the batch is durable.
pub(super) trait Job: Send {
    /// Runs inside the batch transaction; `false` if the job failed (and its
    /// savepoint must be rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Sends the answer; `durable` is the outcome of the batch's COMMIT and
    /// of syncing it to disk.
    fn reply(self: Box<Self>, durable: Result<(), &str>);
}

/// The [`Job`] behind every store call: one closure and the caller's oneshot.
pub(super) struct Call<F, T> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Call<F, T> {
    /// A job that runs `work` and sends its result to `reply`.
    pub(super) fn new(work: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Self {
            work: Some(work),
            result: None,
            reply,
        }
    }
}

impl<F, T> Job for Call<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn reply(self: Box<Self>, durable: Result<(), &str>) {
        let answer = match (durable, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Backend("job was not run".into())),
            (Err(e), _) => Err(StoreError::Backend(e.to_owned())),
        };
        // The caller may have given up waiting; the work is done either way.
        let _ = self.reply.send(answer);
    }
}

type Batch = Vec<Box<dyn Job>>;

/// The writer thread: block for one job, take what else is queued, run the
/// batch, hand it to the syncer, repeat until every sender is gone; then
/// wait for the syncer to answer the last batches.
pub(super) fn writer(
    mut conn: Connection,
    wal: PathBuf,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    stop: oneshot::Sender<()>,
) {
    let (to_sync, committed) = std_mpsc::channel::<Batch>();
    let syncer = thread::Builder::new()
        .name("qpq-sqlite-sync".into())
        .spawn(move || syncer(&wal, &committed));
    let syncer = match syncer {
        Ok(s) => s,
        Err(e) => {
            // Nothing can be made durable: answer every job with the error.
            tracing::error!(error = %e, "starting the database sync thread failed");
            let reason = format!("starting the database sync thread: {e}");
            while let Some(job) = queue.blocking_recv() {
                job.reply(Err(&reason));
            }
            drop(stop);
            return;
        }
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Metrics: the jobs still queued behind this batch, and the time it
        // took to run and commit (its sync is the syncer's, not counted).
        let (started, queued) = (std::time::Instant::now(), queue.len());
        let committed = commit_batch(&mut conn, &mut batch);
        crate::metrics::store_batch(started.elapsed(), queued);
        match committed {
            Ok(()) => {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
                if let Err(std_mpsc::SendError(full)) = to_sync.send(full) {
                    reply_all(full, Err("the database sync thread has stopped".into()));
                }
            }
            Err(e) => reply_all(std::mem::take(&mut batch), Err(e)),
        }
    }
    drop(to_sync);
    if syncer.join().is_err() {
        tracing::error!("the database sync thread panicked");
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the database failed");
    }
    drop(stop);
}

/// The syncer thread: for every batch the writer committed (and whatever
/// else committed meanwhile), `fdatasync` the write-ahead log at `wal`, then
/// answer. The log is opened anew for each sync (a few microseconds beside
/// the sync), so a log file SQLite replaced is never missed.
fn syncer(wal: &Path, committed: &std_mpsc::Receiver<Batch>) {
    while let Ok(first) = committed.recv() {
        let mut ready = vec![first];
        ready.extend(committed.try_iter());
        let synced = sync_file(wal).map_err(|e| {
            tracing::error!(error = %e, "syncing the database log failed");
            format!("syncing the database log: {e}")
        });
        for batch in ready {
            reply_all(batch, synced.clone());
        }
    }
}

/// `fdatasync` of the file at `path`: what `synchronous=FULL` would have
/// done inside COMMIT.
fn sync_file(path: &Path) -> std::io::Result<()> {
    // Write access: some systems refuse to sync a file opened read-only.
    OpenOptions::new().write(true).open(path)?.sync_data()
}

/// Runs `batch` in one transaction and answers every job once it committed
/// (durable as far as the connection's `synchronous` setting makes it;
/// the tests use it directly).
#[cfg(test)]
pub(super) fn run_batch(conn: &mut Connection, batch: &mut Batch) {
    let committed = commit_batch(conn, batch);
    reply_all(std::mem::take(batch), committed);
}

fn reply_all(batch: Batch, outcome: Result<(), String>) {
    for job in batch {
        job.reply(outcome.as_ref().copied().map_err(String::as_str));
    }
}

/// Runs `batch` in one transaction; the jobs keep their results for the answer.
fn commit_batch(conn: &mut Connection, batch: &mut Batch) -> Result<(), String> {
    run_transaction(conn, batch).map_err(|e| {
        tracing::error!(jobs = batch.len(), error = %e, "database transaction failed");
        e.to_string()
    })
}

fn run_transaction(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    // Dropping `tx` on an early return rolls the whole batch back.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        // Cached statements: rusqlite's `Savepoint` parses its SQL anew for
        // every job. If SQLite already rolled back the whole transaction
        // (I/O error, disk full), the savepoint is gone and this fails the
        // batch.
        tx.prepare_cached("SAVEPOINT job")?.execute([])?;
        if !job.run(&tx) {
            tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
        }
        tx.prepare_cached("RELEASE job")?.execute([])?;
    }
    tx.commit()
}
