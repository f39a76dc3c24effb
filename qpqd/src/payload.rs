//! What travels inside an MLS application message: a versioned JSON object.
//! `text` is a chat message; `meta` tells new members what the conversation
//! is (a DM or a named group) right after they join.

use serde::{Deserialize, Serialize};

use crate::db::Id;

/// Longest text accepted from a front-end (shared with the front-ends).
pub use quicproquo_protocol::limits::MAX_MESSAGE_TEXT_BYTES as MAX_TEXT_BYTES;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Payload {
    Text { id: String, ts: u64, text: String },
    Meta { kind: String, name: String },
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
        let mut v = b"qpq1".to_vec();
        v.extend(serde_json::to_vec(self).expect("a payload serializes"));
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let body = bytes
            .strip_prefix(b"qpq1")
            .ok_or_else(|| PayloadError::Format("missing version prefix".into()))?;
        let p: Payload =
            serde_json::from_slice(body).map_err(|e| PayloadError::Format(e.to_string()))?;
        if let Payload::Text { id, .. } = &p {
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
        let m = Payload::Meta {
            kind: "dm".into(),
            name: "@alice".into(),
        };
        assert_eq!(Payload::decode(&m.encode()).unwrap(), m);
        assert!(Payload::decode(b"{}").is_err());
        assert!(
            Payload::decode(b"qpq1{\"t\":\"text\",\"id\":\"zz\",\"ts\":1,\"text\":\"\"}").is_err()
        );
        assert!(Payload::decode(b"qpq1\xff").is_err());
    }
}
