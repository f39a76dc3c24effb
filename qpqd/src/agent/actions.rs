//! Actions on messages (issue 17): replies, reactions, edits, deletes and
//! mentions — done from the IPC methods and received from members.
//!
//! A message is named by its id, which its sender chose and every member
//! stores (a script names it by that id and its own name for the
//! conversation). An action binds to (sender, id) (`payload::MessageRef`):
//! the receiver applies it only to the message it holds with that id *in
//! the same conversation* and *from that sender*, and an edit or a delete
//! only when the member who sent it (MLS-authenticated) is that sender. A
//! forged one — a member editing or deleting someone else's message, or
//! naming the wrong sender — changes nothing and is said in the
//! conversation (a notice: a message with no sender), so nobody takes it
//! for the real thing.
//!
//! An action naming a message not here yet (delivery order differs between
//! senders) waits in `pending_actions` and is applied when the message
//! arrives (`arrived`); each action is applied once (`seen_actions`), so
//! at-least-once delivery does not re-add a reaction taken back since. An
//! action whose `type` or version this build does not know is shown as a
//! message from its sender: "(unsupported message: &lt;fallback&gt;)".

use quicproquo_protocol::ipc::notifications::{
    DeleteUpdate, EditUpdate, Notification, ReactionUpdate,
};
use quicproquo_protocol::ipc::values::{
    ConversationRef, DeleteScope, Message as IpcMessage, MessageId, MessageVersion,
};
use quicproquo_protocol::text::MessageText;
use quicproquo_protocol::types::Username;

use super::history::{conv_id, find, find_active, stored_message};
use super::inbox::{announce, notice, Stored};
use super::invites::our_name;
use super::{emit, Agent, AgentError, AgentResult};
use crate::core::{Core, CoreError};
use crate::db::actions::{self as store, Pending};
use crate::db::conversations::{self, Conversation};
use crate::db::messages::{self, Deleted, Message, State};
use crate::db::{now_ms, outbox, Id};
use crate::payload::{check_emoji, Action, Envelope, Known, MessageRef, MAX_TEXT_BYTES};

/// An action `sender` sent in `conv` as a text with an envelope: `id` is
/// the action's own id, `fallback` the text older daemons show.
pub(super) fn received(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    id: Id,
    ts: u64,
    fallback: String,
    x: &Envelope,
) -> Result<Stored, CoreError> {
    let action = match x.action() {
        Ok(Known::Yes(Action::Timer { seconds })) => {
            return super::privacy::timer_received(c, conv, sender, id, seconds)
        }
        Ok(Known::Yes(action)) => action,
        Ok(Known::Unsupported(kind)) => {
            tracing::debug!(%kind, "an action this build does not know");
            return unsupported(c, conv, sender, id, ts, &fallback);
        }
        Err(e) => {
            tracing::info!(error = %e, "ignored a malformed action");
            return Ok(Stored::default());
        }
    };
    if !store::first_seen(c.db(), id, now_ms())? {
        return Ok(Stored::default());
    }
    let Some(target) = target_of(&action) else {
        return Ok(Stored::default());
    };
    let Some(target_id) = target.message_id() else {
        return Ok(Stored::default());
    };
    let sender = sender.as_str();
    // Only a message's sender edits or deletes it: known before the message
    // is, from the name the action gives.
    if owner_only(&action) && target.sender != sender {
        return notice(
            c,
            conv,
            format!(
                "{sender} tried to {} a message of {}'s; ignored",
                verb(&action),
                target.sender
            ),
        );
    }
    match messages::by_id(c.db(), target_id)? {
        Some(m) => apply_checked(c, conv, sender, &m, &action, ts),
        None => {
            let pending = Pending {
                id,
                conversation: conv.id,
                sender: sender.to_owned(),
                action: serde_json::to_string(&action)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
                timestamp_ms: ts,
            };
            store::keep_pending(c.db(), target_id, &pending, now_ms())?;
            Ok(Stored::default())
        }
    }
}

/// Message `m` was just stored in `conv`: the actions that waited for it
/// are applied, in the order they came.
pub(super) fn arrived(c: &mut Core, m: &Message) -> Result<Stored, CoreError> {
    let mut stored = Stored::default();
    for p in store::take_pending(c.db(), m.id)? {
        let Ok(action) = serde_json::from_str::<Action>(&p.action) else {
            continue;
        };
        let (Some(conv), Some(now)) = (
            conversations::by_id(c.db(), p.conversation)?,
            messages::by_id(c.db(), m.id)?,
        ) else {
            continue;
        };
        stored.add(apply_checked(
            c,
            &conv,
            &p.sender,
            &now,
            &action,
            p.timestamp_ms,
        )?);
    }
    Ok(stored)
}

/// The message an action names.
fn target_of(action: &Action) -> Option<&MessageRef> {
    match action {
        Action::Reaction { target, .. }
        | Action::Edit { target, .. }
        | Action::Delete { target } => Some(target),
        Action::Timer { .. } => None,
    }
}

fn owner_only(action: &Action) -> bool {
    matches!(action, Action::Edit { .. } | Action::Delete { .. })
}

fn verb(action: &Action) -> &'static str {
    match action {
        Action::Reaction { .. } => "react to",
        Action::Edit { .. } => "edit",
        Action::Delete { .. } => "delete",
        Action::Timer { .. } => "time",
    }
}

/// Applies `action` from `sender` (in `conv`) to `m`, the message with the
/// id it names, if `m` is what it names: in this conversation, from the
/// sender it names (and, for an edit or delete, from `sender` itself).
fn apply_checked(
    c: &mut Core,
    conv: &Conversation,
    sender: &str,
    m: &Message,
    action: &Action,
    ts: u64,
) -> Result<Stored, CoreError> {
    let Some(target) = target_of(action) else {
        return Ok(Stored::default());
    };
    let verb = verb(action);
    let whose = if m.sender.is_empty() {
        "a notice of this daemon's".to_owned()
    } else {
        format!("a message of {}'s", m.sender)
    };
    let refused = if m.conversation != conv.id {
        Some(format!(
            "{sender} tried to {verb} a message that is not in this conversation; ignored"
        ))
    } else if owner_only(action) && m.sender != sender {
        Some(format!("{sender} tried to {verb} {whose}; ignored"))
    } else if m.sender != target.sender {
        Some(format!(
            "{sender} tried to {verb} {whose} as if it were {}'s; ignored",
            target.sender
        ))
    } else {
        None
    };
    match refused {
        Some(text) => {
            tracing::warn!(%sender, verb, "ignored an action on a message it does not match");
            notice(c, conv, text)
        }
        None => apply(c, conv, sender, m, action, ts),
    }
}

/// Applies `action` by `by` to `m` (checked), and tells the front-ends if
/// anything changed (nothing does when it was done before, or the message
/// is deleted).
fn apply(
    c: &mut Core,
    conv: &Conversation,
    by: &str,
    m: &Message,
    action: &Action,
    ts: u64,
) -> Result<Stored, CoreError> {
    let conversation = conv_id(conv.id);
    let id = MessageId(m.id.0);
    let by = by.to_owned();
    let event = match action {
        Action::Reaction { emoji, remove, .. } => {
            if m.extra.deleted == Deleted::ForMe {
                return Ok(Stored::default());
            }
            let changed = if *remove {
                store::remove_reaction(c.db(), m.id, &by, emoji)?
            } else {
                store::add_reaction(c.db(), m.id, &by, emoji)?
            };
            if !changed {
                return Ok(Stored::default());
            }
            emit(c, |seq| {
                Notification::Reaction(ReactionUpdate {
                    seq,
                    conversation,
                    id,
                    emoji: emoji.clone(),
                    by,
                    removed: *remove,
                })
            })?
        }
        Action::Edit { text, .. } => {
            if m.extra.deleted != Deleted::No || text.trim().is_empty() || *text == m.text {
                return Ok(Stored::default());
            }
            let mentions_me = !m.outgoing && store::mentions(text, our_name(c)?.as_str());
            store::edit(c.db(), m, text, ts, mentions_me)?;
            emit(c, |seq| {
                Notification::Edit(EditUpdate {
                    seq,
                    conversation,
                    id,
                    by,
                    text: text.clone(),
                    timestamp_ms: ts,
                })
            })?
        }
        Action::Delete { .. } => {
            if m.extra.deleted != Deleted::No {
                return Ok(Stored::default());
            }
            store::delete(c.db(), m.id, Deleted::ForEveryone)?;
            emit(c, |seq| {
                Notification::Delete(DeleteUpdate {
                    seq,
                    conversation,
                    id,
                    by,
                    scope: DeleteScope::Everyone,
                })
            })?
        }
        Action::Timer { .. } => return Ok(Stored::default()),
    };
    Ok(Stored {
        events: vec![event],
        ..Stored::default()
    })
}

/// An action of a type or version this build does not know: shown as a
/// message from its sender, so that nothing a member sent vanishes.
pub(super) fn unsupported(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    id: Id,
    ts: u64,
    fallback: &str,
) -> Result<Stored, CoreError> {
    let m = Message {
        id,
        conversation: conv.id,
        sender: sender.to_string(),
        timestamp_ms: ts,
        text: format!("(unsupported message: {fallback})"),
        outgoing: false,
        state: State::Received,
        extra: Default::default(),
    };
    if !messages::insert(c.db(), &m)? {
        return Ok(Stored::default());
    }
    conversations::touch(c.db(), conv.id, now_ms())?;
    announce(c, &m)
}

/// Message `id` of `conv` as a front-end may name it (not one deleted for
/// me), or -32002.
pub(super) fn message_in(c: &Core, conv: &Conversation, id: Id) -> AgentResult<Message> {
    messages::by_id(c.db(), id)?
        .filter(|m| m.conversation == conv.id && m.extra.deleted != Deleted::ForMe)
        .ok_or_else(|| {
            AgentError::NotFound(format!(
                "no message {id} in the conversation `{}`",
                conv.name
            ))
        })
}

/// What a reply to message `id` of `conv` names: its id and sender. A
/// notice (no sender) is the daemon's own and cannot be answered.
pub(super) fn reply_target(c: &Core, conv: &Conversation, id: Id) -> AgentResult<MessageRef> {
    let m = message_in(c, conv, id)?;
    if m.sender.is_empty() {
        return Err(AgentError::InvalidInput(
            "that is a notice of the daemon's, not a message: it cannot be answered".into(),
        ));
    }
    Ok(MessageRef::new(m.id, &m.sender))
}

/// What the user asked to do to a message.
enum Local {
    React { emoji: String, remove: bool },
    Edit(MessageText),
    Delete,
    DeleteForMe,
}

/// The text daemons before issue 17 show for `action` on `m` (as a message
/// from us): short, and never longer than a message may be.
fn fallback(action: &Action, m: &Message) -> String {
    let words = store::excerpt(&m.text);
    let text = match action {
        Action::Reaction {
            emoji,
            remove: false,
            ..
        } => format!("reacted {emoji} to “{words}”"),
        Action::Reaction { emoji, .. } => format!("took back {emoji} from “{words}”"),
        Action::Edit { text, .. } => format!("(edited) {text}"),
        Action::Delete { .. } => "deleted a message".to_owned(),
        Action::Timer { .. } => String::new(),
    };
    truncate(text, MAX_TEXT_BYTES)
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Core operation: does `what` to message `id` of `r` here — checked,
/// applied, its notification logged — and queues the action for the other
/// members (a delete for me stays here), in one transaction. The message as
/// it is now, and the notifications to publish.
fn act(
    c: &mut Core,
    r: &ConversationRef,
    id: Id,
    what: Local,
) -> AgentResult<(IpcMessage, Vec<Notification>)> {
    c.atomically(|c| {
        let conv = match what {
            Local::DeleteForMe => find(c, r)?,
            _ => find_active(c, r)?,
        };
        let m = message_in(c, &conv, id)?;
        let me = our_name(c)?.to_string();
        let own = |verb: &str| -> AgentResult<()> {
            if m.outgoing && m.sender == me {
                return Ok(());
            }
            Err(AgentError::NotAllowed(format!(
                "only its sender can {verb} a message; this one is {}",
                if m.sender.is_empty() {
                    "a notice of the daemon's".to_owned()
                } else {
                    format!("{}'s", m.sender)
                }
            )))
        };
        let target = || MessageRef::new(m.id, &m.sender);
        let action = match what {
            Local::React { emoji, remove } => {
                if m.sender.is_empty() {
                    return Err(AgentError::InvalidInput(
                        "that is a notice of the daemon's, not a message: it takes no reactions"
                            .into(),
                    ));
                }
                if m.extra.deleted != Deleted::No {
                    return Err(AgentError::InvalidInput(
                        "the message was deleted: it takes no reactions".into(),
                    ));
                }
                Action::Reaction {
                    target: target(),
                    emoji,
                    remove,
                }
            }
            Local::Edit(text) => {
                own("edit")?;
                if m.extra.deleted != Deleted::No {
                    return Err(AgentError::InvalidInput(
                        "the message was deleted: it cannot be edited".into(),
                    ));
                }
                // New words, like a message: not to a member whose key
                // changed unseen (`edit` has no confirmation; `verify` first).
                super::outbox::refuse_changed_keys(c, &conv.group_id)?;
                Action::Edit {
                    target: target(),
                    text: text.into_string(),
                }
            }
            Local::Delete => {
                own("delete for everyone")?;
                Action::Delete { target: target() }
            }
            Local::DeleteForMe => {
                store::delete(c.db(), m.id, Deleted::ForMe)?;
                let ev = emit(c, |seq| {
                    Notification::Delete(DeleteUpdate {
                        seq,
                        conversation: conv_id(conv.id),
                        id: MessageId(m.id.0),
                        by: me.clone(),
                        scope: DeleteScope::Me,
                    })
                })?;
                let now = messages::by_id(c.db(), m.id)?.unwrap_or(m);
                return Ok((stored_message(c.db(), &now)?, vec![ev]));
            }
        };
        let ts = now_ms();
        let applied = apply(c, &conv, &me, &m, &action, ts)?;
        // Nothing changed (a reaction given before, the same text, a
        // message deleted already): nothing to tell anyone.
        if !applied.events.is_empty() {
            super::outbox::refuse_deleted_peer(c, &conv)?;
            let body = action.payload(Id::random(), ts, fallback(&action, &m));
            outbox::push(c.db(), conv.id, &body.encode(), None, now_ms())?;
        }
        let now = messages::by_id(c.db(), m.id)?.unwrap_or(m);
        Ok((stored_message(c.db(), &now)?, applied.events))
    })
}

impl Agent {
    /// Runs [`act`] and publishes what it did; the action is sent by the
    /// outbox.
    async fn act(
        &self,
        r: &ConversationRef,
        id: MessageId,
        what: Local,
    ) -> AgentResult<IpcMessage> {
        self.token()?;
        let r = r.clone();
        let (m, events) = self
            .core()?
            .run(move |c| act(c, &r, Id(id.0), what))
            .await?;
        if !events.is_empty() {
            self.publish(events);
            self.outbox_kick.notify_one();
        }
        Ok(m)
    }

    /// `react`: gives (or with `remove` takes back) `emoji` on message `id`.
    pub async fn react(
        &self,
        r: &ConversationRef,
        id: MessageId,
        emoji: &str,
        remove: bool,
    ) -> AgentResult<IpcMessage> {
        check_emoji(emoji).map_err(|e| AgentError::InvalidInput(e.into()))?;
        let emoji = emoji.to_owned();
        self.act(r, id, Local::React { emoji, remove }).await
    }

    /// `edit`: replaces the text of our message `id`.
    pub async fn edit(
        &self,
        r: &ConversationRef,
        id: MessageId,
        text: &str,
    ) -> AgentResult<IpcMessage> {
        let text = MessageText::new(text.to_owned())
            .map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        self.act(r, id, Local::Edit(text)).await
    }

    /// `delete`: our message `id` for everyone, or any message for us.
    pub async fn delete(
        &self,
        r: &ConversationRef,
        id: MessageId,
        for_me: bool,
    ) -> AgentResult<()> {
        let what = if for_me {
            Local::DeleteForMe
        } else {
            Local::Delete
        };
        if for_me {
            // Local only: no account or server needed.
            let r = r.clone();
            let (_, events) = self
                .core()?
                .run(move |c| act(c, &r, Id(id.0), what))
                .await?;
            self.publish(events);
            return Ok(());
        }
        self.act(r, id, what).await.map(|_| ())
    }

    /// `message.edits`: the earlier versions of message `id`, oldest first.
    pub async fn message_edits(
        &self,
        r: &ConversationRef,
        id: MessageId,
    ) -> AgentResult<Vec<MessageVersion>> {
        let r = r.clone();
        self.core()?
            .run(move |c| {
                let conv = find(c, &r)?;
                let m = message_in(c, &conv, Id(id.0))?;
                Ok(store::versions(c.db(), m.id)?
                    .into_iter()
                    .map(|(text, timestamp_ms)| MessageVersion { text, timestamp_ms })
                    .collect())
            })
            .await
    }

    /// `mentions`: the newest `limit` messages that mention us (in one
    /// conversation or all, before `before`), oldest first.
    pub async fn mentions(
        &self,
        r: Option<&ConversationRef>,
        before: Option<MessageId>,
        limit: u32,
    ) -> AgentResult<Vec<IpcMessage>> {
        let r = r.cloned();
        self.core()?
            .run(move |c| {
                let conv = match &r {
                    Some(r) => Some(find(c, r)?.id),
                    None => None,
                };
                let found = messages::mentioning(c.db(), conv, before.map(|b| Id(b.0)), limit)?;
                // The newest that fit in one answer.
                let mut out = super::history::fit(c.db(), found.iter().rev())?;
                out.reverse();
                Ok(out)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::ipc::notifications::Notification;

    use super::*;
    use crate::agent::inbox::batch_tests::{
        conversation, cores, fetched, group_of, store_from, team,
    };
    use crate::mls::GroupId;
    use crate::payload::Payload;

    /// A message from `c` in `group`: its id and the MLS message.
    fn say(c: &mut Core, group: GroupId, text: &str) -> (Id, Vec<u8>) {
        let id = Id::random();
        let body = Payload::text(id, 1_000, text).encode();
        (id, c.engine().unwrap().encrypt(group, &body).unwrap())
    }

    /// `action` from `c` in `group`, with its own id `id`.
    fn act_as(c: &mut Core, group: GroupId, id: Id, action: &Action) -> Vec<u8> {
        let body = action.payload(id, 2_000, "fallback".into()).encode();
        c.engine().unwrap().encrypt(group, &body).unwrap()
    }

    fn target(id: Id, sender: &str) -> MessageRef {
        MessageRef::new(id, sender)
    }

    /// The texts `c` shows in `group`'s history, with their senders.
    fn history(c: &Core, group: GroupId) -> Vec<(String, String)> {
        messages::history(c.db(), conversation(c, group).id, None, 50)
            .unwrap()
            .into_iter()
            .map(|m| (m.sender, m.text))
            .collect()
    }

    fn shown(c: &Core, id: Id) -> IpcMessage {
        let m = messages::by_id(c.db(), id).unwrap().unwrap();
        stored_message(c.db(), &m).unwrap()
    }

    /// Attack: a member edits or deletes another member's message, naming
    /// its real sender or claiming it as their own. The defence: only the
    /// (MLS-authenticated) sender of the message held with that id may;
    /// anything else changes nothing and is said in the conversation.
    #[test]
    fn a_forged_edit_or_delete_from_a_member_is_ignored_with_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob, mut carol] = cores(dir.path(), ["alice", "bob", "carol"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob, &mut carol]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        store_from(&mut carol, &alice, vec![fetched(1, &welcome)]).unwrap();
        let (id, hello) = say(&mut alice, group, "the deploy is done");
        store_from(&mut bob, &alice, vec![fetched(2, &hello)]).unwrap();

        let forged = [
            Action::Edit {
                target: target(id, "alice"),
                text: "the deploy failed".into(),
            },
            Action::Edit {
                target: target(id, "carol"),
                text: "mine now".into(),
            },
            Action::Delete {
                target: target(id, "alice"),
            },
            Action::Delete {
                target: target(id, "carol"),
            },
        ];
        let batch = forged
            .iter()
            .enumerate()
            .map(|(i, a)| fetched(3 + i as u64, &act_as(&mut carol, group, Id::random(), a)))
            .collect();
        let stored = store_from(&mut bob, &alice, batch).unwrap();

        let m = messages::by_id(bob.db(), id).unwrap().unwrap();
        assert_eq!(m.text, "the deploy is done");
        assert!(!m.extra.edited);
        assert_eq!(m.extra.deleted, Deleted::No);
        let h = history(&bob, group);
        assert_eq!(h.len(), 5, "{h:?}");
        for (sender, text) in &h[1..] {
            assert_eq!(sender, "", "a notice: {text}");
            assert!(
                text.starts_with("carol tried to") && text.contains("alice's; ignored"),
                "{text}"
            );
        }
        assert!(h[1].1.contains("edit"), "{h:?}");
        assert!(h[3].1.contains("delete"), "{h:?}");
        assert!(!stored
            .events
            .iter()
            .any(|e| matches!(e, Notification::Edit(_) | Notification::Delete(_))));
        // The real sender may.
        let real = act_as(
            &mut alice,
            group,
            Id::random(),
            &Action::Edit {
                target: target(id, "alice"),
                text: "the deploy is really done".into(),
            },
        );
        store_from(&mut bob, &alice, vec![fetched(9, &real)]).unwrap();
        assert_eq!(shown(&bob, id).text, "the deploy is really done");
        assert!(shown(&bob, id).meta.edited);
    }

    /// Actions that overtake their message wait for it and are applied when
    /// it arrives; an action delivered twice (an outbox retry re-encrypts
    /// the same body) is applied once, so a reaction taken back stays so.
    #[test]
    fn pending_actions_apply_on_arrival_and_each_applies_once() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob, mut carol] = cores(dir.path(), ["alice", "bob", "carol"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob, &mut carol]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        store_from(&mut carol, &alice, vec![fetched(1, &welcome)]).unwrap();
        let (id, hello) = say(&mut alice, group, "lunch at noon?");
        let thumbs = Action::Reaction {
            target: target(id, "alice"),
            emoji: "👍".into(),
            remove: false,
        };
        let party = Action::Reaction {
            target: target(id, "alice"),
            emoji: "🎉".into(),
            remove: false,
        };
        let party_id = Id::random();
        let edit = Action::Edit {
            target: target(id, "alice"),
            text: "lunch at one?".into(),
        };
        let batch = vec![
            fetched(2, &act_as(&mut carol, group, Id::random(), &thumbs)),
            fetched(3, &act_as(&mut carol, group, party_id, &party)),
            fetched(4, &act_as(&mut alice, group, Id::random(), &edit)),
        ];
        let stored = store_from(&mut bob, &alice, batch).unwrap();
        assert!(stored.events.is_empty(), "nothing to show yet");
        let conv = conversation(&bob, group).id;
        assert_eq!(store::pending_count(bob.db(), conv).unwrap(), 3);

        let stored = store_from(&mut bob, &alice, vec![fetched(5, &hello)]).unwrap();
        let kinds: Vec<&str> = stored.events.iter().map(|e| e.method()).collect();
        assert_eq!(kinds, ["message", "reaction", "reaction", "edit"]);
        let m = shown(&bob, id);
        assert_eq!(m.text, "lunch at one?");
        assert!(m.meta.edited);
        let emojis: Vec<(&str, &[String])> = m
            .meta
            .reactions
            .iter()
            .map(|r| (r.emoji.as_str(), r.by.as_slice()))
            .collect();
        assert_eq!(
            emojis,
            [
                ("👍", &["carol".to_string()][..]),
                ("🎉", &["carol".to_string()][..])
            ]
        );
        assert_eq!(store::pending_count(bob.db(), conv).unwrap(), 0);

        // Carol takes 🎉 back; the add arrives again afterwards.
        let back = Action::Reaction {
            target: target(id, "alice"),
            emoji: "🎉".into(),
            remove: true,
        };
        let batch = vec![
            fetched(6, &act_as(&mut carol, group, Id::random(), &back)),
            fetched(7, &act_as(&mut carol, group, party_id, &party)),
        ];
        store_from(&mut bob, &alice, batch).unwrap();
        let m = shown(&bob, id);
        assert_eq!(m.meta.reactions.len(), 1, "{:?}", m.meta.reactions);
        assert_eq!(m.meta.reactions[0].emoji, "👍");
    }

    /// Delete for everyone: the text leaves the history and the search
    /// index (the marker stays); the edits go with it.
    #[test]
    fn delete_for_everyone_removes_the_text_from_search() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob] = cores(dir.path(), ["alice", "bob"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        let (id, secret) = say(&mut alice, group, "the password is hunter2");
        let edit = act_as(
            &mut alice,
            group,
            Id::random(),
            &Action::Edit {
                target: target(id, "alice"),
                text: "the password is swordfish".into(),
            },
        );
        store_from(
            &mut bob,
            &alice,
            vec![fetched(2, &secret), fetched(3, &edit)],
        )
        .unwrap();
        assert_eq!(
            messages::search(bob.db(), "swordfish", None, 10, 0)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store::versions(bob.db(), id).unwrap().len(), 1);

        let delete = act_as(
            &mut alice,
            group,
            Id::random(),
            &Action::Delete {
                target: target(id, "alice"),
            },
        );
        let stored = store_from(&mut bob, &alice, vec![fetched(4, &delete)]).unwrap();
        assert!(matches!(
            stored.events.as_slice(),
            [Notification::Delete(d)] if d.scope == DeleteScope::Everyone && d.by == "alice"
        ));
        for word in ["password", "hunter2", "swordfish"] {
            assert!(
                messages::search(bob.db(), word, None, 10, 0)
                    .unwrap()
                    .is_empty(),
                "{word}"
            );
        }
        let m = shown(&bob, id);
        assert_eq!(m.text, "");
        assert!(m.meta.deleted);
        assert!(store::versions(bob.db(), id).unwrap().is_empty());
    }

    /// A reply quotes what it answers — only when the message with that id
    /// is here, in this conversation and from the sender the reply names;
    /// mentions of us are marked and listed.
    #[test]
    fn replies_quote_and_mentions_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob, mut carol] = cores(dir.path(), ["alice", "bob", "carol"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob, &mut carol]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        store_from(&mut carol, &alice, vec![fetched(1, &welcome)]).unwrap();
        let (id, first) = say(&mut alice, group, "who takes\nthe release?");
        let reply = |c: &mut Core, to: MessageRef, text: &str| -> (Id, Vec<u8>) {
            let rid = Id::random();
            let body = Payload::Text {
                id: rid.to_string(),
                ts: 3_000,
                text: text.into(),
                reply_to: Some(to),
                ttl: None,
                x: None,
            }
            .encode();
            (rid, c.engine().unwrap().encrypt(group, &body).unwrap())
        };
        let (good, good_msg) = reply(&mut carol, target(id, "alice"), "I do, @bob helps");
        let (lying, lying_msg) = reply(&mut carol, target(id, "carol"), "quoting myself");
        let (early, early_msg) = reply(&mut carol, target(Id::random(), "alice"), "what?");
        store_from(
            &mut bob,
            &alice,
            vec![
                fetched(2, &first),
                fetched(3, &good_msg),
                fetched(4, &lying_msg),
                fetched(5, &early_msg),
            ],
        )
        .unwrap();
        let q = shown(&bob, good).meta.reply_to.unwrap();
        assert_eq!(q.excerpt, "who takes the release?");
        assert_eq!(q.sender, "alice");
        assert!(!q.missing);
        let q = shown(&bob, lying).meta.reply_to.unwrap();
        assert!(q.missing && q.excerpt.is_empty(), "{q:?}");
        assert!(shown(&bob, early).meta.reply_to.unwrap().missing);

        assert!(shown(&bob, good).meta.mentions_me);
        assert!(!shown(&bob, lying).meta.mentions_me);
        let found = messages::mentioning(bob.db(), None, None, 10).unwrap();
        assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [good]);
    }

    /// An action of a type (or version) this build does not know is shown
    /// as a message from its sender, not dropped.
    #[test]
    fn an_unknown_action_is_shown_as_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob] = cores(dir.path(), ["alice", "bob"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        let poll = br#"qpq1{"t":"text","id":"03030303030303030303030303030303","ts":1,"text":"shared a poll: lunch?","x":{"type":"poll","v":1,"q":"lunch?"}}"#;
        let mls = alice.engine().unwrap().encrypt(group, poll).unwrap();
        store_from(&mut bob, &alice, vec![fetched(2, &mls)]).unwrap();
        assert_eq!(
            history(&bob, group),
            [(
                "alice".to_string(),
                "(unsupported message: shared a poll: lunch?)".to_string()
            )]
        );
    }

    /// What the user does here: only their own messages are edited or
    /// deleted for everyone (-32013); a delete for me hides any message
    /// (history, search, unread) and sends nothing.
    #[test]
    fn local_actions_check_the_sender_and_delete_for_me_hides() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob] = cores(dir.path(), ["alice", "bob"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        let (id, hello) = say(&mut alice, group, "a secret meeting");
        store_from(&mut bob, &alice, vec![fetched(2, &hello)]).unwrap();
        let conv = conversation(&bob, group);
        let r = ConversationRef::from(conv_id(conv.id));
        let queued = |c: &Core| -> i64 {
            c.db()
                .query_row("SELECT count(*) FROM outbox WHERE kind = 'app'", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };

        let text = MessageText::new("mine now".into()).unwrap();
        match act(&mut bob, &r, id, Local::Edit(text)) {
            Err(AgentError::NotAllowed(why)) => assert!(why.contains("alice's"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            act(&mut bob, &r, id, Local::Delete),
            Err(AgentError::NotAllowed(_))
        ));
        let (m, events) = act(
            &mut bob,
            &r,
            id,
            Local::React {
                emoji: "👀".into(),
                remove: false,
            },
        )
        .unwrap();
        assert_eq!(m.meta.reactions[0].by, ["bob"]);
        assert_eq!(events.len(), 1);
        assert_eq!(queued(&bob), 1, "the reaction is sent");

        assert_eq!(messages::unread(bob.db(), conv.id).unwrap(), 1);
        let (_, events) = act(&mut bob, &r, id, Local::DeleteForMe).unwrap();
        assert!(matches!(
            events.as_slice(),
            [Notification::Delete(d)] if d.scope == DeleteScope::Me
        ));
        assert_eq!(queued(&bob), 1, "a delete for me is not sent");
        assert!(history(&bob, group).is_empty());
        assert!(messages::search(bob.db(), "secret", None, 10, 0)
            .unwrap()
            .is_empty());
        assert_eq!(messages::unread(bob.db(), conv.id).unwrap(), 0);
        assert!(matches!(
            act(&mut bob, &r, id, Local::DeleteForMe),
            Err(AgentError::NotFound(_))
        ));
        // A reply names a message of its own conversation, never a notice.
        assert!(matches!(
            reply_target(&bob, &conv, id),
            Err(AgentError::NotFound(_))
        ));
        let (other, _) = say(&mut alice, group, "elsewhere");
        assert!(matches!(
            reply_target(&bob, &conv, other),
            Err(AgentError::NotFound(_))
        ));
        notice(&bob, &conv, "a notice".into()).unwrap();
        let notice_id = messages::history(bob.db(), conv.id, None, 1).unwrap()[0].id;
        assert!(matches!(
            reply_target(&bob, &conv, notice_id),
            Err(AgentError::InvalidInput(_))
        ));
    }
}
