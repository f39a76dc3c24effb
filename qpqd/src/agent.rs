//! The agent: what each IPC call does, one module per flow.
//!
//! - `session`: the daemon's lifecycle (locked → open → online), the account
//!   (register, login, logout, status) and the connection's side effects
//!   (key-package stock, `connection` notifications);
//! - `outbox`: sending — `send` queues, the drain encrypts and enqueues, DM
//!   channels are looked up or created;
//! - `inbox`: receiving — the long-poll loop; each fetched batch is processed
//!   and stored in one transaction before it is acknowledged;
//! - `commit`: creating DMs and groups and changing their membership, all
//!   through one commit path the server orders;
//! - `verify`: identity pins, safety numbers, the members list;
//! - `history`: conversations, history, search, read markers.
//!
//! Async orchestration only: the core thread ([`crate::core`]) owns the
//! database and the MLS state and runs the named operations each flow
//! defines (`outbox::queue_outgoing`, `inbox::store_incoming`, …); [`Link`]
//! owns the connection. Errors are [`AgentError`]s; the IPC server alone
//! maps them to what a front-end sees.

mod commit;
mod error;
mod history;
mod inbox;
mod invites;
mod outbox;
mod session;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;

use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::Seq;
use quicproquo_protocol::types::{IdentityKey, SessionToken, Username};
use tokio::sync::{broadcast, watch, Mutex, Notify};
use tokio_util::task::TaskTracker;

use crate::core::{Core, CoreHandle};
use crate::db::{self, notifications};
use crate::keystore::KeySource;
use crate::link::Link;

pub use error::{AgentError, AgentResult};
pub use session::StartOptions;
pub use verify::safety_number;

/// A notification together with what subscribers need to replay it.
pub type Event = Notification;

/// Where the daemon is in its life. Each phase holds exactly what exists in
/// it: no core before the state is open, no link before there is an account
/// with a session.
#[derive(Clone)]
enum Phase {
    /// The state is encrypted and its key has not been given (`unlock`).
    Locked,
    /// The state is open; there is no connection (no account yet, or it
    /// never had a session).
    Open(Opened),
    /// The state is open and the connection to the server is supervised
    /// (online or reconnecting; logged out keeps the link).
    Online(Opened, Link),
}

#[derive(Clone)]
struct Opened {
    core: CoreHandle,
    /// The read-only connection searches run on, off the core thread.
    reader: crate::reader::Reader,
    key_source: KeySource,
    /// The account, once registered or logged in (kept in memory so that no
    /// call re-reads it or re-derives the identity key).
    me: Option<Me>,
}

/// The account this profile holds.
#[derive(Clone)]
pub(crate) struct Me {
    pub username: Username,
    pub identity: IdentityKey,
    pub server: String,
    /// `None` after `logout`.
    pub token: Option<SessionToken>,
}

pub struct Agent {
    pub profile: String,
    phase: std::sync::RwLock<Phase>,
    events: broadcast::Sender<Event>,
    shutdown_tx: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
    /// Serializes membership changes (and handshake processing) per group.
    group_locks: Arc<GroupLocks>,
    outbox_kick: Notify,
    /// The outbox's per-conversation back-off and waits.
    outbox_queues: std::sync::Mutex<outbox::Queues>,
    /// One key-package refill at a time (registration and the connection
    /// coming up both refill; unserialized, both saw an empty stock and
    /// uploaded a batch each).
    refill: Mutex<()>,
    /// Every background task, joined on shutdown.
    tasks: TaskTracker,
    /// Whether the last fetched batch could be stored (`status.storage`).
    storage: StorageHealth,
    options: StartOptions,
}

/// Why the state could not be written the last time the inbox stored a
/// batch (the disk full, an I/O error, …), until a batch is stored again.
/// Kept in memory only: while it fails there is nowhere to persist it.
#[derive(Default)]
pub(crate) struct StorageHealth(std::sync::Mutex<Option<String>>);

impl StorageHealth {
    pub(crate) fn set(&self, failing: Option<String>) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (&*now, &failing) {
            (None, Some(why)) => {
                tracing::warn!(error = %why, "cannot store incoming mail; it stays on the server and is fetched again")
            }
            (Some(_), None) => tracing::info!("incoming mail is stored again"),
            _ => {}
        }
        *now = failing;
    }

    /// `None` while storing works.
    pub(crate) fn failing(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One async lock per group: a commit in flight holds it from building to
/// merging, so nothing else encrypts in or processes a handshake for that
/// group meanwhile.
#[derive(Default)]
pub(crate) struct GroupLocks(std::sync::Mutex<HashMap<[u8; 16], Arc<Mutex<()>>>>);

impl GroupLocks {
    pub(crate) fn get(&self, group: &[u8; 16]) -> Arc<Mutex<()>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(*group)
            .or_default()
            .clone()
    }
}

impl Agent {
    pub fn new(options: StartOptions) -> Arc<Self> {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (events, _) = broadcast::channel(1024);
        Arc::new(Self {
            profile: options.profile.clone(),
            phase: std::sync::RwLock::new(Phase::Locked),
            events,
            shutdown_tx,
            shutdown,
            group_locks: Arc::default(),
            refill: Mutex::new(()),
            outbox_kick: Notify::new(),
            outbox_queues: std::sync::Mutex::default(),
            tasks: TaskTracker::new(),
            storage: StorageHealth::default(),
            options,
        })
    }

    fn phase(&self) -> Phase {
        self.phase.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes what the open state knows (the account, its token).
    fn update_opened(&self, f: impl FnOnce(&mut Opened)) {
        match &mut *self.phase.write().unwrap_or_else(|p| p.into_inner()) {
            Phase::Open(o) | Phase::Online(o, _) => f(o),
            Phase::Locked => {}
        }
    }

    fn opened(&self) -> AgentResult<Opened> {
        match self.phase() {
            Phase::Open(o) | Phase::Online(o, _) => Ok(o),
            Phase::Locked => Err(AgentError::locked()),
        }
    }

    pub(crate) fn core(&self) -> AgentResult<CoreHandle> {
        self.opened().map(|o| o.core)
    }

    /// The account, or `NotLoggedIn`.
    pub(crate) fn me(&self) -> AgentResult<Me> {
        self.opened()?.me.ok_or_else(|| {
            AgentError::NotLoggedIn("no account in this profile: register or log in first".into())
        })
    }

    /// The session token, or `NotLoggedIn`.
    pub(crate) fn token(&self) -> AgentResult<SessionToken> {
        self.me()?
            .token
            .ok_or_else(|| AgentError::NotLoggedIn("not logged in: log in first".into()))
    }

    pub(crate) fn link(&self) -> AgentResult<Link> {
        match self.phase() {
            Phase::Online(_, link) => Ok(link),
            Phase::Open(_) => Err(AgentError::not_logged_in()),
            Phase::Locked => Err(AgentError::locked()),
        }
    }

    /// Core-thread trips so far (0 while locked): what tests and benches
    /// count to hold each flow to its budget.
    pub fn core_trips(&self) -> u64 {
        self.core().map(|c| c.trips()).unwrap_or(0)
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    pub fn request_shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Waits (bounded) until every background task has seen the shutdown
    /// and finished its current step; call after [`Agent::request_shutdown`].
    pub async fn stopped(&self) {
        self.tasks.close();
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.tasks.len(),
                "background tasks still running at shutdown"
            );
        }
    }

    /// Runs `task` in the background, owned by the agent (joined at shutdown).
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    pub(crate) fn group_lock(&self, group: &[u8; 16]) -> Arc<Mutex<()>> {
        self.group_locks.get(group)
    }

    /// Publishes notifications the core has already persisted.
    pub(crate) fn publish(&self, events: Vec<Event>) {
        for e in events {
            let _ = self.events.send(e);
        }
    }

    /// The notifications after `since` (persisted), then a live receiver.
    /// Subscribing first and reading the log second means nothing falls in
    /// between; the caller drops live events with `seq <= ` the last replayed.
    pub async fn subscribe(
        &self,
        since: Option<Seq>,
    ) -> AgentResult<(Seq, Vec<Event>, broadcast::Receiver<Event>)> {
        let rx = self.events.subscribe();
        let (latest, backlog) = self
            .core()?
            .run(move |c| backlog(c, since))
            .await
            .map_err(AgentError::internal)?;
        Ok((Seq(latest), backlog, rx))
    }
}

/// The newest sequence number and the notifications logged after `since`.
fn backlog(c: &mut Core, since: Option<Seq>) -> rusqlite::Result<(u64, Vec<Event>)> {
    let latest = notifications::latest(c.db())?;
    let mut out = Vec::new();
    if let Some(Seq(from)) = since {
        let mut cursor = from;
        loop {
            let page = notifications::since(c.db(), cursor, 500)?;
            let Some(last) = page.last().map(|p| p.0) else {
                break;
            };
            for (_, method, params) in page {
                let raw = quicproquo_protocol::ipc::jsonrpc::RawNotification {
                    method,
                    params: serde_json::from_str(&params).unwrap_or_default(),
                };
                if let Ok(Some(n)) = Notification::from_raw(&raw) {
                    out.push(n);
                }
            }
            cursor = last;
        }
    }
    Ok((latest, out))
}

/// Appends a notification to the log inside the current transaction and
/// returns it (with its sequence number) for publishing after commit.
pub(crate) fn emit(
    c: &Core,
    build: impl FnOnce(Seq) -> Notification,
) -> rusqlite::Result<Notification> {
    let seq = notifications::latest(c.db())? + 1;
    let n = build(Seq(seq));
    let raw = n
        .to_raw()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    c.db().execute(
        "INSERT INTO notifications (seq, method, params, created_ms) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![
            seq as i64,
            raw.method,
            raw.params.to_string(),
            db::now_ms() as i64
        ],
    )?;
    Ok(n)
}
