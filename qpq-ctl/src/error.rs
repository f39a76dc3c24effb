//! Everything that can end a qpq-ctl command early, the exit status each maps
//! to ([`crate::exit::Exit`]), and a hint saying what to do next.
//!
//! IPC errors keep the daemon's message (it names the conversation, user or
//! limit); the server's `E0xx` code, when there is one, is appended so a
//! script's log shows it. A broken pipe on stdout is not an error for the
//! user: `main` ends quietly with success (ripgrep does the same).

use std::io;
use std::path::PathBuf;

use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::ipc::client::{CallError, ConnectError};
use quicproquo_protocol::ipc::IpcErrorCode;
use quicproquo_protocol::paths::PathError;
use quicproquo_protocol::types::Username;

use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// `--no-autostart` and nobody answers on the socket.
    #[error("qpqd is not running for profile `{profile}` (nothing answers at {})", socket.display())]
    NotRunning { profile: String, socket: PathBuf },
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{}", call_message(.0))]
    Call(#[from] CallError),
    #[error(transparent)]
    Paths(#[from] PathError),
    /// Input refused before anything was sent (empty or oversized message…).
    #[error("{0}")]
    Input(String),
    /// A command line clap could not judge (e.g. no terminal to prompt on).
    #[error("{0}")]
    Usage(String),
    /// A name that matches nothing, found out locally.
    #[error("{0}")]
    NotFound(String),
    /// Writing to stdout failed; a broken pipe among these ends quietly.
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
    /// An attachment's upload or download ended without the file there:
    /// the daemon's reason, the status it maps to, and what to do next.
    #[error("{message}")]
    Transfer {
        message: String,
        exit: Exit,
        hint: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn call_message(e: &CallError) -> String {
    match e {
        CallError::Rpc(obj) => match server_code(e) {
            Some(code) => format!("{} [{code}]", obj.message),
            None => obj.message.clone(),
        },
        other => other.to_string(),
    }
}

/// The server's `E0xx` code of a refusal, as text (a code this build does not
/// know still shows).
fn server_code(e: &CallError) -> Option<String> {
    let CallError::Rpc(obj) = e else { return None };
    let code = obj.data.as_ref()?.get("code")?.as_str()?;
    Some(code.to_owned())
}

impl CtlError {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        CtlError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether this is stdout's reader going away (`qpq-ctl … | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CtlError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The server's `E0xx` code, when the server refused.
    pub fn server_code(&self) -> Option<String> {
        match self {
            CtlError::Call(e) => server_code(e),
            _ => None,
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            CtlError::NotRunning { .. } => Exit::DaemonUnreachable,
            CtlError::Connect(e) => match e {
                ConnectError::Paths(_) => Exit::Failure,
                ConnectError::Untrusted { .. } => Exit::UntrustedDaemon,
                _ => Exit::DaemonUnreachable,
            },
            CtlError::Call(e) => call_exit(e),
            CtlError::Paths(_) | CtlError::Output(_) | CtlError::Io { .. } => Exit::Failure,
            CtlError::Input(_) => Exit::InvalidInput,
            CtlError::Usage(_) => Exit::Usage,
            CtlError::NotFound(_) => Exit::NotFound,
            CtlError::Transfer { exit, .. } => *exit,
        }
    }

    /// What to do next, for people.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            CtlError::NotRunning { .. } => {
                "start it with `qpq-ctl daemon start`, or run without --no-autostart"
            }
            CtlError::Connect(ConnectError::StartTimeout { .. })
            | CtlError::Connect(ConnectError::DaemonExited { .. }) => {
                "the daemon's log (named above) says why; `qpq-ctl daemon status` checks again"
            }
            CtlError::Connect(ConnectError::Untrusted { .. }) => {
                "another user may be posing as qpqd: check who owns the directory \
                 (`ls -ld`) and remove it if it is not yours, or set XDG_RUNTIME_DIR \
                 to a private directory of your own"
            }
            CtlError::Connect(ConnectError::StoppedOnPurpose { .. }) => {
                "`qpq-ctl daemon start` starts it again; until then commands fail at once \
                 and followers (`recv --follow`, the TUI) wait"
            }
            CtlError::Connect(ConnectError::Launch(_)) => {
                "install qpqd next to qpq-ctl or on PATH, or set QPQ_DAEMON to its path"
            }
            CtlError::Connect(_) => "`qpq-ctl daemon status` tells whether qpqd runs",
            CtlError::Call(CallError::Disconnected) | CtlError::Call(CallError::Timeout { .. }) => {
                "qpqd exited, restarted or is stuck; run the command again \
                 (`qpq-ctl daemon status` tells whether it runs)"
            }
            CtlError::Call(e) => return call_hint(e),
            CtlError::NotFound(_) => "`qpq-ctl list` shows your conversations",
            CtlError::Transfer { hint, .. } => return Some(hint.clone()),
            _ => return None,
        };
        Some(hint.to_owned())
    }
}

fn call_exit(e: &CallError) -> Exit {
    match e {
        CallError::Disconnected | CallError::Timeout { .. } => Exit::DaemonUnreachable,
        CallError::TooLarge { .. } => Exit::InvalidInput,
        CallError::Rpc(obj) => match obj.kind() {
            Some(IpcErrorCode::NotLoggedIn) => Exit::NotLoggedIn,
            Some(IpcErrorCode::NotFound) => Exit::NotFound,
            // "No such user" is a not-found however the daemon learnt it.
            Some(IpcErrorCode::ServerRefused)
                if obj.server_code() == Some(ErrorCode::UnknownUser) =>
            {
                Exit::NotFound
            }
            Some(IpcErrorCode::ServerRefused) | Some(IpcErrorCode::NotAllowed) => Exit::Refused,
            Some(IpcErrorCode::NetworkDown) => Exit::NetworkDown,
            Some(IpcErrorCode::Locked) => Exit::Locked,
            Some(IpcErrorCode::InvalidInput) | Some(IpcErrorCode::InvalidParams) => {
                Exit::InvalidInput
            }
            Some(IpcErrorCode::Conflict) => Exit::Conflict,
            // A file that cannot be read or written is the caller's input
            // (a path), like a bad username; the daemon's message names it.
            Some(IpcErrorCode::FileError) => Exit::InvalidInput,
            Some(IpcErrorCode::Corrupt) => Exit::Corrupt,
            Some(IpcErrorCode::Expired) => Exit::Expired,
            Some(IpcErrorCode::IdentityChanged) => Exit::IdentityChanged,
            Some(IpcErrorCode::VersionMismatch) | Some(IpcErrorCode::TooSlow) => {
                Exit::DaemonUnreachable
            }
            Some(IpcErrorCode::ParseError)
            | Some(IpcErrorCode::InvalidRequest)
            | Some(IpcErrorCode::MethodNotFound)
            | Some(IpcErrorCode::Internal)
            | None => Exit::Failure,
        },
        CallError::Encode { .. } | CallError::Protocol { .. } | CallError::AlreadySubscribed => {
            Exit::Failure
        }
    }
}

fn call_hint(e: &CallError) -> Option<String> {
    let CallError::Rpc(obj) = e else {
        return None;
    };
    let hint = match obj.kind()? {
        IpcErrorCode::NotLoggedIn => {
            "log in with `qpq-ctl login --server HOST:PORT USERNAME`, \
             or create an account with `qpq-ctl register --server HOST:PORT USERNAME`"
        }
        IpcErrorCode::NotFound => {
            "check the spelling; `qpq-ctl list` shows your conversations \
             (by name, id or @username), `qpq-ctl dm USERNAME` opens a DM"
        }
        IpcErrorCode::ServerRefused => return Some(refusal_hint(obj.server_code())),
        IpcErrorCode::NetworkDown => {
            "check the server address and the network; `qpq-ctl status` shows the connection"
        }
        IpcErrorCode::Locked => {
            "give the state passphrase with `qpq-ctl unlock`, or start qpqd with QPQ_PASSPHRASE set"
        }
        IpcErrorCode::IdentityChanged => {
            "compare safety numbers (`qpq-ctl verify USERNAME`, then `--confirm`), \
             then send again (or send with --confirm-changed-keys)"
        }
        IpcErrorCode::Conflict => "use another profile: `qpq-ctl --profile NAME …`",
        IpcErrorCode::VersionMismatch => {
            "stop the running qpqd (`qpq-ctl daemon stop` from a matching version) and try again"
        }
        IpcErrorCode::MethodNotFound => "the running qpqd is older than qpq-ctl; restart it",
        IpcErrorCode::Corrupt => CORRUPT_HINT,
        IpcErrorCode::Expired => EXPIRED_HINT,
        IpcErrorCode::NotAllowed => {
            "only a message's sender can edit it or delete it for everyone; \
             `qpq-ctl delete CONVERSATION ID --for-me` removes it from your history"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

/// What to do about an attachment that failed its integrity check.
pub const CORRUPT_HINT: &str = "the file on the server was tampered with or cut short, and \
     nothing was kept; ask the sender to send it again";
/// What to do about an attachment the server no longer has.
pub const EXPIRED_HINT: &str = "the server deletes a file one mail TTL (30 days by default) \
     after it was uploaded; ask the sender to send it again";

fn refusal_hint(code: Option<ErrorCode>) -> String {
    let hint = match code {
        Some(ErrorCode::LoginFailed) => "check the username and the password",
        Some(ErrorCode::UsernameTaken) => "choose another username",
        Some(ErrorCode::InvalidUsername) => Username::RULE,
        Some(ErrorCode::Unauthenticated) => "log in again with `qpq-ctl login`",
        Some(ErrorCode::RateLimited)
        | Some(ErrorCode::ShuttingDown)
        | Some(ErrorCode::Internal) => "try again in a moment",
        Some(ErrorCode::UnknownUser) => "check the username's spelling",
        Some(ErrorCode::AccountDisabled) => "the server's operator disabled this account; ask them",
        Some(ErrorCode::AccountDeleted) => {
            "that account was deleted and its name is never given out again; remove them from your groups"
        }
        Some(ErrorCode::NoKeyPackage) => {
            "that user's device has no key package on the server; ask them to start qpq once"
        }
        Some(ErrorCode::BlobTooLarge) => {
            "the server's operator sets the largest file (`quotas.blob_max_mib`, 100 MiB \
             by default); send a smaller file, or split it"
        }
        Some(ErrorCode::BlobQuotaExceeded) => {
            "the files you sent count against your quota (`quotas.blob_quota_mib`, 1 GiB by \
             default) until they expire; wait, or ask the server's operator"
        }
        _ => "the server's error catalogue (docs/src/reference/errors.md) explains the code",
    };
    hint.to_owned()
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::errors::WireError;
    use quicproquo_protocol::ipc::ErrorObject;

    use super::*;

    fn rpc(obj: ErrorObject) -> CtlError {
        CtlError::Call(CallError::Rpc(obj))
    }

    #[test]
    fn ipc_codes_map_to_distinct_statuses() {
        let cases = [
            (IpcErrorCode::NotLoggedIn, Exit::NotLoggedIn),
            (IpcErrorCode::NotFound, Exit::NotFound),
            (IpcErrorCode::NetworkDown, Exit::NetworkDown),
            (IpcErrorCode::Locked, Exit::Locked),
            (IpcErrorCode::InvalidInput, Exit::InvalidInput),
            (IpcErrorCode::Conflict, Exit::Conflict),
            (IpcErrorCode::IdentityChanged, Exit::IdentityChanged),
            (IpcErrorCode::Internal, Exit::Failure),
            (IpcErrorCode::NotAllowed, Exit::Refused),
            (IpcErrorCode::FileError, Exit::InvalidInput),
            (IpcErrorCode::Corrupt, Exit::Corrupt),
            (IpcErrorCode::Expired, Exit::Expired),
        ];
        for (code, exit) in cases {
            let e = rpc(ErrorObject::new(code, "x"));
            assert_eq!(e.exit(), exit, "{code:?}");
            assert_eq!(e.to_string(), "x");
        }
    }

    #[test]
    fn refusals_carry_their_e_code() {
        let e = rpc(ErrorObject::server_refused(&WireError::bare(
            ErrorCode::UsernameTaken,
        )));
        assert_eq!(e.exit(), Exit::Refused);
        assert_eq!(e.server_code().as_deref(), Some("E012"));
        assert!(e.to_string().ends_with("[E012]"), "{e}");
        assert_eq!(e.hint().as_deref(), Some("choose another username"));

        let too_large = rpc(ErrorObject::server_refused(&WireError::bare(
            ErrorCode::BlobTooLarge,
        )));
        assert_eq!(too_large.exit(), Exit::Refused);
        assert!(too_large.to_string().ends_with("[E052]"), "{too_large}");
        assert!(too_large.hint().is_some_and(|h| h.contains("blob_max_mib")));
        let quota = rpc(ErrorObject::server_refused(&WireError::bare(
            ErrorCode::BlobQuotaExceeded,
        )));
        assert!(quota.hint().is_some_and(|h| h.contains("quota")));

        let unknown = rpc(ErrorObject::server_refused(&WireError::bare(
            ErrorCode::UnknownUser,
        )));
        assert_eq!(unknown.exit(), Exit::NotFound);

        let deleted = rpc(ErrorObject::server_refused(&WireError::bare(
            ErrorCode::AccountDeleted,
        )));
        assert_eq!(deleted.exit(), Exit::Refused);
        assert!(deleted.hint().is_some_and(|h| h.contains("deleted")));
    }

    /// A socket that is not provably our own daemon has a status of its
    /// own: a script must not retry it like a daemon that is starting.
    #[test]
    fn an_untrusted_socket_has_its_own_status() {
        use quicproquo_protocol::ipc::client::Untrusted;
        let e = CtlError::Connect(ConnectError::Untrusted {
            socket: PathBuf::from("/x/default.sock"),
            reason: Untrusted::PeerUid { peer: 65534, me: 0 },
        });
        assert_eq!(e.exit(), Exit::UntrustedDaemon);
        assert_eq!(e.exit().code(), 12);
        let text = e.to_string();
        assert!(
            text.contains("uid 65534") && text.contains("nothing was sent"),
            "{text}"
        );
        assert!(e.hint().unwrap().contains("posing as qpqd"));
    }

    #[test]
    fn lost_daemon_is_unreachable_and_broken_pipe_is_recognised() {
        assert_eq!(
            CtlError::Call(CallError::Disconnected).exit(),
            Exit::DaemonUnreachable
        );
        let pipe = CtlError::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
        assert!(!CtlError::Output(io::Error::other("disk full")).is_broken_pipe());
    }
}
