//! The local IPC between `qpqd` and its front-ends: JSON-RPC 2.0, one JSON
//! object per line (`docs/src/reference/ipc.md` is the contract; tests keep
//! the method, notification and error tables in step with this module).
//!
//! Owns, with no I/O and no runtime:
//! - [`codec`]: finding complete `\n`-terminated lines in a byte buffer, with
//!   the [`MAX_LINE`] limit and recovery after an over-long line;
//! - [`jsonrpc`]: the envelopes (request id, response, notification) and the
//!   server-side parse of a line into an [`IncomingRequest`] or an [`IpcError`]
//!   that already carries the right code and id;
//! - [`error`]: the error code catalogue;
//! - [`methods`] and [`notifications`]: typed params and results of every
//!   method ([`Call`] for dispatch, [`Method`] for typed calls) and every
//!   notification;
//! - [`values`]: the values those carry (ids, conversation refs, messages).
//!
//! Behind the `ipc-client` feature, `client` is the async client both
//! front-ends use (connect, autostart of the daemon, call, subscribe). The
//! daemon's server loop lives in `qpqd`.

#[cfg(feature = "ipc-client")]
pub mod client;
pub mod codec;
pub mod error;
pub mod jsonrpc;
pub mod methods;
pub mod notifications;
pub mod unique_members;
pub mod values;

pub use codec::{LineBuffer, LineError, MAX_LINE, MAX_REPLY_BYTES};
pub use error::{ErrorObject, IpcError, IpcErrorCode};
pub use jsonrpc::{Id, IncomingRequest, MalformedLine, RawNotification, Response, ServerMessage};
pub use methods::{Call, Method};
pub use notifications::Notification;

/// The IPC protocol version exchanged in `hello`. Bump it on any change an
/// older client or daemon would misread.
pub const IPC_PROTOCOL_VERSION: u32 = 1;

/// The JSON-RPC version every message carries.
pub const JSONRPC_VERSION: &str = "2.0";
