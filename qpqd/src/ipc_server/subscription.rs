//! A connection's notification stream after `subscribe`: first what the
//! client missed, then live notifications, never repeating one (live events
//! up to the last replayed sequence number are skipped).
//!
//! The backlog is read from the log one page at a time
//! ([`Agent::backlog_page`]), each page written (waiting for room in the
//! connection's queue) before the next is read, so replaying 20,000
//! notifications holds one page, not all of them. A `since` past the newest
//! sequence number replays nothing. Live notifications do not wait: a
//! subscriber whose queue is full, or who fell so far behind that the live
//! channel dropped events for it, is disconnected with a `-32012` line
//! saying so, and resumes with `subscribe since` (nothing is lost).

use std::sync::Arc;

use quicproquo_protocol::ipc::error::{IpcError, IpcErrorCode};
use quicproquo_protocol::ipc::values::Seq;
use tokio::sync::broadcast;

use super::queue::WriteQueue;
use crate::agent::{Agent, Event};

/// What `subscribe` opened: where the replay starts and ends, and the live
/// receiver behind it.
pub(super) struct Subscription {
    agent: Arc<Agent>,
    /// The last sequence number the client has seen.
    last: u64,
    /// The newest sequence number when the client subscribed.
    latest: u64,
    live: broadcast::Receiver<Event>,
}

impl Subscription {
    /// `since` is what the client asked to resume after (`None`: only what
    /// happens after `latest`; past `latest`: nothing is replayed).
    pub(super) fn new(
        agent: Arc<Agent>,
        since: Option<Seq>,
        latest: Seq,
        live: broadcast::Receiver<Event>,
    ) -> Self {
        Subscription {
            agent,
            last: since.map_or(latest.0, |s| s.0.min(latest.0)),
            latest: latest.0,
            live,
        }
    }

    /// Streams to the connection's writer until it or the agent goes away.
    pub(super) fn start(self, queue: WriteQueue) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.forward(queue))
    }

    async fn forward(mut self, queue: WriteQueue) {
        while self.last < self.latest {
            let (next, page) = match self
                .agent
                .backlog_page(Seq(self.last), Seq(self.latest))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the notification backlog");
                    return queue.close(too_slow("the daemon could not read its log"));
                }
            };
            for n in page {
                let Some(line) = line(&n) else { continue };
                if queue.send(line).await.is_err() {
                    return;
                }
            }
            self.last = next.0.max(self.last + 1);
        }
        loop {
            match self.live.recv().await {
                Ok(n) if n.seq().0 > self.last => {
                    self.last = n.seq().0;
                    let Some(line) = line(&n) else { continue };
                    match queue.try_send(line) {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("a subscriber is not reading; closing its connection");
                            return queue.close(too_slow(
                                "more than 4 MiB of notifications are waiting for this connection",
                            ));
                        }
                        Err(_) => return,
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "a subscriber lagged; closing its connection");
                    return queue.close(too_slow(&format!(
                        "this connection fell {n} notifications behind"
                    )));
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// The last line of a connection closed for falling behind: a `-32012`
/// error with no id (it answers no request), naming where to resume.
fn too_slow(why: &str) -> Vec<u8> {
    IpcError::new(
        None,
        IpcErrorCode::TooSlow,
        format!("{why}; reconnect and subscribe with `since` the last seq you saw"),
    )
    .to_response()
    .to_line()
}

/// The notification as a line; `None` (logged) if it cannot be encoded.
fn line(n: &Event) -> Option<Vec<u8>> {
    match n.to_line() {
        Ok(line) => Some(line),
        Err(e) => {
            tracing::error!(error = %e, "notification encoding");
            None
        }
    }
}
