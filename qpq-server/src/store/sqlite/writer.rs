//! The writer thread, the only owner of the connection, and its group
//! commit: queued jobs run in batches, one transaction per batch and one
//! savepoint per job, and are answered only after the batch committed (the
//! parent module's docs say why).

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// Most jobs run in one transaction.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before callers wait to send (backpressure).
pub(super) const QUEUE_CAPACITY: usize = 1024;

/// A unit of work for the writer thread, its result held until the batch commits.
pub(super) trait Job: Send {
    /// Runs inside the batch transaction; `false` if the job failed (and its
    /// savepoint must be rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Sends the answer; `committed` is the outcome of the batch's COMMIT.
    fn reply(self: Box<Self>, committed: Result<(), &str>);
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

    fn reply(self: Box<Self>, committed: Result<(), &str>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Backend("job was not run".into())),
            (Err(e), _) => Err(StoreError::Backend(e.to_owned())),
        };
        // The caller may have given up waiting; the work is done either way.
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: block for one job, take what else is queued, run the
/// batch, repeat until every sender is gone.
pub(super) fn writer(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    stop: oneshot::Sender<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Metrics: the jobs still queued behind this batch, and its time.
        let (started, queued) = (std::time::Instant::now(), queue.len());
        run_batch(&mut conn, &mut batch);
        crate::metrics::store_batch(started.elapsed(), queued);
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the database failed");
    }
    drop(stop);
}

/// Runs `batch` in one transaction and answers every job after COMMIT.
pub(super) fn run_batch(conn: &mut Connection, batch: &mut Vec<Box<dyn Job>>) {
    let committed = run_transaction(conn, batch).map_err(|e| {
        tracing::error!(jobs = batch.len(), error = %e, "database transaction failed");
        e.to_string()
    });
    for job in batch.drain(..) {
        job.reply(committed.as_ref().copied().map_err(String::as_str));
    }
}

fn run_transaction(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    // Dropping `tx` on an early return rolls the whole batch back.
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        let savepoint = tx.savepoint()?;
        if job.run(&savepoint) {
            savepoint.commit()?;
        } else {
            // Rolls back to the savepoint and releases it. If SQLite already
            // rolled back the whole transaction (I/O error, disk full), the
            // savepoint is gone and this fails the batch.
            savepoint.finish()?;
        }
    }
    tx.commit()
}
