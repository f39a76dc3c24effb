//! The MLS engine: groups, key packages and messages on openmls, for the
//! daemon to drive.
//!
//! Synchronous and free of I/O except its SQLite storage: bytes in, bytes and
//! typed outcomes out. The daemon owns the network, ordering and retries; this
//! module owns the MLS decisions. One [`MlsEngine`] per account, owned by one
//! task (it is `Send`, not `Sync`).
//!
//! Rules the caller must follow (the server orders handshake messages and
//! accepts at most one commit per epoch):
//! - Every commit-producing call (`add_members`, `remove_members`,
//!   `self_update`, `commit_pending_proposals`) leaves a *pending* commit.
//!   Send [`Staged::commit`]; when the server accepts it call
//!   [`MlsEngine::merge_pending`] and only then deliver [`Staged::welcome`];
//!   when it refuses it (stale epoch) call [`MlsEngine::clear_pending`],
//!   process the group's new messages, and build the commit again.
//!   Never merge before acceptance: that forks the group.
//! - Process a group's messages in server order. Commits and proposals are only
//!   valid in their own epoch; application messages stay readable for
//!   [`MAX_PAST_EPOCHS`] epochs after it.
//! - After [`MlsEngine::join`], call [`MlsEngine::self_update`] soon: a
//!   joiner's leaf keys come from its (possibly long-published) key package.
//! - Incoming proposals are queued; while any is queued openmls refuses to
//!   encrypt ([`MlsError::PendingProposals`]): commit them first.
//!
//! Every operation runs in one SQLite savepoint, so a failure (or a crash)
//! leaves the state as it was before the call. Groups stay in memory between
//! calls, but a kept copy is used only while SQLite still holds the same
//! state (cache.rs), so a daemon transaction around a call that it rolls back
//! cannot leave the engine out of step with the database.

mod cache;
mod commit;
mod errors;
mod group;
mod history;
mod identity;
mod key_packages;
mod message;
mod provider;
mod suite;
#[cfg(test)]
mod tests;

use openmls::prelude::{MlsGroup, MlsGroupJoinConfig, PURE_PLAINTEXT_WIRE_FORMAT_POLICY};
use quicproquo_protocol::types::{IdentityKey, Username};
use rusqlite::Connection;

pub use commit::{CommitSummary, Staged};
pub use errors::MlsError;
pub use group::{GroupId, Joined, Who, SERVER_SENDER_NAME};
pub use identity::{Identity, Member};
pub use message::{classify, Incoming, Membership, Processed, ProposalKind};
pub use provider::CborCodec;
pub use quicproquo_protocol::mls_framing::ContentType;
pub use quicproquo_protocol::types::Epoch;
pub use suite::{Suite, SuiteExt};

use cache::GroupCache;
use provider::{MlsStore, Provider};

/// How many past epochs' application keys a member keeps (openmls' default
/// is 0: any message that crosses a commit in flight would be unreadable).
pub const MAX_PAST_EPOCHS: usize = 5;

/// The MLS state of one account.
pub struct MlsEngine {
    store: MlsStore,
    identity: Identity,
    cache: GroupCache,
}

impl MlsEngine {
    /// Takes an open connection (the daemon opens it, possibly encrypted),
    /// runs the storage migrations and creates the engine's tables.
    pub fn new(conn: Connection, identity: Identity) -> Result<Self, MlsError> {
        Ok(Self {
            store: MlsStore::open(conn)?,
            identity,
            cache: GroupCache::default(),
        })
    }

    pub fn username(&self) -> &Username {
        self.identity.username()
    }

    pub fn identity_key(&self) -> IdentityKey {
        self.identity.identity_key()
    }

    /// The connection the state lives in, for a daemon that wants one
    /// transaction around an engine call and its own writes (every engine call
    /// is a savepoint, which nests). Do not touch the `qpq_mls_*` or openmls
    /// tables.
    pub fn connection(&self) -> &Connection {
        self.store.connection()
    }

    /// Gives the connection back (e.g. to close it explicitly).
    pub fn into_connection(self) -> Connection {
        self.store.into_connection()
    }
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .max_past_epochs(MAX_PAST_EPOCHS)
        .use_ratchet_tree_extension(true)
        // Commits and proposals in the clear (still signed), so that the
        // server can validate them; application messages stay encrypted
        // whatever the policy.
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

impl MlsEngine {
    /// Runs `f` on the group inside one savepoint. The group's state comes
    /// from the cache when it is current; it goes back there only if `f` and
    /// the savepoint succeed (see cache.rs).
    fn with_group<T>(
        &mut self,
        group: GroupId,
        f: impl FnOnce(&mut MlsGroup, &Provider<'_>, &Identity) -> Result<T, MlsError>,
    ) -> Result<T, MlsError> {
        let Self {
            store,
            identity,
            cache,
        } = self;
        let kept = cache.take(group);
        let (out, g, version) = store.atomic(|p| {
            let mut g = cache::current(p, group, kept)?;
            let out = f(&mut g, p, identity)?;
            let version = cache::stamp(p, group)?;
            Ok((out, g, version))
        })?;
        cache.insert(group, version, g);
        Ok(out)
    }

    /// Reads the group without changing it.
    fn read_group<T>(
        &self,
        group: GroupId,
        f: impl FnOnce(&MlsGroup) -> Result<T, MlsError>,
    ) -> Result<T, MlsError> {
        let p = self.store.provider();
        let version = cache::version(&p, group)?;
        match self.cache.get(group, version) {
            Some(g) => f(g),
            None => f(&cache::current(&p, group, None)?),
        }
    }
}
