//! Delivery: enqueue (with channel authorization, padding check and commit
//! ordering), fetch, fetchWait and ack.
//!
//! Routing is by recipient identity key; the stored mail carries no sender.
//! A `fetchWait` registers interest in its mailbox *before* looking at it, so
//! an enqueue landing between the look and the wait still wakes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::limits::{FETCH_RESPONSE_BUDGET, MAX_FETCH_WAIT};
use quicproquo_protocol::types::{ChannelId, IdempotencyKey, IdentityKey};
use quicproquo_protocol::wire::{Delivery, Envelope};
use quicproquo_protocol::{mls_framing, padding};
use tokio::sync::{watch, Notify};

use crate::cache::TtlCache;
use crate::service::{internal, Now};
use crate::store::{Account, CommitClaim, EnqueueOutcome, Mail, NewMail, Store, StoreError};

/// Wakes `fetchWait`s when mail arrives for their mailbox.
#[derive(Default)]
pub struct Mailboxes {
    waiters: Mutex<HashMap<IdentityKey, Arc<Notify>>>,
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

    fn subscribe(&self, key: IdentityKey) -> Arc<Notify> {
        self.lock().entry(key).or_default().clone()
    }

    fn unsubscribe(&self, key: &IdentityKey, n: Arc<Notify>) {
        let mut map = self.lock();
        drop(n);
        if map.get(key).is_some_and(|n| Arc::strong_count(n) == 1) {
            map.remove(key);
        }
    }

    pub fn waiting(&self) -> usize {
        self.lock().len()
    }
}

/// Members of DM channels already looked up: a channel's members never
/// change, so they are kept (bounded) instead of asked for per request.
pub type ChannelCache = TtlCache<ChannelId, (IdentityKey, IdentityKey)>;

pub fn channel_cache() -> ChannelCache {
    TtlCache::new(Duration::from_secs(3600), 100_000)
}

/// Checks that `me` may use `channel` (E022 otherwise) and returns the other
/// member. An unknown channel is E022 as well, so ids cannot be probed.
async fn other_member<S: Store>(
    store: &S,
    cache: &ChannelCache,
    me: &IdentityKey,
    channel: ChannelId,
) -> Result<IdentityKey, WireError> {
    let denied = || WireError::bare(ErrorCode::ChannelDenied);
    let now = std::time::Instant::now();
    let (a, b) = match cache.get(&channel, now) {
        Some(pair) => pair,
        None => {
            let pair = store
                .channel_members(channel)
                .await
                .map_err(internal)?
                .ok_or_else(denied)?;
            cache.put(channel, pair, now);
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

pub struct EnqueueRequest {
    pub deliveries: Vec<Delivery>,
    pub payload: Vec<u8>,
    pub idempotency_key: IdempotencyKey,
}

pub async fn enqueue<S: Store>(
    store: &S,
    mailboxes: &Mailboxes,
    channels: &ChannelCache,
    require_channel_authz: bool,
    sender: &Account,
    req: EnqueueRequest,
    now: Now,
) -> Result<(bool, Vec<u64>), WireError> {
    let inner = padding::unpad(&req.payload)
        .map_err(|e| WireError::new(ErrorCode::InvalidPayload, e.to_string()))?;
    let framing = mls_framing::read(inner)
        .map_err(|e| WireError::new(ErrorCode::InvalidPayload, format!("MLS framing: {e}")))?;
    let commit = framing.commit().map(|(group_id, epoch)| CommitClaim {
        group_id: group_id.to_vec(),
        epoch,
    });
    if req.deliveries.is_empty() && commit.is_none() {
        return Err(WireError::bare(ErrorCode::NoRecipients));
    }

    let mut checked: HashMap<ChannelId, IdentityKey> = HashMap::new();
    for d in &req.deliveries {
        match d.channel {
            Some(c) => {
                let other = match checked.get(&c) {
                    Some(o) => *o,
                    None => {
                        let o = other_member(store, channels, &sender.identity_key, c).await?;
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
            None if require_channel_authz => {
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

    let recipients: Vec<IdentityKey> = req.deliveries.iter().map(|d| d.recipient).collect();
    let outcome = store
        .enqueue(NewMail {
            sender: sender.identity_key,
            idempotency_key: req.idempotency_key,
            deliveries: req.deliveries,
            payload: req.payload,
            commit,
            now_ms: now.unix_ms,
        })
        .await;
    match outcome {
        Ok(EnqueueOutcome::Stored { seqs }) => {
            for r in &recipients {
                mailboxes.notify(r);
            }
            Ok((false, seqs))
        }
        Ok(EnqueueOutcome::Duplicate) => Ok((true, Vec::new())),
        Err(StoreError::StaleCommit {
            requested,
            accepted,
        }) => Err(WireError::new(
            ErrorCode::StaleCommit,
            format!(
                "stale commit for epoch {}: a commit for epoch {} was already accepted; \
                 process pending messages and retry",
                requested.0, accepted.0
            ),
        )),
        Err(StoreError::QueueFull(k)) => Err(WireError::new(
            ErrorCode::QueueFull,
            format!("the mailbox of {k} is full"),
        )),
        Err(e) => Err(internal(e)),
    }
}

fn envelopes(mail: Vec<Mail>) -> Vec<Envelope> {
    mail.into_iter()
        .map(|m| Envelope {
            seq: m.seq,
            channel: m.channel,
            payload: m.payload,
            enqueued_at_ms: m.enqueued_at_ms,
        })
        .collect()
}

/// The caller's mail, all of it or one channel's (after authorizing it).
pub async fn fetch<S: Store>(
    store: &S,
    channels: &ChannelCache,
    me: &Account,
    channel: Option<ChannelId>,
    limit: u32,
) -> Result<Vec<Envelope>, WireError> {
    if let Some(c) = channel {
        other_member(store, channels, &me.identity_key, c).await?;
    }
    let mail = store
        .fetch(me.identity_key, channel, limit, FETCH_RESPONSE_BUDGET)
        .await
        .map_err(internal)?;
    Ok(envelopes(mail))
}

/// As [`fetch`], but when nothing is waiting, holds the request until mail
/// arrives, `timeout` passes or the server shuts down (then answers empty).
#[allow(clippy::too_many_arguments)]
pub async fn fetch_wait<S: Store>(
    store: &S,
    mailboxes: &Mailboxes,
    channels: &ChannelCache,
    shutdown: &watch::Receiver<bool>,
    me: &Account,
    channel: Option<ChannelId>,
    limit: u32,
    timeout: Duration,
) -> Result<Vec<Envelope>, WireError> {
    if let Some(c) = channel {
        other_member(store, channels, &me.identity_key, c).await?;
    }
    let deadline = tokio::time::Instant::now() + timeout.min(MAX_FETCH_WAIT);
    let notify = mailboxes.subscribe(me.identity_key);
    let mut shutdown = shutdown.clone();
    let result = async {
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mail = store
                .fetch(me.identity_key, channel, limit, FETCH_RESPONSE_BUDGET)
                .await
                .map_err(internal)?;
            if !mail.is_empty() || *shutdown.borrow() {
                return Ok(envelopes(mail));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
                _ = shutdown.changed() => return Ok(Vec::new()),
            }
        }
    }
    .await;
    mailboxes.unsubscribe(&me.identity_key, notify);
    result
}

pub async fn ack<S: Store>(store: &S, me: &Account, seqs: Vec<u64>) -> Result<u32, WireError> {
    store.ack(me.identity_key, seqs).await.map_err(internal)
}
