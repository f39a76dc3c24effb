//! The notifications the daemon streams after `subscribe`, typed.
//!
//! Every one carries a strictly increasing, persisted `seq`. Like results,
//! they accept unknown fields (a newer daemon may add some); a notification
//! method this build does not know is skipped by the client, not an error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jsonrpc::RawNotification;
use super::values::{
    ConnectionState, Conversation, ConversationId, DeleteScope, DeliveryState, InvitationId,
    InvitationState, MembershipEvent, Message, MessageId, Seq, TransferDirection, TransferState,
};

macro_rules! notifications {
    ($($(#[$doc:meta])* $variant:ident = $name:literal ($params:ty);)*) => {
        /// A notification and its typed params.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Notification {
            $($(#[$doc])* $variant($params),)*
        }

        impl Notification {
            /// Every notification method, in the order of ipc.md.
            pub const METHODS: &'static [&'static str] = &[$($name,)*];

            pub fn method(&self) -> &'static str {
                match self {
                    $(Notification::$variant(_) => $name,)*
                }
            }

            pub fn seq(&self) -> Seq {
                match self {
                    $(Notification::$variant(p) => p.seq,)*
                }
            }

            /// Types a notification: `Ok(None)` for a method this build does
            /// not know, `Err` for known params that do not parse.
            pub fn from_raw(raw: &RawNotification) -> Result<Option<Notification>, serde_json::Error> {
                match raw.method.as_str() {
                    $($name => <$params>::deserialize(&raw.params).map(|p| Some(Notification::$variant(p))),)*
                    _ => Ok(None),
                }
            }

            pub fn to_raw(&self) -> Result<RawNotification, serde_json::Error> {
                let params: Value = match self {
                    $(Notification::$variant(p) => serde_json::to_value(p)?,)*
                };
                Ok(RawNotification { method: self.method().to_owned(), params })
            }
        }
    };
}

notifications! {
    /// A message arrived (or one of ours was stored).
    Message = "message" (NewMessage);
    Membership = "membership" (MembershipChange);
    Delivery = "delivery" (DeliveryUpdate);
    Connection = "connection" (ConnectionChange);
    /// A contact's identity key changed.
    Identity = "identity" (IdentityChange);
    /// Someone put us into a group (or opened a DM with us): what we were
    /// invited to, and what became of it.
    Invitation = "invitation" (InvitationUpdate);
    /// A reaction on a message was added or taken back.
    Reaction = "reaction" (ReactionUpdate);
    /// A message's sender changed its text.
    Edit = "edit" (EditUpdate);
    /// A message left the history: deleted by its sender for everyone, by
    /// us for this profile, or at the end of its disappearing timer.
    Delete = "delete" (DeleteUpdate);
    /// A member read the conversation up to a message (read receipts).
    Read = "read" (ReadUpdate);
    /// A member started or stopped typing.
    Typing = "typing" (TypingUpdate);
    /// A member set the conversation's disappearing timer.
    Timer = "timer" (TimerUpdate);
    /// A conversation's name or kind changed (e.g. a member renamed a
    /// group), or it became inactive.
    Conversation = "conversation" (ConversationUpdate);
    /// An attachment's upload or download moved on: at its start, at most
    /// every 250 ms in between (once 1 % more moved, or every 5 s while
    /// anything moves), and at its end.
    Transfer = "transfer" (TransferUpdate);
}

impl Notification {
    /// The notification as one line, `\n` included.
    pub fn to_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        Ok(self.to_raw()?.to_line())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub seq: Seq,
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    pub seq: Seq,
    pub conversation: ConversationId,
    pub event: MembershipEvent,
    /// The members the event is about.
    pub members: Vec<String>,
    /// Who caused it.
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryUpdate {
    pub seq: Seq,
    pub conversation: ConversationId,
    pub id: MessageId,
    pub state: DeliveryState,
    /// With `failed`: why, for people; with `sent`: the group members the
    /// server could not store it for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionChange {
    pub seq: Seq,
    pub state: ConnectionState,
    /// For people, e.g. the last connection error; may be empty.
    #[serde(default)]
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityChange {
    pub seq: Seq,
    pub username: String,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
}

/// An invitation into a group or DM: who sent it, to what, and its state.
/// A `refused` one was never joined; `reason` says why (e.g. the inviter's
/// key is not the one the server lists for that name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationUpdate {
    pub seq: Seq,
    /// For `accept`/`decline`; absent for a refused one (nothing kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<InvitationId>,
    /// Who invited us, as their credential names them.
    pub from: String,
    /// The conversation's name as the inviter set it (`@<from>` for a DM).
    pub name: String,
    pub state: InvitationState,
    /// For people; empty unless the invitation was refused or declined.
    #[serde(default)]
    pub reason: String,
}

/// `id` is the message reacted to; `by` who reacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionUpdate {
    pub seq: Seq,
    pub conversation: ConversationId,
    pub id: MessageId,
    pub emoji: String,
    pub by: String,
    /// The reaction was taken back.
    #[serde(default)]
    pub removed: bool,
}

/// `id` is the message edited, `text` its new text (empty in the
/// notification log, as message texts are: read it with `history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditUpdate {
    pub seq: Seq,
    pub conversation: ConversationId,
    pub id: MessageId,
    pub by: String,
    pub text: String,
    pub timestamp_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteUpdate {
    pub seq: Seq,
    pub conversation: ConversationId,
    pub id: MessageId,
    /// Who deleted it (for `expired`: its sender).
    pub by: String,
    pub scope: DeleteScope,
}

/// `by` read everything up to and including `up_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadUpdate {
    pub seq: Seq,
    pub conversation: ConversationId,
    pub by: String,
    pub up_to: MessageId,
}

/// `on` false: stopped (front-ends also stop showing it after 6 s without
/// a new `typing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingUpdate {
    pub seq: Seq,
    pub conversation: ConversationId,
    pub by: String,
    pub on: bool,
}

/// Messages sent from now on disappear after `seconds` (0: they stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerUpdate {
    pub seq: Seq,
    pub conversation: ConversationId,
    pub by: String,
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationUpdate {
    pub seq: Seq,
    pub conversation: Conversation,
}

/// Progress of an attachment's upload (ours) or download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferUpdate {
    pub seq: Seq,
    pub conversation: ConversationId,
    /// The message the attachment is on.
    pub id: MessageId,
    pub direction: TransferDirection,
    /// `uploading`/`downloading` while it moves, then where it ended.
    pub state: TransferState,
    /// Bytes of the file moved so far, of `total`.
    pub done: u64,
    pub total: u64,
    /// With `downloaded`: the file written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// With `failed`, `corrupt` or `expired`: why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::ipc::jsonrpc::ServerMessage;
    use crate::ipc::values::MessageState;

    pub(crate) fn samples() -> Vec<Notification> {
        let conversation = ConversationId([5; 16]);
        vec![
            Notification::Message(NewMessage {
                seq: Seq(1),
                message: Message {
                    id: MessageId([6; 16]),
                    conversation,
                    sender: "bob".into(),
                    timestamp_ms: 1,
                    text: "hi".into(),
                    outgoing: false,
                    state: MessageState::Received,
                    failure: None,
                    meta: Default::default(),
                },
            }),
            Notification::Membership(MembershipChange {
                seq: Seq(2),
                conversation,
                event: MembershipEvent::Added,
                members: vec!["carol".into()],
                by: "bob".into(),
            }),
            Notification::Delivery(DeliveryUpdate {
                seq: Seq(3),
                conversation,
                id: MessageId([7; 16]),
                state: DeliveryState::Delivered,
                reason: None,
            }),
            Notification::Connection(ConnectionChange {
                seq: Seq(4),
                state: ConnectionState::Reconnecting,
                detail: "timed out".into(),
            }),
            Notification::Identity(IdentityChange {
                seq: Seq(5),
                username: "bob".into(),
                old_fingerprint: "aa".into(),
                new_fingerprint: "bb".into(),
            }),
            Notification::Invitation(InvitationUpdate {
                seq: Seq(6),
                id: Some(InvitationId([9; 16])),
                from: "bob".into(),
                name: "@bob".into(),
                state: InvitationState::Refused,
                reason: "not the key the server lists for bob".into(),
            }),
            Notification::Reaction(ReactionUpdate {
                seq: Seq(7),
                conversation,
                id: MessageId([6; 16]),
                emoji: "\u{1F44D}".into(),
                by: "carol".into(),
                removed: false,
            }),
            Notification::Edit(EditUpdate {
                seq: Seq(8),
                conversation,
                id: MessageId([6; 16]),
                by: "bob".into(),
                text: "hi all".into(),
                timestamp_ms: 2,
            }),
            Notification::Delete(DeleteUpdate {
                seq: Seq(9),
                conversation,
                id: MessageId([6; 16]),
                by: "bob".into(),
                scope: DeleteScope::Everyone,
            }),
            Notification::Read(ReadUpdate {
                seq: Seq(10),
                conversation,
                by: "carol".into(),
                up_to: MessageId([6; 16]),
            }),
            Notification::Typing(TypingUpdate {
                seq: Seq(11),
                conversation,
                by: "carol".into(),
                on: true,
            }),
            Notification::Timer(TimerUpdate {
                seq: Seq(12),
                conversation,
                by: "bob".into(),
                seconds: 86_400,
            }),
            Notification::Conversation(ConversationUpdate {
                seq: Seq(13),
                conversation: crate::ipc::values::Conversation {
                    id: conversation,
                    name: "team ü".into(),
                    kind: crate::ipc::values::ConversationKind::Group,
                    members: vec!["alice".into(), "bob".into()],
                    unread: 0,
                    ciphersuite: crate::ipc::values::Ciphersuite::Hybrid,
                    last_activity_ms: 3,
                },
            }),
            Notification::Transfer(TransferUpdate {
                seq: Seq(14),
                conversation,
                id: MessageId([6; 16]),
                direction: TransferDirection::Down,
                state: TransferState::Downloaded,
                done: 5,
                total: 5,
                path: Some("/home/a/report.pdf".into()),
                error: None,
            }),
        ]
    }

    #[test]
    fn every_notification_round_trips_through_a_line() {
        let all = samples();
        let names: Vec<&str> = all.iter().map(Notification::method).collect();
        assert_eq!(
            names,
            Notification::METHODS,
            "samples misses a notification"
        );
        for n in all {
            let line = n.to_line().unwrap();
            let ServerMessage::Notification(raw) =
                ServerMessage::parse(&line[..line.len() - 1]).unwrap()
            else {
                panic!("not a notification")
            };
            assert_eq!(Notification::from_raw(&raw).unwrap(), Some(n));
        }
    }

    #[test]
    fn unknown_methods_are_skipped_and_bad_params_refused() {
        let raw = RawNotification {
            method: "poll".into(),
            params: json!({"seq": 1}),
        };
        assert_eq!(Notification::from_raw(&raw).unwrap(), None);
        let raw = RawNotification {
            method: "delivery".into(),
            params: json!({"seq": 1, "state": "sent"}),
        };
        assert!(Notification::from_raw(&raw).is_err());
        let raw = RawNotification {
            method: "connection".into(),
            params: json!({"seq": 2, "state": "online", "since_ms": 5}),
        };
        assert_eq!(
            Notification::from_raw(&raw).unwrap().map(|n| n.seq()),
            Some(Seq(2))
        );
    }

    /// The Notifications table of ipc.md lists exactly [`Notification::METHODS`].
    #[test]
    fn book_lists_every_notification() {
        let book = include_str!("../../../docs/src/reference/ipc.md");
        let in_book = crate::ipc::methods::tests::table_names(book, "## Notifications");
        let ours: std::collections::BTreeSet<String> = Notification::METHODS
            .iter()
            .map(|m| (*m).to_owned())
            .collect();
        assert_eq!(
            in_book, ours,
            "ipc.md's notification table and Notification disagree"
        );
    }
}
