//! [`AnyBlobStore`]: the deployment's blob backend, chosen from its store.
//!
//! `BlobStore`'s methods are `async fn`s (not object-safe), and the service
//! is generic over its `Store` only, so the backend is an enum: a
//! PostgreSQL store shares its database (every node sees every blob); any
//! other store keeps blobs as files in the node's data directory.

use std::path::Path;

use quicproquo_protocol::types::IdentityKey;

use super::{BlobExpiry, BlobId, BlobInfo, BlobStore, BlobStoreError, BlobUsage, NewBlob};
use crate::store::file_blobs::{self, FileBlobStore};
use crate::store::postgres::{PgBlobStore, PgStore};
use crate::store::Store;

#[derive(Debug, Clone)]
pub enum AnyBlobStore {
    Files(FileBlobStore),
    Postgres(PgBlobStore),
}

impl AnyBlobStore {
    /// The backend for `store`: its database for PostgreSQL, else files in
    /// `data_dir/blobs`.
    pub fn for_store<S: Store>(store: &S, data_dir: &Path) -> Result<Self, BlobStoreError> {
        match (store as &dyn std::any::Any).downcast_ref::<PgStore>() {
            Some(pg) => Ok(AnyBlobStore::Postgres(pg.blob_store())),
            None => FileBlobStore::open(&file_blobs::dir_in(data_dir)).map(AnyBlobStore::Files),
        }
    }
}

/// Calls the same method on whichever backend this is.
macro_rules! each {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBlobStore::Files($b) => $call.await,
            AnyBlobStore::Postgres($b) => $call.await,
        }
    };
}

impl BlobStore for AnyBlobStore {
    async fn create(&self, new: NewBlob) -> Result<BlobInfo, BlobStoreError> {
        each!(self, b => b.create(new))
    }

    async fn append(
        &self,
        id: BlobId,
        owner: IdentityKey,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<u64, BlobStoreError> {
        each!(self, b => b.append(id, owner, offset, data))
    }

    async fn info(&self, id: BlobId) -> Result<Option<BlobInfo>, BlobStoreError> {
        each!(self, b => b.info(id))
    }

    async fn finish(
        &self,
        id: BlobId,
        owner: IdentityKey,
        now_ms: u64,
    ) -> Result<BlobInfo, BlobStoreError> {
        each!(self, b => b.finish(id, owner, now_ms))
    }

    async fn read(&self, id: BlobId, offset: u64, len: u32) -> Result<Vec<u8>, BlobStoreError> {
        each!(self, b => b.read(id, offset, len))
    }

    async fn delete(&self, id: BlobId) -> Result<bool, BlobStoreError> {
        each!(self, b => b.delete(id))
    }

    async fn expire(&self, expiry: BlobExpiry) -> Result<u64, BlobStoreError> {
        each!(self, b => b.expire(expiry))
    }

    async fn usage(&self, owner: IdentityKey) -> Result<BlobUsage, BlobStoreError> {
        each!(self, b => b.usage(owner))
    }

    async fn delete_owned(&self, owner: IdentityKey) -> Result<u64, BlobStoreError> {
        each!(self, b => b.delete_owned(owner))
    }
}
