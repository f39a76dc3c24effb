//! `send --file` and `download`: files on messages (issue 18).
//!
//! qpqd does the work (`attach` encrypts the file into its spool and
//! uploads it in the background; `download` fetches, decrypts and checks
//! into a file); these commands choose the paths, check what can be checked
//! before the daemon is asked (a missing file, a directory, a file already
//! there), and wait for the end of the transfer, which the daemon announces
//! with `transfer` notifications. The subscription is made **before** the
//! call, so the end cannot slip by between the answer and the wait. A
//! restart of qpqd while waiting is survived like `recv --follow` survives
//! it (reconnect, subscribe after the last `seq`), and the message's state
//! is then read once, in case the end came while nobody listened.
//!
//! Paths: the daemon wants absolute ones (it has its own working
//! directory), so a relative path is resolved against ours. A file name
//! from a peer decides nothing but the last component of the default
//! download path ([`safe_file_name`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use quicproquo_protocol::ipc::client::{CallError, IpcClient, Subscription};
use quicproquo_protocol::ipc::methods::{method, AttachParams, DownloadParams, HistoryParams};
use quicproquo_protocol::ipc::values::{
    Attachment, ConnectionState, ConversationId, ConversationRef, DeliveryState, Limit, Message,
    MessageId, TransferDirection, TransferState,
};
use quicproquo_protocol::ipc::Notification;
use sha2::{Digest, Sha256};

use super::messages::{print_changed, text_argument};
use super::recv::{reconnect, stop::Stop};
use crate::cli::{DownloadArgs, SendArgs};
use crate::error::{CtlError, CORRUPT_HINT, EXPIRED_HINT};
use crate::exit::Exit;
use crate::output::event::transfer_ended;
use crate::output::progress::Progress;
use crate::output::Out;
use crate::session::Session;
use quicproquo_protocol::file_names::{self, free_path};

/// What a default download is called when the sender's name leaves
/// nothing usable.
const FALLBACK_NAME: &str = "attachment";

/// `send <conversation> --file PATH [--caption TEXT] [--name] [--type]
/// [--no-wait]`.
pub async fn send_file(
    session: &Session,
    out: &mut Out,
    args: SendArgs,
    file: &Path,
) -> Result<Exit, CtlError> {
    let path = absolute(file)?;
    check_readable(&path)?;
    let path_text = utf8(&path)?;
    // The caption is checked like a message (and read from stdin only
    // with `-`: a file's message never waits on a terminal for text).
    let caption = match args.caption {
        Some(c) if !c.is_empty() => text_argument(Some(c), out).await?,
        _ => String::new(),
    };
    let client = session.connect().await?;
    let sub = if args.no_wait {
        None
    } else {
        Some(client.subscribe(None).await?)
    };
    let mut sent = client
        .request::<method::Attach>(AttachParams {
            conversation: args.conversation,
            path: path_text,
            caption,
            name: args.name,
            content_type: args.content_type,
            confirm_changed_keys: args.confirm_changed_keys,
            reply_to: args.reply_to,
        })
        .await?;
    let watch = Watch::of(&sent, TransferDirection::Up);
    let client = match (sub, sent.meta.attachment.as_deref()) {
        (Some(sub), Some(a)) if !transfer_ended(a.state) => {
            let progress = Progress::new(&a.name, a.size, out.is_json());
            progress.update(0, a.size);
            let (client, _) = watch.wait(session, client, sub, &progress).await?;
            progress.clear();
            // Read it back for its state now (queued, or already sent);
            // failing that, what is known for sure.
            sent = match find_message(&client, &watch.conversation_ref, sent.id).await? {
                Some(m) => m,
                None => {
                    if let Some(a) = sent.meta.attachment.as_deref_mut() {
                        a.state = TransferState::Uploaded;
                    }
                    sent
                }
            };
            client
        }
        // Already ended (refused on the way, say): that is the outcome.
        (Some(_), Some(a)) => {
            watch.end(a.state, a.path.clone(), a.error.clone())?;
            client
        }
        _ => client,
    };
    print_changed(&client, out, &sent).await
}

/// `download <conversation> <id> [-o PATH] [--force]`.
pub async fn download(
    session: &Session,
    out: &mut Out,
    args: DownloadArgs,
) -> Result<Exit, CtlError> {
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if to_stdout && out.is_json() {
        return Err(CtlError::Usage(
            "`-o -` writes the file itself to stdout, so it cannot be combined with --json".into(),
        ));
    }
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(CtlError::Usage(
            "refusing to write a file to the terminal: redirect stdout (`-o - > FILE`) \
             or give a path with -o"
                .into(),
        ));
    }
    let conversation = args.message.conversation;
    let id = args.message.id;
    let client = session.connect().await?;
    let message = find_message(&client, &conversation, id)
        .await?
        .ok_or_else(|| {
            CtlError::NotFound(format!("no message {id} in conversation `{conversation}`"))
        })?;
    let Some(attachment) = message.meta.attachment.as_deref() else {
        return Err(CtlError::Input(format!(
            "message {id} has no attachment; nothing was downloaded"
        )));
    };
    let name = safe_file_name(&attachment.name);
    let (target, overwrite, scratch) = if to_stdout {
        // The daemon writes only files: one in the profile's data
        // directory, removed once copied out.
        let path = session
            .paths()
            .data_dir
            .join(format!("qpq-ctl-stdout-{}-{id}", std::process::id()));
        (path.clone(), true, Some(Scratch(path)))
    } else {
        let (path, overwrite) = download_path(args.output.as_deref(), &name, args.force)?;
        (path, overwrite, None)
    };
    let sub = client.subscribe(None).await?;
    let params = DownloadParams {
        conversation: ConversationRef::Id(message.conversation),
        id,
        path: Some(utf8(&target)?),
        overwrite,
    };
    let mut started = client.request::<method::Download>(params.clone()).await?;
    // qpqd answers `downloaded` at once when its record says `target`
    // holds the checked copy; after --force to that path the file may have
    // changed since. Only a file with the right hash counts: otherwise it
    // goes (--force said to replace it) and qpqd fetches it anew.
    if started.state == TransferState::Downloaded && !has_hash(&target, &attachment.sha256).await? {
        std::fs::remove_file(&target)
            .map_err(|e| CtlError::io(format!("replacing {}", target.display()), e))?;
        started = client.request::<method::Download>(params).await?;
    }
    let watch = Watch::of(&message, TransferDirection::Down);
    let written = if transfer_ended(started.state) {
        watch.end(started.state, started.path.clone(), started.error.clone())?
    } else {
        let progress = Progress::new(&attachment.name, attachment.size, out.is_json());
        progress.update(0, attachment.size);
        let (_, path) = watch.wait(session, client, sub, &progress).await?;
        progress.clear();
        path
    };
    let written = written.map_or(target, PathBuf::from);
    if to_stdout {
        let file = std::fs::File::open(&written)
            .map_err(|e| CtlError::io(format!("reading {}", written.display()), e))?;
        out.copy_from(file)?;
        drop(scratch);
        return Ok(Exit::Ok);
    }
    let done = Attachment {
        state: TransferState::Downloaded,
        path: Some(written.to_string_lossy().into_owned()),
        error: None,
        ..started
    };
    if out.is_json() {
        out.json(&done)?;
    } else {
        out.line(&crate::output::sanitize_line(&written.to_string_lossy()))?;
    }
    Ok(Exit::Ok)
}

/// Whether the file at `path` has the SHA-256 `hex` (read off the
/// runtime's thread: it may be large).
async fn has_hash(path: &Path, hex: &str) -> Result<bool, CtlError> {
    let path = path.to_owned();
    let want = hex.to_ascii_lowercase();
    crate::input::blocking(move || {
        let Ok(mut file) = std::fs::File::open(&path) else {
            return Ok(false);
        };
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)
            .map_err(|e| CtlError::io(format!("reading {}", path.display()), e))?;
        Ok(hex::encode(hasher.finalize()) == want)
    })
    .await
}

/// A file of ours that goes when the command ends, however it ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where a download goes, and whether it may replace a file there:
/// `-o PATH` as given (into it, under `name`, when it is a directory);
/// by default `./name`, made unique unless `force`.
fn download_path(
    output: Option<&Path>,
    name: &str,
    force: bool,
) -> Result<(PathBuf, bool), CtlError> {
    let path = match output {
        Some(p) => {
            let p = absolute(p)?;
            if p.is_dir() {
                p.join(name)
            } else {
                p
            }
        }
        None => {
            let here = absolute(Path::new("."))?.join(name);
            if force {
                here
            } else {
                unique(&here)
            }
        }
    };
    if !force && path.symlink_metadata().is_ok() {
        return Err(CtlError::Input(format!(
            "{} already exists; nothing was downloaded (--force replaces it)",
            path.display()
        )));
    }
    Ok((path, force))
}

/// `path`, or the first of `stem (1).ext`, `stem (2).ext`… that does not
/// exist (`protocol::file_names::free_path`, the rule everywhere).
fn unique(path: &Path) -> PathBuf {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_owned();
    };
    free_path(dir, &name.to_string_lossy(), FALLBACK_NAME, |p| {
        p.symlink_metadata().is_ok()
    })
}

/// A file name from a peer made safe to create in a directory of ours:
/// `protocol::file_names`' rule: one component (separators become
/// `_`), no control or bidi characters, no leading dot (no hidden
/// `.bashrc` in the home directory), bounded, no device name. The daemon
/// already refuses worse names; this does not rely on it.
pub fn safe_file_name(name: &str) -> String {
    file_names::safe_file_name(name, FALLBACK_NAME)
}

/// `path` made absolute against our working directory (qpqd has its own).
fn absolute(path: &Path) -> Result<PathBuf, CtlError> {
    std::path::absolute(path)
        .map_err(|e| CtlError::Input(format!("cannot resolve {}: {e}", path.display())))
}

/// Paths travel as JSON strings.
fn utf8(path: &Path) -> Result<String, CtlError> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        CtlError::Input(format!(
            "{} is not valid UTF-8, which qpqd cannot be given; rename it",
            path.display()
        ))
    })
}

/// A file to send must be there and be a regular file: said here, before
/// the daemon is started, with the words a person needs.
fn check_readable(path: &Path) -> Result<(), CtlError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CtlError::Input(format!(
            "cannot read {}: {}; nothing was sent",
            path.display(),
            io_reason(&e)
        ))
    })?;
    if meta.is_dir() {
        return Err(CtlError::Input(format!(
            "{} is a directory, not a file; nothing was sent",
            path.display()
        )));
    }
    if !meta.is_file() {
        return Err(CtlError::Input(format!(
            "{} is not a regular file (a device, pipe or socket); nothing was sent",
            path.display()
        )));
    }
    Ok(())
}

/// An I/O error in words, without Rust's `(os error 2)`.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// The message `id` of `conversation`, found by paging its history back
/// from the newest (the message of a download is usually recent); `None`
/// when the history has no such message.
pub async fn find_message(
    client: &IpcClient,
    conversation: &ConversationRef,
    id: MessageId,
) -> Result<Option<Message>, CtlError> {
    let mut before = None;
    loop {
        let page = client
            .request::<method::History>(HistoryParams {
                conversation: conversation.clone(),
                before,
                limit: Limit::new(Limit::MAX).unwrap_or_default(),
            })
            .await?;
        let Some(oldest) = page.first() else {
            return Ok(None);
        };
        before = Some(oldest.id);
        if let Some(m) = page.into_iter().find(|m| m.id == id) {
            return Ok(Some(m));
        }
    }
}

/// One attachment's transfer, one way, being waited for.
struct Watch {
    conversation: ConversationId,
    conversation_ref: ConversationRef,
    id: MessageId,
    direction: TransferDirection,
}

impl Watch {
    /// The transfer of `message`'s attachment going `direction`.
    fn of(message: &Message, direction: TransferDirection) -> Watch {
        Watch {
            conversation: message.conversation,
            conversation_ref: ConversationRef::Id(message.conversation),
            id: message.id,
            direction,
        }
    }

    /// Follows `transfer` notifications (into `progress`) until the
    /// transfer ended: `Ok` with the file written (downloads), or the end's
    /// error. An upload also ends when its message is refused for good.
    async fn wait(
        &self,
        session: &Session,
        mut client: IpcClient,
        mut sub: Subscription,
        progress: &Progress,
    ) -> Result<(IpcClient, Option<String>), CtlError> {
        let mut stop = Stop::new();
        loop {
            let next = tokio::select! {
                () = stop.requested() => return Err(self.interrupted()),
                next = sub.next() => next,
            };
            match next {
                Ok(Notification::Transfer(t))
                    if t.conversation == self.conversation
                        && t.id == self.id
                        && t.direction == self.direction =>
                {
                    progress.update(t.done, t.total);
                    if transfer_ended(t.state) {
                        return self.end(t.state, t.path, t.error).map(|p| (client, p));
                    }
                }
                Ok(Notification::Delivery(d))
                    if self.direction == TransferDirection::Up
                        && d.conversation == self.conversation
                        && d.id == self.id
                        && d.state == DeliveryState::Failed =>
                {
                    return Err(self.refused(d.reason.as_deref()));
                }
                Ok(Notification::Connection(c)) => {
                    progress.offline(c.state != ConnectionState::Online);
                }
                Ok(_) => {}
                Err(CallError::Disconnected) | Err(CallError::Timeout { .. }) => {
                    // Quiet: the bar (if any) shows the wait goes on.
                    let since = sub.last_seq();
                    let Some((c, s)) = reconnect(session, since, &mut stop, true).await? else {
                        return Err(self.interrupted());
                    };
                    client = c;
                    sub = s;
                    // The end may have come while nobody listened.
                    let m = find_message(&client, &self.conversation_ref, self.id)
                        .await?
                        .ok_or_else(|| {
                            CtlError::NotFound(format!(
                                "message {} is gone from the history (discarded?)",
                                self.id
                            ))
                        })?;
                    if let Some(a) = m.meta.attachment.as_deref() {
                        if transfer_ended(a.state) {
                            let path = a.path.clone();
                            return self
                                .end(a.state, path, a.error.clone())
                                .map(|p| (client, p));
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// How an ended transfer ends the command.
    fn end(
        &self,
        state: TransferState,
        path: Option<String>,
        error: Option<String>,
    ) -> Result<Option<String>, CtlError> {
        let why = error.map(|e| format!(": {e}")).unwrap_or_default();
        let (message, exit, hint) = match state {
            TransferState::Uploaded | TransferState::Downloaded => return Ok(path),
            TransferState::Corrupt => (
                format!("the attachment failed its integrity check{why}; nothing was written"),
                Exit::Corrupt,
                CORRUPT_HINT.to_owned(),
            ),
            TransferState::Expired => (
                format!("the attachment has expired: the server no longer has it{why}"),
                Exit::Expired,
                EXPIRED_HINT.to_owned(),
            ),
            _ => match self.direction {
                TransferDirection::Up => (
                    format!("the upload failed{why}"),
                    Exit::Failure,
                    format!(
                        "`qpq-ctl retry {}` uploads it again, `qpq-ctl discard {}` drops it",
                        self.id, self.id
                    ),
                ),
                TransferDirection::Down => (
                    format!("the download failed{why}; nothing was written"),
                    Exit::Failure,
                    "run the download again; `qpq-ctl status` shows the connection".to_owned(),
                ),
            },
        };
        Err(CtlError::Transfer {
            message,
            exit,
            hint,
        })
    }

    fn refused(&self, reason: Option<&str>) -> CtlError {
        CtlError::Transfer {
            message: format!(
                "the message with the file was not sent: {}",
                reason.unwrap_or("refused")
            ),
            exit: Exit::Refused,
            hint: format!(
                "`qpq-ctl retry {}` tries again once the cause is gone, `qpq-ctl discard {}` \
                 drops it",
                self.id, self.id
            ),
        }
    }

    /// Ctrl-C (or SIGTERM, or stdout's reader gone) while waiting: qpqd
    /// goes on, and the command says so rather than claiming success.
    fn interrupted(&self) -> CtlError {
        let (what, hint) = match self.direction {
            TransferDirection::Up => (
                "upload",
                "the message is sent once the upload is done; `qpq-ctl history` shows it",
            ),
            TransferDirection::Down => (
                "download",
                "`qpq-ctl recv --follow` shows when it ends; `qpq-ctl history` shows where \
                 the file is",
            ),
        };
        CtlError::Transfer {
            message: format!("stopped waiting; qpqd goes on with the {what} in the background"),
            exit: Exit::Failure,
            hint: hint.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::text::is_terminal_unsafe;

    use super::*;

    #[test]
    fn peers_names_decide_only_one_harmless_component() {
        assert_eq!(safe_file_name("report.pdf"), "report.pdf");
        for evil in [
            "../../.ssh/authorized_keys",
            "..\\..\\evil.exe",
            "/etc/passwd",
        ] {
            let safe = safe_file_name(evil);
            assert!(
                !safe.contains('/') && !safe.contains('\\') && !safe.starts_with('.'),
                "{evil:?} -> {safe:?}"
            );
        }
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        let shown = safe_file_name("a\u{1b}[2Jb\u{202E}gpj.exe");
        assert!(shown.chars().all(|c| !is_terminal_unsafe(c)), "{shown:?}");
        for empty in ["", ".", "..", "  ", "..."] {
            assert_eq!(safe_file_name(empty), FALLBACK_NAME, "{empty:?}");
        }
        let long = format!("{}.pdf", "é".repeat(200));
        let safe = safe_file_name(&long);
        assert!(safe.len() <= 255 && safe.ends_with(".pdf"), "{safe}");
    }

    #[test]
    fn default_downloads_never_replace_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("report.pdf");
        assert_eq!(unique(&first), first);
        std::fs::write(&first, b"x").unwrap();
        assert_eq!(unique(&first), dir.path().join("report (1).pdf"));
        std::fs::write(dir.path().join("report (1).pdf"), b"x").unwrap();
        assert_eq!(unique(&first), dir.path().join("report (2).pdf"));
        let bare = dir.path().join("README");
        std::fs::write(&bare, b"x").unwrap();
        assert_eq!(unique(&bare), dir.path().join("README (1)"));

        // -o to an existing file: refused without --force, taken with it;
        // -o to a directory: the name inside it.
        let e = download_path(Some(&first), "x", false).unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput);
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(
            download_path(Some(&first), "x", true).unwrap(),
            (first, true)
        );
        assert_eq!(
            download_path(Some(dir.path()), "new.bin", false).unwrap(),
            (dir.path().join("new.bin"), false)
        );
    }

    #[test]
    fn files_to_send_are_checked_first() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_readable(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput);
        assert!(e.to_string().contains("no such file"), "{e}");
        let e = check_readable(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        check_readable(&file).unwrap();
        assert!(absolute(Path::new("rel/f")).unwrap().is_absolute());
    }

    #[test]
    fn transfer_ends_map_to_their_statuses() {
        let up = Watch {
            conversation: ConversationId([1; 16]),
            conversation_ref: ConversationRef::Id(ConversationId([1; 16])),
            id: MessageId([2; 16]),
            direction: TransferDirection::Up,
        };
        assert_eq!(up.end(TransferState::Uploaded, None, None).unwrap(), None);
        let e = up
            .end(TransferState::Corrupt, None, Some("chunk 3".into()))
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Corrupt);
        assert!(e.to_string().contains("chunk 3"), "{e}");
        assert_eq!(
            up.end(TransferState::Expired, None, None)
                .unwrap_err()
                .exit(),
            Exit::Expired
        );
        let failed = up.end(TransferState::Failed, None, None).unwrap_err();
        assert_eq!(failed.exit(), Exit::Failure);
        assert!(failed.hint().unwrap().contains("qpq-ctl retry"));
        assert_eq!(up.refused(Some("E052: too large")).exit(), Exit::Refused);
    }
}
