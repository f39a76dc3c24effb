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
use quicproquo_protocol::types::IdentityKey;
use quicproquo_protocol::wire::{Request, Response};
use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::Config;
use crate::delivery::{
    Delivery, EnqueueRequest, Enqueued, FetchRequest, GroupEnqueueRequest, GroupEnqueued,
};
use crate::directory;
use crate::groups::Groups;
use crate::ratelimit::RateLimiter;
use crate::store::{Store, StoreError};

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
    auth: Auth,
    per_account: RateLimiter<IdentityKey>,
    delivery: Delivery,
    groups: Groups,
    /// The public half of the server's MLS external-sender key (the seed is
    /// a server secret): groups list it in `external_senders` so that the
    /// server can later propose removing a revoked device.
    removal_key: Vec<u8>,
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
        let auth = Auth::new(&store, config.session_ttl, limits).await?;
        let removal_key = removal_key(&store).await?;
        Ok(Self {
            store,
            auth,
            per_account: RateLimiter::new(
                f64::from(limits.requests_per_second_per_account),
                limits.request_burst_per_account,
            ),
            delivery: Delivery::new(config.require_channel_authz, shutdown),
            groups: Groups::default(),
            removal_key,
        })
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
            Request::Logout { auth } => {
                self.auth.logout(store, &auth).await?;
                Response::Logout
            }
            Request::UploadKeyPackages {
                packages,
                last_resort,
                ..
            } => Response::UploadKeyPackages {
                available: directory::upload_key_packages(store, &me, packages, last_resort)
                    .await?,
            },
            Request::FetchKeyPackage { target, suite, .. } => {
                let (key_package, identity_key, last_resort) =
                    directory::fetch_key_package(store, &target, suite).await?;
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
