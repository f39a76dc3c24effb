//! The async IPC client `qpq-ctl` and `qpq-tui` share (feature `ipc-client`).
//!
//! [`IpcClient::connect`] opens the profile's socket, checks that the
//! daemon behind it is this user's own ([`trust`]: before anything is
//! sent), and says `hello`;
//! [`IpcClient::connect_or_start`] also starts `qpqd` when nobody answers,
//! serialized by a file lock so that many front-ends starting at once make
//! one daemon (see [`launch`]).
//!
//! Tasks (one owner per resource; see docs/src/contributing/architecture.md):
//! a reader task owns the socket's read side and routes
//! each response to its waiting call through a oneshot, keyed by id, and each
//! notification to the subscription's bounded queue; a writer task owns the
//! write side and writes whole lines it receives over a bounded mpsc, so a
//! cancelled call never leaves half a line on the socket. Both live in a
//! `JoinSet` dropped (and so aborted) with the last handle on the client.
//!
//! The reader never waits for a slow subscriber: when the notification queue
//! is full it marks the subscription lagged and drops notifications until
//! the subscription has re-subscribed from the last `seq` it handed out; the
//! daemon replays from there, so nothing is lost or repeated. Every wait on
//! the daemon has a timeout, except waiting for the next notification.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::tokio::Stream as _;
use interprocess::local_socket::{GenericFilePath, ToFsName};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::jsonrpc::{request_line, Id, MalformedLine, ServerMessage};
use super::methods::{HelloParams, HelloResult, Method, SubscribeParams, SubscribeResult};
use super::values::Seq;
use super::{ErrorObject, IpcErrorCode, LineBuffer, Notification, IPC_PROTOCOL_VERSION};
use crate::paths::{PathError, Paths};

pub mod launch;
pub mod paging;
pub mod trust;

pub use launch::{locate_daemon, spawn_detached, DaemonLauncher, DAEMON_PROGRAM};
pub use paging::HistoryPage;
pub use trust::Untrusted;

/// How long a call waits for its answer by default.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening the socket may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a started daemon has to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one line may take to write before the connection counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Notifications buffered for a subscriber before it counts as lagging.
const NOTIFICATION_QUEUE: usize = 1024;
const WRITE_QUEUE: usize = 64;
const READ_CHUNK: usize = 16 * 1024;

/// How a front-end introduces itself and how long it waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The `client` of `hello`, e.g. `qpq-tui`.
    pub client: String,
    pub call_timeout: Duration,
    pub connect_timeout: Duration,
    pub start_timeout: Duration,
    /// Start the daemon even if it was stopped on purpose (an explicit
    /// start); clears the mark.
    pub start_stopped: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            client: "qpq-client".to_owned(),
            call_timeout: CALL_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            start_timeout: START_TIMEOUT,
            start_stopped: false,
        }
    }
}

impl ClientOptions {
    pub fn new(client: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            ..Self::default()
        }
    }
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("qpqd is not running (nothing answers at {})", socket.display())]
    NotRunning {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to qpqd at {}: {source}", socket.display())]
    Io {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The socket is not provably this user's own daemon (see [`trust`]);
    /// nothing was written to it.
    #[error(
        "refusing to talk to {}: {reason}; nothing was sent to it \
         (another user may be posing as qpqd)",
        socket.display()
    )]
    Untrusted { socket: PathBuf, reason: Untrusted },
    /// Not running because it was stopped on purpose; not started again
    /// behind the user's back.
    #[error(
        "qpqd was stopped on purpose (`qpq-ctl daemon stop`) and is not started again \
         on its own: start it with `qpq-ctl daemon start` (or the TUI)"
    )]
    StoppedOnPurpose { marker: PathBuf },
    #[error("{}", version_message(*client, *daemon))]
    VersionMismatch { client: u32, daemon: Option<u32> },
    #[error("qpqd refused hello: {0}")]
    Hello(#[source] CallError),
    #[error(transparent)]
    Paths(#[from] PathError),
    #[error("cannot start qpqd: {0}")]
    Launch(#[source] std::io::Error),
    #[error("qpqd exited ({status}) before answering; its log is {}", log.display())]
    DaemonExited {
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    #[error("qpqd did not answer within {timeout:?} of being started; its log is {}", log.display())]
    StartTimeout { timeout: Duration, log: PathBuf },
    #[error("waited {timeout:?} for another front-end to start qpqd (lock {})", lock.display())]
    LockTimeout { timeout: Duration, lock: PathBuf },
    #[error("cannot take the lock {}: {source}", lock.display())]
    Lock {
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn version_message(client: u32, daemon: Option<u32>) -> String {
    let daemon = daemon.map_or_else(
        || "another IPC protocol".to_owned(),
        |v| format!("IPC protocol {v}"),
    );
    format!(
        "the running qpqd speaks {daemon}, this front-end speaks IPC protocol {client}: \
         stop that qpqd (`qpq-ctl shutdown` from a matching version, or end the process) \
         so a matching one starts, or run matching versions"
    )
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The daemon answered with a JSON-RPC error.
    #[error("qpqd: {0}")]
    Rpc(#[source] ErrorObject),
    #[error("qpqd did not answer `{method}` within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    /// The connection is gone: the daemon exited or restarted.
    #[error("the connection to qpqd is closed (the daemon exited or restarted)")]
    Disconnected,
    #[error("cannot encode the params of `{method}`: {source}")]
    Encode {
        method: String,
        #[source]
        source: serde_json::Error,
    },
    /// The daemon's answer did not make sense.
    #[error("qpqd answered `{method}` with something this client cannot read: {reason}")]
    Protocol { method: String, reason: String },
    /// The request would exceed the daemon's line limit.
    #[error("the request `{method}` is {len} bytes, more than the {max} a line may hold", max = super::MAX_LINE)]
    TooLarge { method: String, len: usize },
    #[error("this connection already has a subscription")]
    AlreadySubscribed,
}

impl CallError {
    /// The daemon's error code, when it answered with one.
    pub fn code(&self) -> Option<IpcErrorCode> {
        match self {
            CallError::Rpc(e) => e.kind(),
            _ => None,
        }
    }
}

type Reply = Result<Value, CallError>;

struct Pending {
    method: String,
    reply: oneshot::Sender<Reply>,
    /// A `subscribe`: once answered, the reader forwards notifications again.
    resumes_stream: bool,
}

/// State the reader, the writer and the callers share. `None` once the
/// connection is closed, which fails every waiting call.
struct Shared {
    pending: Mutex<Option<HashMap<i64, Pending>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Option<HashMap<i64, Pending>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, id: i64) -> Option<Pending> {
        self.lock().as_mut()?.remove(&id)
    }

    fn close(&self) {
        self.lock().take();
    }
}

/// Removes a call's entry when the call ends, however it ends.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: i64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.take(self.id);
    }
}

enum Item {
    Note(Box<Notification>),
    /// The queue was full: notifications after this were dropped.
    Lagged,
}

struct Inner {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Vec<u8>>,
    notifications: Mutex<Option<mpsc::Receiver<Item>>>,
    next_id: AtomicI64,
    call_timeout: Duration,
    /// The reader and writer; dropping the set aborts them.
    _tasks: JoinSet<()>,
}

/// A connection to `qpqd`. Calls may run concurrently from several tasks;
/// clones share the connection, which closes when the last clone and the
/// subscription are dropped.
#[derive(Clone)]
pub struct IpcClient {
    inner: Arc<Inner>,
    hello: HelloResult,
}

impl std::fmt::Debug for IpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcClient")
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

impl IpcClient {
    /// Connects to the profile's daemon and says `hello`.
    pub async fn connect(paths: &Paths) -> Result<IpcClient, ConnectError> {
        Self::connect_with(paths, &ClientOptions::default()).await
    }

    pub async fn connect_with(
        paths: &Paths,
        opts: &ClientOptions,
    ) -> Result<IpcClient, ConnectError> {
        let stream = open(&paths.socket, opts.connect_timeout).await?;
        let inner = Arc::new(Inner::start(stream, opts.call_timeout));
        let hello = handshake(&inner, opts).await?;
        Ok(IpcClient { inner, hello })
    }

    /// Connects, starting the daemon with `launcher` first if none answers.
    pub async fn connect_or_start(
        paths: &Paths,
        launcher: &DaemonLauncher,
    ) -> Result<IpcClient, ConnectError> {
        Self::connect_or_start_with(paths, launcher, &ClientOptions::default()).await
    }

    pub async fn connect_or_start_with(
        paths: &Paths,
        launcher: &DaemonLauncher,
        opts: &ClientOptions,
    ) -> Result<IpcClient, ConnectError> {
        launch::connect_or_start(paths, launcher, opts).await
    }

    /// What the daemon said in `hello`.
    pub fn hello(&self) -> &HelloResult {
        &self.hello
    }

    /// Calls `method` with `params` and decodes the result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
    ) -> Result<R, CallError> {
        let value = self
            .inner
            .call_value(method, &params, false, self.inner.call_timeout)
            .await?;
        decode(method, value)
    }

    /// [`IpcClient::call`] with the method's types checked at compile time:
    /// `client.request::<method::Send>(params)`.
    pub async fn request<M: Method>(&self, params: M::Params) -> Result<M::Result, CallError> {
        self.call(M::NAME, params).await
    }

    /// Subscribes to notifications: with `since`, every notification after
    /// that `seq` comes first, then live ones. One subscription per client.
    pub async fn subscribe(&self, since: Option<Seq>) -> Result<Subscription, CallError> {
        let rx = lock(&self.inner.notifications)
            .take()
            .ok_or(CallError::AlreadySubscribed)?;
        match self.inner.subscribe(since).await {
            Ok(result) => Ok(Subscription {
                inner: Arc::clone(&self.inner),
                rx,
                last: since.map_or(result.seq, |s| s.min(result.seq)),
                resubscribe: false,
            }),
            Err(e) => {
                *lock(&self.inner.notifications) = Some(rx);
                Err(e)
            }
        }
    }
}

/// The notifications of one client. Keeps the connection open while it lives.
pub struct Subscription {
    inner: Arc<Inner>,
    rx: mpsc::Receiver<Item>,
    last: Seq,
    resubscribe: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("last_seq", &self.last)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next notification, in `seq` order, each once. `Disconnected`
    /// when the daemon is gone: reconnect and subscribe with
    /// [`Subscription::last_seq`] to resume. Cancel-safe.
    pub async fn next(&mut self) -> Result<Notification, CallError> {
        loop {
            if self.resubscribe {
                self.inner.subscribe(Some(self.last)).await?;
                self.resubscribe = false;
            }
            match self.rx.recv().await {
                None => return Err(CallError::Disconnected),
                Some(Item::Lagged) => self.resubscribe = true,
                Some(Item::Note(n)) if n.seq() <= self.last => {}
                Some(Item::Note(n)) => {
                    self.last = n.seq();
                    return Ok(*n);
                }
            }
        }
    }

    /// The `seq` of the last notification handed out (or, before any, where
    /// the subscription started).
    pub fn last_seq(&self) -> Seq {
        self.last
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn decode<R: DeserializeOwned>(method: &str, value: Value) -> Result<R, CallError> {
    serde_json::from_value(value).map_err(|e| CallError::Protocol {
        method: method.to_owned(),
        reason: format!("unexpected result: {e}"),
    })
}

/// Connects to `socket` once both trust checks pass ([`trust`]): the
/// directory before connecting, the peer's uid after. Nothing is written
/// here; the caller's `hello` is the first byte sent.
async fn open(socket: &Path, timeout: Duration) -> Result<Stream, ConnectError> {
    trust::check_directory(socket)?;
    let stream = connect(socket, timeout).await?;
    trust::check_peer(socket, &stream)?;
    Ok(stream)
}

async fn connect(socket: &Path, timeout: Duration) -> Result<Stream, ConnectError> {
    let io = |source| ConnectError::Io {
        socket: socket.to_owned(),
        source,
    };
    let name = socket.to_fs_name::<GenericFilePath>().map_err(io)?;
    match tokio::time::timeout(timeout, Stream::connect(name)).await {
        Err(_) => Err(io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}"),
        ))),
        Ok(Err(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Err(ConnectError::NotRunning {
                socket: socket.to_owned(),
                source: e,
            })
        }
        Ok(Err(e)) => Err(io(e)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

async fn handshake(inner: &Inner, opts: &ClientOptions) -> Result<HelloResult, ConnectError> {
    let params = HelloParams {
        client: opts.client.clone(),
        client_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: IPC_PROTOCOL_VERSION,
    };
    let mismatch = |daemon| ConnectError::VersionMismatch {
        client: IPC_PROTOCOL_VERSION,
        daemon,
    };
    let value = match inner
        .call_value("hello", &params, false, opts.call_timeout)
        .await
    {
        Ok(value) => value,
        Err(CallError::Rpc(e)) if e.kind() == Some(IpcErrorCode::VersionMismatch) => {
            return Err(mismatch(e.daemon_protocol()))
        }
        Err(e) => return Err(ConnectError::Hello(e)),
    };
    // Check the version before the shape: another version may shape it differently.
    let protocol = value.get("protocol").and_then(Value::as_u64);
    if protocol != Some(u64::from(IPC_PROTOCOL_VERSION)) {
        return Err(mismatch(protocol.and_then(|p| u32::try_from(p).ok())));
    }
    decode("hello", value).map_err(ConnectError::Hello)
}

impl Inner {
    fn start(stream: Stream, call_timeout: Duration) -> Inner {
        let stream = Arc::new(stream);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Some(HashMap::new())),
        });
        let (writer, write_rx) = mpsc::channel(WRITE_QUEUE);
        let (note_tx, note_rx) = mpsc::channel(NOTIFICATION_QUEUE);
        let mut tasks = JoinSet::new();
        tasks.spawn(read_loop(Arc::clone(&stream), Arc::clone(&shared), note_tx));
        tasks.spawn(write_loop(stream, Arc::clone(&shared), write_rx));
        Inner {
            shared,
            writer,
            notifications: Mutex::new(Some(note_rx)),
            next_id: AtomicI64::new(1),
            call_timeout,
            _tasks: tasks,
        }
    }

    async fn call_value<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
        resumes_stream: bool,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line =
            request_line(&Id::Num(id), method, params).map_err(|source| CallError::Encode {
                method: method.to_owned(),
                source,
            })?;
        // The daemon would answer an over-long line with `"id": null`,
        // which no call could be matched to.
        if line.len() > super::MAX_LINE + 1 {
            return Err(CallError::TooLarge {
                method: method.to_owned(),
                len: line.len() - 1,
            });
        }
        let (reply, answer) = oneshot::channel();
        match self.shared.lock().as_mut() {
            None => return Err(CallError::Disconnected),
            Some(pending) => {
                pending.insert(
                    id,
                    Pending {
                        method: method.to_owned(),
                        reply,
                        resumes_stream,
                    },
                );
            }
        }
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        let deadline = Instant::now() + timeout;
        let timed_out = || CallError::Timeout {
            method: method.to_owned(),
            timeout,
        };
        tokio::time::timeout_at(deadline, self.writer.send(line))
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| CallError::Disconnected)?;
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(timed_out()),
            Ok(Err(_)) => Err(CallError::Disconnected),
            Ok(Ok(reply)) => reply,
        }
    }

    async fn subscribe(&self, since: Option<Seq>) -> Result<SubscribeResult, CallError> {
        let value = self
            .call_value(
                "subscribe",
                &SubscribeParams { since },
                true,
                self.call_timeout,
            )
            .await?;
        decode("subscribe", value)
    }
}

async fn read_loop(stream: Arc<Stream>, shared: Arc<Shared>, notes: mpsc::Sender<Item>) {
    let mut reader = &*stream;
    let mut lines = LineBuffer::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut dropping = false;
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("reading from qpqd: {e}");
                break;
            }
        };
        lines.extend(&chunk[..n]);
        while let Some(line) = lines.next_line() {
            match line {
                Ok(line) => route(line, &shared, &notes, &mut dropping),
                Err(e) => tracing::warn!("skipping a line from qpqd: {e}"),
            }
        }
    }
    shared.close();
}

fn route(line: &[u8], shared: &Shared, notes: &mpsc::Sender<Item>, dropping: &mut bool) {
    match ServerMessage::parse(line) {
        Ok(ServerMessage::Response(response)) => {
            let Some(Id::Num(id)) = response.id else {
                match &response.outcome {
                    // A line that answers no request: why the daemon is
                    // closing the connection (`-32012`, too slow). The
                    // subscription then ends `Disconnected`, and the
                    // front-end resubscribes from its last `seq`.
                    Err(e) if response.id.is_none() => tracing::warn!("qpqd: {e}"),
                    _ => tracing::warn!(
                        "qpqd answered with an id this client never sent: {response:?}"
                    ),
                }
                return;
            };
            // No entry: the call already timed out or was cancelled.
            let Some(pending) = shared.take(id) else {
                return;
            };
            let ok = response.outcome.is_ok();
            if pending.resumes_stream && ok {
                *dropping = false;
            }
            let _ = pending.reply.send(response.outcome.map_err(CallError::Rpc));
        }
        Ok(ServerMessage::Notification(raw)) => match Notification::from_raw(&raw) {
            Ok(Some(note)) => forward(note, notes, dropping),
            Ok(None) => tracing::debug!("skipping unknown notification `{}`", raw.method),
            Err(e) => tracing::warn!("skipping malformed `{}` notification: {e}", raw.method),
        },
        Err(MalformedLine {
            id: Some(Id::Num(id)),
            reason,
        }) => {
            if let Some(pending) = shared.take(id) {
                let _ = pending.reply.send(Err(CallError::Protocol {
                    method: pending.method,
                    reason,
                }));
            }
        }
        Err(e) => tracing::warn!("{e}"),
    }
}

fn forward(note: Notification, notes: &mpsc::Sender<Item>, dropping: &mut bool) {
    if *dropping {
        return;
    }
    // This task is the only sender, so the capacity it sees cannot shrink
    // before the send: the last slot is kept for the lag marker.
    let item = if notes.capacity() <= 1 {
        *dropping = true;
        Item::Lagged
    } else {
        Item::Note(Box::new(note))
    };
    // Full cannot happen (see above); Closed means nobody listens.
    let _ = notes.try_send(item);
}

async fn write_loop(stream: Arc<Stream>, shared: Arc<Shared>, mut lines: mpsc::Receiver<Vec<u8>>) {
    let mut writer = &*stream;
    while let Some(line) = lines.recv().await {
        match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&line)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("writing to qpqd: {e}");
                break;
            }
            Err(_) => {
                tracing::warn!(
                    "qpqd stopped reading for {WRITE_TIMEOUT:?}; closing the connection"
                );
                break;
            }
        }
    }
    shared.close();
}

#[cfg(test)]
mod tests;
