//! The one place an agent failure becomes what a front-end sees: an IPC
//! error object with a stable code (`docs/src/reference/ipc.md`).

use quicproquo_protocol::ipc::error::{ErrorObject, IpcErrorCode};

use crate::agent::AgentError;

impl From<AgentError> for ErrorObject {
    fn from(e: AgentError) -> Self {
        let code = match &e {
            AgentError::Refused(w) => return ErrorObject::server_refused(w),
            AgentError::Locked(_) => IpcErrorCode::Locked,
            AgentError::NotLoggedIn(_) => IpcErrorCode::NotLoggedIn,
            AgentError::NotFound(_) => IpcErrorCode::NotFound,
            AgentError::InvalidInput(_) => IpcErrorCode::InvalidInput,
            AgentError::Conflict(_) => IpcErrorCode::Conflict,
            AgentError::NotAllowed(_) => IpcErrorCode::NotAllowed,
            AgentError::IdentityChanged(_) => IpcErrorCode::IdentityChanged,
            AgentError::NetworkDown(_) => IpcErrorCode::NetworkDown,
            AgentError::Contended(_) => IpcErrorCode::ServerRefused,
            AgentError::File(_) => IpcErrorCode::FileError,
            AgentError::Corrupt(_) => IpcErrorCode::Corrupt,
            AgentError::Expired(_) => IpcErrorCode::Expired,
            AgentError::Internal(_) => IpcErrorCode::Internal,
        };
        ErrorObject::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::errors::{ErrorCode, WireError};

    use super::*;

    #[test]
    fn each_agent_error_keeps_its_code_and_message() {
        let cases = [
            (AgentError::Locked("locked".into()), IpcErrorCode::Locked),
            (
                AgentError::NotLoggedIn("out".into()),
                IpcErrorCode::NotLoggedIn,
            ),
            (AgentError::NotFound("nope".into()), IpcErrorCode::NotFound),
            (
                AgentError::InvalidInput("bad".into()),
                IpcErrorCode::InvalidInput,
            ),
            (AgentError::Conflict("taken".into()), IpcErrorCode::Conflict),
            (
                AgentError::NotAllowed("not yours".into()),
                IpcErrorCode::NotAllowed,
            ),
            (
                AgentError::IdentityChanged("changed".into()),
                IpcErrorCode::IdentityChanged,
            ),
            (
                AgentError::NetworkDown("down".into()),
                IpcErrorCode::NetworkDown,
            ),
            (
                AgentError::Contended("busy".into()),
                IpcErrorCode::ServerRefused,
            ),
            (AgentError::File("/x: gone".into()), IpcErrorCode::FileError),
            (AgentError::Corrupt("bad".into()), IpcErrorCode::Corrupt),
            (AgentError::Expired("gone".into()), IpcErrorCode::Expired),
            (AgentError::Internal("bug".into()), IpcErrorCode::Internal),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            let obj = ErrorObject::from(e);
            assert_eq!(obj.kind(), Some(code), "{text}");
            assert!(obj.message.contains(&text), "{} vs {text}", obj.message);
        }
        let refused = ErrorObject::from(AgentError::Refused(WireError::bare(
            ErrorCode::ChannelDenied,
        )));
        assert_eq!(refused.kind(), Some(IpcErrorCode::ServerRefused));
        assert_eq!(refused.server_code(), Some(ErrorCode::ChannelDenied));
    }
}
