//! Reaching this profile's qpqd: the paths, whether to start it, and the
//! connection. Starting is the shared IPC client's `connect_or_start`: a
//! cold start is waited for, and a file lock makes many qpq-ctl started at
//! once start one daemon.

use quicproquo_protocol::ipc::client::{ClientOptions, ConnectError, DaemonLauncher, IpcClient};
use quicproquo_protocol::paths::{Paths, Profile};

use crate::error::CtlError;

/// The `client` qpq-ctl says it is in `hello`.
pub const CLIENT_NAME: &str = "qpq-ctl";

pub struct Session {
    paths: Paths,
    autostart: bool,
    launcher: DaemonLauncher,
    options: ClientOptions,
}

impl Session {
    pub fn new(profile: Option<&Profile>, autostart: bool) -> Result<Session, CtlError> {
        let paths = Paths::resolve(profile.map(Profile::as_str))?;
        Ok(Session {
            paths,
            autostart,
            launcher: DaemonLauncher::qpqd(),
            options: ClientOptions::new(CLIENT_NAME),
        })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Connects, starting qpqd first when allowed and needed.
    pub async fn connect(&self) -> Result<IpcClient, CtlError> {
        if self.autostart {
            Ok(
                IpcClient::connect_or_start_with(&self.paths, &self.launcher, &self.options)
                    .await?,
            )
        } else {
            self.connect_running().await
        }
    }

    /// Connects to a running qpqd, never starting one.
    pub async fn connect_running(&self) -> Result<IpcClient, CtlError> {
        self.try_connect_running()
            .await?
            .ok_or_else(|| CtlError::NotRunning {
                profile: self.paths.profile.to_string(),
                socket: self.paths.socket.clone(),
            })
    }

    /// `None` when nothing answers on the socket.
    pub async fn try_connect_running(&self) -> Result<Option<IpcClient>, CtlError> {
        match IpcClient::connect_with(&self.paths, &self.options).await {
            Ok(c) => Ok(Some(c)),
            Err(ConnectError::NotRunning { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts qpqd when nobody answers, whatever `--no-autostart` says, and
    /// even if it was stopped on purpose (this is the explicit start).
    pub async fn start(&self) -> Result<IpcClient, CtlError> {
        let options = ClientOptions {
            start_stopped: true,
            ..self.options.clone()
        };
        Ok(IpcClient::connect_or_start_with(&self.paths, &self.launcher, &options).await?)
    }
}
