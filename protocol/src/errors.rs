//! The stable error catalogue. A code never changes meaning once released; a
//! retired code is never reused. `docs/src/reference/errors.md` lists the same
//! table for people (a test keeps the two in step).

use std::fmt;

macro_rules! catalogue {
    ($($variant:ident = $num:literal, $msg:literal;)*) => {
        /// Every error a client can receive from qpq-server.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode {
            $($variant = $num,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn from_u16(n: u16) -> Option<Self> {
                match n {
                    $($num => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }

            /// The catalogue's one-line description of the code.
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $msg,)*
                }
            }
        }
    };
}

catalogue! {
    Internal = 1, "internal server error; the request may be retried";
    Malformed = 2, "the request could not be decoded";
    TooLarge = 3, "the request is larger than the server accepts";
    RateLimited = 4, "too many requests; retry after the given delay";
    // Reserved, never sent: a shutdown stops accepting connections and lets
    // every accepted request finish (a held fetchWait is answered empty),
    // so no request is refused for it. No test can reach it from outside.
    ShuttingDown = 5, "the server is shutting down; retry on another connection";
    Unauthenticated = 10, "missing, invalid or expired session token; log in again";
    LoginFailed = 11, "login failed: wrong username or password";
    UsernameTaken = 12, "that username is already registered";
    InvalidUsername = 13, "invalid username";
    InvalidOpaqueMessage = 14, "the OPAQUE message is invalid";
    UnknownLogin = 15, "unknown or expired login attempt; start the login again";
    IdentityKeyTaken = 16, "that identity key is already bound to another account";
    BadIdentityProof = 17, "the identity key signature does not verify";
    UnknownRegistration = 18, "unknown or expired registration; start the registration again";
    UnknownUser = 20, "no such user";
    NoKeyPackage = 21, "the user has no key package available";
    ChannelDenied = 22, "not authorized for this channel";
    LegacyPathDisabled = 23, "an empty channel id is not allowed on this server";
    SelfChannel = 24, "a channel needs two different users";
    PayloadTooLarge = 30, "the payload is larger than the server accepts";
    TooManyRecipients = 31, "too many recipients in one request";
    QueueFull = 32, "the recipient's mailbox is full";
    StaleCommit = 33, "a commit for this group epoch was already accepted; process pending messages and retry";
    InvalidPayload = 34, "the payload is not a padded MLS message";
    TooManyKeyPackages = 35, "too many key packages";
    KeyPackageTooLarge = 36, "a key package is larger than the server accepts";
    NoRecipients = 37, "an enqueue needs at least one recipient unless it carries a commit";
    DuplicateRecipient = 38, "an enqueue names the same recipient more than once";
    UnknownGroup = 40, "the server holds no state for this group; register it first";
    NotGroupMember = 41, "the sender is not a member of this group";
    InvalidCommit = 42, "the commit or proposal is not valid for the group's current state";
    FutureEpoch = 43, "the message names an epoch the group has not reached";
    GroupInfoMismatch = 44, "a commit needs the GroupInfo of the epoch it creates, and only a commit carries one";
    EncryptedHandshake = 45, "commits and proposals to a group must be MLS PublicMessages";
    GroupExists = 46, "a group with this id is already registered";
    InvalidGroupInfo = 47, "the GroupInfo or its ratchet tree is not valid";
    UpgradeRequired = 48, "this server speaks a newer protocol; upgrade qpqd";
    WrongGroup = 49, "the message belongs to another group, or is not a group message";
    AccountDisabled = 50, "account disabled by the operator";
    AccountDeleted = 51, "this account was deleted";
    BlobTooLarge = 52, "the file is larger than this server accepts";
    BlobQuotaExceeded = 53, "your storage quota for files is used up";
    BlobNotFound = 54, "no such file on the server (never uploaded, or expired)";
    BlobGap = 55, "the upload does not continue where the stored part ends; ask its status and resume there";
    BlobIncomplete = 56, "the file is not completely uploaded yet";
    BlobConflict = 57, "another file with this id exists, or this one is already finished";
}

impl ErrorCode {
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E{:03}", self.as_u16())
    }
}

/// An error as it travels in a `Response`: a code, a message for people (no
/// secrets, no internals), and for [`ErrorCode::RateLimited`] a retry delay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: u32,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: 0,
        }
    }

    /// The catalogue message alone.
    pub fn bare(code: ErrorCode) -> Self {
        Self::new(code, code.description())
    }

    pub fn rate_limited(retry_after_ms: u32) -> Self {
        Self {
            retry_after_ms,
            ..Self::bare(ErrorCode::RateLimited)
        }
    }
}

impl From<crate::types::InvalidValue> for WireError {
    fn from(e: crate::types::InvalidValue) -> Self {
        let code = if e.field == "username" {
            ErrorCode::InvalidUsername
        } else {
            ErrorCode::Malformed
        };
        WireError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The book's table, read as (number, name), is the released catalogue
    /// written down apart from the macro. Two variants sharing a number do
    /// not compile (E0081), so what can slip is a code renumbered, renamed,
    /// reused, or added or dropped without its row: each fails here.
    #[test]
    fn codes_are_the_books_numbers_and_names() {
        let book = include_str!("../../docs/src/reference/errors.md");
        let mut theirs: Vec<(u16, String)> = book
            .lines()
            .filter_map(|l| l.strip_prefix("| E"))
            .map(|row| {
                let mut cells = row.split(" | ");
                let n = cells.next().unwrap().parse().unwrap();
                (n, cells.next().unwrap().to_owned())
            })
            .collect();
        let mut ours: Vec<(u16, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_u16(), format!("{c:?}")))
            .collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, theirs, "errors.md and ErrorCode disagree");
        for (n, name) in &theirs {
            let c = ErrorCode::from_u16(*n).unwrap();
            assert_eq!(&format!("{c:?}"), name);
            assert_eq!(c.to_string(), format!("E{n:03}"));
        }
        assert_eq!(ErrorCode::from_u16(999), None);
        assert_eq!(ErrorCode::ChannelDenied.to_string(), "E022");
    }
}
