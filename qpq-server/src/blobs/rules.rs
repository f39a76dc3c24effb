//! The blob requests' rules (issue 18): who may do what, and the errors a
//! client sees. Authorized like mail: creating a blob in a group, reading its
//! status and downloading it need membership of that group in the server's
//! validated state; uploading and finishing need to be its creator.

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::types::{BlobId, IdentityKey};
use quicproquo_protocol::wire::BlobState;

use super::arrivals::Arrivals;
use super::{BlobInfo, BlobLimits, BlobStore, BlobStoreError, NewBlob};
use crate::groups::Groups;
use crate::service::{internal, Now};
use crate::store::Store;

/// What a blob request needs from the service.
pub struct BlobContext<'a, S: Store, B: BlobStore> {
    pub store: &'a S,
    pub groups: &'a Groups,
    pub blobs: &'a B,
    pub arrivals: &'a Arrivals,
    pub limits: BlobLimits,
    /// The caller's identity key.
    pub me: IdentityKey,
    pub now: Now,
}

/// The catalogue error for a store's refusal (its message is for people).
pub fn wire_error(e: BlobStoreError) -> WireError {
    let code = match &e {
        BlobStoreError::TooLarge { .. } => ErrorCode::BlobTooLarge,
        BlobStoreError::QuotaExceeded { .. } => ErrorCode::BlobQuotaExceeded,
        BlobStoreError::NotFound => ErrorCode::BlobNotFound,
        BlobStoreError::Gap { .. } | BlobStoreError::PastEnd { .. } => ErrorCode::BlobGap,
        BlobStoreError::Incomplete { .. } | BlobStoreError::NotFinished => {
            ErrorCode::BlobIncomplete
        }
        BlobStoreError::Exists | BlobStoreError::Finished => ErrorCode::BlobConflict,
        BlobStoreError::Backend(_) => return internal(e),
    };
    WireError::new(code, e.to_string())
}

fn state(info: &BlobInfo) -> BlobState {
    BlobState {
        size: info.size,
        stored: info.stored,
        finished: info.finished_at_ms.is_some(),
    }
}

impl<S: Store, B: BlobStore> BlobContext<'_, S, B> {
    async fn require_member(&self, group: &[u8]) -> Result<(), WireError> {
        if self
            .groups
            .is_member(self.store, group, &self.me, self.now.mono)
            .await?
        {
            Ok(())
        } else {
            Err(WireError::new(
                ErrorCode::NotGroupMember,
                "only members of the conversation may store or fetch its files",
            ))
        }
    }

    async fn info(&self, blob: BlobId) -> Result<BlobInfo, WireError> {
        self.blobs
            .info(blob)
            .await
            .map_err(wire_error)?
            .ok_or_else(|| wire_error(BlobStoreError::NotFound))
    }

    pub async fn create(
        &self,
        blob: BlobId,
        group: Vec<u8>,
        size: u64,
    ) -> Result<BlobState, WireError> {
        self.require_member(&group).await?;
        let info = self
            .blobs
            .create(NewBlob {
                id: blob,
                owner: self.me,
                group_id: group,
                size,
                now_ms: self.now.unix_ms,
                limits: self.limits,
            })
            .await
            .map_err(wire_error)?;
        if info.finished_at_ms.is_none() {
            self.arrivals.set(blob, info.stored);
        }
        Ok(state(&info))
    }

    pub async fn upload(
        &self,
        blob: BlobId,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<BlobState, WireError> {
        self.arrivals.wait_turn(blob, offset).await;
        let stored = self
            .blobs
            .append(blob, self.me, offset, data)
            .await
            .map_err(wire_error)?;
        self.arrivals.set(blob, stored);
        let info = self.info(blob).await?;
        Ok(BlobState {
            stored,
            ..state(&info)
        })
    }

    /// For the creator (to resume) or a member of the blob's group.
    pub async fn status(&self, blob: BlobId) -> Result<BlobState, WireError> {
        let info = self.info(blob).await?;
        if info.owner != self.me {
            self.require_member(&info.group_id).await?;
        }
        Ok(state(&info))
    }

    pub async fn finish(&self, blob: BlobId) -> Result<BlobState, WireError> {
        let info = self
            .blobs
            .finish(blob, self.me, self.now.unix_ms)
            .await
            .map_err(wire_error)?;
        self.arrivals.forget(&blob);
        Ok(state(&info))
    }

    /// For a member of the blob's group (its creator too, while a member).
    pub async fn download(
        &self,
        blob: BlobId,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, WireError> {
        let info = self.info(blob).await?;
        self.require_member(&info.group_id).await?;
        self.blobs
            .read(blob, offset, length)
            .await
            .map_err(wire_error)
    }
}
