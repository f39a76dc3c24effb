//! The test kit's server and `qpqd` daemons, under the names these tests
//! use; the fixtures themselves live in `quicproquo-testkit`.

use std::path::Path;

use quicproquo_protocol::paths::Paths;
pub use quicproquo_testkit::{TestDaemon as Daemon, TestServer as Server};

/// The binary cargo built for these tests (the daemons the test kit starts
/// run the same file).
pub const QPQD: &str = env!("CARGO_BIN_EXE_qpqd");

/// The profile's paths in a daemon's home.
pub fn paths_for(home: &Path) -> Paths {
    quicproquo_testkit::home::paths(home).unwrap()
}
