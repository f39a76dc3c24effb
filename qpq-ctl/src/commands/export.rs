//! `export`: conversations written to files a person keeps (issue 18) —
//! JSON lines, Markdown, or one self-contained HTML page per conversation —
//! with their attachments downloaded beside them.
//!
//! Memory stays bounded whatever a history's length. `history` gives a
//! page oldest first *before* a message id, so the export reads backwards
//! from the newest message and appends each page, as JSON lines followed by
//! the page's length in 8 bytes, to an unnamed spool file ([`Spool`]); it
//! then reads the spool from its end, one page at a time — which is oldest
//! first — and writes each message as it is read. One page (at most the
//! IPC's 768 KiB answer) is in memory at a time. The newest page is read
//! first, so a message arriving during the export is not in it.
//!
//! Attachments are fetched one at a time with the daemon's `download`, to
//! an absolute path under `<DIR>/<file stem>-files/` ([`files`] makes the
//! peer's file name safe), and the export waits for that download's final
//! `transfer` notification. One that ends `expired`, `corrupt` or `failed`
//! is listed with why; the export goes on. A conversation's file is
//! written under a temporary name in DIR and renamed when complete, so a
//! file with the conversation's name is a whole export.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quicproquo_protocol::ipc::client::{CallError, IpcClient, Subscription};
use quicproquo_protocol::ipc::methods::{
    method, DownloadParams, HistoryParams, MessageRefParams, NoParams,
};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{
    Attachment, Conversation, ConversationId, ConversationRef, Limit, Message, MessageId,
    MessageVersion, TransferDirection, TransferState,
};
use serde::Serialize;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::recv::stop::next_signal;

use super::names::Names;
use crate::cli::{ExportArgs, ExportFormat};
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{sanitize_line, Out};
use crate::session::Session;

// Also `download`'s default file name (commands/attachments.rs): one rule
// for every name a peer chooses that becomes a file.
pub(super) mod files;
mod html;
mod jsonl;
mod markdown;

/// How long a download may go without a `transfer` notification before
/// it is given up (the daemon sends one at least every 5 s while anything moves).
const STALLED: Duration = Duration::from_secs(60);

/// What the format writers get about the conversation, before its messages.
pub struct Head<'a> {
    pub conversation: &'a Conversation,
    /// The account that exported it (empty when logged out).
    pub account: &'a str,
    pub exported_ms: u64,
    pub messages: u64,
}

/// One message as the format writers get it.
pub struct Entry<'a> {
    pub message: &'a Message,
    /// Its earlier versions, oldest first, when it was edited.
    pub edits: &'a [MessageVersion],
    /// Its attachment's file, when it has one.
    pub file: &'a FileOutcome,
}

/// What became of a message's attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// The message has none.
    NoFile,
    /// Downloaded and checked: `link` is its path relative to the export's
    /// directory, `/`-separated, not URL-encoded; `path` the absolute one.
    Saved { link: String, path: String },
    /// Not downloaded: why, for people (`expired: …`, `corrupt: …`).
    NotSaved { reason: String },
    /// `--no-attachments`.
    Skipped,
}

/// One conversation in the summary.
#[derive(Debug, Serialize)]
struct Written {
    conversation: ConversationId,
    name: String,
    file: String,
    messages: u64,
    attachments: FileCounts,
}

#[derive(Debug, Default, Serialize)]
struct FileCounts {
    downloaded: u64,
    failed: u64,
    skipped: u64,
}

#[derive(Debug, Serialize)]
struct Summary<'a> {
    dir: &'a str,
    format: &'static str,
    conversations: &'a [Written],
}

/// Where one conversation goes.
struct Plan {
    stem: String,
    file: PathBuf,
    files_dir: PathBuf,
}

pub async fn run(session: &Session, out: &mut Out, args: ExportArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let names = Names::load(&client).await?;
    let conversations = chosen(&names, &args.conversations)?;
    let account = client
        .request::<method::Status>(NoParams {})
        .await?
        .account
        .map(|a| a.username)
        .unwrap_or_default();
    let exported_ms = now_ms();
    let dir = match args.out {
        Some(dir) => dir,
        None => PathBuf::from(default_dir(session.paths().profile.as_str(), exported_ms)),
    };
    let dir = std::path::absolute(&dir)
        .map_err(|e| CtlError::io(format!("finding {}", dir.display()), e))?;
    let dir_text = dir
        .to_str()
        .ok_or_else(|| {
            CtlError::Usage(format!(
                "{} is not UTF-8: the daemon takes download paths as text; choose another --out",
                dir.display()
            ))
        })?
        .to_owned();
    let plans = plan(&dir, &conversations, args.format);
    if !args.force {
        for p in &plans {
            for path in [&p.file, &p.files_dir] {
                if path.symlink_metadata().is_ok() {
                    return Err(CtlError::Input(format!(
                        "{} exists: choose another --out DIR, or --force to overwrite \
                         an earlier export",
                        path.display()
                    )));
                }
            }
        }
    }
    private_dir(&dir)?;
    let mut downloads = Downloads {
        client: &client,
        enabled: !args.no_attachments,
        overwrite: args.force,
        subscription: None,
    };
    let mut signals = [SignalKind::interrupt(), SignalKind::terminate()].map(|k| signal(k).ok());
    let mut written = Vec::with_capacity(conversations.len());
    for (conversation, plan) in conversations.iter().zip(&plans) {
        let head = Head {
            conversation,
            account: &account,
            exported_ms,
            messages: 0,
        };
        let one = export_one(
            &client,
            &mut downloads,
            args.format,
            &dir,
            plan,
            head,
            args.force,
        );
        // Interrupted, the conversation being written is dropped with its
        // temporary files; the ones done are whole.
        let w = tokio::select! {
            w = one => w?,
            () = interrupted(&mut signals) => {
                return Err(CtlError::io(
                    format!("exporting {}", sanitize_line(&conversation.name)),
                    io::Error::new(
                        io::ErrorKind::Interrupted,
                        "interrupted; the conversations listed before are complete",
                    ),
                ))
            }
        };
        // People see each conversation when it is done: a long one takes
        // seconds.
        if !out.is_json() {
            out.line(&people_line(&w))?;
            out.flush()?;
        }
        written.push(w);
    }
    if out.is_json() {
        out.json(&Summary {
            dir: &dir_text,
            format: format_word(args.format),
            conversations: &written,
        })?;
    } else {
        out.line(&format!(
            "exported {} conversation{} to {dir_text}",
            written.len(),
            plural(written.len() as u64)
        ))?;
    }
    Ok(Exit::Ok)
}

/// `team: 120 messages, 3 files → /…/team.html`.
fn people_line(w: &Written) -> String {
    let files = &w.attachments;
    let mut line = format!(
        "{}: {} message{}",
        sanitize_line(&w.name),
        w.messages,
        plural(w.messages)
    );
    if files.downloaded > 0 {
        line.push_str(&format!(
            ", {} file{}",
            files.downloaded,
            plural(files.downloaded)
        ));
    }
    if files.failed > 0 {
        line.push_str(&format!(
            ", {} file{} not downloaded",
            files.failed,
            plural(files.failed)
        ));
    }
    line.push_str(&format!(" → {}", w.file));
    line
}

/// The conversations named (each once, in the order given), or every one
/// by name.
fn chosen(names: &Names, refs: &[ConversationRef]) -> Result<Vec<Conversation>, CtlError> {
    if refs.is_empty() {
        return Ok(names.all().into_iter().cloned().collect());
    }
    let mut seen = HashSet::new();
    let mut chosen = Vec::new();
    for r in refs {
        let c = names
            .resolve(r)
            .and_then(|id| names.conversation(id))
            .ok_or_else(|| CtlError::NotFound(format!("no conversation `{r}`")))?;
        if seen.insert(c.id) {
            chosen.push(c.clone());
        }
    }
    Ok(chosen)
}

/// `qpq-export-PROFILE-YYYY-MM-DD`, the local date.
fn default_dir(profile: &str, now_ms: u64) -> String {
    let date = timestamp(now_ms)
        .map(|t| {
            t.to_zoned_datetime(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_default();
    format!("qpq-export-{profile}-{date}")
}

fn plan(dir: &Path, conversations: &[Conversation], format: ExportFormat) -> Vec<Plan> {
    let mut used = HashSet::new();
    conversations
        .iter()
        .map(|c| {
            let stem = files::unique(files::safe_name(&c.name, "conversation"), &mut used);
            Plan {
                file: dir.join(format!("{stem}.{}", extension(format))),
                files_dir: dir.join(format!("{stem}-files")),
                stem,
            }
        })
        .collect()
}

async fn export_one(
    client: &IpcClient,
    downloads: &mut Downloads<'_>,
    format: ExportFormat,
    dir: &Path,
    plan: &Plan,
    mut head: Head<'_>,
    force: bool,
) -> Result<Written, CtlError> {
    let conversation = head.conversation;
    let reference = ConversationRef::Id(conversation.id);
    let spool_error = |e| CtlError::io("writing the export's spool file", e);
    let mut spool = Spool::new(dir).map_err(spool_error)?;
    let mut before = None;
    loop {
        let page = client
            .request::<method::History>(HistoryParams {
                conversation: reference.clone(),
                before,
                limit: Limit::new(Limit::MAX).unwrap_or_default(),
            })
            .await?;
        let Some(oldest) = page.first() else { break };
        before = Some(oldest.id);
        spool.push(&page).map_err(spool_error)?;
    }
    head.messages = spool.messages;

    let write_error = |e| CtlError::io(format!("writing {}", plan.file.display()), e);
    let temp = tempfile::Builder::new()
        .prefix(".qpq-export-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    let mut w = BufWriter::new(temp);
    write_head(format, &mut w, &head).map_err(write_error)?;
    let mut counts = FileCounts::default();
    let mut used_names = HashSet::new();
    let mut pages = spool.into_pages().map_err(spool_error)?;
    while let Some(page) = pages.next_page().map_err(spool_error)? {
        // Writing a page awaits nothing unless a message has edits or a
        // file: yield, so an interruption is seen between pages.
        tokio::task::yield_now().await;
        for m in &page {
            let edits = if m.meta.edited {
                edits(client, &reference, m.id).await?
            } else {
                Vec::new()
            };
            // The daemon forgets a deleted message's file; never fetch one
            // anyway, whatever an older daemon says.
            let file = match &m.meta.attachment {
                Some(_) if m.meta.deleted => FileOutcome::NoFile,
                None => FileOutcome::NoFile,
                Some(a) => {
                    let target = Target {
                        conversation: conversation.id,
                        id: m.id,
                        plan,
                        used_names: &mut used_names,
                    };
                    downloads.fetch(target, a).await?
                }
            };
            match &file {
                FileOutcome::NoFile => {}
                FileOutcome::Saved { .. } => counts.downloaded += 1,
                FileOutcome::NotSaved { .. } => counts.failed += 1,
                FileOutcome::Skipped => counts.skipped += 1,
            }
            let entry = Entry {
                message: m,
                edits: &edits,
                file: &file,
            };
            write_message(format, &mut w, &entry).map_err(write_error)?;
        }
    }
    write_tail(format, &mut w).map_err(write_error)?;
    let temp = w.into_inner().map_err(|e| write_error(e.into_error()))?;
    temp.as_file().sync_all().map_err(write_error)?;
    let persisted = if force {
        temp.persist(&plan.file)
    } else {
        temp.persist_noclobber(&plan.file)
    };
    persisted.map_err(|e| write_error(e.error))?;
    Ok(Written {
        conversation: conversation.id,
        name: conversation.name.clone(),
        file: plan.file.display().to_string(),
        messages: head.messages,
        attachments: counts,
    })
}

/// A message's earlier versions; none when it went meanwhile (deleted).
async fn edits(
    client: &IpcClient,
    conversation: &ConversationRef,
    id: MessageId,
) -> Result<Vec<MessageVersion>, CtlError> {
    match client
        .request::<method::MessageEdits>(MessageRefParams {
            conversation: conversation.clone(),
            id,
        })
        .await
    {
        Ok(versions) => Ok(versions),
        Err(CallError::Rpc(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Pages of messages in an unnamed temporary file: each page's JSON lines,
/// then its length in bytes (u64, little-endian), so the pages can be read
/// back from the end without an index in memory.
struct Spool {
    file: BufWriter<File>,
    messages: u64,
}

impl Spool {
    fn new(dir: &Path) -> io::Result<Spool> {
        Ok(Spool {
            file: BufWriter::new(tempfile::tempfile_in(dir)?),
            messages: 0,
        })
    }

    fn push(&mut self, page: &[Message]) -> io::Result<()> {
        let mut len = 0u64;
        for m in page {
            let mut line = serde_json::to_vec(m).map_err(io::Error::other)?;
            line.push(b'\n');
            self.file.write_all(&line)?;
            len += line.len() as u64;
        }
        self.file.write_all(&len.to_le_bytes())?;
        self.messages += page.len() as u64;
        Ok(())
    }

    /// The pages, last pushed first.
    fn into_pages(self) -> io::Result<Pages> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        let end = file.seek(SeekFrom::End(0))?;
        Ok(Pages {
            file,
            end,
            buf: Vec::new(),
        })
    }
}

struct Pages {
    file: File,
    /// Where the unread part ends.
    end: u64,
    buf: Vec<u8>,
}

impl Pages {
    fn next_page(&mut self) -> io::Result<Option<Vec<Message>>> {
        if self.end == 0 {
            return Ok(None);
        }
        let corrupt = || io::Error::new(io::ErrorKind::InvalidData, "the spool file is damaged");
        let len_at = self.end.checked_sub(8).ok_or_else(corrupt)?;
        let mut len = [0u8; 8];
        self.file.seek(SeekFrom::Start(len_at))?;
        self.file.read_exact(&mut len)?;
        let len = u64::from_le_bytes(len);
        let start = len_at.checked_sub(len).ok_or_else(corrupt)?;
        self.buf.clear();
        self.file.seek(SeekFrom::Start(start))?;
        (&mut self.file).take(len).read_to_end(&mut self.buf)?;
        self.end = start;
        self.buf
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).map_err(io::Error::other))
            .collect::<io::Result<Vec<Message>>>()
            .map(Some)
    }
}

/// Downloads attachments into an export, one at a time.
struct Downloads<'a> {
    client: &'a IpcClient,
    enabled: bool,
    overwrite: bool,
    /// Made before the first download: its end is a notification.
    subscription: Option<Subscription>,
}

/// Where one attachment goes.
struct Target<'a> {
    conversation: ConversationId,
    id: MessageId,
    plan: &'a Plan,
    /// Names taken in this conversation's files directory.
    used_names: &'a mut HashSet<String>,
}

impl Downloads<'_> {
    async fn fetch(
        &mut self,
        target: Target<'_>,
        attachment: &Attachment,
    ) -> Result<FileOutcome, CtlError> {
        if !self.enabled {
            return Ok(FileOutcome::Skipped);
        }
        let dir = &target.plan.files_dir;
        private_dir(dir)?;
        let name = files::unique(
            files::safe_name(&attachment.name, "attachment"),
            target.used_names,
        );
        let path = dir.join(&name);
        // The export directory was checked to be UTF-8.
        let path_text = path.to_string_lossy().into_owned();
        let saved = FileOutcome::Saved {
            link: format!("{}-files/{name}", target.plan.stem),
            path: path_text.clone(),
        };
        // A download of the same file already under way (another front-end's,
        // to another path) is answered `downloading` and ends there: then
        // ours is asked for again, once it is over.
        for _ in 0..2 {
            match self.download_once(&target, &path_text).await? {
                Ended::Here => return Ok(saved),
                Ended::Elsewhere => continue,
                Ended::Not(reason) => return Ok(FileOutcome::NotSaved { reason }),
            }
        }
        Ok(FileOutcome::NotSaved {
            reason: "another download of this file was under way; export again".into(),
        })
    }

    async fn download_once(&mut self, target: &Target<'_>, path: &str) -> Result<Ended, CtlError> {
        if self.subscription.is_none() {
            self.subscription = Some(self.client.subscribe(None).await?);
        }
        let started = self
            .client
            .request::<method::Download>(DownloadParams {
                conversation: ConversationRef::Id(target.conversation),
                id: target.id,
                path: Some(path.to_owned()),
                overwrite: self.overwrite,
            })
            .await;
        let here = |at: Option<&str>| {
            if at == Some(path) {
                Ended::Here
            } else {
                Ended::Elsewhere
            }
        };
        match started {
            Ok(a) => match ended(a.state, a.error.as_deref()) {
                Some(None) => return Ok(here(a.path.as_deref())),
                Some(Some(reason)) => return Ok(Ended::Not(reason)),
                None => {}
            },
            Err(CallError::Rpc(e)) => return Ok(Ended::Not(e.message)),
            Err(e) => return Err(e.into()),
        }
        let Some(subscription) = self.subscription.as_mut() else {
            return Err(CallError::Disconnected.into());
        };
        loop {
            let Ok(next) = tokio::time::timeout(STALLED, subscription.next()).await else {
                return Ok(Ended::Not(format!(
                    "stalled: no progress for {} s",
                    STALLED.as_secs()
                )));
            };
            let Notification::Transfer(t) = next? else {
                continue;
            };
            if t.id != target.id || t.direction != TransferDirection::Down {
                continue;
            }
            match ended(t.state, t.error.as_deref()) {
                Some(None) => return Ok(here(t.path.as_deref())),
                Some(Some(reason)) => return Ok(Ended::Not(reason)),
                None => {}
            }
        }
    }
}

/// How one `download` ended.
enum Ended {
    /// The file is at our path, checked.
    Here,
    /// Downloaded, but by a download to another path that was under way.
    Elsewhere,
    /// Not downloaded: why.
    Not(String),
}

/// Resolves at SIGINT or SIGTERM (never where they cannot be caught).
async fn interrupted(signals: &mut [Option<Signal>; 2]) {
    let [int, term] = signals;
    tokio::select! {
        () = next_signal(int) => {}
        () = next_signal(term) => {}
    }
}

/// Creates `dir` (and its parents) for the owner only: an export is the
/// history in plain text. A directory that exists keeps its mode.
fn private_dir(dir: &Path) -> Result<(), CtlError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CtlError::io(format!("creating {}", dir.display()), e))
}

/// `None` while a download goes on; `Some(None)` when it is done, and
/// `Some(Some(why))` when it ended without a file.
fn ended(state: TransferState, error: Option<&str>) -> Option<Option<String>> {
    let word = match state {
        TransferState::Downloaded => return Some(None),
        TransferState::Failed => "failed",
        TransferState::Corrupt => "corrupt",
        TransferState::Expired => "expired",
        TransferState::Uploading
        | TransferState::Uploaded
        | TransferState::Available
        | TransferState::Downloading => return None,
    };
    Some(Some(match error {
        Some(why) if !why.is_empty() => format!("{word}: {why}"),
        _ => word.to_owned(),
    }))
}

fn write_head(format: ExportFormat, w: &mut dyn Write, head: &Head<'_>) -> io::Result<()> {
    match format {
        ExportFormat::Jsonl => jsonl::head(w, head),
        ExportFormat::Markdown => markdown::head(w, head),
        ExportFormat::Html => html::head(w, head),
    }
}

fn write_message(format: ExportFormat, w: &mut dyn Write, entry: &Entry<'_>) -> io::Result<()> {
    match format {
        ExportFormat::Jsonl => jsonl::message(w, entry),
        ExportFormat::Markdown => markdown::message(w, entry),
        ExportFormat::Html => html::message(w, entry),
    }
}

fn write_tail(format: ExportFormat, w: &mut dyn Write) -> io::Result<()> {
    match format {
        ExportFormat::Jsonl | ExportFormat::Markdown => Ok(()),
        ExportFormat::Html => html::tail(w),
    }
}

fn extension(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Markdown => "md",
        ExportFormat::Html => "html",
    }
}

fn format_word(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Markdown => "markdown",
        ExportFormat::Html => "html",
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn timestamp(ms: u64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()
}

/// A time for people in Markdown and HTML: local (`TZ`, else the system's
/// zone), to the second, with its offset from UTC so it is never ambiguous
/// (`2026-04-05 16:02:03 +02:00`).
pub fn local_time(ms: u64) -> String {
    timestamp(ms)
        .map(|t| {
            t.to_zoned_datetime(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_else(|| "????-??-?? ??:??:??".to_owned())
}

/// The words for a message that is not simply there: a notice from the
/// daemon, a deleted one, one not (yet) sent. Shared by Markdown and HTML.
pub fn state_note(m: &Message) -> Option<String> {
    use quicproquo_protocol::ipc::values::MessageState;
    match m.state {
        MessageState::Queued => Some("not sent yet".to_owned()),
        MessageState::Failed => Some(match &m.failure {
            Some(why) => format!("not sent: {why}"),
            None => "not sent".to_owned(),
        }),
        MessageState::Expired => {
            Some("expired on the server before every member fetched it".to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::ipc::values::{MessageMeta, MessageState};

    use super::*;

    fn message(n: u8) -> Message {
        Message {
            id: MessageId([n; 16]),
            conversation: ConversationId([1; 16]),
            sender: "bob".into(),
            timestamp_ms: u64::from(n),
            text: format!("message {n}\nline two"),
            outgoing: false,
            state: MessageState::Received,
            failure: None,
            meta: MessageMeta::default(),
        }
    }

    /// Pages pushed newest first come back oldest first, each page in its
    /// own order, whatever their sizes (an empty page too).
    #[test]
    fn the_spool_gives_pages_back_last_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path()).unwrap();
        spool.push(&[message(5), message(6), message(7)]).unwrap();
        spool.push(&[]).unwrap();
        spool.push(&[message(3), message(4)]).unwrap();
        spool.push(&[message(1)]).unwrap();
        assert_eq!(spool.messages, 6);
        let mut pages = spool.into_pages().unwrap();
        let mut ids = Vec::new();
        while let Some(page) = pages.next_page().unwrap() {
            ids.extend(page.iter().map(|m| m.id.0[0]));
        }
        assert_eq!(ids, [1, 3, 4, 5, 6, 7]);
        assert!(pages.next_page().unwrap().is_none());
    }

    fn render(format: ExportFormat, entry: &Entry<'_>) -> String {
        let mut out = Vec::new();
        write_message(format, &mut out, entry).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A downloaded picture is shown and linked (its peer-chosen name
    /// escaped, its link percent-encoded); one that is not there says why,
    /// in every format.
    #[test]
    fn attachments_link_their_file_or_say_why_not() {
        let mut m = message(9);
        m.text = "the plan".into();
        m.meta.attachment = Some(Box::new(Attachment {
            name: "<b>pic</b> 1.png".into(),
            size: 1536,
            content_type: "image/png".into(),
            sha256: "ab".repeat(32),
            state: TransferState::Downloaded,
            path: Some("/x/team-files/_b_pic__b_ 1.png".into()),
            error: None,
        }));
        let saved = FileOutcome::Saved {
            link: "team-files/_b_pic__b_ 1.png".into(),
            path: "/x/team-files/_b_pic__b_ 1.png".into(),
        };
        let entry = Entry {
            message: &m,
            edits: &[],
            file: &saved,
        };
        let html = render(ExportFormat::Html, &entry);
        assert!(
            html.contains(
                "<img src=\"team-files/_b_pic__b_%201.png\" alt=\"&lt;b&gt;pic&lt;/b&gt; 1.png\">"
            ) && html.contains("1.5 kB · image/png"),
            "{html}"
        );
        let md = render(ExportFormat::Markdown, &entry);
        assert!(
            md.contains("![\\<b\\>pic\\</b\\> 1.png](team-files/_b_pic__b_%201.png)"),
            "{md}"
        );
        let line: serde_json::Value =
            serde_json::from_str(render(ExportFormat::Jsonl, &entry).trim()).unwrap();
        assert_eq!(
            line["attachment"]["export_path"],
            "team-files/_b_pic__b_ 1.png"
        );
        assert_eq!(line["attachment"]["name"], "<b>pic</b> 1.png");
        assert_eq!(line["attachment"]["state"], "downloaded");

        let gone = FileOutcome::NotSaved {
            reason: "expired: the server deleted it".into(),
        };
        let entry = Entry {
            file: &gone,
            ..entry
        };
        let html = render(ExportFormat::Html, &entry);
        assert!(
            !html.contains("<img") && !html.contains("href=\"team-files"),
            "{html}"
        );
        assert!(html.contains("not downloaded: expired: the server deleted it"));
        let md = render(ExportFormat::Markdown, &entry);
        assert!(
            md.contains("*not downloaded: expired: the server deleted it*"),
            "{md}"
        );
        let line: serde_json::Value =
            serde_json::from_str(render(ExportFormat::Jsonl, &entry).trim()).unwrap();
        assert_eq!(
            line["attachment"]["export_error"],
            "expired: the server deleted it"
        );
        assert!(line["attachment"].get("export_path").is_none());
    }

    /// A notice from the daemon has no sender; a message that was not sent
    /// says why; both in people's formats.
    #[test]
    fn notices_and_unsent_messages_say_what_they_are() {
        let mut notice = message(3);
        notice.sender.clear();
        notice.text = "a message arrived too late to be decrypted".into();
        let mut failed = message(4);
        failed.sender = "alice".into();
        failed.outgoing = true;
        failed.state = MessageState::Failed;
        failed.failure = Some("E020: no such user <x>".into());
        for (format, notice_words, failed_words) in [
            (
                ExportFormat::Markdown,
                "*quicproquo notice*",
                "*not sent: E020: no such user \\<x\\>*",
            ),
            (
                ExportFormat::Html,
                "<span class=\"notice\">quicproquo notice</span>",
                "<span class=\"note\">not sent: E020: no such user &lt;x&gt;</span>",
            ),
        ] {
            let entry = |m| Entry {
                message: m,
                edits: &[],
                file: &FileOutcome::NoFile,
            };
            let text = render(format, &entry(&notice));
            assert!(text.contains(notice_words), "{text}");
            let text = render(format, &entry(&failed));
            assert!(text.contains(failed_words), "{text}");
        }
    }

    #[test]
    fn transfers_end_in_a_file_or_a_reason() {
        assert_eq!(ended(TransferState::Downloading, None), None);
        assert_eq!(ended(TransferState::Downloaded, None), Some(None));
        assert_eq!(
            ended(TransferState::Expired, Some("the server deleted it")),
            Some(Some("expired: the server deleted it".into()))
        );
        assert_eq!(
            ended(TransferState::Corrupt, None),
            Some(Some("corrupt".into()))
        );
    }

    #[test]
    fn times_carry_their_offset() {
        let t = local_time(1_700_000_000_123);
        assert_eq!(t.len(), "2023-11-14 22:13:20 +00:00".len(), "{t}");
        assert!(
            t.contains(':') && (t.contains(" +") || t.contains(" -")),
            "{t}"
        );
    }
}
