//! Delivery: who may put mail into which mailbox, and how it comes out.
//!
//! [`Delivery`] owns the delivery rules and the state they need: the
//! [`Mailboxes`] that wake held `fetchWait`s, the cache of DM channel
//! members, whether an enqueue must name a channel (`require_channel_authz`)
//! and the shutdown signal that ends held requests. [`Service`] holds one
//! and calls [`Delivery::enqueue`], [`Delivery::fetch`],
//! [`Delivery::fetch_wait`] and [`Delivery::ack`] with the store, the
//! authenticated account and the request's [`Now`]; nothing here reads the
//! clock. Creating channels is the directory's (`directory.rs`).
//!
//! The rules: an enqueue's payload must be a padded MLS message (E034); a
//! delivery through a channel must go to the channel's other member and
//! the sender must be a member (E022, also for an unknown channel, so ids
//! cannot be probed); a delivery without a channel is refused when the
//! server requires channels (E023); an enqueue names each recipient once
//! (E038); a group's messages are refused here (E049) and go through
//! `enqueueGroup`, checked against the group's state (`groups.rs`) and
//! delivered to its members, each alone: a full mailbox fails that member
//! only. A mailbox holds at most its byte quota, and one sender at most its
//! share of it (E032, see [`MailQuota`]). Routing is by recipient identity
//! key; the stored mail records its sender for the share (never shown to the
//! recipient by the server), and expires after the configured time.
//!
//! A `fetchWait` registers interest in its mailbox *before* looking at it,
//! so an enqueue landing between the look and the wait still wakes it.
//!
//! [`Service`]: crate::service::Service

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::limits::{FETCH_RESPONSE_BUDGET, MAX_FETCH_WAIT};
use quicproquo_protocol::types::{ChannelId, IdempotencyKey, IdentityKey};
use quicproquo_protocol::wire::{self, Envelope, MemberDelivery};
use quicproquo_protocol::{mls_framing, padding};
use tokio::sync::{watch, Notify};

use crate::cache::TtlCache;
use crate::groups::Groups;
use crate::service::{internal, Now};
use crate::store::{
    Account, EnqueueOutcome, GroupEnqueueOutcome, GroupMail, Mail, MailQuota, NewMail, Store,
    StoreError,
};

/// How long a channel's members are kept: they never change, so this only
/// bounds how long a deleted channel would still be honoured.
const CHANNEL_CACHE_TTL: Duration = Duration::from_secs(3600);
const CHANNEL_CACHE_MAX: usize = 100_000;

/// Wakes `fetchWait`s when mail arrives for their mailbox.
#[derive(Default)]
pub struct Mailboxes {
    waiters: Mutex<HashMap<IdentityKey, Arc<Notify>>>,
    parked: AtomicUsize,
}

/// Interest in one mailbox; dropping it (also when a held request is
/// cancelled) forgets the mailbox once nobody else waits on it.
struct Subscription<'a> {
    mailboxes: &'a Mailboxes,
    key: IdentityKey,
    notify: Arc<Notify>,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut map = self.mailboxes.lock();
        // Clones are made under this lock: two references (the map's and
        // ours) mean nobody else is waiting.
        if map
            .get(&self.key)
            .is_some_and(|n| Arc::strong_count(n) == 2)
        {
            map.remove(&self.key);
        }
    }
}

/// Counts a `fetchWait` as parked while it lives.
struct Parked<'a>(&'a AtomicUsize);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Mailboxes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdentityKey, Arc<Notify>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn notify(&self, key: &IdentityKey) {
        if let Some(n) = self.lock().get(key) {
            n.notify_waiters();
        }
    }

    /// Wakes every held `fetchWait` (changes may have been missed): each
    /// looks at its mailbox again and waits on if it is still empty.
    pub fn notify_all(&self) {
        for n in self.lock().values() {
            n.notify_waiters();
        }
    }

    fn subscribe(&self, key: IdentityKey) -> Subscription<'_> {
        let notify = self.lock().entry(key).or_default().clone();
        Subscription {
            mailboxes: self,
            key,
            notify,
        }
    }

    fn park(&self) -> Parked<'_> {
        self.parked.fetch_add(1, Ordering::SeqCst);
        Parked(&self.parked)
    }

    /// How many `fetchWait`s found their mailbox empty and are now held
    /// until mail arrives (tests wait for this before enqueueing).
    pub fn waiting(&self) -> usize {
        self.parked.load(Ordering::SeqCst)
    }

    /// How many mailboxes have a `fetchWait` registered.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }
}

/// An enqueue as the service received it.
pub struct EnqueueRequest {
    pub deliveries: Vec<wire::Delivery>,
    pub payload: Vec<u8>,
    pub idempotency_key: IdempotencyKey,
}

/// What an enqueue did: stored (with the recipients' sequence numbers) or
/// recognised as a retry of one already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub duplicate: bool,
    pub seqs: Vec<u64>,
}

/// An `enqueueGroup` as the service received it.
pub struct GroupEnqueueRequest {
    pub group: Vec<u8>,
    pub payload: Vec<u8>,
    pub idempotency_key: IdempotencyKey,
    pub group_info: Option<Vec<u8>>,
    pub welcome: Option<Vec<u8>>,
}

/// What an `enqueueGroup` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEnqueued {
    pub duplicate: bool,
    pub members: Vec<MemberDelivery>,
}

/// Which mail a fetch asks for: all of the caller's or one channel's, at
/// most `limit` messages (0: as many as fit the response budget).
#[derive(Debug, Clone, Copy)]
pub struct FetchRequest {
    pub channel: Option<ChannelId>,
    pub limit: u32,
}

/// The delivery rules and their state; see the module documentation.
pub struct Delivery {
    /// Shared with the service's follower of store changes, which wakes
    /// `fetchWait`s for mail stored through other nodes.
    mailboxes: Arc<Mailboxes>,
    /// Members of DM channels already looked up: a channel's members never
    /// change, so they are kept (bounded) instead of asked for per request.
    channels: TtlCache<ChannelId, (IdentityKey, IdentityKey)>,
    require_channel_authz: bool,
    quota: MailQuota,
    shutdown: watch::Receiver<bool>,
}

impl Delivery {
    /// `require_channel_authz` refuses deliveries without a channel (E023);
    /// `quota` bounds what waits in one mailbox; `shutdown` turning true
    /// answers held `fetchWait`s empty.
    pub fn new(
        require_channel_authz: bool,
        quota: MailQuota,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            mailboxes: Arc::default(),
            channels: TtlCache::new(CHANNEL_CACHE_TTL, CHANNEL_CACHE_MAX),
            require_channel_authz,
            quota,
            shutdown,
        }
    }

    pub fn mailboxes(&self) -> &Arc<Mailboxes> {
        &self.mailboxes
    }

    /// Checks that `me` may use `channel` (E022 otherwise) and returns the
    /// other member. An unknown channel is E022 as well, so ids cannot be
    /// probed.
    async fn other_member<S: Store>(
        &self,
        store: &S,
        me: &IdentityKey,
        channel: ChannelId,
        now: Now,
    ) -> Result<IdentityKey, WireError> {
        let denied = || WireError::bare(ErrorCode::ChannelDenied);
        let (a, b) = match self.channels.get(&channel, now.mono) {
            Some(pair) => pair,
            None => {
                let pair = store
                    .channel_members(channel)
                    .await
                    .map_err(internal)?
                    .ok_or_else(denied)?;
                self.channels.put(channel, pair, now.mono);
                pair
            }
        };
        if a == *me {
            Ok(b)
        } else if b == *me {
            Ok(a)
        } else {
            Err(denied())
        }
    }

    /// Refuses any delivery `sender` may not make (see the module rules).
    async fn authorize<S: Store>(
        &self,
        store: &S,
        sender: &Account,
        deliveries: &[wire::Delivery],
        now: Now,
    ) -> Result<(), WireError> {
        let mut checked: HashMap<ChannelId, IdentityKey> = HashMap::new();
        for d in deliveries {
            match d.channel {
                Some(c) => {
                    let other = match checked.get(&c) {
                        Some(o) => *o,
                        None => {
                            let o = self
                                .other_member(store, &sender.identity_key, c, now)
                                .await?;
                            checked.insert(c, o);
                            o
                        }
                    };
                    if d.recipient != other {
                        return Err(WireError::new(
                            ErrorCode::ChannelDenied,
                            "not authorized for this channel: the recipient is not its other member",
                        ));
                    }
                }
                None if self.require_channel_authz => {
                    return Err(WireError::bare(ErrorCode::LegacyPathDisabled))
                }
                None => {
                    if store
                        .account_by_identity(&d.recipient)
                        .await
                        .map_err(internal)?
                        .is_none()
                    {
                        return Err(WireError::new(
                            ErrorCode::UnknownUser,
                            format!("no user has identity key {}", d.recipient),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Stores one payload for every recipient (once per idempotency key) and
    /// wakes their held `fetchWait`s.
    pub async fn enqueue<S: Store>(
        &self,
        store: &S,
        sender: &Account,
        req: EnqueueRequest,
        now: Now,
    ) -> Result<Enqueued, WireError> {
        let inner = padding::unpad(&req.payload)
            .map_err(|e| WireError::new(ErrorCode::InvalidPayload, e.to_string()))?;
        let framing = mls_framing::read(inner)
            .map_err(|e| WireError::new(ErrorCode::InvalidPayload, format!("MLS framing: {e}")))?;
        // A group's messages are checked against its state: they go through
        // enqueueGroup. Per-recipient delivery of one would let anyone with
        // a channel to a member inject into the group.
        if matches!(framing, mls_framing::Framing::Group { .. }) {
            return Err(WireError::new(
                ErrorCode::WrongGroup,
                "messages to a group go through enqueueGroup",
            ));
        }
        if req.deliveries.is_empty() {
            return Err(WireError::bare(ErrorCode::NoRecipients));
        }
        refuse_repeated_recipients(&req.deliveries)?;
        self.authorize(store, sender, &req.deliveries, now).await?;

        let recipients: Vec<IdentityKey> = req.deliveries.iter().map(|d| d.recipient).collect();
        let outcome = store
            .enqueue(NewMail {
                sender: sender.identity_key,
                idempotency_key: req.idempotency_key,
                deliveries: req.deliveries,
                payload: req.payload,
                now_ms: now.unix_ms,
                quota: self.quota,
            })
            .await;
        match outcome {
            Ok(EnqueueOutcome::Stored { seqs }) => {
                for r in &recipients {
                    self.mailboxes.notify(r);
                }
                Ok(Enqueued {
                    duplicate: false,
                    seqs,
                })
            }
            Ok(EnqueueOutcome::Duplicate) => Ok(Enqueued {
                duplicate: true,
                seqs: Vec::new(),
            }),
            Err(StoreError::QueueFull(k)) => Err(WireError::new(
                ErrorCode::QueueFull,
                format!("the mailbox of {k} is full"),
            )),
            Err(StoreError::ShareFull(k)) => Err(WireError::new(
                ErrorCode::QueueFull,
                format!(
                    "your share of the mailbox of {k} is full: retry once the recipient has \
                     fetched your earlier messages"
                ),
            )),
            Err(e) => Err(internal(e)),
        }
    }

    /// One message to a group: checked against the group's state
    /// ([`Groups::check`]), then stored for every other member (and a
    /// commit's Welcome for the members it adds) together with the group's
    /// new state. A full mailbox fails that member alone.
    pub async fn enqueue_group<S: Store>(
        &self,
        store: &S,
        groups: &Groups,
        sender: &Account,
        req: GroupEnqueueRequest,
        now: Now,
    ) -> Result<GroupEnqueued, WireError> {
        let inner = padding::unpad(&req.payload)
            .map_err(|e| WireError::new(ErrorCode::InvalidPayload, format!("payload: {e}")))?;
        if let Some(w) = &req.welcome {
            let welcome = padding::unpad(w)
                .map_err(|e| WireError::new(ErrorCode::InvalidPayload, format!("welcome: {e}")))?;
            if !matches!(
                mls_framing::read(welcome),
                Ok(mls_framing::Framing::Welcome)
            ) {
                return Err(WireError::new(
                    ErrorCode::InvalidPayload,
                    "welcome is not an MLS Welcome",
                ));
            }
        }
        let pending = groups
            .check(
                store,
                sender.identity_key,
                &req.group,
                inner,
                req.group_info,
                req.welcome.is_some(),
                now.mono,
            )
            .await?;
        let checked = &pending.checked;
        let welcome = req.welcome.map(|w| (w, checked.welcomed.clone()));
        let group_id = req.group.clone();
        let outcome = store
            .enqueue_group(GroupMail {
                sender: sender.identity_key,
                idempotency_key: req.idempotency_key,
                group_id: req.group,
                payload: req.payload,
                recipients: checked.recipients.clone(),
                welcome,
                update: checked.update.clone(),
                now_ms: now.unix_ms,
                quota: self.quota,
            })
            .await;
        match outcome {
            Ok(GroupEnqueueOutcome::Stored { members }) => {
                pending.stored();
                let members = members
                    .into_iter()
                    .map(|(member, seq)| {
                        if seq.is_some() {
                            self.mailboxes.notify(&member);
                        }
                        MemberDelivery {
                            member,
                            seq: seq.unwrap_or(0),
                            error: seq.is_none().then_some(ErrorCode::QueueFull),
                        }
                    })
                    .collect();
                Ok(GroupEnqueued {
                    duplicate: false,
                    members,
                })
            }
            // A retry of a message already stored: the state change it
            // carried was applied then, so the copy changed now is dropped.
            Ok(GroupEnqueueOutcome::Duplicate) => Ok(GroupEnqueued {
                duplicate: true,
                members: Vec::new(),
            }),
            Err(StoreError::GroupChanged) if pending.checked.update.is_some() => {
                Err(WireError::new(
                    ErrorCode::StaleCommit,
                    "another commit changed the group first; process pending messages and retry",
                ))
            }
            // Without a change to swap, the only way to miss is a group the
            // store no longer has (purged idle, possibly through another node).
            Err(StoreError::GroupChanged) => {
                groups.forget(&group_id);
                Err(WireError::bare(ErrorCode::UnknownGroup))
            }
            Err(e) => Err(internal(e)),
        }
    }

    /// The caller's mail, all of it or one channel's (after authorizing it).
    pub async fn fetch<S: Store>(
        &self,
        store: &S,
        me: &Account,
        req: FetchRequest,
        now: Now,
    ) -> Result<Vec<Envelope>, WireError> {
        if let Some(c) = req.channel {
            self.other_member(store, &me.identity_key, c, now).await?;
        }
        read_mailbox(store, me, req).await
    }

    /// As [`Delivery::fetch`], but when nothing is waiting, holds the
    /// request until mail arrives, `timeout` (at most `MAX_FETCH_WAIT`) after
    /// `now` passes, or the server shuts down (then answers empty).
    pub async fn fetch_wait<S: Store>(
        &self,
        store: &S,
        me: &Account,
        req: FetchRequest,
        timeout: Duration,
        now: Now,
    ) -> Result<Vec<Envelope>, WireError> {
        if let Some(c) = req.channel {
            self.other_member(store, &me.identity_key, c, now).await?;
        }
        let deadline = tokio::time::Instant::from_std(now.mono) + timeout.min(MAX_FETCH_WAIT);
        let subscription = self.mailboxes.subscribe(me.identity_key);
        let mut shutdown = self.shutdown.clone();
        loop {
            let notified = subscription.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mail = read_mailbox(store, me, req).await?;
            if !mail.is_empty() || *shutdown.borrow() {
                return Ok(mail);
            }
            let _parked = self.mailboxes.park();
            // What an operator (and the binary's SIGTERM test) sees of a
            // held wait; it names no account.
            tracing::debug!("fetchWait parked");
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
                _ = shutdown.changed() => return Ok(Vec::new()),
            }
        }
    }

    /// Removes the caller's mail with these sequence numbers; returns how
    /// many were there.
    pub async fn ack<S: Store>(
        &self,
        store: &S,
        me: &Account,
        seqs: Vec<u64>,
    ) -> Result<u32, WireError> {
        store.ack(me.identity_key, seqs).await.map_err(internal)
    }
}

/// E038 when one recipient is named twice: each copy would be stored (and
/// counted against the mailbox) again.
fn refuse_repeated_recipients(deliveries: &[wire::Delivery]) -> Result<(), WireError> {
    let mut seen = std::collections::HashSet::with_capacity(deliveries.len());
    match deliveries.iter().find(|d| !seen.insert(d.recipient)) {
        Some(d) => Err(WireError::new(
            ErrorCode::DuplicateRecipient,
            format!("the enqueue names {} more than once", d.recipient),
        )),
        None => Ok(()),
    }
}

async fn read_mailbox<S: Store>(
    store: &S,
    me: &Account,
    req: FetchRequest,
) -> Result<Vec<Envelope>, WireError> {
    let mail = store
        .fetch(
            me.identity_key,
            req.channel,
            req.limit,
            FETCH_RESPONSE_BUDGET,
        )
        .await
        .map_err(internal)?;
    Ok(envelopes(mail))
}

fn envelopes(mail: Vec<Mail>) -> Vec<Envelope> {
    mail.into_iter()
        .map(|m| Envelope {
            seq: m.seq,
            channel: m.channel,
            payload: m.payload,
            enqueued_at_ms: m.enqueued_at_ms,
            expired: m.expired,
        })
        .collect()
}
