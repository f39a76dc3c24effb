//! An agent in this process: what `qpqd`'s `main` does (profile lock,
//! socket, open the state, serve IPC), minus the signal handling and the
//! logging, in a home of its own. Front-ends reach it over its socket like
//! any qpqd. The demo runs its users this way, so its one binary is the
//! whole stack; tests use it where a second binary is not at hand.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quicproquo_daemon::agent::{Agent, StartOptions};
use quicproquo_daemon::ipc_server;
use quicproquo_daemon::keystore::OsKeyring;
use quicproquo_daemon::lifecycle::{self, ProfileLock};
use quicproquo_protocol::ipc::client::IpcClient;
use quicproquo_protocol::paths::{ensure_private_dir, Paths};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::{home, TestkitError};

pub struct InProcessDaemon {
    pub paths: Paths,
    agent: Arc<Agent>,
    serve: Option<JoinHandle<()>>,
    _lock: ProfileLock,
}

impl InProcessDaemon {
    /// Starts an agent in `home` whose state key comes from `passphrase`
    /// (no OS keyring is touched).
    pub async fn start(home: &Path, passphrase: &str) -> Result<InProcessDaemon, TestkitError> {
        let paths = home::paths(home)?;
        let p = paths.clone();
        let lock = tokio::task::spawn_blocking(move || {
            ensure_private_dir(&p.data_dir)?;
            ensure_private_dir(&p.runtime_dir)?;
            Ok::<_, TestkitError>(lifecycle::lock_profile(&p.lock, p.profile.as_str())?)
        })
        .await
        .map_err(|e| TestkitError::Open(e.to_string()))??;
        let listener = lifecycle::bind(&paths.socket)?;
        let passphrase = Some(Zeroizing::new(passphrase.to_owned()));
        let agent = Agent::new(StartOptions {
            profile: paths.profile.as_str().to_owned(),
            data_dir: paths.data_dir.clone(),
            state_file: paths.state_file.clone(),
            passphrase: passphrase.clone(),
            use_ca: false,
            keyring: Arc::new(OsKeyring),
            test_disk_full: false,
            test_search_delay: std::time::Duration::ZERO,
            node_timeout: quicproquo_protocol::client::DEFAULT_IDLE_TIMEOUT,
        });
        agent
            .open(passphrase)
            .await
            .map_err(|e| TestkitError::Open(e.to_string()))?;
        let serve = tokio::spawn(ipc_server::serve(listener, Arc::clone(&agent)));
        Ok(InProcessDaemon {
            paths,
            agent,
            serve: Some(serve),
            _lock: lock,
        })
    }

    /// The agent itself, for tests that look inside (e.g. its core-thread
    /// trip counter) or call it directly.
    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    /// A new client of this agent.
    pub async fn client(&self) -> Result<IpcClient, TestkitError> {
        Ok(IpcClient::connect(&self.paths).await?)
    }

    /// Stops serving and removes the socket.
    pub async fn stop(&mut self) {
        self.agent.request_shutdown();
        if let Some(serve) = self.serve.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
        }
        // Its background tasks finish their current step, as in qpqd.
        self.agent.stopped().await;
        let _ = std::fs::remove_file(&self.paths.socket);
    }
}
