//! What the worker reports: connection changes, call results and the
//! daemon's notifications.

use quicproquo_protocol::ipc::methods::{ConversationParams, NoParams, ReadParams, StatusResult};
use quicproquo_protocol::ipc::values::{
    ConnectionState, ConversationId, DeleteScope, DeliveryState, IntegrityState, InvitationState,
    KeystoreState, MessageId,
};
use quicproquo_protocol::ipc::{Call, IpcErrorCode, Notification};

use super::{
    attachment, is_main, mark_read, maybe_load_older, request_members, select, set_new_marker,
};
use crate::action::{DaemonEvent, Effect};
use crate::app::{AccountForm, App, Compose, Daemon, Loadable, Overlay, Screen, UnlockForm};
use crate::timeline::{LoadState, View};
use crate::{commands, wrap};

pub(super) fn event(app: &mut App, ev: DaemonEvent, fx: &mut Vec<Effect>) {
    match ev {
        DaemonEvent::Disconnected { reason } => {
            if app.daemon != Daemon::Gone(reason.clone()) && is_main(app) {
                app.error(format!("qpqd: {reason}"));
            }
            app.daemon = Daemon::Gone(reason);
            // A new connection is told again what is shown.
            app.focused = None;
        }
        DaemonEvent::Connected { status } => {
            let was_gone = matches!(app.daemon, Daemon::Gone(_));
            app.daemon = Daemon::Connected;
            warn_integrity(app, &status);
            app.status = Some(status);
            pick_screen(app, fx);
            if is_main(app) {
                if was_gone {
                    app.news("Connected to qpqd again.");
                }
                fx.push(Effect::call(Call::Conversations(NoParams {})));
                // What failed while it was gone is asked again.
                if let Some(id) = app.selected {
                    if matches!(
                        app.timelines.get(&id).map(|t| &t.load),
                        Some(LoadState::Failed(_))
                    ) {
                        select(app, id, fx);
                    }
                }
            }
        }
        DaemonEvent::Status(status) => {
            warn_integrity(app, &status);
            app.status = Some(status);
            let was_main = is_main(app);
            pick_screen(app, fx);
            if is_main(app) && !was_main {
                fx.push(Effect::call(Call::Conversations(NoParams {})));
            }
        }
        DaemonEvent::Conversations(mut list) => {
            list.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
            // Members (and whose key changed) of each conversation seen for
            // the first time, so the list can mark changed keys at once.
            for c in &list {
                if let std::collections::hash_map::Entry::Vacant(e) = app.members.entry(c.id) {
                    e.insert(Loadable::Loading);
                    fx.push(Effect::call(Call::Members(ConversationParams {
                        conversation: c.id.into(),
                    })));
                }
            }
            app.conversations = Loadable::Ready(list);
            let still_there = app.selected.and_then(|id| app.conversation(id)).is_some();
            if !still_there {
                app.selected = None;
                if let Some(first) = app.conversation_list().first().map(|c| c.id) {
                    select(app, first, fx);
                }
            }
        }
        DaemonEvent::ConversationsFailed(f) => {
            if !matches!(app.conversations, Loadable::Ready(_)) {
                app.conversations = Loadable::Failed(f.message.clone());
            }
            app.error(format!("Conversations: {}", f.message));
        }
        DaemonEvent::Notification(n) => notification(app, n, fx),
        DaemonEvent::History {
            conversation,
            before,
            messages,
            complete,
            target,
        } => {
            let tl = app.timelines.entry(conversation).or_default();
            if before.is_none() {
                tl.set_latest(messages, complete);
            } else {
                tl.prepend(messages, complete);
            }
            if let Some(t) = target {
                match tl.index_of(&t) {
                    Some(index) => tl.view = View::At { index, skip: 0 },
                    None => app.error("That message is no longer in the history."),
                }
            }
            if before.is_none() && app.selected == Some(conversation) {
                set_new_marker(app, conversation);
                if target.is_none() {
                    mark_read(app, conversation, fx);
                }
            }
            maybe_load_older(app, fx);
        }
        DaemonEvent::HistoryFailed {
            conversation,
            failure,
        } => {
            let tl = app.timelines.entry(conversation).or_default();
            tl.loading_older = false;
            if tl.load != LoadState::Loaded {
                tl.load = LoadState::Failed(failure.message.clone());
            }
            app.error(format!("History: {}", failure.message));
        }
        DaemonEvent::Discarded(id) => {
            for tl in app.timelines.values_mut() {
                tl.remove(&id);
            }
            app.info("The failed message was deleted.");
        }
        DaemonEvent::Updated(m) => {
            if let Some(tl) = app.timelines.get_mut(&m.conversation) {
                tl.replace(m);
            }
        }
        DaemonEvent::Deleted {
            conversation,
            id,
            for_me,
        } => {
            let scope = if for_me {
                DeleteScope::Me
            } else {
                DeleteScope::Everyone
            };
            deleted(app, conversation, &id, scope);
        }
        DaemonEvent::EditFailed {
            conversation,
            id,
            text,
            failure,
        } => {
            if app.editor.is_empty() && app.compose.is_none() && app.selected == Some(conversation)
            {
                app.editor.set_text(text);
                app.compose = Some(Compose::Edit { conversation, id });
            }
            app.error(format!("Not edited: {}", failure.message));
        }
        DaemonEvent::Edits(list) => {
            if let Some(Overlay::Edits { versions, .. }) = &mut app.overlay {
                *versions = Loadable::Ready(list);
            }
        }
        DaemonEvent::Settings(s) => {
            let on = |b: bool| if b { "on" } else { "off" };
            let timer = if s.timer_seconds == 0 {
                "off".to_owned()
            } else {
                commands::duration_words(s.timer_seconds)
            };
            app.info(format!(
                "Read receipts {} · typing {} · disappearing {timer} · notify {}",
                on(s.read_receipts),
                on(s.typing),
                commands::notify_word(s.notify)
            ));
        }
        DaemonEvent::Attached(m) => attachment::attached(app, m),
        DaemonEvent::AttachFailed { params, failure } => {
            attachment::attach_failed(app, params, failure)
        }
        DaemonEvent::Downloading {
            conversation,
            id,
            attachment: a,
        } => attachment::downloading(app, conversation, id, a, fx),
        DaemonEvent::DownloadFailed {
            conversation,
            id,
            failure,
        } => attachment::download_failed(app, conversation, id, failure),
        DaemonEvent::Sent(m) => {
            let id = m.conversation;
            app.timelines.entry(id).or_default().push(m);
        }
        DaemonEvent::SendFailed {
            conversation,
            text,
            failure,
        } => {
            if failure.code == Some(IpcErrorCode::IdentityChanged) {
                app.overlay = Some(Overlay::ConfirmSend {
                    conversation,
                    text,
                    changed: changed_members(app, conversation),
                    attach: None,
                });
            } else {
                if app.editor.is_empty() {
                    app.editor.set_text(text);
                }
                app.error(format!("Not sent: {}", failure.message));
            }
        }
        DaemonEvent::Opened(c) => {
            let id = c.id;
            match &mut app.conversations {
                Loadable::Ready(list) => match list.iter_mut().find(|x| x.id == id) {
                    Some(x) => *x = c,
                    None => list.insert(0, c),
                },
                other => *other = Loadable::Ready(vec![c]),
            }
            app.dismiss_notice();
            select(app, id, fx);
        }
        DaemonEvent::Members {
            conversation,
            members,
        } => {
            for m in &members {
                if m.key_changed {
                    app.changed_keys.insert(m.username.clone());
                } else {
                    app.changed_keys.remove(&m.username);
                }
            }
            app.members.insert(conversation, Loadable::Ready(members));
        }
        DaemonEvent::MembersFailed {
            conversation,
            failure,
        } => {
            app.members
                .insert(conversation, Loadable::Failed(failure.message));
        }
        DaemonEvent::Invites(list) => {
            if list.is_empty() {
                app.info("No invitations waiting.");
            } else if app.overlay.is_none() || matches!(app.overlay, Some(Overlay::Invites { .. }))
            {
                app.overlay = Some(Overlay::Invites { list, selected: 0 });
            } else {
                app.info(format!("{} invitation(s) waiting: /invites", list.len()));
            }
        }
        DaemonEvent::Verified { result, confirmed } => {
            if confirmed {
                app.changed_keys.remove(&result.username);
                app.info(format!("{} is verified.", result.username));
                if app.show_members {
                    if let Some(id) = app.selected {
                        request_members(app, id, fx);
                    }
                }
            } else {
                if result.key_changed {
                    app.changed_keys.insert(result.username.clone());
                }
                app.overlay = Some(Overlay::Verify(result));
            }
        }
        DaemonEvent::SearchResults { query, messages } => {
            if let Some(Overlay::Search {
                query: q, results, ..
            }) = &mut app.overlay
            {
                if *q == query {
                    *results = Loadable::Ready(messages);
                }
            }
        }
        DaemonEvent::IntegrityAcknowledged { status, text } => {
            app.status = Some(status);
            app.info(text);
        }
        DaemonEvent::Done(text) => {
            app.info(text);
            fx.push(Effect::call(Call::Conversations(NoParams {})));
        }
        DaemonEvent::Failed(f) => {
            match &mut app.overlay {
                Some(Overlay::Search { results, .. }) if *results == Loadable::Loading => {
                    *results = Loadable::Failed(f.message.clone());
                }
                Some(Overlay::Edits { versions, .. }) if *versions == Loadable::Loading => {
                    *versions = Loadable::Failed(f.message.clone());
                }
                _ => {}
            }
            app.error(f.message);
        }
        DaemonEvent::AccountReady => {
            fx.push(Effect::call(Call::Status(NoParams {})));
        }
        DaemonEvent::PasswordChanged => {
            app.overlay = None;
            app.info("Password changed; your other sessions were ended.");
        }
        DaemonEvent::AccountDeleted => {
            app.overlay = None;
            app.quit = true;
        }
        DaemonEvent::AccountFailed(f) if matches!(app.overlay, Some(Overlay::AccountChange(_))) => {
            if let Some(Overlay::AccountChange(form)) = &mut app.overlay {
                form.busy = false;
                form.error = Some(f.message);
            }
        }
        DaemonEvent::AccountFailed(f) => match &mut app.screen {
            Screen::Account(form) => {
                form.busy = false;
                form.error = Some(f.message);
            }
            Screen::Unlock(form) => {
                form.busy = false;
                form.error = Some(f.message);
            }
            _ => app.error(f.message),
        },
    }
}

/// The members of a conversation whose identity key changed.
pub(super) fn changed_members(app: &App, conversation: ConversationId) -> Vec<String> {
    app.conversation(conversation)
        .map(|c| {
            c.members
                .iter()
                .filter(|m| app.changed_keys.contains(*m))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Which screen the daemon's status calls for.
fn pick_screen(app: &mut App, fx: &mut Vec<Effect>) {
    let Some(status) = &app.status else {
        return;
    };
    let next = if status.keystore == KeystoreState::Locked {
        match &app.screen {
            Screen::Unlock(_) => return,
            _ => Screen::Unlock(UnlockForm {
                new_state: status.new_state,
                ..UnlockForm::default()
            }),
        }
    } else if status.account.is_none() {
        match &app.screen {
            Screen::Account(_) => return,
            _ => Screen::Account(Box::new(AccountForm::new(&app.config.default_server))),
        }
    } else if status.connection == ConnectionState::LoggedOut {
        // The account exists but has no session (after `logout`): log in.
        match &app.screen {
            Screen::Account(_) => return,
            _ => {
                let server = status
                    .server
                    .clone()
                    .unwrap_or_else(|| app.config.default_server.clone());
                let user = status
                    .account
                    .as_ref()
                    .map(|a| a.username.clone())
                    .unwrap_or_default();
                Screen::Account(Box::new(AccountForm::login(&server, &user)))
            }
        }
    } else {
        Screen::Main
    };
    // A form that was waiting gets its answer from the new status.
    if matches!(app.screen, Screen::Unlock(_))
        && next != app.screen
        && !matches!(next, Screen::Unlock(_))
    {
        fx.push(Effect::call(Call::Status(NoParams {})));
    }
    app.screen = next;
}

fn notification(app: &mut App, n: Notification, fx: &mut Vec<Effect>) {
    match n {
        Notification::Message(nm) => {
            let m = nm.message;
            let id = m.conversation;
            let message_id = m.id;
            let known = app.conversation(id).is_some();
            let incoming = !m.outgoing;
            // A message ends its sender's typing indicator.
            if let Some(list) = app.typing.get_mut(&id) {
                list.retain(|(who, _)| *who != m.sender);
            }
            let tl = app.timelines.entry(id).or_default();
            if !tl.push(m) {
                return;
            }
            let following = tl.view == View::Follow;
            attachment::unstash(app, id, message_id);
            if !known {
                // A conversation someone else opened: learn about it.
                fx.push(Effect::call(Call::Conversations(NoParams {})));
            }
            if !incoming {
                return;
            }
            let here = app.selected == Some(id) && is_main(app);
            if here && following {
                fx.push(Effect::call(Call::Read(ReadParams {
                    conversation: id.into(),
                    up_to: None,
                })));
                return;
            }
            if here {
                if let Some(tl) = app.timelines.get_mut(&id) {
                    tl.unseen_below += 1;
                }
            }
            if let Loadable::Ready(list) = &mut app.conversations {
                if let Some(c) = list.iter_mut().find(|c| c.id == id) {
                    c.unread += 1;
                }
            }
            // Desktop notifications are qpqd's (it knows `focus`): the TUI
            // only rings, when configured.
            if app.config.bell {
                fx.push(Effect::Bell);
            }
        }
        Notification::Membership(change) => {
            let verb = format!("{:?}", change.event).to_lowercase();
            let who = change.members.join(", ");
            let title = app
                .conversation(change.conversation)
                .map_or_else(|| "a group".to_owned(), |c| app.title(c));
            app.news(format!("{title}: {who} {verb}"));
            fx.push(Effect::call(Call::Conversations(NoParams {})));
            if app.show_members && app.selected == Some(change.conversation) {
                request_members(app, change.conversation, fx);
            }
        }
        Notification::Delivery(d) => {
            if matches!(d.state, DeliveryState::Failed | DeliveryState::Expired) {
                let title = app
                    .conversation(d.conversation)
                    .map_or_else(|| "a conversation".to_owned(), |c| app.title(c));
                let why = d.reason.as_deref();
                app.error(if d.state == DeliveryState::Failed {
                    format!(
                        "A message to {title} could not be sent ({}): /retry or /discard there",
                        why.unwrap_or("refused")
                    )
                } else {
                    format!(
                        "A message to {title} expired unread: {}",
                        why.unwrap_or("the server deleted it")
                    )
                });
            }
            if let Some(tl) = app.timelines.get_mut(&d.conversation) {
                tl.delivered(&d.id, d.state, d.reason);
            }
        }
        Notification::Connection(c) => {
            if let Some(s) = &mut app.status {
                s.connection = c.state;
            }
            if !c.detail.is_empty() {
                app.news(c.detail);
            }
        }
        Notification::Identity(i) => {
            app.error(format!(
                "{}'s identity key changed! Compare safety numbers: /verify {}",
                i.username, i.username
            ));
            app.changed_keys.insert(i.username);
        }
        Notification::Invitation(i) => match i.state {
            InvitationState::Refused => app.error(format!(
                "Refused an invitation from {} to {}: {}",
                i.from, i.name, i.reason
            )),
            InvitationState::Pending => {
                app.news(format!("{} invites you to {}: /invites", i.from, i.name));
                // The prompt, with the members and their trust state.
                fx.push(Effect::call(Call::Invites(NoParams {})));
            }
            InvitationState::Accepted => {
                app.info(format!("Joined {} (invited by {}).", i.name, i.from));
                fx.push(Effect::call(Call::Conversations(NoParams {})));
            }
            InvitationState::Declined => {
                app.info(format!("Declined {}'s invitation to {}.", i.from, i.name));
            }
        },
        Notification::Reaction(r) => {
            if let Some(tl) = app.timelines.get_mut(&r.conversation) {
                tl.react(&r.id, &r.emoji, &r.by, r.removed);
            }
        }
        Notification::Edit(e) => {
            if let Some(tl) = app.timelines.get_mut(&e.conversation) {
                tl.edit(&e.id, &e.text);
            }
        }
        Notification::Delete(d) => deleted(app, d.conversation, &d.id, d.scope),
        Notification::Read(r) => {
            if let Some(tl) = app.timelines.get_mut(&r.conversation) {
                tl.read(&r.up_to, &r.by);
            }
        }
        Notification::Typing(t) => {
            if app.me() == Some(t.by.as_str()) {
                return;
            }
            let now = app.now;
            let list = app.typing.entry(t.conversation).or_default();
            list.retain(|(who, _)| *who != t.by);
            if t.on {
                list.push((t.by, now));
            }
        }
        Notification::Timer(t) => {
            let who = if app.me() == Some(t.by.as_str()) {
                "You".to_owned()
            } else {
                wrap::sanitize(&t.by).into_owned()
            };
            let what = if t.seconds == 0 {
                format!("{who} turned disappearing messages off")
            } else {
                format!(
                    "{who} set messages to disappear after {}",
                    commands::duration_words(t.seconds)
                )
            };
            let here = app.selected == Some(t.conversation);
            let text = match app.conversation(t.conversation) {
                Some(c) if !here => format!("{}: {what}", app.title(c)),
                _ => what,
            };
            app.news(text);
        }
        Notification::Conversation(c) => {
            let c = c.conversation;
            match &mut app.conversations {
                Loadable::Ready(list) => match list.iter_mut().find(|x| x.id == c.id) {
                    Some(x) => *x = c,
                    None => list.insert(0, c),
                },
                other => *other = Loadable::Ready(vec![c]),
            }
        }
        Notification::Transfer(t) => attachment::transfer(app, t, fx),
    }
}

/// A message left the history (`delete` notification or our own `delete`):
/// for everyone it leaves its marker; for me or expired it goes from view.
pub(super) fn deleted(
    app: &mut App,
    conversation: ConversationId,
    id: &MessageId,
    scope: DeleteScope,
) {
    let Some(tl) = app.timelines.get_mut(&conversation) else {
        return;
    };
    match scope {
        DeleteScope::Everyone => tl.delete_for_everyone(id),
        DeleteScope::Me | DeleteScope::Expired => tl.remove(id),
    }
    // A reply or an edit of it being written has nothing left to act on.
    if let Some(Compose::Reply { id: c, .. } | Compose::Edit { id: c, .. }) = &app.compose {
        if c == id {
            app.compose = None;
            app.info("That message was deleted.");
        }
    }
}

/// A new integrity finding in `status` is said once, in full, on the status
/// line; the banner above the conversation stays until it is acknowledged.
fn warn_integrity(app: &mut App, status: &StatusResult) {
    let before = app.status.as_ref().map(|s| s.integrity);
    if status.integrity != IntegrityState::Ok && before != Some(status.integrity) {
        app.error(status.integrity_detail.clone());
    }
}
