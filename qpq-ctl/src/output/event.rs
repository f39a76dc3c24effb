//! What members do to messages and conversations, as `recv --follow` prints
//! it: reactions, edits, deletes, read receipts, typing, timers, and a
//! conversation renamed; and how this profile's attachment transfers ended
//! (`transfer`: only the ends, which `recv` picks, not each step).
//!
//! JSON: the IPC notification's fields as they are (ipc.md,
//! "Notifications") plus `type` (the notification's name: `reaction`,
//! `edit`, …, the word that tells these lines from `message` ones) and
//! `conversation_name` (this profile's name for the conversation). People
//! get `TIME  [CONVERSATION]  WHO  WHAT`, e.g. `alice  reacted 👍 to 3f2a…`,
//! the peer's words sanitized.

use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{
    ConversationId, DeleteScope, TransferDirection, TransferState,
};
use serde::Serialize;

use super::{local_time, sanitize_line, word, Paint, Style};
use crate::duration;

/// One of the notifications `recv --follow` shows besides messages.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub event: &'a Notification,
    pub conversation_name: &'a str,
}

/// The notification's fields in their order, after what tells the lines
/// apart.
#[derive(Debug, Serialize)]
struct EventJson<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    conversation_name: &'a str,
    #[serde(flatten)]
    fields: &'a T,
}

/// Whether `n` is one of the events shown, and the conversation it is in.
pub fn conversation_of(n: &Notification) -> Option<ConversationId> {
    match n {
        Notification::Reaction(r) => Some(r.conversation),
        Notification::Edit(e) => Some(e.conversation),
        Notification::Delete(d) => Some(d.conversation),
        Notification::Read(r) => Some(r.conversation),
        Notification::Typing(t) => Some(t.conversation),
        Notification::Timer(t) => Some(t.conversation),
        Notification::Conversation(c) => Some(c.conversation.id),
        Notification::Transfer(t) => Some(t.conversation),
        _ => None,
    }
}

/// Whether a `transfer` notification is the end of its transfer (the
/// steps in between are for progress bars, not for a stream of events).
pub fn transfer_ended(state: TransferState) -> bool {
    !matches!(
        state,
        TransferState::Uploading | TransferState::Downloading | TransferState::Available
    )
}

/// Who caused it, when a member did; `None` for a conversation's change
/// (and for a message expiring: nobody did that, even though `by` names
/// its sender).
pub fn actor(n: &Notification) -> Option<&str> {
    match n {
        Notification::Reaction(r) => Some(&r.by),
        Notification::Edit(e) => Some(&e.by),
        Notification::Delete(d) if d.scope != DeleteScope::Expired => Some(&d.by),
        Notification::Read(r) => Some(&r.by),
        Notification::Typing(t) => Some(&t.by),
        Notification::Timer(t) => Some(&t.by),
        _ => None,
    }
}

impl<'a> EventView<'a> {
    /// One line of compact JSON (without its `\n`).
    pub fn json_line(&self) -> Result<String, serde_json::Error> {
        fn line<T: Serialize>(v: &EventView<'_>, fields: &T) -> Result<String, serde_json::Error> {
            serde_json::to_string(&EventJson {
                kind: v.event.method(),
                conversation_name: v.conversation_name,
                fields,
            })
        }
        match self.event {
            Notification::Reaction(p) => line(self, p),
            Notification::Edit(p) => line(self, p),
            Notification::Delete(p) => line(self, p),
            Notification::Read(p) => line(self, p),
            Notification::Typing(p) => line(self, p),
            Notification::Timer(p) => line(self, p),
            Notification::Conversation(p) => line(self, p),
            Notification::Transfer(p) => line(self, p),
            other => other.to_raw().map(|raw| raw.params.to_string()),
        }
    }

    /// One line (with its `\n`) for people.
    pub fn render(&self, with_conversation: bool, style: &Style, now_ms: u64) -> String {
        let (who, what) = describe(self.event);
        let at = match self.event {
            Notification::Edit(e) => e.timestamp_ms,
            _ => now_ms,
        };
        let mut line = style.paint(Paint::Dim, &local_time(at));
        line.push_str("  ");
        if with_conversation {
            line.push_str(
                &style.paint(Paint::Conversation, &sanitize_line(self.conversation_name)),
            );
            line.push_str("  ");
        }
        if !who.is_empty() {
            line.push_str(&style.paint(Paint::Name, &sanitize_line(who)));
            line.push_str("  ");
        }
        line.push_str(&what);
        line.push('\n');
        line
    }
}

/// (who, what they did), sanitized where a peer chose the words.
fn describe(n: &Notification) -> (&str, String) {
    match n {
        Notification::Reaction(r) if r.removed => (
            &r.by,
            format!("took back {} on {}", sanitize_line(&r.emoji), r.id),
        ),
        Notification::Reaction(r) => (
            &r.by,
            format!("reacted {} to {}", sanitize_line(&r.emoji), r.id),
        ),
        Notification::Edit(e) if e.text.is_empty() => (&e.by, format!("edited {}", e.id)),
        Notification::Edit(e) => (
            &e.by,
            format!("edited {}: {}", e.id, sanitize_line(&e.text)),
        ),
        Notification::Delete(d) => match d.scope {
            DeleteScope::Everyone => (&d.by, format!("deleted {} for everyone", d.id)),
            DeleteScope::Me => (&d.by, format!("deleted {} for this profile", d.id)),
            DeleteScope::Expired => (
                &d.by,
                format!("message {} disappeared: its timer ran out", d.id),
            ),
        },
        Notification::Read(r) => (&r.by, format!("read up to {}", r.up_to)),
        Notification::Typing(t) if t.on => (&t.by, "is typing…".to_owned()),
        Notification::Typing(t) => (&t.by, "stopped typing".to_owned()),
        Notification::Timer(t) if t.seconds == 0 => {
            (&t.by, "turned disappearing messages off".to_owned())
        }
        Notification::Timer(t) => (
            &t.by,
            format!(
                "set messages to disappear after {}",
                duration::long(t.seconds)
            ),
        ),
        Notification::Conversation(c) => {
            let c = &c.conversation;
            (
                "",
                format!(
                    "the conversation is now \"{}\" ({}, {} members)",
                    sanitize_line(&c.name),
                    word(&c.kind),
                    c.members.len()
                ),
            )
        }
        Notification::Transfer(t) => {
            let what = match t.direction {
                TransferDirection::Up => "upload",
                TransferDirection::Down => "download",
            };
            let why = t
                .error
                .as_deref()
                .map(|e| format!(": {}", sanitize_line(e)))
                .unwrap_or_default();
            let end = match t.state {
                TransferState::Uploaded => "finished; the message is on its way".to_owned(),
                TransferState::Downloaded => match &t.path {
                    Some(p) => format!("finished: {}", sanitize_line(p)),
                    None => "finished".to_owned(),
                },
                TransferState::Corrupt => format!("failed its integrity check{why}"),
                TransferState::Expired => "impossible: the server no longer has it".to_owned(),
                TransferState::Failed => format!("failed{why}"),
                other => word(&other),
            };
            ("", format!("{what} of {} {end}", t.id))
        }
        other => ("", other.method().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::ipc::notifications::{
        ConversationUpdate, DeleteUpdate, EditUpdate, ReactionUpdate, ReadUpdate, TimerUpdate,
        TransferUpdate, TypingUpdate,
    };
    use quicproquo_protocol::ipc::values::{
        Ciphersuite, Conversation, ConversationKind, MessageId, Seq,
    };

    use super::*;

    const PLAIN: Style = Style {
        json: false,
        color: false,
    };

    fn all() -> Vec<Notification> {
        let conversation = ConversationId([5; 16]);
        let id = MessageId([9; 16]);
        vec![
            Notification::Reaction(ReactionUpdate {
                seq: Seq(43),
                conversation,
                id,
                emoji: "👍".into(),
                by: "carol".into(),
                removed: false,
            }),
            Notification::Edit(EditUpdate {
                seq: Seq(44),
                conversation,
                id,
                by: "bob".into(),
                text: "sure, at 3:30".into(),
                timestamp_ms: 1_775_397_783_123,
            }),
            Notification::Delete(DeleteUpdate {
                seq: Seq(45),
                conversation,
                id,
                by: "bob".into(),
                scope: DeleteScope::Everyone,
            }),
            Notification::Read(ReadUpdate {
                seq: Seq(46),
                conversation,
                by: "carol".into(),
                up_to: id,
            }),
            Notification::Typing(TypingUpdate {
                seq: Seq(47),
                conversation,
                by: "carol".into(),
                on: true,
            }),
            Notification::Timer(TimerUpdate {
                seq: Seq(48),
                conversation,
                by: "bob".into(),
                seconds: 86_400,
            }),
            Notification::Conversation(ConversationUpdate {
                seq: Seq(49),
                conversation: Conversation {
                    id: conversation,
                    name: "team".into(),
                    kind: ConversationKind::Group,
                    members: vec!["alice".into(), "bob".into(), "carol".into()],
                    unread: 0,
                    ciphersuite: Ciphersuite::Hybrid,
                    last_activity_ms: 1_775_397_790_000,
                },
            }),
            Notification::Transfer(TransferUpdate {
                seq: Seq(50),
                conversation,
                id,
                direction: TransferDirection::Down,
                state: TransferState::Downloaded,
                done: 5,
                total: 5,
                path: Some("/home/bob/report.pdf".into()),
                error: None,
            }),
        ]
    }

    /// Each line is the notification's own fields (so ipc.md documents
    /// them) plus `type` and `conversation_name`, for every event type.
    #[test]
    fn json_lines_are_the_notification_plus_type_and_name() {
        let events = all();
        let mut types = Vec::new();
        for n in &events {
            let v = EventView {
                event: n,
                conversation_name: "team",
            };
            let line = v.json_line().unwrap();
            assert!(!line.contains('\n'), "{line}");
            let mut json: serde_json::Value = serde_json::from_str(&line).unwrap();
            let obj = json.as_object_mut().unwrap();
            assert_eq!(obj.remove("conversation_name").unwrap(), "team");
            types.push(obj.remove("type").unwrap().as_str().unwrap().to_owned());
            assert_eq!(json, n.to_raw().unwrap().params, "{line}");
            assert!(conversation_of(n).is_some());
        }
        assert_eq!(
            types,
            [
                "reaction",
                "edit",
                "delete",
                "read",
                "typing",
                "timer",
                "conversation",
                "transfer"
            ]
        );
        let first = EventView {
            event: &events[0],
            conversation_name: "team",
        };
        assert_eq!(
            first.json_line().unwrap(),
            format!(
                "{{\"type\":\"reaction\",\"conversation_name\":\"team\",\"seq\":43,\
                 \"conversation\":\"{}\",\"id\":\"{}\",\"emoji\":\"👍\",\"by\":\"carol\",\
                 \"removed\":false}}",
                "05".repeat(16),
                "09".repeat(16)
            )
        );
    }

    #[test]
    fn lines_for_people_say_who_did_what() {
        let id = "09".repeat(16);
        let expected = [
            format!("carol  reacted 👍 to {id}"),
            format!("bob  edited {id}: sure, at 3:30"),
            format!("bob  deleted {id} for everyone"),
            format!("carol  read up to {id}"),
            "carol  is typing…".to_owned(),
            "bob  set messages to disappear after 1 day".to_owned(),
            "the conversation is now \"team\" (group, 3 members)".to_owned(),
            format!("download of {id} finished: /home/bob/report.pdf"),
        ];
        for (n, want) in all().iter().zip(expected) {
            let v = EventView {
                event: n,
                conversation_name: "team",
            };
            let line = v.render(true, &PLAIN, 1_775_397_790_000);
            let (_time, rest) = line.split_once("  team  ").unwrap();
            assert_eq!(rest, format!("{want}\n"));
            assert!(!v.render(false, &PLAIN, 0).contains("team  "), "no column");
        }
    }

    #[test]
    fn peers_words_cannot_drive_the_terminal() {
        let n = Notification::Edit(EditUpdate {
            seq: Seq(1),
            conversation: ConversationId([1; 16]),
            id: MessageId([2; 16]),
            by: "mallory\u{1b}[2J".into(),
            text: "two\nlines\u{202E}".into(),
            timestamp_ms: 1,
        });
        let v = EventView {
            event: &n,
            conversation_name: "evil\u{1b}]0;x\u{7}",
        };
        let line = v.render(true, &PLAIN, 0);
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{202E}'),
            "{line:?}"
        );
        assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
        let removed = Notification::Reaction(ReactionUpdate {
            seq: Seq(2),
            conversation: ConversationId([1; 16]),
            id: MessageId([2; 16]),
            emoji: "🎉".into(),
            by: "bob".into(),
            removed: true,
        });
        let v = EventView {
            event: &removed,
            conversation_name: "c",
        };
        assert!(v.render(false, &PLAIN, 0).contains("bob  took back 🎉 on"));
        let corrupt = Notification::Transfer(TransferUpdate {
            seq: Seq(3),
            conversation: ConversationId([1; 16]),
            id: MessageId([2; 16]),
            direction: TransferDirection::Down,
            state: TransferState::Corrupt,
            done: 1,
            total: 2,
            path: None,
            error: Some("bad\u{1b}[2J\nchunk".into()),
        });
        let v = EventView {
            event: &corrupt,
            conversation_name: "c",
        };
        let line = v.render(false, &PLAIN, 0);
        assert!(
            line.contains("failed its integrity check: bad\u{FFFD}[2J"),
            "{line:?}"
        );
        assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
    }

    #[test]
    fn only_the_ends_of_transfers_are_events() {
        use TransferState::*;
        for s in [Uploaded, Downloaded, Failed, Corrupt, Expired] {
            assert!(transfer_ended(s), "{s:?}");
        }
        for s in [Uploading, Downloading, Available] {
            assert!(!transfer_ended(s), "{s:?}");
        }
    }
}
