//! DMs and groups: creating them, changing membership, re-keying, leaving.
//!
//! Every commit follows the same path ([`Agent::commit`]): build it, have the
//! server accept it with the next epoch's GroupInfo and its Welcome in one
//! `enqueueGroup` (the server validates it and orders commits per group
//! epoch), then merge it. A new group is registered with the server before
//! its first commit. A commit refused as stale (E033) is discarded,
//! the winning commit is processed as it arrives, and the change is built
//! again on the new epoch — without the user doing anything.

use std::sync::Arc;
use std::time::Duration;

use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::ipc::methods::GroupCreateParams;
use quicproquo_protocol::ipc::notifications::{MembershipChange, Notification};
use quicproquo_protocol::ipc::values::{
    Conversation as IpcConversation, ConversationRef, MembershipEvent,
};
use quicproquo_protocol::types::{IdempotencyKey, IdentityKey, Username};
use quicproquo_protocol::wire::{self, UserRef};

use super::history::{conv_id, new_conversation, view};
use super::{emit, Agent, AgentError, AgentResult};
use crate::core::{Core, CoreError};
use crate::db::conversations::{self, Conversation, Kind};
use crate::db::{now_ms, outbox, Id};
use crate::mls::{CommitSummary, GroupId, Member, Staged, Suite, Who};
use crate::payload::{check_group_name, ConversationInfo, Payload};

/// Attempts at a membership change that keeps losing the epoch race.
const COMMIT_ATTEMPTS: usize = 5;

fn idem() -> IdempotencyKey {
    IdempotencyKey(Id::random().0)
}

/// Most members a group may have: the server delivers one `enqueueGroup`
/// to at most `MAX_RECIPIENTS` others (its `limits.maxRecipients`).
pub const MAX_GROUP_MEMBERS: usize = quicproquo_protocol::limits::MAX_RECIPIENTS + 1;

/// Refuses to grow a group of `size` members by `adding` past
/// [`MAX_GROUP_MEMBERS`], before any key package is fetched.
fn check_group_size(size: usize, adding: usize) -> AgentResult<()> {
    if size.saturating_add(adding) > MAX_GROUP_MEMBERS {
        return Err(AgentError::InvalidInput(format!(
            "a group has at most {MAX_GROUP_MEMBERS} members; this one has {size} and {adding} would be added"
        )));
    }
    Ok(())
}

impl Agent {
    /// Builds a commit with `build`, has the server accept it (with its
    /// Welcome, if it adds anyone) and merges it; retries on a lost epoch
    /// race.
    pub(crate) async fn commit(
        &self,
        group: GroupId,
        build: impl Fn(&mut Core) -> Result<Staged, CoreError> + Send + Sync + Clone + 'static,
    ) -> AgentResult<CommitSummary> {
        let lock = self.group_lock(&group);
        for attempt in 1..=COMMIT_ATTEMPTS {
            let guard = lock.lock().await;
            let b = build.clone();
            let staged = self.core()?.run(move |c| b(c)).await?;
            // Commit, next GroupInfo and Welcome in one request: the server
            // accepts all three or none, so there is no Welcome to deliver
            // after a merge that a crash could lose.
            let outcome = self
                .deliver_group(
                    group,
                    &staged.commit,
                    idem(),
                    Some(staged.group_info.clone()),
                    staged.welcome.as_deref(),
                )
                .await;
            match outcome {
                Ok(_) => {
                    let summary = self
                        .core()?
                        .run(move |c| c.engine()?.merge_pending(group).map_err(CoreError::from))
                        .await?;
                    drop(guard);
                    return Ok(summary);
                }
                Err(AgentError::Refused(w)) if w.code == ErrorCode::StaleCommit => {
                    self.core()?
                        .run(move |c| c.engine()?.clear_pending(group).map_err(CoreError::from))
                        .await?;
                    drop(guard);
                    tracing::info!(attempt, group = %group.to_hex(), "commit lost the epoch race; re-basing");
                    self.wait_for_epoch_after(group, staged.epoch).await;
                }
                Err(e) => {
                    let _ = self
                        .core()?
                        .run(move |c| c.engine()?.clear_pending(group).map_err(CoreError::from))
                        .await;
                    return Err(e);
                }
            }
        }
        Err(AgentError::Contended(
            "the group kept changing; the change was not made, try again".into(),
        ))
    }

    /// Waits (bounded) until the receive loop has processed a commit past
    /// `epoch` in `group`.
    async fn wait_for_epoch_after(&self, group: GroupId, epoch: crate::mls::Epoch) {
        let Ok(core) = self.core() else { return };
        for _ in 0..100 {
            let now = core
                .run(move |c| c.engine().ok().and_then(|e| e.epoch(group).ok()))
                .await;
            if now.is_some_and(|e| e > epoch) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fetches one key package per user (pinning their identity keys).
    async fn key_packages(
        &self,
        users: &[String],
        suite: Suite,
    ) -> AgentResult<Vec<(Username, IdentityKey, Vec<u8>)>> {
        let mut out = Vec::new();
        let me = self.me()?.username;
        for name in users {
            if name == me.as_str() {
                return Err(AgentError::InvalidInput("you are already a member".into()));
            }
            let (u, k) = self.resolve_contact(name).await?;
            let link = self.online_link().await?;
            let kp = link
                .request(wire::FetchKeyPackage {
                    auth: self.token()?,
                    target: UserRef::Identity(k),
                    suite: suite.code(),
                })
                .await?;
            out.push((u, k, kp.key_package));
        }
        Ok(out)
    }

    /// Adds the owners of `kps` to `group` (commit, merge, Welcome).
    async fn add_to(
        &self,
        group: GroupId,
        kps: Vec<(Username, IdentityKey, Vec<u8>)>,
    ) -> AgentResult<CommitSummary> {
        let packages: Vec<(Member, Vec<u8>)> = kps
            .into_iter()
            .map(|(username, identity, kp)| (Member { username, identity }, kp))
            .collect();
        self.commit(group, move |c| {
            c.engine()?
                .add_members_of(group, &packages)
                .map_err(CoreError::from)
        })
        .await
    }

    async fn create(
        &self,
        kind: Kind,
        name: String,
        peer: Option<String>,
        members: &[String],
        suite: Suite,
    ) -> AgentResult<IpcConversation> {
        let (group, added) = self.create_with(kind, suite, members).await?;
        let conv = new_conversation(kind, name, group, peer, suite);
        let (view, ev) = self
            .core()?
            .run(move |c| {
                c.atomically(|c| -> AgentResult<_> {
                    let existing = match &conv.peer {
                        Some(peer) => conversations::dm_with(c.db(), peer)?,
                        None => None,
                    };
                    let stored = match existing {
                        // Their Welcome for the same DM arrived while we
                        // built ours: one conversation, two groups.
                        Some(dm) => conversations::merge_dm_group(c.db(), &dm, &conv.group_id)?,
                        None => {
                            conversations::insert(c.db(), &conv, now_ms())?;
                            conv.clone()
                        }
                    };
                    let ev = emit(c, |seq| {
                        Notification::Membership(MembershipChange {
                            seq,
                            conversation: conv_id(stored.id),
                            event: MembershipEvent::Added,
                            members: added.clone(),
                            by: c
                                .engine_ref()
                                .map(|e| e.username().to_string())
                                .unwrap_or_default(),
                        })
                    })?;
                    if stored.kind == Kind::Group {
                        name_group(c, &stored)?;
                    }
                    Ok((view(c, &stored)?, ev))
                })
            })
            .await?;
        self.publish(vec![ev]);
        self.outbox_kick.notify_one();
        Ok(view)
    }

    /// A registered group of `kind` with `members` added (one commit; none
    /// for no members); the group is forgotten if that fails. Returns the
    /// group and the usernames added.
    pub(super) async fn create_with(
        &self,
        kind: Kind,
        suite: Suite,
        members: &[String],
    ) -> AgentResult<(GroupId, Vec<String>)> {
        check_group_size(1, members.len())?;
        let kps = self.key_packages(members, suite).await?;
        let group = self.create_group(kind, suite).await?;
        if kps.is_empty() {
            return Ok((group, Vec::new()));
        }
        match self.add_to(group, kps).await {
            Ok(summary) => Ok((
                group,
                summary
                    .added
                    .iter()
                    .map(|m| m.username.to_string())
                    .collect(),
            )),
            Err(e) => {
                let _ = self
                    .core()?
                    .run(move |c| c.engine()?.forget(group).map_err(CoreError::from))
                    .await;
                Err(e)
            }
        }
    }

    /// An MLS group with only us in it, whose group context tells every
    /// member who joins later what the conversation is, registered with the
    /// server (which refuses any message to a group it does not know). A
    /// group the server refuses is forgotten.
    async fn create_group(&self, kind: Kind, suite: Suite) -> AgentResult<GroupId> {
        let info = match kind {
            Kind::Dm => ConversationInfo::Dm,
            // The name is sent encrypted after each add (`name_group`):
            // the group context is public.
            Kind::Group => ConversationInfo::Group { name: None },
        }
        .encode();
        let link = self.online_link().await?;
        let removal_key = link.removal_key();
        let (group, group_info) = self
            .core()?
            .run(move |c| {
                let e = c.engine()?;
                let group = e.create_group_with_info(suite, Some(&info), &removal_key)?;
                Ok::<_, CoreError>((group, e.group_info(group)?))
            })
            .await?;
        let registered = link
            .request(wire::RegisterGroup {
                auth: self.token()?,
                group_info,
            })
            .await;
        if let Err(e) = registered {
            let _ = self
                .core()?
                .run(move |c| c.engine()?.forget(group).map_err(CoreError::from))
                .await;
            return Err(e.into());
        }
        Ok(group)
    }

    pub async fn dm_open(&self, user: &str) -> AgentResult<IpcConversation> {
        let name = user.trim_start_matches('@').to_string();
        let key = name.clone();
        let existing = self
            .core()?
            .run(move |c| -> AgentResult<_> {
                match conversations::dm_with(c.db(), &key)? {
                    Some(conv) => Ok(Some(view(c, &conv)?)),
                    None => Ok(None),
                }
            })
            .await?;
        if let Some(v) = existing {
            return Ok(v);
        }
        self.create(
            Kind::Dm,
            format!("@{name}"),
            Some(name.clone()),
            &[name],
            Suite::Hybrid,
        )
        .await
    }

    pub async fn group_create(&self, p: GroupCreateParams) -> AgentResult<IpcConversation> {
        check_group_name(&p.name).map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        let suite = p.ciphersuite;
        if p.members.is_empty() {
            let group = self.create_group(Kind::Group, suite).await?;
            let conv = new_conversation(Kind::Group, p.name, group, None, suite);
            return self
                .core()?
                .run(move |c| -> AgentResult<_> {
                    conversations::insert(c.db(), &conv, now_ms())?;
                    view(c, &conv)
                })
                .await;
        }
        self.create(Kind::Group, p.name, None, &p.members, suite)
            .await
    }

    /// A group (not a DM) whose membership `what` changes.
    async fn group_only(
        &self,
        r: &ConversationRef,
        what: &str,
    ) -> AgentResult<(Conversation, GroupId)> {
        let (conv, group) = self.group_of(r).await?;
        if conv.kind == Kind::Dm {
            return Err(AgentError::InvalidInput(format!(
                "a DM has exactly two members: {what} works on groups"
            )));
        }
        Ok((conv, group))
    }

    async fn group_of(&self, r: &ConversationRef) -> AgentResult<(Conversation, GroupId)> {
        let r = r.clone();
        let conv = self
            .core()?
            .run(move |c| super::history::find_active(c, &r))
            .await?;
        let g = GroupId::from_slice(&conv.group_id)
            .ok_or_else(|| AgentError::internal("bad group id"))?;
        Ok((conv, g))
    }

    async fn membership(
        &self,
        conv: &Conversation,
        event: MembershipEvent,
        members: Vec<String>,
    ) -> AgentResult<IpcConversation> {
        let conv = conv.clone();
        let (view, ev) = self
            .core()?
            .run(move |c| -> AgentResult<_> {
                let by = c
                    .engine_ref()
                    .map(|e| e.username().to_string())
                    .unwrap_or_default();
                let ev = emit(c, |seq| {
                    Notification::Membership(MembershipChange {
                        seq,
                        conversation: conv_id(conv.id),
                        event,
                        members: members.clone(),
                        by,
                    })
                })?;
                conversations::touch(c.db(), conv.id, now_ms())?;
                Ok((view(c, &conv)?, ev))
            })
            .await?;
        self.publish(vec![ev]);
        Ok(view)
    }

    pub async fn group_add(
        &self,
        r: &ConversationRef,
        members: &[String],
    ) -> AgentResult<IpcConversation> {
        let (conv, group) = self.group_only(r, "adding members").await?;
        let (suite, size) = self
            .core()?
            .run(move |c| {
                let e = c.engine()?;
                Ok::<_, CoreError>((e.suite(group)?, e.members(group)?.len()))
            })
            .await?;
        check_group_size(size, members.len())?;
        let kps = self.key_packages(members, suite).await?;
        let summary = self.add_to(group, kps).await?;
        let named = conv.clone();
        self.core()?.run(move |c| name_group(c, &named)).await?;
        self.outbox_kick.notify_one();
        let added = summary
            .added
            .iter()
            .map(|m| m.username.to_string())
            .collect();
        let view = self
            .membership(&conv, MembershipEvent::Added, added)
            .await?;
        Ok(view)
    }

    pub async fn group_remove(
        &self,
        r: &ConversationRef,
        members: &[String],
    ) -> AgentResult<IpcConversation> {
        let (conv, group) = self.group_only(r, "removing members").await?;
        let mut who = Vec::new();
        for m in members {
            who.push(Who::Username(
                Username::parse(m).map_err(|e| AgentError::InvalidInput(e.to_string()))?,
            ));
        }
        let current = self.others(group).await?;
        for w in &who {
            if let Who::Username(u) = w {
                if !current.iter().any(|r| &r.username == u) {
                    return Err(AgentError::NotFound(format!("`{u}` is not a member")));
                }
            }
        }
        let summary = self
            .commit(group, move |c| {
                c.engine()?
                    .remove_members(group, &who)
                    .map_err(CoreError::from)
            })
            .await?;
        let removed = summary
            .removed
            .iter()
            .map(|m| m.username.to_string())
            .collect();
        self.membership(&conv, MembershipEvent::Removed, removed)
            .await
    }

    pub async fn group_rekey(&self, r: &ConversationRef) -> AgentResult<u64> {
        let (conv, group) = self.group_of(r).await?;
        self.commit(group, move |c| {
            c.engine()?.self_update(group).map_err(CoreError::from)
        })
        .await?;
        let me = self.me()?.username.to_string();
        self.membership(&conv, MembershipEvent::Rekeyed, vec![me])
            .await?;
        let epoch = self
            .core()?
            .run(move |c| c.engine()?.epoch(group).map_err(CoreError::from))
            .await?;
        Ok(epoch.0)
    }

    pub async fn group_leave(&self, r: &ConversationRef) -> AgentResult<()> {
        let (conv, group) = self.group_of(r).await?;
        let proposal = self
            .core()?
            .run(move |c| c.engine()?.leave(group).map_err(CoreError::from))
            .await?;
        self.deliver_group(group, &proposal, idem(), None, None)
            .await?;
        let id = conv.id;
        self.core()?
            .run(move |c| conversations::set_active(c.db(), id, false))
            .await?;
        let me = self.me()?.username.to_string();
        self.membership(&conv, MembershipEvent::Left, vec![me])
            .await?;
        Ok(())
    }

    /// Keeps the arc alive for spawned work.
    pub(crate) fn spawn_self_update(self: &Arc<Self>, group: GroupId) {
        let me = self.clone();
        self.spawn(async move {
            // A joiner's leaf keys come from a published key package: replace
            // them soon (which also keeps later commits small).
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(e) = me
                .commit(group, move |c| {
                    c.engine()?.self_update(group).map_err(CoreError::from)
                })
                .await
            {
                tracing::debug!(error = %e, "post-join self-update deferred");
            }
        });
    }

    /// Commits proposals others sent (e.g. a member leaving).
    pub(crate) fn spawn_commit_proposals(self: &Arc<Self>, group: GroupId) {
        let me = self.clone();
        self.spawn(async move {
            if let Err(e) = me
                .commit(group, move |c| {
                    c.engine()?
                        .commit_pending_proposals(group)
                        .map_err(CoreError::from)
                })
                .await
            {
                tracing::debug!(error = %e, "committing proposals deferred");
            }
        });
    }
}

/// Core operation: queues the group's name for its members (after an add,
/// so that the new ones learn it; the others already have it and ignore
/// it). Like a receipt it has no message of its own: a refusal drops it.
pub(super) fn name_group(c: &mut Core, conv: &Conversation) -> AgentResult<()> {
    let body = Payload::GroupName {
        name: conv.name.clone(),
    }
    .encode();
    outbox::push(c.db(), conv.id, &body, None, now_ms())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_stop_at_what_one_enqueue_can_reach() {
        assert!(check_group_size(1, MAX_GROUP_MEMBERS - 1).is_ok());
        assert!(check_group_size(MAX_GROUP_MEMBERS - 1, 1).is_ok());
        let e = check_group_size(MAX_GROUP_MEMBERS, 1).unwrap_err();
        assert!(
            matches!(&e, AgentError::InvalidInput(m) if m.contains("at most 1025 members")),
            "{e}"
        );
        assert!(check_group_size(1, usize::MAX).is_err());
    }
}
