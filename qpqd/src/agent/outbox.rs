//! Sending: `send` makes a message durable in the outbox (one core trip);
//! the drain picks the next entry, encrypts it for its group and looks up
//! the recipients' DM channels (one trip), enqueues it on the server, then
//! marks it sent and prepares the next entry (one trip) — three trips for a
//! message sent alone, two each in a burst. DM channels are created on first
//! use and kept.

use std::sync::Arc;
use std::time::Duration;

use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::ipc::notifications::{DeliveryUpdate, NewMessage, Notification};
use quicproquo_protocol::ipc::values::{
    ConversationRef, DeliveryState, Message as IpcMessage, MessageId,
};
use quicproquo_protocol::padding;
use quicproquo_protocol::text::MessageText;
use quicproquo_protocol::types::{ChannelId, IdempotencyKey, IdentityKey, Username};
use quicproquo_protocol::wire::{self, Delivery};
use tokio::sync::OwnedMutexGuard;

use super::history::{conv_id, find_active, ipc_message};
use super::{emit, Agent, AgentError, AgentResult, GroupLocks};
use crate::core::{Core, CoreError};
use crate::db::conversations;
use crate::db::messages::{self, Message, State};
use crate::db::{now_ms, outbox, Id};
use crate::link::{ConnState, Link};
use crate::mls::{GroupId, MlsError};
use crate::payload::Payload;

/// Someone a message goes to, with our DM channel to them if we have one.
#[derive(Debug, Clone)]
pub(crate) struct Recipient {
    pub username: Username,
    pub identity: IdentityKey,
    pub channel: Option<ChannelId>,
}

/// What the drain does next (the outcome of [`prepare_outgoing`]).
enum Prepared {
    Empty,
    /// Only receipts wait, the next due in this many milliseconds.
    Wait(u64),
    /// The next entry's group has a commit in flight: wait for it.
    Busy(GroupId),
    /// The group has proposals to commit before anything can be encrypted.
    NeedsCommit(GroupId),
    Ready(Outgoing),
}

/// One encrypted MLS application message ready to enqueue: a chat message,
/// or the receipts of one DM batched into one.
struct Outgoing {
    conversation: Id,
    ciphertext: Vec<u8>,
    recipients: Vec<Recipient>,
    idempotency_key: [u8; 16],
    /// The outbox entries it stands for.
    seqs: Vec<u64>,
    /// The chat message whose state moves to `sent`.
    message_id: Option<Id>,
    /// Holds the group's lock until it is enqueued, so no commit of ours
    /// moves the epoch in between.
    _group: OwnedMutexGuard<()>,
}

impl Agent {
    pub async fn send(
        &self,
        r: &ConversationRef,
        text: &str,
        confirm_changed_keys: bool,
    ) -> AgentResult<IpcMessage> {
        let text = MessageText::new(text.to_owned())
            .map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        // Queuing for an account that is logged out would only fail later.
        self.token()?;
        let r = r.clone();
        let (msg, ev) = self
            .core()?
            .run(move |c| queue_outgoing(c, &r, text, confirm_changed_keys))
            .await?;
        self.publish(vec![ev]);
        self.outbox_kick.notify_one();
        Ok(ipc_message(&msg))
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
                    Err(e) => tracing::debug!(error = %e, "outbox paused"),
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
    /// the next due in `ms`. Two core trips per message: one prepares it,
    /// one records it sent and prepares the next.
    async fn drain_outbox(&self) -> AgentResult<Option<u64>> {
        let core = self.core()?;
        let locks = Arc::clone(&self.group_locks);
        let mut next = core
            .run(move |c| prepare_outgoing(c, &locks, now_ms()))
            .await?;
        loop {
            let out = match next {
                Prepared::Empty => return Ok(None),
                Prepared::Wait(ms) => return Ok(Some(ms)),
                Prepared::Busy(group) => {
                    drop(self.group_lock(&group.0).lock().await);
                    let locks = Arc::clone(&self.group_locks);
                    next = core
                        .run(move |c| prepare_outgoing(c, &locks, now_ms()))
                        .await?;
                    continue;
                }
                Prepared::NeedsCommit(group) => {
                    self.commit(group, &[], move |c| {
                        c.engine()?
                            .commit_pending_proposals(group)
                            .map_err(CoreError::from)
                    })
                    .await?;
                    let locks = Arc::clone(&self.group_locks);
                    next = core
                        .run(move |c| prepare_outgoing(c, &locks, now_ms()))
                        .await?;
                    continue;
                }
                Prepared::Ready(out) => out,
            };
            let sent = if out.recipients.is_empty() {
                Ok(false)
            } else {
                self.deliver(
                    &out.recipients,
                    &out.ciphertext,
                    IdempotencyKey(out.idempotency_key),
                )
                .await
            };
            let Outgoing {
                conversation,
                seqs,
                message_id,
                _group,
                ..
            } = out;
            drop(_group);
            let done = match sent {
                Ok(_) => Done::Sent {
                    seqs,
                    conversation,
                    message_id,
                },
                Err(AgentError::Refused(w))
                    if w.code != ErrorCode::QueueFull && w.code != ErrorCode::RateLimited =>
                {
                    // Refused for good (e.g. no longer authorized): drop it
                    // rather than block everything behind it.
                    tracing::warn!(code = %w.code, "an outgoing message was refused by the server");
                    Done::Dropped { seqs }
                }
                Err(e) => return Err(e),
            };
            let locks = Arc::clone(&self.group_locks);
            let (ev, prepared) = core
                .run(move |c| finish_outgoing(c, done, &locks, now_ms()))
                .await?;
            self.publish(ev.into_iter().collect());
            next = prepared;
        }
    }

    /// The DM channel with `user`, created (the server answers the same id
    /// for the same pair every time) and kept.
    pub(crate) async fn channel_to(
        &self,
        user: &Username,
        identity: IdentityKey,
    ) -> AgentResult<ChannelId> {
        let link = self.online_link().await?;
        let channel = link
            .request(wire::CreateChannel {
                auth: self.token()?,
                peer: identity,
            })
            .await?;
        let name = user.to_string();
        // Kept only for the key pinned for the name (which comes from the
        // server's directory): a key from an MLS credential never re-pins a
        // name, so an impostor leaf cannot take over a contact's channel.
        self.core()?
            .run(move |c| -> rusqlite::Result<_> {
                conversations::set_channel_for(
                    c.db(),
                    &name,
                    identity.as_bytes(),
                    channel.as_bytes(),
                )
            })
            .await?;
        Ok(channel)
    }

    /// One payload to several members, each through our DM channel with
    /// them (created first where we have none). `true` when the server had
    /// it already (a retry).
    pub(crate) async fn deliver(
        &self,
        to: &[Recipient],
        mls_message: &[u8],
        key: IdempotencyKey,
    ) -> AgentResult<bool> {
        let mut deliveries = Vec::with_capacity(to.len());
        for r in to {
            let channel = match r.channel {
                Some(c) => c,
                None => self
                    .channel_to(&r.username, r.identity)
                    .await
                    .map_err(|_| AgentError::offline())?,
            };
            deliveries.push(Delivery {
                recipient: r.identity,
                channel: Some(channel),
            });
        }
        let enqueued = self
            .link()?
            .request(wire::Enqueue {
                auth: self.token()?,
                deliveries,
                payload: padding::pad(mls_message),
                idempotency_key: key,
            })
            .await?;
        Ok(enqueued.duplicate)
    }

    /// The other members of a group (who receive what we send to it).
    pub(crate) async fn others(&self, group: GroupId) -> AgentResult<Vec<Recipient>> {
        self.core()?.run(move |c| others(c, group)).await
    }

    /// `users` with the DM channels we hold for them.
    pub(crate) async fn recipients(
        &self,
        users: Vec<(Username, IdentityKey)>,
    ) -> AgentResult<Vec<Recipient>> {
        self.core()?.run(move |c| with_channels(c, users)).await
    }
}

/// Core operation: checks and stores an outgoing message — durable in the
/// history and the outbox, its notification logged — in one transaction.
fn queue_outgoing(
    c: &mut Core,
    r: &ConversationRef,
    text: MessageText,
    confirm_changed_keys: bool,
) -> AgentResult<(Message, Notification)> {
    c.atomically(|c| {
        let conv = find_active(c, r)?;
        let me = c.engine()?.username().to_string();
        if !confirm_changed_keys {
            refuse_changed_keys(c, &conv.group_id)?;
        }
        let m = Message {
            id: Id::random(),
            conversation: conv.id,
            sender: me,
            timestamp_ms: now_ms(),
            text: text.into_string(),
            outgoing: true,
            state: State::Queued,
        };
        messages::insert(c.db(), &m)?;
        let body = Payload::text(m.id, m.timestamp_ms, &m.text).encode();
        outbox::push(c.db(), conv.id, &body, Some(m.id), now_ms())?;
        conversations::touch(c.db(), conv.id, m.timestamp_ms)?;
        let ev = emit(c, |seq| {
            Notification::Message(NewMessage {
                seq,
                message: ipc_message(&m),
            })
        })?;
        Ok((m, ev))
    })
}

/// `IdentityChanged` if a member's key changed and the user has not
/// confirmed sending anyway.
fn refuse_changed_keys(c: &mut Core, group: &[u8]) -> AgentResult<()> {
    let Some(g) = GroupId::from_slice(group) else {
        return Ok(());
    };
    let Ok(members) = c.engine()?.members(g) else {
        return Ok(());
    };
    for m in members {
        let u = m.username.as_str();
        let k = conversations::contact(c.db(), u)?;
        if conversations::trust(k.as_ref(), &m.identity.0).1 {
            return Err(AgentError::IdentityChanged(format!(
                "the identity key of `{u}` changed: compare safety numbers (verify {u}), then resend with confirmation"
            )));
        }
    }
    Ok(())
}

/// Core operation: the next outbox entry, encrypted for its group, with its
/// recipients and their channels. Entries of conversations we left are
/// dropped on the way.
fn prepare_outgoing(c: &mut Core, locks: &GroupLocks, now: u64) -> AgentResult<Prepared> {
    loop {
        let (conversation, body, idempotency_key, seqs, message_id) =
            match outbox::next(c.db(), now)? {
                outbox::Next::Empty => return Ok(Prepared::Empty),
                outbox::Next::Wait(ms) => return Ok(Prepared::Wait(ms)),
                outbox::Next::Message(e) => (
                    e.conversation,
                    e.body,
                    e.idempotency_key,
                    vec![e.seq],
                    e.message_id,
                ),
                outbox::Next::Receipts {
                    conversation,
                    ids,
                    seqs,
                    idempotency_key,
                } => (
                    conversation,
                    Payload::Receipt {
                        ids: ids.iter().map(Id::to_string).collect(),
                    }
                    .encode(),
                    idempotency_key,
                    seqs,
                    None,
                ),
            };
        let group = conversations::by_id(c.db(), conversation)?
            .filter(|c| c.active)
            .and_then(|c| GroupId::from_slice(&c.group_id));
        let Some(group) = group else {
            outbox::remove_all(c.db(), &seqs)?;
            continue;
        };
        let Ok(guard) = locks.get(&group.0).try_lock_owned() else {
            return Ok(Prepared::Busy(group));
        };
        let recipients = others(c, group)?;
        let ciphertext = match c.engine()?.encrypt(group, &body) {
            Ok(ct) => ct,
            Err(MlsError::PendingProposals(_)) => return Ok(Prepared::NeedsCommit(group)),
            Err(e) => return Err(e.into()),
        };
        return Ok(Prepared::Ready(Outgoing {
            conversation,
            ciphertext,
            recipients,
            idempotency_key,
            seqs,
            message_id,
            _group: guard,
        }));
    }
}

/// How an entry left the outbox.
enum Done {
    Sent {
        seqs: Vec<u64>,
        conversation: Id,
        message_id: Option<Id>,
    },
    /// Refused by the server for good.
    Dropped { seqs: Vec<u64> },
}

/// Core operation: records how the last entry went, then prepares the next.
fn finish_outgoing(
    c: &mut Core,
    done: Done,
    locks: &GroupLocks,
    now: u64,
) -> AgentResult<(Option<Notification>, Prepared)> {
    let ev = match done {
        Done::Sent {
            seqs,
            conversation,
            message_id,
        } => mark_sent(c, &seqs, conversation, message_id)?,
        Done::Dropped { seqs } => {
            outbox::remove_all(c.db(), &seqs)?;
            None
        }
    };
    Ok((ev, prepare_outgoing(c, locks, now)?))
}

/// Core operation: the entries `seqs` went out; a chat message moves to
/// `sent` (unless a receipt made it `delivered` already).
fn mark_sent(
    c: &mut Core,
    seqs: &[u64],
    conversation: Id,
    message_id: Option<Id>,
) -> AgentResult<Option<Notification>> {
    c.atomically(|c| {
        outbox::remove_all(c.db(), seqs)?;
        let Some(mid) = message_id else {
            return Ok(None);
        };
        if !messages::advance(c.db(), mid, conversation, State::Sent)? {
            return Ok(None);
        }
        Ok(Some(emit(c, |seq| {
            Notification::Delivery(DeliveryUpdate {
                seq,
                conversation: conv_id(conversation),
                id: MessageId(mid.0),
                state: DeliveryState::Sent,
            })
        })?))
    })
}

/// Core operation: the other members of `group`, with their channels.
pub(crate) fn others(c: &mut Core, group: GroupId) -> AgentResult<Vec<Recipient>> {
    let e = c.engine()?;
    let me = e.identity_key();
    let users = e
        .members(group)
        .map_err(CoreError::from)?
        .into_iter()
        .filter(|m| m.identity != me)
        .map(|m| (m.username, m.identity))
        .collect();
    with_channels(c, users)
}

/// Core operation: `users` with the channel we keep for each (none where the
/// key we pinned is not the one given: that channel is someone else's).
fn with_channels(c: &Core, users: Vec<(Username, IdentityKey)>) -> AgentResult<Vec<Recipient>> {
    users
        .into_iter()
        .map(|(username, identity)| {
            let channel = conversations::contact(c.db(), username.as_str())?
                .filter(|k| k.identity == identity.0)
                .and_then(|k| k.channel)
                .map(ChannelId);
            Ok(Recipient {
                username,
                identity,
                channel,
            })
        })
        .collect()
}
