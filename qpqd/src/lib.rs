//! qpqd: the user's agent. One daemon per account profile holds the identity
//! key, the MLS group state, the message history and outbox, and the one QUIC
//! connection to qpq-server; front-ends talk to it over a local socket.
//!
//! Modules: `keystore` (where the state key comes from: OS keyring or
//! passphrase), `state` (the encrypted state database), `integrity` (is the
//! state we opened the one we last wrote: checks at open, the counter file),
//! `mls` (groups and messages on openmls, no I/O beyond its storage).

pub mod agent;
pub mod core;
pub mod db;
pub mod integrity;
pub mod ipc_server;
pub mod keystore;
pub mod lifecycle;
pub mod link;
pub mod mls;
pub mod nodes;
pub mod notifier;
pub mod payload;
pub mod reader;
pub mod state;
