//! Sending: `send` makes a message durable in the outbox (one core trip);
//! the drain picks the next entry and encrypts it for its group (one trip),
//! enqueues it on the server for the whole group (one `enqueueGroup`), then
//! marks it sent and prepares the next entry (one trip) — three trips for a
//! message sent alone, two each in a burst.
//!
//! Each conversation is a queue of its own ([`Queues`]): a conversation that
//! cannot send never holds up another. A failure that may pass (the
//! network, a rate limit, a full mailbox for a while) puts its conversation
//! in jittered back-off; one that will not (the server refusing us in the
//! group, a message that cannot be encrypted, a full mailbox past
//! [`FULL_MAILBOX_BUDGET_MS`]) parks the entry: the message becomes
//! `failed`, with its reason, until the user retries or discards it.
//! Receipts are never parked: one refused for good is dropped. A group
//! whose pending proposals cannot be committed drops them, so that it can
//! encrypt again, instead of refusing to send forever.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use quicproquo_protocol::backoff::Backoff;
use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::ipc::notifications::{DeliveryUpdate, NewMessage, Notification};
use quicproquo_protocol::ipc::values::{
    ConversationRef, DeliveryState, Message as IpcMessage, MessageId,
};
use quicproquo_protocol::padding;
use quicproquo_protocol::text::MessageText;
use quicproquo_protocol::types::{IdempotencyKey, IdentityKey};
use quicproquo_protocol::wire::{self, GroupEnqueued};
use tokio::sync::OwnedMutexGuard;

use super::history::{conv_id, find_active, stored_message};
use super::{emit, Agent, AgentError, AgentResult, GroupLocks};
use crate::core::{Core, CoreError};
use crate::db::conversations;
use crate::db::messages::{self, Message, State};
use crate::db::{now_ms, outbox, Id};
use crate::link::{ConnState, Link};
use crate::mls::{GroupId, Member, MlsError};
use crate::payload::Payload;

/// What the drain does next (the outcome of [`prepare_outgoing`]).
enum Prepared {
    Empty,
    /// Only receipts wait, the next due in this many milliseconds.
    Wait(u64),
    /// The conversation's group has a commit in flight: wait for it aside.
    Busy(Id, GroupId),
    /// The group has proposals to commit before anything can be encrypted.
    NeedsCommit(Id, GroupId),
    /// The entry cannot be encrypted for its group.
    Unsendable(Unsent, AgentError),
    Ready(Outgoing),
}

/// The outbox entries one MLS message stands for.
struct Unsent {
    conversation: Id,
    seqs: Vec<u64>,
    /// The chat message whose state follows (`None`: receipts).
    message_id: Option<Id>,
}

/// One encrypted MLS application message ready to enqueue: a chat message,
/// or the receipts of one DM batched into one.
struct Outgoing {
    entry: Unsent,
    group: GroupId,
    ciphertext: Vec<u8>,
    /// Nobody else is in the group: nothing to send.
    alone: bool,
    idempotency_key: [u8; 16],
    /// Holds the group's lock until it is enqueued, so no commit of ours
    /// moves the epoch in between.
    _group: OwnedMutexGuard<()>,
}

/// How long a full mailbox (E032) is retried before the message is parked:
/// long enough for a recipient who is back to make room, short enough that
/// the user learns the message is stuck.
pub(crate) const FULL_MAILBOX_BUDGET_MS: u64 = 5 * 60 * 1000;

/// The first and the longest wait before a conversation tries again.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the drain keeps per conversation between attempts, in memory:
/// after a restart every conversation tries at once.
#[derive(Default)]
pub(crate) struct Queues {
    /// Conversations in back-off after a failure that may pass.
    retrying: HashMap<Id, Retry>,
    /// Conversations waiting for a commit in their group (ours, committing
    /// pending proposals, or one holding the group's lock).
    waiting: HashSet<Id>,
}

struct Retry {
    backoff: Backoff,
    /// When the next attempt may go (Unix ms).
    at_ms: u64,
    /// When this run of failures began: a full mailbox's budget counts from
    /// here.
    since_ms: u64,
    /// Whether the last failure was the network (tried again as soon as the
    /// link is back).
    network: bool,
}

impl Queues {
    /// The conversations the drain leaves out at `now`.
    fn skip(&self, now: u64) -> Vec<Id> {
        self.retrying
            .iter()
            .filter(|(_, r)| r.at_ms > now)
            .map(|(id, _)| *id)
            .chain(self.waiting.iter().copied())
            .collect()
    }

    /// Milliseconds until the next conversation in back-off may try again.
    fn next_due(&self, now: u64) -> Option<u64> {
        self.retrying
            .values()
            .filter(|r| r.at_ms > now)
            .map(|r| r.at_ms - now)
            .min()
    }

    /// Records a failure of `conversation` at `now` and schedules its next
    /// attempt; returns for how long it has been failing.
    fn failed(&mut self, conversation: Id, now: u64, network: bool) -> u64 {
        let r = self.retrying.entry(conversation).or_insert_with(|| Retry {
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            at_ms: now,
            since_ms: now,
            network,
        });
        r.at_ms = now.saturating_add(r.backoff.wait().as_millis() as u64);
        r.network = network;
        now.saturating_sub(r.since_ms)
    }

    /// The conversation's next entry may go at once (after a success, a
    /// retry by the user, or a parked entry whose cause is its own).
    fn clear(&mut self, conversation: Id) {
        self.retrying.remove(&conversation);
    }

    /// After parking: the next entry goes at once, but a full mailbox keeps
    /// its run of failures, so the entries behind it are parked at their
    /// first refusal instead of each waiting out the budget again.
    fn parked(&mut self, conversation: Id, full_mailbox: bool) {
        match self.retrying.get_mut(&conversation) {
            Some(r) if full_mailbox => r.at_ms = 0,
            _ => self.clear(conversation),
        }
    }

    /// The link is back: what failed for want of it goes again now.
    fn online(&mut self) {
        self.retrying.retain(|_, r| !r.network);
    }
}

/// What becomes of an entry whose sending failed.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// It may pass: the conversation backs off and tries again.
    Retry,
    /// It will not pass by itself: park the entry with this reason.
    Park(String),
}

/// The verdict on `e` for a conversation that has been failing for
/// `failing_for_ms`. The reason names the server's code with the
/// catalogue's description, never the server's own text.
fn verdict(e: &AgentError, failing_for_ms: u64) -> Verdict {
    match e {
        AgentError::Refused(w) => match w.code {
            ErrorCode::QueueFull if failing_for_ms < FULL_MAILBOX_BUDGET_MS => Verdict::Retry,
            ErrorCode::RateLimited
            | ErrorCode::Internal
            | ErrorCode::ShuttingDown
            | ErrorCode::Unauthenticated => Verdict::Retry,
            ErrorCode::QueueFull => Verdict::Park(format!(
                "{}: {} (for {} minutes)",
                w.code,
                w.code.description(),
                FULL_MAILBOX_BUDGET_MS / 60_000
            )),
            code => Verdict::Park(format!("{code}: {}", code.description())),
        },
        AgentError::NetworkDown(_)
        | AgentError::Locked(_)
        | AgentError::NotLoggedIn(_)
        | AgentError::Contended(_) => Verdict::Retry,
        other => Verdict::Park(other.to_string()),
    }
}

impl Agent {
    pub async fn send(
        &self,
        r: &ConversationRef,
        text: &str,
        confirm_changed_keys: bool,
    ) -> AgentResult<IpcMessage> {
        self.send_reply(r, text, confirm_changed_keys, None).await
    }

    /// [`Agent::send`], answering message `reply_to` of the conversation.
    pub async fn send_reply(
        &self,
        r: &ConversationRef,
        text: &str,
        confirm_changed_keys: bool,
        reply_to: Option<MessageId>,
    ) -> AgentResult<IpcMessage> {
        let text = MessageText::new(text.to_owned())
            .map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        // Queuing for an account that is logged out would only fail later.
        self.token()?;
        let r = r.clone();
        let reply_to = reply_to.map(|m| Id(m.0));
        let (msg, ev) = self
            .core()?
            .run(move |c| {
                queue_outgoing(
                    c,
                    &r,
                    text.into_string(),
                    confirm_changed_keys,
                    reply_to,
                    None,
                )
            })
            .await?;
        self.publish(vec![ev]);
        self.outbox_kick.notify_one();
        Ok(msg)
    }

    /// Puts the `failed` message `id` back in its conversation's queue and
    /// tries it at once.
    pub async fn retry_message(&self, id: MessageId) -> AgentResult<IpcMessage> {
        let id = Id(id.0);
        let (msg, shown, ev) = self.core()?.run(move |c| retry_parked(c, id)).await?;
        self.queues().clear(msg.conversation);
        self.publish(vec![ev]);
        self.outbox_kick.notify_one();
        self.transfers.wake();
        Ok(shown)
    }

    /// Removes the `failed` message `id` from the outbox and the history
    /// (and an attachment's encrypted copy from the spool).
    pub async fn discard_message(&self, id: MessageId) -> AgentResult<()> {
        let id = Id(id.0);
        let spooled = self.core()?.run(move |c| discard_parked(c, id)).await?;
        if let Some(name) = spooled {
            self.drop_spool(&name);
        }
        Ok(())
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.outbox_queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drains the outbox whenever something is queued, the link comes up or
    /// a conversation's back-off ends.
    pub(crate) async fn outbox_loop(self: Arc<Self>, link: Link) {
        let mut shutdown = self.shutdown_signal();
        let mut was_online = false;
        loop {
            let mut idle = Duration::from_secs(5);
            let online = link.state() == ConnState::Online;
            if online && !was_online {
                self.queues().online();
            }
            was_online = online;
            if online {
                match self.drain_outbox().await {
                    Ok(Some(receipts_due_ms)) => {
                        idle = idle.min(Duration::from_millis(receipts_due_ms));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "outbox paused"),
                }
                if let Some(ms) = self.queues().next_due(now_ms()) {
                    idle = idle.min(Duration::from_millis(ms));
                }
            }
            tokio::select! {
                _ = self.outbox_kick.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Sends what the outbox holds, conversation by conversation; `Some(ms)`
    /// when only receipts wait, the next due in `ms`. Two core trips per
    /// message: one prepares it, one records how it went and prepares the
    /// next.
    async fn drain_outbox(self: &Arc<Self>) -> AgentResult<Option<u64>> {
        let core = self.core()?;
        let locks = Arc::clone(&self.group_locks);
        let skip = self.queues().skip(now_ms());
        let mut next = core
            .run(move |c| prepare_outgoing(c, &locks, now_ms(), &skip))
            .await?;
        loop {
            let (entry, sent) = match next {
                Prepared::Empty => return Ok(None),
                Prepared::Wait(ms) => return Ok(Some(ms)),
                Prepared::Busy(conversation, group) => {
                    self.wait_for_group(conversation, group, false);
                    (None, None)
                }
                Prepared::NeedsCommit(conversation, group) => {
                    self.wait_for_group(conversation, group, true);
                    (None, None)
                }
                Prepared::Unsendable(entry, e) => (Some(entry), Some(Err(e))),
                Prepared::Ready(out) => {
                    let sent = if out.alone {
                        Ok(Vec::new())
                    } else {
                        self.deliver_group(
                            out.group,
                            &out.ciphertext,
                            IdempotencyKey(out.idempotency_key),
                            None,
                            None,
                        )
                        .await
                        .and_then(|g| nobody_took(&g))
                    };
                    (Some(out.entry), Some(sent))
                }
            };
            // The server answered without storing it for anyone: the next
            // attempt is a new message to the server, under a new key.
            let rekey = match (&entry, &sent) {
                (Some(entry), Some(Err(AgentError::Refused(_)))) => entry.seqs.clone(),
                _ => Vec::new(),
            };
            // The server holds no state for the group: if it is one made
            // before the server validated groups, its re-creation is under
            // way (`agent::legacy`) and the message waits for it.
            let unregistered = match (&entry, &sent) {
                (Some(entry), Some(Err(e))) if e.server_code() == Some(ErrorCode::UnknownGroup) => {
                    Some(entry.conversation)
                }
                _ => None,
            };
            let recreating = match unregistered {
                Some(id) => {
                    core.run(move |c| conversations::is_legacy(c.db(), id))
                        .await?
                }
                None => false,
            };
            let done = match (entry, sent) {
                (Some(entry), Some(_)) if recreating => {
                    self.queues().failed(entry.conversation, now_ms(), false);
                    Done::Later
                }
                (Some(entry), Some(sent)) => self.judge(entry, sent),
                _ => Done::Later,
            };
            let locks = Arc::clone(&self.group_locks);
            let skip = self.queues().skip(now_ms());
            let (ev, prepared) = core
                .run(move |c| {
                    outbox::new_keys(c.db(), &rekey)?;
                    finish_outgoing(c, done, &locks, now_ms(), &skip)
                })
                .await?;
            self.publish(ev.into_iter().collect());
            next = prepared;
        }
    }

    /// How an attempt at `entry` went, in the terms of the outbox; keeps
    /// the conversation's back-off.
    fn judge(&self, entry: Unsent, sent: AgentResult<Missed>) -> Done {
        let conversation = entry.conversation;
        let e = match sent {
            Ok(missed) => {
                self.queues().clear(conversation);
                return Done::Sent(entry, missed);
            }
            Err(e) => e,
        };
        let network = matches!(e, AgentError::NetworkDown(_));
        let failing_for = self.queues().failed(conversation, now_ms(), network);
        match verdict(&e, failing_for) {
            Verdict::Retry => {
                tracing::debug!(error = %e, "an outgoing message waits to be tried again");
                Done::Later
            }
            Verdict::Park(reason) => {
                let full = e.server_code() == Some(ErrorCode::QueueFull);
                self.queues().parked(conversation, full);
                if entry.message_id.is_none() {
                    tracing::warn!(%reason, "receipts refused for good are dropped");
                    return Done::Dropped(entry.seqs);
                }
                tracing::warn!(%reason, "an outgoing message failed; parked until retried or discarded");
                Done::Parked(entry, reason)
            }
        }
    }

    /// Sets `conversation` aside until its group's lock is free (a commit in
    /// flight) or — with `commit` — until the group's pending proposals are
    /// committed or, when that cannot be done, dropped; then kicks the drain.
    fn wait_for_group(self: &Arc<Self>, conversation: Id, group: GroupId, commit: bool) {
        if !self.queues().waiting.insert(conversation) {
            return;
        }
        let me = Arc::clone(self);
        self.spawn(async move {
            if commit {
                me.commit_or_drop_proposals(conversation, group).await;
            } else {
                drop(me.group_lock(&group).lock().await);
            }
            me.queues().waiting.remove(&conversation);
            me.outbox_kick.notify_one();
        });
    }

    /// Commits the group's pending proposals; if that fails for good (the
    /// server refuses every commit, e.g. a forged claim on a later epoch, or
    /// the commit cannot be built) drops them, so that the group can send
    /// again. A failure that may pass backs the conversation off instead.
    async fn commit_or_drop_proposals(&self, conversation: Id, group: GroupId) {
        let r = self
            .commit(group, move |c| {
                c.engine()?
                    .commit_pending_proposals(group)
                    .map_err(CoreError::from)
            })
            .await;
        let e = match r {
            Ok(_) => return,
            Err(e) => e,
        };
        if matches!(
            e,
            AgentError::NetworkDown(_) | AgentError::Locked(_) | AgentError::NotLoggedIn(_)
        ) {
            let network = matches!(e, AgentError::NetworkDown(_));
            self.queues().failed(conversation, now_ms(), network);
            return;
        }
        tracing::warn!(
            error = %e, group = %group.to_hex(),
            "the group's pending proposals cannot be committed; dropping them so that it can send"
        );
        let dropped = match self.core() {
            Ok(core) => {
                core.run(move |c| {
                    c.engine()?
                        .clear_pending_proposals(group)
                        .map_err(CoreError::from)
                })
                .await
            }
            Err(_) => return,
        };
        if let Err(e) = dropped {
            tracing::warn!(error = %e, "dropping the pending proposals failed");
        }
    }

    /// One message to a group with one `enqueueGroup`, whatever the group's
    /// size: the server delivers it to every other current member. A commit
    /// goes with the GroupInfo of the epoch it creates, and its Welcome (for
    /// the members it adds) in the same request. A member the server could
    /// not store it for (e.g. a full mailbox, E032) fails alone: that is
    /// logged, and the message counts as sent.
    pub(crate) async fn deliver_group(
        &self,
        group: GroupId,
        mls_message: &[u8],
        key: IdempotencyKey,
        group_info: Option<Vec<u8>>,
        welcome: Option<&[u8]>,
    ) -> AgentResult<GroupEnqueued> {
        let enqueued = self
            .link()?
            .request(wire::EnqueueGroup {
                auth: self.token()?,
                group: group.as_bytes().to_vec(),
                payload: padding::pad(mls_message),
                idempotency_key: key,
                group_info,
                welcome: welcome.map(padding::pad),
            })
            .await?;
        for m in &enqueued.members {
            if let Some(code) = m.error {
                tracing::warn!(
                    member = %m.member, %code, group = %group.to_hex(),
                    "the server could not store a group message for one member"
                );
            }
        }
        Ok(enqueued)
    }

    /// The other members of a group (who receive what we send to it).
    pub(crate) async fn others(&self, group: GroupId) -> AgentResult<Vec<Member>> {
        self.core()?.run(move |c| others(c, group)).await
    }
}

/// Members a group message was not stored for, with the server's code.
type Missed = Vec<(IdentityKey, ErrorCode)>;

/// An application message the server stored for no member at all (in a DM:
/// the peer's mailbox is full) failed like a refusal, with the first
/// member's code; stored for some, it went, and the members it missed are
/// said in its `delivery` notification.
fn nobody_took(g: &GroupEnqueued) -> AgentResult<Missed> {
    match g.members.first().and_then(|m| m.error) {
        Some(code) if g.members.iter().all(|m| m.error.is_some()) => Err(AgentError::Refused(
            WireError::new(code, "no member's mailbox took the message"),
        )),
        _ => Ok(g
            .members
            .iter()
            .filter_map(|m| Some((m.member, m.error?)))
            .collect()),
    }
}

/// Core operation: checks and stores an outgoing message — durable in the
/// history and the outbox, its notification logged — in one transaction.
/// With an `attachment` (issue 18) the text is its caption and the payload
/// waits in the attachment's row until the upload is finished
/// (`agent::attachments`), instead of going to the outbox now. `text` was
/// checked (`MessageText`; a caption may be empty).
pub(super) fn queue_outgoing(
    c: &mut Core,
    r: &ConversationRef,
    text: String,
    confirm_changed_keys: bool,
    reply_to: Option<Id>,
    attachment: Option<super::attachments::Spooled>,
) -> AgentResult<(IpcMessage, Notification)> {
    c.atomically(|c| {
        let conv = find_active(c, r)?;
        refuse_deleted_peer(c, &conv)?;
        let me = c.engine()?.username().to_string();
        if !confirm_changed_keys {
            refuse_changed_keys(c, &conv.group_id)?;
        }
        // Only a message of this conversation (-32002 otherwise).
        let reply_to = match reply_to {
            Some(id) => Some(super::actions::reply_target(c, &conv, id)?),
            None => None,
        };
        // The conversation's disappearing timer, if set: every member
        // removes the message `ttl` seconds after it arrives, we after
        // it was sent.
        let ttl = super::privacy::ttl(c.db(), conv.id)?;
        let now = now_ms();
        let m = Message {
            id: Id::random(),
            conversation: conv.id,
            sender: me,
            timestamp_ms: now,
            text,
            outgoing: true,
            state: State::Queued,
            extra: messages::Extra {
                reply_to: reply_to
                    .as_ref()
                    .and_then(|r| Some((r.message_id()?, r.sender.clone()))),
                expires_at_ms: ttl.map(|s| super::privacy::expiry(now, s)),
                ..Default::default()
            },
        };
        messages::insert(c.db(), &m)?;
        match attachment {
            Some(a) => super::attachments::hold(c, &m, a, reply_to, ttl)?,
            None => {
                let body = Payload::Text {
                    id: m.id.to_string(),
                    ts: m.timestamp_ms,
                    text: m.text.clone(),
                    reply_to,
                    ttl,
                    x: None,
                }
                .encode();
                outbox::push(c.db(), conv.id, &body, Some(m.id), now_ms())?;
            }
        }
        conversations::touch(c.db(), conv.id, m.timestamp_ms)?;
        // With the quote, for a reply.
        let message = stored_message(c.db(), &m)?;
        let ev = emit(c, |seq| {
            Notification::Message(NewMessage {
                seq,
                message: message.clone(),
            })
        })?;
        Ok((message, ev))
    })
}

/// E051 for a DM whose peer the server said was deleted: nobody can read
/// what would be sent there.
pub(super) fn refuse_deleted_peer(
    c: &mut Core,
    conv: &conversations::Conversation,
) -> AgentResult<()> {
    match &conv.peer {
        Some(peer) if conversations::is_deleted(c.db(), peer)? => {
            Err(AgentError::Refused(WireError::new(
                ErrorCode::AccountDeleted,
                format!("{peer} deleted their account: this conversation can no longer be sent to"),
            )))
        }
        _ => Ok(()),
    }
}

/// `IdentityChanged` if a member's key changed and the user has not
/// confirmed sending anyway.
pub(super) fn refuse_changed_keys(c: &mut Core, group: &[u8]) -> AgentResult<()> {
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

/// Core operation: the next outbox entry of a conversation not in `skip`,
/// encrypted for its group, with its recipients and their channels. Entries
/// of conversations we left are dropped on the way.
fn prepare_outgoing(
    c: &mut Core,
    locks: &GroupLocks,
    now: u64,
    skip: &[Id],
) -> AgentResult<Prepared> {
    loop {
        let (entry, body, idempotency_key) = match outbox::next(c.db(), now, skip)? {
            outbox::Next::Empty => return Ok(Prepared::Empty),
            outbox::Next::Wait(ms) => return Ok(Prepared::Wait(ms)),
            outbox::Next::Message(e) => (
                Unsent {
                    conversation: e.conversation,
                    seqs: vec![e.seq],
                    message_id: e.message_id,
                },
                e.body,
                e.idempotency_key,
            ),
            outbox::Next::Receipts {
                conversation,
                ids,
                seqs,
                idempotency_key,
            } => (
                Unsent {
                    conversation,
                    seqs,
                    message_id: None,
                },
                Payload::Receipt {
                    ids: ids.iter().map(Id::to_string).collect(),
                }
                .encode(),
                idempotency_key,
            ),
        };
        let conversation = entry.conversation;
        let group = conversations::by_id(c.db(), conversation)?
            .filter(|c| c.active)
            .and_then(|c| GroupId::from_slice(&c.group_id));
        let Some(group) = group else {
            outbox::remove_all(c.db(), &entry.seqs)?;
            continue;
        };
        let Ok(guard) = locks.get(&group).try_lock_owned() else {
            return Ok(Prepared::Busy(conversation, group));
        };
        let alone = match c.engine()?.members(group) {
            Ok(m) => m.len() <= 1,
            Err(e) => return Ok(Prepared::Unsendable(entry, CoreError::from(e).into())),
        };
        let ciphertext = match c.engine()?.encrypt(group, &body) {
            Ok(ct) => ct,
            Err(MlsError::PendingProposals(_)) => {
                return Ok(Prepared::NeedsCommit(conversation, group))
            }
            Err(e) => return Ok(Prepared::Unsendable(entry, e.into())),
        };
        return Ok(Prepared::Ready(Outgoing {
            entry,
            group,
            ciphertext,
            alone,
            idempotency_key,
            _group: guard,
        }));
    }
}

/// How an attempt at an entry went.
enum Done {
    /// Sent, though not stored for these members.
    Sent(Unsent, Missed),
    /// Not now: it stays queued (its conversation backs off, or waits).
    Later,
    /// Receipts refused for good.
    Dropped(Vec<u64>),
    /// A message refused for good, with the reason.
    Parked(Unsent, String),
}

/// Core operation: records how the last entry went, then prepares the next.
fn finish_outgoing(
    c: &mut Core,
    done: Done,
    locks: &GroupLocks,
    now: u64,
    skip: &[Id],
) -> AgentResult<(Option<Notification>, Prepared)> {
    let ev = match done {
        Done::Sent(entry, missed) => mark_sent(c, entry, &missed)?,
        Done::Later => None,
        Done::Dropped(seqs) => {
            outbox::remove_all(c.db(), &seqs)?;
            None
        }
        Done::Parked(entry, reason) => Some(park(c, entry, reason)?),
    };
    Ok((ev, prepare_outgoing(c, locks, now, skip)?))
}

/// The `delivery` notification for our message `id` in `conversation`.
pub(super) fn delivery(
    c: &Core,
    conversation: Id,
    id: Id,
    state: DeliveryState,
    reason: Option<String>,
) -> rusqlite::Result<Notification> {
    emit(c, |seq| {
        Notification::Delivery(DeliveryUpdate {
            seq,
            conversation: conv_id(conversation),
            id: MessageId(id.0),
            state,
            reason,
        })
    })
}

/// Core operation: the entries went out; a chat message moves to `sent`
/// (unless a receipt made it `delivered` already), its notification saying
/// which members the server could not store it for, if any.
fn mark_sent(c: &mut Core, entry: Unsent, missed: &Missed) -> AgentResult<Option<Notification>> {
    c.atomically(|c| {
        outbox::remove_all(c.db(), &entry.seqs)?;
        let Some(mid) = entry.message_id else {
            return Ok(None);
        };
        if !messages::advance(c.db(), mid, entry.conversation, State::Sent)? {
            return Ok(None);
        }
        let reason = match missed.is_empty() {
            true => None,
            false => Some(missed_reason(c, entry.conversation, missed)?),
        };
        Ok(Some(delivery(
            c,
            entry.conversation,
            mid,
            DeliveryState::Sent,
            reason,
        )?))
    })
}

/// "not stored for carol (E032: …)": the members a group message missed,
/// by name where the group still lists them.
fn missed_reason(c: &mut Core, conversation: Id, missed: &Missed) -> AgentResult<String> {
    let group = conversations::by_id(c.db(), conversation)?
        .and_then(|conv| GroupId::from_slice(&conv.group_id));
    let members = match group {
        Some(g) => c.engine()?.members(g).unwrap_or_default(),
        None => Vec::new(),
    };
    let each: Vec<String> = missed
        .iter()
        .map(|(key, code)| {
            let who = members
                .iter()
                .find(|m| m.identity == *key)
                .map_or_else(|| key.to_string(), |m| m.username.to_string());
            format!("{who} ({code}: {})", code.description())
        })
        .collect();
    Ok(format!("not stored for {}", each.join(", ")))
}

/// Core operation: parks a message refused for good; it becomes `failed`.
fn park(c: &mut Core, entry: Unsent, reason: String) -> AgentResult<Notification> {
    c.atomically(|c| {
        for seq in &entry.seqs {
            outbox::park(c.db(), *seq, &reason)?;
        }
        let mid = entry
            .message_id
            .ok_or_else(|| AgentError::internal("only messages are parked"))?;
        messages::set_state(c.db(), mid, State::Failed)?;
        Ok(delivery(
            c,
            entry.conversation,
            mid,
            DeliveryState::Failed,
            Some(reason),
        )?)
    })
}

/// Our message `id`, if it is `failed`; a clear error otherwise.
fn failed_message(c: &Core, id: Id) -> AgentResult<Message> {
    let m = messages::by_id(c.db(), id)?
        .filter(|m| m.outgoing)
        .ok_or_else(|| AgentError::NotFound(format!("no message of ours has id {id}")))?;
    if m.state != State::Failed {
        return Err(AgentError::InvalidInput(format!(
            "only a failed message can be retried or discarded; this one is {}",
            m.state.as_str()
        )));
    }
    Ok(m)
}

/// Core operation: a `failed` message back in its queue, `queued`.
fn retry_parked(c: &mut Core, id: Id) -> AgentResult<(Message, IpcMessage, Notification)> {
    c.atomically(|c| {
        let mut m = failed_message(c, id)?;
        if !outbox::unpark(c.db(), id)? && !super::attachments::retry_upload(c, id)? {
            return Err(AgentError::InvalidInput(
                "this message can no longer be sent (its conversation is gone): discard it".into(),
            ));
        }
        messages::set_state(c.db(), id, State::Queued)?;
        m.state = State::Queued;
        let ev = delivery(c, m.conversation, id, DeliveryState::Queued, None)?;
        // With its attachment, as the history shows it.
        let shown = stored_message(c.db(), &m)?;
        Ok((m, shown, ev))
    })
}

/// Core operation: a `failed` message out of the outbox and the history;
/// the spool file of its attachment, if it has one, for the caller to delete.
fn discard_parked(c: &mut Core, id: Id) -> AgentResult<Option<String>> {
    c.atomically(|c| {
        failed_message(c, id)?;
        let spooled = crate::db::attachments::get(c.db(), id)?.and_then(|a| a.spool);
        outbox::discard(c.db(), id)?;
        messages::delete(c.db(), id)?;
        Ok(spooled)
    })
}

/// Core operation: the other members of `group`.
pub(crate) fn others(c: &mut Core, group: GroupId) -> AgentResult<Vec<Member>> {
    let e = c.engine()?;
    let me = e.identity_key();
    Ok(e.members(group)
        .map_err(CoreError::from)?
        .into_iter()
        .filter(|m| m.identity != me)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quicproquo_protocol::errors::WireError;

    fn refused(code: ErrorCode) -> AgentError {
        AgentError::Refused(WireError::new(code, "text the server chose"))
    }

    #[test]
    fn what_may_pass_is_retried_and_the_rest_parked_with_the_catalogue_reason() {
        for e in [
            AgentError::offline(),
            refused(ErrorCode::RateLimited),
            refused(ErrorCode::Internal),
            refused(ErrorCode::Unauthenticated),
            AgentError::Contended("busy".into()),
        ] {
            assert_eq!(verdict(&e, u64::MAX), Verdict::Retry, "{e}");
        }
        for code in [
            ErrorCode::UnknownUser,
            ErrorCode::ChannelDenied,
            ErrorCode::SelfChannel,
        ] {
            match verdict(&refused(code), 0) {
                Verdict::Park(r) => {
                    assert!(r.starts_with(&code.to_string()), "{r}");
                    assert!(!r.contains("chose"), "never the server's own text: {r}");
                }
                v => panic!("{code}: {v:?}"),
            }
        }
        assert!(matches!(
            verdict(&AgentError::internal("cannot encrypt"), 0),
            Verdict::Park(_)
        ));
    }

    #[test]
    fn a_full_mailbox_is_retried_for_its_budget_then_parked() {
        let full = refused(ErrorCode::QueueFull);
        assert_eq!(verdict(&full, 0), Verdict::Retry);
        assert_eq!(verdict(&full, FULL_MAILBOX_BUDGET_MS - 1), Verdict::Retry);
        match verdict(&full, FULL_MAILBOX_BUDGET_MS) {
            Verdict::Park(r) => assert!(r.contains("E032") && r.contains("5 minutes"), "{r}"),
            v => panic!("{v:?}"),
        }
    }

    /// A conversation in back-off is left out until its time; its run of
    /// failures is counted from the first; a full mailbox keeps its run when
    /// an entry is parked, other reasons do not; the link coming back ends
    /// the waits the network caused.
    #[test]
    fn back_off_is_per_conversation() {
        let mut q = Queues::default();
        let (a, b) = (Id::random(), Id::random());
        assert!(q.skip(0).is_empty());
        assert_eq!(q.failed(a, 1_000, false), 0);
        let skip = q.skip(1_000);
        assert_eq!(skip, [a], "only the failing conversation waits");
        let due = q.next_due(1_000).unwrap();
        assert!((RETRY_MIN.as_millis() as u64 / 2..=RETRY_MIN.as_millis() as u64).contains(&due));
        assert!(q.skip(1_000 + due).is_empty(), "due again");
        assert_eq!(
            q.failed(a, 5_000, false),
            4_000,
            "counted from the first failure"
        );
        q.parked(a, true);
        assert!(q.skip(5_000).is_empty(), "the next entry goes at once");
        assert_eq!(
            q.failed(a, 6_000, false),
            5_000,
            "a full mailbox keeps its run"
        );
        q.parked(a, false);
        assert_eq!(q.failed(a, 7_000, false), 0, "other reasons start afresh");

        q.failed(b, 7_000, true);
        q.online();
        assert_eq!(
            q.skip(7_000),
            [a],
            "the network's waits end when it is back"
        );
        q.clear(a);
        assert!(q.skip(7_000).is_empty());
        assert_eq!(q.next_due(7_000), None);
    }
}
