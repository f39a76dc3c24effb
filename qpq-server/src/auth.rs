//! Accounts and sessions: OPAQUE registration and login (opaque-ke), the
//! identity-key binding, session tokens, and the login rate limits.
//!
//! Username enumeration (the plan's item 1.4): a login start for a username
//! that does not exist runs opaque-ke's fake-record path — the same
//! computation, the same response shape and size — and fails only at finish,
//! with the same E011 as a wrong password. Rate limits are keyed by the name
//! asked for, whether or not it exists, so they reveal nothing either.
//!
//! Account changes (a new password, deleting the account) need more than a
//! session: each carries a login the caller just ran for its own username,
//! which is finished here as proof of the password without issuing a
//! session. A stolen session token alone changes nothing lasting.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::limits::LOGIN_STATE_TTL;
use quicproquo_protocol::opaque::{Suite, CONTEXT};
use quicproquo_protocol::types::{IdentityKey, LoginId, SessionToken, Username};
use quicproquo_protocol::wire::{identity_proof_message, IDENTITY_PROOF_LEN};
use rand::rngs::OsRng;
use rand::RngCore;

use crate::cache::TtlCache;
use crate::config::{NetworkLimits, RateLimits};
use crate::ratelimit::{address_group, RateLimiter, SlidingWindow, DEFAULT_MAX_KEYS};
use crate::service::{internal, Now};
use crate::store::{Account, Change, Store, StoreError};

/// Name of the persisted OPAQUE `ServerSetup` in the store.
const SETUP_SECRET: &str = "opaque_server_setup_v1";
/// In-progress logins kept at most (each is a few hundred bytes). Past it
/// the coldest are evicted (their finish gets E015 and the client starts
/// again); the server never refuses every login because the map is full.
const MAX_PENDING_LOGINS: usize = 100_000;
/// How long a looked-up session is trusted without asking the store again
/// (saves every request a store round trip). Ended sessions are evicted at
/// once, on every node, by the store's change announcements; this bounds
/// only how long an announcement lost despite the store's `Lost` signal
/// could leave one in use.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a started registration may take to finish.
const REGISTRATION_TTL: Duration = Duration::from_secs(300);
const REGISTRATIONS_MAX: usize = 10_000;
const SESSION_CACHE_MAX: usize = 100_000;

struct PendingLogin {
    state: ServerLogin<Suite>,
    username: Username,
    started: Instant,
}

/// A pending login, taken once by its finish.
type Pending = Arc<Mutex<Option<PendingLogin>>>;

pub struct Auth {
    setup: ServerSetup<Suite>,
    pending: quick_cache::sync::Cache<LoginId, Pending>,
    /// Logins started per address group within `LOGIN_STATE_TTL`: at most
    /// `pending_logins_per_address` pending from one group.
    pending_per_group: SlidingWindow<IpAddr>,
    login_per_account: RateLimiter<Username>,
    /// Keyed by address group (`address_group`), as is registration.
    login_per_address: RateLimiter<IpAddr>,
    register_per_address: RateLimiter<IpAddr>,
    ipv6_prefix_len: u8,
    session_ttl: Duration,
    sessions: TtlCache<[u8; 32], Account>,
    /// Usernames whose registration was started (rate-limited per address)
    /// and may be finished once: without it `opaqueRegisterFinish` alone
    /// created accounts without any limit.
    registrations: TtlCache<Username, ()>,
    /// Counts evictions ([`Auth::forget`]): a session read from the store
    /// is cached only if none happened meanwhile, so a look-up racing a
    /// logout cannot put the ended session back.
    evictions: AtomicU64,
}

fn rate_limited(wait: Duration) -> WireError {
    WireError::rate_limited(u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1))
}

fn opaque_error(what: &str) -> WireError {
    WireError::new(
        ErrorCode::InvalidOpaqueMessage,
        format!("invalid OPAQUE {what}"),
    )
}

impl Auth {
    /// Loads the OPAQUE server setup, creating and persisting it on first
    /// start: every account depends on it, so it is never regenerated.
    pub async fn new<S: Store>(
        store: &S,
        session_ttl: Duration,
        limits: RateLimits,
        network: &NetworkLimits,
    ) -> Result<Self, StoreError> {
        let fresh = ServerSetup::<Suite>::new(&mut OsRng).serialize().to_vec();
        let stored = store.server_secret(SETUP_SECRET, fresh).await?;
        let setup = ServerSetup::<Suite>::deserialize(&stored)
            .map_err(|_| StoreError::Backend("the stored OPAQUE server setup is corrupt".into()))?;
        Ok(Self {
            setup,
            pending: quick_cache::sync::Cache::new(MAX_PENDING_LOGINS),
            pending_per_group: SlidingWindow::new(
                network.pending_logins_per_address,
                LOGIN_STATE_TTL,
                DEFAULT_MAX_KEYS,
            ),
            ipv6_prefix_len: network.ipv6_prefix_len,
            login_per_account: RateLimiter::per_window(
                limits.login_per_account_per_minute,
                Duration::from_secs(60),
            ),
            login_per_address: RateLimiter::per_window(
                limits.login_per_address_per_minute,
                Duration::from_secs(60),
            ),
            register_per_address: RateLimiter::per_window(
                limits.registrations_per_address_per_hour,
                Duration::from_secs(3600),
            ),
            session_ttl,
            sessions: TtlCache::new(SESSION_CACHE_TTL, SESSION_CACHE_MAX),
            registrations: TtlCache::new(REGISTRATION_TTL, REGISTRATIONS_MAX),
            evictions: AtomicU64::new(0),
        })
    }

    /// The group `peer` is counted in for the limits above.
    fn group(&self, peer: IpAddr) -> IpAddr {
        address_group(peer, self.ipv6_prefix_len)
    }

    pub async fn register_start<S: Store>(
        &self,
        store: &S,
        username: &Username,
        request: &[u8],
        peer: IpAddr,
        now: Now,
    ) -> Result<Vec<u8>, WireError> {
        self.register_per_address
            .check(&self.group(peer), now.mono)
            .map_err(rate_limited)?;
        if store.account(username).await.map_err(internal)?.is_some() {
            return Err(WireError::bare(ErrorCode::UsernameTaken));
        }
        let request = RegistrationRequest::<Suite>::deserialize(request)
            .map_err(|_| opaque_error("registration request"))?;
        let started =
            ServerRegistration::<Suite>::start(&self.setup, request, username.as_str().as_bytes())
                .map_err(|_| opaque_error("registration request"))?;
        self.registrations.put(username.clone(), (), now.mono);
        Ok(started.message.serialize().to_vec())
    }

    pub async fn register_finish<S: Store>(
        &self,
        store: &S,
        username: Username,
        upload: &[u8],
        identity_key: IdentityKey,
        proof: &[u8; IDENTITY_PROOF_LEN],
        now: Now,
    ) -> Result<(), WireError> {
        if self.registrations.get(&username, now.mono).is_none() {
            return Err(WireError::bare(ErrorCode::UnknownRegistration));
        }
        verify_identity_proof(&username, &identity_key, proof)?;
        let upload = RegistrationUpload::<Suite>::deserialize(upload)
            .map_err(|_| opaque_error("registration upload"))?;
        let record = ServerRegistration::<Suite>::finish(upload);
        let account = Account {
            username,
            identity_key,
            opaque_record: record.serialize().to_vec(),
            created_at_ms: now.unix_ms,
        };
        let name = account.username.clone();
        match store.create_account(account).await {
            Ok(()) => {
                self.registrations.remove(&name);
                Ok(())
            }
            Err(StoreError::UsernameTaken) => Err(WireError::bare(ErrorCode::UsernameTaken)),
            Err(StoreError::IdentityKeyTaken) => Err(WireError::bare(ErrorCode::IdentityKeyTaken)),
            Err(e) => Err(internal(e)),
        }
    }

    pub async fn login_start<S: Store>(
        &self,
        store: &S,
        username: Username,
        request: &[u8],
        peer: IpAddr,
        now: Now,
    ) -> Result<(LoginId, Vec<u8>), WireError> {
        let group = self.group(peer);
        self.login_per_address
            .check(&group, now.mono)
            .map_err(rate_limited)?;
        self.login_per_account
            .check(&username, now.mono)
            .map_err(rate_limited)?;
        let request = CredentialRequest::<Suite>::deserialize(request)
            .map_err(|_| opaque_error("credential request"))?;
        // An unknown user gets `None`: opaque-ke then answers from a fake
        // record derived from the server setup, indistinguishable on the wire.
        let record = match store.account(&username).await.map_err(internal)? {
            Some(a) => Some(
                ServerRegistration::<Suite>::deserialize(&a.opaque_record)
                    .map_err(|_| internal("stored OPAQUE record is corrupt"))?,
            ),
            None => None,
        };
        let params = ServerLoginParameters {
            context: Some(CONTEXT),
            ..Default::default()
        };
        let started = ServerLogin::start(
            &mut OsRng,
            &self.setup,
            record,
            request,
            username.as_str().as_bytes(),
            params,
        )
        .map_err(|_| opaque_error("credential request"))?;

        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let login_id = LoginId(id);
        // Counted last, once the login is sure to be stored: a refused
        // start does not use up the group's room.
        self.pending_per_group
            .check(&group, now.mono)
            .map_err(rate_limited)?;
        self.pending.insert(
            login_id,
            Arc::new(Mutex::new(Some(PendingLogin {
                state: started.state,
                username,
                started: now.mono,
            }))),
        );
        Ok((login_id, started.message.serialize().to_vec()))
    }

    /// Completes a login; returns the new session token, its expiry and the
    /// account's identity key.
    pub async fn login_finish<S: Store>(
        &self,
        store: &S,
        login_id: LoginId,
        finalization: &[u8],
        now: Now,
    ) -> Result<(SessionToken, u64, IdentityKey), WireError> {
        let username = self.finish_pending(login_id, finalization, now)?;
        let account = store
            .account(&username)
            .await
            .map_err(internal)?
            .ok_or_else(|| WireError::bare(ErrorCode::LoginFailed))?;

        let token = SessionToken::generate(&mut OsRng);
        let expires = now.unix_ms + self.session_ttl.as_millis() as u64;
        // Refused only now, after the password proof: a disabled account
        // tells someone guessing passwords nothing.
        store
            .create_session(token.hash(), &account.username, expires)
            .await
            .map_err(|e| match e {
                StoreError::AccountDisabled => WireError::bare(ErrorCode::AccountDisabled),
                e => internal(e),
            })?;
        tracing::info!(user = %account.username, "login");
        Ok((token, expires, account.identity_key))
    }

    /// Finishes a started login: the username it was started for, if the
    /// password was right. Consumes the login either way.
    fn finish_pending(
        &self,
        login_id: LoginId,
        finalization: &[u8],
        now: Now,
    ) -> Result<Username, WireError> {
        let pending = self
            .pending
            .remove(&login_id)
            .and_then(|(_, p)| p.lock().unwrap_or_else(|e| e.into_inner()).take())
            .filter(|p| now.mono.saturating_duration_since(p.started) < LOGIN_STATE_TTL)
            .ok_or_else(|| WireError::bare(ErrorCode::UnknownLogin))?;
        let finalization = CredentialFinalization::<Suite>::deserialize(finalization)
            .map_err(|_| opaque_error("credential finalization"))?;
        let params = ServerLoginParameters {
            context: Some(CONTEXT),
            ..Default::default()
        };
        // Wrong password and unknown user fail here, identically.
        pending
            .state
            .finish(finalization, params)
            .map_err(|_| WireError::bare(ErrorCode::LoginFailed))?;
        Ok(pending.username)
    }

    /// The caller's proof of `me`'s current password: a login it started
    /// for `me`'s own username (a login into another account proves nothing
    /// about this one).
    fn prove_password(
        &self,
        me: &Account,
        login_id: LoginId,
        finalization: &[u8],
        now: Now,
    ) -> Result<(), WireError> {
        if self.finish_pending(login_id, finalization, now)? != me.username {
            return Err(WireError::new(
                ErrorCode::LoginFailed,
                "the password proof is a login into another account",
            ));
        }
        Ok(())
    }

    /// The first step of a new password: like `register_start`, for the
    /// session's own account. The server keeps no state for it (the OPRF key
    /// is derived from the setup and the username); the proof of the current
    /// password comes with the second step.
    pub fn change_password_start(
        &self,
        me: &Account,
        request: &[u8],
    ) -> Result<Vec<u8>, WireError> {
        let request = RegistrationRequest::<Suite>::deserialize(request)
            .map_err(|_| opaque_error("registration request"))?;
        let started = ServerRegistration::<Suite>::start(
            &self.setup,
            request,
            me.username.as_str().as_bytes(),
        )
        .map_err(|_| opaque_error("registration request"))?;
        Ok(started.message.serialize().to_vec())
    }

    /// Replaces `me`'s password once the current one is proven; every other
    /// session of the account ends, the caller's stays.
    pub async fn change_password_finish<S: Store>(
        &self,
        store: &S,
        me: &Account,
        token: &SessionToken,
        call: PasswordProof<'_>,
        upload: &[u8],
        now: Now,
    ) -> Result<(), WireError> {
        let upload = RegistrationUpload::<Suite>::deserialize(upload)
            .map_err(|_| opaque_error("registration upload"))?;
        self.prove_password(me, call.login_id, call.finalization, now)?;
        let record = ServerRegistration::<Suite>::finish(upload);
        store
            .change_password(&me.username, record.serialize().to_vec(), token.hash())
            .await
            .map_err(internal)?;
        self.forget(&Change::Account(me.username.clone()));
        tracing::info!(user = %me.username, "password changed");
        Ok(())
    }

    /// Deletes `me`'s account once its password is proven.
    pub async fn delete_account<S: Store>(
        &self,
        store: &S,
        me: &Account,
        call: PasswordProof<'_>,
        now: Now,
    ) -> Result<(), WireError> {
        self.prove_password(me, call.login_id, call.finalization, now)?;
        store
            .delete_account(&me.username, now.unix_ms)
            .await
            .map_err(internal)?;
        self.forget(&Change::Account(me.username.clone()));
        tracing::info!(user = %me.username, "account deleted");
        Ok(())
    }

    pub async fn logout<S: Store>(&self, store: &S, token: &SessionToken) -> Result<(), WireError> {
        store.delete_session(token.hash()).await.map_err(internal)?;
        self.forget(&Change::Session(token.hash()));
        Ok(())
    }

    /// Drops the cached sessions a change ended: called at once for a change
    /// made on this node, and for every node's changes as the store
    /// announces them (so a logout elsewhere takes effect here too).
    pub fn forget(&self, change: &Change) {
        // Counted first: a look-up that read the store before this change
        // committed sees the count move and does not cache what it read.
        match change {
            Change::Session(hash) => {
                self.evictions.fetch_add(1, Ordering::SeqCst);
                self.sessions.remove(hash);
            }
            Change::Account(name) => {
                self.evictions.fetch_add(1, Ordering::SeqCst);
                self.sessions.retain(|a| &a.username != name);
            }
            Change::Lost => {
                self.evictions.fetch_add(1, Ordering::SeqCst);
                self.sessions.clear();
            }
            Change::Mail(_) | Change::Group { .. } => {}
        }
    }

    /// The account behind a session token.
    pub async fn authenticate<S: Store>(
        &self,
        store: &S,
        token: &SessionToken,
        now: Now,
    ) -> Result<Account, WireError> {
        let hash = token.hash();
        if let Some(a) = self.sessions.get(&hash, now.mono) {
            return Ok(a);
        }
        let evictions = self.evictions.load(Ordering::SeqCst);
        let account = store
            .session(hash, now.unix_ms)
            .await
            .map_err(internal)?
            .ok_or_else(|| WireError::bare(ErrorCode::Unauthenticated))?;
        if self.evictions.load(Ordering::SeqCst) == evictions {
            self.sessions.put(hash, account.clone(), now.mono);
        }
        Ok(account)
    }
}

/// A login the caller started for its own username and finished on its
/// side: the proof of the password an account change carries.
#[derive(Debug, Clone, Copy)]
pub struct PasswordProof<'a> {
    pub login_id: LoginId,
    pub finalization: &'a [u8],
}

/// The identity key must sign `identity_proof_message(username)`: nobody can
/// bind (and so receive the mail of) a key they do not hold.
fn verify_identity_proof(
    username: &Username,
    key: &IdentityKey,
    proof: &[u8; IDENTITY_PROOF_LEN],
) -> Result<(), WireError> {
    let bad = || WireError::bare(ErrorCode::BadIdentityProof);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes()).map_err(|_| bad())?;
    let sig = ed25519_dalek::Signature::from_bytes(proof);
    vk.verify_strict(&identity_proof_message(username), &sig)
        .map_err(|_| bad())
}
