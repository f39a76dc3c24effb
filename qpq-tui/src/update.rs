//! `update(&mut App, Action) -> Vec<Effect>`: every state change of the UI,
//! with no I/O and no clock (the time is `app.now`, set by the event loop).
//! Keys, the mouse, resizes, ticks, pastes (a pasted file already looked at
//! by the input thread), decoded previews and the worker's results come in;
//! requests for the worker, the bell, files to open and images to decode go
//! out (desktop notifications are qpqd's: `update` tells it what is shown
//! with `focus`). The one exception to "no I/O": Tab after `/attach ` lists
//! the directory being completed, as a shell does (bounded; tests use
//! temporary directories). Tests drive it directly, without a terminal or
//! a daemon.

mod attachment;
mod daemon;
mod keys;
mod message;

pub use attachment::progress_words;
pub use message::compose_banner;

use quicproquo_protocol::ipc::methods::{
    ConversationParams, FocusParams, ReadParams, TypingParams,
};
use quicproquo_protocol::ipc::values::{ConversationId, MessageId};
use quicproquo_protocol::ipc::Call;

use crate::action::{Action, DaemonEvent, Effect, Request};
use crate::app::{
    App, Compose, Daemon, Loadable, OwnTyping, Screen, TYPING_IDLE, TYPING_REPEAT, TYPING_SHOWN,
};
use crate::render::layout::message_pane;
use crate::render::messages::BlockCtx;
use crate::scroll;
use crate::timeline::{LoadState, View};
use quicproquo_protocol::ipc::Notification;

/// Load an older page when the top of the view is this close to the oldest
/// loaded message.
const PREFETCH: usize = 100;

pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    // What may bring an image attachment into view. (Not every
    // notification: a burst of plain messages costs no layout here.)
    let previews = app.config.image_previews
        && match &action {
            Action::Key(_) | Action::Mouse(_) | Action::Resize(..) | Action::CellSize(_) => true,
            Action::Daemon(DaemonEvent::Notification(Notification::Message(m))) => {
                m.message.meta.attachment.is_some()
            }
            Action::Daemon(
                DaemonEvent::History { .. }
                | DaemonEvent::Attached(_)
                | DaemonEvent::Conversations(_),
            ) => true,
            _ => false,
        };
    match action {
        Action::Resize(w, h) => {
            app.size = (w, h);
            maybe_load_older(app, &mut fx);
        }
        Action::Paste(text) => keys::paste(app, &text),
        Action::PasteFile { text, file } => {
            if !attachment::pasted(app, text.clone(), file) {
                keys::paste(app, &text);
            }
        }
        Action::Preview { id, result } => attachment::decoded(app, id, result, &mut fx),
        Action::CellSize(px) => attachment::cell_size(app, px),
        Action::Key(key) => keys::key(app, key, &mut fx),
        Action::Mouse(m) => keys::mouse(app, m, &mut fx),
        Action::Daemon(ev) => daemon::event(app, ev, &mut fx),
        Action::Tick => tick(app, &mut fx),
    }
    if previews && is_main(app) {
        attachment::want_previews(app, &mut fx);
    }
    if app.quit {
        stop_typing(app, &mut fx);
    }
    tell_focus(app, &mut fx);
    if app.quit && !fx.contains(&Effect::Quit) {
        fx.push(Effect::Quit);
    }
    fx
}

/// Time passed: typing indicators older than their time go (a redraw when
/// one did), and ours stops after the user stopped typing.
fn tick(app: &mut App, fx: &mut Vec<Effect>) {
    let now = app.now;
    let before: usize = app.typing.values().map(Vec::len).sum();
    for list in app.typing.values_mut() {
        list.retain(|(_, at)| now.saturating_duration_since(*at) < TYPING_SHOWN);
    }
    app.typing.retain(|_, list| !list.is_empty());
    let after: usize = app.typing.values().map(Vec::len).sum();
    if after != before {
        fx.push(Effect::Redraw);
    }
    if let Some(t) = app.own_typing {
        if now.saturating_duration_since(t.last_key) >= TYPING_IDLE {
            stop_typing(app, fx);
        }
    }
}

/// The user typed in the open conversation's input: `typing on`, at most
/// every [`TYPING_REPEAT`] (qpqd sends it on only where typing indicators
/// are on). Commands are not typing.
pub(crate) fn typed(app: &mut App, fx: &mut Vec<Effect>) {
    let Some(conversation) = app.selected else {
        return;
    };
    // Commands and edits of a sent message are not typing a new one.
    if app.editor.is_empty()
        || app.editor.text().starts_with('/')
        || matches!(app.compose, Some(Compose::Edit { .. }))
    {
        return;
    }
    let now = app.now;
    match &mut app.own_typing {
        Some(t)
            if t.conversation == conversation
                && now.saturating_duration_since(t.sent_at) < TYPING_REPEAT =>
        {
            t.last_key = now;
            return;
        }
        Some(t) if t.conversation != conversation => stop_typing(app, fx),
        _ => {}
    }
    fx.push(Effect::call(Call::Typing(TypingParams {
        conversation: conversation.into(),
        on: true,
    })));
    app.own_typing = Some(OwnTyping {
        conversation,
        sent_at: now,
        last_key: now,
    });
}

/// `typing off` where ours is on (sent, idle, left, quitting).
pub(crate) fn stop_typing(app: &mut App, fx: &mut Vec<Effect>) {
    if let Some(t) = app.own_typing.take() {
        fx.push(Effect::call(Call::Typing(TypingParams {
            conversation: t.conversation.into(),
            on: false,
        })));
    }
}

/// Tells qpqd which conversation is on screen whenever that changes (none
/// outside the main screen and when quitting), so it does not notify the
/// desktop of what the user is reading.
fn tell_focus(app: &mut App, fx: &mut Vec<Effect>) {
    if app.daemon != Daemon::Connected {
        return;
    }
    let shown = if is_main(app) && !app.quit {
        app.selected
    } else {
        None
    };
    if app.focused == Some(shown) {
        return;
    }
    app.focused = Some(shown);
    fx.push(Effect::call(Call::Focus(FocusParams {
        conversation: shown.map(Into::into),
    })));
}

/// Opens a conversation: loads its history if needed, marks it read.
pub(crate) fn select(app: &mut App, id: ConversationId, fx: &mut Vec<Effect>) {
    if app.selected != Some(id) {
        app.completing = None;
        app.selecting = false;
        if app.own_typing.is_some_and(|t| t.conversation != id) {
            stop_typing(app, fx);
        }
        // A reply or an edit belongs to the conversation it was started in.
        if app
            .compose
            .take()
            .is_some_and(|c| matches!(c, Compose::Edit { .. }))
        {
            app.editor.take();
        }
        // Leaving a conversation: what was new has been seen.
        if let Some(tl) = app.selected.and_then(|old| app.timelines.get_mut(&old)) {
            tl.new_marker = None;
        }
    }
    app.selected = Some(id);
    let tl = app.timelines.entry(id).or_default();
    match tl.load {
        LoadState::NotLoaded | LoadState::Failed(_) => {
            tl.load = LoadState::Loading;
            fx.push(Effect::Request(Request::History {
                conversation: id,
                before: None,
                until: None,
            }));
        }
        LoadState::Loading => {}
        LoadState::Loaded => {
            set_new_marker(app, id);
            mark_read(app, id, fx);
        }
    }
    if app.show_members {
        request_members(app, id, fx);
    }
}

pub(crate) fn request_members(app: &mut App, id: ConversationId, fx: &mut Vec<Effect>) {
    if !matches!(app.members.get(&id), Some(Loadable::Ready(_))) {
        app.members.insert(id, Loadable::Loading);
    }
    fx.push(Effect::call(Call::Members(ConversationParams {
        conversation: id.into(),
    })));
}

/// Places the "new messages" marker before the first of the conversation's
/// unread incoming messages.
pub(crate) fn set_new_marker(app: &mut App, id: ConversationId) {
    let unread = app.conversation(id).map_or(0, |c| c.unread);
    let Some(tl) = app.timelines.get_mut(&id) else {
        return;
    };
    if unread == 0 {
        return;
    }
    let mut left = unread;
    let mut marker = None;
    for m in tl.messages().iter().rev() {
        if !m.outgoing {
            marker = Some(m.id);
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    tl.new_marker = marker;
}

/// Tells the daemon the conversation was read (when it has unread ones).
pub(crate) fn mark_read(app: &mut App, id: ConversationId, fx: &mut Vec<Effect>) {
    let Loadable::Ready(list) = &mut app.conversations else {
        return;
    };
    if let Some(c) = list.iter_mut().find(|c| c.id == id) {
        if c.unread > 0 {
            c.unread = 0;
            fx.push(Effect::call(Call::Read(ReadParams {
                conversation: id.into(),
                up_to: None,
            })));
        }
    }
    if let Some(tl) = app.timelines.get_mut(&id) {
        tl.unseen_below = 0;
    }
}

/// Scrolls the open conversation; negative `rows` go back in time.
pub(crate) fn scroll_by(app: &mut App, rows: isize, fx: &mut Vec<Effect>) {
    let Some(id) = app.selected else {
        return;
    };
    let (w, h) = message_pane(app);
    let Some(tl) = app.timelines.get(&id) else {
        return;
    };
    let ctx = BlockCtx::new(app, w);
    let view = if rows < 0 {
        scroll::up(&ctx, tl, rows.unsigned_abs(), h)
    } else {
        scroll::down(&ctx, tl, rows.unsigned_abs())
    };
    if let Some(tl) = app.timelines.get_mut(&id) {
        tl.view = view;
    }
    if view == View::Follow {
        mark_read(app, id, fx);
    }
    maybe_load_older(app, fx);
}

/// Asks for an older page when the view nears the oldest loaded message.
/// Called after anything that moves the view or changes the pane.
pub(crate) fn maybe_load_older(app: &mut App, fx: &mut Vec<Effect>) {
    let Some(id) = app.selected else {
        return;
    };
    let (w, h) = message_pane(app);
    let Some(tl) = app.timelines.get(&id) else {
        return;
    };
    if tl.load != LoadState::Loaded || !tl.has_older || tl.loading_older {
        return;
    }
    let top = scroll::top_index(&BlockCtx::new(app, w), tl, h);
    if top >= PREFETCH {
        return;
    }
    let before = tl.oldest();
    if let Some(tl) = app.timelines.get_mut(&id) {
        tl.loading_older = true;
    }
    fx.push(Effect::Request(Request::History {
        conversation: id,
        before,
        until: None,
    }));
}

/// Shows message `target` of conversation `id`, loading history until it is
/// there.
pub(crate) fn jump_to(app: &mut App, id: ConversationId, target: MessageId, fx: &mut Vec<Effect>) {
    app.overlay = None;
    app.selected = Some(id);
    let tl = app.timelines.entry(id).or_default();
    if let Some(index) = tl.index_of(&target) {
        tl.view = View::At { index, skip: 0 };
        maybe_load_older(app, fx);
        return;
    }
    let before = match tl.load {
        LoadState::Loaded => tl.oldest(),
        _ => {
            tl.load = LoadState::Loading;
            None
        }
    };
    tl.loading_older = before.is_some();
    fx.push(Effect::Request(Request::History {
        conversation: id,
        before,
        until: Some(target),
    }));
}

/// Moves the conversation selection by `delta` (wrapping).
pub(crate) fn switch(app: &mut App, delta: isize, fx: &mut Vec<Effect>) {
    let list = app.conversation_list();
    if list.is_empty() {
        return;
    }
    let n = list.len() as isize;
    let cur = app
        .selected
        .and_then(|id| list.iter().position(|c| c.id == id))
        .map_or(-1, |i| i as isize);
    let next = if cur < 0 {
        0
    } else {
        (cur + delta).rem_euclid(n)
    };
    let id = list[next as usize].id;
    select(app, id, fx);
}

pub(crate) fn is_main(app: &App) -> bool {
    app.screen == Screen::Main
}

#[cfg(test)]
mod tests;
