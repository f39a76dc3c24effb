//! Attachment storage (issue 18): the [`BlobStore`] trait, beside
//! [`Store`](crate::store::Store),
//! and the rules every backend keeps.
//!
//! A blob is an encrypted file (see `quicproquo_protocol::blob`): the server
//! holds ciphertext it cannot read, under a random [`BlobId`] the uploader
//! chose, with its owner, the group it was uploaded to (reads are authorized
//! like mail: only a member of that group may fetch it) and its declared
//! ciphertext size.
//!
//! Why a trait of its own rather than more `Store` methods: the bytes are
//! bulk data with other durability and placement needs than the small rows
//! of `Store` (SQLite deployments keep them as files, outside the database
//! and its group-commit writer), and a deployment's two stores stay easy to
//! reason about one at a time. The backends:
//! - [`FileBlobStore`](crate::store::file_blobs::FileBlobStore): files in the
//!   data directory, for SQLite deployments (one node);
//! - [`PgBlobStore`](crate::store::postgres::PgBlobStore): chunks as `bytea`
//!   rows in the shared PostgreSQL database, so every node sees every blob
//!   (see that module for why not a shared directory).
//!
//! # Lifecycle
//!
//! `create` reserves the declared size against the operator's limit and the
//! owner's quota; `append` adds ciphertext at the resume point (the same
//! offset again is accepted and changes nothing, so a retry after a lost
//! answer is harmless; a gap is refused); `info` tells the resume point;
//! `finish` seals it once every declared byte is stored; only then may
//! members `read` it. A resume point never points past what survives a
//! crash: after a restart `info` tells a point whose bytes are durable. It
//! may be *behind* what appends answered before the crash (a store may make
//! appends durable in batches, as [`FileBlobStore`] does every
//! [`SYNC_EVERY`] bytes), so a client resumes from what `info` (the wire's
//! `blobCreate`/`blobStatus`) tells, never from its own count. `finish`
//! answers `Ok` only once every byte is durable.
//!
//! [`FileBlobStore`]: crate::store::file_blobs::FileBlobStore
//! [`SYNC_EVERY`]: crate::store::file_blobs::SYNC_EVERY
//!
//! # Expiry
//!
//! An upload not finished within [`UPLOAD_TTL`] of its creation is deleted
//! (with what it stored); a finished blob is deleted once the mail TTL has
//! passed since it was finished — by then the message that names it has
//! expired from every mailbox that did not fetch it, and members that
//! fetched the message had as long to fetch the file. Both free the owner's
//! quota.

pub mod arrivals;
mod backend;
pub mod rules;

use std::future::Future;
use std::time::Duration;

pub use self::backend::AnyBlobStore;
pub use quicproquo_protocol::types::BlobId;
use quicproquo_protocol::types::IdentityKey;

/// How long an unfinished upload is kept after its creation.
pub const UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// The largest file an operator allows by default (plaintext bytes; the
/// blob is its ciphertext, a little larger).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// What one user may store by default, all their blobs together.
pub const DEFAULT_BLOB_QUOTA_BYTES: u64 = 1024 * 1024 * 1024;
/// The most bytes one append or read moves: bounds a request and the memory
/// it takes (the wire's limit).
pub use quicproquo_protocol::limits::MAX_BLOB_CHUNK_BYTES;

/// The operator's bounds a `create` is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLimits {
    /// Largest declared size of one blob.
    pub max_blob_bytes: u64,
    /// Declared sizes of all of an owner's blobs together, unfinished ones
    /// included (their space is reserved at creation).
    pub quota_bytes: u64,
}

impl BlobLimits {
    /// Limits that take any file of up to `max_file_bytes`, sealed with any
    /// chunk size a receiver accepts (the smallest has the most tags).
    pub fn for_files(max_file_bytes: u64, quota_bytes: u64) -> Self {
        let max_blob_bytes = quicproquo_protocol::blob::ciphertext_len(
            max_file_bytes,
            quicproquo_protocol::blob::MIN_CHUNK_SIZE,
        )
        .unwrap_or(u64::MAX);
        BlobLimits {
            max_blob_bytes,
            quota_bytes,
        }
    }
}

impl Default for BlobLimits {
    fn default() -> Self {
        BlobLimits::for_files(DEFAULT_MAX_FILE_BYTES, DEFAULT_BLOB_QUOTA_BYTES)
    }
}

/// A blob to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlob {
    pub id: BlobId,
    pub owner: IdentityKey,
    pub group_id: Vec<u8>,
    /// Ciphertext bytes the upload will hold.
    pub size: u64,
    pub now_ms: u64,
    pub limits: BlobLimits,
}

/// A stored blob as the store describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: BlobId,
    pub owner: IdentityKey,
    pub group_id: Vec<u8>,
    pub size: u64,
    /// Bytes stored so far: the resume point of an upload.
    pub stored: u64,
    pub created_at_ms: u64,
    /// Set once finished; then `stored == size` and the blob is readable.
    pub finished_at_ms: Option<u64>,
}

/// One owner's storage (`usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlobUsage {
    pub blobs: u64,
    /// Declared sizes, unfinished uploads included.
    pub bytes: u64,
}

/// The cut-offs of one expiry sweep (see the module doc for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobExpiry {
    /// Unfinished uploads created before this go.
    pub unfinished_before_ms: u64,
    /// Finished blobs finished before this go.
    pub finished_before_ms: u64,
}

impl BlobExpiry {
    /// The rule at `now_ms` with the operator's mail TTL.
    pub fn at(now_ms: u64, mail_ttl: Duration) -> Self {
        BlobExpiry {
            unfinished_before_ms: now_ms.saturating_sub(UPLOAD_TTL.as_millis() as u64),
            finished_before_ms: now_ms.saturating_sub(mail_ttl.as_millis() as u64),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobStoreError {
    #[error("the file is {size} bytes encrypted (padded, with a tag per chunk); this server takes up to {max} bytes encrypted")]
    TooLarge { size: u64, max: u64 },
    #[error("storage quota exceeded: {used} of {quota} bytes used, the file needs {size}")]
    QuotaExceeded { used: u64, quota: u64, size: u64 },
    /// The id is taken by a blob of another owner, group or size.
    #[error("a different blob with this id exists")]
    Exists,
    /// No such blob, or (for an owner's operation) not this owner's: the
    /// same answer, so ids of other people's blobs are not confirmed.
    #[error("no such blob")]
    NotFound,
    #[error("the upload is at byte {stored}; an append at {offset} would leave a gap")]
    Gap { offset: u64, stored: u64 },
    #[error("the data goes past the blob's declared size of {size} bytes")]
    PastEnd { size: u64 },
    #[error("the upload holds {stored} of its {size} bytes: it is not complete")]
    Incomplete { stored: u64, size: u64 },
    #[error("the blob is already finished")]
    Finished,
    #[error("the blob is still being uploaded")]
    NotFinished,
    /// The backend failed; the message is for logs, never for clients.
    #[error("blob storage backend: {0}")]
    Backend(String),
}

/// Stores blobs; every method is safe to call concurrently (also from
/// several nodes, for a shared backend).
pub trait BlobStore: Send + Sync + 'static {
    /// Creates an empty upload, or returns the existing one when `id` names
    /// a blob of the same owner, group and size (a retried create). Fails
    /// with `TooLarge`, `QuotaExceeded` (counting the owner's existing
    /// blobs, atomically with concurrent creates) or `Exists`.
    fn create(&self, new: NewBlob)
        -> impl Future<Output = Result<BlobInfo, BlobStoreError>> + Send;

    /// Adds `data` at `offset` to an unfinished upload of `owner`; returns
    /// the new resume point. Bytes before the resume point are taken as a
    /// retry and not written again; `offset` past it is a `Gap`.
    fn append(
        &self,
        id: BlobId,
        owner: IdentityKey,
        offset: u64,
        data: Vec<u8>,
    ) -> impl Future<Output = Result<u64, BlobStoreError>> + Send;

    fn info(
        &self,
        id: BlobId,
    ) -> impl Future<Output = Result<Option<BlobInfo>, BlobStoreError>> + Send;

    /// Seals `owner`'s upload once `stored == size` (`Incomplete`
    /// otherwise). Finishing a finished blob again returns it unchanged.
    fn finish(
        &self,
        id: BlobId,
        owner: IdentityKey,
        now_ms: u64,
    ) -> impl Future<Output = Result<BlobInfo, BlobStoreError>> + Send;

    /// Up to `len` bytes (at most [`MAX_BLOB_CHUNK_BYTES`]) of a finished
    /// blob from `offset`; fewer at its end, none past it.
    fn read(
        &self,
        id: BlobId,
        offset: u64,
        len: u32,
    ) -> impl Future<Output = Result<Vec<u8>, BlobStoreError>> + Send;

    /// Deletes a blob and its bytes; `false` if there was none.
    fn delete(&self, id: BlobId) -> impl Future<Output = Result<bool, BlobStoreError>> + Send;

    /// Deletes what [`BlobExpiry`] names; returns how many blobs went.
    fn expire(
        &self,
        expiry: BlobExpiry,
    ) -> impl Future<Output = Result<u64, BlobStoreError>> + Send;

    fn usage(
        &self,
        owner: IdentityKey,
    ) -> impl Future<Output = Result<BlobUsage, BlobStoreError>> + Send;

    /// Deletes every blob of `owner` (a deleted account); returns how many.
    fn delete_owned(
        &self,
        owner: IdentityKey,
    ) -> impl Future<Output = Result<u64, BlobStoreError>> + Send;
}

/// The checks of `create` every backend makes the same way, given the
/// owner's current usage.
pub(crate) fn check_create(new: &NewBlob, used: u64) -> Result<(), BlobStoreError> {
    if new.size > new.limits.max_blob_bytes {
        return Err(BlobStoreError::TooLarge {
            size: new.size,
            max: new.limits.max_blob_bytes,
        });
    }
    if used.saturating_add(new.size) > new.limits.quota_bytes {
        return Err(BlobStoreError::QuotaExceeded {
            used,
            quota: new.limits.quota_bytes,
            size: new.size,
        });
    }
    Ok(())
}

impl NewBlob {
    /// What `create` answers when `existing` has this id: the blob itself
    /// for a retried create (same owner, group and size), `Exists` otherwise.
    pub(crate) fn retry_of(&self, existing: BlobInfo) -> Result<BlobInfo, BlobStoreError> {
        if existing.owner == self.owner
            && existing.group_id == self.group_id
            && existing.size == self.size
        {
            Ok(existing)
        } else {
            Err(BlobStoreError::Exists)
        }
    }

    /// The blob as `create` stored it.
    pub(crate) fn into_info(self) -> BlobInfo {
        BlobInfo {
            id: self.id,
            owner: self.owner,
            group_id: self.group_id,
            size: self.size,
            stored: 0,
            created_at_ms: self.now_ms,
            finished_at_ms: None,
        }
    }
}

/// The blob if it is `owner`'s: another owner's is "not found", so an
/// owner's operation does not confirm other people's ids.
pub(crate) fn owned_by(
    info: Option<BlobInfo>,
    owner: &IdentityKey,
) -> Result<BlobInfo, BlobStoreError> {
    match info {
        Some(i) if i.owner == *owner => Ok(i),
        _ => Err(BlobStoreError::NotFound),
    }
}

/// Whether `finish` has work to do: `false` for a finished blob (finishing
/// again changes nothing), `Incomplete` while bytes are missing.
pub(crate) fn plan_finish(info: &BlobInfo) -> Result<bool, BlobStoreError> {
    if info.finished_at_ms.is_some() {
        return Ok(false);
    }
    if info.stored != info.size {
        return Err(BlobStoreError::Incomplete {
            stored: info.stored,
            size: info.size,
        });
    }
    Ok(true)
}

/// What an append at `offset` of `len` bytes does to an upload at `stored`
/// of `size`: the part of the data to write (from `skip` bytes in), or an
/// error. One rule for every backend.
pub(crate) fn plan_append(
    info: &BlobInfo,
    offset: u64,
    len: usize,
) -> Result<Option<usize>, BlobStoreError> {
    if info.finished_at_ms.is_some() {
        return Err(BlobStoreError::Finished);
    }
    let end = offset.saturating_add(len as u64);
    if end > info.size {
        return Err(BlobStoreError::PastEnd { size: info.size });
    }
    if offset > info.stored {
        return Err(BlobStoreError::Gap {
            offset,
            stored: info.stored,
        });
    }
    if end <= info.stored {
        // All of it is stored already: a retry.
        return Ok(None);
    }
    Ok(Some((info.stored - offset) as usize))
}

/// The range of a read, clamped to the blob: `(offset, len)`.
pub(crate) fn plan_read(
    info: &BlobInfo,
    offset: u64,
    len: u32,
) -> Result<(u64, usize), BlobStoreError> {
    if info.finished_at_ms.is_none() {
        return Err(BlobStoreError::NotFinished);
    }
    let len = (len as usize).min(MAX_BLOB_CHUNK_BYTES) as u64;
    let start = offset.min(info.size);
    let end = offset.saturating_add(len).min(info.size);
    Ok((start, (end - start) as usize))
}
