//! The notifications the daemon streams after `subscribe`, typed.
//!
//! Every one carries a strictly increasing, persisted `seq`. Like results,
//! they accept unknown fields (a newer daemon may add some); a notification
//! method this build does not know is skipped by the client, not an error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jsonrpc::RawNotification;
use super::values::{
    ConnectionState, ConversationId, DeliveryState, InvitationId, InvitationState, MembershipEvent,
    Message, MessageId, Seq,
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
            method: "typing".into(),
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
