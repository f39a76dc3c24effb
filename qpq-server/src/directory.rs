//! The directory: key packages (a stock per user, one last-resort package
//! that is never consumed; verified at upload by [`key_package`], handed to
//! one requester at most so fast, never after their lifetime), username →
//! identity key, and DM channels (the plan's item 5.1; one per unordered
//! pair of users, a random 16-byte id).

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::types::{ChannelId, IdentityKey, Username};
use quicproquo_protocol::wire::UserRef;
use rand::rngs::OsRng;
use rand::RngCore;

use crate::key_package;
use crate::ratelimit::RateLimiter;
use crate::service::{internal, Now};
use crate::store::{Account, Store, StoreError, StoredKeyPackage, Take};

/// Verifies every package of one upload as `me`'s (see [`key_package`]) and
/// returns their one ciphersuite, the one-time packages and the last resort.
fn verify_upload(
    me: &IdentityKey,
    packages: &[Vec<u8>],
    last_resort: Option<&Vec<u8>>,
    now_ms: u64,
) -> Result<(u16, Vec<StoredKeyPackage>, Option<StoredKeyPackage>), WireError> {
    let refused =
        |e: key_package::KeyPackageError| WireError::new(ErrorCode::InvalidPayload, e.to_string());
    let mut suite = None;
    let mut same_suite = |v: key_package::Verified| {
        if suite.is_some_and(|prev| prev != v.suite) {
            return Err(WireError::new(
                ErrorCode::InvalidPayload,
                "one upload holds key packages of one ciphersuite",
            ));
        }
        suite = Some(v.suite);
        Ok(v.package)
    };
    let mut one_time = Vec::with_capacity(packages.len());
    for p in packages {
        one_time.push(same_suite(
            key_package::verify(p, me, now_ms, false).map_err(refused)?,
        )?);
    }
    let last = match last_resort {
        Some(p) => Some(same_suite(
            key_package::verify(p, me, now_ms, true).map_err(refused)?,
        )?),
        None => None,
    };
    let suite = suite.ok_or_else(|| WireError::new(ErrorCode::Malformed, "no key packages"))?;
    Ok((suite, one_time, last))
}

/// Stores `me`'s verified key packages; returns how many one-time packages
/// of their suite are now available.
pub async fn upload_key_packages<S: Store>(
    store: &S,
    me: &Account,
    packages: Vec<Vec<u8>>,
    last_resort: Option<Vec<u8>>,
    now_ms: u64,
) -> Result<u32, WireError> {
    let (suite, packages, last_resort) =
        verify_upload(&me.identity_key, &packages, last_resort.as_ref(), now_ms)?;
    match store
        .add_key_packages(me.identity_key, suite, packages, last_resort, now_ms)
        .await
    {
        Ok(n) => Ok(n),
        Err(StoreError::TooManyKeyPackages) => Err(WireError::new(
            ErrorCode::TooManyKeyPackages,
            format!(
                "at most {} key packages may be stored per user",
                quicproquo_protocol::limits::MAX_KEY_PACKAGES_STORED
            ),
        )),
        Err(e) => Err(internal(e)),
    }
}

async fn find<S: Store>(store: &S, who: &UserRef) -> Result<Account, WireError> {
    let found = match who {
        UserRef::Username(u) => store.account(u).await,
        UserRef::Identity(k) => store.account_by_identity(k).await,
    }
    .map_err(internal)?;
    if let Some(account) = found {
        return Ok(account);
    }
    // Only a name is retired (a deleted account's identity key is not kept),
    // so only a look-up by name can tell "deleted" from "never registered".
    match who {
        UserRef::Username(u) if store.username_retired(u).await.map_err(internal)? => {
            Err(WireError::bare(ErrorCode::AccountDeleted))
        }
        _ => Err(WireError::bare(ErrorCode::UnknownUser)),
    }
}

/// Consumes one of `who`'s unexpired key packages of `suite` (or hands out
/// the last-resort one) for `requester`. A requester gets at most
/// `per_requester`'s share of one user's one-time packages per hour, then
/// the last-resort package: nobody can drain a user's stock.
pub async fn fetch_key_package<S: Store>(
    store: &S,
    per_requester: &RateLimiter<(IdentityKey, IdentityKey)>,
    requester: &Account,
    who: &UserRef,
    suite: u16,
    now: Now,
) -> Result<(Vec<u8>, IdentityKey, bool), WireError> {
    let account = find(store, who).await?;
    let take = match per_requester.check(&(requester.identity_key, account.identity_key), now.mono)
    {
        Ok(()) => Take::OneTimeFirst,
        Err(_) => Take::LastResortOnly,
    };
    let (kp, last_resort) = store
        .take_key_package(account.identity_key, suite, now.unix_ms, take)
        .await
        .map_err(internal)?
        .ok_or_else(|| WireError::bare(ErrorCode::NoKeyPackage))?;
    Ok((kp, account.identity_key, last_resort))
}

pub async fn resolve_user<S: Store>(
    store: &S,
    username: Username,
) -> Result<IdentityKey, WireError> {
    Ok(find(store, &UserRef::Username(username))
        .await?
        .identity_key)
}

pub async fn create_channel<S: Store>(
    store: &S,
    me: &Account,
    peer: IdentityKey,
) -> Result<ChannelId, WireError> {
    if peer == me.identity_key {
        return Err(WireError::bare(ErrorCode::SelfChannel));
    }
    find(store, &UserRef::Identity(peer)).await?;
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    store
        .create_channel(me.identity_key, peer, ChannelId(id))
        .await
        .map_err(internal)
}
