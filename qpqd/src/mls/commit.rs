//! Changing a group: add, remove, self-update, leave, committing queued
//! proposals, and the pending-commit protocol with the server.
//!
//! A commit we create is *staged*: openmls holds it as the group's pending
//! commit and the group stays in its epoch. The server accepts at most one
//! commit per epoch; on acceptance the daemon calls `merge_pending`, on
//! refusal `clear_pending` and then rebuilds the commit on top of the epoch
//! that won. Merging before acceptance would fork the group.
//!
//! Every commit also covers the proposals queued in the group (openmls'
//! `CommitBuilder` consumes the proposal store by default), so a member's
//! leave proposal is committed by whichever member commits next.

use std::collections::HashSet;

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    AddMembersError, CommitToPendingProposalsError, KeyPackage, LeafNodeIndex, LeafNodeParameters,
    LeaveGroupError, MergePendingCommitError, MlsGroup, MlsMessageBodyIn, MlsMessageIn,
    MlsMessageOut, Proposal, ProtocolVersion, RemoveMembersError, SelfUpdateError, Sender,
};
use openmls_traits::OpenMlsProvider;

use quicproquo_protocol::types::Epoch;

use super::errors::{op_error, state_error, MlsError};
use super::group::{GroupId, Who};
use super::history::{self, Snapshot};
use super::identity::{Identity, Member};
use super::provider::Provider;
use super::MlsEngine;

/// A commit waiting for the server's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub group: GroupId,
    /// The epoch the commit is for (the group's current epoch); the group
    /// moves to `epoch + 1` when it is merged. The server orders by this.
    pub epoch: Epoch,
    /// Serialized `MLSMessage` for every current member.
    pub commit: Vec<u8>,
    /// Serialized `MLSMessage` Welcome for the members being added; deliver it
    /// only after the commit was accepted and merged.
    pub welcome: Option<Vec<u8>>,
    /// Serialized `MLSMessage` GroupInfo of the epoch the commit creates,
    /// ratchet tree extension included: the server checks the commit
    /// against it and hands it to whoever joins next.
    pub group_info: Vec<u8>,
}

/// What a commit-building closure gives [`MlsEngine::stage`]: the commit,
/// its Welcome, and the GroupInfo of the next epoch.
type Built = (MlsMessageOut, Option<MlsMessageOut>, Option<MlsMessageOut>);

/// What a merged commit changed, ours or another member's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    pub group: GroupId,
    /// The epoch the commit started.
    pub epoch: Epoch,
    pub committer: Member,
    pub added: Vec<Member>,
    pub removed: Vec<Member>,
    /// Members who kept their leaf with fresh keys (the committer, whenever
    /// the commit carried a path, and senders of update proposals).
    pub updated: Vec<Member>,
    /// The commit removed us: the group is now inactive.
    pub we_were_removed: bool,
    /// We had a pending commit of our own for the same epoch; it lost and
    /// was discarded (the server will refuse it; rebuild it if still wanted).
    pub dropped_own_commit: bool,
}

fn to_bytes(m: &MlsMessageOut) -> Result<Vec<u8>, MlsError> {
    m.to_bytes().map_err(|e| MlsError::Internal(e.to_string()))
}

fn parse_key_package(p: &Provider<'_>, bytes: &[u8]) -> Result<KeyPackage, MlsError> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| MlsError::InvalidKeyPackage(e.to_string()))?;
    let MlsMessageBodyIn::KeyPackage(kp) = msg.extract() else {
        return Err(MlsError::InvalidKeyPackage(
            "not an MLSMessage holding a KeyPackage".into(),
        ));
    };
    kp.validate(p.crypto(), ProtocolVersion::Mls10)
        .map_err(|e| MlsError::InvalidKeyPackage(e.to_string()))
}

/// The rules a commit from another member must keep, checked on the state
/// it produced: a leaf changes hands only through a Remove in the same commit
/// (nobody renames themselves or swaps in another identity key in place), and
/// no username appears twice.
pub(crate) fn check_transition(
    before: &Snapshot,
    after: &Snapshot,
    vacated: &[u32],
) -> Result<(), MlsError> {
    for (i, new) in after {
        if let Some(old) = before.get(i) {
            if old.member != new.member && !vacated.contains(i) {
                return Err(MlsError::Rejected(format!(
                    "commit turns {} into {} without removing them",
                    old.member, new.member
                )));
            }
        }
    }
    let mut seen = HashSet::new();
    for leaf in after.values() {
        if !seen.insert(&leaf.member.username) {
            return Err(MlsError::Rejected(format!(
                "commit puts {} in the group twice",
                leaf.member.username
            )));
        }
    }
    Ok(())
}

/// Builds the summary of a commit that was just merged into `g` (`after` is
/// its snapshot), and records the leaves it vacated.
#[allow(clippy::too_many_arguments)]
pub(crate) fn summarize(
    p: &Provider<'_>,
    g: &MlsGroup,
    group: GroupId,
    before: &Snapshot,
    after: Snapshot,
    committer: Member,
    we_were_removed: bool,
    dropped_own_commit: bool,
) -> Result<CommitSummary, MlsError> {
    let d = history::diff(before, &after);
    let epoch = Epoch(g.epoch().as_u64());
    history::record(p, group, epoch, &d.removed)?;
    let strip = |v: Vec<(u32, Member)>| v.into_iter().map(|(_, m)| m).collect();
    Ok(CommitSummary {
        group,
        epoch,
        committer,
        added: strip(d.added),
        removed: strip(d.removed),
        updated: strip(d.updated),
        we_were_removed,
        dropped_own_commit,
    })
}

impl MlsEngine {
    /// Loads an active group without a pending commit, lets `f` stage a
    /// commit on it, and serializes the result.
    fn stage(
        &mut self,
        group: GroupId,
        f: impl FnOnce(&mut MlsGroup, &Provider<'_>, &Identity) -> Result<Built, MlsError>,
    ) -> Result<Staged, MlsError> {
        self.with_group(group, |g, p, identity| {
            if !g.is_active() {
                return Err(MlsError::NotMember(group));
            }
            if g.pending_commit().is_some() {
                return Err(MlsError::PendingCommit(group));
            }
            let epoch = Epoch(g.epoch().as_u64());
            let (commit, welcome, group_info) = f(g, p, identity)?;
            // openmls exports it with every commit while the group uses the
            // ratchet tree extension, which all our groups do.
            let group_info = group_info.ok_or_else(|| {
                MlsError::Internal("the commit came without the next epoch's GroupInfo".into())
            })?;
            Ok(Staged {
                group,
                epoch,
                commit: to_bytes(&commit)?,
                welcome: welcome.as_ref().map(to_bytes).transpose()?,
                group_info: to_bytes(&group_info)?,
            })
        })
    }

    /// Stages a commit adding the owners of these key packages (each a
    /// serialized `MLSMessage` holding a `KeyPackage`, as fetched from the
    /// server). The Welcome carries the ratchet tree.
    pub fn add_members(
        &mut self,
        group: GroupId,
        key_packages: &[impl AsRef<[u8]>],
    ) -> Result<Staged, MlsError> {
        let kps: Vec<(Option<&Member>, &[u8])> =
            key_packages.iter().map(|k| (None, k.as_ref())).collect();
        self.add(group, &kps)
    }

    /// [`MlsEngine::add_members`] for key packages fetched for known users:
    /// each must belong to the user it was fetched for (username and
    /// identity key in its leaf), or nothing is added. Without this a server
    /// could hand out its own key package for anyone, and a user could
    /// publish packages naming someone else.
    pub fn add_members_of(
        &mut self,
        group: GroupId,
        key_packages: &[(Member, Vec<u8>)],
    ) -> Result<Staged, MlsError> {
        let kps: Vec<(Option<&Member>, &[u8])> = key_packages
            .iter()
            .map(|(m, k)| (Some(m), k.as_slice()))
            .collect();
        self.add(group, &kps)
    }

    fn add(
        &mut self,
        group: GroupId,
        key_packages: &[(Option<&Member>, &[u8])],
    ) -> Result<Staged, MlsError> {
        if key_packages.is_empty() {
            return Err(MlsError::Refused("no key packages to add".into()));
        }
        self.stage(group, |g, p, identity| {
            let current = history::snapshot(g)?;
            let mut kps = Vec::with_capacity(key_packages.len());
            let mut adding = Vec::with_capacity(key_packages.len());
            for (expected, bytes) in key_packages {
                let kp = parse_key_package(p, bytes)?;
                if kp.ciphersuite() != g.ciphersuite() {
                    return Err(MlsError::InvalidKeyPackage(format!(
                        "key package is for suite 0x{:04x}, the group uses 0x{:04x}",
                        u16::from(kp.ciphersuite()),
                        u16::from(g.ciphersuite())
                    )));
                }
                let leaf = kp.leaf_node();
                let m = Member::from_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
                if let Some(expected) = expected.filter(|e| **e != m) {
                    return Err(MlsError::InvalidKeyPackage(format!(
                        "the key package fetched for {} belongs to {m} (identity {})",
                        expected.username, m.identity
                    )));
                }
                let clash = |o: &Member| o.identity == m.identity || o.username == m.username;
                if current.values().any(|l| clash(&l.member)) || adding.iter().any(clash) {
                    return Err(MlsError::InvalidKeyPackage(format!(
                        "{m} is already a member"
                    )));
                }
                adding.push(m);
                kps.push(kp);
            }
            let (commit, welcome, info) = g
                .add_members(p, identity, &kps)
                .map_err(|e| op_error!(group, e, AddMembersError))?;
            Ok((commit, Some(welcome), info.map(MlsMessageOut::from)))
        })
    }

    /// Stages a commit removing these members (and committing whatever
    /// proposals are queued). To remove ourselves, use [`MlsEngine::leave`].
    pub fn remove_members(&mut self, group: GroupId, who: &[Who]) -> Result<Staged, MlsError> {
        if who.is_empty() {
            return Err(MlsError::Refused("no members to remove".into()));
        }
        self.stage(group, |g, p, identity| {
            let me = g.own_leaf_index();
            let current = history::snapshot(g)?;
            // Leaves a queued proposal already removes (e.g. a member who
            // asked to leave): proposing them again would be a duplicate.
            let queued: Vec<LeafNodeIndex> = g
                .pending_proposals()
                .filter_map(|q| match (q.proposal(), q.sender()) {
                    (Proposal::Remove(r), _) => Some(r.removed()),
                    (Proposal::SelfRemove, Sender::Member(i)) => Some(*i),
                    _ => None,
                })
                .collect();
            let mut leaves = Vec::with_capacity(who.len());
            for w in who {
                let (&i, _) = current
                    .iter()
                    .find(|(_, l)| w.matches(&l.member))
                    .ok_or_else(|| MlsError::MemberNotFound(w.to_string()))?;
                let i = LeafNodeIndex::new(i);
                if i == me {
                    return Err(MlsError::RemoveSelf);
                }
                if !leaves.contains(&i) && !queued.contains(&i) {
                    leaves.push(i);
                }
            }
            let (commit, welcome, info) = if leaves.is_empty() {
                g.commit_to_pending_proposals(p, identity)
                    .map_err(|e| op_error!(group, e, CommitToPendingProposalsError))?
            } else {
                g.remove_members(p, identity, &leaves)
                    .map_err(|e| op_error!(group, e, RemoveMembersError))?
            };
            Ok((commit, welcome, info.map(MlsMessageOut::from)))
        })
    }

    /// Stages a commit that gives our leaf fresh keys (post-compromise
    /// security). Also what a new member should do soon after joining.
    pub fn self_update(&mut self, group: GroupId) -> Result<Staged, MlsError> {
        self.stage(group, |g, p, identity| {
            let bundle = g
                .self_update(p, identity, LeafNodeParameters::default())
                .map_err(|e| op_error!(group, e, SelfUpdateError))?;
            Ok(bundle.into_messages())
        })
    }

    /// Stages a commit covering the queued proposals (e.g. a member's leave).
    /// With none queued this is a plain rekey.
    pub fn commit_pending_proposals(&mut self, group: GroupId) -> Result<Staged, MlsError> {
        self.stage(group, |g, p, identity| {
            let (commit, welcome, info) = g
                .commit_to_pending_proposals(p, identity)
                .map_err(|e| op_error!(group, e, CommitToPendingProposalsError))?;
            Ok((commit, welcome, info.map(MlsMessageOut::from)))
        })
    }

    /// Drops the proposals queued in `group` (received, not yet committed):
    /// the last resort when they cannot be committed, since openmls refuses
    /// to encrypt while any is queued. A commit that covers them can no
    /// longer be processed afterwards.
    pub fn clear_pending_proposals(&mut self, group: GroupId) -> Result<(), MlsError> {
        self.with_group(group, |g, p, _| {
            g.clear_pending_proposals(p.storage())?;
            Ok(())
        })
    }

    /// Proposes our own removal; returns the proposal (a serialized
    /// `MLSMessage`) to send to the group. Another member commits it; we see
    /// that commit with `we_were_removed`. A proposal only lives for its
    /// epoch: if a commit arrives that does not remove us, send a new one.
    /// openmls refuses to encrypt while it is queued.
    pub fn leave(&mut self, group: GroupId) -> Result<Vec<u8>, MlsError> {
        self.with_group(group, |g, p, identity| {
            let proposal = g
                .leave_group(p, identity)
                .map_err(|e| op_error!(group, e, LeaveGroupError))?;
            to_bytes(&proposal)
        })
    }

    /// The server accepted our staged commit: apply it. Returns what it
    /// changed, like processing another member's commit does.
    pub fn merge_pending(&mut self, group: GroupId) -> Result<CommitSummary, MlsError> {
        self.with_group(group, |g, p, identity| {
            if !g.is_active() {
                return Err(MlsError::NotMember(group));
            }
            let Some(pending) = g.pending_commit() else {
                return Err(MlsError::NoPendingCommit(group));
            };
            let we_were_removed = pending.self_removed();
            let before = history::snapshot(g)?;
            g.merge_pending_commit(p).map_err(|e| match e {
                MergePendingCommitError::MlsGroupStateError(e) => state_error(group, e),
                MergePendingCommitError::MergeCommitError(e) => {
                    use openmls::prelude::MergeCommitError as E;
                    match e {
                        E::StorageError(e) => e.into(),
                        E::LibraryError(e) => e.into(),
                    }
                }
            })?;
            let after = history::snapshot(g)?;
            let me = identity.member();
            summarize(p, g, group, &before, after, me, we_were_removed, false)
        })
    }

    /// The group's current GroupInfo (serialized `MLSMessage`, signed by us,
    /// ratchet tree extension included), for registering the group with the
    /// server.
    pub fn group_info(&self, group: GroupId) -> Result<Vec<u8>, MlsError> {
        let p = self.store.provider();
        let identity = &self.identity;
        self.read_group(group, |g| {
            let info = g
                .export_group_info(p.crypto(), identity, true)
                .map_err(|e| MlsError::Internal(format!("exporting the GroupInfo: {e}")))?;
            to_bytes(&info)
        })
    }

    /// The server refused our staged commit (another won the epoch): drop
    /// it. Then process the group's new messages and stage again. A no-op if
    /// there is no pending commit (processing the winning commit already
    /// discarded ours).
    pub fn clear_pending(&mut self, group: GroupId) -> Result<(), MlsError> {
        self.with_group(group, |g, p, _| {
            g.clear_pending_commit(p.storage())?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mls::history::Leaf;
    use quicproquo_protocol::types::{IdentityKey, Username};

    fn leaf(name: &str, key: u8) -> Leaf {
        Leaf {
            member: Member {
                username: Username::parse(name).unwrap(),
                identity: IdentityKey([key; 32]),
            },
            encryption_key: vec![key],
        }
    }

    #[test]
    fn leaves_change_hands_only_through_removal() {
        let before: Snapshot = [(0, leaf("alice", 1)), (1, leaf("bob", 2))].into();
        // bob's leaf, reused by carol after a Remove: fine.
        let reused: Snapshot = [(0, leaf("alice", 1)), (1, leaf("carol", 3))].into();
        check_transition(&before, &reused, &[1]).unwrap();
        // ... without one: bob renamed himself.
        assert!(check_transition(&before, &reused, &[]).is_err());
        // bob swapped in another identity key.
        let rekeyed: Snapshot = [(0, leaf("alice", 1)), (1, leaf("bob", 9))].into();
        assert!(check_transition(&before, &rekeyed, &[]).is_err());
        // a second "alice" joins.
        let twice: Snapshot = [
            (0, leaf("alice", 1)),
            (1, leaf("bob", 2)),
            (2, leaf("alice", 4)),
        ]
        .into();
        assert!(check_transition(&before, &twice, &[]).is_err());
    }
}
