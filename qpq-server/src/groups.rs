//! Groups the server validates: their public MLS state, and the check of
//! every message sent to one.
//!
//! The server keeps each group's public part (openmls `PublicGroup`: the
//! ratchet tree, the group context, the transcript hashes and queued
//! proposals; no secrets) and a current GroupInfo. A creator registers a
//! group from its GroupInfo ([`Groups::register`]); after that every message
//! to the group passes [`Groups::check`]:
//!
//! - an application message (a `PrivateMessage`) from a current member, at
//!   an epoch the group has reached, goes to every other member;
//! - a proposal or commit must be a `PublicMessage` (E045) at the current
//!   epoch (E033 stale, E043 future), signed by a current member who is the
//!   sender (E041), valid for the state (E042: openmls' checks of signature,
//!   proposals, path and resulting tree); a commit must carry the GroupInfo
//!   of the epoch it creates (E044). A commit goes to every member of the
//!   epoch it ends (so removed members learn it) and its Welcome to the
//!   members it adds. Every leaf a message brings in or changes must be an
//!   account's: its key that account's identity key, its credential that
//!   account's username (E042; E047 at registration).
//!
//! Validation is CPU work outside the store's writer thread (on the
//! blocking pool); the store then applies the new state with a
//! compare-and-swap on the group's revision in the same transaction as its
//! mail ([`Store::enqueue_group`]), so two commits for one epoch cannot both
//! win, on one node or many. Loaded groups are cached (bounded by their
//! members); a change that loses the swap drops the cached copy.
//!
//! What the server cannot check (MLS-NOTES): the membership tag of a
//! `PublicMessage` and the encrypted path secrets need member secrets, so a
//! current member can still send a commit whose encrypted part is garbage.
//! That is MLS's insider assumption; removing the member is the remedy.

mod public_state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    LeafNodeIndex, MlsMessageBodyIn, MlsMessageIn, OpenMlsSignaturePublicKey,
    ProcessedMessageContent, ProposalStore, PublicGroup, Sender, SignatureScheme, Verifiable as _,
};
use openmls_rust_crypto::RustCrypto;
use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::mls_framing::{self, ContentType, Framing};
use quicproquo_protocol::types::{Epoch, IdentityKey};
use tokio::sync::Mutex;

use self::public_state::PublicState;
use crate::service::internal;
use crate::store::{GroupUpdate, NewGroup, Store, StoredGroup};

/// A group nobody sent anything to for this long is deleted (its members'
/// daemons re-create it if it is ever used again: E040).
pub const GROUP_IDLE_TTL: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);

/// A cached group that messages keep finding behind (see [`Groups::check`])
/// is read from the store again at most this often.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// How many members (summed over groups) the cache of loaded groups holds.
const CACHE_MEMBERS: u64 = 200_000;

/// A group loaded from the store, with what checks need at hand.
struct Loaded {
    revision: u64,
    /// When a message that found the copy behind had it read again (see
    /// [`Groups::check`]); `None` for a copy read for another reason.
    reloaded_at: Option<Instant>,
    group: PublicGroup,
    state: PublicState,
    /// Identity key of each leaf's owner, in leaf order (`None`: blank leaf).
    leaves: Vec<Option<IdentityKey>>,
}

impl Loaded {
    fn from_stored(stored: StoredGroup, reloaded_at: Option<Instant>) -> Result<Self, WireError> {
        let state = PublicState::from_bytes(&stored.state).map_err(internal)?;
        let group = PublicGroup::load(&state, &openmls::group::GroupId::from_slice(&[]))
            .map_err(internal)?
            .ok_or_else(|| internal("a stored group state is incomplete"))?;
        let leaves = leaves_of(&group);
        Ok(Self {
            revision: stored.revision,
            reloaded_at,
            group,
            state,
            leaves,
        })
    }

    fn epoch(&self) -> Epoch {
        Epoch(self.group.group_context().epoch().as_u64())
    }

    fn is_member(&self, key: &IdentityKey) -> bool {
        self.leaves.iter().flatten().any(|k| k == key)
    }

    /// Every member but `sender` (a member in two leaves, later one leaf per
    /// device, gets one copy).
    fn others(&self, sender: &IdentityKey) -> Vec<IdentityKey> {
        let mut out: Vec<IdentityKey> = self
            .leaves
            .iter()
            .flatten()
            .filter(|k| *k != sender)
            .copied()
            .collect();
        out.sort_unstable_by_key(|k| k.0);
        out.dedup();
        out
    }
}

/// A leaf's owner: its signature key is the account's identity key (one
/// leaf per account today; see MULTI-DEVICE.md for devices).
fn leaves_of(group: &PublicGroup) -> Vec<Option<IdentityKey>> {
    let mut leaves = Vec::new();
    for m in group.members() {
        let i = m.index.u32() as usize;
        if leaves.len() <= i {
            leaves.resize(i + 1, None);
        }
        leaves[i] = IdentityKey::from_slice(&m.signature_key).ok();
    }
    leaves
}

/// What a checked message does.
#[derive(Debug)]
pub struct Checked {
    /// Who gets the payload.
    pub recipients: Vec<IdentityKey>,
    /// Who gets the Welcome (members the commit adds).
    pub welcomed: Vec<IdentityKey>,
    /// The group's new state, for a proposal or commit.
    pub update: Option<GroupUpdate>,
    /// Every leaf the message brings in or changes, as (key, the username
    /// its credential claims): each must be that account's.
    claims: Vec<(IdentityKey, Vec<u8>)>,
}

/// The account a leaf claims: its signature key (an identity key) and the
/// username in its basic credential.
fn leaf_claim(leaf: &openmls::prelude::LeafNode) -> Result<(IdentityKey, Vec<u8>), WireError> {
    let key = IdentityKey::from_slice(leaf.signature_key().as_slice()).map_err(|_| {
        refuse(
            ErrorCode::InvalidCommit,
            "a leaf's signature key must be an Ed25519 identity key",
        )
    })?;
    let name = openmls::prelude::BasicCredential::try_from(leaf.credential().clone())
        .map_err(|_| {
            refuse(
                ErrorCode::InvalidCommit,
                "a leaf's credential must be basic",
            )
        })?
        .identity()
        .to_vec();
    Ok((key, name))
}

/// Refuses a leaf whose credential names another user than the account of
/// its key (or a key of no account): only daemons checked this before, so a
/// member could add an impostor leaf the server passed on.
async fn check_claims<S: Store>(
    store: &S,
    claims: &[(IdentityKey, Vec<u8>)],
    code: ErrorCode,
) -> Result<(), WireError> {
    for (key, name) in claims {
        let account = store.account_by_identity(key).await.map_err(internal)?;
        match account {
            Some(a) if a.username.as_str().as_bytes() == name.as_slice() => {}
            Some(_) => {
                return Err(refuse(
                    code,
                    format!("the leaf of {key} names another user than its account"),
                ))
            }
            None => {
                return Err(refuse(
                    code,
                    format!("the leaf of {key} belongs to no account here"),
                ))
            }
        }
    }
    Ok(())
}

/// A checked message whose state change is not stored yet. It holds the
/// group (other changes to it wait) until dropped; call [`Pending::stored`]
/// once the store applied it. Dropped otherwise, the cached copy — changed
/// ahead of the store — is discarded and loaded again next time.
pub struct Pending {
    pub checked: Checked,
    guard: Option<tokio::sync::OwnedMutexGuard<Option<Loaded>>>,
    stored: bool,
}

impl Pending {
    fn delivery(checked: Checked) -> Self {
        Self {
            checked,
            guard: None,
            stored: true,
        }
    }

    /// The store applied the change: the cached copy stays, at the
    /// revision the store now has.
    pub fn stored(mut self) {
        self.stored = true;
        if let Some(loaded) = self.guard.as_mut().and_then(|g| g.as_mut()) {
            loaded.revision += 1;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.stored {
            if let Some(guard) = self.guard.as_mut() {
                **guard = None;
            }
        }
    }
}

/// The groups' cache and checks; see the module documentation.
pub struct Groups {
    cache: quick_cache::sync::Cache<Vec<u8>, Entry, MembersWeight>,
}

/// A cached group: its slot (whoever holds the lock may change it) and its
/// weight, the member count when it was last put in the cache.
#[derive(Clone)]
struct Entry {
    members: u64,
    slot: Arc<Mutex<Option<Loaded>>>,
}

#[derive(Clone)]
struct MembersWeight;

impl quick_cache::Weighter<Vec<u8>, Entry> for MembersWeight {
    fn weight(&self, _key: &Vec<u8>, entry: &Entry) -> u64 {
        entry.members.max(1)
    }
}

impl Default for Groups {
    fn default() -> Self {
        Self {
            cache: quick_cache::sync::Cache::with_weighter(10_000, CACHE_MEMBERS, MembersWeight),
        }
    }
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> WireError {
    WireError::new(code, message)
}

fn parse(bytes: &[u8], what: &str) -> Result<MlsMessageBodyIn, WireError> {
    MlsMessageIn::tls_deserialize_exact(bytes)
        .map(MlsMessageIn::extract)
        .map_err(|e| {
            refuse(
                ErrorCode::InvalidPayload,
                format!("{what}: not an MLS message: {e}"),
            )
        })
}

fn group_info_of(bytes: &[u8], code: ErrorCode) -> Result<VerifiableGroupInfo, WireError> {
    match parse(bytes, "groupInfo")? {
        MlsMessageBodyIn::GroupInfo(gi) => Ok(gi),
        _ => Err(refuse(code, "groupInfo is not an MLS GroupInfo")),
    }
}

impl Groups {
    /// Registers a group from its creator's GroupInfo, which must carry the
    /// ratchet tree, verify, and have `creator` in a leaf.
    pub async fn register<S: Store>(
        &self,
        store: &S,
        creator: IdentityKey,
        group_info: Vec<u8>,
        now_ms: u64,
    ) -> Result<(), WireError> {
        let gi = group_info.clone();
        let registered = tokio::task::spawn_blocking(move || {
            let vgi = group_info_of(&gi, ErrorCode::InvalidGroupInfo)?;
            let tree = vgi
                .extensions()
                .ratchet_tree()
                .map(|t| t.ratchet_tree().clone())
                .ok_or_else(|| {
                    refuse(
                        ErrorCode::InvalidGroupInfo,
                        "the GroupInfo must carry the ratchet tree extension",
                    )
                })?;
            let group_id = vgi.group_id().as_slice().to_vec();
            if group_id.is_empty() || group_id.len() > mls_framing::MAX_GROUP_ID {
                return Err(refuse(
                    ErrorCode::InvalidGroupInfo,
                    format!("a group id has 1 to {} bytes", mls_framing::MAX_GROUP_ID),
                ));
            }
            let state = PublicState::default();
            let (group, _) = PublicGroup::from_external(
                &RustCrypto::default(),
                &state,
                tree,
                vgi,
                ProposalStore::new(),
            )
            .map_err(|e| refuse(ErrorCode::InvalidGroupInfo, e.to_string()))?;
            // Only the creator: members join by commits the server checks
            // (and whose Welcome it delivers), never by a registration.
            if leaves_of(&group).iter().any(|k| *k != Some(creator)) {
                return Err(refuse(
                    ErrorCode::InvalidGroupInfo,
                    "a group is registered with its creator alone in it",
                ));
            }
            let claims = group
                .members()
                .filter_map(|m| group.leaf(m.index).map(leaf_claim))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| refuse(ErrorCode::InvalidGroupInfo, e.message))?;
            let epoch = Epoch(group.group_context().epoch().as_u64());
            let bytes = state.to_bytes().map_err(internal)?;
            Ok((group_id, epoch, bytes, claims))
        })
        .await
        .map_err(internal)??;
        let (group_id, epoch, state, claims) = registered;
        check_claims(store, &claims, ErrorCode::InvalidGroupInfo).await?;
        store
            .register_group(NewGroup {
                group_id,
                epoch,
                state,
                group_info,
                now_ms,
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::GroupExists => WireError::bare(ErrorCode::GroupExists),
                other => internal(other),
            })
    }

    /// Checks one message to `group` from `sender` (see the module
    /// documentation). `inner` is the unpadded MLS message; `added_accounts`
    /// tells whether a key belongs to an account (for the members a commit
    /// adds).
    ///
    /// A cached copy may be behind a change made through another node whose
    /// announcement has not arrived yet: a message at a later epoch than the
    /// copy's, or from a sender it does not list, has the copy read from the
    /// store again — the first time at once, then at most once per
    /// `RELOAD_INTERVAL` per group, so that nobody can make every request
    /// reload a large group. `now` is the request's monotonic time.
    #[allow(clippy::too_many_arguments)]
    pub async fn check<S: Store>(
        &self,
        store: &S,
        sender: IdentityKey,
        group: &[u8],
        inner: &[u8],
        group_info: Option<Vec<u8>>,
        has_welcome: bool,
        now: Instant,
    ) -> Result<Pending, WireError> {
        let framing = mls_framing::read(inner)
            .map_err(|e| refuse(ErrorCode::InvalidPayload, format!("MLS framing: {e}")))?;
        let Framing::Group {
            group_id,
            epoch,
            content_type,
            encrypted,
        } = framing
        else {
            return Err(refuse(
                ErrorCode::WrongGroup,
                "enqueueGroup carries a group's PublicMessage or PrivateMessage",
            ));
        };
        if group_id != group {
            return Err(refuse(
                ErrorCode::WrongGroup,
                "the message belongs to another group than the one named",
            ));
        }

        let (slot, mut guard) = self
            .load(store, group, now, |l| {
                epoch > l.epoch() || !l.is_member(&sender)
            })
            .await?;
        let loaded = guard.as_ref().expect("loaded by load");
        if !loaded.is_member(&sender) {
            return Err(WireError::bare(ErrorCode::NotGroupMember));
        }
        let handshake = content_type != ContentType::Application;
        if handshake && encrypted {
            return Err(WireError::bare(ErrorCode::EncryptedHandshake));
        }
        if !handshake && !encrypted {
            return Err(refuse(
                ErrorCode::InvalidPayload,
                "an application message must be a PrivateMessage",
            ));
        }
        if content_type != ContentType::Commit && (group_info.is_some() || has_welcome) {
            return Err(refuse(
                ErrorCode::GroupInfoMismatch,
                "only a commit carries a GroupInfo or a Welcome",
            ));
        }
        let current = loaded.epoch();
        if epoch > current {
            return Err(refuse(
                ErrorCode::FutureEpoch,
                format!("epoch {} is ahead of the group's {}", epoch.0, current.0),
            ));
        }
        if !handshake {
            return Ok(Pending::delivery(Checked {
                recipients: loaded.others(&sender),
                welcomed: Vec::new(),
                update: None,
                claims: Vec::new(),
            }));
        }
        if epoch < current {
            return Err(refuse(
                ErrorCode::StaleCommit,
                format!(
                    "the group is at epoch {}, not {}: process pending messages and retry",
                    current.0, epoch.0
                ),
            ));
        }

        // The CPU work runs on the blocking pool with the group moved there;
        // it comes back changed only if the message was valid.
        let mut loaded = guard.take().expect("loaded above");
        let message = inner.to_vec();
        let (loaded, result) = tokio::task::spawn_blocking(move || {
            let result = apply(
                &mut loaded,
                sender,
                &message,
                group_info.as_deref(),
                has_welcome,
            );
            (loaded, result)
        })
        .await
        .map_err(internal)?;
        // A failed check may have left the state half-changed (a merge
        // applied before the GroupInfo was refused): then it is not put
        // back, and the group is loaded again next time.
        let checked = result?;
        check_claims(store, &checked.claims, ErrorCode::InvalidCommit).await?;
        self.remember(group, &slot, &loaded);
        *guard = Some(loaded);
        Ok(Pending {
            checked,
            guard: Some(guard),
            stored: false,
        })
    }

    /// The group's cache slot, locked and loaded: read from the store when
    /// absent, or again when the cached copy looks `behind` (at most once per
    /// `RELOAD_INTERVAL`; see [`Groups::check`]). E040 for an unknown group.
    async fn load<S: Store>(
        &self,
        store: &S,
        group: &[u8],
        now: Instant,
        behind: impl Fn(&Loaded) -> bool,
    ) -> Result<
        (
            Arc<Mutex<Option<Loaded>>>,
            tokio::sync::OwnedMutexGuard<Option<Loaded>>,
        ),
        WireError,
    > {
        let slot = self
            .cache
            .get_or_insert_with(&group.to_vec(), || {
                Ok::<_, std::convert::Infallible>(Entry {
                    members: 1,
                    slot: Arc::new(Mutex::new(None)),
                })
            })
            .unwrap_or_else(|never| match never {})
            .slot;
        let mut guard = slot.clone().lock_owned().await;
        let reload = guard.as_ref().is_some_and(|l| {
            behind(l)
                && l.reloaded_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= RELOAD_INTERVAL)
        });
        if guard.is_none() || reload {
            let stored = store
                .group(group.to_vec())
                .await
                .map_err(internal)?
                .ok_or_else(|| WireError::bare(ErrorCode::UnknownGroup))?;
            let loaded = Loaded::from_stored(stored, reload.then_some(now))?;
            self.remember(group, &slot, &loaded);
            *guard = Some(loaded);
        }
        Ok((slot, guard))
    }

    /// Whether `key` is a member of `group` in the server's validated state
    /// (attachments are authorized like mail: issue 18). A key the cached
    /// copy does not list has the group read again, as in `check`, so a
    /// member just added through another node is not refused for long.
    pub async fn is_member<S: Store>(
        &self,
        store: &S,
        group: &[u8],
        key: &IdentityKey,
        now: Instant,
    ) -> Result<bool, WireError> {
        let (_, guard) = self.load(store, group, now, |l| !l.is_member(key)).await?;
        Ok(guard.as_ref().is_some_and(|l| l.is_member(key)))
    }

    /// Drops the cached copy of a group that the store says is now at
    /// `revision`, unless the copy is already there (this node's own change).
    /// Waits for a check in progress on the group to finish first.
    pub async fn changed(&self, group: &[u8], revision: u64) {
        let Some(entry) = self.cache.get(group) else {
            return;
        };
        let mut slot = entry.slot.lock().await;
        if slot.as_ref().is_some_and(|l| l.revision < revision) {
            *slot = None;
        }
    }

    /// Drops a cached group (the store no longer has it).
    pub fn forget(&self, group: &[u8]) {
        self.cache.remove(group);
    }

    /// Drops every cached group (changes may have been missed).
    pub fn forget_all(&self) {
        self.cache.clear();
    }

    /// (Re-)weighs a group in the cache by its member count.
    fn remember(&self, group: &[u8], slot: &Arc<Mutex<Option<Loaded>>>, loaded: &Loaded) {
        let entry = Entry {
            members: loaded.leaves.len() as u64,
            slot: slot.clone(),
        };
        self.cache.insert(group.to_vec(), entry);
    }
}

/// Validates a proposal or commit against `loaded` and, if valid, applies
/// it there and says what to store and deliver.
fn apply(
    loaded: &mut Loaded,
    sender: IdentityKey,
    message: &[u8],
    group_info: Option<&[u8]>,
    has_welcome: bool,
) -> Result<Checked, WireError> {
    let crypto = RustCrypto::default();
    let protocol = match parse(message, "payload")? {
        MlsMessageBodyIn::PublicMessage(m) => m,
        _ => return Err(WireError::bare(ErrorCode::EncryptedHandshake)),
    };
    let invalid = |e: &dyn std::fmt::Display| refuse(ErrorCode::InvalidCommit, e.to_string());
    let processed = loaded
        .group
        .process_message(&crypto, protocol)
        .map_err(|e| invalid(&e))?;
    let leaf = match processed.sender() {
        Sender::Member(leaf) => *leaf,
        _ => {
            return Err(refuse(
                ErrorCode::InvalidCommit,
                "only a member's own commits and proposals are accepted",
            ))
        }
    };
    if loaded.leaves.get(leaf.u32() as usize).copied().flatten() != Some(sender) {
        return Err(refuse(
            ErrorCode::NotGroupMember,
            "the message is signed by another member than the sender",
        ));
    }
    let from_revision = loaded.revision;
    match processed.into_content() {
        ProcessedMessageContent::ProposalMessage(q) => {
            let claims = match q.proposal() {
                openmls::prelude::Proposal::Add(a) => {
                    vec![leaf_claim(a.key_package().leaf_node())?]
                }
                openmls::prelude::Proposal::Update(u) => vec![leaf_claim(u.leaf_node())?],
                _ => Vec::new(),
            };
            loaded
                .group
                .add_proposal(&loaded.state, *q)
                .map_err(internal)?;
            Ok(Checked {
                recipients: loaded.others(&sender),
                welcomed: Vec::new(),
                update: Some(GroupUpdate {
                    from_revision,
                    epoch: loaded.epoch(),
                    state: loaded.state.to_bytes().map_err(internal)?,
                    group_info: None,
                }),
                claims,
            })
        }
        ProcessedMessageContent::StagedCommitMessage(staged) => {
            let group_info = group_info.ok_or_else(|| {
                refuse(
                    ErrorCode::GroupInfoMismatch,
                    "a commit must carry the GroupInfo of the epoch it creates",
                )
            })?;
            // Everyone of the ending epoch hears of the commit, also those
            // it removes.
            let recipients = loaded.others(&sender);
            let mut welcomed: Vec<IdentityKey> = staged
                .add_proposals()
                .filter_map(|a| {
                    IdentityKey::from_slice(
                        a.add_proposal()
                            .key_package()
                            .leaf_node()
                            .signature_key()
                            .as_slice(),
                    )
                    .ok()
                })
                .collect();
            welcomed.sort_unstable_by_key(|k| k.0);
            welcomed.dedup();
            let mut claims = Vec::new();
            for a in staged.add_proposals() {
                claims.push(leaf_claim(a.add_proposal().key_package().leaf_node())?);
            }
            for u in staged.update_proposals() {
                claims.push(leaf_claim(u.update_proposal().leaf_node())?);
            }
            if let Some(path_leaf) = staged.update_path_leaf_node() {
                claims.push(leaf_claim(path_leaf)?);
            }
            if welcomed.is_empty() == has_welcome {
                return Err(refuse(
                    ErrorCode::GroupInfoMismatch,
                    "a commit carries a Welcome exactly when it adds members",
                ));
            }
            loaded
                .group
                .merge_commit(&loaded.state, *staged)
                .map_err(internal)?;
            check_group_info(&crypto, &loaded.group, leaf, group_info)?;
            loaded.leaves = leaves_of(&loaded.group);
            Ok(Checked {
                recipients,
                welcomed,
                claims,
                update: Some(GroupUpdate {
                    from_revision,
                    epoch: loaded.epoch(),
                    state: loaded.state.to_bytes().map_err(internal)?,
                    group_info: Some(group_info.to_vec()),
                }),
            })
        }
        ProcessedMessageContent::ApplicationMessage(_)
        | ProcessedMessageContent::OwnPrivateMessage => Err(refuse(
            ErrorCode::InvalidPayload,
            "an application message must be a PrivateMessage",
        )),
        ProcessedMessageContent::OwnPendingCommit
        | ProcessedMessageContent::ExternalJoinProposalMessage(_) => Err(refuse(
            ErrorCode::InvalidCommit,
            "external proposals are not accepted",
        )),
    }
}

/// The GroupInfo a commit carries must be the new epoch's: the same group
/// context and confirmation tag as the state after the commit, signed by
/// the committer, who is its signer.
fn check_group_info(
    crypto: &RustCrypto,
    group: &PublicGroup,
    committer: LeafNodeIndex,
    bytes: &[u8],
) -> Result<(), WireError> {
    let mismatch = |why: &str| refuse(ErrorCode::GroupInfoMismatch, why.to_owned());
    let vgi = group_info_of(bytes, ErrorCode::GroupInfoMismatch)?;
    let context = group
        .group_context()
        .tls_serialize_detached()
        .map_err(internal)?;
    if vgi
        .group_context()
        .tls_serialize_detached()
        .map_err(internal)?
        != context
    {
        return Err(mismatch(
            "the GroupInfo's group context is not the new epoch's",
        ));
    }
    // The confirmation tag and signer index have no public accessor on a
    // GroupInfo: read them from its encoding, which is (RFC 9420 §12.4.3)
    // MLSMessage header (version, wire format: 4 bytes), group_context,
    // extensions<V>, confirmation_tag<V>, signer (u32), signature<V>.
    let tag = group
        .confirmation_tag()
        .tls_serialize_detached()
        .map_err(internal)?;
    let mut rest = bytes
        .get(4 + context.len()..)
        .ok_or_else(|| mismatch("the GroupInfo is truncated"))?;
    openmls::prelude::tls_codec::VLBytes::tls_deserialize(&mut rest)
        .map_err(|_| mismatch("the GroupInfo's extensions do not parse"))?;
    if !rest.starts_with(&tag) {
        return Err(mismatch(
            "the GroupInfo's confirmation tag is not the commit's",
        ));
    }
    let signer = rest
        .get(tag.len()..tag.len() + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| mismatch("the GroupInfo is truncated"))?;
    if signer != committer.u32() {
        return Err(mismatch("the GroupInfo is not signed by the committer"));
    }
    let leaf = group
        .leaf(committer)
        .ok_or_else(|| mismatch("the committer has no leaf after the commit"))?;
    let scheme = SignatureScheme::from(group.ciphersuite());
    let key = OpenMlsSignaturePublicKey::new(leaf.signature_key().as_slice().into(), scheme)
        .map_err(|e| mismatch(&format!("the committer's key: {e:?}")))?;
    let gi = vgi
        .verify(crypto, &key)
        .map_err(|_| mismatch("the GroupInfo's signature does not verify"))?;
    if let Some(tree) = gi.extensions().ratchet_tree() {
        let theirs = tree
            .ratchet_tree()
            .tls_serialize_detached()
            .map_err(internal)?;
        let ours = group
            .export_ratchet_tree()
            .tls_serialize_detached()
            .map_err(internal)?;
        if theirs != ours {
            return Err(mismatch(
                "the GroupInfo's ratchet tree is not the new epoch's",
            ));
        }
    }
    Ok(())
}
