//! What travels inside MLS: the application message payload (a versioned JSON
//! object; `text` is a chat message) and the conversation info a group's
//! creator puts in the group context, which tells every new member what the
//! conversation is (a DM or a group) the moment it joins. The group context
//! is public (the server keeps the GroupInfo), so a group's name is not in
//! it: the adder sends it encrypted ([`Payload::GroupName`]) after each add.

use serde::{Deserialize, Serialize};

use crate::db::Id;

/// Longest text accepted from a front-end (shared with the front-ends).
pub use quicproquo_protocol::limits::MAX_MESSAGE_TEXT_BYTES as MAX_TEXT_BYTES;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Payload {
    Text {
        id: String,
        ts: u64,
        text: String,
    },
    /// In a DM: these messages of the peer's are stored here (delivered).
    Receipt {
        ids: Vec<String>,
    },
    /// The sender was invited and declines: it asks to be removed next
    /// (a leave proposal follows), and says why.
    Declined {
        reason: String,
    },
    /// The group's name, sent encrypted by whoever adds members, right after
    /// the add (the group context the server sees holds only the kind).
    GroupName {
        name: String,
    },
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
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let p: Payload = decode_versioned(bytes)?;
        let ids = match &p {
            Payload::Text { id, .. } => std::slice::from_ref(id),
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
