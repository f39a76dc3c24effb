//! The admin socket's messages: one JSON object per line each way. A
//! connection may carry several requests, answered in order.

use serde::{Deserialize, Serialize};

/// The longest request line the server reads (a request is a few names).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// The most accounts one `users` request lists; the client pages for more.
pub const MAX_PAGE: u32 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AdminRequest {
    /// One page of accounts, after `after` (a username) in username order.
    Users {
        #[serde(default)]
        after: Option<String>,
        limit: u32,
    },
    Disable {
        user: String,
    },
    Enable {
        user: String,
    },
    /// Deletes the account for good (the CLI asked for confirmation).
    Delete {
        user: String,
    },
    RevokeSessions {
        user: String,
    },
    /// The `top` fullest mailboxes.
    Queues {
        top: u32,
    },
}

/// One account in a `users` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub username: String,
    /// Hex.
    pub identity_key: String,
    pub created_at_ms: u64,
    pub disabled: bool,
    pub sessions: u32,
    pub mail_count: u64,
    pub mail_bytes: u64,
    pub key_packages: u32,
}

/// One mailbox in a `queues` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRow {
    pub username: String,
    pub mail_count: u64,
    pub mail_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum AdminResponse {
    /// A page of accounts; `next` is where the next page starts, if any.
    Users {
        users: Vec<UserRow>,
        next: Option<String>,
    },
    /// The account changed as asked; `revoke-sessions` says how many
    /// sessions ended.
    Done {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sessions_ended: Option<u32>,
    },
    Queues {
        queues: Vec<QueueRow>,
    },
    Error {
        code: AdminError,
        message: String,
    },
}

/// Why a request was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminError {
    /// No such account (or not a valid username).
    UnknownUser,
    /// The request could not be read (not JSON, too long, unknown command).
    BadRequest,
    /// The peer is not the server's user or root.
    NotPermitted,
    /// Too many admin connections at once; try again.
    Busy,
    /// The store failed; the server's log has the details.
    Internal,
}

impl AdminResponse {
    pub fn error(code: AdminError, message: impl Into<String>) -> Self {
        AdminResponse::Error {
            code,
            message: message.into(),
        }
    }
}
