//! The agent's side of the state's integrity ([`crate::integrity`] says
//! what is checked and why):
//!
//! - after a received batch is stored and before it is acknowledged, the
//!   counter file is advanced ([`Agent::seal_state`]; one `fdatasync`, no
//!   core trip). If that fails the batch is not acknowledged: the server
//!   keeps it and redelivers it, and the redelivery is recognised.
//! - while a finding from the open stands, the daemon stays offline: it
//!   neither receives (the state is behind what the server believes we
//!   have; mail keeps on the server, and the evidence stays as found until
//!   the user has seen it) nor sends (messages queue in the outbox, calls
//!   that need the server fail with the finding). `status` reports it.
//! - `integrity.acknowledge` ([`Agent::integrity_acknowledge`]) connects
//!   and receives again, re-keys every conversation's group (a self-update
//!   commit each: keys the lost state may have used again are retired),
//!   resets the counter file, and only then starts the outbox.

use std::sync::Arc;

use quicproquo_protocol::ipc::methods::{IntegrityAckResult, RekeyFailure};
use quicproquo_protocol::ipc::values::{ConversationId, ConversationRef, IntegrityState};

use super::{Agent, AgentError, AgentResult};
use crate::db::{account, conversations};
use crate::integrity::{Alarm, Finding};

/// The IPC word for an alarm.
pub(crate) fn integrity_state(finding: Option<&Finding>) -> IntegrityState {
    match finding.map(|f| f.alarm) {
        None => IntegrityState::Ok,
        Some(Alarm::Corrupt) => IntegrityState::Corrupt,
        Some(Alarm::Rollback) => IntegrityState::Rollback,
        Some(Alarm::CounterInvalid) => IntegrityState::CounterInvalid,
        Some(Alarm::CounterMissing) => IntegrityState::CounterMissing,
    }
}

/// What a call that needs the server answers while a finding stands.
pub(crate) fn held(f: &Finding) -> AgentError {
    AgentError::NetworkDown(format!(
        "the daemon holds its connection: {} (`integrity` in `status`)",
        f.detail
    ))
}

impl Agent {
    /// The finding of the checks at open, until it is acknowledged.
    pub(crate) fn integrity_finding(&self) -> Option<Finding> {
        self.opened().ok().and_then(|o| o.guard.finding())
    }

    /// Records the state's latest commit in the counter file. Call after
    /// a commit and before the server sees its effect (an `ack`).
    pub(crate) async fn seal_state(&self) -> AgentResult<()> {
        let guard = Arc::clone(&self.opened()?.guard);
        tokio::task::spawn_blocking(move || guard.seal())
            .await
            .map_err(AgentError::internal)?
            .map_err(|e| AgentError::internal(format!("the state's counter file: {e}")))
    }

    /// The user has seen the finding: connect, re-key every group, reset
    /// the counter file, then send again.
    pub async fn integrity_acknowledge(self: &Arc<Self>) -> AgentResult<IntegrityAckResult> {
        let opened = self.opened()?;
        let Some(_one_at_a_time) = opened.guard.begin_acknowledgement() else {
            return Err(AgentError::Conflict(
                "an acknowledgement is already under way (re-keying every group)".into(),
            ));
        };
        let Some(finding) = opened.guard.finding() else {
            return Ok(IntegrityAckResult::default());
        };
        let mut result = IntegrityAckResult::default();
        if let Some(me) = &opened.me {
            if me.token.is_none() {
                return Err(AgentError::NotLoggedIn(
                    "log in first: acknowledging re-keys every group, which needs the server"
                        .into(),
                ));
            }
            let acct = self
                .core()?
                .run(|c| account::get(c.db()))
                .await?
                .ok_or_else(|| AgentError::internal("the account disappeared"))?;
            self.start_link(&acct, false)?;
            self.online_link().await?;
            let convs = self.core()?.run(|c| conversations::all(c.db())).await?;
            for conv in convs.into_iter().filter(|c| c.active) {
                let r = ConversationRef::Id(ConversationId(conv.id.0));
                match self.group_rekey(&r).await {
                    Ok(_) => result.rekeyed.push(conv.name),
                    Err(e) => {
                        tracing::warn!(conversation = %conv.name, error = %e, "re-keying after the integrity alarm failed");
                        result.failed.push(RekeyFailure {
                            conversation: conv.name,
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        let guard = Arc::clone(&opened.guard);
        tokio::task::spawn_blocking(move || guard.reset())
            .await
            .map_err(AgentError::internal)?
            .map_err(|e| AgentError::internal(format!("the state's counter file: {e}")))?;
        tracing::warn!(alarm = ?finding.alarm, rekeyed = result.rekeyed.len(), failed = result.failed.len(), "integrity alarm acknowledged; sending resumes");
        if let Ok(link) = self.link() {
            let me = Arc::clone(self);
            self.spawn(async move { me.outbox_loop(link).await });
            self.outbox_kick.notify_one();
        }
        Ok(result)
    }
}
