//! The values IPC params, results and notifications carry ("Values" in
//! ipc.md). Ids travel as lowercase hex and are parsed at the boundary, so a
//! malformed one is a `-32602` naming its field, never a lookup miss.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

/// A value in a parameter that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn parse_hex16(s: &str, what: &str) -> Result<[u8; 16], InvalidValue> {
    let bytes = (s.len() == 32)
        .then(|| hex::decode(s).ok())
        .flatten()
        .ok_or_else(|| InvalidValue(format!("{what} must be 32 hex digits, got {s:?}")))?;
    let mut out = [0u8; 16];
    out.copy_from_slice(&bytes);
    Ok(out)
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                parse_hex16(s, $what).map(Self)
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// A conversation's id: 16 bytes, 32 hex digits.
    ConversationId,
    "a conversation id"
);
hex_id!(
    /// A message's id: 16 bytes, 32 hex digits; the same on every member's
    /// side and across restarts.
    MessageId,
    "a message id"
);
hex_id!(
    /// An invitation's id (ours, not the group's): 16 bytes, 32 hex digits.
    InvitationId,
    "an invitation id"
);

/// How a request names a conversation: its id (32 hex digits, always read as
/// an id), `@username` for the DM with that user, or else its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConversationRef {
    Id(ConversationId),
    Dm(String),
    Name(String),
}

impl ConversationRef {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() {
            return Err(InvalidValue("a conversation must not be empty".into()));
        }
        if let Some(user) = s.strip_prefix('@') {
            if user.is_empty() {
                return Err(InvalidValue("`@` must be followed by a username".into()));
            }
            return Ok(Self::Dm(user.to_owned()));
        }
        Ok(match ConversationId::parse(s) {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(s.to_owned()),
        })
    }
}

impl fmt::Display for ConversationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Dm(user) => write!(f, "@{user}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl FromStr for ConversationRef {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Self::parse(s)
    }
}

impl From<ConversationId> for ConversationRef {
    fn from(id: ConversationId) -> Self {
        Self::Id(id)
    }
}

impl Serialize for ConversationRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConversationRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(de::Error::custom)
    }
}

/// A notification's sequence number: strictly increasing, persisted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How many messages `history` or `search` returns: 1 to 500, 50 when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Limit(u16);

impl Limit {
    pub const DEFAULT: Limit = Limit(50);
    pub const MAX: u16 = 500;

    pub fn new(n: u16) -> Option<Self> {
        (1..=Self::MAX).contains(&n).then_some(Self(n))
    }

    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        u16::try_from(n)
            .ok()
            .and_then(Limit::new)
            .ok_or_else(|| de::Error::custom(format!("must be between 1 and 500, got {n}")))
    }
}

/// A password or passphrase: zeroized on drop, `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
        }
    };
}

word_enum!(
    /// `dm` or `group`.
    ConversationKind { Dm, Group }
);
word_enum!(
    /// Where a message is: `queued` in the outbox, `sent` to the server,
    /// `delivered` to the recipients, `failed` (refused for good: parked in
    /// the outbox until retried or discarded; `failure` says why),
    /// `expired` (sent, but a recipient did not fetch it before the server
    /// deleted it), or `received` (an incoming one).
    MessageState { Queued, Sent, Delivered, Received, Failed, Expired }
);
word_enum!(
    /// The daemon's link to the server (`status.connection`, and the
    /// `connection` notification).
    ConnectionState { Online, Offline, Reconnecting, LoggedOut }
);
word_enum!(
    /// Whether the daemon could store the mail it last fetched
    /// (`status.storage`): `failing` while the disk is full, an I/O error or a
    /// busy database stops it; the mail then stays on the server and is
    /// fetched again, with back-off, until it can be stored.
    StorageState { Ok, Failing }
);

// By hand: `word_enum!` derives one fixed list for every enum it makes.
#[allow(clippy::derivable_impls)]
impl Default for StorageState {
    fn default() -> Self {
        StorageState::Ok
    }
}

word_enum!(
    /// Where the state key comes from, or `locked` until `unlock`.
    KeystoreState { Keyring, Passphrase, Locked }
);
/// Whether the state opened as it was last written (`status.integrity`,
/// checked when the state opens): `ok`, or what was found — the database
/// failed its integrity check (`corrupt`), it holds fewer commits than were
/// recorded outside it (`rollback`), or that record was tampered with
/// (`counter_invalid`) or deleted (`counter_missing`). Anything but `ok`
/// holds sending and receiving until `integrity.acknowledge`. A daemon that
/// does not report it means `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityState {
    #[default]
    Ok,
    Corrupt,
    Rollback,
    CounterInvalid,
    CounterMissing,
}

word_enum!(
    /// `membership` notification events.
    MembershipEvent { Joined, Added, Removed, Left, Rekeyed }
);
word_enum!(
    /// `invitation` notification states: `pending` until the user accepts
    /// or declines; `refused` by the daemon itself (never joined).
    InvitationState { Pending, Accepted, Declined, Refused }
);
word_enum!(
    /// Which invitations are accepted without asking: from `everyone`
    /// (bots), from users whose key the user `verified`, from `contacts`
    /// (users we share a conversation with; the default), or `none`.
    AutoAccept { Everyone, Verified, Contacts, None }
);
word_enum!(
    /// `delivery` notification states: `queued` again after a retry,
    /// `failed` when parked (the notification's `reason` says why),
    /// `expired` when the server deleted a recipient's copy unfetched (the
    /// `reason` names the recipient).
    DeliveryState { Queued, Sent, Delivered, Failed, Expired }
);

/// The MLS ciphersuite: `hybrid` (X-Wing: X25519 + ML-KEM-768, the default)
/// or `classic` (X25519).
pub use crate::types::Ciphersuite;

/// An invitation waiting for the user: who invites us, to what, and with
/// whom (each member with their trust state, as `members` gives it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: InvitationId,
    pub from: String,
    pub name: String,
    pub kind: ConversationKind,
    pub members: Vec<Member>,
    pub received_ms: u64,
}

/// A conversation as `conversations`, `dm.open` and `group.*` return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub name: String,
    pub kind: ConversationKind,
    pub members: Vec<String>,
    pub unread: u64,
    pub ciphersuite: Ciphersuite,
    pub last_activity_ms: u64,
}

/// A message as `send`, `history`, `search` and the `message` notification
/// carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub sender: String,
    pub timestamp_ms: u64,
    pub text: String,
    pub outgoing: bool,
    pub state: MessageState,
    /// Why a `failed` message was not sent, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// What issue 17 added: replies, reactions, edits, deletes, mentions,
    /// timers, read receipts. Absent from older daemons (all empty).
    #[serde(flatten)]
    pub meta: MessageMeta,
}

/// The parts of a [`Message`] beyond its text, each absent on the wire when
/// empty (and read as empty from daemons before issue 17).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Quote>,
    /// Reactions, one entry per emoji, in the order they were first given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The sender changed the text since it was sent (`message.edits` has
    /// the earlier versions).
    #[serde(default, skip_serializing_if = "is_false")]
    pub edited: bool,
    /// The sender deleted it for everyone: `text` is empty.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// The text names us (`@<our username>`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub mentions_me: bool,
    /// When the daemon removes it (the conversation's disappearing timer
    /// when it was sent or received).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// For our own messages: the members who said they read it (only those
    /// who send read receipts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_by: Vec<String>,
    /// A file sent with the message (issue 18); `text` is then its caption
    /// (may be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Box<Attachment>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The message a reply answers, as the reply shows it. `missing` when the
/// original is not here (not arrived yet, deleted for me, expired): then
/// only `id` and `sender` are known and front-ends show "(unknown message)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub id: MessageId,
    pub sender: String,
    /// The start of the original's text (at most 80 characters); empty when
    /// `missing` or deleted.
    #[serde(default)]
    pub excerpt: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub missing: bool,
}

/// One emoji on a message and who gave it, in the order they gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub by: Vec<String>,
}

/// An earlier version of an edited message (`message.edits`), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageVersion {
    pub text: String,
    /// When this version was written (the original's send time, then each
    /// edit's).
    pub timestamp_ms: u64,
}

/// A file on a message (issue 18). The bytes are not in the message: the
/// sender's daemon uploaded them encrypted, and `download` fetches, checks
/// and writes them. Every string here but `path` comes from the sender:
/// front-ends print `name` and `content_type` through `protocol::text`'s
/// sanitizers like any other text from a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file's name as the sender gave it: one path component, no
    /// control characters (the daemon refuses others).
    pub name: String,
    /// Bytes of the file (not of its encrypted form).
    pub size: u64,
    /// A MIME type, e.g. `image/png` (`application/octet-stream` when the
    /// sender did not know).
    pub content_type: String,
    /// SHA-256 of the file, hex: checked before a download is kept.
    pub sha256: String,
    pub state: TransferState,
    /// Where the file is on this machine: for ours, the file we attached;
    /// for theirs, where the last `download` wrote it. Absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// With `failed` or `corrupt`: why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

word_enum!(
    /// Where an attachment's bytes are. Ours: `uploading` (encrypted on
    /// this machine, going to the server; the message is sent when it is
    /// there), `uploaded`. Theirs: `available` (on the server, not
    /// downloaded), `downloading`, `downloaded` (`path` holds it, checked).
    /// Either: `failed` (the last transfer stopped: `error` says why; a
    /// new `download`, or for ours `message.retry`, tries again),
    /// `corrupt` (the bytes failed their integrity check: nothing was
    /// kept), `expired` (the server deleted it: nobody can fetch it now).
    TransferState { Uploading, Uploaded, Available, Downloading, Downloaded, Failed, Corrupt, Expired }
);
word_enum!(
    /// Which way a `transfer` notification's bytes go.
    TransferDirection { Up, Down }
);

word_enum!(
    /// When the daemon notifies the desktop of a conversation's messages:
    /// `all`, only those that `mentions` us, or `none`.
    NotifyMode { All, Mentions, None }
);
word_enum!(
    /// Why a message left a history (`delete` notification): its sender
    /// deleted it for `everyone`, we deleted it for `me`, or its
    /// disappearing timer `expired`.
    DeleteScope { Everyone, Me, Expired }
);

/// A conversation's settings as they apply (the conversation's own value,
/// or the global default from `settings` where it has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSettings {
    pub conversation: ConversationId,
    /// Send read receipts here (off unless turned on).
    pub read_receipts: bool,
    /// Send typing indicators here (off unless turned on).
    pub typing: bool,
    /// Messages sent from now on disappear this many seconds after they
    /// are sent or received; 0: they stay. Shared by every member.
    pub timer_seconds: u64,
    pub notify: NotifyMode,
    /// Desktop notifications show the sender and text (else only that a
    /// message arrived).
    pub notify_content: bool,
}

/// The global defaults (`settings`): what a conversation without its own
/// value uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub read_receipts: bool,
    pub typing: bool,
    pub notify: NotifyMode,
    pub notify_content: bool,
}

/// A user's Ed25519 identity key as 64 hex digits.
pub mod identity_hex {
    use serde::{de, Deserialize, Deserializer, Serializer};

    use crate::types::IdentityKey;

    pub fn serialize<S: Serializer>(key: &IdentityKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&key.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IdentityKey, D::Error> {
        let s = String::deserialize(d)?;
        let invalid =
            || de::Error::custom(format!("an identity key must be 64 hex digits, got {s:?}"));
        let bytes = (s.len() == 64)
            .then(|| hex::decode(&s).ok())
            .flatten()
            .ok_or_else(invalid)?;
        IdentityKey::from_slice(&bytes).map_err(|_| invalid())
    }
}

/// An optional certificate fingerprint as 64 hex digits (colons allowed when
/// read).
pub mod fingerprint_hex {
    use serde::{de, Deserialize, Deserializer, Serializer};

    use crate::Fingerprint;

    pub fn serialize<S: Serializer>(fp: &Option<Fingerprint>, s: S) -> Result<S::Ok, S::Error> {
        match fp {
            Some(fp) => s.serialize_str(&hex::encode(fp)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Fingerprint>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => crate::parse_fingerprint(&s).map(Some).ok_or_else(|| {
                de::Error::custom(format!("a fingerprint must be 64 hex digits, got {s:?}"))
            }),
        }
    }
}

/// An account: a username and its identity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub username: String,
    #[serde(with = "identity_hex")]
    pub identity: crate::types::IdentityKey,
}

/// A member of a conversation, as `members` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub username: String,
    #[serde(with = "identity_hex")]
    pub identity: crate::types::IdentityKey,
    pub verified: bool,
    pub key_changed: bool,
    /// The server says this member's account was deleted (E051): they stay
    /// listed until a member removes them. Absent from older daemons.
    #[serde(default)]
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::IdentityKey;

    #[test]
    fn hex_ids() {
        let hex = "00112233445566778899aabbccddeeff";
        let id = ConversationId::parse(hex).unwrap();
        assert_eq!(id.to_string(), hex);
        assert_eq!(serde_json::to_value(id).unwrap(), json!(hex));
        assert_eq!(MessageId::parse(&hex.to_uppercase()).unwrap().0, id.0);
        for bad in [
            "",
            "00",
            &format!("{hex}00"),
            "zz112233445566778899aabbccddeeff",
        ] {
            let err = MessageId::parse(bad).unwrap_err();
            assert!(err.0.contains("32 hex digits"), "{err}");
        }
        assert!(serde_json::from_value::<MessageId>(json!(5)).is_err());
    }

    #[test]
    fn conversation_refs() {
        let hex = "00112233445566778899aabbccddeeff";
        assert_eq!(
            ConversationRef::parse(hex).unwrap(),
            ConversationRef::Id(ConversationId::parse(hex).unwrap())
        );
        assert_eq!(
            ConversationRef::parse("@bob").unwrap(),
            ConversationRef::Dm("bob".into())
        );
        assert_eq!(
            ConversationRef::parse("team").unwrap(),
            ConversationRef::Name("team".into())
        );
        assert!(ConversationRef::parse("").is_err());
        assert!(ConversationRef::parse("@").is_err());
        for s in [hex, "@bob", "team", "a b c"] {
            let r = ConversationRef::parse(s).unwrap();
            assert_eq!(r.to_string(), s);
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(serde_json::from_value::<ConversationRef>(json).unwrap(), r);
        }
    }

    #[test]
    fn limits() {
        assert_eq!(Limit::default().get(), 50);
        assert_eq!(
            serde_json::from_value::<Limit>(json!(500)).unwrap().get(),
            500
        );
        assert_eq!(serde_json::from_value::<Limit>(json!(1)).unwrap().get(), 1);
        for bad in [json!(0), json!(501), json!(70000), json!(-1), json!("5")] {
            assert!(
                serde_json::from_value::<Limit>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s: Secret = serde_json::from_value(json!("hunter2")).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_value(&s).unwrap(), json!("hunter2"));
    }

    #[test]
    fn word_enums_are_snake_case() {
        assert_eq!(
            serde_json::to_value(ConnectionState::LoggedOut).unwrap(),
            json!("logged_out")
        );
        assert_eq!(
            serde_json::to_value(Ciphersuite::default()).unwrap(),
            json!("hybrid")
        );
        for s in MessageState::ALL {
            let v = serde_json::to_value(s).unwrap();
            assert_eq!(serde_json::from_value::<MessageState>(v).unwrap(), *s);
        }
        assert!(serde_json::from_value::<DeliveryState>(json!("received")).is_err());
    }

    #[test]
    fn records_round_trip() {
        let member = Member {
            username: "bob".into(),
            identity: IdentityKey([7; 32]),
            verified: true,
            key_changed: false,
            deleted: true,
        };
        let v = serde_json::to_value(&member).unwrap();
        assert_eq!(v["identity"], json!("07".repeat(32)));
        assert_eq!(serde_json::from_value::<Member>(v).unwrap(), member);
        let mut old = serde_json::to_value(&member).unwrap();
        old.as_object_mut().unwrap().remove("deleted");
        assert!(
            !serde_json::from_value::<Member>(old).unwrap().deleted,
            "a daemon without `deleted` lists no one as deleted"
        );
        let mut bad = serde_json::to_value(&member).unwrap();
        bad["identity"] = json!("07");
        assert!(serde_json::from_value::<Member>(bad).is_err());
    }
}
