//! The agent: what each IPC call does. Async orchestration only — the core
//! thread owns the database and MLS state, [`Link`] owns the connection; the
//! agent sequences them (fetch a key package, build the commit, have the
//! server accept it, merge, deliver the Welcome) and emits notifications.
//!
//! Submodules: `account` (register/login/status), `groups` (DMs, groups,
//! membership changes), `delivery` (send, the outbox, receiving).

mod account;
mod delivery;
mod groups;

use std::collections::HashMap;
use std::sync::Arc;

use quicproquo_protocol::errors::WireError;
use quicproquo_protocol::ipc::error::{ErrorObject, IpcErrorCode};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{Ciphersuite, ConversationId, ConversationKind, Seq};
use quicproquo_protocol::ipc::values::{Conversation as IpcConversation, ConversationRef};
use tokio::sync::{broadcast, watch, Mutex, Notify, OnceCell, RwLock};

use crate::core::{Core, CoreError, CoreHandle};
use crate::db::conversations::{self, Conversation, Kind};
use crate::db::{self, messages, notifications, Id};
use crate::keystore::KeySource;
use crate::link::{Link, LinkError};

pub use account::StartOptions;

/// A failure as the front-end sees it.
pub type AgentResult<T> = Result<T, ErrorObject>;

pub(crate) fn err(code: IpcErrorCode, message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(code, message)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ErrorObject {
    tracing::error!(error = %e, "internal error");
    err(IpcErrorCode::Internal, format!("internal error: {e}"))
}

impl From<CoreError> for ErrorObject {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NoAccount => err(IpcErrorCode::NotLoggedIn, e.to_string()),
            CoreError::Mls(m) => groups::mls_err(m),
            other => internal(other),
        }
    }
}

pub(crate) fn from_link(e: LinkError) -> ErrorObject {
    match e {
        LinkError::Offline => err(
            IpcErrorCode::NetworkDown,
            "the server cannot be reached now; try again when online",
        ),
        LinkError::Call(quicproquo_protocol::client::ClientError::Server(w)) => refused(&w),
        LinkError::Call(other) => err(IpcErrorCode::NetworkDown, other.to_string()),
    }
}

pub(crate) fn refused(w: &WireError) -> ErrorObject {
    ErrorObject::server_refused(w)
}

/// A notification together with what subscribers need to replay it.
pub type Event = Notification;

pub struct Agent {
    pub profile: String,
    core: OnceCell<CoreHandle>,
    key_source: RwLock<Option<KeySource>>,
    link: RwLock<Option<Link>>,
    events: broadcast::Sender<Event>,
    shutdown_tx: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
    group_locks: std::sync::Mutex<HashMap<[u8; 16], Arc<Mutex<()>>>>,
    outbox_kick: Notify,
    /// One key-package refill at a time (registration and the connection
    /// coming up both refill; unserialized, both saw an empty stock and
    /// uploaded a batch each).
    refill: Mutex<()>,
    options: StartOptions,
}

impl Agent {
    pub fn new(options: StartOptions) -> Arc<Self> {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (events, _) = broadcast::channel(1024);
        Arc::new(Self {
            profile: options.profile.clone(),
            core: OnceCell::new(),
            key_source: RwLock::new(None),
            link: RwLock::new(None),
            events,
            shutdown_tx,
            shutdown,
            group_locks: std::sync::Mutex::new(HashMap::new()),
            refill: Mutex::new(()),
            outbox_kick: Notify::new(),
            options,
        })
    }

    pub(crate) fn core(&self) -> AgentResult<&CoreHandle> {
        self.core.get().ok_or_else(|| {
            err(
                IpcErrorCode::Locked,
                "the state is locked: unlock with the passphrase (QPQ_PASSPHRASE or `unlock`)",
            )
        })
    }

    pub(crate) async fn link(&self) -> AgentResult<Link> {
        self.link.read().await.clone().ok_or_else(|| {
            err(
                IpcErrorCode::NotLoggedIn,
                "not logged in: register or log in first",
            )
        })
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

    /// Serializes membership changes (and handshake processing) per group.
    pub(crate) fn group_lock(&self, group: &[u8; 16]) -> Arc<Mutex<()>> {
        self.group_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(*group)
            .or_default()
            .clone()
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
        let core = self.core()?;
        let (latest, backlog) = core
            .run(move |c| -> rusqlite::Result<(u64, Vec<Event>)> {
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
            })
            .await
            .map_err(internal)?;
        Ok((Seq(latest), backlog, rx))
    }

    /// A conversation as front-ends see it.
    pub(crate) fn view(c: &Core, conv: &Conversation) -> Result<IpcConversation, CoreError> {
        let unread = messages::unread(c.db(), conv.id)?;
        let members = match c.engine_ref() {
            Some(e) => match crate::mls::GroupId::from_slice(&conv.group_id) {
                Some(g) if conv.active => e
                    .members(g)
                    .map(|ms| ms.into_iter().map(|m| m.username.to_string()).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        Ok(IpcConversation {
            id: ConversationId(conv.id.0),
            name: conv.name.clone(),
            kind: match conv.kind {
                Kind::Dm => ConversationKind::Dm,
                Kind::Group => ConversationKind::Group,
            },
            members,
            unread,
            ciphersuite: if conv.ciphersuite == "classic" {
                Ciphersuite::Classic
            } else {
                Ciphersuite::Hybrid
            },
            last_activity_ms: conv.last_activity_ms,
        })
    }

    pub async fn conversations(&self) -> AgentResult<Vec<IpcConversation>> {
        self.core()?
            .run(|c| -> Result<_, CoreError> {
                conversations::all(c.db())?
                    .iter()
                    .map(|conv| Agent::view(c, conv))
                    .collect()
            })
            .await
            .map_err(Into::into)
    }

    /// Finds a conversation by what the user typed, or says it does not exist.
    pub(crate) async fn find(&self, r: &ConversationRef) -> AgentResult<Conversation> {
        let text = r.to_string();
        let found = self
            .core()?
            .run(move |c| conversations::resolve(c.db(), &text))
            .await
            .map_err(internal)?;
        found.ok_or_else(|| err(IpcErrorCode::NotFound, format!("no conversation `{r}`")))
    }
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

pub(crate) fn conv_id(id: Id) -> ConversationId {
    ConversationId(id.0)
}

/// Pins `username`'s identity key on first sight; a different key later is
/// recorded, flagged (`key_changed`, verification cleared) and announced
/// with an `identity` notification — never accepted silently.
pub(crate) fn pin_identity(
    c: &Core,
    username: &str,
    identity: &[u8; 32],
) -> rusqlite::Result<Option<Notification>> {
    match conversations::pin_identity(c.db(), username, identity)? {
        conversations::Pin::Changed { previous } => {
            let ev = emit(c, |seq| {
                Notification::Identity(quicproquo_protocol::ipc::notifications::IdentityChange {
                    seq,
                    username: username.to_owned(),
                    old_fingerprint: account::fingerprint(&previous),
                    new_fingerprint: account::fingerprint(identity),
                })
            })?;
            tracing::warn!(user = username, "a contact's identity key changed");
            Ok(Some(ev))
        }
        conversations::Pin::New | conversations::Pin::Same => Ok(None),
    }
}

/// Pins every member but ourselves (members seen in a Welcome or a commit).
pub(crate) fn pin_members(
    c: &Core,
    members: &[crate::mls::Member],
) -> rusqlite::Result<Vec<Notification>> {
    let me = c.engine_ref().map(|e| e.identity_key());
    let mut out = Vec::new();
    for m in members {
        if Some(m.identity) == me {
            continue;
        }
        out.extend(pin_identity(c, m.username.as_str(), m.identity.as_bytes())?);
    }
    Ok(out)
}

/// A new conversation row for an MLS group we created or joined.
pub(crate) fn new_conversation(
    kind: Kind,
    name: String,
    group: crate::mls::GroupId,
    peer: Option<String>,
    suite: crate::mls::Suite,
) -> Conversation {
    Conversation {
        id: Id::random(),
        kind,
        name,
        group_id: group.0.to_vec(),
        peer,
        ciphersuite: match suite {
            crate::mls::Suite::Classic => "classic",
            crate::mls::Suite::Hybrid => "hybrid",
        }
        .into(),
        last_activity_ms: db::now_ms(),
        active: true,
    }
}
