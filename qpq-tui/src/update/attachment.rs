//! Attachments (issue 18): `/attach`, a pasted file's prompt, the save and
//! open keys on a selected message, `transfer` notifications (the progress
//! line and how a transfer ended), and image previews (downloaded by
//! themselves up to `preview_max_mib`, decoded off the UI thread).
//!
//! Nothing here waits for a transfer: `attach` answers once the daemon has
//! the file in its spool and `download` at once; what follows comes as
//! `transfer` notifications, so the worker's connection is never held.

use crossterm::event::{KeyCode, KeyEvent};
use quicproquo_protocol::ipc::methods::{AttachParams, DownloadParams};
use quicproquo_protocol::ipc::notifications::TransferUpdate;
use quicproquo_protocol::ipc::values::{
    Attachment, ConversationId, Message, MessageId, TransferState,
};
use quicproquo_protocol::ipc::{Call, IpcErrorCode};

use super::message::selected_message;
use crate::action::{Effect, Failure, Request};
use crate::app::{AfterDownload, App, Compose, Overlay, Progress};
use crate::attach::{self, human_size, PastedFile};
use crate::graphics::{kitty, Protocol, Target};
use crate::preview::{Picture, Preview, PreviewError};
use crate::render::layout::message_pane;
use crate::render::messages::BlockCtx;
use crate::timeline::View;
use crate::{scroll, wrap};

/// Transfers that ended before their message was here (a small upload can
/// finish before `attach` answers): kept until it arrives, at most this
/// many.
const STASHED: usize = 256;

/// A name or type from a peer, on one line of the status bar.
fn shown(s: &str) -> String {
    wrap::sanitize(s).replace('\n', " ")
}

/// `/attach PATH [caption]` in the open conversation. False when refused.
pub(super) fn command(app: &mut App, path: &str, caption: String, fx: &mut Vec<Effect>) -> bool {
    let Some(conversation) = app.selected else {
        app.error("No conversation is open: /dm user or /group create name");
        return false;
    };
    let abs = match attach::resolve(path, &app.places) {
        Ok(p) => p,
        Err(e) => {
            app.error(e);
            return false;
        }
    };
    let Some(abs) = abs.to_str().map(str::to_owned) else {
        app.error("That path is not valid UTF-8; rename the file to attach it.");
        return false;
    };
    attach(app, conversation, abs, caption, fx);
    true
}

fn attach(
    app: &mut App,
    conversation: ConversationId,
    path: String,
    caption: String,
    fx: &mut Vec<Effect>,
) {
    let reply_to = match app.compose.take() {
        Some(Compose::Reply {
            conversation: c,
            id,
            ..
        }) if c == conversation => Some(id),
        other => {
            app.compose = other;
            None
        }
    };
    let name = attach::own_name(std::path::Path::new(&path));
    app.info(format!("Attaching {}…", shown(&name)));
    if let Some(tl) = app.timelines.get_mut(&conversation) {
        tl.view = View::Follow;
    }
    app.selecting = false;
    fx.push(Effect::call(Call::Attach(AttachParams {
        conversation: conversation.into(),
        path,
        caption,
        name: None,
        content_type: None,
        confirm_changed_keys: false,
        reply_to,
    })));
}

/// A paste that is one existing file: offer to attach it (the input holds
/// a command: it is part of that, inserted).
pub(super) fn pasted(app: &mut App, text: String, file: PastedFile) -> bool {
    let offer = app.screen == crate::app::Screen::Main
        && app.overlay.is_none()
        && !app.editor.text().starts_with('/');
    match app.selected {
        Some(conversation) if offer => {
            app.overlay = Some(Overlay::ConfirmAttach {
                conversation,
                file,
                text,
            });
            true
        }
        _ => false,
    }
}

/// `y` attaches the pasted file; `n` or Esc inserts the pasted text.
pub(super) fn confirm_key(
    app: &mut App,
    conversation: ConversationId,
    file: PastedFile,
    text: String,
    key: &KeyEvent,
    fx: &mut Vec<Effect>,
) -> Option<Overlay> {
    match key.code {
        KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
            match file.path.to_str() {
                Some(path) => attach(app, conversation, path.to_owned(), String::new(), fx),
                None => app.error("That path is not valid UTF-8; rename the file to attach it."),
            }
            None
        }
        KeyCode::Char('n' | 'N') | KeyCode::Esc => {
            app.editor.insert_str(&text);
            None
        }
        _ => Some(Overlay::ConfirmAttach {
            conversation,
            file,
            text,
        }),
    }
}

/// The selected message's attachment, or why there is none (said).
fn selected_attachment(app: &mut App) -> Option<(ConversationId, MessageId, bool, Attachment)> {
    let found = selected_message(app).map(|(conv, m)| {
        (
            conv,
            m.id,
            m.outgoing,
            m.meta.attachment.as_deref().cloned(),
            m.meta.deleted,
        )
    });
    match found {
        Some((conv, id, own, Some(a), false)) => Some((conv, id, own, a)),
        Some(_) => {
            app.info("That message has no attachment.");
            None
        }
        None => None,
    }
}

/// The save key: download into the download directory under the file's
/// own name (made unique there; never overwriting).
pub(super) fn save(app: &mut App, fx: &mut Vec<Effect>) {
    let Some((conversation, id, _, a)) = selected_attachment(app) else {
        return;
    };
    if a.state == TransferState::Expired {
        app.error("That file has expired: the server no longer has it.");
        return;
    }
    app.after_download.insert(id, AfterDownload::Saved);
    app.info(format!(
        "Saving {} to {}…",
        shown(&a.name),
        app.places.downloads.display()
    ));
    fx.push(Effect::Request(Request::Save {
        conversation,
        id,
        dir: app.places.downloads.clone(),
        name: a.name,
    }));
}

/// The open key: the file as it is here, else downloaded to the daemon's
/// own directory first.
pub(super) fn open(app: &mut App, fx: &mut Vec<Effect>) {
    let Some((conversation, id, own, a)) = selected_attachment(app) else {
        return;
    };
    let here = own || a.state == TransferState::Downloaded;
    match (a.path, a.state) {
        (Some(path), _) if here => fx.push(Effect::Open(path.into())),
        (_, TransferState::Expired) => {
            app.error("That file has expired: the server no longer has it.");
        }
        _ => {
            app.after_download.insert(id, AfterDownload::Open);
            app.info(format!("Downloading {} to open it…", shown(&a.name)));
            fx.push(download(conversation, id));
        }
    }
}

/// `download` to the daemon's default place.
fn download(conversation: ConversationId, id: MessageId) -> Effect {
    Effect::call(Call::Download(DownloadParams {
        conversation: conversation.into(),
        id,
        path: None,
        overwrite: false,
    }))
}

/// `attach` answered: our message, uploading.
pub(super) fn attached(app: &mut App, m: Message) {
    let (conversation, id) = (m.conversation, m.id);
    app.timelines.entry(conversation).or_default().push(m);
    app.dismiss_notice();
    unstash(app, conversation, id);
}

/// `attach` refused: a changed key asks as a send does (`y` attaches
/// anyway); anything else is said in the daemon's words.
pub(super) fn attach_failed(app: &mut App, params: Box<AttachParams>, f: Failure) {
    let conversation = match &params.conversation {
        quicproquo_protocol::ipc::values::ConversationRef::Id(id) => Some(*id),
        _ => None,
    };
    match conversation {
        Some(conversation) if f.code == Some(IpcErrorCode::IdentityChanged) => {
            let name = shown(&attach::own_name(std::path::Path::new(&params.path)));
            let text = if params.caption.is_empty() {
                format!("📎 {name}")
            } else {
                format!("📎 {name} {}", params.caption)
            };
            app.overlay = Some(Overlay::ConfirmSend {
                conversation,
                text,
                changed: super::daemon::changed_members(app, conversation),
                attach: Some(params),
            });
        }
        _ => app.error(format!("Not attached: {}", f.message)),
    }
}

/// `download` answered with the attachment as it is now.
pub(super) fn downloading(
    app: &mut App,
    conversation: ConversationId,
    id: MessageId,
    a: Attachment,
    fx: &mut Vec<Effect>,
) {
    let done = a.state == TransferState::Downloaded;
    let path = a.path.clone();
    if let Some(old) = app
        .timelines
        .get_mut(&conversation)
        .and_then(|tl| tl.attachment_mut(&id))
    {
        // A notification may have moved it on already.
        if old.state != TransferState::Downloaded {
            *old = a;
        }
    }
    if done {
        downloaded(app, conversation, id, path, fx);
    }
}

pub(super) fn download_failed(
    app: &mut App,
    conversation: ConversationId,
    id: MessageId,
    f: Failure,
) {
    let state = match f.code {
        Some(IpcErrorCode::Expired) => Some(TransferState::Expired),
        Some(IpcErrorCode::Corrupt) => Some(TransferState::Corrupt),
        _ => None,
    };
    if let Some(state) = state {
        if let Some(a) = app
            .timelines
            .get_mut(&conversation)
            .and_then(|tl| tl.attachment_mut(&id))
        {
            a.state = state;
            a.error = Some(f.message.clone());
        }
    }
    // A preview's own download fails quietly, in the preview's place.
    if app.after_download.remove(&id).is_none() && app.preview_asked.contains(&id) {
        app.previews
            .insert(id, Preview::Failed(PreviewError::Io(f.message)));
        return;
    }
    app.error(format!("Not downloaded: {}", f.message));
}

/// A `transfer` notification: the progress line, then how it ended.
pub(super) fn transfer(app: &mut App, t: TransferUpdate, fx: &mut Vec<Effect>) {
    let moving = matches!(
        t.state,
        TransferState::Uploading | TransferState::Downloading
    );
    let known = apply(app, &t);
    if moving {
        let now = app.now;
        let p = app.transfers.entry(t.id).or_insert(Progress {
            direction: t.direction,
            done: t.done,
            total: t.total,
            since: now,
            done_at_start: t.done,
            rate: None,
        });
        p.done = t.done;
        p.total = t.total;
        let secs = now.saturating_duration_since(p.since).as_secs_f64();
        if secs >= 0.2 {
            p.rate = Some(t.done.saturating_sub(p.done_at_start) as f64 / secs);
        }
        return;
    }
    app.transfers.remove(&t.id);
    if !known {
        stash(app, t.clone());
    }
    let name = known_name(app, t.conversation, &t.id);
    match t.state {
        TransferState::Downloaded => downloaded(app, t.conversation, t.id, t.path, fx),
        TransferState::Failed | TransferState::Corrupt | TransferState::Expired => {
            let quiet =
                app.after_download.remove(&t.id).is_none() && app.preview_asked.contains(&t.id);
            let why = t.error.as_deref().map_or_else(String::new, shown);
            if quiet {
                app.previews
                    .insert(t.id, Preview::Failed(PreviewError::Io(why)));
            } else {
                let what = match t.state {
                    TransferState::Corrupt => "failed its integrity check; nothing was kept",
                    TransferState::Expired => "has expired: the server no longer has it",
                    _ => "could not be transferred",
                };
                let sep = if why.is_empty() { "" } else { ": " };
                app.error(format!("{name} {what}{sep}{why}"));
            }
        }
        _ => {}
    }
}

fn known_name(app: &App, conversation: ConversationId, id: &MessageId) -> String {
    app.timelines
        .get(&conversation)
        .and_then(|tl| tl.get(id))
        .and_then(|m| m.meta.attachment.as_deref())
        .map_or_else(|| "The file".to_owned(), |a| shown(&a.name))
}

/// Moves the message's attachment to the notification's state. False when
/// the message is not loaded.
fn apply(app: &mut App, t: &TransferUpdate) -> bool {
    let Some(a) = app
        .timelines
        .get_mut(&t.conversation)
        .and_then(|tl| tl.attachment_mut(&t.id))
    else {
        return false;
    };
    a.state = t.state;
    if t.path.is_some() {
        a.path = t.path.clone();
    }
    a.error = t.error.clone();
    true
}

fn stash(app: &mut App, t: TransferUpdate) {
    if app.stashed_transfers.len() >= STASHED {
        app.stashed_transfers.clear();
    }
    app.stashed_transfers.insert(t.id, t);
}

/// A message arrived: a transfer that ended before it did applies now.
pub(super) fn unstash(app: &mut App, conversation: ConversationId, id: MessageId) {
    if let Some(t) = app.stashed_transfers.remove(&id) {
        if t.conversation == conversation {
            apply(app, &t);
        }
    }
}

/// A download ended well: say where a saved file went, open one the user
/// asked to open, and preview an image.
fn downloaded(
    app: &mut App,
    conversation: ConversationId,
    id: MessageId,
    path: Option<String>,
    fx: &mut Vec<Effect>,
) {
    match (app.after_download.remove(&id), path) {
        (Some(AfterDownload::Saved), Some(path)) => {
            let name = known_name(app, conversation, &id);
            app.info(format!("Saved {name} to {}", shown(&path)));
        }
        (Some(AfterDownload::Open), Some(path)) => fx.push(Effect::Open(path.into())),
        _ => {}
    }
    want_preview(app, conversation, id, fx);
}

/// A decoded preview (or why there is none); a copy for kitty's graphics
/// goes to the terminal before the frame that places it.
pub(super) fn decoded(
    app: &mut App,
    id: MessageId,
    result: Result<Picture, PreviewError>,
    fx: &mut Vec<Effect>,
) {
    let preview = match result {
        Ok(mut p) => {
            if let Some(bytes) = p.send.take() {
                fx.push(Effect::Transmit(bytes));
            }
            Preview::Ready(p)
        }
        Err(e) => Preview::Failed(e),
    };
    app.previews.insert(id, preview);
}

/// The terminal's cells changed size: images painted pixel for pixel
/// (sixel) or sized for the old cells (iTerm2) are made again for the new
/// ones as they come into view.
pub(super) fn cell_size(app: &mut App, px: Option<(u32, u32)>) {
    if app.cell_px == px {
        return;
    }
    app.cell_px = px;
    app.previews
        .retain(|_, p| !matches!(p, Preview::Ready(pic) if pic.image.is_some()));
}

/// Previews for the image attachments on screen: downloaded ones decoded,
/// small enough ones downloaded first (each asked once).
pub(crate) fn want_previews(app: &mut App, fx: &mut Vec<Effect>) {
    if !app.config.image_previews {
        return;
    }
    let Some(conversation) = app.selected else {
        return;
    };
    let (w, h) = message_pane(app);
    let Some(tl) = app.timelines.get(&conversation) else {
        return;
    };
    if tl.is_empty() {
        return;
    }
    let bottom = match tl.view {
        View::Follow => tl.len() - 1,
        View::At { index, .. } => index.min(tl.len() - 1),
    };
    let top = scroll::top_index(&BlockCtx::new(app, w), tl, h);
    let ids: Vec<MessageId> = tl.messages()[top.min(bottom)..=bottom]
        .iter()
        .filter(|m| m.meta.attachment.is_some())
        .map(|m| m.id)
        .collect();
    for id in ids {
        want_preview(app, conversation, id, fx);
    }
}

/// The preview of one message, when it is an image within the limit.
fn want_preview(app: &mut App, conversation: ConversationId, id: MessageId, fx: &mut Vec<Effect>) {
    if !app.config.image_previews || app.previews.contains_key(&id) {
        return;
    }
    let Some(m) = app.timelines.get(&conversation).and_then(|tl| tl.get(&id)) else {
        return;
    };
    let Some(a) = m.meta.attachment.as_deref() else {
        return;
    };
    if m.meta.deleted
        || !attach::previewable(&a.content_type)
        || a.size > app.config.preview_max_bytes
    {
        return;
    }
    let on_disk = a.state == TransferState::Downloaded
        || (m.outgoing && matches!(a.state, TransferState::Uploading | TransferState::Uploaded));
    match (&a.path, a.state) {
        (Some(path), _) if on_disk => {
            let path = path.into();
            let target = match app.graphics {
                Some(Protocol::Kitty) => {
                    let n = app.next_image_id;
                    // Ids are the placeholders' 24-bit colour; 0 is none.
                    app.next_image_id = n % 0xFF_FFFF + 1;
                    Target::Kitty(n)
                }
                Some(Protocol::Iterm2) => Target::Iterm2 {
                    // iTerm2 scales to the cells: a guess only costs
                    // sharpness.
                    cell_px: app.cell_px.unwrap_or(kitty::CELL_PX),
                },
                Some(Protocol::Sixel) => app
                    .cell_px
                    .map_or(Target::HalfBlocks, |cell_px| Target::Sixel { cell_px }),
                None => Target::HalfBlocks,
            };
            app.previews.insert(id, Preview::Decoding);
            fx.push(Effect::Decode {
                id,
                path,
                max_bytes: app.config.preview_max_bytes,
                target,
            });
        }
        (_, TransferState::Available) if app.preview_asked.insert(id) => {
            fx.push(download(conversation, id));
        }
        _ => {}
    }
}

/// The progress line's words: `uploading 42 % · 12.3 MB/s`.
pub fn progress_words(p: &Progress) -> String {
    let verb = match p.direction {
        quicproquo_protocol::ipc::values::TransferDirection::Up => "uploading",
        quicproquo_protocol::ipc::values::TransferDirection::Down => "downloading",
    };
    let pct = (u128::from(p.done.min(p.total)) * 100)
        .checked_div(u128::from(p.total))
        .unwrap_or(100);
    match p.rate {
        Some(r) => format!("{verb} {pct} % · {}/s", human_size(r as u64)),
        None => format!("{verb} {pct} %"),
    }
}
