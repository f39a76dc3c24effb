//! The directory: key packages (a stock per user, one last-resort package
//! that is never consumed), username → identity key, and DM channels (the
//! plan's item 5.1; one per unordered pair of users, a random 16-byte id).

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::mls_framing::{self, Framing};
use quicproquo_protocol::types::{ChannelId, IdentityKey, Username};
use quicproquo_protocol::wire::UserRef;
use rand::rngs::OsRng;
use rand::RngCore;

use crate::service::internal;
use crate::store::{Account, Store, StoreError};

/// The ciphersuite of every package in one upload (they must share one).
fn upload_suite(packages: &[Vec<u8>], last_resort: Option<&Vec<u8>>) -> Result<u16, WireError> {
    let mut suite = None;
    for p in packages.iter().chain(last_resort) {
        let s = match mls_framing::read(p) {
            Ok(Framing::KeyPackage { suite }) => suite,
            _ => {
                return Err(WireError::new(
                    ErrorCode::InvalidPayload,
                    "a key package is not a serialized MLS KeyPackage",
                ))
            }
        };
        if suite.is_some_and(|prev| prev != s) {
            return Err(WireError::new(
                ErrorCode::InvalidPayload,
                "one upload holds key packages of one ciphersuite",
            ));
        }
        suite = Some(s);
    }
    suite.ok_or_else(|| WireError::new(ErrorCode::Malformed, "no key packages"))
}

pub async fn upload_key_packages<S: Store>(
    store: &S,
    me: &Account,
    packages: Vec<Vec<u8>>,
    last_resort: Option<Vec<u8>>,
) -> Result<u32, WireError> {
    let suite = upload_suite(&packages, last_resort.as_ref())?;
    match store
        .add_key_packages(me.identity_key, suite, packages, last_resort)
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
    found.ok_or_else(|| WireError::bare(ErrorCode::UnknownUser))
}

/// Consumes one of `who`'s key packages of `suite` (or hands out the
/// last-resort one).
pub async fn fetch_key_package<S: Store>(
    store: &S,
    who: &UserRef,
    suite: u16,
) -> Result<(Vec<u8>, IdentityKey, bool), WireError> {
    let account = find(store, who).await?;
    let (kp, last_resort) = store
        .take_key_package(account.identity_key, suite)
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
