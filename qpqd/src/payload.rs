//! What travels inside MLS: the application message payload (a versioned JSON
//! object; `text` is a chat message) and the conversation info a group's
//! creator puts in the group context, which tells every new member what the
//! conversation is (a DM or a group) the moment it joins. The group context
//! is public (the server keeps the GroupInfo), so a group's name is not in
//! it: the adder sends it encrypted ([`Payload::GroupName`]) after each add.
//!
//! # Actions and signals: the forward-compatible envelope (issue 17)
//!
//! Daemons before issue 17 drop a payload whose `t` they do not know, and
//! ignore fields of a `text` they do not know. So an action on a message
//! (reaction, edit, delete, timer) travels as a `text` whose `text` is a
//! fallback for people and whose `x` is an [`Envelope`] (`type`, `v`, the
//! action's fields): an older daemon shows the fallback as a message
//! ("reacted 👍 to “deploy done”"), a daemon of this release or later acts
//! on it, and one that does not know its `type` or `v` shows
//! "(unsupported message: &lt;fallback&gt;)" instead of losing it. Ephemeral
//! signals (read receipts, typing) are `t: signal` with an envelope and no
//! fallback: showing them would be noise, so every daemon that does not know
//! one drops it. Replies and timers on a message are plain fields of `text`
//! (`reply_to`, `ttl`), which older daemons ignore (the reply reads as an
//! ordinary message; the message does not disappear there).
//!
//! Every action names its target by ([`MessageRef`]) the message id *and*
//! its sender; the receiver checks both against the message it holds, and
//! only a message's sender may edit or delete it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::db::Id;

/// Longest text accepted from a front-end (shared with the front-ends).
pub use quicproquo_protocol::limits::MAX_MESSAGE_TEXT_BYTES as MAX_TEXT_BYTES;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Payload {
    /// A chat message, or (with `x`) an action whose `text` is its fallback.
    Text {
        id: String,
        ts: u64,
        text: String,
        /// The message this one answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageRef>,
        /// Every member removes it this many seconds after it arrives (the
        /// conversation's disappearing timer when it was sent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
        /// An action ([`Envelope::action`]): then this is not a message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x: Option<Envelope>,
    },
    /// In a DM: these messages of the peer's are stored here (delivered).
    Receipt { ids: Vec<String> },
    /// The sender was invited and declines: it asks to be removed next
    /// (a leave proposal follows), and says why.
    Declined { reason: String },
    /// The group's name, sent encrypted by whoever adds members, right after
    /// the add (the group context the server sees holds only the kind).
    GroupName { name: String },
    /// An ephemeral signal ([`Envelope::signal`]); dropped by any daemon
    /// that does not know its type.
    Signal { x: Envelope },
}

/// A message named by its id and its sender: what an action acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub id: String,
    pub sender: String,
}

impl MessageRef {
    pub fn new(id: Id, sender: &str) -> Self {
        MessageRef {
            id: id.to_string(),
            sender: sender.to_owned(),
        }
    }

    /// The id, parsed (checked by [`Payload::decode`]).
    pub fn message_id(&self) -> Option<Id> {
        Id::parse_hex(&self.id)
    }
}

/// The versioned, typed part of an action or signal: `type`, `v`, and the
/// type's own fields beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    pub v: u32,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// An action on a message or a conversation, carried in a `text`'s `x`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    Reaction {
        target: MessageRef,
        emoji: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remove: bool,
    },
    /// Only the target's sender may send one.
    Edit { target: MessageRef, text: String },
    /// Delete for everyone; only the target's sender may send one.
    Delete { target: MessageRef },
    /// Messages sent from now on disappear after `seconds` (0: off).
    Timer { seconds: u64 },
}

/// An ephemeral signal, carried in a `signal`'s `x`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Signal {
    /// The sender read the conversation up to this message.
    Read {
        up_to: MessageRef,
    },
    Typing {
        on: bool,
    },
}

/// The newest version of each envelope type this build reads; an envelope
/// of a later version is shown as unsupported (its fields may mean more).
const KNOWN_VERSIONS: &[(&str, u32)] = &[
    ("reaction", 1),
    ("edit", 1),
    ("delete", 1),
    ("timer", 1),
    ("read", 1),
    ("typing", 1),
    ("attachment", 1),
];

/// What an envelope holds for this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known<T> {
    Yes(T),
    /// A type or version this build does not know: its `type`, for the
    /// "(unsupported message: …)" line.
    Unsupported(String),
}

/// Longest emoji of a reaction, in bytes (a flag or a family with skin
/// tones fits).
pub const MAX_EMOJI_BYTES: usize = 32;

/// Longest disappearing timer: one year.
pub const MAX_TIMER_SECONDS: u64 = 365 * 24 * 3600;

impl Envelope {
    /// `value`'s fields under `kind` (taken from `value`'s own `type` tag
    /// when it has one).
    fn wrap<T: Serialize>(value: &T, kind: &str) -> Envelope {
        let Value::Object(mut fields) = serde_json::to_value(value).expect("our own types") else {
            unreachable!("envelopes carry objects")
        };
        let kind = match fields.remove("type") {
            Some(Value::String(tag)) => tag,
            _ => kind.to_owned(),
        };
        let v = version_of(&kind).expect("every type we send is known");
        Envelope { kind, v, fields }
    }

    pub fn of_action(action: &Action) -> Envelope {
        Envelope::wrap(action, "")
    }

    pub fn of_signal(signal: &Signal) -> Envelope {
        Envelope::wrap(signal, "")
    }

    pub fn is_attachment(&self) -> bool {
        self.kind == ATTACHMENT
    }

    /// The attachment, checked (the descriptor's rules and the caption's
    /// length); a later version is unsupported.
    pub fn attachment(&self) -> Result<Known<AttachmentX>, PayloadError> {
        let known = self.known::<AttachmentX>()?;
        if let Known::Yes(a) = &known {
            a.check()?;
        }
        Ok(known)
    }

    fn known<T: serde::de::DeserializeOwned>(&self) -> Result<Known<T>, PayloadError> {
        match version_of(&self.kind) {
            Some(v) if self.v <= v => {
                let mut object = self.fields.clone();
                object.insert("type".into(), Value::String(self.kind.clone()));
                serde_json::from_value(Value::Object(object))
                    .map(Known::Yes)
                    .map_err(|e| PayloadError::Format(format!("{}: {e}", self.kind)))
            }
            _ => Ok(Known::Unsupported(self.kind.clone())),
        }
    }

    /// The action, checked ([`Payload::decode`] checked it already).
    pub fn action(&self) -> Result<Known<Action>, PayloadError> {
        let known = self.known::<Action>();
        if let Ok(Known::Yes(a)) = &known {
            a.check()?;
        }
        // A signal's type in a `text` is not an action, nor is a file.
        match known {
            Err(PayloadError::Format(_)) if is_signal_type(&self.kind) || self.is_attachment() => {
                Ok(Known::Unsupported(self.kind.clone()))
            }
            other => other,
        }
    }

    /// The signal, checked.
    pub fn signal(&self) -> Result<Known<Signal>, PayloadError> {
        if !is_signal_type(&self.kind) {
            return Ok(Known::Unsupported(self.kind.clone()));
        }
        let known = self.known::<Signal>()?;
        if let Known::Yes(Signal::Read { up_to }) = &known {
            check_ref(up_to)?;
        }
        Ok(known)
    }
}

/// A file sent with a message (issue 18), carried in a `text`'s `x` whose
/// `text` is a fallback for daemons before this release ([`AttachmentX::fallback`]):
/// what a member needs to fetch and open it, and the caption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentX {
    /// The key is in it: only ever inside an MLS message.
    pub descriptor: quicproquo_protocol::blob::Descriptor,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caption: String,
}

/// The envelope type of an attachment.
pub const ATTACHMENT: &str = "attachment";

impl AttachmentX {
    /// The attachment as a payload with the message's `id`, at `ts`,
    /// answering `reply_to`, under the conversation's timer `ttl`.
    pub fn payload(
        &self,
        id: Id,
        ts: u64,
        reply_to: Option<MessageRef>,
        ttl: Option<u64>,
    ) -> Payload {
        Payload::Text {
            id: id.to_string(),
            ts,
            text: self.fallback(),
            reply_to,
            ttl,
            x: Some(Envelope::wrap(self, ATTACHMENT)),
        }
    }

    /// What daemons before issue 17 show as the message (those of issue
    /// 17 show "(unsupported message: …)" around it).
    pub fn fallback(&self) -> String {
        let d = &self.descriptor;
        let mut text = format!(
            "📎 {} ({}) — this version of qpq cannot receive files",
            d.file_name,
            quicproquo_protocol::file_names::human_size(d.size)
        );
        if !self.caption.is_empty() {
            text.push('\n');
            text.push_str(&self.caption);
        }
        text
    }

    fn check(&self) -> Result<(), PayloadError> {
        self.descriptor
            .validate()
            .map_err(|e| PayloadError::Format(e.to_string()))?;
        if self.caption.len() > MAX_TEXT_BYTES {
            return Err(PayloadError::Format("a caption is too long".into()));
        }
        Ok(())
    }
}

fn version_of(kind: &str) -> Option<u32> {
    KNOWN_VERSIONS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| *v)
}

fn is_signal_type(kind: &str) -> bool {
    matches!(kind, "read" | "typing")
}

fn check_ref(r: &MessageRef) -> Result<(), PayloadError> {
    r.message_id().ok_or(PayloadError::BadId)?;
    quicproquo_protocol::types::Username::parse(&r.sender)
        .map_err(|e| PayloadError::Format(format!("a message's sender: {e}")))?;
    Ok(())
}

/// The rule for a reaction's emoji: one short symbol, no whitespace or
/// terminal control (it is printed on other members' terminals).
pub fn check_emoji(emoji: &str) -> Result<(), &'static str> {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Err("a reaction is one emoji (at most 32 bytes)");
    }
    if emoji
        .chars()
        .any(|c| c.is_whitespace() || quicproquo_protocol::text::is_terminal_unsafe(c))
    {
        return Err("a reaction must not contain spaces or control characters");
    }
    Ok(())
}

impl Action {
    fn check(&self) -> Result<(), PayloadError> {
        let format = |e: &str| PayloadError::Format(e.into());
        match self {
            Action::Reaction { target, emoji, .. } => {
                check_ref(target)?;
                check_emoji(emoji).map_err(format)
            }
            Action::Edit { target, text } => {
                check_ref(target)?;
                if text.len() > MAX_TEXT_BYTES {
                    return Err(format("an edit's text is too long"));
                }
                Ok(())
            }
            Action::Delete { target } => check_ref(target),
            Action::Timer { seconds } if *seconds > MAX_TIMER_SECONDS => {
                Err(format("a disappearing timer is at most one year"))
            }
            Action::Timer { .. } => Ok(()),
        }
    }

    /// The action as a payload with its own `id`, at `ts`, whose `text` is
    /// `fallback` (what daemons before issue 17 show).
    pub fn payload(&self, id: Id, ts: u64, fallback: String) -> Payload {
        Payload::Text {
            id: id.to_string(),
            ts,
            text: fallback,
            reply_to: None,
            ttl: None,
            x: Some(Envelope::of_action(self)),
        }
    }
}

impl Signal {
    pub fn payload(&self) -> Payload {
        Payload::Signal {
            x: Envelope::of_signal(self),
        }
    }
}

/// Most message ids one receipt names.
pub const MAX_RECEIPT_IDS: usize = 100;

/// Longest reason a decline notice carries, in characters.
pub const MAX_DECLINE_REASON_CHARS: usize = 200;

/// `qpq1` then the JSON object: the version prefix lets a later format be
/// told apart.
fn encode_versioned<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = b"qpq1".to_vec();
    v.extend(serde_json::to_vec(value).expect("our own types serialize"));
    v
}

fn decode_versioned<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PayloadError> {
    let body = bytes
        .strip_prefix(b"qpq1")
        .ok_or_else(|| PayloadError::Format("missing version prefix".into()))?;
    serde_json::from_slice(body).map_err(|e| PayloadError::Format(e.to_string()))
}

/// Longest group name, in characters.
pub const MAX_GROUP_NAME_CHARS: usize = 64;

/// What a conversation is, as its creator set it in the group context
/// (`mls::group::CONVERSATION_INFO_EXTENSION`). Comes from another user:
/// [`ConversationInfo::decode`] bounds it. The server sees it (the group
/// context is in the public GroupInfo): qpqd writes no group name here; a
/// name found here (groups made before names left the context) is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConversationInfo {
    /// A DM; the peer is whoever else is in the group (the inviter).
    Dm,
    Group {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

impl ConversationInfo {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let info: ConversationInfo = decode_versioned(bytes)?;
        if let ConversationInfo::Group { name: Some(name) } = &info {
            check_group_name(name).map_err(|e| PayloadError::Format(e.into()))?;
        }
        Ok(info)
    }
}

/// The rule for group names, for names typed here and names received: not
/// empty, not starting with `@` (that names a DM), at most
/// [`MAX_GROUP_NAME_CHARS`] characters, no control characters (a name is
/// printed on other people's terminals).
pub fn check_group_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() || name.starts_with('@') {
        return Err("a group name must not be empty or start with `@`");
    }
    if name.chars().count() > MAX_GROUP_NAME_CHARS {
        return Err("a group name is at most 64 characters");
    }
    if name
        .chars()
        .any(quicproquo_protocol::text::is_terminal_unsafe)
    {
        return Err("a group name must not contain control or bidirectional-override characters");
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("not a quicproquo payload: {0}")]
    Format(String),
    #[error("message id is not 32 hex digits")]
    BadId,
}

impl Payload {
    pub fn text(id: Id, ts: u64, text: &str) -> Self {
        Payload::Text {
            id: id.to_string(),
            ts,
            text: text.to_owned(),
            reply_to: None,
            ttl: None,
            x: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let p: Payload = decode_versioned(bytes)?;
        let ids = match &p {
            Payload::Text {
                id, reply_to, x, ..
            } => {
                if let Some(r) = reply_to {
                    check_ref(r)?;
                }
                match x {
                    Some(x) if x.is_attachment() => {
                        x.attachment()?;
                    }
                    Some(x) => {
                        x.action()?;
                    }
                    None => {}
                }
                std::slice::from_ref(id)
            }
            Payload::Signal { x } => {
                x.signal()?;
                &[]
            }
            Payload::Receipt { ids } if ids.len() <= MAX_RECEIPT_IDS => ids.as_slice(),
            Payload::Receipt { .. } => {
                return Err(PayloadError::Format(
                    "a receipt names too many messages".into(),
                ))
            }
            Payload::Declined { reason } if reason.chars().count() > MAX_DECLINE_REASON_CHARS => {
                return Err(PayloadError::Format("a decline reason is too long".into()))
            }
            Payload::Declined { .. } => &[],
            Payload::GroupName { name } => {
                check_group_name(name).map_err(|e| PayloadError::Format(e.into()))?;
                &[]
            }
        };
        for id in ids {
            Id::parse_hex(id).ok_or(PayloadError::BadId)?;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = Payload::text(Id([1; 16]), 5, "hello\nwörld 🦀");
        assert_eq!(Payload::decode(&p.encode()).unwrap(), p);
        assert!(Payload::decode(b"{}").is_err());
        assert!(
            Payload::decode(b"qpq1{\"t\":\"text\",\"id\":\"zz\",\"ts\":1,\"text\":\"\"}").is_err()
        );
        assert!(Payload::decode(b"qpq1\xff").is_err());
        let r = Payload::Receipt {
            ids: vec![Id([2; 16]).to_string()],
        };
        assert_eq!(Payload::decode(&r.encode()).unwrap(), r);
        assert!(Payload::decode(b"qpq1{\"t\":\"receipt\",\"ids\":[\"zz\"]}").is_err());
        let many = Payload::Receipt {
            ids: vec![Id([2; 16]).to_string(); MAX_RECEIPT_IDS + 1],
        };
        assert!(Payload::decode(&many.encode()).is_err());
        let declined = Payload::Declined {
            reason: "not now".into(),
        };
        assert_eq!(Payload::decode(&declined.encode()).unwrap(), declined);
        let long = Payload::Declined {
            reason: "x".repeat(MAX_DECLINE_REASON_CHARS + 1),
        };
        assert!(Payload::decode(&long.encode()).is_err());
        let named = Payload::GroupName {
            name: "team ü".into(),
        };
        assert_eq!(Payload::decode(&named.encode()).unwrap(), named);
        for bad in ["", "@bob", "evil\u{1b}[2J"] {
            let p = Payload::GroupName { name: bad.into() };
            assert!(Payload::decode(&p.encode()).is_err(), "{bad:?}");
        }
    }

    fn target() -> MessageRef {
        MessageRef::new(Id([3; 16]), "alice")
    }

    #[test]
    fn actions_travel_as_texts_with_a_fallback() {
        for action in [
            Action::Reaction {
                target: target(),
                emoji: "👍🏽".into(),
                remove: false,
            },
            Action::Reaction {
                target: target(),
                emoji: "🇫🇷".into(),
                remove: true,
            },
            Action::Edit {
                target: target(),
                text: "fixed".into(),
            },
            Action::Delete { target: target() },
            Action::Timer { seconds: 3600 },
        ] {
            let p = action.payload(Id([4; 16]), 9, "fallback".into());
            let decoded = Payload::decode(&p.encode()).unwrap();
            assert_eq!(decoded, p);
            let Payload::Text {
                x: Some(x), text, ..
            } = decoded
            else {
                panic!("an action is a text")
            };
            assert_eq!(text, "fallback");
            assert_eq!(x.v, 1);
            assert_eq!(x.action().unwrap(), Known::Yes(action));
        }
        // What a daemon before issue 17 reads: a plain text (unknown
        // fields are ignored by its serde), the fallback as the message.
        #[derive(Deserialize)]
        #[serde(tag = "t", rename_all = "snake_case")]
        enum OldPayload {
            Text { text: String },
        }
        let p = Action::Delete { target: target() }.payload(Id([4; 16]), 9, "deleted".into());
        let bytes = p.encode();
        let OldPayload::Text { text } = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(text, "deleted");
    }

    #[test]
    fn unknown_types_and_versions_are_unsupported_not_dropped() {
        let newer = b"qpq1{\"t\":\"text\",\"id\":\"03030303030303030303030303030303\",\"ts\":1,\"text\":\"shared a poll\",\"x\":{\"type\":\"poll\",\"v\":1,\"q\":\"lunch?\"}}";
        let Payload::Text { x: Some(x), .. } = Payload::decode(newer).unwrap() else {
            panic!()
        };
        assert_eq!(x.action().unwrap(), Known::Unsupported("poll".into()));
        let v2 = b"qpq1{\"t\":\"text\",\"id\":\"03030303030303030303030303030303\",\"ts\":1,\"text\":\"r\",\"x\":{\"type\":\"reaction\",\"v\":2,\"anything\":1}}";
        let Payload::Text { x: Some(x), .. } = Payload::decode(v2).unwrap() else {
            panic!()
        };
        assert_eq!(x.action().unwrap(), Known::Unsupported("reaction".into()));
        // An unknown signal is dropped by the caller: still decodes.
        let sig = b"qpq1{\"t\":\"signal\",\"x\":{\"type\":\"presence\",\"v\":1}}";
        let Payload::Signal { x } = Payload::decode(sig).unwrap() else {
            panic!()
        };
        assert_eq!(x.signal().unwrap(), Known::Unsupported("presence".into()));
    }

    #[test]
    fn malformed_known_actions_are_refused() {
        let bad = [
            Action::Reaction {
                target: target(),
                emoji: String::new(),
                remove: false,
            },
            Action::Reaction {
                target: target(),
                emoji: "👍 👍".into(),
                remove: false,
            },
            Action::Reaction {
                target: target(),
                emoji: "x".repeat(MAX_EMOJI_BYTES + 1),
                remove: false,
            },
            Action::Reaction {
                target: target(),
                emoji: "\u{1b}[2J".into(),
                remove: false,
            },
            Action::Edit {
                target: MessageRef {
                    id: "zz".into(),
                    sender: "alice".into(),
                },
                text: "x".into(),
            },
            Action::Edit {
                target: target(),
                text: "x".repeat(MAX_TEXT_BYTES + 1),
            },
            Action::Delete {
                target: MessageRef {
                    id: Id([1; 16]).to_string(),
                    sender: String::new(),
                },
            },
            Action::Timer {
                seconds: MAX_TIMER_SECONDS + 1,
            },
        ];
        for action in bad {
            let p = action.payload(Id([4; 16]), 9, "f".into());
            assert!(Payload::decode(&p.encode()).is_err(), "{action:?}");
        }
        // A known action missing its fields.
        let missing = b"qpq1{\"t\":\"text\",\"id\":\"03030303030303030303030303030303\",\"ts\":1,\"text\":\"e\",\"x\":{\"type\":\"edit\",\"v\":1}}";
        assert!(Payload::decode(missing).is_err());
    }

    #[test]
    fn signals_and_replies_round_trip() {
        for signal in [
            Signal::Read { up_to: target() },
            Signal::Typing { on: true },
        ] {
            let p = signal.payload();
            let Payload::Signal { x } = Payload::decode(&p.encode()).unwrap() else {
                panic!()
            };
            assert_eq!(x.signal().unwrap(), Known::Yes(signal));
        }
        let reply = Payload::Text {
            id: Id([5; 16]).to_string(),
            ts: 1,
            text: "yes".into(),
            reply_to: Some(target()),
            ttl: Some(60),
            x: None,
        };
        assert_eq!(Payload::decode(&reply.encode()).unwrap(), reply);
        let bad_reply = Payload::Text {
            id: Id([5; 16]).to_string(),
            ts: 1,
            text: "yes".into(),
            reply_to: Some(MessageRef {
                id: "nope".into(),
                sender: "alice".into(),
            }),
            ttl: None,
            x: None,
        };
        assert!(Payload::decode(&bad_reply.encode()).is_err());
    }

    fn descriptor(name: &str) -> quicproquo_protocol::blob::Descriptor {
        quicproquo_protocol::blob::Descriptor {
            blob_id: quicproquo_protocol::blob::BlobId([9; 16]),
            key: quicproquo_protocol::blob::FileKey::from_bytes([7; 32]),
            size: 2_100_000,
            chunk_size: quicproquo_protocol::blob::DEFAULT_CHUNK_SIZE,
            sha256: [1; 32],
            file_name: name.into(),
            content_type: "application/pdf".into(),
        }
    }

    /// An attachment is a text whose fallback names the file for older
    /// daemons, with the descriptor and caption in its envelope; a
    /// descriptor a peer got wrong (a path in the name) or a later version
    /// is never taken as a file.
    #[test]
    fn attachments_travel_as_texts_with_a_fallback() {
        let a = AttachmentX {
            descriptor: descriptor("report.pdf"),
            caption: "the report".into(),
        };
        let p = a.payload(Id([4; 16]), 9, Some(target()), Some(60));
        let decoded = Payload::decode(&p.encode()).unwrap();
        assert_eq!(decoded, p);
        let Payload::Text {
            x: Some(x),
            text,
            reply_to,
            ttl,
            ..
        } = decoded
        else {
            panic!("an attachment is a text")
        };
        assert_eq!(
            text,
            "📎 report.pdf (2.1 MB) — this version of qpq cannot receive files\nthe report"
        );
        assert_eq!((reply_to, ttl), (Some(target()), Some(60)));
        assert!(x.is_attachment());
        assert_eq!(x.attachment().unwrap(), Known::Yes(a.clone()));
        // Not an action (daemons of issue 17 show it as unsupported).
        assert_eq!(x.action().unwrap(), Known::Unsupported("attachment".into()));

        for bad in ["../etc/passwd", "a\u{1b}[2J", ""] {
            let p = AttachmentX {
                descriptor: descriptor(bad),
                caption: String::new(),
            }
            .payload(Id([4; 16]), 9, None, None);
            assert!(Payload::decode(&p.encode()).is_err(), "{bad:?}");
        }
        let long = AttachmentX {
            caption: "x".repeat(MAX_TEXT_BYTES + 1),
            ..a.clone()
        };
        assert!(Payload::decode(&long.payload(Id([4; 16]), 9, None, None).encode()).is_err());
        let Payload::Text { x: Some(mut x), .. } = a.payload(Id([4; 16]), 9, None, None) else {
            panic!()
        };
        x.v = 2;
        assert_eq!(
            x.attachment().unwrap(),
            Known::Unsupported("attachment".into())
        );
    }

    #[test]
    fn conversation_info_round_trip_and_refusals() {
        for info in [
            ConversationInfo::Dm,
            ConversationInfo::Group { name: None },
            ConversationInfo::Group {
                name: Some("team ü 🦀".into()),
            },
        ] {
            assert_eq!(ConversationInfo::decode(&info.encode()).unwrap(), info);
        }
        // What another user may put in a group context and we refuse.
        for bad in [
            &b"{\"kind\":\"dm\"}"[..],
            b"qpq1{\"kind\":\"channel\"}",
            b"qpq1{\"kind\":\"group\",\"name\":\"\"}",
            b"qpq1{\"kind\":\"group\",\"name\":\"@bob\"}",
            b"qpq1{\"kind\":\"group\",\"name\":\"evil\\u001b[2J\"}",
            // A right-to-left override: the name would read differently
            // on other members' terminals than it was written.
            b"qpq1{\"kind\":\"group\",\"name\":\"evil\\u202etxt.exe\"}",
            b"qpq1\xff",
        ] {
            assert!(ConversationInfo::decode(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ConversationInfo::Group { name: None }.encode(),
            b"qpq1{\"kind\":\"group\"}",
            "nothing but the kind for the server to see"
        );
        let long = ConversationInfo::Group {
            name: Some("x".repeat(MAX_GROUP_NAME_CHARS + 1)),
        };
        assert!(ConversationInfo::decode(&long.encode()).is_err());
        let longest = ConversationInfo::Group {
            name: Some("é".repeat(MAX_GROUP_NAME_CHARS)),
        };
        assert!(ConversationInfo::decode(&longest.encode()).is_ok());
    }
}
