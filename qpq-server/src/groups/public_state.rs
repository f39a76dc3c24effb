//! One group's public MLS state as a blob: an openmls
//! [`PublicStorageProvider`] that holds exactly one group in memory and
//! serializes to one value, which the store keeps per group.
//!
//! openmls' `PublicGroup` reads and writes its parts (tree, context, interim
//! transcript hash, confirmation tag, queued proposals) through this trait;
//! keeping them in one value lets the store swap a group's state with one
//! compare-and-swap. Each part is postcard of openmls' type (openmls gives a
//! provider only serde values); the blob frames them with lengths. The group id argument is ignored: a `PublicState` only
//! ever holds the group it was made for.

use std::sync::Mutex;

use openmls_traits::public_storage::PublicStorageProvider;
use openmls_traits::storage::{traits, Entity, CURRENT_VERSION};
use serde::Serialize;

/// The serialized parts, each postcard of openmls' own type.
#[derive(Debug, Default, Clone)]
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
    postcard::to_stdvec(value).map_err(|e| StateError(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    postcard::from_bytes(bytes).map_err(|e| StateError(e.to_string()))
}

/// The blob's layout: each part as a u32 length (big-endian, `u32::MAX`
/// for an absent one) and its bytes, in the order of [`Parts`]'s fields,
/// then the proposals as a u32 count and (ref, proposal) pairs.
const ABSENT: u32 = u32::MAX;

fn put_part(out: &mut Vec<u8>, part: Option<&[u8]>) -> Result<(), StateError> {
    match part {
        Some(bytes) => {
            let len = u32::try_from(bytes.len())
                .ok()
                .filter(|&n| n != ABSENT)
                .ok_or_else(|| StateError("a group state part over 4 GiB".into()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(&ABSENT.to_be_bytes()),
    }
    Ok(())
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, StateError> {
    let (head, tail) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| StateError("a truncated group state".into()))?;
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_part(rest: &mut &[u8]) -> Result<Option<Vec<u8>>, StateError> {
    let len = take_u32(rest)?;
    if len == ABSENT {
        return Ok(None);
    }
    let len = len as usize;
    if rest.len() < len {
        return Err(StateError("a truncated group state".into()));
    }
    let (part, tail) = rest.split_at(len);
    *rest = tail;
    Ok(Some(part.to_vec()))
}

impl PublicState {
    /// The state as one value for the store.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        let p = self.lock();
        let mut out = Vec::new();
        for part in [
            &p.tree,
            &p.context,
            &p.interim_transcript_hash,
            &p.confirmation_tag,
        ] {
            put_part(&mut out, part.as_deref())?;
        }
        let n = u32::try_from(p.proposals.len())
            .map_err(|_| StateError("too many queued proposals".into()))?;
        out.extend_from_slice(&n.to_be_bytes());
        for (r, q) in &p.proposals {
            put_part(&mut out, Some(r))?;
            put_part(&mut out, Some(q))?;
        }
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let mut rest = bytes;
        let tree = take_part(&mut rest)?;
        let context = take_part(&mut rest)?;
        let interim_transcript_hash = take_part(&mut rest)?;
        let confirmation_tag = take_part(&mut rest)?;
        let n = take_u32(&mut rest)?;
        let mut proposals = Vec::new();
        for _ in 0..n {
            let r = take_part(&mut rest)?
                .ok_or_else(|| StateError("a proposal without its ref".into()))?;
            let q = take_part(&mut rest)?
                .ok_or_else(|| StateError("a ref without its proposal".into()))?;
            proposals.push((r, q));
        }
        if !rest.is_empty() {
            return Err(StateError("trailing bytes after a group state".into()));
        }
        Ok(Self {
            parts: Mutex::new(Parts {
                tree,
                context,
                interim_transcript_hash,
                confirmation_tag,
                proposals,
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_bad_blobs_are_errors() {
        let state = PublicState::default();
        {
            let mut p = state.lock();
            p.tree = Some(vec![1, 2, 3]);
            p.confirmation_tag = Some(vec![]);
            p.proposals = vec![(vec![9], vec![8, 7])];
        }
        let bytes = state.to_bytes().unwrap();
        let again = PublicState::from_bytes(&bytes).unwrap();
        assert_eq!(again.to_bytes().unwrap(), bytes);
        assert_eq!(again.lock().context, None);
        assert_eq!(again.lock().confirmation_tag, Some(vec![]));
        for cut in 0..bytes.len() {
            assert!(
                PublicState::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(PublicState::from_bytes(&longer).is_err());
    }
}
