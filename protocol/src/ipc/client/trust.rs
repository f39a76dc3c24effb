//! Is the other end of the socket this user's own `qpqd`? Decided before a
//! single byte is written to it.
//!
//! A front-end sends secrets over the socket (the account password of
//! `register`/`login`, the state passphrase of `unlock`) and everything the
//! user writes. Whoever can put a listening socket at the path the
//! front-end connects to receives all of it, so two checks run first:
//!
//! 1. **The directory** holding the socket is owned by this uid and has no
//!    group or other permission bits ([`check_private_dir`]): nobody else
//!    could have created, replaced or renamed the socket in it.
//! 2. **The peer** of the connected socket runs as this uid: the kernel's
//!    credentials of the listening process (`SO_PEERCRED` on Linux,
//!    `LOCAL_PEERCRED` / `getpeereid` elsewhere, through `interprocess`'
//!    `peer_creds`), which cannot be forged by the listener. This also
//!    covers a directory swapped between the check and the connect.
//!
//! The daemon checks the other direction (every connection's peer uid must
//! be its own: `qpqd/src/lifecycle.rs`). Root connecting to a user's daemon
//! is refused here like anyone else: a front-end talks to its own uid's
//! daemon only.

use std::io;
use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::StreamCommon as _;

use super::ConnectError;
use crate::paths::{check_private_dir, PathError};

/// Why the socket is not trusted to be this user's daemon.
#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    /// The socket's directory is someone else's, or reachable by others.
    #[error("the socket's directory {} is not private to you: {problem}", dir.display())]
    Directory { dir: PathBuf, problem: String },
    /// The process listening on the socket runs as another user.
    #[error("the process answering on it runs as uid {peer}, not as you (uid {me})")]
    PeerUid { peer: u32, me: u32 },
    /// The kernel did not say who listens.
    #[error("cannot learn which user answers on it: {0}")]
    PeerUnknown(#[source] io::Error),
}

/// Check 1: the directory of `socket`. A missing directory means nobody
/// listens (the caller may start the daemon, which creates it private).
pub(super) fn check_directory(socket: &Path) -> Result<(), ConnectError> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let untrusted = |problem: String| ConnectError::Untrusted {
        socket: socket.to_owned(),
        reason: Untrusted::Directory {
            dir: dir.to_owned(),
            problem,
        },
    };
    match check_private_dir(dir) {
        Ok(()) => Ok(()),
        Err(PathError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Err(ConnectError::NotRunning {
                socket: socket.to_owned(),
                source,
            })
        }
        Err(PathError::NotPrivate { problem, .. }) => Err(untrusted(problem)),
        Err(other) => Err(untrusted(other.to_string())),
    }
}

/// Check 2: the uid of the process listening on `stream`.
pub(super) fn check_peer(socket: &Path, stream: &Stream) -> Result<(), ConnectError> {
    let untrusted = |reason| ConnectError::Untrusted {
        socket: socket.to_owned(),
        reason,
    };
    let creds = stream
        .peer_creds()
        .map_err(|e| untrusted(Untrusted::PeerUnknown(e)))?;
    let me = rustix::process::geteuid().as_raw();
    match creds.euid() {
        Some(peer) if peer == me => Ok(()),
        Some(peer) => Err(untrusted(Untrusted::PeerUid { peer, me })),
        None => Err(untrusted(Untrusted::PeerUnknown(io::Error::new(
            io::ErrorKind::Unsupported,
            "this platform does not report a socket peer's uid",
        )))),
    }
}

#[cfg(test)]
mod tests;
