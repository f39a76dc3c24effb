//! Sending (durable in the outbox before `send` returns), draining the
//! outbox when the server is reachable, and receiving: every message is
//! processed and stored in one transaction before it is acknowledged to the
//! server, so nothing received is lost and a redelivery is shown once.

use std::sync::Arc;
use std::time::Duration;

use quicproquo_protocol::client::ClientError;
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::ipc::error::IpcErrorCode;
use quicproquo_protocol::ipc::notifications::{
    DeliveryUpdate, MembershipChange, NewMessage, Notification,
};
use quicproquo_protocol::ipc::values::{
    ConversationRef, DeliveryState, MembershipEvent, Message as IpcMessage, MessageId, MessageState,
};
use quicproquo_protocol::padding;
use quicproquo_protocol::types::IdempotencyKey;
use quicproquo_protocol::wire::{Envelope, Request, Response};

use super::{conv_id, emit, err, internal, Agent, AgentResult};
use crate::core::{Core, CoreError};
use crate::db::conversations::{self, Conversation, Kind};
use crate::db::messages::{self, Message, State};
use crate::db::{now_ms, outbox, Id};
use crate::link::{ConnState, Link, LinkError};
use crate::mls::{classify, GroupId, Incoming, Joined, MlsError, Processed, ProposalKind};
use crate::payload::{ConversationInfo, Payload, MAX_TEXT_BYTES};

/// How long one `fetchWait` is held by the server.
const FETCH_WAIT_MS: u32 = 25_000;

pub(crate) fn ipc_message(m: &Message) -> IpcMessage {
    IpcMessage {
        id: MessageId(m.id.0),
        conversation: conv_id(m.conversation),
        sender: m.sender.clone(),
        timestamp_ms: m.timestamp_ms,
        text: m.text.clone(),
        outgoing: m.outgoing,
        state: match m.state {
            State::Queued => MessageState::Queued,
            State::Sent => MessageState::Sent,
            State::Delivered => MessageState::Delivered,
            State::Received => MessageState::Received,
        },
    }
}

/// What processing one envelope produced.
enum Outcome {
    Events(Vec<Notification>),
    Joined(GroupId, Vec<Notification>),
    CommitProposals(GroupId, Vec<Notification>),
}

impl Agent {
    pub async fn send(
        &self,
        r: &ConversationRef,
        text: &str,
        confirm_changed_keys: bool,
    ) -> AgentResult<IpcMessage> {
        if text.trim().is_empty() {
            return Err(err(
                IpcErrorCode::InvalidInput,
                "an empty message is not sent",
            ));
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(err(
                IpcErrorCode::InvalidInput,
                format!(
                    "the message is {} bytes; the limit is {MAX_TEXT_BYTES}",
                    text.len()
                ),
            ));
        }
        // Queuing for an account that is logged out would only fail later.
        self.token().await?;
        let conv = self.find(r).await?;
        if !conv.active {
            return Err(err(
                IpcErrorCode::NotFound,
                format!("you are no longer a member of `{r}`"),
            ));
        }
        let me = self.whoami().await?.username;
        let text = text.to_owned();
        let conv_id_ = conv.id;
        let group = conv.group_id.clone();
        let (msg, ev) = self
            .core()?
            .run(move |c| {
                c.atomically(|c| -> Result<_, SendError> {
                    if !confirm_changed_keys {
                        if let Some(g) = GroupId::from_slice(&group) {
                            if let Ok(members) = c.engine()?.members(g) {
                                for m in members {
                                    if let Some(k) = conversations::contact(c.db(), m.username.as_str())? {
                                        if k.key_changed {
                                            return Err(SendError::Changed(m.username.to_string()));
                                        }
                                    }
                                }
                            }
                        }
                    }
                    let m = Message {
                        id: Id::random(),
                        conversation: conv_id_,
                        sender: me,
                        timestamp_ms: now_ms(),
                        text,
                        outgoing: true,
                        state: State::Queued,
                    };
                    messages::insert(c.db(), &m)?;
                    let body = Payload::text(m.id, m.timestamp_ms, &m.text).encode();
                    outbox::push(c.db(), conv_id_, &body, Some(m.id), now_ms())?;
                    conversations::touch(c.db(), conv_id_, m.timestamp_ms)?;
                    let ev = emit(c, |seq| {
                        Notification::Message(NewMessage {
                            seq,
                            message: ipc_message(&m),
                        })
                    })?;
                    Ok((m, ev))
                })
            })
            .await
            .map_err(|e| match e {
                SendError::Changed(u) => err(
                    IpcErrorCode::IdentityChanged,
                    format!("the identity key of `{u}` changed: compare safety numbers (verify {u}), then resend with confirmation"),
                ),
                SendError::Core(c) => c.into(),
            })?;
        self.publish(vec![ev]);
        self.outbox_kick.notify_one();
        Ok(ipc_message(&msg))
    }

    pub async fn history(
        &self,
        r: &ConversationRef,
        before: Option<MessageId>,
        limit: u32,
    ) -> AgentResult<Vec<IpcMessage>> {
        let conv = self.find(r).await?;
        let before = before.map(|m| Id(m.0));
        self.core()?
            .run(move |c| messages::history(c.db(), conv.id, before, limit))
            .await
            .map(|ms| ms.iter().map(ipc_message).collect())
            .map_err(internal)
    }

    pub async fn search(
        &self,
        query: &str,
        r: Option<&ConversationRef>,
        limit: u32,
    ) -> AgentResult<Vec<IpcMessage>> {
        let conv = match r {
            Some(r) => Some(self.find(r).await?.id),
            None => None,
        };
        let q = query.to_owned();
        self.core()?
            .run(move |c| messages::search(c.db(), &q, conv, limit))
            .await
            .map(|ms| ms.iter().map(ipc_message).collect())
            .map_err(internal)
    }

    pub async fn read(&self, r: &ConversationRef, up_to: Option<MessageId>) -> AgentResult<u64> {
        let conv = self.find(r).await?;
        let up_to = up_to.map(|m| Id(m.0));
        self.core()?
            .run(move |c| -> rusqlite::Result<u64> {
                messages::mark_read(c.db(), conv.id, up_to)?;
                messages::unread(c.db(), conv.id)
            })
            .await
            .map_err(internal)
    }

    /// Drains the outbox whenever something is queued or the link comes up.
    pub(crate) async fn outbox_loop(self: Arc<Self>, link: Link) {
        let mut shutdown = self.shutdown_signal();
        loop {
            let mut idle = Duration::from_secs(5);
            if link.state() == ConnState::Online {
                match self.drain_outbox().await {
                    Ok(Some(receipts_due_ms)) => {
                        idle = idle.min(Duration::from_millis(receipts_due_ms));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e.message, "outbox paused"),
                }
            }
            tokio::select! {
                _ = self.outbox_kick.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Sends what the outbox holds; `Some(ms)` when only receipts wait,
    /// the next due in `ms`.
    async fn drain_outbox(&self) -> AgentResult<Option<u64>> {
        let core = self.core()?.clone();
        loop {
            let next = core
                .run(|c| outbox::next(c.db(), now_ms()))
                .await
                .map_err(internal)?;
            let entry = match next {
                outbox::Next::Empty => return Ok(None),
                outbox::Next::Wait(ms) => return Ok(Some(ms)),
                outbox::Next::Message(e) => Outgoing {
                    conversation: e.conversation,
                    body: e.body,
                    idempotency_key: e.idempotency_key,
                    seqs: vec![e.seq],
                    message_id: e.message_id,
                },
                outbox::Next::Receipts {
                    conversation,
                    ids,
                    seqs,
                    idempotency_key,
                } => Outgoing {
                    conversation,
                    body: Payload::Receipt {
                        ids: ids.iter().map(Id::to_string).collect(),
                    }
                    .encode(),
                    idempotency_key,
                    seqs,
                    message_id: None,
                },
            };
            let conv_id_ = entry.conversation;
            let conv = core
                .run(move |c| conversations::by_id(c.db(), conv_id_))
                .await
                .map_err(internal)?;
            let Some(group) = conv
                .as_ref()
                .filter(|c| c.active)
                .and_then(|c| GroupId::from_slice(&c.group_id))
            else {
                let seqs = entry.seqs;
                core.run(move |c| outbox::remove_all(c.db(), &seqs))
                    .await
                    .map_err(internal)?;
                continue;
            };
            let lock = self.group_lock(&group.0);
            let guard = lock.lock().await;
            let recipients = self.others(group).await?;
            let body = entry.body.clone();
            let encrypted = core
                .run(move |c| c.engine()?.encrypt(group, &body).map_err(CoreError::from))
                .await;
            let ciphertext = match encrypted {
                Ok(ct) => ct,
                Err(CoreError::Mls(MlsError::PendingProposals(_))) => {
                    drop(guard);
                    self.commit(group, &[], move |c| {
                        c.engine()?
                            .commit_pending_proposals(group)
                            .map_err(CoreError::from)
                    })
                    .await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let sent = if recipients.is_empty() {
                Ok(false)
            } else {
                self.deliver(
                    &recipients,
                    &ciphertext,
                    IdempotencyKey(entry.idempotency_key),
                )
                .await
            };
            drop(guard);
            match sent {
                Ok(_) => {
                    let seqs = entry.seqs;
                    let mid = entry.message_id;
                    let ev = core
                        .run(move |c| {
                            c.atomically(|c| -> rusqlite::Result<Option<Notification>> {
                                outbox::remove_all(c.db(), &seqs)?;
                                let Some(mid) = mid else { return Ok(None) };
                                // A receipt may have made it `delivered` already.
                                if !messages::advance(c.db(), mid, conv_id_, State::Sent)? {
                                    return Ok(None);
                                }
                                Ok(Some(emit(c, |seq| {
                                    Notification::Delivery(DeliveryUpdate {
                                        seq,
                                        conversation: conv_id(conv_id_),
                                        id: MessageId(mid.0),
                                        state: DeliveryState::Sent,
                                    })
                                })?))
                            })
                        })
                        .await
                        .map_err(internal)?;
                    self.publish(ev.into_iter().collect());
                }
                Err(LinkError::Call(ClientError::Server(w)))
                    if w.code != ErrorCode::QueueFull && w.code != ErrorCode::RateLimited =>
                {
                    // Refused for good (e.g. no longer authorized): drop it
                    // rather than block everything behind it.
                    tracing::warn!(code = %w.code, "an outgoing message was refused by the server");
                    let seqs = entry.seqs;
                    core.run(move |c| outbox::remove_all(c.db(), &seqs))
                        .await
                        .map_err(internal)?;
                }
                Err(e) => return Err(super::from_link(e)),
            }
        }
    }

    /// Long-polls the mailbox and processes what arrives, in order.
    pub(crate) async fn receive_loop(self: Arc<Self>, link: Link) {
        let mut shutdown = self.shutdown_signal();
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
            let Ok(token) = self.token().await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let wait = Request::FetchWait {
                auth: token.clone(),
                channel: None,
                limit: 100,
                timeout_ms: FETCH_WAIT_MS,
            };
            let fetched = tokio::select! {
                r = link.call(&wait) => r,
                _ = shutdown.changed() => return,
            };
            let mail = match fetched {
                Ok(Response::FetchWait(m)) => m,
                Ok(other) => {
                    tracing::warn!(?other, "unexpected answer to fetchWait");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "fetchWait failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if mail.is_empty() {
                continue;
            }
            let mut seqs = Vec::with_capacity(mail.len());
            for env in mail {
                seqs.push(env.seq);
                match self.process(&env).await {
                    Ok(Outcome::Events(ev)) => self.publish(ev),
                    Ok(Outcome::Joined(g, ev)) => {
                        self.publish(ev);
                        self.spawn_self_update(g);
                    }
                    Ok(Outcome::CommitProposals(g, ev)) => {
                        self.publish(ev);
                        self.spawn_commit_proposals(g);
                    }
                    Err(e) => {
                        tracing::warn!(seq = env.seq, error = %e, "an incoming message could not be processed")
                    }
                }
            }
            // Receipts for what was just stored wait in the outbox.
            self.outbox_kick.notify_one();
            // Stored (or found unprocessable) before acknowledged.
            if let Err(e) = link.call(&Request::Ack { auth: token, seqs }).await {
                tracing::debug!(error = %e, "ack failed; the mail will be redelivered and de-duplicated");
            }
        }
    }

    async fn process(&self, env: &Envelope) -> Result<Outcome, String> {
        let bytes = padding::unpad(&env.payload)
            .map_err(|e| e.to_string())?
            .to_vec();
        let kind = classify(&bytes).map_err(|e| e.to_string())?;
        match kind {
            Incoming::Welcome => {
                let core = self.core().map_err(|e| e.message)?;
                core.run(move |c| join(c, &bytes))
                    .await
                    .map_err(|e| e.to_string())
            }
            Incoming::Group { group, content, .. } => {
                let lock = self.group_lock(&group.0);
                let _guard = match content {
                    crate::mls::ContentType::Application => None,
                    _ => Some(lock.lock().await),
                };
                let core = self.core().map_err(|e| e.message)?;
                core.run(move |c| process_group(c, group, &bytes))
                    .await
                    .map_err(|e| e.to_string())
            }
            other => Err(format!("unexpected message kind {other:?}")),
        }
    }
}

/// One MLS application message the outbox sends: a chat message, or the
/// receipts of one DM batched into one.
struct Outgoing {
    conversation: Id,
    body: Vec<u8>,
    idempotency_key: [u8; 16],
    /// The outbox entries it stands for.
    seqs: Vec<u64>,
    /// The chat message whose state moves to `sent`.
    message_id: Option<Id>,
}

enum SendError {
    Changed(String),
    Core(CoreError),
}

impl From<rusqlite::Error> for SendError {
    fn from(e: rusqlite::Error) -> Self {
        SendError::Core(e.into())
    }
}

impl From<CoreError> for SendError {
    fn from(e: CoreError) -> Self {
        SendError::Core(e)
    }
}

fn join(c: &mut Core, welcome: &[u8]) -> Result<Outcome, CoreError> {
    c.atomically(|c| {
        let joined = c.engine()?.join(welcome)?;
        let mut events = super::pin_members(c, &joined.members)?;
        let Some(conv) = joined_conversation(c, &joined)? else {
            return Ok(Outcome::Joined(joined.group, events));
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
        Ok(Outcome::Joined(joined.group, events))
    })
}

/// The conversation a group we just joined belongs to, stored: the one we
/// had if we were re-added, else a new one named by the creator's
/// conversation info. `None` when it is a second group for a DM we have
/// (both users opened it at once), merged into that DM.
fn joined_conversation(c: &Core, joined: &Joined) -> Result<Option<Conversation>, CoreError> {
    if let Some(conv) = conversations::by_group(c.db(), &joined.group.0)? {
        // Re-added to a group that removed us: same conversation, history kept.
        conversations::set_active(c.db(), conv.id, true)?;
        return Ok(Some(conv));
    }
    let inviter = joined.inviter.username.to_string();
    let (kind, name, peer) = match joined.info.as_deref().map(ConversationInfo::decode) {
        // A DM is a group of exactly the inviter and us.
        Some(Ok(ConversationInfo::Dm)) if joined.members.len() == 2 => {
            if let Some(dm) = conversations::dm_with(c.db(), &inviter)? {
                let kept = conversations::merge_dm_group(c.db(), &dm, &joined.group.0)?;
                tracing::info!(
                    peer = %inviter,
                    sending_on = %hex::encode(&kept.group_id),
                    "both opened the DM at once; merged the second group into it"
                );
                return Ok(None);
            }
            (Kind::Dm, format!("@{inviter}"), Some(inviter))
        }
        Some(Ok(ConversationInfo::Group { name })) => (Kind::Group, name, None),
        other => {
            if let Some(info) = other {
                tracing::info!(?info, %inviter, "unusable conversation info; named by group id");
            }
            let name = format!("group-{}", &joined.group.to_hex()[..8]);
            (Kind::Group, name, None)
        }
    };
    let conv = super::new_conversation(kind, name, joined.group, peer, joined.suite);
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

fn process_group(c: &mut Core, group: GroupId, bytes: &[u8]) -> Result<Outcome, CoreError> {
    c.atomically(|c| {
        let conv = conversations::by_group(c.db(), &group.0)?;
        let processed = match c.engine()?.process(bytes) {
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
                    return Ok(Outcome::Events(Vec::new()));
                };
                let joined = conversations::joined_epoch(c.db(), conv.id)?;
                let Some(text) = lost_message_notice(joined, message.0, current.0) else {
                    return Ok(Outcome::Events(Vec::new()));
                };
                // Said in the conversation itself, so nobody thinks the
                // silence was the sender's.
                let m = Message {
                    id: Id::random(),
                    conversation: conv.id,
                    sender: String::new(),
                    timestamp_ms: now_ms(),
                    text,
                    outgoing: false,
                    state: State::Received,
                };
                messages::insert(c.db(), &m)?;
                let ev = emit(c, |seq| {
                    Notification::Message(NewMessage {
                        seq,
                        message: ipc_message(&m),
                    })
                })?;
                return Ok(Outcome::Events(vec![ev]));
            }
            Err(e @ (MlsError::Replay(_) | MlsError::StaleHandshake { .. })) => {
                tracing::info!(error = %e, "skipped a message");
                return Ok(Outcome::Events(Vec::new()));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(conv) = conv else {
            return Ok(Outcome::Events(Vec::new()));
        };
        match processed {
            Processed::Application {
                sender, plaintext, ..
            } => match Payload::decode(&plaintext) {
                Ok(Payload::Text { id, ts, text }) => {
                    let Some(id) = Id::parse_hex(&id) else {
                        return Ok(Outcome::Events(Vec::new()));
                    };
                    let m = Message {
                        id,
                        conversation: conv.id,
                        sender: sender.username.to_string(),
                        timestamp_ms: ts,
                        text,
                        outgoing: false,
                        state: State::Received,
                    };
                    if !messages::insert(c.db(), &m)? {
                        return Ok(Outcome::Events(Vec::new()));
                    }
                    conversations::touch(c.db(), conv.id, now_ms())?;
                    if conv.kind == Kind::Dm {
                        // Stored: tell the peer (through the outbox, batched,
                        // sent once we are online). DMs only: in a group every
                        // receipt would reach every member.
                        outbox::push_receipt(c.db(), conv.id, id, now_ms())?;
                    }
                    let ev = emit(c, |seq| {
                        Notification::Message(NewMessage {
                            seq,
                            message: ipc_message(&m),
                        })
                    })?;
                    Ok(Outcome::Events(vec![ev]))
                }
                Ok(Payload::Receipt { ids }) => {
                    let mut events = Vec::new();
                    if conv.kind != Kind::Dm {
                        return Ok(Outcome::Events(events));
                    }
                    for id in ids.iter().filter_map(|i| Id::parse_hex(i)) {
                        if messages::advance(c.db(), id, conv.id, State::Delivered)? {
                            events.push(emit(c, |seq| {
                                Notification::Delivery(DeliveryUpdate {
                                    seq,
                                    conversation: conv_id(conv.id),
                                    id: MessageId(id.0),
                                    state: DeliveryState::Delivered,
                                })
                            })?);
                        }
                    }
                    Ok(Outcome::Events(events))
                }
                Err(e) => {
                    tracing::info!(error = %e, "ignored an application message of unknown form");
                    Ok(Outcome::Events(Vec::new()))
                }
            },
            Processed::Commit(s) => {
                let mut events = super::pin_members(c, &s.added)?;
                let by = s.committer.username.to_string();
                let mut push = |c: &Core,
                                event: MembershipEvent,
                                members: Vec<String>|
                 -> rusqlite::Result<()> {
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
                conversations::touch(c.db(), conv.id, now_ms())?;
                Ok(Outcome::Events(events))
            }
            Processed::Proposal { kind, .. } => match kind {
                ProposalKind::Remove(_) | ProposalKind::Update => {
                    Ok(Outcome::CommitProposals(group, Vec::new()))
                }
                ProposalKind::Add(_) => Ok(Outcome::Events(Vec::new())),
            },
            Processed::Own { .. } => Ok(Outcome::Events(Vec::new())),
        }
    })
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
