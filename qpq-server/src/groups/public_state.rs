//! One group's public MLS state as a blob: an openmls
//! [`PublicStorageProvider`] that holds exactly one group in memory and
//! serializes to one CBOR value, which the store keeps per group.
//!
//! openmls' `PublicGroup` reads and writes its parts (tree, context, interim
//! transcript hash, confirmation tag, queued proposals) through this trait;
//! keeping them in one value lets the store swap a group's state with one
//! compare-and-swap. The group id argument is ignored: a `PublicState` only
//! ever holds the group it was made for.

use std::sync::Mutex;

use openmls_traits::public_storage::PublicStorageProvider;
use openmls_traits::storage::{traits, Entity, CURRENT_VERSION};
use serde::{Deserialize, Serialize};

/// The serialized parts, each CBOR of openmls' own type.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Parts {
    tree: Option<Vec<u8>>,
    context: Option<Vec<u8>>,
    interim_transcript_hash: Option<Vec<u8>>,
    confirmation_tag: Option<Vec<u8>>,
    /// (proposal ref, queued proposal), in arrival order.
    proposals: Vec<(Vec<u8>, Vec<u8>)>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct PublicState {
    parts: Mutex<Parts>,
}

#[derive(Debug, thiserror::Error)]
#[error("group state encoding: {0}")]
pub struct StateError(String);

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| StateError(e.to_string()))?;
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    ciborium::from_reader(bytes).map_err(|e| StateError(e.to_string()))
}

impl PublicState {
    /// The state as one value for the store.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        encode(&*self.lock())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        Ok(Self {
            parts: Mutex::new(decode(bytes)?),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Parts> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put<T: Entity<CURRENT_VERSION>>(
        &self,
        value: &T,
        slot: impl FnOnce(&mut Parts) -> &mut Option<Vec<u8>>,
    ) -> Result<(), StateError> {
        let bytes = encode(value)?;
        *slot(&mut self.lock()) = Some(bytes);
        Ok(())
    }

    fn get<T: Entity<CURRENT_VERSION>>(
        &self,
        slot: impl FnOnce(&Parts) -> &Option<Vec<u8>>,
    ) -> Result<Option<T>, StateError> {
        slot(&self.lock()).as_deref().map(decode).transpose()
    }

    fn clear(&self, slot: impl FnOnce(&mut Parts) -> &mut Option<Vec<u8>>) {
        *slot(&mut self.lock()) = None;
    }
}

impl PublicStorageProvider<CURRENT_VERSION> for PublicState {
    type PublicError = StateError;

    fn write_tree<G: traits::GroupId<CURRENT_VERSION>, T: traits::TreeSync<CURRENT_VERSION>>(
        &self,
        _group_id: &G,
        tree: &T,
    ) -> Result<(), StateError> {
        self.put(tree, |p| &mut p.tree)
    }

    fn write_interim_transcript_hash<
        G: traits::GroupId<CURRENT_VERSION>,
        H: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
        hash: &H,
    ) -> Result<(), StateError> {
        self.put(hash, |p| &mut p.interim_transcript_hash)
    }

    fn write_context<
        G: traits::GroupId<CURRENT_VERSION>,
        C: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
        context: &C,
    ) -> Result<(), StateError> {
        self.put(context, |p| &mut p.context)
    }

    fn write_confirmation_tag<
        G: traits::GroupId<CURRENT_VERSION>,
        T: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
        tag: &T,
    ) -> Result<(), StateError> {
        self.put(tag, |p| &mut p.confirmation_tag)
    }

    fn queue_proposal<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
        P: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
        proposal_ref: &R,
        proposal: &P,
    ) -> Result<(), StateError> {
        let entry = (encode(proposal_ref)?, encode(proposal)?);
        self.lock().proposals.push(entry);
        Ok(())
    }

    fn queued_proposals<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
        P: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
    ) -> Result<Vec<(R, P)>, StateError> {
        self.lock()
            .proposals
            .iter()
            .map(|(r, p)| Ok((decode(r)?, decode(p)?)))
            .collect()
    }

    fn tree<G: traits::GroupId<CURRENT_VERSION>, T: traits::TreeSync<CURRENT_VERSION>>(
        &self,
        _group_id: &G,
    ) -> Result<Option<T>, StateError> {
        self.get(|p| &p.tree)
    }

    fn group_context<
        G: traits::GroupId<CURRENT_VERSION>,
        C: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
    ) -> Result<Option<C>, StateError> {
        self.get(|p| &p.context)
    }

    fn interim_transcript_hash<
        G: traits::GroupId<CURRENT_VERSION>,
        H: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
    ) -> Result<Option<H>, StateError> {
        self.get(|p| &p.interim_transcript_hash)
    }

    fn confirmation_tag<
        G: traits::GroupId<CURRENT_VERSION>,
        T: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
    ) -> Result<Option<T>, StateError> {
        self.get(|p| &p.confirmation_tag)
    }

    fn delete_tree<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &G,
    ) -> Result<(), StateError> {
        self.clear(|p| &mut p.tree);
        Ok(())
    }

    fn delete_confirmation_tag<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &G,
    ) -> Result<(), StateError> {
        self.clear(|p| &mut p.confirmation_tag);
        Ok(())
    }

    fn delete_context<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &G,
    ) -> Result<(), StateError> {
        self.clear(|p| &mut p.context);
        Ok(())
    }

    fn delete_interim_transcript_hash<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &G,
    ) -> Result<(), StateError> {
        self.clear(|p| &mut p.interim_transcript_hash);
        Ok(())
    }

    fn remove_proposal<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
        proposal_ref: &R,
    ) -> Result<(), StateError> {
        let key = encode(proposal_ref)?;
        self.lock().proposals.retain(|(r, _)| *r != key);
        Ok(())
    }

    fn clear_proposal_queue<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &G,
    ) -> Result<(), StateError> {
        self.lock().proposals.clear();
        Ok(())
    }
}
