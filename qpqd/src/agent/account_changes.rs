//! What a logged-in user changes about their own account: a new password
//! (`account.password`) and deleting the account (`account.delete`).
//!
//! The server accepts either only with proof of the current password: a
//! login this module starts for the account's own username and finishes on
//! our side, sent along with the change (schemas/node.capnp). A wrong
//! password is found here, before anything is sent, and reported as the
//! server would (E011).

use std::sync::atomic::Ordering;

use opaque_ke::errors::ProtocolError;
use opaque_ke::{ClientLogin, ClientRegistration};
use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::limits::{new_secret_problem, MIN_PASSWORD_CHARS};
use quicproquo_protocol::opaque::{login_finalization, registration_upload, Suite};
use quicproquo_protocol::types::LoginId;
use quicproquo_protocol::wire;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::{Agent, AgentError, AgentResult};
use crate::link::Link;

/// Runs an OPAQUE step that stretches the password (Argon2id) off the async
/// workers.
async fn stretching<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> AgentResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(AgentError::internal)
}

fn opaque_failure(e: ProtocolError) -> AgentError {
    match e {
        ProtocolError::InvalidLoginError => AgentError::Refused(WireError::new(
            ErrorCode::LoginFailed,
            "the current password is not right",
        )),
        other => AgentError::internal(format!("OPAQUE: {other}")),
    }
}

impl Agent {
    /// A login of our own account with `password`, finished on our side:
    /// what the server takes as proof of the password.
    async fn password_proof(
        &self,
        link: &Link,
        password: Zeroizing<String>,
    ) -> AgentResult<(LoginId, Vec<u8>)> {
        let me = self.me()?;
        let start =
            ClientLogin::<Suite>::start(&mut OsRng, password.as_bytes()).map_err(opaque_failure)?;
        let started = link
            .request(wire::OpaqueLoginStart {
                username: me.username,
                request: start.message.serialize().to_vec(),
            })
            .await?;
        let state = start.state;
        let finalization =
            stretching(move || login_finalization(state, password.as_bytes(), &started.response))
                .await?
                .map_err(opaque_failure)?;
        Ok((started.login_id, finalization))
    }

    /// Replaces the account's password. The server ends every other session
    /// of the account; this profile stays logged in.
    pub async fn change_password(
        &self,
        current: Zeroizing<String>,
        new: Zeroizing<String>,
    ) -> AgentResult<()> {
        if let Some(problem) = new_secret_problem("new password", &new, MIN_PASSWORD_CHARS) {
            return Err(AgentError::InvalidInput(problem));
        }
        let token = self.token()?;
        let link = self.online_link().await?;
        let (login_id, finalization) = self.password_proof(&link, current).await?;
        let start = ClientRegistration::<Suite>::start(&mut OsRng, new.as_bytes())
            .map_err(opaque_failure)?;
        let response = link
            .request(wire::ChangePasswordStart {
                auth: token.clone(),
                request: start.message.serialize().to_vec(),
            })
            .await?;
        let state = start.state;
        let upload = stretching(move || registration_upload(state, new.as_bytes(), &response))
            .await?
            .map_err(opaque_failure)?;
        link.request(wire::ChangePasswordFinish {
            auth: token,
            upload,
            login_id,
            finalization,
        })
        .await?;
        tracing::info!("password changed");
        Ok(())
    }

    /// Deletes the account on the server, then this profile: the daemon
    /// stops, and its data directory is removed once the state is closed.
    pub async fn delete_account(&self, password: Zeroizing<String>) -> AgentResult<()> {
        let token = self.token()?;
        let link = self.online_link().await?;
        let (login_id, finalization) = self.password_proof(&link, password).await?;
        link.request(wire::DeleteAccount {
            auth: token,
            login_id,
            finalization,
        })
        .await?;
        tracing::warn!("account deleted on the server; removing this profile and stopping");
        // The IPC server stops the daemon once the answer is written.
        self.profile_deleted.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// True once the account was deleted: the daemon's last act is removing
    /// the profile's data directory (and it leaves no stopped-on-purpose
    /// mark: the profile is gone, not stopped).
    pub fn profile_deleted(&self) -> bool {
        self.profile_deleted.load(Ordering::SeqCst)
    }
}
