//! Group messages: encrypting application data, and processing whatever the
//! server delivers for a group (application messages, proposals, commits).
//!
//! Incoming commits are merged as soon as they verify (the server already
//! ordered them); proposals are queued for the next commit. Nothing from the
//! wire is trusted before openmls verified it, and a failure leaves the group
//! state untouched (one savepoint per call).

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    ContentType as MlsContentType, MlsGroup, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    ProcessedMessageContent, Proposal, ProtocolMessage, QueuedProposal, Sender,
};
use openmls_traits::OpenMlsProvider;
use quicproquo_protocol::mls_framing::ContentType;
use quicproquo_protocol::types::Epoch;

use super::commit::{check_transition, summarize, CommitSummary};
use super::errors::{process_error, state_error, MlsError, ProcessContext};
use super::group::GroupId;
use super::history;
use super::identity::Member;
use super::provider::Provider;
use super::{MlsEngine, MAX_PAST_EPOCHS};

/// What an incoming message was, before processing: the daemon passes a
/// Welcome to `join` and everything for a group to `process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Welcome,
    Group {
        group: GroupId,
        epoch: Epoch,
        content: ContentType,
    },
    KeyPackage,
    GroupInfo,
}

/// A proposal another member sent, now queued for the next commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposalKind {
    /// Someone proposes adding this member.
    Add(Member),
    /// Someone proposes removing this member; when it is the sender, the
    /// sender is leaving.
    Remove(Member),
    /// The sender proposes fresh keys for its own leaf.
    Update,
}

/// Who may join or leave a group, as the conversation it belongs to says:
/// a DM is always its two users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Open,
    Fixed,
}

/// The outcome of processing one group message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Application {
        group: GroupId,
        /// The epoch it was sent in (may be before the current one).
        epoch: Epoch,
        sender: Member,
        plaintext: Vec<u8>,
    },
    /// Another member's commit, already merged.
    Commit(CommitSummary),
    Proposal {
        group: GroupId,
        epoch: Epoch,
        sender: Member,
        kind: ProposalKind,
    },
    /// One of our own messages came back. Ours cannot be decrypted by us
    /// (MLS sender keys are one-way); skip it. If it is our pending commit,
    /// the server accepted it: `merge_pending`.
    Own {
        group: GroupId,
        epoch: Epoch,
        content: ContentType,
    },
}

fn content_type(t: MlsContentType) -> ContentType {
    match t {
        MlsContentType::Application => ContentType::Application,
        MlsContentType::Proposal => ContentType::Proposal,
        MlsContentType::Commit => ContentType::Commit,
    }
}

fn parse_group_message(bytes: &[u8]) -> Result<ProtocolMessage, MlsError> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| MlsError::Malformed(e.to_string()))?;
    match msg.extract() {
        MlsMessageBodyIn::PublicMessage(m) => Ok(m.into()),
        MlsMessageBodyIn::PrivateMessage(m) => Ok(m.into()),
        MlsMessageBodyIn::Welcome(_) => Err(MlsError::UnexpectedWelcome),
        MlsMessageBodyIn::GroupInfo(_) | MlsMessageBodyIn::KeyPackage(_) => {
            Err(MlsError::Malformed("not a group message".into()))
        }
    }
}

/// Reads what kind of MLS message `bytes` is, without decrypting anything.
pub fn classify(bytes: &[u8]) -> Result<Incoming, MlsError> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| MlsError::Malformed(e.to_string()))?;
    let protocol: ProtocolMessage = match msg.extract() {
        MlsMessageBodyIn::Welcome(_) => return Ok(Incoming::Welcome),
        MlsMessageBodyIn::KeyPackage(_) => return Ok(Incoming::KeyPackage),
        MlsMessageBodyIn::GroupInfo(_) => return Ok(Incoming::GroupInfo),
        MlsMessageBodyIn::PublicMessage(m) => m.into(),
        MlsMessageBodyIn::PrivateMessage(m) => m.into(),
    };
    Ok(Incoming::Group {
        group: GroupId::from_openmls(protocol.group_id())?,
        epoch: Epoch(protocol.epoch().as_u64()),
        content: content_type(protocol.content_type()),
    })
}

/// The member behind `leaf` when a message of `epoch` was sent.
fn sender_at(
    p: &Provider<'_>,
    g: &MlsGroup,
    group: GroupId,
    leaf: u32,
    epoch: Epoch,
) -> Result<Member, MlsError> {
    if epoch.0 < g.epoch().as_u64() {
        if let Some(m) = history::past_occupant(p, group, leaf, epoch)? {
            return Ok(m);
        }
    }
    let m = g
        .member_at(openmls::prelude::LeafNodeIndex::new(leaf))
        .ok_or_else(|| MlsError::Internal(format!("no member at leaf {leaf}")))?;
    Member::from_openmls(&m)
}

fn member_leaf(sender: &Sender) -> Result<u32, MlsError> {
    match sender {
        Sender::Member(i) => Ok(i.u32()),
        other => Err(MlsError::Rejected(format!(
            "sender {other:?} is not a group member"
        ))),
    }
}

/// Checks a proposal we are about to queue and says what it proposes.
fn proposal_kind(
    g: &MlsGroup,
    q: &QueuedProposal,
    sender: &Member,
) -> Result<ProposalKind, MlsError> {
    match q.proposal() {
        Proposal::Add(a) => {
            let leaf = a.key_package().leaf_node();
            Ok(ProposalKind::Add(Member::from_leaf(
                leaf.credential(),
                leaf.signature_key().as_slice(),
            )?))
        }
        Proposal::Remove(r) => {
            let m = g
                .member_at(r.removed())
                .ok_or_else(|| MlsError::Rejected("remove proposal for an empty leaf".into()))?;
            Ok(ProposalKind::Remove(Member::from_openmls(&m)?))
        }
        Proposal::SelfRemove => {
            let leaf = member_leaf(q.sender())?;
            let m = g
                .member_at(openmls::prelude::LeafNodeIndex::new(leaf))
                .ok_or_else(|| MlsError::Rejected("self-remove from an empty leaf".into()))?;
            Ok(ProposalKind::Remove(Member::from_openmls(&m)?))
        }
        Proposal::Update(u) => {
            let leaf = u.leaf_node();
            let m = Member::from_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
            if &m != sender {
                return Err(MlsError::Rejected(format!(
                    "{sender} proposed to become {m}"
                )));
            }
            Ok(ProposalKind::Update)
        }
        other => Err(MlsError::UnsupportedProposal(format!(
            "{:?}",
            other.proposal_type()
        ))),
    }
}

impl MlsEngine {
    /// Encrypts application data for the group; returns a serialized
    /// `MLSMessage` (PrivateMessage) for every other member.
    pub fn encrypt(&mut self, group: GroupId, plaintext: &[u8]) -> Result<Vec<u8>, MlsError> {
        self.with_group(group, |g, p, identity| {
            let out: MlsMessageOut = g.create_message(p, identity, plaintext).map_err(|e| {
                use openmls::prelude::CreateMessageError as E;
                match e {
                    E::GroupStateError(e) => state_error(group, e),
                    E::LibraryError(e) => e.into(),
                }
            })?;
            out.to_bytes()
                .map_err(|e| MlsError::Internal(e.to_string()))
        })
    }

    /// Processes one message the server delivered for a group (a serialized
    /// `MLSMessage` holding a PublicMessage or PrivateMessage).
    pub fn process(&mut self, bytes: &[u8]) -> Result<Processed, MlsError> {
        self.process_in(bytes, Membership::Open)
    }

    /// [`MlsEngine::process`] for a group whose `membership` rule the
    /// caller knows: a commit that breaks it is refused
    /// ([`MlsError::Rejected`]) and nothing of it is kept.
    pub fn process_in(
        &mut self,
        bytes: &[u8],
        membership: Membership,
    ) -> Result<Processed, MlsError> {
        let protocol = parse_group_message(bytes)?;
        let group = GroupId::from_openmls(protocol.group_id())?;
        let message = Epoch(protocol.epoch().as_u64());
        let content = content_type(protocol.content_type());
        self.with_group(group, |g, p, _| {
            if !g.is_active() {
                return Err(MlsError::NotMember(group));
            }
            let current = Epoch(g.epoch().as_u64());
            if message > current {
                return Err(MlsError::FutureEpoch {
                    group,
                    message,
                    current,
                });
            }
            if message < current && content != ContentType::Application {
                return Err(MlsError::StaleHandshake {
                    group,
                    message,
                    current,
                });
            }
            let cx = ProcessContext {
                group,
                message,
                current,
                max_past_epochs: MAX_PAST_EPOCHS as u64,
            };
            let processed = g
                .process_message(p, protocol)
                .map_err(|e| process_error(&cx, e))?;
            let sender = processed.sender().clone();
            let credential = processed.credential().clone();
            match processed.into_content() {
                ProcessedMessageContent::ApplicationMessage(app) => {
                    let leaf = member_leaf(&sender)?;
                    let member = sender_at(p, g, group, leaf, message)?;
                    // openmls resolved the sender's credential for that epoch
                    // itself; the two records must agree.
                    if Member::from_leaf(&credential, member.identity.as_bytes())? != member {
                        return Err(MlsError::Internal(format!(
                            "sender of leaf {leaf} in epoch {} is ambiguous",
                            message.0
                        )));
                    }
                    Ok(Processed::Application {
                        group,
                        epoch: message,
                        sender: member,
                        plaintext: app.into_bytes(),
                    })
                }
                ProcessedMessageContent::ProposalMessage(q) => {
                    let leaf = member_leaf(&sender)?;
                    let sender = sender_at(p, g, group, leaf, message)?;
                    let kind = proposal_kind(g, &q, &sender)?;
                    g.store_pending_proposal(p.storage(), *q)?;
                    Ok(Processed::Proposal {
                        group,
                        epoch: message,
                        sender,
                        kind,
                    })
                }
                ProcessedMessageContent::StagedCommitMessage(staged) => {
                    let leaf = member_leaf(&sender)?;
                    let committer = sender_at(p, g, group, leaf, message)?;
                    // Leaves the commit empties on purpose; any other leaf
                    // must keep its occupant (see `check_transition`).
                    let vacated: Vec<u32> = staged
                        .queued_proposals()
                        .filter_map(|q| match (q.proposal(), q.sender()) {
                            (Proposal::Remove(r), _) => Some(r.removed().u32()),
                            (Proposal::SelfRemove, Sender::Member(i)) => Some(i.u32()),
                            _ => None,
                        })
                        .collect();
                    let we_were_removed = staged.self_removed();
                    let dropped_own_commit = g.pending_commit().is_some();
                    let before = history::snapshot(g)?;
                    g.merge_staged_commit(p, *staged).map_err(|e| {
                        use openmls::prelude::MergeCommitError as E;
                        match e {
                            E::StorageError(e) => MlsError::from(e),
                            E::LibraryError(e) => MlsError::from(e),
                        }
                    })?;
                    // Checked on the merged state; an error rolls it back.
                    let after = history::snapshot(g)?;
                    check_transition(&before, &after, &vacated)?;
                    if membership == Membership::Fixed {
                        let d = history::diff(&before, &after);
                        let names = |v: &[(u32, Member)]| {
                            v.iter()
                                .map(|(_, m)| m.username.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        if !d.added.is_empty() || !d.removed.is_empty() {
                            return Err(MlsError::Rejected(format!(
                                "{committer} tried to change the members (add: [{}], remove: [{}]) \
                                 of a conversation whose members are fixed",
                                names(&d.added),
                                names(&d.removed)
                            )));
                        }
                    }
                    Ok(Processed::Commit(summarize(
                        p,
                        g,
                        group,
                        &before,
                        after,
                        committer,
                        we_were_removed,
                        dropped_own_commit,
                    )?))
                }
                ProcessedMessageContent::OwnPendingCommit
                | ProcessedMessageContent::OwnPrivateMessage => Ok(Processed::Own {
                    group,
                    epoch: message,
                    content,
                }),
                ProcessedMessageContent::ExternalJoinProposalMessage(_) => Err(
                    MlsError::UnsupportedProposal("external join proposal".into()),
                ),
            }
        })
    }
}
