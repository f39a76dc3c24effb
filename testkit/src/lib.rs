//! quicproquo-testkit: the fixtures every integration test, bench and the demo
//! share, written once. Not published; nothing in a release binary but
//! `qpq-demo` links it.
//!
//! - [`TestServer`]: `qpq-server` in this process on a loopback port, its data
//!   (SQLite, a self-signed certificate) in a temporary directory; gives its
//!   address, certificate fingerprint and pin, and restarts on the same port.
//! - [`wire`]: accounts registered over the wire protocol (the Rust client),
//!   and the DM channel between two of them — for tests of the server alone.
//! - [`home`]: one profile's directories and environment under one directory,
//!   as every test daemon and front-end process is given them.
//! - [`TestDaemon`]: a real `qpqd` process in such a home ([`qpqd_binary`]
//!   finds or builds it); [`InProcessDaemon`]: the same agent code running in
//!   this process (the demo, and tests that need no second binary).
//! - [`agent`]: through any agent's IPC client, [`agent::register`] a user on
//!   a test server and open the [`agent::first_dm`] between two users.
//! - [`postgres`]: a throwaway PostgreSQL per test process, a database or
//!   schema per test, for the PostgreSQL store's tests.
//! - [`process`]: run a child process to completion under a deadline.
//! - [`attacker`]: an ordinary account driven by hand, with forged MLS
//!   credentials, for the tests of attacks.
//! - [`relay`]: a UDP relay a test cuts, so a QUIC peer goes silent; two in
//!   front of one server are two nodes of a deployment for the failover tests
//!   (with [`quick_node_moves`] and [`agent::register_at`]).
//! - [`mls`]: a bare MLS member over the wire (openmls driven by hand), for
//!   tests of the server's group rules.
//! - [`server_process`]: `qpq-server` as its own process (its memory, a
//!   `kill -9`), and [`bulk`]: the bare-quinn bulk transfer — for benches.
//! - `mlsrs` (feature `mlsrs`): a user whose MLS is mls-rs, an
//!   implementation independent of openmls, for the interoperability tests.

pub mod agent;
pub mod attacker;
pub mod bench;
pub mod bulk;
#[cfg(all(unix, not(target_os = "macos")))]
pub mod dbus;
mod error;
pub mod home;
mod in_process;
pub mod mls;
#[cfg(feature = "mlsrs")]
pub mod mlsrs;
pub mod postgres;
pub mod process;
mod qpqd;
pub mod relay;
mod server;
pub mod server_process;
pub mod skip;
pub mod wire;

pub use error::TestkitError;
pub use in_process::InProcessDaemon;
pub use qpqd::{qpqd_binary, quick_node_moves, TestDaemon};
pub use server::TestServer;

/// How long a fixture waits for something that should happen soon (a
/// daemon's socket, a message arriving) before it fails: long enough for a
/// slow, shared CI machine, short enough to fail a hung test.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
