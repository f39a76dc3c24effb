//! What can go wrong starting a fixture. Tests unwrap it; the demo shows it
//! to the person who ran it.

use quicproquo_protocol::ipc::client::{CallError, ConnectError};

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("starting qpq-server: {0}")]
    Server(#[from] quicproquo_server::server::StartError),
    #[error("the profile's paths: {0}")]
    Paths(#[from] quicproquo_protocol::paths::PathError),
    #[error("starting the agent: {0}")]
    Lifecycle(#[from] quicproquo_daemon::lifecycle::LifecycleError),
    #[error("opening the agent's state: {0}")]
    Open(String),
    #[error("the agent has no account yet: register first")]
    NoAccount,
    #[error("connecting to the agent: {0}")]
    Connect(#[from] ConnectError),
    #[error("{what}: {source}")]
    Call {
        what: &'static str,
        source: CallError,
    },
    #[error("gave up after {wait:?} waiting until {what}")]
    Timeout {
        what: String,
        wait: std::time::Duration,
    },
}

impl TestkitError {
    /// `map_err(TestkitError::io("what was being done"))`
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> TestkitError {
        move |source| TestkitError::Io { what, source }
    }

    /// `map_err(TestkitError::call("what was asked"))`
    pub fn call(what: &'static str) -> impl FnOnce(CallError) -> TestkitError {
        move |source| TestkitError::Call { what, source }
    }
}
