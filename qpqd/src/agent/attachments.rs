//! Attachments (issue 18): files sent with a message, end to end encrypted.
//!
//! **attach** checks the file, then encrypts it in one streaming pass
//! (bounded memory, `protocol::blob`) under a fresh key into the spool,
//! `<data dir>/spool/<blob id>` (0600 in a 0700 directory, fsync'd before
//! the answer), so the file may change or go once `attach` returned. When
//! online it creates the blob on the server first (for the size the file
//! has: one that changes size while it is read is refused), so a file past
//! the server's size limit or the account's quota is the answer's error and
//! nothing is kept; then the upload starts at once, sending the spool
//! file's pieces as the encryptor writes them (an *early upload*), which
//! the uploader takes over when it ends. The message (its text the caption)
//! and its attachment row are stored in one transaction; the MLS payload
//! waits in the row.
//!
//! **The uploader** ([`Agent::upload_loop`], one task per link) takes every
//! attachment still `uploading` (once its early upload, if any, ended):
//! `blobCreate` (idempotent: it answers the resume point), `blobUpload` in
//! pieces of `MAX_BLOB_CHUNK_BYTES` from there, four in flight (the server
//! orders pieces that overtake each other), `blobFinish`; then the payload goes to the outbox, so the message
//! is sent, retried and reported (`delivery`) like any text, and the spool
//! file is deleted. The spool holds ciphertext, so a resumed upload sends
//! the very bytes it sent before (the STREAM nonces never meet other
//! plaintext). A dropped connection, a server restart or a `kill -9` of
//! the daemon resume from the server's resume point. A refusal that will
//! not pass (too large, quota, not a member) fails the message, with the
//! reason; `message.retry` tries the upload again, `message.discard`
//! removes it and its spool file. An attachment's message is sent when its
//! upload is done: a text sent after it may arrive first.
//!
//! **Receiving** stores the message with its attachment `available`.
//!
//! **download** answers at once (`downloading`) and fetches in the
//! background: `blobDownload` ranges with a few in flight (`ranges`),
//! handed in order to a blocking thread (`sink`) that decrypts them into
//! `<path>.part` (0600) while the next ones arrive, checks the end
//! (truncation, the hash) and fsyncs; only then is it moved to `path`. A
//! failed check leaves nothing: the `.part` is deleted and the attachment
//! is `corrupt`. A dropped connection resumes from the bytes already
//! handed to the sink (the decryptor's state is in its thread); a daemon
//! stopped mid-download starts over when asked again. The server's E054
//! makes it `expired`.
//!
//! Every step is said in `transfer` notifications: at the start, at most
//! every 250 ms (once 1 % more moved, or every 5 s while anything moves),
//! and at the end.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use quicproquo_protocol::backoff::Backoff;
use quicproquo_protocol::blob::{self, BlobError, BlobId, Descriptor, FileKey, DEFAULT_CHUNK_SIZE};
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::file_names;
use quicproquo_protocol::ipc::methods::{AttachParams, DownloadParams};
use quicproquo_protocol::ipc::notifications::{Notification, TransferUpdate};
use quicproquo_protocol::ipc::values::{
    Attachment, DeliveryState, Message as IpcMessage, TransferDirection, TransferState,
};
use quicproquo_protocol::limits::MAX_BLOB_CHUNK_BYTES;
use quicproquo_protocol::text::MessageText;
use quicproquo_protocol::wire::{self, BlobState};
use tokio::sync::Notify;

use super::history::{conv_id, find, find_active};
use super::{emit, Agent, AgentError, AgentResult};
use crate::core::Core;
use crate::db::attachments::{self as store, Stored};
use crate::db::conversations::Conversation;
use crate::db::messages::{self, Message, State};
use crate::db::{now_ms, outbox, Id};
use crate::link::{ConnState, Link};
use crate::payload::{AttachmentX, MessageRef};

mod ranges;
mod sink;

use ranges::Ranges;
use sink::Sink;

/// Pieces of a download requested at once: enough to keep the connection
/// busy while one is decrypted and written.
const DOWNLOADS_IN_FLIGHT: usize = 4;

/// Pieces of an upload sent at once.
const UPLOADS_IN_FLIGHT: usize = 4;

/// Upload pieces in flight, oldest first; those still running when it is
/// dropped (a gap, a failure) are cancelled.
#[derive(Default)]
struct Flight(VecDeque<tokio::task::JoinHandle<Result<AgentResult<BlobState>, Ended>>>);

impl Drop for Flight {
    fn drop(&mut self) {
        for piece in &self.0 {
            piece.abort();
        }
    }
}

/// One upload's pieces, as [`Agent::send_pieces`] needs them.
struct Pieces {
    blob: BlobId,
    group: Vec<u8>,
    /// The blob's size (ciphertext).
    total: u64,
    /// The file's size.
    size: u64,
    /// The spool file.
    file: Arc<File>,
    /// While `attach` still writes it.
    spooling: Option<Arc<Spooling>>,
    /// Whose progress to tell, once the message exists.
    moving: Arc<OnceLock<Moving>>,
}

impl Pieces {
    /// The bytes of the spool file that may be sent.
    fn ready(&self) -> u64 {
        match &self.spooling {
            Some(s) => match s.available() {
                (_, true) => self.total,
                (written, false) => written,
            },
            None => self.total,
        }
    }

    /// Waits until more than `ready` bytes are spooled; an error once
    /// spooling stopped without finishing.
    async fn spooled_past(&self, ready: u64) -> Result<(), Ended> {
        let Some(s) = &self.spooling else {
            return Ok(());
        };
        loop {
            let mut moved = std::pin::pin!(s.moved.notified());
            moved.as_mut().enable();
            if s.failed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(Ended::Later(AgentError::internal("spooling stopped")));
            }
            if self.ready() > ready {
                return Ok(());
            }
            moved.await;
        }
    }

    /// Bytes of the file that `stored` bytes of the blob carry (for
    /// progress).
    fn plain(&self, stored: u64) -> u64 {
        let ct = self.total.max(1);
        ((u128::from(stored.min(ct)) * u128::from(self.size)) / u128::from(ct)) as u64
    }
}

/// What `attach` began (an early upload, a spool file), taken back when
/// dropped unless [`Undo::disarm`]ed: the message was stored.
struct Undo {
    early: Option<tokio::task::JoinHandle<()>>,
    spool: Option<PathBuf>,
}

impl Undo {
    fn disarm(mut self) {
        self.early = None;
        self.spool = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(early) = self.early.take() {
            early.abort();
        }
        if let Some(path) = self.spool.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `len` bytes of the spool file at `offset`.
async fn read_piece(file: Arc<File>, offset: u64, len: usize) -> Result<Vec<u8>, Ended> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, offset).map(|_| buf)
    })
    .await
    .map_err(AgentError::internal)?
    .map_err(|e| {
        Ended::Failed(
            TransferState::Failed,
            format!("the spool file is damaged: {e}"),
        )
    })
}

/// The uploader's and the downloads' state in memory.
#[derive(Default)]
pub(crate) struct Transfers {
    /// Wakes the uploader (a new attachment, a retry).
    kick: Notify,
    /// Set once a pass found nothing to upload, until something is
    /// attached or retried: an idle uploader costs no core trip.
    idle: std::sync::atomic::AtomicBool,
    /// Messages whose attachment is being downloaded now.
    downloading: std::sync::Mutex<HashSet<Id>>,
    /// Blobs `attach` is uploading while it spools them: the uploader
    /// waits for each to end before it takes the blob over.
    early: std::sync::Mutex<HashMap<BlobId, Arc<Notify>>>,
}

impl Transfers {
    /// Something (may) wait to be uploaded: the uploader looks now.
    pub(super) fn wake(&self) {
        self.idle.store(false, std::sync::atomic::Ordering::SeqCst);
        self.kick.notify_one();
    }

    fn downloading(&self) -> std::sync::MutexGuard<'_, HashSet<Id>> {
        self.downloading.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn early(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, Arc<Notify>>> {
        self.early.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no early upload of `blob` runs.
    async fn early_ended(&self, blob: BlobId) {
        loop {
            let Some(ended) = self.early().get(&blob).cloned() else {
                return;
            };
            let mut notified = std::pin::pin!(ended.notified());
            notified.as_mut().enable();
            if !self.early().contains_key(&blob) {
                return;
            }
            notified.await;
        }
    }
}

/// An early upload registered in [`Transfers`]; ends it when dropped
/// (finished, failed, or its task cancelled before it ran alike).
struct EarlyUpload {
    agent: Arc<Agent>,
    blob: BlobId,
}

impl EarlyUpload {
    fn start(agent: Arc<Agent>, blob: BlobId) -> Self {
        agent.transfers.early().insert(blob, Arc::default());
        EarlyUpload { agent, blob }
    }
}

impl Drop for EarlyUpload {
    fn drop(&mut self) {
        if let Some(ended) = self.agent.transfers.early().remove(&self.blob) {
            ended.notify_waiters();
        }
    }
}

/// How far `attach` has written the spool file: an early upload sends only
/// what is there.
#[derive(Default)]
struct Spooling {
    written: std::sync::atomic::AtomicU64,
    /// Every byte is written (`written` is the file's length).
    done: std::sync::atomic::AtomicBool,
    /// Spooling stopped without finishing.
    failed: std::sync::atomic::AtomicBool,
    moved: Notify,
}

impl Spooling {
    /// Bytes of the spool file that may be read, and whether it is whole.
    fn available(&self) -> (u64, bool) {
        use std::sync::atomic::Ordering;
        let done = self.done.load(Ordering::Acquire);
        (self.written.load(Ordering::Acquire), done)
    }

    fn end(&self, ok: bool) {
        use std::sync::atomic::Ordering;
        let flag = if ok { &self.done } else { &self.failed };
        flag.store(true, Ordering::Release);
        self.moved.notify_waiters();
    }
}

/// The spool file under its buffer: counts what reached it.
struct Counting<'a> {
    file: &'a File,
    spooling: Option<&'a Spooling>,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(s) = self.spooling {
            s.written
                .fetch_add(n as u64, std::sync::atomic::Ordering::AcqRel);
            s.moved.notify_waiters();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A file encrypted into the spool, about to become a message.
pub(super) struct Spooled {
    pub x: AttachmentX,
    /// The spool file's name.
    pub spool: String,
    /// The file attached (shown as the attachment's `path`).
    pub source: String,
}

/// Core operation, inside `queue_outgoing`'s transaction: our message `m`
/// has attachment `a`; its payload waits in the row until the upload is done.
pub(super) fn hold(
    c: &Core,
    m: &Message,
    a: Spooled,
    reply_to: Option<MessageRef>,
    ttl: Option<u64>,
) -> AgentResult<()> {
    let body = zeroize::Zeroizing::new(a.x.payload(m.id, m.timestamp_ms, reply_to, ttl).encode());
    store::insert(
        c.db(),
        &Stored {
            message: m.id,
            descriptor: a.x.descriptor,
            state: TransferState::Uploading,
            path: Some(a.source),
            error: None,
            spool: Some(a.spool),
        },
        Some(&body),
    )?;
    Ok(())
}

/// Core operation, inside the inbox's: message `id` just stored carries
/// attachment `a`.
pub(super) fn received(c: &Core, id: Id, a: AttachmentX) -> rusqlite::Result<()> {
    store::insert(
        c.db(),
        &Stored {
            message: id,
            descriptor: a.descriptor,
            state: TransferState::Available,
            path: None,
            error: None,
            spool: None,
        },
        None,
    )?;
    Ok(())
}

/// Core operation, for `message.retry`: an attachment whose upload failed
/// goes back to `uploading`. Whether there was one.
pub(super) fn retry_upload(c: &Core, id: Id) -> rusqlite::Result<bool> {
    match store::get(c.db(), id)? {
        Some(a) if a.state == TransferState::Failed && a.spool.is_some() => {
            store::set_state(c.db(), id, TransferState::Uploading, None, None)
        }
        _ => Ok(false),
    }
}

/// What every `transfer` notification of one transfer says alike.
#[derive(Clone, Copy)]
struct Moving {
    conversation: Id,
    id: Id,
    direction: TransferDirection,
    /// Bytes of the file.
    total: u64,
}

impl Moving {
    /// The transfer's `transfer` notification at `state`, logged.
    fn event(
        &self,
        c: &Core,
        state: TransferState,
        done: u64,
        path: Option<String>,
        error: Option<String>,
    ) -> rusqlite::Result<Notification> {
        emit(c, |seq| {
            Notification::Transfer(TransferUpdate {
                seq,
                conversation: conv_id(self.conversation),
                id: quicproquo_protocol::ipc::values::MessageId(self.id.0),
                direction: self.direction,
                state,
                done,
                total: self.total,
                path,
                error,
            })
        })
    }
}

/// When the next progress notification is due: 1 % of the file further,
/// or 250 ms later with anything new.
struct Progress {
    total: u64,
    last_done: u64,
    last_at: Instant,
}

impl Progress {
    fn new(total: u64, done: u64) -> Self {
        Progress {
            total,
            last_done: done,
            last_at: Instant::now(),
        }
    }

    /// At most every 250 ms: once 1 % more moved, or every 5 s while
    /// anything moves (a slow transfer still shows it is alive). Each one is
    /// a write to the notification log, and a fast transfer (100 MiB in a
    /// second on loopback) must not spend its time logging 100 of them.
    fn due(&mut self, done: u64) -> bool {
        let step = (self.total / 100).max(1);
        let since = self.last_at.elapsed();
        let due = done > self.last_done
            && since >= Duration::from_millis(250)
            && (done >= self.last_done + step || since >= Duration::from_secs(5));
        if due {
            self.last_done = done;
            self.last_at = Instant::now();
        }
        due
    }
}

/// The plaintext bytes `stored` ciphertext bytes stand for (for progress).
fn plain_done(d: &Descriptor, stored: u64) -> u64 {
    let ct = d.ciphertext_len().unwrap_or(1).max(1);
    ((u128::from(stored.min(ct)) * u128::from(d.size)) / u128::from(ct)) as u64
}

/// A file error naming the path and the reason.
fn file_error(path: &Path, what: &str, e: impl std::fmt::Display) -> AgentError {
    AgentError::File(format!("`{}` {what}: {e}", path.display()))
}

/// The MIME type for a file name's extension: a small table of common
/// types; anything else is `application/octet-stream`.
pub(crate) fn guess_content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => return "application/octet-stream",
    };
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "bmp" => "image/bmp",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "7z" => "application/x-7z-compressed",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mov" => "video/quicktime",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt" => "application/vnd.oasis.opendocument.text",
        _ => "application/octet-stream",
    }
}

/// Checks a name and content type by the rules a receiver applies
/// (`Descriptor::validate`): one path component, no control characters.
fn check_name(name: &str, content_type: &str) -> AgentResult<()> {
    let probe = Descriptor {
        blob_id: BlobId([0; 16]),
        key: FileKey::from_bytes([0; 32]),
        size: 0,
        chunk_size: DEFAULT_CHUNK_SIZE,
        sha256: [0; 32],
        file_name: name.to_owned(),
        content_type: content_type.to_owned(),
    };
    probe
        .validate()
        .map_err(|e| AgentError::InvalidInput(format!("{e}: {name:?} / {content_type:?}")))
}

/// A reader that remembers whether an error was its own (the user's file)
/// rather than the spool's.
struct Tagged<R> {
    inner: R,
    failed: Option<std::io::Error>,
}

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Creates `dir` (0700) if needed.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `path` for writing, 0600; with `new`, refuses an existing one.
fn private_file(path: &Path, new: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true);
    if new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// fsync of a directory, so a rename or a new file in it survives a crash.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Encrypts `source` into a new spool file under `dir` (one pass, one
/// chunk in memory); returns its descriptor and the spool file's name.
/// The file to attach, open, and its size: an absolute path to a readable
/// regular file.
fn open_source(source: &Path) -> AgentResult<(File, u64)> {
    if !source.is_absolute() {
        return Err(AgentError::File(format!(
            "`{}` is not an absolute path",
            source.display()
        )));
    }
    let meta = std::fs::metadata(source).map_err(|e| file_error(source, "cannot be read", e))?;
    if !meta.is_file() {
        return Err(AgentError::File(format!(
            "`{}` is not a regular file",
            source.display()
        )));
    }
    let input = File::open(source).map_err(|e| file_error(source, "cannot be read", e))?;
    Ok((input, meta.len()))
}

/// What `attach` decided before spooling: the blob's id and key, and the
/// size the file had (the blob is created for it; a file that changes size
/// while it is read is refused).
struct SpoolPlan {
    blob_id: BlobId,
    key: FileKey,
    size: u64,
}

impl SpoolPlan {
    fn new(size: u64) -> Self {
        SpoolPlan {
            blob_id: BlobId::generate(),
            key: FileKey::generate(),
            size,
        }
    }

    /// The ciphertext's length: the blob's size on the server.
    fn sealed_len(&self) -> AgentResult<u64> {
        blob::ciphertext_len(self.size, DEFAULT_CHUNK_SIZE)
            .map_err(|e| AgentError::File(format!("this file cannot be attached: {e}")))
    }
}

/// Encrypts `input` (the file at `source`) under `plan` into `out`, the
/// new spool file `<dir>/<blob id>`, fsync'd; says how far it got in
/// `spooling`, if given. On an error the spool file is removed. Blocks.
#[allow(clippy::too_many_arguments)]
fn spool(
    source: &Path,
    input: File,
    out: File,
    dir: &Path,
    name: String,
    content_type: String,
    plan: SpoolPlan,
    spooling: Option<&Spooling>,
) -> AgentResult<(Descriptor, String)> {
    let file_name = hex::encode(plan.blob_id.0);
    let path = dir.join(&file_name);
    let mut reader = Tagged {
        inner: BufReader::with_capacity(MAX_BLOB_CHUNK_BYTES, input),
        failed: None,
    };
    let sealed = blob::encrypt_stream(
        &plan.key,
        DEFAULT_CHUNK_SIZE,
        &mut reader,
        BufWriter::with_capacity(
            MAX_BLOB_CHUNK_BYTES,
            Counting {
                file: &out,
                spooling,
            },
        ),
    )
    .and_then(|s| out.sync_all().map(|_| s).map_err(BlobError::from));
    let sealed = match sealed {
        Ok(s) if s.size == plan.size => s,
        Ok(_) => {
            let _ = std::fs::remove_file(&path);
            return Err(AgentError::File(format!(
                "`{}` changed size while it was read: attach it again once it is complete",
                source.display()
            )));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(match reader.failed {
                Some(read) => file_error(source, "cannot be read", read),
                None => AgentError::internal(format!("writing the spool: {e}")),
            });
        }
    };
    sync_dir(dir);
    Ok((
        Descriptor {
            blob_id: plan.blob_id,
            key: plan.key,
            size: sealed.size,
            chunk_size: DEFAULT_CHUNK_SIZE,
            sha256: sealed.sha256,
            file_name: name,
            content_type,
        },
        file_name,
    ))
}

/// `path`'s last component as an attachment's default name.
fn default_name(path: &Path) -> AgentResult<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            AgentError::InvalidInput(format!(
                "`{}` has no file name that is valid UTF-8: give one with `name`",
                path.display()
            ))
        })
}

/// Where an upload stands, as the uploader needs it.
struct Upload {
    stored: Stored,
    conversation: Id,
    group: Vec<u8>,
}

impl Upload {
    fn moving(&self) -> Moving {
        Moving {
            conversation: self.conversation,
            id: self.stored.message,
            direction: TransferDirection::Up,
            total: self.stored.descriptor.size,
        }
    }
}

/// How a transfer ended badly.
enum Ended {
    /// It may pass: tried again later.
    Later(AgentError),
    /// For good, with the state it leaves and the reason.
    Failed(TransferState, String),
}

impl From<AgentError> for Ended {
    fn from(e: AgentError) -> Self {
        match &e {
            AgentError::Refused(w) => match w.code {
                ErrorCode::RateLimited
                | ErrorCode::Internal
                | ErrorCode::ShuttingDown
                | ErrorCode::Unauthenticated => Ended::Later(e),
                ErrorCode::BlobNotFound => Ended::Failed(
                    TransferState::Expired,
                    format!("{}: {}", w.code, w.code.description()),
                ),
                code => Ended::Failed(
                    TransferState::Failed,
                    format!("{code}: {}", code.description()),
                ),
            },
            AgentError::NetworkDown(_) | AgentError::NotLoggedIn(_) | AgentError::Locked(_) => {
                Ended::Later(e)
            }
            other => Ended::Failed(TransferState::Failed, other.to_string()),
        }
    }
}

/// In test (debug) builds, `QPQ_TEST_TRANSFER_DELAY_MS` slows each piece
/// of an upload or a download, so a test can stop something half-way.
fn test_piece_delay() -> Option<Duration> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var("QPQ_TEST_TRANSFER_DELAY_MS")
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_millis)
}

impl Agent {
    fn spool_dir(&self) -> PathBuf {
        self.options.data_dir.join("spool")
    }

    /// `attach`: see the module doc.
    pub async fn attach(self: &Arc<Self>, p: AttachParams) -> AgentResult<IpcMessage> {
        // A caption is checked as a text, but may be empty.
        let caption = match p.caption.is_empty() {
            true => String::new(),
            false => MessageText::new(p.caption)
                .map_err(|e| AgentError::InvalidInput(e.to_string()))?
                .into_string(),
        };
        self.token()?;
        let source = PathBuf::from(&p.path);
        if !source.is_absolute() {
            return Err(AgentError::File(format!(
                "`{}` is not an absolute path",
                p.path
            )));
        }
        let name = match p.name {
            Some(n) => n,
            None => default_name(&source)?,
        };
        let content_type = p
            .content_type
            .unwrap_or_else(|| guess_content_type(&name).to_owned());
        check_name(&name, &content_type)?;
        let r = p.conversation.clone();
        let group = self
            .core()?
            .run(move |c| -> AgentResult<Vec<u8>> { Ok(find_active(c, &r)?.group_id) })
            .await?;
        let (input, size) = open_source(&source)?;
        let plan = SpoolPlan::new(size);
        let (blob_id, sealed_len) = (plan.blob_id, plan.sealed_len()?);
        let dir = self.spool_dir();
        private_dir(&dir).map_err(|e| AgentError::internal(format!("the spool directory: {e}")))?;
        let spool_path = dir.join(hex::encode(blob_id.0));
        let out = private_file(&spool_path, true)
            .map_err(|e| AgentError::internal(format!("a spool file: {e}")))?;
        let spooling = Arc::new(Spooling::default());
        let moving = Arc::new(OnceLock::new());
        // Online, the server's limits answer now (nothing is kept) and the
        // upload starts while the file is still being encrypted; offline,
        // the uploader meets them later.
        let mut early = None;
        if let Ok(link) = self.link() {
            if link.state() == ConnState::Online {
                match self.create_blob(&link, blob_id, sealed_len, &group).await {
                    Ok(st) => {
                        let pieces = File::open(&spool_path).map(|file| Pieces {
                            blob: blob_id,
                            group: group.clone(),
                            total: sealed_len,
                            size,
                            file: Arc::new(file),
                            spooling: Some(Arc::clone(&spooling)),
                            moving: Arc::clone(&moving),
                        });
                        if let Ok(pieces) = pieces {
                            early = Some(self.start_early(link, pieces, st));
                        }
                    }
                    Err(e @ AgentError::Refused(_)) => {
                        let _ = std::fs::remove_file(&spool_path);
                        return Err(e);
                    }
                    Err(e) => tracing::debug!(error = %e, "the blob is created later"),
                }
            }
        }
        // Until the message is stored, a failure (or this call dropped, at
        // shutdown) takes back what was begun.
        let undo = Undo {
            early,
            spool: Some(spool_path),
        };
        let spooled = {
            let (src, dir, sp) = (source.clone(), dir.clone(), Arc::clone(&spooling));
            tokio::task::spawn_blocking(move || {
                spool(&src, input, out, &dir, name, content_type, plan, Some(&*sp))
            })
            .await
            .map_err(AgentError::internal)
            .and_then(|r| r)
        };
        spooling.end(spooled.is_ok());
        let (descriptor, spool_name) = spooled?;
        let spooled = Spooled {
            x: AttachmentX {
                descriptor,
                caption: String::new(),
            },
            spool: spool_name,
            source: p.path,
        };
        let r = p.conversation;
        let reply_to = p.reply_to.map(|m| Id(m.0));
        let confirm = p.confirm_changed_keys;
        let queued = self
            .core()?
            .run(move |c| {
                let mut spooled = spooled;
                spooled.x.caption = caption.clone();
                super::outbox::queue_outgoing(c, &r, caption, confirm, reply_to, Some(spooled))
            })
            .await;
        let (msg, ev) = queued?;
        undo.disarm();
        let _ = moving.set(Moving {
            conversation: Id(msg.conversation.0),
            id: Id(msg.id.0),
            direction: TransferDirection::Up,
            total: size,
        });
        self.publish(vec![ev]);
        self.transfers.wake();
        Ok(msg)
    }

    /// `blobCreate` for our file (`size` bytes sealed): the server's state
    /// of it.
    async fn create_blob(
        &self,
        link: &Link,
        blob: BlobId,
        size: u64,
        group: &[u8],
    ) -> AgentResult<BlobState> {
        Ok(link
            .request(wire::BlobCreate {
                auth: self.token()?,
                blob,
                group: group.to_vec(),
                size,
            })
            .await?)
    }

    /// Uploads `pieces` while `attach` spools them, registered so that the
    /// uploader takes the blob over (the rest, `blobFinish`, the message)
    /// only once this ended, however it ends.
    fn start_early(
        self: &Arc<Self>,
        link: Link,
        pieces: Pieces,
        st: BlobState,
    ) -> tokio::task::JoinHandle<()> {
        let guard = EarlyUpload::start(Arc::clone(self), pieces.blob);
        tokio::spawn(async move {
            let agent = Arc::clone(&guard.agent);
            let mut progress = Progress::new(pieces.size, 0);
            if let Err(e) = agent.send_pieces(&link, &pieces, st, &mut progress).await {
                let why = match e {
                    Ended::Later(e) => e.to_string(),
                    Ended::Failed(_, why) => why,
                };
                tracing::debug!(%why, "the upload begun while spooling stopped; the uploader goes on");
            }
            drop(guard);
            agent.transfers.wake();
        })
    }

    /// Uploads what waits whenever the link is up, something is attached
    /// or retried, or a back-off ends.
    pub(crate) async fn upload_loop(self: Arc<Self>, link: Link) {
        self.recover().await;
        let mut shutdown = self.shutdown_signal();
        let mut state = link.watch();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            let mut idle = Duration::from_secs(60);
            if link.state() == ConnState::Online {
                match self.upload_all(&link).await {
                    Ok(()) => backoff.reset(),
                    Err(e) => {
                        tracing::debug!(error = %e, "uploads paused");
                        idle = backoff.wait();
                    }
                }
            }
            tokio::select! {
                _ = self.transfers.kick.notified() => {}
                r = state.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Every unfinished upload, oldest first; stops at the first failure
    /// that may pass (tried again after a back-off).
    async fn upload_all(&self, link: &Link) -> AgentResult<()> {
        use std::sync::atomic::Ordering;
        if self.transfers.idle.load(Ordering::SeqCst) {
            return Ok(());
        }
        let core = self.core()?;
        // Cleared before the look, so an attach meanwhile is not missed.
        self.transfers.idle.store(true, Ordering::SeqCst);
        let uploads = core.run(pending_uploads).await.inspect_err(|_| {
            self.transfers.idle.store(false, Ordering::SeqCst);
        })?;
        for u in uploads {
            if self.is_shutting_down() {
                return Ok(());
            }
            let moving = u.moving();
            match self.upload_one(link, &u).await {
                Ok(()) => {}
                Err(Ended::Later(e)) => {
                    self.transfers.idle.store(false, Ordering::SeqCst);
                    return Err(e);
                }
                Err(Ended::Failed(state, reason)) => {
                    tracing::warn!(%reason, "an upload failed; the message waits to be retried or discarded");
                    let events = core
                        .run(move |c| upload_failed(c, moving, state, reason))
                        .await?;
                    self.publish(events);
                }
            }
        }
        Ok(())
    }

    async fn upload_one(&self, link: &Link, u: &Upload) -> Result<(), Ended> {
        let d = &u.stored.descriptor;
        let moving = u.moving();
        // `attach` may still be sending it: take over where that ends.
        self.transfers.early_ended(d.blob_id).await;
        let total = d.ciphertext_len().map_err(AgentError::internal)?;
        let st = self.create_blob(link, d.blob_id, total, &u.group).await?;
        if !st.finished {
            let Some(spool_name) = &u.stored.spool else {
                return Err(Ended::Failed(
                    TransferState::Failed,
                    "the encrypted copy of the file is gone from the spool".into(),
                ));
            };
            let file = File::open(self.spool_dir().join(spool_name)).map_err(|e| {
                Ended::Failed(
                    TransferState::Failed,
                    format!("the encrypted copy of the file cannot be read from the spool: {e}"),
                )
            })?;
            let pieces = Pieces {
                blob: d.blob_id,
                group: u.group.clone(),
                total,
                size: d.size,
                file: Arc::new(file),
                spooling: None,
                moving: Arc::new(OnceLock::from(moving)),
            };
            let done = pieces.plain(st.stored);
            self.notify_transfer(moving, TransferState::Uploading, done)
                .await;
            let mut progress = Progress::new(d.size, done);
            self.send_pieces(link, &pieces, st, &mut progress).await?;
            link.request(wire::BlobFinish {
                auth: self.token()?,
                blob: d.blob_id,
            })
            .await
            .map_err(AgentError::from)?;
        }
        let events = self
            .core()
            .map_err(Ended::from)?
            .run(move |c| uploaded(c, moving))
            .await
            .map_err(Ended::from)?;
        self.publish(events);
        if let Some(spool_name) = &u.stored.spool {
            let _ = std::fs::remove_file(self.spool_dir().join(spool_name));
        }
        self.outbox_kick.notify_one();
        Ok(())
    }

    /// Sends `p`'s blob from `st.stored` to its end with a few pieces in
    /// flight (the server orders pieces that overtake each other: one
    /// round trip per MiB would set the pace otherwise), never past what
    /// is spooled yet. A gap (the server restarted, or a piece waited too
    /// long) asks the server where to go on and goes on from there.
    async fn send_pieces(
        &self,
        link: &Link,
        p: &Pieces,
        mut st: BlobState,
        progress: &mut Progress,
    ) -> Result<(), Ended> {
        let delay = test_piece_delay();
        // A test that slows the pieces wants them one after the other.
        let in_flight = if delay.is_some() {
            1
        } else {
            UPLOADS_IN_FLIGHT
        };
        let token = self.token()?;
        // `upload_one` said the start itself.
        let mut told = p.spooling.is_none();
        'resume: while st.stored < p.total {
            let mut flight = Flight::default();
            let mut next = st.stored;
            loop {
                let ready = p.ready();
                while flight.0.len() < in_flight && next < p.total {
                    let len = (p.total - next).min(MAX_BLOB_CHUNK_BYTES as u64);
                    if next + len > ready {
                        break;
                    }
                    let (offset, f, l) = (next, Arc::clone(&p.file), link.clone());
                    let (auth, blob) = (token.clone(), p.blob);
                    flight.0.push_back(tokio::spawn(async move {
                        let data = read_piece(f, offset, len as usize).await?;
                        if let Some(delay) = delay {
                            tokio::time::sleep(delay).await;
                        }
                        let sent = wire::BlobUpload {
                            auth,
                            blob,
                            offset,
                            data,
                        };
                        Ok(l.request(sent).await.map_err(AgentError::from))
                    }));
                    next += len;
                }
                let Some(piece) = flight.0.pop_front() else {
                    if next < p.total {
                        p.spooled_past(ready).await?;
                        continue;
                    }
                    continue 'resume;
                };
                st = match piece.await.map_err(AgentError::internal)?? {
                    Ok(s) => s,
                    // Not where the server is: ask where that is.
                    Err(AgentError::Refused(w)) if w.code == ErrorCode::BlobGap => {
                        drop(flight);
                        st = self.create_blob(link, p.blob, p.total, &p.group).await?;
                        continue 'resume;
                    }
                    Err(e) => return Err(e.into()),
                };
                let done = p.plain(st.stored);
                if let Some(m) = p.moving.get() {
                    // The first once the message exists (an early upload
                    // starts before it), then as progress is due.
                    let first = !told;
                    told = true;
                    if (first || progress.due(done)) && done < p.size {
                        self.notify_transfer(*m, TransferState::Uploading, done)
                            .await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Logs and publishes one progress notification (best effort: a
    /// missed one is only a slower progress bar).
    async fn notify_transfer(&self, m: Moving, state: TransferState, done: u64) {
        let Ok(core) = self.core() else { return };
        let ev = core.run(move |c| m.event(c, state, done, None, None)).await;
        if let Ok(ev) = ev {
            self.publish(vec![ev]);
        }
    }

    /// At the start: downloads the daemon was doing when it stopped fail
    /// (their `.part` deleted), and spool files no attachment names any
    /// more go (a deleted upload, one whose row a crash never committed) —
    /// unless written in the last minutes, which may be an `attach` in
    /// flight that has not stored its row yet.
    async fn recover(&self) {
        let Ok(core) = self.core() else { return };
        let Ok((kept, parts)) = core
            .run(|c| -> rusqlite::Result<_> {
                let parts = store::interrupted_downloads(c.db())?;
                Ok((store::spool_files(c.db())?, parts))
            })
            .await
        else {
            return;
        };
        for part in parts {
            let _ = std::fs::remove_file(part);
        }
        let kept: HashSet<String> = kept.into_iter().collect();
        let Ok(entries) = std::fs::read_dir(self.spool_dir()) else {
            return;
        };
        let recent = |e: &std::fs::DirEntry| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < Duration::from_secs(600)))
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !kept.contains(&name) && !recent(&e) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Deletes the spool file `name` (a discarded upload's).
    pub(crate) fn drop_spool(&self, name: &str) {
        let _ = std::fs::remove_file(self.spool_dir().join(name));
    }

    /// `download`: see the module doc.
    pub async fn download(self: &Arc<Self>, p: DownloadParams) -> AgentResult<Attachment> {
        let r = p.conversation.clone();
        let id = Id(p.id.0);
        let (conv, stored) = self
            .core()?
            .run(move |c| -> AgentResult<(Conversation, Stored)> {
                let conv = find(c, &r)?;
                super::actions::message_in(c, &conv, id)?;
                let a = store::get(c.db(), id)?.ok_or_else(|| {
                    AgentError::InvalidInput("this message has no attachment".into())
                })?;
                Ok((conv, a))
            })
            .await?;
        match stored.state {
            // Ours, not on the server (yet).
            _ if stored.spool.is_some() => {
                return Err(AgentError::InvalidInput(
                    "this attachment is not uploaded (yet): nothing to download".into(),
                ))
            }
            TransferState::Expired => {
                return Err(AgentError::Expired(
                    "the attachment has expired: the server no longer has it".into(),
                ))
            }
            _ => {}
        }
        // Already downloaded and still the checked copy: nothing to do (to
        // the same path, or with none given). A copy changed since (edited,
        // cut short) is not the file: downloaded again, elsewhere or, with
        // `overwrite`, over it.
        let there = stored.path.as_deref().map(PathBuf::from);
        if stored.state == TransferState::Downloaded
            && p.path
                .as_deref()
                .is_none_or(|asked| there.as_deref() == Some(Path::new(asked)))
        {
            if let Some(there) = there {
                let d = stored.descriptor.clone();
                let same = tokio::task::spawn_blocking(move || holds(&there, &d))
                    .await
                    .unwrap_or(false);
                if same {
                    return Ok(stored.view());
                }
            }
        }
        let target = match &p.path {
            Some(path) => PathBuf::from(path),
            None => {
                let dir = self.options.data_dir.join("downloads");
                private_dir(&dir).map_err(|e| file_error(&dir, "cannot be created", e))?;
                file_names::free_path(&dir, &stored.descriptor.file_name, "attachment", |p| {
                    p.symlink_metadata().is_ok()
                })
            }
        };
        let shown = target.to_string_lossy().into_owned();
        let part = part_path(&target).to_string_lossy().into_owned();
        check_target(&target, p.overwrite)?;
        if !self.transfers.downloading().insert(id) {
            let mut view = stored.view();
            view.state = TransferState::Downloading;
            return Ok(view);
        }
        let moving = Moving {
            conversation: conv.id,
            id,
            direction: TransferDirection::Down,
            total: stored.descriptor.size,
        };
        let started = self
            .core()?
            .run(move |c| -> AgentResult<Notification> {
                store::set_state(c.db(), id, TransferState::Downloading, None, None)?;
                store::set_part(c.db(), id, Some(&part))?;
                Ok(moving.event(c, TransferState::Downloading, 0, None, None)?)
            })
            .await;
        let ev = match started {
            Ok(ev) => ev,
            Err(e) => {
                self.transfers.downloading().remove(&id);
                return Err(e);
            }
        };
        self.publish(vec![ev]);
        let me = Arc::clone(self);
        let descriptor = stored.descriptor.clone();
        let overwrite = p.overwrite;
        let path = target.clone();
        self.spawn(async move {
            me.download_task(moving, descriptor, path, overwrite).await;
            me.transfers.downloading().remove(&id);
        });
        let mut view = stored.view();
        view.state = TransferState::Downloading;
        view.path = Some(shown);
        view.error = None;
        Ok(view)
    }

    async fn download_task(&self, m: Moving, d: Descriptor, target: PathBuf, overwrite: bool) {
        let part = part_path(&target);
        let fetched = self.fetch(m, &d, &part).await;
        let placed = match fetched {
            Ok(()) => place(&part, &target, overwrite).map_err(|e| {
                Ended::Failed(
                    TransferState::Failed,
                    format!("`{}` cannot be written: {e}", target.display()),
                )
            }),
            Err(e) => Err(e),
        };
        let (state, error, path) = match placed {
            Ok(()) => (
                TransferState::Downloaded,
                None,
                Some(target.to_string_lossy().into_owned()),
            ),
            Err(Ended::Failed(state, why)) => (state, Some(why), None),
            Err(Ended::Later(e)) => (TransferState::Failed, Some(e.to_string()), None),
        };
        if state != TransferState::Downloaded {
            let _ = std::fs::remove_file(&part);
            tracing::info!(
                ?state,
                error = error.as_deref().unwrap_or(""),
                "a download did not complete"
            );
        }
        let Ok(core) = self.core() else { return };
        let done = if state == TransferState::Downloaded {
            d.size
        } else {
            0
        };
        let ev = core
            .run(move |c| -> AgentResult<Notification> {
                c.atomically(|c| {
                    store::set_state(c.db(), m.id, state, error.as_deref(), path.as_deref())?;
                    store::set_part(c.db(), m.id, None)?;
                    Ok(m.event(c, state, done, path, error)?)
                })
            })
            .await;
        if let Ok(ev) = ev {
            self.publish(vec![ev]);
        }
    }

    /// Fetches, decrypts and checks `d`'s blob into `part`, fsync'd. The
    /// requests run here; decryption and the writes on the sink's thread.
    async fn fetch(&self, m: Moving, d: &Descriptor, part: &Path) -> Result<(), Ended> {
        let total = d.ciphertext_len().map_err(sink::corrupt)?;
        let mut sink = Sink::start(d, part)?;
        match self.pull(m, d, total, &mut sink).await {
            Ok(()) => sink.finish().await,
            Err(e) => {
                sink.abandon().await;
                Err(e)
            }
        }
    }

    /// Moves `d`'s `total` ciphertext bytes from the server into `sink`,
    /// ranges in flight, resuming after a dropped connection from what the
    /// sink was handed.
    async fn pull(
        &self,
        m: Moving,
        d: &Descriptor,
        total: u64,
        sink: &mut Sink,
    ) -> Result<(), Ended> {
        let mut received = 0u64;
        let mut progress = Progress::new(d.size, 0);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut retries = 0;
        let delay = test_piece_delay();
        'outer: while received < total {
            let link = self.link().map_err(Ended::from)?;
            let token = self.token().map_err(Ended::from)?;
            let mut ranges = Ranges::new(
                link.clone(),
                token,
                d.blob_id,
                received,
                total,
                DOWNLOADS_IN_FLIGHT,
            );
            loop {
                ranges.fill();
                let Some((asked, mut answer)) = ranges.next() else {
                    break 'outer;
                };
                // A sink that stopped (a bad piece, a failed write) ends
                // the download now, not when the next piece is handed over.
                let answer = tokio::select! {
                    a = &mut answer => a.map_err(AgentError::internal)?,
                    e = sink.stopped() => {
                        answer.abort();
                        return Err(e);
                    }
                };
                let data = match answer.map_err(AgentError::from) {
                    Ok(data) => data,
                    Err(e) => match Ended::from(e) {
                        Ended::Later(e) if retries < 20 && !self.is_shutting_down() => {
                            drop(ranges);
                            retries += 1;
                            tracing::debug!(error = %e, "a download waits to go on");
                            if matches!(e, AgentError::NetworkDown(_)) {
                                link.wait_online(Duration::from_secs(30)).await;
                            } else {
                                tokio::time::sleep(backoff.wait()).await;
                            }
                            continue 'outer;
                        }
                        Ended::Later(e) => {
                            return Err(Ended::Failed(TransferState::Failed, e.to_string()))
                        }
                        failed => return Err(failed),
                    },
                };
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                // The server has less than the file: the sink's end check
                // says so.
                let short = (data.len() as u64) < asked;
                received += data.len() as u64;
                if !short {
                    // The next range goes out before this piece waits for
                    // room in the sink.
                    ranges.fill();
                }
                sink.put(data).await?;
                let done = plain_done(d, sink.written());
                if progress.due(done) && done < d.size {
                    self.notify_transfer(m, TransferState::Downloading, done)
                        .await;
                }
                if short {
                    break 'outer;
                }
            }
        }
        Ok(())
    }
}

/// Whether the regular file at `path` is `d`'s file: its size and SHA-256.
/// Blocks (reads the file).
fn holds(path: &Path, d: &Descriptor) -> bool {
    use sha2::{Digest, Sha256};
    let Ok(file) = File::open(path) else {
        return false;
    };
    if !file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() == d.size)
    {
        return false;
    }
    let mut hasher = Sha256::new();
    let mut reader = BufReader::with_capacity(MAX_BLOB_CHUNK_BYTES, file);
    match std::io::copy(&mut reader, &mut hasher) {
        Ok(n) => n == d.size && hasher.finalize()[..] == d.sha256[..],
        Err(_) => false,
    }
}

/// `<path>.part`, beside it.
fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    target.with_file_name(name)
}

/// Moves the checked `part` to `target`: over an existing file only with
/// `overwrite` (a hard link fails on an existing name, so one that appeared
/// meanwhile is not replaced).
fn place(part: &Path, target: &Path, overwrite: bool) -> std::io::Result<()> {
    if overwrite {
        std::fs::rename(part, target)?;
    } else {
        std::fs::hard_link(part, target)?;
        std::fs::remove_file(part)?;
    }
    if let Some(dir) = target.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Checks a download's target: absolute, its directory there and
/// writable, no file there unless `overwrite`.
fn check_target(target: &Path, overwrite: bool) -> AgentResult<()> {
    if !target.is_absolute() {
        return Err(AgentError::File(format!(
            "`{}` is not an absolute path",
            target.display()
        )));
    }
    let dir = target.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(AgentError::File(format!(
            "`{}` cannot be written: its directory does not exist",
            target.display()
        )));
    }
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(AgentError::File(format!(
            "`{}` is a directory",
            target.display()
        ))),
        Ok(_) if !overwrite => Err(AgentError::File(format!(
            "`{}` exists (download with overwrite to replace it)",
            target.display()
        ))),
        _ => {
            // The directory must take a new file: try the `.part` now.
            let part = part_path(target);
            private_file(&part, false).map_err(|e| file_error(target, "cannot be written", e))?;
            let _ = std::fs::remove_file(&part);
            Ok(())
        }
    }
}

/// Core operation: our unfinished uploads with where they go. One whose
/// conversation we left fails at once.
fn pending_uploads(c: &mut Core) -> AgentResult<Vec<Upload>> {
    let mut out = Vec::new();
    for stored in store::uploads(c.db())? {
        let Some(m) = messages::by_id(c.db(), stored.message)? else {
            continue;
        };
        let Some(conv) = crate::db::conversations::by_id(c.db(), m.conversation)? else {
            continue;
        };
        if !conv.active {
            continue;
        }
        out.push(Upload {
            stored,
            conversation: conv.id,
            group: conv.group_id,
        });
    }
    Ok(out)
}

/// Core operation: our upload is finished — its payload goes to the
/// outbox, the attachment is `uploaded`.
fn uploaded(c: &mut Core, m: Moving) -> AgentResult<Vec<Notification>> {
    c.atomically(|c| {
        let Some(body) = store::take_body(c.db(), m.id)? else {
            return Ok(Vec::new());
        };
        let body = zeroize::Zeroizing::new(body);
        outbox::push(c.db(), m.conversation, &body, Some(m.id), now_ms())?;
        store::set_state(c.db(), m.id, TransferState::Uploaded, None, None)?;
        Ok(vec![m.event(
            c,
            TransferState::Uploaded,
            m.total,
            None,
            None,
        )?])
    })
}

/// Core operation: our upload was refused for good: the attachment and its
/// message fail with the reason (`message.retry` tries again).
fn upload_failed(
    c: &mut Core,
    m: Moving,
    state: TransferState,
    reason: String,
) -> AgentResult<Vec<Notification>> {
    c.atomically(|c| {
        store::set_state(c.db(), m.id, state, Some(&reason), None)?;
        messages::set_state(c.db(), m.id, State::Failed)?;
        let delivery = super::outbox::delivery(
            c,
            m.conversation,
            m.id,
            DeliveryState::Failed,
            Some(reason.clone()),
        )?;
        let t = m.event(c, state, 0, None, Some(reason))?;
        Ok(vec![t, delivery])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_guessed_from_common_extensions() {
        assert_eq!(guess_content_type("a.PNG"), "image/png");
        assert_eq!(guess_content_type("report.pdf"), "application/pdf");
        assert_eq!(guess_content_type("noext"), "application/octet-stream");
        assert_eq!(guess_content_type("x.unknown"), "application/octet-stream");
    }

    #[test]
    fn progress_is_due_at_most_every_quarter_second_and_percent() {
        let mut p = Progress::new(1000, 0);
        assert!(!p.due(500), "half the file, but at once");
        p.last_at = Instant::now() - Duration::from_millis(300);
        assert!(!p.due(5), "a quarter second later, less than 1 % more");
        assert!(p.due(10));
        assert!(!p.due(20), "1 % more, at once");
        p.last_at = Instant::now() - Duration::from_millis(300);
        assert!(p.due(20), "both");
        p.last_at = Instant::now() - Duration::from_secs(6);
        assert!(p.due(21), "a slow transfer, every 5 s");
        p.last_at = Instant::now() - Duration::from_secs(6);
        assert!(!p.due(21), "nothing moved");
    }

    #[test]
    fn spooling_refuses_what_is_not_a_readable_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let spool_dir = d.path().join("spool");
        let go = |p: &Path| {
            let (input, size) = open_source(p)?;
            let plan = SpoolPlan::new(size);
            private_dir(&spool_dir).unwrap();
            let out = private_file(&spool_dir.join(hex::encode(plan.blob_id.0)), true).unwrap();
            spool(
                p,
                input,
                out,
                &spool_dir,
                "n".into(),
                "t/t".into(),
                plan,
                None,
            )
        };
        assert!(matches!(go(Path::new("rel/a")), Err(AgentError::File(_))));
        assert!(matches!(go(d.path()), Err(AgentError::File(_))));
        assert!(matches!(
            go(&d.path().join("missing")),
            Err(AgentError::File(_))
        ));
        let f = d.path().join("f.bin");
        std::fs::write(&f, vec![7u8; 200_000]).unwrap();
        let (desc, name) = go(&f).unwrap();
        let ct = std::fs::read(spool_dir.join(&name)).unwrap();
        assert_eq!(ct.len() as u64, desc.ciphertext_len().unwrap());
        let mut back = Vec::new();
        blob::decrypt_stream(&desc, ct.as_slice(), &mut back).unwrap();
        assert_eq!(back, vec![7u8; 200_000]);
    }

    /// The blob is created for the size the file had when `attach` looked;
    /// a file that grew or shrank before it was read to the end is refused
    /// and its spool file removed (it would not fit the blob).
    #[test]
    fn a_file_that_changes_size_while_spooled_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let spool_dir = d.path().join("spool");
        private_dir(&spool_dir).unwrap();
        let f = d.path().join("growing.log");
        std::fs::write(&f, vec![1u8; 5_000]).unwrap();
        let (input, size) = open_source(&f).unwrap();
        // It grows after the look.
        std::fs::write(&f, vec![1u8; 9_000]).unwrap();
        let plan = SpoolPlan::new(size);
        let path = spool_dir.join(hex::encode(plan.blob_id.0));
        let out = private_file(&path, true).unwrap();
        let spooling = Spooling::default();
        let r = spool(
            &f,
            input,
            out,
            &spool_dir,
            "g".into(),
            "t/t".into(),
            plan,
            Some(&spooling),
        );
        match r {
            Err(AgentError::File(why)) => assert!(why.contains("changed size"), "{why}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(!path.exists(), "the spool file is removed");
        assert_eq!(
            spooling.written.load(std::sync::atomic::Ordering::Acquire),
            blob::ciphertext_len(9_000, DEFAULT_CHUNK_SIZE).unwrap(),
            "what was spooled was counted as it was written"
        );
    }
}
