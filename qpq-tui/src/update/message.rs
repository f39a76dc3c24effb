//! Acting on one message: moving the selection (Shift+Up/Down), then on the
//! selected message reply (`r`), react (`e`/`+`, the emoji picker), edit
//! (`c`, our own), delete (`d`, a prompt), its edit history (`h`) and the
//! original a reply quotes (`o`); `/react` and the settings commands.
//!
//! The letters act only while selecting with an empty input, so typing a
//! message never triggers them; Esc leaves the selection.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use quicproquo_protocol::ipc::methods::{
    ConversationSettingsParams, DeleteParams, MentionsParams, MessageRefParams, ReactParams,
};
use quicproquo_protocol::ipc::values::{ConversationId, Limit, Message, MessageId};
use quicproquo_protocol::ipc::Call;

use super::{jump_to, mark_read, maybe_load_older};
use crate::action::Effect;
use crate::app::{App, Compose, Loadable, Overlay, REACTIONS};
use crate::commands::Command;
use crate::timeline::View;

/// Characters of the original a reply's banner shows.
const EXCERPT_CHARS: usize = 40;
/// Mentions asked for at once.
const MENTIONS: u16 = 100;

/// Moves the selection `delta` messages (negative: older). From the newest
/// it starts selecting; past the newest it follows again.
pub(super) fn move_selection(app: &mut App, delta: isize, fx: &mut Vec<Effect>) {
    let Some(conv) = app.selected else {
        return;
    };
    let Some(tl) = app.timelines.get_mut(&conv) else {
        return;
    };
    if tl.is_empty() {
        return;
    }
    let last = tl.len() - 1;
    let next = match tl.view {
        View::Follow if delta < 0 => Some(last),
        View::Follow => None,
        View::At { index, .. } => {
            let n = index.saturating_add_signed(delta);
            (index as isize + delta <= last as isize).then_some(n.min(last))
        }
    };
    match next {
        Some(index) => {
            tl.view = View::At { index, skip: 0 };
            app.selecting = true;
        }
        None => {
            tl.view = View::Follow;
            app.selecting = false;
            mark_read(app, conv, fx);
        }
    }
    maybe_load_older(app, fx);
}

/// The selected message of the open conversation, if one is.
pub(super) fn selected_message(app: &App) -> Option<(ConversationId, &Message)> {
    let conv = app.selected?;
    let tl = app.timelines.get(&conv)?;
    let m = tl.messages().get(tl.selected()?)?;
    Some((conv, m))
}

fn own(app: &App, m: &Message) -> bool {
    m.outgoing || app.me() == Some(m.sender.as_str())
}

/// The start of a text on one line, for a reply's banner.
pub fn excerpt(text: &str) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    let mut out: String = one_line.chars().take(EXCERPT_CHARS).collect();
    if one_line.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// A letter on the selected message. True when the key was one.
pub(super) fn key(app: &mut App, key: &KeyEvent, fx: &mut Vec<Effect>) -> bool {
    if !app.selecting
        || !app.editor.is_empty()
        || key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
    {
        return false;
    }
    let Some((conv, m)) = selected_message(app) else {
        return false;
    };
    let (id, deleted, own) = (m.id, m.meta.deleted, own(app, m));
    match key.code {
        KeyCode::Char('r') if deleted => app.error("That message was deleted."),
        KeyCode::Char('r') => {
            app.compose = Some(Compose::Reply {
                conversation: conv,
                id,
                sender: m.sender.clone(),
                excerpt: excerpt(&m.text),
            });
            app.selecting = false;
        }
        KeyCode::Char('e' | '+') if deleted => app.error("That message was deleted."),
        KeyCode::Char('e' | '+') => {
            app.overlay = Some(Overlay::React {
                conversation: conv,
                id,
                selected: 0,
            });
        }
        KeyCode::Char('c') if !own => app.error("Only your own messages can be edited."),
        KeyCode::Char('c') if deleted => app.error("That message was deleted."),
        KeyCode::Char('c') => {
            let text = m.text.clone();
            app.editor.set_text(text);
            app.compose = Some(Compose::Edit {
                conversation: conv,
                id,
            });
            app.selecting = false;
        }
        KeyCode::Char('d') => {
            app.overlay = Some(Overlay::Delete {
                conversation: conv,
                id,
                own: own && !deleted,
            });
        }
        KeyCode::Char('h') if !m.meta.edited => app.info("That message was not edited."),
        KeyCode::Char('h') => {
            app.overlay = Some(Overlay::Edits {
                current: m.text.clone(),
                versions: Loadable::Loading,
            });
            fx.push(Effect::call(Call::MessageEdits(MessageRefParams {
                conversation: conv.into(),
                id,
            })));
        }
        KeyCode::Char('o') => match m.meta.reply_to.as_ref() {
            None => app.info("That message is not a reply."),
            Some(q) if q.missing => {
                app.info("(unknown message): the original is not in this history.")
            }
            Some(q) => {
                let target = q.id;
                jump_to(app, conv, target, fx);
            }
        },
        _ => return false,
    }
    true
}

/// `react`, taking our reaction back when we already gave that emoji.
fn react(app: &App, conversation: ConversationId, id: MessageId, emoji: String) -> Effect {
    let me = app.me();
    let remove = app
        .timelines
        .get(&conversation)
        .and_then(|tl| tl.get(&id))
        .and_then(|m| m.meta.reactions.iter().find(|r| r.emoji == emoji))
        .is_some_and(|r| r.by.iter().any(|b| Some(b.as_str()) == me));
    Effect::call(Call::React(ReactParams {
        conversation: conversation.into(),
        id,
        emoji,
        remove,
    }))
}

/// Keys in the emoji picker: arrows or Tab move, Enter or 1–8 pick.
pub(super) fn picker_key(
    app: &App,
    conversation: ConversationId,
    id: MessageId,
    selected: usize,
    key: &KeyEvent,
    fx: &mut Vec<Effect>,
) -> Option<Overlay> {
    let n = REACTIONS.len();
    let pick = match key.code {
        KeyCode::Esc | KeyCode::Char('q') => return None,
        KeyCode::Left | KeyCode::Up | KeyCode::BackTab => {
            return Some(Overlay::React {
                conversation,
                id,
                selected: (selected + n - 1) % n,
            })
        }
        KeyCode::Right | KeyCode::Down | KeyCode::Tab => {
            return Some(Overlay::React {
                conversation,
                id,
                selected: (selected + 1) % n,
            })
        }
        KeyCode::Enter => selected,
        KeyCode::Char(c @ '1'..='8') => usize::from(c as u8 - b'1'),
        _ => {
            return Some(Overlay::React {
                conversation,
                id,
                selected,
            })
        }
    };
    let emoji = REACTIONS.get(pick).copied().unwrap_or(REACTIONS[0]);
    fx.push(react(app, conversation, id, emoji.to_owned()));
    None
}

/// Keys in the delete prompt: `e` for everyone (our own), `m` for me.
pub(super) fn delete_key(
    app: &mut App,
    conversation: ConversationId,
    id: MessageId,
    own: bool,
    key: &KeyEvent,
    fx: &mut Vec<Effect>,
) -> Option<Overlay> {
    let for_me = match key.code {
        KeyCode::Char('e' | 'E') if own => false,
        KeyCode::Char('e' | 'E') => {
            app.error("Only your own messages can be deleted for everyone.");
            return None;
        }
        KeyCode::Char('m' | 'M') => true,
        KeyCode::Esc | KeyCode::Char('n' | 'N' | 'q') => return None,
        _ => {
            return Some(Overlay::Delete {
                conversation,
                id,
                own,
            })
        }
    };
    fx.push(Effect::call(Call::Delete(DeleteParams {
        conversation: conversation.into(),
        id,
        for_me,
    })));
    app.selecting = false;
    None
}

/// The issue-17 commands; `None` when `cmd` is another one. `Some(false)`:
/// refused (the notice says why).
pub(super) fn command(app: &mut App, cmd: &Command, fx: &mut Vec<Effect>) -> Option<bool> {
    let settings = |conversation: ConversationId| ConversationSettingsParams {
        conversation: conversation.into(),
        read_receipts: None,
        typing: None,
        timer_seconds: None,
        notify: None,
        notify_content: None,
    };
    let call = match cmd {
        Command::Mentions => {
            // The search box with no query lists mentions.
            app.overlay = Some(Overlay::Search {
                query: String::new(),
                results: Loadable::Loading,
                selected: 0,
            });
            Call::Mentions(MentionsParams {
                conversation: None,
                before: None,
                limit: Limit::new(MENTIONS).unwrap_or_default(),
            })
        }
        Command::React(_)
        | Command::Receipts(_)
        | Command::Typing(_)
        | Command::Timer(_)
        | Command::Notify(_) => {
            let Some(conv) = app.selected else {
                app.error("no conversation is open");
                return Some(false);
            };
            let params = match cmd {
                Command::React(emoji) => {
                    let target = selected_message(app)
                        .map(|(_, m)| m)
                        .or_else(|| app.timelines.get(&conv).and_then(|tl| tl.newest()))
                        .filter(|m| !m.meta.deleted)
                        .map(|m| m.id);
                    let Some(id) = target else {
                        app.error("no message to react to here");
                        return Some(false);
                    };
                    fx.push(react(app, conv, id, emoji.clone()));
                    return Some(true);
                }
                Command::Receipts(on) => ConversationSettingsParams {
                    read_receipts: Some(*on),
                    ..settings(conv)
                },
                Command::Typing(on) => ConversationSettingsParams {
                    typing: Some(*on),
                    ..settings(conv)
                },
                Command::Timer(seconds) => ConversationSettingsParams {
                    timer_seconds: Some(*seconds),
                    ..settings(conv)
                },
                Command::Notify(mode) => ConversationSettingsParams {
                    notify: Some(*mode),
                    ..settings(conv)
                },
                _ => return None,
            };
            Call::ConversationSettingsMethod(params)
        }
        _ => return None,
    };
    fx.push(Effect::call(call));
    Some(true)
}

/// What the input's title row says while composing: the reply's banner or
/// that an edit is under way.
pub fn compose_banner(c: &Compose) -> String {
    match c {
        Compose::Reply {
            sender, excerpt, ..
        } => format!("replying to {sender}: {excerpt}"),
        Compose::Edit { .. } => "editing your message".to_owned(),
    }
}
