//! Consent: nobody puts the user into a group, or opens a DM with them,
//! without being asked — unless the `auto_accept` setting says that inviter
//! needs no asking (default: someone we already share a conversation with).
//!
//! An invitation keeps the Welcome unprocessed (its key package's private
//! keys stay) and the group's mail is held meanwhile (`db::invitations`).
//! Accepting processes the Welcome, then the held mail, in one transaction.
//! Declining is told to the group the only authenticated way there is:
//! we join, send a decline notice (`Payload::Declined`) and a request to be
//! removed, and forget the group; the Welcome and the key package's keys
//! are gone with it. The inviter's daemon shows the notice and commits the
//! removal.

use std::sync::Arc;

use quicproquo_protocol::ipc::notifications::{InvitationUpdate, Notification};
use quicproquo_protocol::ipc::values::{
    AutoAccept, Conversation as IpcConversation, ConversationKind, Invitation as IpcInvitation,
    InvitationId, InvitationState, Member as IpcMember,
};
use quicproquo_protocol::types::{IdempotencyKey, IdentityKey, Username};

use super::inbox::{enter, process_group, Stored};
use super::{emit, Agent, AgentError, AgentResult};
use crate::core::{Core, CoreError};
use crate::db::conversations::{self, Kind};
use crate::db::invitations::{self, Invitation};
use crate::db::{now_ms, Id};
use crate::mls::{GroupId, Joined};
use crate::payload::{ConversationInfo, Payload, MAX_DECLINE_REASON_CHARS};

impl Agent {
    /// Invitations waiting for the user, oldest first, each member with how
    /// far their key is trusted.
    pub async fn invites(&self) -> AgentResult<Vec<IpcInvitation>> {
        self.core()?
            .run(|c| -> AgentResult<_> {
                let mut out = Vec::new();
                for inv in invitations::pending(c.db())? {
                    out.push(ipc_invitation(c, &inv)?);
                }
                Ok(out)
            })
            .await
    }

    /// Joins the group of invitation `id`: the Welcome, then the mail that
    /// was held for it, in one transaction.
    pub async fn accept(self: &Arc<Self>, id: InvitationId) -> AgentResult<IpcConversation> {
        let (stored, conversation) = self
            .core()?
            .run(move |c| c.atomically(|c| accept(c, Id(id.0))))
            .await?;
        self.after_stored(stored);
        Ok(conversation)
    }

    /// Declines invitation `id`: tells the group why (a decline notice and a
    /// request to be removed, both signed by our leaf) and forgets the
    /// Welcome, its keys and the held mail. Needs the server: offline, the
    /// invitation stays.
    pub async fn decline(&self, id: InvitationId, reason: Option<String>) -> AgentResult<()> {
        let reason = reason.unwrap_or_default();
        if reason.chars().count() > MAX_DECLINE_REASON_CHARS {
            return Err(AgentError::InvalidInput(format!(
                "a decline reason is at most {MAX_DECLINE_REASON_CHARS} characters"
            )));
        }
        self.online_link().await?;
        let (group, notice, leave, ev) = self
            .core()?
            .run(move |c| c.atomically(|c| decline(c, Id(id.0), reason)))
            .await?;
        self.publish(vec![ev]);
        // Declined here whatever happens next; if the group cannot be told,
        // the inviter keeps a leaf nobody uses (its keys are gone).
        self.tell_group(group, [notice, leave]).await.map_err(|e| {
            AgentError::internal(format!("declined, but the group could not be told: {e}"))
        })
    }

    /// Sends `messages` to `group`, in order, each once.
    pub(super) async fn tell_group(
        &self,
        group: GroupId,
        messages: impl IntoIterator<Item = Vec<u8>>,
    ) -> AgentResult<()> {
        for bytes in messages {
            self.deliver_group(group, &bytes, IdempotencyKey(rand::random()), None, None)
                .await?;
        }
        Ok(())
    }

    /// Reads, or sets and returns, which invitations need no asking.
    pub async fn auto_accept(&self, mode: Option<AutoAccept>) -> AgentResult<AutoAccept> {
        self.core()?
            .run(move |c| -> AgentResult<_> {
                if let Some(mode) = mode {
                    invitations::set_auto_accept(c.db(), mode)?;
                }
                Ok(invitations::auto_accept(c.db())?)
            })
            .await
    }
}

/// Core operation: the invitation's Welcome and held mail processed, the
/// invitation gone, the conversation as it is now.
fn accept(c: &mut Core, id: Id) -> AgentResult<(Stored, IpcConversation)> {
    let inv = invitations::pending_by_id(c.db(), id)?
        .ok_or_else(|| AgentError::NotFound(format!("no pending invitation {id}")))?;
    let dropped = invitations::dropped(c.db(), &inv.group_id)?;
    let (mut stored, conv) = enter(c, &inv.welcome)?;
    let group = GroupId::from_slice(&inv.group_id)
        .ok_or_else(|| AgentError::internal("bad group id in invitations"))?;
    for bytes in invitations::take_held(c.db(), &inv.group_id)? {
        match c.savepoint(|c| process_group(c, group, &bytes)) {
            Ok(s) => stored.add(s),
            Err(e) => {
                tracing::warn!(error = %e, "a message held for an invitation could not be processed")
            }
        }
    }
    invitations::remove(c.db(), id)?;
    stored
        .events
        .push(update(c, &inv, InvitationState::Accepted, String::new())?);
    let conv = conv.ok_or_else(|| AgentError::internal("the joined group has no conversation"))?;
    // As the held mail left it (its name, sent after the add, is in it).
    let conv = conversations::by_id(c.db(), conv.id)?.unwrap_or(conv);
    if dropped > 0 {
        stored.add(super::inbox::notice(
            c,
            &conv,
            format!(
                "⚠ {dropped} message(s) sent here while the invitation waited were not kept \
                 (at most {} messages or {} MiB wait); later ones may not be readable",
                invitations::MAX_HELD_MESSAGES,
                invitations::MAX_HELD_BYTES / (1024 * 1024)
            ),
        )?);
    }
    Ok((stored, super::history::view(c, &conv)?))
}

/// What declining sends, to whom, and the notification that says it.
type Declined = (
    GroupId,
    Vec<u8>,
    Vec<u8>,
    quicproquo_protocol::ipc::Notification,
);

/// Core operation: joins only to say no — the decline notice and the leave
/// proposal — then forgets the group.
fn decline(c: &mut Core, id: Id, reason: String) -> AgentResult<Declined> {
    let inv = invitations::pending_by_id(c.db(), id)?
        .ok_or_else(|| AgentError::NotFound(format!("no pending invitation {id}")))?;
    let (group, notice, leave) = say_no(c, &inv.welcome, &reason)?;
    invitations::mark_declined(c.db(), id)?;
    let ev = update(c, &inv, InvitationState::Declined, reason)?;
    Ok((group, notice, leave, ev))
}

/// Core operation: joins the group of `welcome` only to leave it, and
/// forgets it; returns the decline notice with `reason` (cut to what a
/// notice carries) and the leave proposal, for the caller to send to the
/// group. Nothing of the group stays.
pub(super) fn say_no(
    c: &mut Core,
    welcome: &[u8],
    reason: &str,
) -> Result<(GroupId, Vec<u8>, Vec<u8>), CoreError> {
    let reason: String = reason.chars().take(MAX_DECLINE_REASON_CHARS).collect();
    let e = c.engine()?;
    let group = e.join(welcome)?.group;
    let notice = e.encrypt(group, &Payload::Declined { reason }.encode())?;
    let leave = e.leave(group)?;
    e.forget(group)?;
    Ok((group, notice, leave))
}

/// Whether the `auto_accept` setting lets us join without asking.
pub(super) fn accepted_without_asking(c: &mut Core, invited: &Joined) -> Result<bool, CoreError> {
    let inviter = &invited.inviter;
    Ok(match invitations::auto_accept(c.db())? {
        AutoAccept::Everyone => true,
        AutoAccept::None => false,
        AutoAccept::Verified => {
            let k = conversations::contact(c.db(), inviter.username.as_str())?;
            conversations::trust(k.as_ref(), &inviter.identity.0).0
        }
        AutoAccept::Contacts => shares_a_conversation(c, inviter)?,
    })
}

/// Whether `member` (that name with that key) is in a conversation we are
/// in.
fn shares_a_conversation(c: &mut Core, member: &crate::mls::Member) -> Result<bool, CoreError> {
    for conv in conversations::all(c.db())? {
        let Some(g) = GroupId::from_slice(&conv.group_id).filter(|_| conv.active) else {
            continue;
        };
        if let Ok(members) = c.engine()?.members(g) {
            if members.contains(member) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Keeps a Welcome as an invitation and tells the front-ends.
pub(super) fn hold_invitation(
    c: &Core,
    welcome: &[u8],
    invited: &Joined,
) -> Result<Stored, CoreError> {
    let me = our_name(c)?;
    let is_dm = matches!(
        invited.info.as_deref().map(ConversationInfo::decode),
        Some(Ok(ConversationInfo::Dm))
    ) && invited.members.len() == 2;
    let inv = Invitation {
        id: Id::random(),
        group_id: invited.group.as_bytes().to_vec(),
        welcome: welcome.to_vec(),
        inviter: invited.inviter.username.to_string(),
        inviter_key: invited.inviter.identity.0,
        name: invitation_name(invited, &me),
        kind: if is_dm { Kind::Dm } else { Kind::Group },
        members: invited
            .members
            .iter()
            .map(|m| (m.username.to_string(), m.identity.0))
            .collect(),
        received_ms: now_ms(),
    };
    if invitations::state_of_group(c.db(), &inv.group_id)?.is_some() {
        return Ok(Stored::default());
    }
    if invitations::pending_count(c.db())? >= invitations::MAX_PENDING {
        tracing::warn!(inviter = %inv.inviter, "too many invitations waiting; refused one");
        return Ok(Stored {
            events: vec![update(
                c,
                &inv,
                InvitationState::Refused,
                format!(
                    "{} invitations are already waiting: accept or decline some first",
                    invitations::MAX_PENDING
                ),
            )?],
            ..Stored::default()
        });
    }
    if !invitations::insert(c.db(), &inv)? {
        return Ok(Stored::default());
    }
    tracing::info!(inviter = %inv.inviter, "an invitation waits for the user");
    Ok(Stored {
        events: vec![update(c, &inv, InvitationState::Pending, String::new())?],
        ..Stored::default()
    })
}

/// What an invitation (for `me`) calls its conversation, bounded like a
/// joined one.
pub(super) fn invitation_name(invited: &Joined, me: &Username) -> String {
    match invited.info.as_deref().map(ConversationInfo::decode) {
        Some(Ok(ConversationInfo::Group { name: Some(name) })) => name,
        Some(Ok(ConversationInfo::Dm)) => format!("@{}", invited.inviter.username),
        _ => placeholder_name(invited, me),
    }
}

/// Our username (the account the core holds).
pub(super) fn our_name(c: &Core) -> Result<Username, CoreError> {
    Ok(c.engine_ref()
        .ok_or(CoreError::NoAccount)?
        .username()
        .clone())
}

/// Members named in a placeholder before "and N more".
const PLACEHOLDER_MEMBERS: usize = 3;

/// What a group `me` joined is called until its name arrives (the adder
/// sends it encrypted right after the add): "group with alice, bob", the
/// inviter first.
pub(super) fn placeholder_name(invited: &Joined, me: &Username) -> String {
    let mut names: Vec<&str> = vec![invited.inviter.username.as_str()];
    names.extend(
        invited
            .members
            .iter()
            .filter(|m| &m.username != me && m.username != invited.inviter.username)
            .map(|m| m.username.as_str()),
    );
    let more = names.len().saturating_sub(PLACEHOLDER_MEMBERS);
    names.truncate(PLACEHOLDER_MEMBERS);
    if more > 0 {
        format!("group with {} and {more} more", names.join(", "))
    } else {
        format!("group with {}", names.join(", "))
    }
}

fn update(
    c: &Core,
    inv: &Invitation,
    state: InvitationState,
    reason: String,
) -> rusqlite::Result<Notification> {
    emit(c, |seq| {
        Notification::Invitation(InvitationUpdate {
            seq,
            // A refused invitation was never kept: nothing to answer.
            id: (state != InvitationState::Refused).then_some(InvitationId(inv.id.0)),
            from: inv.inviter.clone(),
            name: inv.name.clone(),
            state,
            reason,
        })
    })
}

fn ipc_invitation(c: &Core, inv: &Invitation) -> rusqlite::Result<IpcInvitation> {
    let mut members = Vec::with_capacity(inv.members.len());
    for (name, key) in &inv.members {
        let k = conversations::contact(c.db(), name)?;
        let (verified, key_changed) = conversations::trust(k.as_ref(), key);
        members.push(IpcMember {
            username: name.clone(),
            identity: IdentityKey(*key),
            verified,
            key_changed,
            deleted: conversations::is_deleted(c.db(), name)?,
        });
    }
    Ok(IpcInvitation {
        id: InvitationId(inv.id.0),
        from: inv.inviter.clone(),
        name: inv.name.clone(),
        kind: match inv.kind {
            Kind::Dm => ConversationKind::Dm,
            Kind::Group => ConversationKind::Group,
        },
        members,
        received_ms: inv.received_ms,
    })
}
