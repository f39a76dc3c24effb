//! Request handling without I/O: a decoded [`Request`] in, a [`Response`]
//! out, with the time of the request passed in as [`Now`].
//!
//! [`Service`] owns the rules and their state: [`Auth`] (OPAQUE, sessions,
//! login limits), the per-account request limit, and [`Delivery`]
//! (mailboxes, the channel cache, the delivery settings); the directory's
//! rules are plain functions over the store. [`Service::handle`]
//! authenticates the request, charges the account's rate limit and hands it
//! to the owner of its rule. Nothing under `Service` reads the clock: the
//! QUIC driver (`server.rs`) takes [`Now::current`] once per request, and
//! the unit tests (`service/tests.rs`) drive `handle` on a temporary store
//! with a clock they advance themselves, without sockets.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::limits::IDEMPOTENCY_TTL;
use quicproquo_protocol::types::IdentityKey;
use quicproquo_protocol::wire::{Request, Response};
use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::auth::{Auth, PasswordProof};
use crate::blobs::arrivals::Arrivals;
use crate::blobs::rules::BlobContext;
use crate::blobs::{AnyBlobStore, BlobExpiry, BlobLimits, BlobStore};
use crate::config::Config;
use crate::delivery::{
    Delivery, EnqueueRequest, Enqueued, FetchRequest, GroupEnqueueRequest, GroupEnqueued, Mailboxes,
};
use crate::directory;
use crate::groups::Groups;
use crate::ratelimit::RateLimiter;
use crate::store::{Change, MailQuota, Purge, Store, StoreError};

/// The time of a request: monotonic for rate limits and timeouts, wall clock
/// for what is stored.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub unix_ms: u64,
}

impl Now {
    /// The clock's time: read by the driver only, once per request.
    pub fn current() -> Self {
        Self {
            mono: Instant::now(),
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// The time `d` after this one (both clocks advance together).
    pub fn plus(self, d: Duration) -> Self {
        Self {
            mono: self.mono + d,
            unix_ms: self.unix_ms.saturating_add(d.as_millis() as u64),
        }
    }
}

/// Logs an internal failure and returns the E001 a client sees (which says
/// nothing about internals).
pub fn internal(e: impl std::fmt::Display) -> WireError {
    tracing::error!(error = %e, "internal error");
    WireError::bare(ErrorCode::Internal)
}

pub struct Service<S: Store> {
    pub store: S,
    auth: Arc<Auth>,
    per_account: RateLimiter<IdentityKey>,
    /// One-time key packages of one user (second) taken by one requester
    /// (first): past the hourly share the requester gets the last resort.
    key_package_takes: RateLimiter<(IdentityKey, IdentityKey)>,
    delivery: Delivery,
    groups: Arc<Groups>,
    /// The public half of the server's MLS external-sender key (the seed is
    /// a server secret): groups list it in `external_senders` so that the
    /// server can later propose removing a revoked device.
    removal_key: Vec<u8>,
    mail_ttl: Duration,
    /// Attachments (issue 18): the backend beside the store, and the
    /// operator's limits.
    blobs: AnyBlobStore,
    blob_limits: BlobLimits,
    /// Upload pieces that overtook each other wait here for their turn.
    blob_arrivals: Arrivals,
}

/// Applies the store's change announcements (this node's and, with a
/// shared database, every node's) to this node's caches and held
/// `fetchWait`s; ends when the store is dropped. Mail stored through this
/// node already woke its waiters directly: the announcement is what reaches
/// the other nodes.
async fn follow_changes(
    mut changes: broadcast::Receiver<Change>,
    auth: Arc<Auth>,
    groups: Arc<Groups>,
    mailboxes: Arc<Mailboxes>,
) {
    loop {
        let change = match changes.recv().await {
            Ok(change) => change,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "store changes came faster than they were applied");
                Change::Lost
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match change {
            Change::Mail(key) => mailboxes.notify(&key),
            Change::Session(_) | Change::Account(_) => auth.forget(&change),
            // Waits for a check in progress on the group: not in this loop.
            Change::Group { id, revision } => {
                let groups = groups.clone();
                tokio::spawn(async move { groups.changed(&id, revision).await });
            }
            Change::Lost => {
                auth.forget(&change);
                groups.forget_all();
                mailboxes.notify_all();
            }
        }
    }
}

/// Name of the server secret that seeds the removal key.
const REMOVAL_KEY_SECRET: &str = "mls-removal-key-seed";

impl<S: Store> Service<S> {
    /// Uses `config`'s policy settings (channel authorization, session
    /// lifetime, rate limits); `shutdown` ends held `fetchWait`s.
    pub async fn new(
        store: S,
        config: &Config,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, StoreError> {
        let limits = config.rate_limits;
        // Subscribed before anything is read, so no change is missed.
        let changes = store.changes();
        let auth = Arc::new(Auth::new(&store, config.session_ttl, limits, &config.network).await?);
        let removal_key = removal_key(&store).await?;
        let blobs = AnyBlobStore::for_store(&store, &config.data_dir)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let service = Self {
            store,
            auth,
            per_account: RateLimiter::new(
                f64::from(limits.requests_per_second_per_account),
                limits.request_burst_per_account,
            ),
            key_package_takes: RateLimiter::per_window(
                config.quotas.key_packages_per_requester_per_hour,
                Duration::from_secs(3600),
            ),
            delivery: Delivery::new(
                config.require_channel_authz,
                MailQuota {
                    mailbox_bytes: config.quotas.mailbox_bytes,
                    sender_bytes: config.quotas.sender_share_bytes,
                },
                shutdown,
            ),
            mail_ttl: config.quotas.mail_ttl,
            blobs,
            blob_limits: config.quotas.blobs,
            blob_arrivals: Arrivals::default(),
            groups: Arc::default(),
            removal_key,
        };
        tokio::spawn(follow_changes(
            changes,
            service.auth.clone(),
            service.groups.clone(),
            service.delivery.mailboxes().clone(),
        ));
        Ok(service)
    }

    /// Deletes what is over at `now` (see [`Purge`]): expired sessions and
    /// key packages, idempotency keys past `IDEMPOTENCY_TTL`, and mail
    /// undelivered for the configured time, and groups idle for
    /// `GROUP_IDLE_TTL`. Returns how many rows went.
    pub async fn purge(&self, now: Now) -> Result<u64, StoreError> {
        let before = |d: Duration| now.unix_ms.saturating_sub(d.as_millis() as u64);
        let rows = self
            .store
            .purge_expired(Purge {
                now_ms: now.unix_ms,
                idempotency_before_ms: before(IDEMPOTENCY_TTL),
                mail_before_ms: before(self.mail_ttl),
            })
            .await?;
        let groups = self
            .store
            .purge_idle_groups(before(crate::groups::GROUP_IDLE_TTL))
            .await?;
        let blobs = self
            .blobs
            .expire(BlobExpiry::at(now.unix_ms, self.mail_ttl))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(rows + groups + blobs)
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Answers one request. Never panics on peer input; every failure is a
    /// catalogue error.
    pub async fn handle(&self, req: Request, peer: IpAddr, now: Now) -> Response {
        match self.dispatch(req, peer, now).await {
            Ok(r) => r,
            Err(e) => Response::Error(e),
        }
    }

    async fn dispatch(&self, req: Request, peer: IpAddr, now: Now) -> Result<Response, WireError> {
        let store = &self.store;
        // Requests without a session.
        let req = match req {
            Request::Health => {
                return Ok(Response::Health {
                    protocol_version: quicproquo_protocol::PROTOCOL_VERSION,
                    server_version: env!("CARGO_PKG_VERSION").to_string(),
                    server_time_ms: now.unix_ms,
                    removal_key: self.removal_key.clone(),
                    limits: quicproquo_protocol::wire::Limits::current(),
                })
            }
            Request::OpaqueRegisterStart { username, request } => {
                let response = self
                    .auth
                    .register_start(store, &username, &request, peer, now)
                    .await?;
                return Ok(Response::OpaqueRegisterStart { response });
            }
            Request::OpaqueRegisterFinish {
                username,
                upload,
                identity_key,
                identity_proof,
            } => {
                self.auth
                    .register_finish(store, username, &upload, identity_key, &identity_proof, now)
                    .await?;
                return Ok(Response::OpaqueRegisterFinish);
            }
            Request::OpaqueLoginStart { username, request } => {
                let (login_id, response) = self
                    .auth
                    .login_start(store, username, &request, peer, now)
                    .await?;
                return Ok(Response::OpaqueLoginStart { login_id, response });
            }
            Request::OpaqueLoginFinish {
                login_id,
                finalization,
            } => {
                let (token, expires_at_ms, identity_key) = self
                    .auth
                    .login_finish(store, login_id, &finalization, now)
                    .await?;
                return Ok(Response::OpaqueLoginFinish {
                    token,
                    expires_at_ms,
                    identity_key,
                });
            }
            other => other,
        };

        let token = req
            .auth()
            .ok_or_else(|| WireError::bare(ErrorCode::Unauthenticated))?;
        let me = self.auth.authenticate(store, token, now).await?;
        self.per_account
            .check(&me.identity_key, now.mono)
            .map_err(|wait| WireError::rate_limited(wait.as_millis().max(1) as u32))?;

        Ok(match req {
            // The session is valid (checked above); the driver binds the
            // connection to it on this success.
            Request::Authenticate { .. } => Response::Authenticate,
            Request::Logout { auth } => {
                self.auth.logout(store, &auth).await?;
                Response::Logout
            }
            Request::UploadKeyPackages {
                packages,
                last_resort,
                ..
            } => Response::UploadKeyPackages {
                available: directory::upload_key_packages(
                    store,
                    &me,
                    packages,
                    last_resort,
                    now.unix_ms,
                )
                .await?,
            },
            Request::FetchKeyPackage { target, suite, .. } => {
                let (key_package, identity_key, last_resort) = directory::fetch_key_package(
                    store,
                    &self.key_package_takes,
                    &me,
                    &target,
                    suite,
                    now,
                )
                .await?;
                Response::FetchKeyPackage {
                    key_package,
                    identity_key,
                    last_resort,
                }
            }
            Request::ResolveUser { username, .. } => Response::ResolveUser {
                identity_key: directory::resolve_user(store, username).await?,
            },
            Request::CreateChannel { peer, .. } => Response::CreateChannel {
                channel: directory::create_channel(store, &me, peer).await?,
            },
            Request::Enqueue {
                deliveries,
                payload,
                idempotency_key,
                ..
            } => {
                let req = EnqueueRequest {
                    deliveries,
                    payload,
                    idempotency_key,
                };
                let Enqueued { duplicate, seqs } =
                    self.delivery.enqueue(store, &me, req, now).await?;
                Response::Enqueue { duplicate, seqs }
            }
            Request::Fetch { channel, limit, .. } => {
                let req = FetchRequest { channel, limit };
                Response::Fetch(self.delivery.fetch(store, &me, req, now).await?)
            }
            Request::FetchWait {
                channel,
                limit,
                timeout_ms,
                ..
            } => {
                let req = FetchRequest { channel, limit };
                let timeout = Duration::from_millis(u64::from(timeout_ms));
                Response::FetchWait(
                    self.delivery
                        .fetch_wait(store, &me, req, timeout, now)
                        .await?,
                )
            }
            Request::Ack { seqs, .. } => Response::Ack {
                removed: self.delivery.ack(store, &me, seqs).await?,
            },
            Request::RegisterGroup { group_info, .. } => {
                self.groups
                    .register(store, me.identity_key, group_info, now.unix_ms)
                    .await?;
                Response::RegisterGroup
            }
            Request::EnqueueGroup {
                group,
                payload,
                idempotency_key,
                group_info,
                welcome,
                ..
            } => {
                let req = GroupEnqueueRequest {
                    group,
                    payload,
                    idempotency_key,
                    group_info,
                    welcome,
                };
                let GroupEnqueued { duplicate, members } = self
                    .delivery
                    .enqueue_group(store, &self.groups, &me, req, now)
                    .await?;
                Response::EnqueueGroup { duplicate, members }
            }
            Request::ChangePasswordStart { request, .. } => Response::ChangePasswordStart {
                response: self.auth.change_password_start(&me, &request)?,
            },
            Request::ChangePasswordFinish {
                auth,
                upload,
                login_id,
                finalization,
            } => {
                let proof = PasswordProof {
                    login_id,
                    finalization: &finalization,
                };
                self.auth
                    .change_password_finish(store, &me, &auth, proof, &upload, now)
                    .await?;
                Response::ChangePasswordFinish
            }
            Request::DeleteAccount {
                login_id,
                finalization,
                ..
            } => {
                let proof = PasswordProof {
                    login_id,
                    finalization: &finalization,
                };
                self.auth.delete_account(store, &me, proof, now).await?;
                // Its files go with it, as its mail does (after the account,
                // so a failure here leaves only what expiry removes later).
                if let Err(e) = self.blobs.delete_owned(me.identity_key).await {
                    tracing::warn!(error = %e, "deleting a deleted account's files");
                }
                Response::DeleteAccount
            }
            Request::BlobCreate {
                blob, group, size, ..
            } => Response::BlobCreate(
                self.blob_context(&me, now)
                    .create(blob, group, size)
                    .await?,
            ),
            Request::BlobUpload {
                blob, offset, data, ..
            } => Response::BlobUpload(
                self.blob_context(&me, now)
                    .upload(blob, offset, data)
                    .await?,
            ),
            Request::BlobStatus { blob, .. } => {
                Response::BlobStatus(self.blob_context(&me, now).status(blob).await?)
            }
            Request::BlobFinish { blob, .. } => {
                Response::BlobFinish(self.blob_context(&me, now).finish(blob).await?)
            }
            Request::BlobDownload {
                blob,
                offset,
                length,
                ..
            } => Response::BlobDownload {
                data: self
                    .blob_context(&me, now)
                    .download(blob, offset, length)
                    .await?,
            },
            Request::Health
            | Request::OpaqueRegisterStart { .. }
            | Request::OpaqueRegisterFinish { .. }
            | Request::OpaqueLoginStart { .. }
            | Request::OpaqueLoginFinish { .. } => {
                return Err(internal(
                    "session-less request reached the authenticated path",
                ))
            }
        })
    }
}

impl<S: Store> Service<S> {
    fn blob_context(
        &self,
        me: &crate::store::Account,
        now: Now,
    ) -> BlobContext<'_, S, AnyBlobStore> {
        BlobContext {
            store: &self.store,
            groups: &self.groups,
            blobs: &self.blobs,
            arrivals: &self.blob_arrivals,
            limits: self.blob_limits,
            me: me.identity_key,
            now,
        }
    }
}

/// The removal key's public half, from its seed (made once, kept as a
/// server secret so every node and restart has the same key).
async fn removal_key<S: Store>(store: &S) -> Result<Vec<u8>, StoreError> {
    use rand::RngCore as _;
    let mut fresh = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    let seed = zeroize::Zeroizing::new(store.server_secret(REMOVAL_KEY_SECRET, fresh).await?);
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Backend("the stored removal key seed is not 32 bytes".into()))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    Ok(key.verifying_key().to_bytes().to_vec())
}

#[cfg(test)]
mod tests;
