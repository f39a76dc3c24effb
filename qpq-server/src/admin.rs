//! `qpq-server admin`: what an operator does to a running server without
//! SQL — list accounts, disable, enable or delete one, end its sessions,
//! see the fullest mailboxes.
//!
//! The running server serves a Unix socket, `<data dir>/admin.sock` (mode
//! 0600 in the 0700 data directory), with one JSON request per line and one
//! JSON answer per line ([`wire`]). Every connection's peer is checked with
//! `SO_PEERCRED`: only the server's own user (or root) is served, so the
//! operator's rights are the file system's. The server side is [`socket`]
//! (serving) and [`ops`] (what each request does, through the store, so a
//! change reaches every node sharing the database as a
//! `Change::Account`); the command line is [`cli`].
//!
//! Unix only: elsewhere the server serves no admin socket and the command
//! says so.

pub mod cli;
pub mod ops;
#[cfg(unix)]
pub mod socket;
pub mod wire;

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "admin.sock";
