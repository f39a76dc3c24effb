//! Receiving: the long-poll loop, and processing what it fetched. A fetched
//! batch is processed and stored in **one transaction** (one core trip, one
//! fsync), each message in its own savepoint — openmls' writes share the
//! connection, so a message that fails rolls back alone and the rest of the
//! batch commits — before the batch is acknowledged to the server. A
//! redelivery after a crash is recognised and shown once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use quicproquo_protocol::ipc::notifications::{
    ConversationUpdate, DeliveryUpdate, InvitationUpdate, MembershipChange, NewMessage,
    Notification,
};
use quicproquo_protocol::ipc::values::{
    DeliveryState, InvitationState, MembershipEvent, MessageId,
};
use quicproquo_protocol::padding;
use quicproquo_protocol::types::{IdentityKey, Username};
use quicproquo_protocol::wire;
use rusqlite::OptionalExtension as _;
use tokio::sync::OwnedMutexGuard;

use super::history::{conv_id, new_conversation, stored_message, view_db};
use super::verify::{pin_identity, unknown_members};
use super::{actions, privacy};
use super::{emit, Agent, AgentError};
use crate::core::{Core, CoreError};
use crate::db::conversations::{self, Conversation, Kind};
use crate::db::messages::{self, Message, State};
use crate::db::{self, invitations, now_ms, outbox, Id};
use crate::link::{ConnState, Link};
use crate::mls::{
    classify, ContentType, GroupId, Incoming, Joined, Membership, MlsError, Processed, ProposalKind,
};
use crate::payload::{ConversationInfo, Payload};

/// How long one `fetchWait` is held by the server.
const FETCH_WAIT_MS: u32 = 25_000;
/// Most messages fetched (and so stored in one transaction) at once: large
/// enough that a backlog costs few fsyncs, small enough that the core thread
/// is not held for long (a few hundred milliseconds at worst) while a
/// front-end waits.
const FETCH_LIMIT: u32 = 250;

/// One fetched message, unpadded and classified before the core trip.
pub(super) struct Fetched {
    seq: u64,
    parsed: Result<(Incoming, Vec<u8>), String>,
    /// For a Welcome: what it says, read once before the batch is stored
    /// (reading one is about as costly as joining).
    peeked: Option<Joined>,
}

/// The keys the server lists for the inviters of a batch's Welcomes
/// (`None`: no such user), looked up before the batch is processed.
type Directory = HashMap<Username, Option<IdentityKey>>;

/// What processing a message (or a whole batch) produced, published once
/// the batch is committed.
#[derive(Default)]
pub(super) struct Stored {
    pub(super) events: Vec<Notification>,
    /// Groups we joined: we re-key soon (our leaf keys came from a
    /// published key package).
    pub(super) joined: Vec<GroupId>,
    /// Groups with proposals (a member leaving) for us to commit.
    pub(super) proposals: Vec<GroupId>,
    /// Members we met and have no key pinned for: looked up in the
    /// directory afterwards.
    pub(super) unknown: Vec<String>,
    /// Groups whose Welcome we refused, with what tells them (the decline
    /// notice with its reason, and our leave proposal), to send afterwards.
    pub(super) replies: Vec<(GroupId, Vec<Vec<u8>>)>,
}

impl Stored {
    fn events(events: Vec<Notification>) -> Stored {
        Stored {
            events,
            ..Stored::default()
        }
    }

    fn nothing() -> Stored {
        Stored::default()
    }

    pub(super) fn add(&mut self, other: Stored) {
        self.events.extend(other.events);
        self.joined.extend(other.joined);
        self.proposals.extend(other.proposals);
        self.unknown.extend(other.unknown);
        self.replies.extend(other.replies);
    }
}

impl Agent {
    /// Long-polls the mailbox and processes what arrives, in order.
    pub(crate) async fn receive_loop(self: Arc<Self>, link: Link) {
        let mut shutdown = self.shutdown_signal();
        let mut retry = quicproquo_protocol::backoff::Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(10),
        );
        loop {
            if *shutdown.borrow() {
                return;
            }
            if link.state() != ConnState::Online {
                let mut w = link.watch();
                tokio::select! {
                    _ = w.wait_for(|s| *s == ConnState::Online) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            let pause = match self.receive_once(&link, &mut shutdown).await {
                Ok(()) => {
                    retry.reset();
                    continue;
                }
                Err(None) => return,
                Err(Some(e)) => {
                    tracing::debug!(error = %e, "receiving paused");
                    retry.wait()
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One `fetchWait`, and the batch it brings stored and acknowledged.
    /// `Err(None)` when the daemon is shutting down.
    async fn receive_once(
        self: &Arc<Self>,
        link: &Link,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), Option<AgentError>> {
        let token = self.token().map_err(Some)?;
        let wait = wire::FetchWait {
            auth: token.clone(),
            channel: None,
            limit: FETCH_LIMIT,
            timeout_ms: FETCH_WAIT_MS,
        };
        let mail = tokio::select! {
            r = link.request(wait) => r.map_err(|e| Some(e.into()))?,
            _ = shutdown.changed() => return Err(None),
        };
        if mail.is_empty() {
            return Ok(());
        }
        let seqs: Vec<u64> = mail.iter().map(|e| e.seq).collect();
        // Expiry notices are the server's, not MLS: they mark our messages.
        let (notices, mail): (Vec<wire::Envelope>, Vec<wire::Envelope>) =
            mail.into_iter().partition(|e| e.expired.is_some());
        let expired: Vec<wire::Expired> = notices.iter().filter_map(|e| e.expired).collect();
        if !expired.is_empty() {
            let events = self
                .core()
                .map_err(Some)?
                .run(move |c| mark_expired(c, &expired))
                .await
                .map_err(|e| Some(e.into()))?;
            self.publish(events);
        }
        let batch: Vec<Fetched> = mail
            .into_iter()
            .map(|env| Fetched {
                seq: env.seq,
                parsed: parse(&env.payload),
                peeked: None,
            })
            .collect();
        let mut batch = batch;
        let directory = self.inviters(&mut batch).await.map_err(Some)?;
        let stored = self.store_batch(batch, directory).await.map_err(Some)?;
        self.after_stored(stored);
        // Receipts for what was just stored wait in the outbox.
        self.outbox_kick.notify_one();
        // Stored (or found unprocessable) before acknowledged. A batch whose
        // transaction failed is not acknowledged: the server keeps it.
        // The commit is recorded outside the state before the server
        // forgets the batch (`integrity`); if it cannot be, no ack.
        self.seal_state().await.map_err(Some)?;
        if let Err(e) = link.request(wire::Ack { auth: token, seqs }).await {
            tracing::debug!(error = %e, "ack failed; the mail will be redelivered and de-duplicated");
        }
        Ok(())
    }

    /// What follows a committed batch (or an accepted invitation): tell the
    /// front-ends, re-key the groups we joined, commit what others proposed,
    /// look up the members we met.
    pub(super) fn after_stored(self: &Arc<Self>, stored: Stored) {
        self.publish(stored.events);
        for g in stored.joined {
            self.spawn_self_update(g);
        }
        for g in stored.proposals {
            self.spawn_commit_proposals(g);
        }
        self.spawn_look_up(stored.unknown);
        for (group, messages) in stored.replies {
            let me = Arc::clone(self);
            self.spawn(async move {
                if let Err(e) = me.tell_group(group, messages).await {
                    tracing::info!(error = %e, "the group of a refused invitation could not be told");
                }
            });
        }
    }

    /// The keys the server lists for whoever sent the batch's Welcomes, so
    /// that an inviter whose credential names someone with another key is
    /// refused before anything is joined or pinned. One core trip (to read
    /// the Welcomes) and one lookup per inviter, only for batches with
    /// Welcomes. A failed lookup fails the batch: it is fetched again.
    async fn inviters(&self, batch: &mut [Fetched]) -> Result<Directory, AgentError> {
        let welcomes: Vec<(usize, Vec<u8>)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match &f.parsed {
                Ok((Incoming::Welcome, bytes)) => Some((i, bytes.clone())),
                _ => None,
            })
            .collect();
        if welcomes.is_empty() {
            return Ok(Directory::new());
        }
        let peeked: Vec<(usize, Joined)> = self
            .core()?
            .run(move |c| -> Result<_, CoreError> {
                let e = c.engine()?;
                // One that cannot be read is dealt with (skipped) later.
                Ok(welcomes
                    .iter()
                    .filter_map(|(i, w)| e.peek_welcome(w).ok().map(|j| (*i, j)))
                    .collect())
            })
            .await?;
        let names: BTreeSet<Username> = peeked
            .iter()
            .map(|(_, j)| j.inviter.username.clone())
            .collect();
        for (i, j) in peeked {
            batch[i].peeked = Some(j);
        }
        let mut directory = Directory::new();
        for name in names {
            let key = self.listed_key(&name).await?;
            directory.insert(name, key);
        }
        Ok(directory)
    }

    /// Processes and stores a fetched batch in one core trip, holding the
    /// locks of the groups whose handshakes it carries (so no commit of ours
    /// is in flight in those groups meanwhile).
    async fn store_batch(
        &self,
        batch: Vec<Fetched>,
        directory: Directory,
    ) -> Result<Stored, AgentError> {
        let handshake_groups: BTreeSet<GroupId> = batch
            .iter()
            .filter_map(|f| match &f.parsed {
                Ok((Incoming::Group { group, content, .. }, _))
                    if *content != ContentType::Application =>
                {
                    Some(*group)
                }
                _ => None,
            })
            .collect();
        // In a fixed order, so two batches can never wait on each other.
        let mut guards: Vec<OwnedMutexGuard<()>> = Vec::with_capacity(handshake_groups.len());
        for g in &handshake_groups {
            guards.push(self.group_lock(g).lock_owned().await);
        }
        let stored = self
            .core()?
            .run(move |c| store_incoming(c, batch, &directory))
            .await;
        drop(guards);
        // Said in `status` until a batch is stored again.
        match &stored {
            Ok(_) => self.storage.set(None),
            Err(e) => {
                if let Some(why) = e.storage_unavailable() {
                    self.storage.set(Some(why));
                }
            }
        }
        Ok(stored?)
    }
}

/// Core operation: each of our messages an expiry notice names (its
/// idempotency key is the message id, `db::outbox::push`) becomes
/// `expired` unless a recipient already had it (`delivered`), with a
/// `delivery` notification naming the recipient. A notice for something
/// else (a receipt, a commit, a message since deleted) is dropped.
fn mark_expired(c: &mut Core, notices: &[wire::Expired]) -> Result<Vec<Notification>, CoreError> {
    let mut events = Vec::new();
    for n in notices {
        let id = Id(n.idempotency_key.0);
        let Some(m) = messages::by_id(c.db(), id)? else {
            continue;
        };
        if !m.outgoing || !messages::advance(c.db(), id, m.conversation, State::Expired)? {
            continue;
        }
        let who: Option<String> = c
            .db()
            .query_row(
                "SELECT username FROM contacts WHERE identity = ?1",
                [n.recipient.0],
                |r| r.get(0),
            )
            .optional()?;
        let who = who.unwrap_or_else(|| format!("the user with identity key {}", n.recipient));
        let reason = format!(
            "{who} did not fetch it before the server's time limit, and the server deleted it"
        );
        events.push(emit(c, |seq| {
            Notification::Delivery(DeliveryUpdate {
                seq,
                conversation: conv_id(m.conversation),
                id: MessageId(id.0),
                state: DeliveryState::Expired,
                reason: Some(reason),
            })
        })?);
    }
    Ok(events)
}

fn parse(payload: &[u8]) -> Result<(Incoming, Vec<u8>), String> {
    let bytes = padding::unpad(payload).map_err(|e| e.to_string())?.to_vec();
    let kind = classify(&bytes).map_err(|e| e.to_string())?;
    Ok((kind, bytes))
}

/// Core operation: processes and stores a fetched batch in one transaction,
/// each message in its own savepoint. A message that can never be processed
/// is logged and skipped (its own writes rolled back), and acknowledged with
/// the rest. A failure to store — the disk full, an I/O error, the database
/// busy, or SQLite having given up the transaction — fails the whole batch:
/// nothing of it is acknowledged, so the server keeps all of it, and the
/// next fetch brings it again (what was stored before is recognised).
fn store_incoming(
    c: &mut Core,
    batch: Vec<Fetched>,
    directory: &Directory,
) -> Result<Stored, CoreError> {
    c.atomically(|c| {
        let mut stored = Stored::default();
        for f in batch {
            let peeked = f.peeked;
            let outcome = match f.parsed {
                Err(e) => Err(e),
                Ok((kind, bytes)) => {
                    match c.savepoint(|c| process_one(c, kind, &bytes, directory, peeked.clone())) {
                        Ok(one) => Ok(one),
                        // SQLite may roll back the whole transaction on
                        // such errors; the savepoint's rollback then fails
                        // with an error of its own, so both are checked.
                        Err(e) if e.storage_unavailable().is_some() || c.db().is_autocommit() => {
                            return Err(e)
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            match outcome {
                Ok(one) => stored.add(one),
                Err(e) => {
                    tracing::warn!(seq = f.seq, error = %e, "an incoming message could not be processed")
                }
            }
        }
        Ok(stored)
    })
}

fn process_one(
    c: &mut Core,
    kind: Incoming,
    bytes: &[u8],
    directory: &Directory,
    peeked: Option<Joined>,
) -> Result<Stored, CoreError> {
    match kind {
        Incoming::Welcome => join(c, bytes, directory, peeked),
        Incoming::Group { group, .. } => process_group(c, group, bytes),
        other => Err(CoreError::Mls(MlsError::Malformed(format!(
            "unexpected message kind {other:?}"
        )))),
    }
}

fn join(
    c: &mut Core,
    welcome: &[u8],
    directory: &Directory,
    peeked: Option<Joined>,
) -> Result<Stored, CoreError> {
    // Read (and verified) before the batch, when its inviter was looked up.
    let invited = match peeked {
        Some(j) => j,
        None => c.engine()?.peek_welcome(welcome)?,
    };
    if let Some(reason) = refusal(c, &invited, directory)? {
        tracing::warn!(inviter = %invited.inviter.username, %reason, "refused an invitation");
        let name = super::invites::invitation_name(&invited, &super::invites::our_name(c)?);
        let ev = emit(c, |seq| {
            Notification::Invitation(InvitationUpdate {
                seq,
                id: None,
                from: invited.inviter.username.to_string(),
                name,
                state: InvitationState::Refused,
                reason: reason.clone(),
            })
        })?;
        // Where we can join, the inviter learns why (a decline notice);
        // where we cannot, the refusal stays ours.
        let replies = match c.savepoint(|c| super::invites::say_no(c, welcome, &reason)) {
            Ok((group, notice, leave)) => vec![(group, vec![notice, leave])],
            Err(e) => {
                tracing::info!(error = %e, "a refused invitation cannot be answered");
                Vec::new()
            }
        };
        return Ok(Stored {
            events: vec![ev],
            replies,
            ..Stored::default()
        });
    }
    if !super::invites::accepted_without_asking(c, &invited)? {
        return super::invites::hold_invitation(c, welcome, &invited);
    }
    Ok(enter(c, welcome)?.0)
}

/// Joins the group of `welcome` (already checked, and consented to): its
/// conversation, our pins, and what to do next. The conversation is `None`
/// when the group was merged into a DM we have.
pub(super) fn enter(
    c: &mut Core,
    welcome: &[u8],
) -> Result<(Stored, Option<Conversation>), CoreError> {
    let joined = c.engine()?.join(welcome)?;
    // The inviter's key is the directory's (checked above): pinned like any
    // lookup. The other members are looked up afterwards.
    let inviter = &joined.inviter;
    let mut events: Vec<Notification> =
        pin_identity(c, inviter.username.as_str(), inviter.identity.as_bytes())?
            .into_iter()
            .collect();
    let mut unknown = unknown_members(c, &joined.members)?;
    unknown.retain(|u| u != inviter.username.as_str());
    let joined_group = Stored {
        joined: vec![joined.group],
        unknown,
        ..Stored::default()
    };
    if let Some(moved) = super::legacy::adopt(c, &joined)? {
        events.extend(moved.events);
        let conv = conversations::by_group(c.db(), joined.group.as_bytes())?;
        return Ok((
            Stored {
                events,
                ..joined_group
            },
            conv,
        ));
    }
    let Some(conv) = joined_conversation(c, &joined)? else {
        let dm = conversations::dm_with(c.db(), inviter.username.as_str())?;
        return Ok((
            Stored {
                events,
                ..joined_group
            },
            dm,
        ));
    };
    conversations::set_joined_epoch(c.db(), conv.id, joined.epoch.0)?;
    let members = joined
        .members
        .iter()
        .map(|m| m.username.to_string())
        .collect();
    let ev = emit(c, |seq| {
        Notification::Membership(MembershipChange {
            seq,
            conversation: conv_id(conv.id),
            event: MembershipEvent::Joined,
            members,
            by: joined.inviter.username.to_string(),
        })
    })?;
    events.push(ev);
    Ok((
        Stored {
            events,
            ..joined_group
        },
        Some(conv),
    ))
}

/// Why an invitation (a Welcome, read but not joined) is refused, if it is:
/// its inviter's credential holds a key other than the one the server lists
/// for that name (someone posing as them), or it is a second DM from a
/// contact with a key other than the one pinned for them (it would be merged
/// into the DM we have and take it over).
fn refusal(c: &Core, invited: &Joined, directory: &Directory) -> rusqlite::Result<Option<String>> {
    let inviter = &invited.inviter;
    let name = &inviter.username;
    match directory.get(name) {
        None => return Ok(Some(format!("{name} could not be looked up"))),
        Some(None) => return Ok(Some(format!("the server has no user named {name}"))),
        Some(Some(listed)) if *listed != inviter.identity => {
            return Ok(Some(format!(
            "the invitation is signed with a key that is not the key the server lists for {name}: \
                 someone is posing as {name}"
        )))
        }
        Some(Some(_)) => {}
    }
    let is_dm = matches!(
        invited.info.as_deref().map(ConversationInfo::decode),
        Some(Ok(ConversationInfo::Dm))
    ) && invited.members.len() == 2;
    if is_dm && conversations::dm_with(c.db(), name.as_str())?.is_some() {
        let pinned = conversations::contact(c.db(), name.as_str())?.map(|k| k.identity);
        if pinned != Some(inviter.identity.0) {
            return Ok(Some(format!(
                "a second DM from {name} with a key other than the one pinned for {name}; \
                 compare safety numbers with {name} (verify {name})"
            )));
        }
    }
    Ok(None)
}

/// The conversation a group we just joined belongs to, stored: the one we
/// had if we were re-added, else a new one named by the creator's
/// conversation info. `None` when it is a second group for a DM we have
/// (both users opened it at once), merged into that DM.
fn joined_conversation(c: &Core, joined: &Joined) -> Result<Option<Conversation>, CoreError> {
    if let Some(old) = conversations::by_group(c.db(), joined.group.as_bytes())? {
        // A group that removed us (or that we left), joined again. Whoever
        // invites us chose its members now, and may not even be the group
        // it was: it gets a conversation of its own; the old one keeps its
        // history, inactive.
        conversations::retire_group(c.db(), old.id)?;
    }
    let inviter = joined.inviter.username.to_string();
    let (kind, name, peer) = match joined.info.as_deref().map(ConversationInfo::decode) {
        // A DM is a group of exactly the inviter and us.
        Some(Ok(ConversationInfo::Dm)) if joined.members.len() == 2 => {
            if let Some(dm) = conversations::dm_with(c.db(), &inviter)? {
                let kept = conversations::merge_dm_group(c.db(), &dm, joined.group.as_bytes())?;
                tracing::info!(
                    peer = %inviter,
                    sending_on = %hex::encode(&kept.group_id),
                    "both opened the DM at once; merged the second group into it"
                );
                return Ok(None);
            }
            (Kind::Dm, format!("@{inviter}"), Some(inviter))
        }
        // Named in the context: a group made before names left it.
        Some(Ok(ConversationInfo::Group { name: Some(name) })) => (Kind::Group, name, None),
        other => {
            if let Some(Err(info)) = other {
                tracing::info!(?info, %inviter, "unusable conversation info; a placeholder name");
            }
            let me = super::invites::our_name(c)?;
            let name = super::invites::placeholder_name(joined, &me);
            (Kind::Group, name, None)
        }
    };
    let conv = new_conversation(kind, name, joined.group, peer, joined.suite);
    conversations::insert(c.db(), &conv, now_ms())?;
    Ok(Some(conv))
}

/// What to tell the user about a message from `message_epoch` that can no
/// longer be decrypted (we are at `current` and keep the keys of
/// `MAX_PAST_EPOCHS` before it). Nothing when it is from before we joined
/// (`joined_epoch`): it was never meant for us.
fn lost_message_notice(joined_epoch: u64, message_epoch: u64, current: u64) -> Option<String> {
    (message_epoch >= joined_epoch).then(|| {
        format!(
            "⚠ a message could not be decrypted: it was sent in epoch {message_epoch} and arrived \
             in epoch {current}, after its keys were discarded (kept: {} epochs)",
            crate::mls::MAX_PAST_EPOCHS
        )
    })
}

/// Says `text` in the conversation itself (a notice: empty sender), so
/// that nobody takes a silence, or a refusal, for the sender's.
pub(super) fn notice(c: &Core, conv: &Conversation, text: String) -> Result<Stored, CoreError> {
    let m = Message {
        id: Id::random(),
        conversation: conv.id,
        sender: String::new(),
        timestamp_ms: now_ms(),
        text,
        outgoing: false,
        state: State::Received,
        extra: Default::default(),
    };
    messages::insert(c.db(), &m)?;
    announce(c, &m)
}

/// Tells the front-ends of a message just stored (with what it quotes).
pub(super) fn announce(c: &Core, m: &Message) -> Result<Stored, CoreError> {
    let message = stored_message(c.db(), m)?;
    let ev = emit(c, |seq| Notification::Message(NewMessage { seq, message }))?;
    Ok(Stored::events(vec![ev]))
}

pub(super) fn process_group(
    c: &mut Core,
    group: GroupId,
    bytes: &[u8],
) -> Result<Stored, CoreError> {
    let conv = conversations::by_group(c.db(), group.as_bytes())?;
    if conv.is_none() {
        // Mail for a group we are invited to waits for the user's answer;
        // mail for one we declined is dropped.
        match invitations::state_of_group(c.db(), group.as_bytes())? {
            Some(invitations::State::Pending) => {
                if !invitations::hold(c.db(), group.as_bytes(), bytes)? {
                    tracing::info!("dropped a message for a waiting invitation past its bound");
                }
                return Ok(Stored::nothing());
            }
            Some(invitations::State::Declined) => return Ok(Stored::nothing()),
            None => {}
        }
    }
    // A DM is always its two users: a commit that adds or removes anyone
    // is refused, whoever sends it.
    let membership = match &conv {
        Some(conv) if conv.kind == Kind::Dm => Membership::Fixed,
        _ => Membership::Open,
    };
    let processed = match c.engine()?.process_in(bytes, membership) {
        Ok(p) => p,
        Err(MlsError::TooOld {
            message, current, ..
        }) => {
            tracing::info!(
                message = message.0,
                current = current.0,
                "skipped a message from an epoch whose keys are gone"
            );
            let Some(conv) = conv else {
                return Ok(Stored::nothing());
            };
            let joined = conversations::joined_epoch(c.db(), conv.id)?;
            return match lost_message_notice(joined, message.0, current.0) {
                Some(text) => notice(c, &conv, text),
                None => Ok(Stored::nothing()),
            };
        }
        Err(MlsError::Rejected(reason)) if membership == Membership::Fixed => {
            tracing::warn!(%reason, "refused a commit changing a DM's members");
            let Some(conv) = conv else {
                return Ok(Stored::nothing());
            };
            return notice(
                c,
                &conv,
                format!(
                    "⚠ refused a change to this DM: {reason}; a DM stays between its two users"
                ),
            );
        }
        Err(e @ (MlsError::Replay(_) | MlsError::StaleHandshake { .. })) => {
            tracing::info!(error = %e, "skipped a message");
            return Ok(Stored::nothing());
        }
        Err(e) => return Err(e.into()),
    };
    let Some(conv) = conv else {
        return Ok(Stored::nothing());
    };
    match processed {
        Processed::Application {
            sender,
            plaintext,
            epoch,
            ..
        } => {
            // Members keep a few past epochs' keys for messages that
            // crossed a commit in flight; a removed member still has them.
            // A late message counts only from someone still a member.
            if epoch < c.engine()?.epoch(group)? {
                let members = c.engine()?.members(group)?;
                if !members.contains(&sender) {
                    tracing::info!(sender = %sender.username, "dropped a late message from a former member");
                    return notice(
                        c,
                        &conv,
                        format!(
                            "⚠ a message from {} was dropped: it came late, and {} is no longer a member",
                            sender.username, sender.username
                        ),
                    );
                }
            }
            application(c, &conv, &sender.username, epoch.0, &plaintext)
        }
        Processed::Commit(s) => {
            let mut events = Vec::new();
            let by = s.committer.username.to_string();
            let mut push =
                |c: &Core, event: MembershipEvent, members: Vec<String>| -> rusqlite::Result<()> {
                    if members.is_empty() {
                        return Ok(());
                    }
                    let by = by.clone();
                    events.push(emit(c, |seq| {
                        Notification::Membership(MembershipChange {
                            seq,
                            conversation: conv_id(conv.id),
                            event,
                            members,
                            by,
                        })
                    })?);
                    Ok(())
                };
            push(
                c,
                MembershipEvent::Added,
                s.added.iter().map(|m| m.username.to_string()).collect(),
            )?;
            push(
                c,
                MembershipEvent::Removed,
                s.removed.iter().map(|m| m.username.to_string()).collect(),
            )?;
            if s.added.is_empty() && s.removed.is_empty() {
                push(
                    c,
                    MembershipEvent::Rekeyed,
                    vec![s.committer.username.to_string()],
                )?;
            }
            if s.we_were_removed {
                conversations::set_active(c.db(), conv.id, false)?;
            }
            // A change of members is news; a re-key alone is not, and must
            // not move the conversation up the list.
            if !(s.added.is_empty() && s.removed.is_empty()) {
                conversations::touch(c.db(), conv.id, now_ms())?;
            }
            Ok(Stored {
                events,
                unknown: unknown_members(c, &s.added)?,
                ..Stored::default()
            })
        }
        Processed::Proposal { kind, .. } => match kind {
            ProposalKind::Remove(_) | ProposalKind::Update => Ok(Stored {
                proposals: vec![group],
                ..Stored::default()
            }),
            ProposalKind::Add(_) => Ok(Stored::nothing()),
        },
        Processed::Own { .. } => Ok(Stored::nothing()),
    }
}

/// An application message from `sender` in `conv`, sent in `epoch`: a
/// text (stored, and in a DM a receipt queued), receipts for ours, a
/// decline notice or the group's name.
fn application(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    epoch: u64,
    plaintext: &[u8],
) -> Result<Stored, CoreError> {
    match Payload::decode(plaintext) {
        Ok(Payload::Text {
            id,
            ts,
            text,
            x: Some(x),
            ..
        }) if !x.is_attachment() => {
            let Some(id) = Id::parse_hex(&id) else {
                return Ok(Stored::nothing());
            };
            actions::received(c, conv, sender, id, ts, text, &x)
        }
        Ok(Payload::Signal { x }) => privacy::signal_received(c, conv, sender, &x),
        Ok(Payload::Text {
            id,
            ts,
            text,
            reply_to,
            ttl,
            x,
        }) => {
            let Some(id) = Id::parse_hex(&id) else {
                return Ok(Stored::nothing());
            };
            // An attachment (issue 18): the message's text is its caption.
            let (text, attachment) = match x.map(|x| x.attachment()) {
                None => (text, None),
                Some(Ok(crate::payload::Known::Yes(a))) => (a.caption.clone(), Some(a)),
                Some(Ok(crate::payload::Known::Unsupported(_))) => {
                    return actions::unsupported(c, conv, sender, id, ts, &text)
                }
                Some(Err(e)) => {
                    tracing::info!(error = %e, "ignored a malformed attachment");
                    return Ok(Stored::nothing());
                }
            };
            let mentions_me = db::actions::mentions(&text, super::invites::our_name(c)?.as_str());
            let m = Message {
                id,
                conversation: conv.id,
                sender: sender.to_string(),
                timestamp_ms: ts,
                text,
                outgoing: false,
                state: State::Received,
                extra: messages::Extra {
                    // The quote is checked when shown (`history::quote`);
                    // (privacy): `ttl` sets `expires_at_ms`.
                    reply_to: reply_to.and_then(|r| Some((r.message_id()?, r.sender))),
                    mentions_me,
                    expires_at_ms: ttl.filter(|s| *s > 0).map(|s| privacy::expiry(now_ms(), s)),
                    ..Default::default()
                },
            };
            if !messages::insert(c.db(), &m)? {
                return Ok(Stored::nothing());
            }
            if let Some(a) = attachment {
                super::attachments::received(c, id, a)?;
            }
            conversations::touch(c.db(), conv.id, now_ms())?;
            if conv.kind == Kind::Dm {
                // Stored: tell the peer (through the outbox, batched,
                // sent once we are online). DMs only: in a group every
                // receipt would reach every member.
                outbox::push_receipt(c.db(), conv.id, id, now_ms())?;
            }
            let mut stored = announce(c, &m)?;
            // Reactions, edits, deletes that came before it.
            stored.add(actions::arrived(c, &m)?);
            Ok(stored)
        }
        Ok(Payload::Receipt { ids }) => {
            let mut events = Vec::new();
            if conv.kind != Kind::Dm {
                return Ok(Stored::nothing());
            }
            for id in ids.iter().filter_map(|i| Id::parse_hex(i)) {
                if messages::advance(c.db(), id, conv.id, State::Delivered)? {
                    events.push(emit(c, |seq| {
                        Notification::Delivery(DeliveryUpdate {
                            seq,
                            conversation: conv_id(conv.id),
                            id: MessageId(id.0),
                            state: DeliveryState::Delivered,
                            reason: None,
                        })
                    })?);
                }
            }
            Ok(Stored::events(events))
        }
        Ok(Payload::GroupName { name }) => group_named(c, conv, sender, epoch, name),
        Ok(Payload::Declined { reason }) => {
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            notice(c, conv, format!("{sender} declined the invitation{why}"))
        }
        Err(e) => {
            tracing::info!(error = %e, "ignored an application message of unknown form");
            Ok(Stored::nothing())
        }
    }
}

/// A member says what the group is called (sent by whoever adds members,
/// right after the add, in the epoch the add made): the conversation takes
/// the name. Sent in the epoch we joined, it is the name we were invited
/// to, replacing the placeholder quietly; any later change is said in the
/// conversation, with who made it. The name we already have is nothing
/// new; a DM has no name.
fn group_named(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    epoch: u64,
    name: String,
) -> Result<Stored, CoreError> {
    if conv.kind != Kind::Group || conv.name == name {
        return Ok(Stored::nothing());
    }
    conversations::set_name(c.db(), conv.id, &name)?;
    let renamed = Conversation {
        name: name.clone(),
        ..conv.clone()
    };
    // Front-ends show the name: they are told of every change.
    let conversation = view_db(c, &renamed)?;
    let mut stored = Stored::events(vec![emit(c, |seq| {
        Notification::Conversation(ConversationUpdate { seq, conversation })
    })?]);
    if epoch != conversations::joined_epoch(c.db(), conv.id)? {
        stored.add(notice(
            c,
            &renamed,
            format!("{sender} named the group “{name}”"),
        )?);
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message that arrives too late is reported, unless it is from
    /// before we joined (then it was never meant for us).
    #[test]
    fn a_late_message_is_reported_unless_it_predates_us() {
        let notice = lost_message_notice(3, 4, 12).unwrap();
        assert!(
            notice.contains("epoch 4") && notice.contains("epoch 12"),
            "{notice}"
        );
        assert!(lost_message_notice(3, 3, 12).is_some());
        assert_eq!(lost_message_notice(3, 2, 4), None);
        assert!(
            lost_message_notice(0, 0, 9).is_some(),
            "the creator joined at 0"
        );
    }
}

#[cfg(test)]
pub(super) mod batch_tests {
    use std::path::Path;

    use ed25519_dalek::SigningKey;
    use quicproquo_protocol::types::Username;

    use super::*;
    use crate::keystore::tests::FakeKeyring;
    use crate::mls::{Identity, Suite};

    /// A core with its own encrypted state file and an MLS identity.
    pub(in crate::agent) fn core(dir: &Path, name: &str) -> Core {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).unwrap();
        let no_keyring = FakeKeyring {
            broken: true,
            ..Default::default()
        };
        let (key, _) = crate::keystore::obtain(&home, name, &no_keyring, Some("pass")).unwrap();
        let conn = crate::state::open(&home.join("qpq-state.bin"), &key).unwrap();
        let mut c = Core::new(conn);
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        c.attach(Identity::new(Username::parse(name).unwrap(), signing))
            .unwrap();
        // These tests are about processing, not consent: join at once.
        invitations::set_auto_accept(
            c.db(),
            quicproquo_protocol::ipc::values::AutoAccept::Everyone,
        )
        .unwrap();
        c
    }

    /// One core per name, side by side in `dir`.
    pub(in crate::agent) fn cores<const N: usize>(dir: &Path, names: [&str; N]) -> [Core; N] {
        names.map(|n| core(dir, n))
    }

    /// The conversation info of a group called "team".
    pub(in crate::agent) fn team() -> ConversationInfo {
        ConversationInfo::Group {
            name: Some("team".into()),
        }
    }

    pub(in crate::agent) fn fetched(seq: u64, mls: &[u8]) -> Fetched {
        Fetched {
            seq,
            parsed: parse(&padding::pad(mls)),
            peeked: None,
        }
    }

    pub(in crate::agent) fn text(c: &mut Core, group: GroupId, t: &str) -> Vec<u8> {
        let body = Payload::text(Id::random(), 1, t).encode();
        c.engine().unwrap().encrypt(group, &body).unwrap()
    }

    /// A group `creator` makes with `info` and adds `joiners` to, committed
    /// on the creator's side: the group and the Welcome for the joiners.
    pub(in crate::agent) fn group_of(
        creator: &mut Core,
        info: ConversationInfo,
        joiners: &mut [&mut Core],
    ) -> (GroupId, Vec<u8>) {
        let group = creator
            .engine()
            .unwrap()
            .create_group_with_info(Suite::Hybrid, Some(&info.encode()), &[])
            .unwrap();
        let kps: Vec<Vec<u8>> = joiners
            .iter_mut()
            .flat_map(|j| j.engine().unwrap().key_packages(Suite::Hybrid, 1).unwrap())
            .collect();
        let staged = creator.engine().unwrap().add_members(group, &kps).unwrap();
        creator.engine().unwrap().merge_pending(group).unwrap();
        (group, staged.welcome.unwrap())
    }

    /// [`store_incoming`] with the directory listing `inviter`'s real key
    /// (what the daemon looks up before storing a batch with Welcomes).
    pub(in crate::agent) fn store_from(
        c: &mut Core,
        inviter: &Core,
        batch: Vec<Fetched>,
    ) -> Result<Stored, CoreError> {
        let e = inviter.engine_ref().unwrap();
        let directory = Directory::from([(e.username().clone(), Some(e.identity_key()))]);
        store_incoming(c, batch, &directory)
    }

    /// What a core stored for the conversation of `group`.
    pub(in crate::agent) fn conversation(c: &Core, group: GroupId) -> Conversation {
        conversations::by_group(c.db(), group.as_bytes())
            .unwrap()
            .expect("the joined group has a conversation")
    }

    /// One call stores a whole batch: a Welcome, messages, and among them
    /// two that cannot be processed (a group we are not in, bytes that are
    /// not MLS) — those are skipped alone, everything else is stored.
    #[test]
    fn a_batch_is_stored_together_and_a_bad_message_is_skipped_alone() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob, mut carol] = cores(dir.path(), ["alice", "bob", "carol"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob]);
        let elsewhere = carol.engine().unwrap().create_group(Suite::Hybrid).unwrap();

        let batch = vec![
            fetched(1, &welcome),
            fetched(2, &text(&mut alice, group, "one")),
            fetched(3, &text(&mut carol, elsewhere, "not for bob")),
            Fetched {
                seq: 4,
                parsed: parse(b"not an MLS message"),
                peeked: None,
            },
            fetched(5, &text(&mut alice, group, "two")),
        ];
        let stored = store_from(&mut bob, &alice, batch).unwrap();

        assert_eq!(stored.joined, vec![group]);
        let texts: Vec<String> = stored
            .events
            .iter()
            .filter_map(|e| match e {
                Notification::Message(m) => Some(m.message.text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["one", "two"]);
        let conv = conversation(&bob, group);
        let history: Vec<String> = messages::history(bob.db(), conv.id, None, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(history, ["one", "two"]);
        assert!(bob.db().is_autocommit(), "the batch's transaction ended");
    }

    /// A refused Welcome is answered where it can be: we join only to send
    /// the decline notice with the reason and our leave proposal, then
    /// forget the group. The inviter sees why.
    #[test]
    fn a_refused_invitation_is_answered_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob] = cores(dir.path(), ["alice", "bob"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob]);
        // The directory lists another key for alice: an impostor.
        let directory = Directory::from([(
            alice.engine_ref().unwrap().username().clone(),
            Some(IdentityKey([9; 32])),
        )]);
        let stored = store_incoming(&mut bob, vec![fetched(1, &welcome)], &directory).unwrap();
        assert!(stored.joined.is_empty());
        assert!(
            bob.engine().unwrap().groups().unwrap().is_empty(),
            "nothing kept"
        );
        let [(to, messages)] = stored.replies.as_slice() else {
            panic!("one reply, got {:?}", stored.replies);
        };
        assert_eq!(*to, group);
        let [notice, leave] = messages.as_slice() else {
            panic!("the notice and the leave proposal");
        };
        match alice.engine().unwrap().process(notice).unwrap() {
            crate::mls::Processed::Application { plaintext, .. } => {
                match Payload::decode(&plaintext).unwrap() {
                    Payload::Declined { reason } => {
                        assert!(reason.contains("posing as alice"), "{reason}")
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            alice.engine().unwrap().process(leave).unwrap(),
            crate::mls::Processed::Proposal { .. }
        ));
    }

    /// A group made before the server validated groups (schema 13 marks
    /// its conversation legacy) is re-created by its first member; the
    /// Welcome of the new group from that member, with the same members,
    /// takes over the conversation: same id, history kept, the move said.
    /// A Welcome from anyone else is an ordinary new conversation.
    #[test]
    fn a_re_created_legacy_group_keeps_its_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob, mut carol] = cores(dir.path(), ["alice", "bob", "carol"]);
        let (old, welcome) = group_of(&mut alice, team(), &mut [&mut bob]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        let hello = text(&mut alice, old, "before");
        store_from(&mut bob, &alice, vec![fetched(2, &hello)]).unwrap();
        let before = conversation(&bob, old);
        bob.db()
            .execute("UPDATE conversations SET legacy = 1", [])
            .unwrap();

        // Carol is no member of it: her group with bob is new.
        let (other, welcome) = group_of(&mut carol, team(), &mut [&mut bob]);
        store_from(&mut bob, &carol, vec![fetched(3, &welcome)]).unwrap();
        assert_ne!(conversation(&bob, other).id, before.id);

        let (new, welcome) = group_of(&mut alice, team(), &mut [&mut bob]);
        store_from(&mut bob, &alice, vec![fetched(4, &welcome)]).unwrap();
        let after = conversation(&bob, new);
        assert_eq!(after.id, before.id, "the same conversation");
        assert!(conversations::legacy(bob.db()).unwrap().is_empty());
        assert!(
            !bob.engine().unwrap().groups().unwrap().contains(&old),
            "the legacy group's state is gone"
        );
        let history: Vec<String> = messages::history(bob.db(), after.id, None, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[0], "before");
        assert!(history[1].contains("moved to a new group"), "{history:?}");
    }

    /// A group's name is not in its (public) group context: a joiner shows
    /// a placeholder naming the members until the adder's encrypted name
    /// arrives; the name arriving again changes nothing.
    #[test]
    fn a_joiner_learns_the_name_from_an_encrypted_message() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob, mut carol] = cores(dir.path(), ["alice", "bob", "carol"]);
        let unnamed = ConversationInfo::Group { name: None };
        let (group, welcome) = group_of(&mut alice, unnamed, &mut [&mut bob, &mut carol]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        assert_eq!(conversation(&bob, group).name, "group with alice, carol");

        let body = Payload::GroupName {
            name: "team".into(),
        }
        .encode();
        let named = alice.engine().unwrap().encrypt(group, &body).unwrap();
        let again = alice.engine().unwrap().encrypt(group, &body).unwrap();
        store_from(&mut bob, &alice, vec![fetched(2, &named)]).unwrap();
        store_from(&mut bob, &alice, vec![fetched(3, &again)]).unwrap();
        let conv = conversation(&bob, group);
        assert_eq!(conv.name, "team");
        let history = |bob: &Core| -> Vec<String> {
            messages::history(bob.db(), conv.id, None, 10)
                .unwrap()
                .into_iter()
                .map(|m| m.text)
                .collect()
        };
        assert!(history(&bob).is_empty(), "the name we were invited to");

        // A later rename is said, with who made it.
        let c = alice.engine().unwrap().self_update(group).unwrap();
        alice.engine().unwrap().merge_pending(group).unwrap();
        store_from(&mut bob, &alice, vec![fetched(4, &c.commit)]).unwrap();
        let body = Payload::GroupName {
            name: "renamed".into(),
        }
        .encode();
        let renamed = alice.engine().unwrap().encrypt(group, &body).unwrap();
        let stored = store_from(&mut bob, &alice, vec![fetched(5, &renamed)]).unwrap();
        assert_eq!(conversation(&bob, group).name, "renamed");
        // Front-ends are told (a `conversation` notification), not only
        // the history.
        assert!(
            stored.events.iter().any(
                |e| matches!(e, Notification::Conversation(u) if u.conversation.name == "renamed")
            ),
            "{:?}",
            stored.events
        );
        assert_eq!(history(&bob), ["alice named the group “renamed”"]);
    }

    /// Attack: hold a member's message back (a slow or malicious server)
    /// until the group has moved past the epochs whose keys are kept, so it
    /// can never be decrypted — and hope nobody notices it was sent. The
    /// defence: the lost message is reported in its conversation, by a
    /// notice with no sender (`lost_message_notice`).
    #[test]
    fn a_message_held_back_past_the_key_window_is_reported_as_lost() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob] = cores(dir.path(), ["alice", "bob"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        let joined_at = bob.engine().unwrap().epoch(group).unwrap();

        let held_back = text(&mut alice, group, "held back");
        let mut seq = 2;
        for _ in 0..=crate::mls::MAX_PAST_EPOCHS {
            let c = alice.engine().unwrap().self_update(group).unwrap();
            alice.engine().unwrap().merge_pending(group).unwrap();
            store_from(&mut bob, &alice, vec![fetched(seq, &c.commit)]).unwrap();
            seq += 1;
        }
        let now = bob.engine().unwrap().epoch(group).unwrap();
        assert_eq!(
            now.0,
            joined_at.0 + crate::mls::MAX_PAST_EPOCHS as u64 + 1,
            "bob followed every commit, so the held-back epoch's keys are gone"
        );
        let stored = store_from(&mut bob, &alice, vec![fetched(seq, &held_back)]).unwrap();

        let history = messages::history(bob.db(), conversation(&bob, group).id, None, 10).unwrap();
        let [notice] = history.as_slice() else {
            panic!("one notice in the conversation, got {history:?}");
        };
        assert_eq!(notice.sender, "", "a notice, not a message from someone");
        assert!(
            notice.text.contains("could not be decrypted")
                && notice.text.contains(&format!("epoch {}", joined_at.0)),
            "{}",
            notice.text
        );
        assert!(
            stored
                .events
                .iter()
                .any(|e| matches!(e, Notification::Message(m) if m.message.text == notice.text)),
            "front-ends are told at once: {:?}",
            stored.events
        );
    }

    /// Attack: a member creates a group with a third user and labels it a
    /// DM, so it shows as a private conversation with him (named after him,
    /// his DM) while someone else reads along. The defence: a Welcome
    /// labelled DM is a DM only if the group is exactly the inviter and us
    /// (`joined_conversation`); otherwise it is an ordinary group.
    #[test]
    fn a_dm_label_on_a_group_of_three_does_not_make_it_a_dm() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob, mut carol, mut dave] =
            cores(dir.path(), ["alice", "bob", "carol", "dave"]);

        let (three, welcome) = group_of(
            &mut alice,
            ConversationInfo::Dm,
            &mut [&mut bob, &mut carol],
        );
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        let conv = conversation(&bob, three);
        assert_eq!(conv.kind, Kind::Group, "{conv:?}");
        assert_eq!(conv.peer, None, "{conv:?}");
        assert_eq!(conversations::dm_with(bob.db(), "alice").unwrap(), None);

        // The same label on a group of two is honoured: the check is the
        // member count, not a refusal of every DM label.
        let (two, welcome) = group_of(&mut alice, ConversationInfo::Dm, &mut [&mut dave]);
        store_from(&mut dave, &alice, vec![fetched(1, &welcome)]).unwrap();
        let conv = conversation(&dave, two);
        assert_eq!(conv.kind, Kind::Dm, "{conv:?}");
        assert_eq!(conv.peer.as_deref(), Some("alice"));
    }

    /// Attack: a member of a group relabels it, for everyone, as a DM with
    /// himself (or renames it) by sending a conversation-info message — what
    /// the old `meta` payload did. The defence: a conversation's kind and
    /// name come only from the creator's group context, read once at join;
    /// an application message that is not text or a receipt changes nothing.
    #[test]
    fn a_member_cannot_relabel_a_group_as_a_dm_with_himself() {
        let dir = tempfile::tempdir().unwrap();
        let [mut alice, mut bob, mut carol] = cores(dir.path(), ["alice", "bob", "carol"]);
        let (group, welcome) = group_of(&mut alice, team(), &mut [&mut bob, &mut carol]);
        store_from(&mut bob, &alice, vec![fetched(1, &welcome)]).unwrap();
        store_from(&mut carol, &alice, vec![fetched(1, &welcome)]).unwrap();
        let before = conversation(&carol, group);

        let relabels = [
            &br#"qpq1{"t":"meta","kind":"dm","name":"@bob"}"#[..],
            br#"qpq1{"t":"meta","kind":"group","name":"bob's"}"#,
            &ConversationInfo::Dm.encode(),
        ]
        .map(|body| bob.engine().unwrap().encrypt(group, body).unwrap());
        let batch = relabels
            .iter()
            .enumerate()
            .map(|(i, m)| fetched(2 + i as u64, m))
            .chain([fetched(9, &text(&mut bob, group, "still a group"))])
            .collect();
        store_from(&mut carol, &alice, batch).unwrap();

        let after = conversation(&carol, group);
        assert_eq!(
            after,
            Conversation {
                last_activity_ms: after.last_activity_ms,
                ..before
            }
        );
        assert_eq!(conversations::dm_with(carol.db(), "bob").unwrap(), None);
        let history: Vec<String> = messages::history(carol.db(), after.id, None, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(history, ["still a group"], "bob's messages did arrive");
    }
}
