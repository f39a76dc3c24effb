//! Keys, paste and the mouse, per screen and overlay.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use quicproquo_protocol::ipc::methods::{
    AccountDeleteParams, AccountParams, ConversationParams, DeclineParams, DmOpenParams,
    EditParams, GroupCreateParams, GroupMembersParams, InvitationParams, MessageParams, NoParams,
    PasswordChangeParams, SearchParams, SendParams, UnlockParams, VerifyParams,
};
use quicproquo_protocol::ipc::values::{Ciphersuite, ConversationKind, Limit, Secret};
use quicproquo_protocol::ipc::Call;

use super::{
    attachment, jump_to, message, request_members, scroll_by, select, stop_typing, switch, typed,
};
use crate::action::Effect;
use crate::app::{AccountChange, AccountMode, App, Completing, Compose, Loadable, Overlay, Screen};
use crate::commands::{self, Command, Input};
use crate::config::KeyAction;
use crate::input::Editor;
use crate::render::layout::{areas, message_pane};
use crate::timeline::View;
use quicproquo_protocol::limits::{new_secret_problem, MIN_PASSPHRASE_CHARS, MIN_PASSWORD_CHARS};

/// Rows the mouse wheel scrolls per notch.
const WHEEL_ROWS: isize = 3;
/// Search results asked for at once.
const SEARCH_RESULTS: u16 = 100;

pub(super) fn paste(app: &mut App, text: &str) {
    // The form fields are one line: a pasted password loses its line break.
    let one_line = !matches!(app.screen, Screen::Main);
    if let Some(editor) = focused_editor(app) {
        if one_line {
            editor.insert_str(
                text.trim_end_matches(['\r', '\n'])
                    .replace(['\r', '\n'], " ")
                    .as_str(),
            );
        } else {
            editor.insert_str(text);
        }
    }
}

fn focused_editor(app: &mut App) -> Option<&mut Editor> {
    match &mut app.screen {
        Screen::Main if app.overlay.is_none() => Some(&mut app.editor),
        Screen::Main => match &mut app.overlay {
            Some(Overlay::AccountChange(form)) => Some(&mut form.fields[form.focus]),
            _ => None,
        },
        Screen::Account(form) if form.focus > 0 => Some(&mut form.fields[form.focus - 1]),
        Screen::Unlock(form) => Some(&mut form.passphrase),
        _ => None,
    }
}

pub(super) fn mouse(app: &mut App, m: MouseEvent, fx: &mut Vec<Effect>) {
    if app.screen != Screen::Main {
        return;
    }
    match m.kind {
        MouseEventKind::ScrollUp if app.overlay.is_none() => scroll_by(app, -WHEEL_ROWS, fx),
        MouseEventKind::ScrollDown if app.overlay.is_none() => scroll_by(app, WHEEL_ROWS, fx),
        MouseEventKind::Down(_) if app.overlay.is_none() => {
            let a = areas(
                app,
                ratatui::layout::Rect::new(0, 0, app.size.0, app.size.1),
            );
            let Some(list) = a.list else {
                return;
            };
            if m.column >= list.right().saturating_sub(1)
                || m.row < list.y
                || m.row >= list.bottom()
            {
                return;
            }
            let rows = usize::from(list.height);
            let items = app.conversation_list();
            let sel = app
                .selected
                .and_then(|id| items.iter().position(|c| c.id == id))
                .unwrap_or(0);
            let first = sel.saturating_sub(rows.saturating_sub(1));
            if let Some(c) = items.get(first + usize::from(m.row - list.y)) {
                let id = c.id;
                select(app, id, fx);
            }
        }
        _ => {}
    }
}

pub(super) fn key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>) {
    if key.kind == KeyEventKind::Release {
        return;
    }
    let bound = app.config.keys.action(&key);
    if bound == Some(KeyAction::Quit) {
        app.quit = true;
        return;
    }
    match &app.screen {
        Screen::Starting => {}
        Screen::Account(_) => account_key(app, key, fx),
        Screen::Unlock(_) => unlock_key(app, key, fx),
        Screen::Main => {
            if app.overlay.is_some() {
                overlay_key(app, key, fx);
            } else {
                main_key(app, key, bound, fx);
            }
        }
    }
}

fn ctrl(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL)
}

/// Editing keys shared by every text field. True when the key was one.
fn edit(editor: &mut Editor, key: &KeyEvent) -> bool {
    match key.code {
        KeyCode::Char('w') if ctrl(key) => editor.delete_word(),
        KeyCode::Char('u') if ctrl(key) => editor.delete_to_line_start(),
        KeyCode::Char('a') if ctrl(key) => editor.home(),
        KeyCode::Char('e') if ctrl(key) => editor.end(),
        KeyCode::Char(_) if ctrl(key) || key.modifiers.contains(KeyModifiers::ALT) => return false,
        KeyCode::Char(c) => editor.insert_char(c),
        KeyCode::Backspace => editor.backspace(),
        KeyCode::Delete => editor.delete(),
        KeyCode::Left => editor.left(),
        KeyCode::Right => editor.right(),
        KeyCode::Home => editor.home(),
        KeyCode::End => editor.end(),
        _ => return false,
    }
    true
}

fn main_key(app: &mut App, key: KeyEvent, mut bound: Option<KeyAction>, fx: &mut Vec<Effect>) {
    if bound != Some(KeyAction::Complete) {
        app.completing = None;
    }
    // The attachment keys act on a selected message with an empty input,
    // like the letters in `message`; otherwise a letter bound to them is
    // typed.
    if matches!(
        bound,
        Some(KeyAction::SaveAttachment | KeyAction::OpenAttachment)
    ) && !(app.selecting && app.editor.is_empty())
    {
        bound = None;
    }
    if let Some(action) = bound {
        let page = message_pane(app).1.saturating_sub(2).max(1) as isize;
        match action {
            KeyAction::Send => submit(app, fx),
            KeyAction::Newline => app.editor.insert_char('\n'),
            KeyAction::Quit => app.quit = true,
            KeyAction::Help => app.overlay = Some(Overlay::Help { scroll: 0 }),
            KeyAction::NextConversation => switch(app, 1, fx),
            KeyAction::PrevConversation => switch(app, -1, fx),
            KeyAction::PageUp => scroll_by(app, -page, fx),
            KeyAction::PageDown => scroll_by(app, page, fx),
            KeyAction::ToggleMembers => toggle_members(app, fx),
            KeyAction::Complete => complete(app),
            KeyAction::SelectOlder => message::move_selection(app, -1, fx),
            KeyAction::SelectNewer => message::move_selection(app, 1, fx),
            KeyAction::SaveAttachment => attachment::save(app, fx),
            KeyAction::OpenAttachment => attachment::open(app, fx),
        }
        return;
    }
    if message::key(app, &key, fx) {
        return;
    }
    let before = app.editor.text().len();
    if edit(&mut app.editor, &key) {
        if app.editor.text().len() != before {
            app.selecting = false;
            typed(app, fx);
        }
        return;
    }
    match key.code {
        KeyCode::Up if !app.editor.recall_prev() => {
            app.editor.up();
        }
        KeyCode::Down if !app.editor.recall_next() => {
            app.editor.down();
        }
        KeyCode::Esc if app.compose.is_some() => {
            // Cancels the reply or the edit (an edit's text goes with it).
            if let Some(Compose::Edit { .. }) = app.compose.take() {
                app.editor.take();
            }
            app.dismiss_notice();
        }
        KeyCode::Esc => {
            app.dismiss_notice();
            app.selecting = false;
            if let Some(id) = app.selected {
                if let Some(tl) = app.timelines.get_mut(&id) {
                    if tl.view != View::Follow {
                        tl.view = View::Follow;
                        super::mark_read(app, id, fx);
                    }
                }
            }
        }
        _ => {}
    }
}

fn toggle_members(app: &mut App, fx: &mut Vec<Effect>) {
    app.show_members = !app.show_members;
    if app.show_members {
        if let Some(id) = app.selected {
            request_members(app, id, fx);
        }
    }
}

/// Tab after `/attach `: complete the path (the first argument).
/// True when the cursor was in it.
fn complete_path(app: &mut App) -> bool {
    const PREFIX: &str = "/attach ";
    let text = app.editor.text();
    let cursor = app.editor.cursor();
    let Some(args) = text.strip_prefix(PREFIX) else {
        return false;
    };
    let start = PREFIX.len() + (args.len() - args.trim_start().len());
    if cursor < start {
        return false;
    }
    let word = &text[start..cursor];
    let Some(c) = crate::attach::complete_path(word, &app.places, crate::attach::list_dir) else {
        // In the caption (Tab does nothing there), or nothing matches.
        let in_path = word.split_whitespace().count() <= 1;
        if in_path {
            app.info("No file or directory matches.");
        }
        return in_path;
    };
    let with = if c.done {
        format!("{} ", c.replacement)
    } else {
        c.replacement
    };
    app.editor.replace_range(start, cursor, &with);
    if !c.matches.is_empty() {
        const SHOWN: usize = 40;
        let mut list = c.matches[..c.matches.len().min(SHOWN)].join("  ");
        if c.matches.len() > SHOWN {
            list.push_str(&format!("  … ({} more)", c.matches.len() - SHOWN));
        }
        app.info(crate::wrap::sanitize(&list).replace('\n', " "));
    }
    true
}

/// Tab: complete the word before the cursor; again: the next candidate.
fn complete(app: &mut App) {
    if complete_path(app) {
        app.completing = None;
        return;
    }
    if let Some(c) = &mut app.completing {
        let cur = &c.completion.candidates[c.index];
        let start = c.completion.start;
        if app.editor.text().get(start..app.editor.cursor()) == Some(cur.as_str()) {
            c.index = (c.index + 1) % c.completion.candidates.len();
            let next = c.completion.candidates[c.index].clone();
            let end = app.editor.cursor();
            app.editor.replace_range(start, end, &next);
            return;
        }
    }
    let users = app.known_users();
    let Some(completion) = commands::complete(app.editor.text(), app.editor.cursor(), &users)
    else {
        app.completing = None;
        return;
    };
    let (start, end) = (completion.start, completion.end);
    if let [only] = completion.candidates.as_slice() {
        let with = format!("{only} ");
        app.editor.replace_range(start, end, &with);
        app.completing = None;
        return;
    }
    let prefix = commands::common_prefix(&completion.candidates).to_owned();
    app.info(completion.candidates.join("  "));
    if prefix.len() > end - start {
        app.editor.replace_range(start, end, &prefix);
        app.completing = None;
    } else {
        let first = completion.candidates[0].clone();
        app.editor.replace_range(start, end, &first);
        app.completing = Some(Completing {
            completion,
            index: 0,
        });
    }
}

/// Enter: send the message or run the command.
fn submit(app: &mut App, fx: &mut Vec<Effect>) {
    let text = app.editor.text().trim_end().to_owned();
    if text.trim().is_empty() {
        return;
    }
    match commands::parse(&text) {
        Err(e) => app.error(e),
        Ok(Input::Message(m)) => {
            let Some(id) = app.selected else {
                app.error("No conversation is open: /dm user or /group create name");
                return;
            };
            stop_typing(app, fx);
            app.dismiss_notice();
            let reply_to = match app.compose.take() {
                Some(Compose::Edit { conversation, id }) => {
                    app.editor.take();
                    fx.push(Effect::call(Call::Edit(EditParams {
                        conversation: conversation.into(),
                        id,
                        text: m,
                    })));
                    return;
                }
                Some(Compose::Reply {
                    conversation,
                    id: original,
                    ..
                }) if conversation == id => Some(original),
                _ => None,
            };
            app.editor.remember(&text);
            app.editor.take();
            app.selecting = false;
            if let Some(tl) = app.timelines.get_mut(&id) {
                tl.view = View::Follow;
            }
            fx.push(Effect::call(Call::Send(SendParams {
                conversation: id.into(),
                text: m,
                confirm_changed_keys: false,
                reply_to,
            })));
        }
        Ok(Input::Command(cmd)) => {
            app.dismiss_notice();
            // A command refused here keeps its text for fixing.
            if run(app, cmd, fx) {
                app.editor.remember(&text);
                app.editor.take();
            }
        }
    }
}

/// Runs a command; false when it was refused (the notice says why).
fn run(app: &mut App, cmd: Command, fx: &mut Vec<Effect>) -> bool {
    if let Some(done) = message::command(app, &cmd, fx) {
        return done;
    }
    let current = app.current().map(|c| (c.id, c.kind, app.title(c)));
    let group = || match current.clone() {
        Some((id, ConversationKind::Group, _)) => Ok(id),
        Some((_, ConversationKind::Dm, title)) => {
            Err(format!("{title} is a direct conversation, not a group"))
        }
        None => Err("no conversation is open".to_owned()),
    };
    let call = match cmd {
        Command::Dm(username) => {
            app.info(format!("Opening the conversation with {username}…"));
            Call::DmOpen(DmOpenParams { username })
        }
        Command::GroupCreate { name, members } => {
            app.info(format!("Creating #{name}…"));
            Call::GroupCreate(GroupCreateParams {
                name,
                members,
                ciphersuite: Ciphersuite::Hybrid,
            })
        }
        Command::Add(members) => match group() {
            Ok(id) => Call::GroupAdd(GroupMembersParams {
                conversation: id.into(),
                members,
            }),
            Err(e) => {
                app.error(e);
                return false;
            }
        },
        Command::Remove(members) => match group() {
            Ok(id) => Call::GroupRemove(GroupMembersParams {
                conversation: id.into(),
                members,
            }),
            Err(e) => {
                app.error(e);
                return false;
            }
        },
        Command::Leave => match group() {
            Ok(id) => Call::GroupLeave(ConversationParams {
                conversation: id.into(),
            }),
            Err(e) => {
                app.error(e);
                return false;
            }
        },
        Command::Rekey => match group() {
            Ok(id) => {
                app.info("Re-keying…");
                Call::GroupRekey(ConversationParams {
                    conversation: id.into(),
                })
            }
            Err(e) => {
                app.error(e);
                return false;
            }
        },
        Command::AckIntegrity => {
            app.info("Re-keying every group before sending again…");
            Call::IntegrityAcknowledge(NoParams {})
        }
        Command::Members => {
            toggle_members(app, fx);
            return true;
        }
        // The key the user holds in the open conversation: the one the
        // messages here are encrypted to.
        Command::Verify(username) => Call::Verify(VerifyParams {
            username,
            confirm: false,
            safety_number: None,
            conversation: app.current().map(|c| c.id.into()),
        }),
        Command::Invites => Call::Invites(NoParams {}),
        Command::Search(query) => {
            app.overlay = Some(Overlay::Search {
                query: query.clone(),
                results: Loadable::Loading,
                selected: 0,
            });
            Call::Search(SearchParams {
                query,
                conversation: None,
                limit: Limit::new(SEARCH_RESULTS).unwrap_or_default(),
                offset: 0,
            })
        }
        Command::Retry | Command::Discard => {
            let failed = current
                .as_ref()
                .and_then(|(id, _, _)| app.timelines.get(id))
                .and_then(|tl| tl.last_failed())
                .map(|m| m.id);
            let Some(id) = failed else {
                app.error("no failed (✗) message in this conversation");
                return false;
            };
            let params = MessageParams { id };
            if cmd == Command::Retry {
                Call::MessageRetry(params)
            } else {
                Call::MessageDiscard(params)
            }
        }
        Command::Help => {
            app.overlay = Some(Overlay::Help { scroll: 0 });
            return true;
        }
        Command::Passwd | Command::DeleteAccount => {
            let delete = cmd == Command::DeleteAccount;
            app.overlay = Some(Overlay::AccountChange(Box::new(AccountChange::new(delete))));
            return true;
        }
        Command::Quit => {
            app.quit = true;
            return true;
        }
        Command::Attach { path, caption } => {
            return attachment::command(app, &path, caption, fx);
        }
        // Answered by `message::command` above.
        Command::React(_)
        | Command::Mentions
        | Command::Receipts(_)
        | Command::Typing(_)
        | Command::Timer(_)
        | Command::Notify(_) => return true,
    };
    fx.push(Effect::call(call));
    true
}

fn overlay_key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>) {
    let Some(overlay) = app.overlay.take() else {
        return;
    };
    let close =
        matches!(key.code, KeyCode::Esc) || app.config.keys.action(&key) == Some(KeyAction::Help);
    app.overlay = match overlay {
        Overlay::AccountChange(mut form) => {
            if close {
                None
            } else {
                account_change_key(app, &mut form, &key, fx);
                Some(Overlay::AccountChange(form))
            }
        }
        Overlay::Help { scroll } => match key.code {
            _ if close => None,
            KeyCode::Enter | KeyCode::Char('q') => None,
            KeyCode::Up => Some(Overlay::Help {
                scroll: scroll.saturating_sub(1),
            }),
            KeyCode::PageUp => Some(Overlay::Help {
                scroll: scroll.saturating_sub(10),
            }),
            KeyCode::Down => Some(Overlay::Help { scroll: scroll + 1 }),
            KeyCode::PageDown => Some(Overlay::Help {
                scroll: scroll + 10,
            }),
            _ => Some(Overlay::Help { scroll }),
        },
        Overlay::Verify(v) => match key.code {
            KeyCode::Char('v') | KeyCode::Char('V') => {
                fx.push(Effect::call(Call::Verify(VerifyParams {
                    username: v.username.clone(),
                    confirm: true,
                    safety_number: Some(v.safety_number.clone()),
                    conversation: app.current().map(|c| c.id.into()),
                })));
                None
            }
            KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('n') => None,
            _ if close => None,
            _ => Some(Overlay::Verify(v)),
        },
        Overlay::ConfirmSend {
            conversation,
            text,
            changed,
            attach,
        } => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                fx.push(Effect::call(match attach {
                    Some(mut p) => {
                        p.confirm_changed_keys = true;
                        Call::Attach(*p)
                    }
                    None => Call::Send(SendParams {
                        conversation: conversation.into(),
                        text,
                        confirm_changed_keys: true,
                        reply_to: None,
                    }),
                }));
                None
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc if attach.is_some() => {
                app.info("Not attached.");
                None
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                if app.editor.is_empty() {
                    app.editor.set_text(text);
                }
                app.info("Not sent; the text is back in the input.");
                None
            }
            _ => Some(Overlay::ConfirmSend {
                conversation,
                text,
                changed,
                attach,
            }),
        },
        Overlay::Invites { list, selected } => match key.code {
            _ if close => None,
            KeyCode::Up => Some(Overlay::Invites {
                list,
                selected: selected.saturating_sub(1),
            }),
            KeyCode::Down => Some(Overlay::Invites {
                selected: (selected + 1).min(list.len().saturating_sub(1)),
                list,
            }),
            KeyCode::Char(c @ ('a' | 'A' | 'd' | 'D')) => {
                let Some(inv) = list.get(selected) else {
                    return;
                };
                let id = inv.id;
                fx.push(Effect::call(if c.eq_ignore_ascii_case(&'a') {
                    Call::Accept(InvitationParams { id })
                } else {
                    Call::Decline(DeclineParams { id, reason: None })
                }));
                let mut list = list;
                list.remove(selected);
                (!list.is_empty()).then(|| Overlay::Invites {
                    selected: selected.min(list.len() - 1),
                    list,
                })
            }
            _ => Some(Overlay::Invites { list, selected }),
        },
        Overlay::React {
            conversation,
            id,
            selected,
        } => message::picker_key(app, conversation, id, selected, &key, fx),
        Overlay::Delete {
            conversation,
            id,
            own,
        } => message::delete_key(app, conversation, id, own, &key, fx),
        Overlay::ConfirmAttach {
            conversation,
            file,
            text,
        } => attachment::confirm_key(app, conversation, file, text, &key, fx),
        Overlay::Edits { current, versions } => match key.code {
            _ if close => None,
            KeyCode::Enter | KeyCode::Char('q') => None,
            _ => Some(Overlay::Edits { current, versions }),
        },
        Overlay::Search {
            query,
            results,
            selected,
        } => {
            let n = match &results {
                Loadable::Ready(ms) => ms.len(),
                _ => 0,
            };
            match key.code {
                _ if close => None,
                KeyCode::Up => Some(Overlay::Search {
                    query,
                    results,
                    selected: selected.saturating_sub(1),
                }),
                KeyCode::Down => Some(Overlay::Search {
                    query,
                    results,
                    selected: (selected + 1).min(n.saturating_sub(1)),
                }),
                KeyCode::Enter => {
                    if let Loadable::Ready(ms) = &results {
                        if let Some(m) = ms.get(selected) {
                            let (conv, id) = (m.conversation, m.id);
                            jump_to(app, conv, id, fx);
                            return;
                        }
                    }
                    None
                }
                _ => Some(Overlay::Search {
                    query,
                    results,
                    selected,
                }),
            }
        }
    };
}

fn account_key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>) {
    let Screen::Account(form) = &mut app.screen else {
        return;
    };
    if form.busy {
        return;
    }
    match key.code {
        KeyCode::Tab | KeyCode::Down => form.focus = (form.focus + 1) % (form.field_count() + 1),
        KeyCode::BackTab | KeyCode::Up => {
            let n = form.field_count() + 1;
            form.focus = (form.focus + n - 1) % n;
        }
        KeyCode::Left | KeyCode::Right | KeyCode::Char(' ') if form.focus == 0 => {
            form.mode = match form.mode {
                AccountMode::Register => AccountMode::Login,
                AccountMode::Login => AccountMode::Register,
            };
        }
        KeyCode::Enter => {
            let [server, fingerprint, username, password, again] = &form.fields;
            let server = server.text().trim().to_owned();
            let username = username.text().trim().to_owned();
            let fp_text = fingerprint.text().trim().to_owned();
            let missing = [
                (server.is_empty(), 1, "the server"),
                (username.is_empty(), 3, "a username"),
                (password.is_empty(), 4, "a password"),
            ]
            .into_iter()
            .find(|(empty, _, _)| *empty);
            if let Some((_, field, what)) = missing {
                form.error = Some(format!("Enter {what}."));
                form.focus = field;
                return;
            }
            if form.mode == AccountMode::Register {
                // The server never sees the password: nobody can reset it.
                if let Some(problem) =
                    new_secret_problem("password", password.text(), MIN_PASSWORD_CHARS)
                {
                    form.error = Some(capitalized(&problem));
                    form.focus = 4;
                    return;
                }
                if again.text() != password.text() {
                    form.error = Some("The two passwords differ: type it again.".into());
                    form.fields[4].take();
                    form.focus = 5;
                    return;
                }
            }
            let server_fingerprint = if fp_text.is_empty() {
                None
            } else {
                match quicproquo_protocol::parse_fingerprint(&fp_text) {
                    Some(fp) => Some(fp),
                    None => {
                        form.error =
                            Some("The fingerprint is 64 hex digits (colons allowed).".into());
                        form.focus = 2;
                        return;
                    }
                }
            };
            let params = AccountParams {
                server,
                server_fingerprint,
                username,
                password: Secret::new(password.text()),
            };
            form.busy = true;
            form.error = None;
            fx.push(Effect::call(match form.mode {
                AccountMode::Register => Call::Register(params),
                AccountMode::Login => Call::Login(params),
            }));
        }
        _ if form.focus > 0 => {
            let field = &mut form.fields[form.focus - 1];
            // One-line fields: no line breaks.
            if key.code != KeyCode::Enter {
                edit(field, &key);
            }
        }
        _ => {}
    }
}

fn unlock_key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>) {
    let Screen::Unlock(form) = &mut app.screen else {
        return;
    };
    if form.busy {
        return;
    }
    match key.code {
        KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down if form.new_state => {
            form.on_again = !form.on_again;
        }
        KeyCode::Enter => {
            if form.passphrase.is_empty() {
                form.error = Some("Enter the passphrase.".into());
                form.on_again = false;
                return;
            }
            if form.new_state {
                if let Some(problem) =
                    new_secret_problem("passphrase", form.passphrase.text(), MIN_PASSPHRASE_CHARS)
                {
                    form.error = Some(capitalized(&problem));
                    form.on_again = false;
                    return;
                }
                if !form.on_again && form.again.is_empty() {
                    form.error = None;
                    form.on_again = true;
                    return;
                }
                if form.again.text() != form.passphrase.text() {
                    form.error = Some("The two passphrases differ: type it again.".into());
                    form.again.take();
                    form.on_again = true;
                    return;
                }
            }
            form.busy = true;
            form.error = None;
            form.again.take();
            let passphrase = Secret::new(form.passphrase.take());
            fx.push(Effect::call(Call::Unlock(UnlockParams { passphrase })));
        }
        _ if form.on_again => {
            edit(&mut form.again, &key);
        }
        _ => {
            edit(&mut form.passphrase, &key);
        }
    }
}

/// Keys in the `/passwd` and `/delete-account` box: Tab and the arrows move,
/// Enter moves on or, on the last field, checks and sends.
fn account_change_key(app: &App, form: &mut AccountChange, key: &KeyEvent, fx: &mut Vec<Effect>) {
    if form.busy {
        return;
    }
    let n = form.labels().len();
    match key.code {
        KeyCode::Tab | KeyCode::Down => form.focus = (form.focus + 1) % n,
        KeyCode::BackTab | KeyCode::Up => form.focus = (form.focus + n - 1) % n,
        KeyCode::Enter if form.focus + 1 < n => form.focus += 1,
        KeyCode::Enter => {
            let [first, second, third] = &form.fields;
            let call = if form.delete {
                let me = app
                    .status
                    .as_ref()
                    .and_then(|s| s.account.as_ref())
                    .map(|a| a.username.as_str());
                if me != Some(first.text().trim()) {
                    form.error = Some("That is not your username: nothing was deleted.".into());
                    form.focus = 0;
                    return;
                }
                if second.is_empty() {
                    form.error = Some("Enter the password.".into());
                    return;
                }
                Call::AccountDelete(AccountDeleteParams {
                    password: Secret::new(second.text()),
                })
            } else {
                if first.is_empty() {
                    form.error = Some("Enter the current password.".into());
                    form.focus = 0;
                    return;
                }
                if let Some(problem) =
                    new_secret_problem("new password", second.text(), MIN_PASSWORD_CHARS)
                {
                    form.error = Some(capitalized(&problem));
                    form.focus = 1;
                    return;
                }
                if third.text() != second.text() {
                    form.error = Some("The two new passwords differ: type it again.".into());
                    form.fields[2].take();
                    form.focus = 2;
                    return;
                }
                Call::AccountPassword(PasswordChangeParams {
                    current_password: Secret::new(first.text()),
                    new_password: Secret::new(second.text()),
                })
            };
            form.busy = true;
            form.error = None;
            fx.push(Effect::call(call));
        }
        _ => {
            edit(&mut form.fields[form.focus], key);
        }
    }
}

/// A sentence from a lower-case problem ("the password is…").
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
