//! The one QUIC connection to qpq-server, owned by one supervisor task that
//! connects, notices a lost connection, and reconnects with exponential
//! back-off. Everyone else borrows the current connection through [`Link`]:
//! a call while offline fails at once with [`LinkError::Offline`] (the
//! outbox, not the caller, waits for the server).
//!
//! A deployment may have several nodes ([`crate::nodes`]): the supervisor
//! tries their addresses in turn (round robin), moving to the next one when
//! its node goes away or does not answer, and waits the back-off only after
//! a whole round failed. Every node must present the pinned certificate
//! (the nodes of one deployment share it); one that does not is refused
//! like any other mismatch.

use quicproquo_protocol::backoff::Backoff;
use std::sync::Arc;
use std::time::Duration;

use quicproquo_protocol::client::{Client, ClientError, Trust};
use quicproquo_protocol::wire::{Call, Health, Request, Response};
use tokio::sync::{watch, Notify, RwLock};

use crate::nodes::{self, Candidate, Node};

/// What front-ends see as `connection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Online,
    Offline,
    Reconnecting,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Online => "online",
            ConnState::Offline => "offline",
            ConnState::Reconnecting => "reconnecting",
        }
    }
}

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct Target {
    /// The deployment's nodes, in the order given.
    pub nodes: Vec<Node>,
    /// Verify certificates against the system roots (names are checked).
    pub use_ca: bool,
    pub trust: Trust,
    /// How long a silent node is waited for before it counts as gone.
    pub idle: Duration,
}

/// A connection made by [`connect_round`].
pub struct Connected {
    pub client: Client,
    /// The node's address as given (and resolved), for status and logs.
    pub node: String,
    /// Its place in the round, to start the next round after it.
    pub index: usize,
}

/// One round over `target`'s addresses, starting at `start` (modulo their
/// number): the first that connects; or why each one failed, for people.
pub async fn connect_round(target: &Target, start: usize) -> Result<Connected, String> {
    let (candidates, mut failures) = nodes::candidates(&target.nodes, target.use_ca).await;
    let n = candidates.len();
    for index in (0..n).map(|i| (start + i) % n.max(1)) {
        let c: &Candidate = &candidates[index];
        match Client::connect_with_idle(c.addr, &c.server_name, target.trust.clone(), target.idle)
            .await
        {
            Ok(client) => {
                return Ok(Connected {
                    client,
                    node: c.label.clone(),
                    index,
                })
            }
            Err(e) => {
                tracing::debug!(node = %c.label, error = %e, "connect failed");
                // One node: the error alone, as before several nodes.
                failures.push(if target.nodes.len() == 1 && n == 1 {
                    e.to_string()
                } else {
                    format!("node {}: {e}", c.label)
                });
            }
        }
    }
    Err(failures.join("; "))
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the server is not reachable now")]
    Offline,
    #[error(transparent)]
    Call(#[from] ClientError),
}

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A handle to the supervised connection; cheap to clone.
#[derive(Clone)]
pub struct Link {
    current: Arc<RwLock<Option<Arc<Client>>>>,
    state: watch::Receiver<ConnState>,
    /// Wakes the supervisor to reconnect now (e.g. a call found the
    /// connection dead before the idle timeout noticed).
    poke: Arc<Notify>,
    /// Why the last connection attempt failed (empty while online), for
    /// people: a pinned certificate that changed does not fix itself.
    detail: Arc<std::sync::Mutex<String>>,
    /// Where to connect; read at every attempt, so a `login` with a new
    /// server or pin takes effect without restarting the daemon.
    target: Arc<std::sync::Mutex<Target>>,
    /// The server's removal key (its Ed25519 key as an MLS external sender),
    /// from `health` at every connection; empty until a server gave one.
    removal_key: Arc<std::sync::Mutex<Vec<u8>>>,
    /// The node connected to (see [`Connected::node`]); `None` offline.
    node: Arc<std::sync::Mutex<Option<String>>>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Asks a fresh connection's server for its removal key and keeps it; if
/// the server does not answer, the key we had stays.
async fn learn_removal_key(client: &Client, kept: &std::sync::Mutex<Vec<u8>>) {
    match client.call(&Health {}.request()).await {
        Ok(answer) => match Health::response(answer) {
            Ok(info) => *lock(kept) = info.removal_key,
            Err(e) => tracing::warn!(error = %e, "health answered oddly; removal key unknown"),
        },
        Err(e) => tracing::warn!(error = %e, "health failed; removal key unknown"),
    }
}

impl Link {
    /// Starts the supervisor for `target`; it runs until `shutdown` flips.
    pub fn start(
        target: Target,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Link, tokio::task::JoinHandle<()>) {
        let current = Arc::new(RwLock::new(None));
        let (state_tx, state) = watch::channel(ConnState::Reconnecting);
        let poke = Arc::new(Notify::new());
        let detail = Arc::new(std::sync::Mutex::new(String::new()));
        let shared_target = Arc::new(std::sync::Mutex::new(target));
        let removal_key = Arc::new(std::sync::Mutex::new(Vec::new()));
        let node = Arc::new(std::sync::Mutex::new(None));
        let link = Link {
            current: current.clone(),
            state,
            poke: poke.clone(),
            detail: detail.clone(),
            target: shared_target.clone(),
            removal_key: removal_key.clone(),
            node: node.clone(),
        };
        let set_detail = move |d: String| *lock(&detail) = d;
        let task = tokio::spawn(async move {
            let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
            // Where the next round starts: after the node last used, so a
            // node that went away is tried last.
            let mut start = 0;
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let target = lock(&shared_target).clone();
                let round = tokio::select! {
                    r = connect_round(&target, start) => Some(r),
                    _ = poke.notified() => None,
                    _ = shutdown.changed() => None,
                };
                match round {
                    // Re-pointed or stopping: the loop looks again.
                    None => {}
                    Some(Ok(Connected {
                        client,
                        node: name,
                        index,
                    })) => {
                        start = index + 1;
                        learn_removal_key(&client, &removal_key).await;
                        let client = Arc::new(client);
                        *current.write().await = Some(client.clone());
                        *lock(&node) = Some(name.clone());
                        set_detail(String::new());
                        let _ = state_tx.send(ConnState::Online);
                        tracing::info!(node = %name, "connected");
                        backoff.reset();
                        tokio::select! {
                            _ = client.connection().closed() => {}
                            _ = poke.notified() => {}
                            _ = shutdown.changed() => {}
                        }
                        *current.write().await = None;
                        *lock(&node) = None;
                        if *shutdown.borrow() {
                            let _ = state_tx.send(ConnState::Offline);
                            if let Ok(c) = Arc::try_unwrap(client) {
                                c.close().await;
                            }
                            break;
                        }
                        tracing::warn!(node = %name, "connection to the server lost; reconnecting");
                        set_detail(format!("the connection to {name} was lost"));
                        let _ = state_tx.send(ConnState::Reconnecting);
                    }
                    Some(Err(why)) => {
                        let delay = backoff.wait();
                        tracing::debug!(error = %why, ?delay, "no node answered");
                        set_detail(why);
                        let _ = state_tx.send(if backoff.step() >= BACKOFF_MAX / 2 {
                            ConnState::Offline
                        } else {
                            ConnState::Reconnecting
                        });
                        // A pinned-certificate mismatch will not fix itself by
                        // retrying fast; the back-off grows to its maximum.
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = poke.notified() => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                }
            }
        });
        (link, task)
    }

    /// The server's removal key as the last connection's `health` gave it
    /// (empty: none known).
    pub fn removal_key(&self) -> Vec<u8> {
        lock(&self.removal_key).clone()
    }

    /// The node connected to, while online.
    pub fn node(&self) -> Option<String> {
        lock(&self.node).clone()
    }

    pub fn state(&self) -> ConnState {
        *self.state.borrow()
    }

    /// Why the connection is not up (empty while online).
    pub fn detail(&self) -> String {
        lock(&self.detail).clone()
    }

    /// Connects to `target` from now on, dropping the current connection.
    pub fn retarget(&self, target: Target) {
        *lock(&self.target) = target;
        self.poke.notify_one();
    }

    /// Resolves when the state changes.
    pub fn watch(&self) -> watch::Receiver<ConnState> {
        self.state.clone()
    }

    /// One request on the current connection, with its typed answer:
    /// `link.request(wire::Enqueue { .. })` is an `Enqueued`. An answer of
    /// another kind is `LinkError::Call(ClientError::Unexpected)`.
    pub async fn request<C: Call>(&self, call: C) -> Result<C::Response, LinkError> {
        let answer = self.call(&call.request()).await?;
        Ok(C::response(answer).map_err(ClientError::Unexpected)?)
    }

    /// One request on the current connection, answered whatever its kind
    /// (what [`Link::request`] types).
    async fn call(&self, req: &Request) -> Result<Response, LinkError> {
        let client = self
            .current
            .read()
            .await
            .clone()
            .ok_or(LinkError::Offline)?;
        match client.call(req).await {
            Err(e @ (ClientError::Connection(_) | ClientError::Timeout(_)))
                if client.is_closed() =>
            {
                tracing::debug!(error = %e, "call failed on a closed connection");
                self.poke.notify_one();
                Err(LinkError::Offline)
            }
            other => Ok(other?),
        }
    }

    /// Waits until online (or `limit` passes).
    pub async fn wait_online(&self, limit: Duration) -> bool {
        let mut w = self.state.clone();
        tokio::time::timeout(limit, w.wait_for(|s| *s == ConnState::Online))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The certificate fingerprint of the current connection (for pinning
    /// on first use).
    pub async fn server_fingerprint(&self) -> Option<[u8; 32]> {
        self.current
            .read()
            .await
            .as_ref()
            .and_then(|c| c.server_fingerprint())
    }
}
