//! A connection's write queue, bounded in bytes rather than lines: one
//! `history` answer may be 768 KiB and a notification 130 KiB, so a queue
//! of 1,024 lines let one connection that never reads hold gigabytes.
//!
//! Every queued line holds permits of one semaphore, one per byte, until the
//! writer has written it. A request's answer *waits* for permits — the
//! connection's read loop is parked meanwhile, so a client that sends
//! requests and never reads stops being read from once [`QUEUE_BYTES`] are
//! waiting for it. A live notification does not wait: a subscriber whose
//! queue is full is too slow ([`WriteQueue::try_send`] says so) and its
//! connection is closed with a last line saying why ([`WriteQueue::close`]);
//! it resumes with `subscribe since`, losing nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// The most bytes of unwritten lines one connection may have queued.
pub(super) const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// How long one line may take to write before the client counts as gone
/// (it stopped reading): its connection is closed and what it held freed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

type Queued = (Vec<u8>, Option<OwnedSemaphorePermit>);

/// The sending side; clones share the budget.
#[derive(Clone)]
pub(super) struct WriteQueue {
    lines: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
    closed: watch::Sender<bool>,
}

/// The queue is closed: the connection is ending.
#[derive(Debug)]
pub(super) struct Closed;

impl WriteQueue {
    /// The queue, and the task that writes it to `write` until every sender
    /// is gone (or a write fails or times out).
    pub(super) fn start<W>(mut write: W) -> (WriteQueue, tokio::task::JoinHandle<()>)
    where
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (lines, mut rx) = mpsc::unbounded_channel::<Queued>();
        let (closed, _) = watch::channel(false);
        let writer = tokio::spawn(async move {
            while let Some((line, permit)) = rx.recv().await {
                let written = tokio::time::timeout(WRITE_TIMEOUT, async {
                    write.write_all(&line).await?;
                    write.flush().await
                })
                .await;
                drop(permit);
                if !matches!(written, Ok(Ok(()))) {
                    break;
                }
            }
        });
        let queue = WriteQueue {
            lines,
            budget: Arc::new(Semaphore::new(QUEUE_BYTES)),
            closed,
        };
        (queue, writer)
    }

    /// Queues `line`, first waiting until the queue has room for it.
    pub(super) async fn send(&self, line: Vec<u8>) -> Result<(), Closed> {
        let permit = Arc::clone(&self.budget)
            .acquire_many_owned(permits(&line))
            .await
            .map_err(|_| Closed)?;
        self.push(line, Some(permit))
    }

    /// Queues `line` if the queue has room for it now; `Ok(false)` if not.
    pub(super) fn try_send(&self, line: Vec<u8>) -> Result<bool, Closed> {
        match Arc::clone(&self.budget).try_acquire_many_owned(permits(&line)) {
            Ok(permit) => self.push(line, Some(permit)).map(|()| true),
            Err(tokio::sync::TryAcquireError::NoPermits) => Ok(false),
            Err(tokio::sync::TryAcquireError::Closed) => Err(Closed),
        }
    }

    /// Queues `last` (outside the budget: one short line) as the final line
    /// and ends the connection: nothing more is queued or read.
    pub(super) fn close(&self, last: Vec<u8>) {
        let _ = self.push(last, None);
        self.budget.close();
        self.closed.send_replace(true);
    }

    /// Resolves once [`WriteQueue::close`] was called.
    pub(super) async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    fn push(&self, line: Vec<u8>, permit: Option<OwnedSemaphorePermit>) -> Result<(), Closed> {
        if *self.closed.borrow() {
            return Err(Closed);
        }
        self.lines.send((line, permit)).map_err(|_| Closed)
    }
}

/// A line longer than the whole budget takes all of it (it waits for an
/// empty queue); lines are at most 1 MiB, so this never happens today.
fn permits(line: &[u8]) -> u32 {
    line.len().min(QUEUE_BYTES) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_makes_senders_wait() {
        // A pipe nobody reads: the writer blocks on its first line.
        let (near, _far) = tokio::io::duplex(16);
        let (q, _writer) = WriteQueue::start(near);
        assert!(q.try_send(vec![b'x'; QUEUE_BYTES / 2]).unwrap());
        assert!(q.try_send(vec![b'x'; QUEUE_BYTES / 2]).unwrap());
        assert!(!q.try_send(vec![b'x'; 10]).unwrap(), "over the bound");
        let waiting = tokio::time::timeout(Duration::from_millis(50), q.send(vec![b'y'; 10]));
        assert!(waiting.await.is_err(), "send waits while the queue is full");
        q.close(b"bye\n".to_vec());
        assert!(q.send(vec![1]).await.is_err());
        q.closed().await;
    }
}
