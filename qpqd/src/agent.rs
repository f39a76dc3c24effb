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
//! - `history`: conversations, history, search, read markers;
//! - `attachments`: files — the spool, the uploader, downloads;
//! - `integrity`: the counter file after each acknowledged batch, the hold
//!   while a damaged or rolled-back state is unacknowledged, and the
//!   acknowledgement (re-key every group, then send again).
//!
//! Async orchestration only: the core thread ([`crate::core`]) owns the
//! database and the MLS state and runs the named operations each flow
//! defines (`outbox::queue_outgoing`, `inbox::store_incoming`, …); [`Link`]
//! owns the connection. Errors are [`AgentError`]s; the IPC server alone
//! maps them to what a front-end sees.

mod account_changes;
mod actions;
mod attachments;
mod commit;
mod diagnose;
mod error;
mod history;
mod inbox;
mod integrity;
mod invites;
mod legacy;
mod outbox;
mod privacy;
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
use crate::mls::GroupId;

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
    /// The counter file and what the checks at open found.
    guard: Arc<crate::integrity::Guard>,
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
    /// Set by `account.delete`: remove the profile once stopped.
    profile_deleted: std::sync::atomic::AtomicBool,
    /// When each member was last looked up because a members list was
    /// asked for (whether their account was deleted): at most once per
    /// `verify::RECHECK_AFTER`, so listing a big group often costs nothing.
    rechecked: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Attachments: the uploader's wake-up, the downloads under way.
    transfers: attachments::Transfers,
    /// The conversations front-ends show (`focus`): not notified.
    focus: Arc<crate::notifier::Focus>,
    /// Typing rate limits and the expiry sweeper's wake-up (`privacy`).
    privacy: privacy::PrivacyState,
    /// Why the state did not open, when it was not for want of the key (a
    /// failed schema step, the keyring unavailable, a damaged manifest):
    /// every call made while locked says so instead of "unlock".
    open_failure: std::sync::Mutex<Option<String>>,
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
pub(crate) struct GroupLocks(std::sync::Mutex<HashMap<GroupId, Arc<Mutex<()>>>>);

impl GroupLocks {
    pub(crate) fn get(&self, group: &GroupId) -> Arc<Mutex<()>> {
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
            profile_deleted: Default::default(),
            rechecked: Default::default(),
            focus: Arc::default(),
            transfers: Default::default(),
            open_failure: Default::default(),
            privacy: Default::default(),
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
            Phase::Locked => Err(self.locked()),
        }
    }

    /// The error of a call made while locked: why the state did not open,
    /// when that was not the missing key.
    pub(crate) fn locked(&self) -> AgentError {
        match self.open_failure() {
            Some(why) => AgentError::Locked(format!("the state could not be opened: {why}")),
            None => AgentError::locked(),
        }
    }

    pub(crate) fn open_failure(&self) -> Option<String> {
        self.open_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
            Phase::Open(o) => Err(o
                .guard
                .finding()
                .map_or_else(AgentError::not_logged_in, |f| integrity::held(&f))),
            Phase::Locked => Err(self.locked()),
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
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// The read-only connection, for reads off the core thread.
    pub(crate) fn reader(&self) -> AgentResult<crate::reader::Reader> {
        Ok(self.opened()?.reader)
    }

    /// The live events, from now on (the notifier follows them).
    pub(crate) fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn focus(&self) -> &Arc<crate::notifier::Focus> {
        &self.focus
    }

    pub(crate) fn group_lock(&self, group: &GroupId) -> Arc<Mutex<()>> {
        self.group_locks.get(group)
    }

    /// Publishes notifications the core has already persisted.
    pub(crate) fn publish(&self, events: Vec<Event>) {
        for e in events {
            self.privacy.saw(&e);
            let _ = self.events.send(e);
        }
    }

    /// The newest sequence number, and a live receiver subscribed before
    /// it was read, so nothing falls in between: the caller replays the log
    /// up to that number page by page ([`Agent::backlog_page`]) and drops
    /// live events with `seq <=` the last replayed.
    pub async fn subscribe(&self) -> AgentResult<(Seq, broadcast::Receiver<Event>)> {
        let rx = self.events.subscribe();
        let latest = self
            .core()?
            .run(|c| notifications::latest(c.db()))
            .await
            .map_err(AgentError::internal)?;
        Ok((Seq(latest), rx))
    }

    /// One page of the log after `after` and up to `upto`, at most about
    /// [`BACKLOG_PAGE_BYTES`] of it, and the sequence number the next page
    /// starts after (`upto` when the log is exhausted). One core trip;
    /// what a page holds is all the memory a replay takes at once.
    pub async fn backlog_page(&self, after: Seq, upto: Seq) -> AgentResult<(Seq, Vec<Event>)> {
        self.core()?
            .run(move |c| backlog_page(c, after.0, upto.0))
            .await
            .map_err(AgentError::internal)
    }
}

/// The most bytes of notifications one backlog page reads (plus the one
/// that crosses it): a replay from the beginning holds one page at a time.
pub const BACKLOG_PAGE_BYTES: usize = 1024 * 1024;

/// Notifications (at most) one page reads from the log.
const BACKLOG_PAGE_ROWS: u32 = 256;

fn backlog_page(c: &mut Core, after: u64, upto: u64) -> rusqlite::Result<(Seq, Vec<Event>)> {
    let rows = notifications::since(c.db(), after, upto, BACKLOG_PAGE_ROWS)?;
    // A short read reached `upto`: the next page starts after it.
    let full = rows.len() == BACKLOG_PAGE_ROWS as usize;
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut cursor = after;
    for (seq, method, params) in rows {
        cursor = seq;
        let raw = quicproquo_protocol::ipc::jsonrpc::RawNotification {
            method,
            params: serde_json::from_str(&params).unwrap_or_default(),
        };
        let n = match Notification::from_raw(&raw) {
            Ok(Some(Notification::Message(m))) => match stored_message(c, m)? {
                Some(n) => n,
                None => continue,
            },
            Ok(Some(n)) => n,
            Ok(None) | Err(_) => continue,
        };
        bytes += params.len() + event_text_len(&n);
        out.push(n);
        if bytes >= BACKLOG_PAGE_BYTES {
            return Ok((Seq(cursor), out));
        }
    }
    Ok((Seq(if full { cursor } else { upto.max(after) }), out))
}

fn event_text_len(n: &Event) -> usize {
    match n {
        Notification::Message(m) => m.message.text.len(),
        _ => 0,
    }
}

/// A logged `message` notification with its message as the history holds it
/// now (the log keeps the id, not the text); `None` once the history no
/// longer has it (discarded), so the log never outlives the history.
fn stored_message(
    c: &Core,
    mut m: quicproquo_protocol::ipc::notifications::NewMessage,
) -> rusqlite::Result<Option<Event>> {
    let Some(stored) = db::messages::by_id(c.db(), db::Id(m.message.id.0))?
        .filter(|s| s.extra.deleted != db::messages::Deleted::ForMe)
    else {
        return Ok(None);
    };
    m.message = history::stored_message(c.db(), &stored)?;
    Ok(Some(Notification::Message(m)))
}

/// How many notifications the log keeps: older ones are deleted as new ones
/// are logged. A front-end that resumes from before the oldest kept gets
/// the replay from there on (and reloads what it shows anyway on reconnect).
pub const NOTIFICATIONS_KEPT: u64 = 10_000;

/// Appends a notification to the log inside the current transaction and
/// returns it (with its sequence number) for publishing after commit.
pub(crate) fn emit(
    c: &Core,
    build: impl FnOnce(Seq) -> Notification,
) -> rusqlite::Result<Notification> {
    let seq = notifications::latest(c.db())? + 1;
    let n = build(Seq(seq));
    let mut raw = n
        .to_raw()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    // The log names a message by its id; a replay reads the text from the
    // history (see `stored_message`), so no text outlives the history.
    if let Some(text) = raw.params.pointer_mut("/message/text") {
        *text = serde_json::Value::String(String::new());
    }
    // Nor an edit's: a replayed `edit` reads as text "" (`history` has it).
    if raw.method == "edit" {
        if let Some(text) = raw.params.pointer_mut("/text") {
            *text = serde_json::Value::String(String::new());
        }
    }
    if seq % 256 == 0 {
        notifications::prune(c.db(), seq.saturating_sub(NOTIFICATIONS_KEPT))?;
    }
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

#[cfg(test)]
mod log_tests {
    use quicproquo_protocol::ipc::notifications::{ConnectionChange, NewMessage};
    use quicproquo_protocol::ipc::values::ConnectionState;

    use super::*;
    use crate::db::messages::{self, Message, State};
    use crate::db::Id;

    fn core() -> (tempfile::TempDir, Core, Id) {
        let (d, conn, team) = db::test_db_with_team();
        (d, Core::new(conn), team)
    }

    /// Stores our message `text` and logs its notification, as `send` does.
    fn logged_message(c: &Core, conv: Id, text: &str) -> Id {
        let m = Message {
            id: Id::random(),
            conversation: conv,
            sender: "me".into(),
            timestamp_ms: 1,
            text: text.into(),
            outgoing: true,
            state: State::Queued,
            extra: Default::default(),
        };
        messages::insert(c.db(), &m).unwrap();
        emit(c, |seq| {
            Notification::Message(NewMessage {
                seq,
                message: history::ipc_message(&m),
            })
        })
        .unwrap();
        m.id
    }

    fn connection(c: &Core) {
        emit(c, |seq| {
            Notification::Connection(ConnectionChange {
                seq,
                state: ConnectionState::Online,
                detail: String::new(),
            })
        })
        .unwrap();
    }

    fn texts(page: &[Event]) -> Vec<String> {
        page.iter()
            .filter_map(|n| match n {
                Notification::Message(m) => Some(m.message.text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_log_keeps_no_text_and_forgets_what_the_history_forgot() {
        let (_d, mut c, conv) = core();
        let id = logged_message(&c, conv, "the secret plan");
        let logged: String = c
            .db()
            .query_row("SELECT group_concat(params) FROM notifications", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!logged.contains("secret"), "text in the log: {logged}");
        let (_, page) = backlog_page(&mut c, 0, u64::MAX).unwrap();
        assert_eq!(
            texts(&page),
            ["the secret plan"],
            "replayed from the history"
        );
        messages::delete(c.db(), id).unwrap();
        let (next, page) = backlog_page(&mut c, 0, 1).unwrap();
        assert!(page.is_empty(), "a message gone from the history: {page:?}");
        assert_eq!(next, Seq(1));
    }

    /// An edit's new text is no more kept in the log than a message's; a
    /// message deleted for me is not replayed.
    #[test]
    fn the_log_keeps_no_edit_text_and_replays_no_message_deleted_for_me() {
        let (_d, mut c, conv) = core();
        let id = logged_message(&c, conv, "first words");
        emit(&c, |seq| {
            Notification::Edit(quicproquo_protocol::ipc::notifications::EditUpdate {
                seq,
                conversation: history::conv_id(conv),
                id: quicproquo_protocol::ipc::values::MessageId(id.0),
                by: "me".into(),
                text: "the secret plan".into(),
                timestamp_ms: 2,
            })
        })
        .unwrap();
        let logged: String = c
            .db()
            .query_row("SELECT group_concat(params) FROM notifications", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!logged.contains("secret"), "text in the log: {logged}");
        let (_, page) = backlog_page(&mut c, 0, u64::MAX).unwrap();
        assert!(
            matches!(&page[1], Notification::Edit(e) if e.text.is_empty()),
            "{page:?}"
        );
        db::actions::delete(c.db(), id, messages::Deleted::ForMe).unwrap();
        let (_, page) = backlog_page(&mut c, 0, u64::MAX).unwrap();
        assert!(texts(&page).is_empty(), "{page:?}");
    }

    #[test]
    fn the_log_is_pruned_to_the_newest_it_keeps() {
        let (_d, c, _) = core();
        c.db().execute_batch("BEGIN").unwrap();
        for _ in 0..NOTIFICATIONS_KEPT + 600 {
            connection(&c);
        }
        c.db().execute_batch("COMMIT").unwrap();
        let rows: u64 = c
            .db()
            .query_row("SELECT count(*) FROM notifications", [], |r| r.get(0))
            .unwrap();
        assert!(rows <= NOTIFICATIONS_KEPT + 256, "{rows} kept");
        assert!(rows >= NOTIFICATIONS_KEPT, "{rows} kept");
    }

    /// A replay from the beginning reads a page of at most about a MiB at a
    /// time (the whole log once went into memory at once), and one past the
    /// newest number reads nothing.
    #[test]
    fn the_backlog_is_read_in_pages_bounded_in_bytes() {
        let (_d, mut c, conv) = core();
        let big = "\"".repeat(crate::payload::MAX_TEXT_BYTES);
        for _ in 0..40 {
            logged_message(&c, conv, &big);
        }
        for _ in 0..300 {
            connection(&c);
        }
        let latest = notifications::latest(c.db()).unwrap();
        let (mut cursor, mut pages, mut seen) = (0, 0, 0);
        while cursor < latest {
            let (next, page) = backlog_page(&mut c, cursor, latest).unwrap();
            assert!(next.0 > cursor, "a page moves on");
            let bytes: usize = texts(&page).iter().map(String::len).sum();
            assert!(bytes <= BACKLOG_PAGE_BYTES + big.len(), "{bytes} in a page");
            seen += page.len();
            cursor = next.0;
            pages += 1;
        }
        assert_eq!(seen as u64, latest, "every notification, once");
        assert!(pages >= 4, "{pages} pages");
        let (next, page) = backlog_page(&mut c, u64::MAX, u64::MAX).unwrap();
        assert!(page.is_empty() && next == Seq(u64::MAX));
    }
}
