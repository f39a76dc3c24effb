//! IPC errors: the code catalogue (the "Errors" table of ipc.md, kept in step
//! by a test), the `error` object as it travels, and [`IpcError`], a refusal
//! the daemon answers on the socket.
//!
//! A code never changes meaning; a client that meets a code it does not know
//! still gets the message (the wire keeps the raw number).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jsonrpc::{Id, Response};

macro_rules! catalogue {
    ($($variant:ident = $num:literal, $msg:literal;)*) => {
        /// Every error code the daemon answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum IpcErrorCode {
            $($variant = $num,)*
        }

        impl IpcErrorCode {
            pub const ALL: &'static [IpcErrorCode] = &[$(IpcErrorCode::$variant,)*];

            pub fn from_i32(n: i32) -> Option<Self> {
                match n {
                    $($num => Some(IpcErrorCode::$variant),)*
                    _ => None,
                }
            }

            /// The catalogue's description of the code.
            pub fn description(self) -> &'static str {
                match self {
                    $(IpcErrorCode::$variant => $msg,)*
                }
            }
        }
    };
}

catalogue! {
    ParseError = -32700, "parse error: the line is not JSON";
    InvalidRequest = -32600, "invalid request";
    MethodNotFound = -32601, "method not found";
    InvalidParams = -32602, "invalid params";
    Internal = -32603, "internal error";
    NotLoggedIn = -32001, "not logged in";
    NotFound = -32002, "not found";
    ServerRefused = -32003, "refused by the server";
    NetworkDown = -32004, "network down: the server cannot be reached";
    Locked = -32005, "locked: the state key is not available; unlock first";
    IdentityChanged = -32006, "a member's identity key changed; verify, then resend with confirm_changed_keys";
    InvalidInput = -32007, "invalid input";
    Conflict = -32008, "already exists";
    VersionMismatch = -32010, "IPC protocol version mismatch";
    TooSlow = -32012, "the connection fell too far behind and was closed; reconnect and subscribe with `since`";
    NotAllowed = -32013, "not allowed: only a message's sender can edit it or delete it for everyone";
    FileError = -32014, "the file could not be read or written";
    Corrupt = -32015, "the attachment failed its integrity check; nothing was kept";
    Expired = -32016, "the attachment has expired: the server no longer has it";
}

impl IpcErrorCode {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

impl fmt::Display for IpcErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_i32())
    }
}

/// The `error` member of a response. `code` stays a raw number so an unknown
/// code from a newer daemon still reads; [`ErrorObject::kind`] types it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (error {code})")]
pub struct ErrorObject {
    pub code: i32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    pub fn new(code: IpcErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_i32(),
            message: message.into(),
            data: None,
        }
    }

    /// `-32003` with `data.code` set to the server's `E0xx` code.
    pub fn server_refused(error: &crate::errors::WireError) -> Self {
        Self {
            data: Some(serde_json::json!({ "code": error.code.to_string() })),
            ..Self::new(
                IpcErrorCode::ServerRefused,
                format!("the server refused: {}", error.message),
            )
        }
    }

    /// `-32010` naming both versions, with `data.protocol` the daemon's.
    pub fn version_mismatch(daemon: u32, client: u32) -> Self {
        Self {
            data: Some(serde_json::json!({ "protocol": daemon })),
            ..Self::new(
                IpcErrorCode::VersionMismatch,
                format!("qpqd speaks IPC protocol {daemon}, the client speaks {client}"),
            )
        }
    }

    /// The code as a catalogue entry, if this build knows it.
    pub fn kind(&self) -> Option<IpcErrorCode> {
        IpcErrorCode::from_i32(self.code)
    }

    /// The server's `E0xx` code in `data.code`, if any.
    pub fn server_code(&self) -> Option<crate::errors::ErrorCode> {
        let code = self.data.as_ref()?.get("code")?.as_str()?;
        let n = code.strip_prefix('E')?.parse().ok()?;
        crate::errors::ErrorCode::from_u16(n)
    }

    /// The daemon's version in `data.protocol` of a `-32010`.
    pub fn daemon_protocol(&self) -> Option<u32> {
        let n = self.data.as_ref()?.get("protocol")?.as_u64()?;
        u32::try_from(n).ok()
    }
}

/// A request the daemon refuses: answer it with [`IpcError::to_response`].
/// `id` is the request's id when it could be read (else the answer carries
/// `"id": null`, as JSON-RPC 2.0 requires).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (error {code})")]
pub struct IpcError {
    pub id: Option<Id>,
    pub code: IpcErrorCode,
    pub message: String,
}

impl IpcError {
    pub fn new(id: Option<Id>, code: IpcErrorCode, message: impl Into<String>) -> Self {
        Self {
            id,
            code,
            message: message.into(),
        }
    }

    /// `-32600` for a line over [`super::MAX_LINE`] (whose id is never read).
    pub fn line_too_long() -> Self {
        Self::new(
            None,
            IpcErrorCode::InvalidRequest,
            format!(
                "invalid request: the line is longer than {} bytes",
                super::MAX_LINE
            ),
        )
    }

    pub fn to_response(&self) -> Response {
        Response::error(
            self.id.clone(),
            ErrorObject::new(self.code, self.message.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{ErrorCode, WireError};

    /// The released codes, written out by hand apart from the macro. Two
    /// variants sharing a number do not compile (E0081), so what can slip is
    /// a code renumbered, reused, or added or dropped without a row here.
    #[test]
    fn codes_are_the_released_ones() {
        use IpcErrorCode::*;
        let released = [
            (ParseError, -32700),
            (InvalidRequest, -32600),
            (MethodNotFound, -32601),
            (InvalidParams, -32602),
            (Internal, -32603),
            (NotLoggedIn, -32001),
            (NotFound, -32002),
            (ServerRefused, -32003),
            (NetworkDown, -32004),
            (Locked, -32005),
            (IdentityChanged, -32006),
            (InvalidInput, -32007),
            (Conflict, -32008),
            (VersionMismatch, -32010),
            (TooSlow, -32012),
            (NotAllowed, -32013),
            (FileError, -32014),
            (Corrupt, -32015),
            (Expired, -32016),
        ];
        let ours: Vec<(IpcErrorCode, i32)> =
            IpcErrorCode::ALL.iter().map(|&c| (c, c.as_i32())).collect();
        assert_eq!(ours, released);
        for (c, n) in released {
            assert_eq!(IpcErrorCode::from_i32(n), Some(c));
            assert_eq!(c.to_string(), n.to_string());
        }
        assert_eq!(IpcErrorCode::from_i32(-32099), None);
    }

    /// The "Errors" table of ipc.md lists exactly the catalogue.
    #[test]
    fn book_lists_every_code() {
        let book = include_str!("../../../docs/src/reference/ipc.md");
        let section = book
            .split("\n## Errors")
            .nth(1)
            .expect("ipc.md has an Errors section");
        let rows: Vec<i32> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| -"))
            .map(|l| -l.split(' ').next().unwrap().parse::<i32>().unwrap())
            .collect();
        let mut ours: Vec<i32> = IpcErrorCode::ALL.iter().map(|c| c.as_i32()).collect();
        let mut theirs = rows.clone();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs, "ipc.md and IpcErrorCode disagree");
    }

    #[test]
    fn error_object_round_trips_and_types_its_data() {
        let refused = ErrorObject::server_refused(&WireError::bare(ErrorCode::ChannelDenied));
        let json = serde_json::to_string(&refused).unwrap();
        assert_eq!(
            json,
            r#"{"code":-32003,"message":"the server refused: not authorized for this channel","data":{"code":"E022"}}"#
        );
        let back: ErrorObject = serde_json::from_str(&json).unwrap();
        assert_eq!(back, refused);
        assert_eq!(back.kind(), Some(IpcErrorCode::ServerRefused));
        assert_eq!(back.server_code(), Some(ErrorCode::ChannelDenied));

        let plain = ErrorObject::new(IpcErrorCode::NotFound, "no such conversation: team");
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(
            json,
            r#"{"code":-32002,"message":"no such conversation: team"}"#
        );
        assert_eq!(plain.server_code(), None);

        let unknown: ErrorObject =
            serde_json::from_str(r#"{"code":-32050,"message":"from the future","data":[1]}"#)
                .unwrap();
        assert_eq!(unknown.kind(), None);
        assert_eq!(unknown.server_code(), None);
        assert_eq!(unknown.to_string(), "from the future (error -32050)");
    }

    #[test]
    fn version_mismatch_names_both_versions() {
        let e = ErrorObject::version_mismatch(2, 1);
        assert_eq!(e.kind(), Some(IpcErrorCode::VersionMismatch));
        assert_eq!(e.daemon_protocol(), Some(2));
        assert!(e.message.contains('2') && e.message.contains('1'));
    }

    #[test]
    fn refusal_becomes_a_response_with_its_id() {
        let e = IpcError::new(Some(Id::Num(7)), IpcErrorCode::InvalidParams, "bad");
        let line = e.to_response().to_line();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":\"bad\"}}\n"
        );
        let line = IpcError::line_too_long().to_response().to_line();
        let text = String::from_utf8(line).unwrap();
        assert!(text.starts_with("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600"));
    }
}
