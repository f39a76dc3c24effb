//! A connection's notification stream after `subscribe`: first what the
//! client missed, then live notifications, never repeating one (live events
//! up to the last replayed sequence number are skipped).

use quicproquo_protocol::ipc::values::Seq;
use tokio::sync::{broadcast, mpsc};

use crate::agent::Event;

/// What `subscribe` opened: the replay and the live receiver behind it.
pub(super) struct Subscription {
    /// The last sequence number the client has seen.
    last: u64,
    backlog: Vec<Event>,
    live: broadcast::Receiver<Event>,
}

impl Subscription {
    /// `since` is what the client asked to resume after (`None`: only what
    /// happens after `latest`).
    pub(super) fn new(
        since: Option<Seq>,
        latest: Seq,
        backlog: Vec<Event>,
        live: broadcast::Receiver<Event>,
    ) -> Self {
        Subscription {
            last: since.map(|s| s.0).unwrap_or(latest.0),
            backlog,
            live,
        }
    }

    /// Streams to the connection's writer until it or the agent goes away.
    pub(super) fn start(self, tx: mpsc::Sender<Vec<u8>>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.forward(tx))
    }

    async fn forward(mut self, tx: mpsc::Sender<Vec<u8>>) {
        for n in std::mem::take(&mut self.backlog) {
            self.last = self.last.max(n.seq().0);
            if !send(&tx, &n).await {
                return;
            }
        }
        loop {
            match self.live.recv().await {
                Ok(n) if n.seq().0 > self.last => {
                    self.last = n.seq().0;
                    if !send(&tx, &n).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // The client fell behind; it resumes with `subscribe
                    // since` and loses nothing. Closing tells it to.
                    tracing::warn!(skipped = n, "a subscriber lagged; ending its stream");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// False once the connection's writer is gone.
async fn send(tx: &mpsc::Sender<Vec<u8>>, n: &Event) -> bool {
    match n.to_line() {
        Ok(line) => tx.send(line).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "notification encoding");
            true
        }
    }
}
