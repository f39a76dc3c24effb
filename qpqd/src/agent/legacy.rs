//! Groups made before the server validated groups (issue 14). The server
//! never registered them, and they are not migrated: registering one now
//! from a member's state would let a former member register a forged one.
//! The schema step of issue 14 marks every active conversation `legacy`;
//! once online, the daemon re-creates each one's group under a new id with
//! the same members (fresh key packages), keeps the conversation and its
//! history, and says so in it.
//!
//! One member re-creates — the one whose username sorts first — so that the
//! members do not build competing groups. The others attach the new group
//! to their legacy conversation when its Welcome comes from that member
//! with exactly the old group's members ([`adopt`]); any other Welcome is
//! an ordinary invitation.

use std::sync::Arc;

use quicproquo_protocol::types::Username;

use super::inbox::{notice, Stored};
use super::{Agent, AgentResult};
use crate::core::{Core, CoreError};
use crate::db::conversations::{self, Conversation, Kind};
use crate::mls::{GroupId, Joined, Member};

/// What the conversation says once its group was re-created.
const MOVED: &str = "this conversation moved to a new group, with the same members, \
     now that the server checks groups; the history stays";

/// The member who re-creates a legacy group: the first username.
fn recreator(members: &[Member]) -> Option<&Username> {
    members.iter().map(|m| &m.username).min()
}

/// A legacy conversation we re-create: its group's members but us.
struct Plan {
    conv: Conversation,
    old: GroupId,
    others: Vec<Member>,
}

/// Core operation: the legacy conversations that are ours to re-create.
/// One whose group we no longer hold (or were removed from) is legacy no
/// more: there is nothing to re-create.
fn plans(c: &mut Core) -> Result<Vec<Plan>, CoreError> {
    let mut out = Vec::new();
    for conv in conversations::legacy(c.db())? {
        let e = c.engine()?;
        let me = e.username().clone();
        let held = GroupId::from_slice(&conv.group_id)
            .and_then(|g| Some((g, e.members(g).ok()?)))
            .filter(|(g, _)| e.is_active(*g).unwrap_or(false));
        let Some((old, members)) = held else {
            conversations::clear_legacy(c.db(), conv.id)?;
            continue;
        };
        if recreator(&members) != Some(&me) {
            continue;
        }
        let others = members.into_iter().filter(|m| m.username != me).collect();
        out.push(Plan { conv, old, others });
    }
    Ok(out)
}

impl Agent {
    /// Re-creates the legacy groups that are ours to re-create; one that
    /// fails (a member without key packages, the network) stays legacy and
    /// is tried at the next connection.
    pub(crate) async fn recreate_legacy(self: &Arc<Self>) {
        let Ok(core) = self.core() else { return };
        let plans = match core.run(plans).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the groups to re-create");
                return;
            }
        };
        for plan in plans {
            let name = plan.conv.name.clone();
            if let Err(e) = self.recreate(plan).await {
                tracing::warn!(error = %e, conversation = %name, "re-creating a group failed; tried again later");
            }
        }
    }

    async fn recreate(&self, plan: Plan) -> AgentResult<()> {
        let Plan { conv, old, others } = plan;
        let users: Vec<String> = others.iter().map(|m| m.username.to_string()).collect();
        let (new, _) = self
            .create_with(conv.kind, conv.ciphersuite, &users)
            .await?;
        let stored = self
            .core()?
            .run(move |c| {
                c.atomically(|c| -> AgentResult<Stored> {
                    conversations::replace_group(c.db(), conv.id, new.as_bytes())?;
                    if let Err(e) = c.engine()?.forget(old) {
                        tracing::debug!(error = %e, "the legacy group's state stays");
                    }
                    let moved = Conversation {
                        group_id: new.as_bytes().to_vec(),
                        ..conv.clone()
                    };
                    if moved.kind == Kind::Group && !users.is_empty() {
                        super::commit::name_group(c, &moved)?;
                    }
                    Ok(notice(c, &moved, MOVED.into())?)
                })
            })
            .await?;
        self.publish(stored.events);
        self.outbox_kick.notify_one();
        Ok(())
    }
}

/// Core operation: a Welcome from the member who re-creates a legacy group
/// of ours, with exactly its members, becomes that conversation's group;
/// the legacy group's state goes. The conversation as it is now, or `None`
/// when the Welcome is no such re-creation.
pub(super) fn adopt(c: &mut Core, joined: &Joined) -> Result<Option<Stored>, CoreError> {
    let mut new_members = joined.members.clone();
    new_members.sort_by(|a, b| a.username.cmp(&b.username));
    for conv in conversations::legacy(c.db())? {
        let Some(old) = GroupId::from_slice(&conv.group_id) else {
            continue;
        };
        let Ok(mut members) = c.engine()?.members(old) else {
            continue;
        };
        members.sort_by(|a, b| a.username.cmp(&b.username));
        if members != new_members || recreator(&members) != Some(&joined.inviter.username) {
            continue;
        }
        conversations::replace_group(c.db(), conv.id, joined.group.as_bytes())?;
        if let Err(e) = c.engine()?.forget(old) {
            tracing::debug!(error = %e, "the legacy group's state stays");
        }
        let moved = Conversation {
            group_id: joined.group.as_bytes().to_vec(),
            ..conv
        };
        conversations::set_joined_epoch(c.db(), moved.id, joined.epoch.0)?;
        return Ok(Some(notice(c, &moved, MOVED.into())?));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quicproquo_protocol::types::IdentityKey;

    #[test]
    fn the_first_username_re_creates() {
        let m = |name: &str| Member {
            username: Username::parse(name).unwrap(),
            identity: IdentityKey([1; 32]),
        };
        let members = [m("carol"), m("alice"), m("bob")];
        assert_eq!(recreator(&members).unwrap().as_str(), "alice");
        assert_eq!(recreator(&[]), None);
    }
}
