//! What can go wrong in the agent, in the agent's own terms. The IPC server
//! alone turns an [`AgentError`] into the error object a front-end sees
//! (`ipc_server`); nothing here knows JSON-RPC.

use quicproquo_protocol::client::ClientError;
use quicproquo_protocol::errors::WireError;

use crate::core::CoreError;
use crate::link::LinkError;
use crate::mls::MlsError;

/// A failure of an agent call. Every message is written for people and never
/// contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The state's key has not been given (`unlock`).
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    NotLoggedIn(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Conflict(String),
    /// Only a message's sender may do that (edit it, delete it for everyone).
    #[error("{0}")]
    NotAllowed(String),
    /// A contact's identity key changed and the user has not confirmed it.
    #[error("{0}")]
    IdentityChanged(String),
    /// The server cannot be reached (or the call to it failed in transit).
    #[error("{0}")]
    NetworkDown(String),
    /// The server answered with an error from its catalogue.
    #[error("the server refused: {}", .0.message)]
    Refused(WireError),
    /// The server kept refusing for a reason that is not the user's doing
    /// (e.g. a group that kept changing under a commit).
    #[error("{0}")]
    Contended(String),
    /// A local file could not be read or written (issue 18: `attach`'s
    /// file, `download`'s target); the message names the path and why.
    #[error("{0}")]
    File(String),
    /// An attachment failed its integrity check: nothing was kept.
    #[error("{0}")]
    Corrupt(String),
    /// An attachment's blob is gone from the server.
    #[error("{0}")]
    Expired(String),
    /// Our bug or a broken environment; logged where it is made.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A result of an agent call.
pub type AgentResult<T> = Result<T, AgentError>;

impl AgentError {
    /// An internal failure, logged here (its text reaches the user too, so
    /// it must not carry secrets — the types it comes from never do).
    pub fn internal(e: impl std::fmt::Display) -> AgentError {
        tracing::error!(error = %e, "internal error");
        AgentError::Internal(e.to_string())
    }

    pub(crate) fn locked() -> AgentError {
        AgentError::Locked(
            "the state is locked: unlock with the passphrase (QPQ_PASSPHRASE or `unlock`)".into(),
        )
    }

    pub(crate) fn not_logged_in() -> AgentError {
        AgentError::NotLoggedIn("not logged in: register or log in first".into())
    }

    pub(crate) fn offline() -> AgentError {
        AgentError::NetworkDown("the server cannot be reached now; try again when online".into())
    }

    /// The server's error code, when the server refused.
    pub fn server_code(&self) -> Option<quicproquo_protocol::errors::ErrorCode> {
        match self {
            AgentError::Refused(w) => Some(w.code),
            _ => None,
        }
    }
}

impl From<CoreError> for AgentError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NoAccount => AgentError::NotLoggedIn(e.to_string()),
            CoreError::Mls(m) => m.into(),
            other => AgentError::internal(other),
        }
    }
}

impl From<MlsError> for AgentError {
    fn from(e: MlsError) -> Self {
        match e {
            MlsError::InvalidKeyPackage(why) => {
                AgentError::InvalidInput(format!("cannot add that user: {why}"))
            }
            MlsError::NotMember(_) => {
                AgentError::NotFound("you are no longer a member of this conversation".into())
            }
            other => AgentError::internal(other),
        }
    }
}

impl From<rusqlite::Error> for AgentError {
    fn from(e: rusqlite::Error) -> Self {
        AgentError::internal(format!("state database: {e}"))
    }
}

impl From<LinkError> for AgentError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Offline => AgentError::offline(),
            LinkError::Call(c) => c.into(),
        }
    }
}

impl From<ClientError> for AgentError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Server(w) => AgentError::Refused(w),
            // The server answered a request with another kind: a bug on one
            // side, not the network.
            ClientError::Unexpected(u) => AgentError::internal(u),
            other => AgentError::NetworkDown(other.to_string()),
        }
    }
}
