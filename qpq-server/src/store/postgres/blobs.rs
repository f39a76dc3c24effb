//! [`PgBlobStore`]: the [`BlobStore`] of PostgreSQL deployments — each
//! append one `bytea` row of `blob_chunks`, in the database every node
//! shares (on the [`PgStore`]'s connection pool).
//!
//! Why in the database and not a shared directory: the nodes already share
//! the database and nothing else; a shared file system (NFS and the like)
//! would be one more thing to deploy, secure and back up, with weaker and
//! less portable fsync and rename guarantees, while a row insert gives the
//! append, the resume point and the quota check one transaction. The cost
//! is measured in BENCHMARKS.md (ciphertext does not compress, so the
//! column's storage is `EXTERNAL`: TOAST skips the compression attempt).
//!
//! Concurrency: appends to one blob lock its `blobs` row (`FOR UPDATE`), so
//! they apply one at a time in every node; creates of one owner take a
//! transaction advisory lock on the owner, so concurrent creates cannot
//! both fit in the last of a quota.

use deadpool_postgres::{GenericClient, Pool};
use quicproquo_protocol::types::IdentityKey;
use tokio_postgres::Row;

use super::{describe, PgStore};
use crate::blobs::{
    check_create, owned_by, plan_append, plan_finish, plan_read, BlobExpiry, BlobId, BlobInfo,
    BlobStore, BlobStoreError, BlobUsage, NewBlob,
};

/// The blob tables (migration step 3).
pub(super) const SCHEMA: &str = "
CREATE TABLE blobs (
    id             bytea PRIMARY KEY CHECK (length(id) = 16),
    owner          bytea NOT NULL CHECK (length(owner) = 32),
    group_id       bytea NOT NULL,
    size           bigint NOT NULL,
    stored         bigint NOT NULL DEFAULT 0,
    created_at_ms  bigint NOT NULL,
    finished_at_ms bigint
);
CREATE INDEX blobs_by_owner ON blobs (owner);

-- One row per append, keyed by its offset in the blob.
CREATE TABLE blob_chunks (
    blob_id bytea NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
    offset_ bigint NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (blob_id, offset_)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
";

/// Advisory-lock namespace of quota checks (any constant other locks do not use).
const QUOTA_LOCK: i32 = 0x7170_6200; // "qpb\0"

/// The PostgreSQL [`BlobStore`]. Cheap to clone.
#[derive(Clone)]
pub struct PgBlobStore {
    pool: Pool,
}

impl std::fmt::Debug for PgBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBlobStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// The blob store on this store's database and connection pool.
    pub fn blob_store(&self) -> PgBlobStore {
        PgBlobStore {
            pool: self.pool.clone(),
        }
    }
}

fn db(e: tokio_postgres::Error) -> BlobStoreError {
    BlobStoreError::Backend(describe(&e))
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

const SELECT: &str =
    "SELECT id, owner, group_id, size, stored, created_at_ms, finished_at_ms FROM blobs";

fn info_row(r: &Row) -> Result<BlobInfo, BlobStoreError> {
    let bad = |what: &str| BlobStoreError::Backend(format!("stored {what} has the wrong length"));
    Ok(BlobInfo {
        id: BlobId::from_slice(r.get(0)).map_err(|_| bad("blob id"))?,
        owner: IdentityKey::from_slice(r.get(1)).map_err(|_| bad("owner"))?,
        group_id: r.get(2),
        size: uint(r.get(3)),
        stored: uint(r.get(4)),
        created_at_ms: uint(r.get(5)),
        finished_at_ms: r.get::<_, Option<i64>>(6).map(uint),
    })
}

async fn info(
    c: &impl GenericClient,
    id: &BlobId,
    lock: bool,
) -> Result<Option<BlobInfo>, BlobStoreError> {
    let sql = if lock {
        format!("{SELECT} WHERE id = $1 FOR UPDATE")
    } else {
        format!("{SELECT} WHERE id = $1")
    };
    c.query_opt(&sql, &[&&id.0[..]])
        .await
        .map_err(db)?
        .map(|r| info_row(&r))
        .transpose()
}

/// The blob, its row locked, if it is `owner`'s.
async fn owned(
    c: &impl GenericClient,
    id: &BlobId,
    owner: &IdentityKey,
) -> Result<BlobInfo, BlobStoreError> {
    owned_by(info(c, id, true).await?, owner)
}

impl PgBlobStore {
    async fn client(&self) -> Result<deadpool_postgres::Object, BlobStoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| BlobStoreError::Backend(format!("database connection pool: {e}")))
    }
}

impl BlobStore for PgBlobStore {
    async fn create(&self, new: NewBlob) -> Result<BlobInfo, BlobStoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let owner_lock = i32::from_be_bytes([
            new.owner.0[0],
            new.owner.0[1],
            new.owner.0[2],
            new.owner.0[3],
        ]);
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&QUOTA_LOCK, &owner_lock],
        )
        .await
        .map_err(db)?;
        if let Some(existing) = info(&tx, &new.id, false).await? {
            return new.retry_of(existing);
        }
        let used: i64 = tx
            .query_one(
                "SELECT coalesce(sum(size), 0)::bigint FROM blobs WHERE owner = $1",
                &[&&new.owner.0[..]],
            )
            .await
            .map_err(db)?
            .get(0);
        check_create(&new, uint(used))?;
        let inserted = tx
            .execute(
                "INSERT INTO blobs (id, owner, group_id, size, created_at_ms)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                &[
                    &&new.id.0[..],
                    &&new.owner.0[..],
                    &new.group_id,
                    &int(new.size),
                    &int(new.now_ms),
                ],
            )
            .await
            .map_err(db)?;
        if inserted == 0 {
            // Another owner's create of the same id won meanwhile.
            return Err(BlobStoreError::Exists);
        }
        tx.commit().await.map_err(db)?;
        Ok(new.into_info())
    }

    async fn append(
        &self,
        id: BlobId,
        owner: IdentityKey,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<u64, BlobStoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let before = owned(&tx, &id, &owner).await?;
        let Some(skip) = plan_append(&before, offset, data.len())? else {
            return Ok(before.stored);
        };
        let after = before.stored + (data.len() - skip) as u64;
        tx.execute(
            "INSERT INTO blob_chunks (blob_id, offset_, data) VALUES ($1, $2, $3)",
            &[&&id.0[..], &int(before.stored), &&data[skip..]],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "UPDATE blobs SET stored = $1 WHERE id = $2",
            &[&int(after), &&id.0[..]],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(after)
    }

    async fn info(&self, id: BlobId) -> Result<Option<BlobInfo>, BlobStoreError> {
        info(&self.client().await?, &id, false).await
    }

    async fn finish(
        &self,
        id: BlobId,
        owner: IdentityKey,
        now_ms: u64,
    ) -> Result<BlobInfo, BlobStoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let mut blob = owned(&tx, &id, &owner).await?;
        if !plan_finish(&blob)? {
            return Ok(blob);
        }
        tx.execute(
            "UPDATE blobs SET finished_at_ms = $1 WHERE id = $2",
            &[&int(now_ms), &&id.0[..]],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        blob.finished_at_ms = Some(now_ms);
        Ok(blob)
    }

    async fn read(&self, id: BlobId, offset: u64, len: u32) -> Result<Vec<u8>, BlobStoreError> {
        let client = self.client().await?;
        let blob = info(&client, &id, false)
            .await?
            .ok_or(BlobStoreError::NotFound)?;
        let (start, len) = plan_read(&blob, offset, len)?;
        let end = start + len as u64;
        let mut out = Vec::with_capacity(len);
        if len == 0 {
            return Ok(out);
        }
        // The chunks that overlap [start, end): from the last one starting
        // at or before `start`.
        let rows = client
            .query(
                "SELECT offset_, data FROM blob_chunks WHERE blob_id = $1 AND offset_ < $3
                   AND offset_ >= (SELECT max(offset_) FROM blob_chunks
                                    WHERE blob_id = $1 AND offset_ <= $2)
                 ORDER BY offset_",
                &[&&id.0[..], &int(start), &int(end)],
            )
            .await
            .map_err(db)?;
        for row in rows {
            let at = uint(row.get(0));
            let data: &[u8] = row.get(1);
            let from = start.max(at) - at;
            let to = (end - at).min(data.len() as u64);
            if from < to {
                out.extend_from_slice(&data[from as usize..to as usize]);
            }
        }
        if out.len() != len {
            return Err(BlobStoreError::Backend(format!(
                "blob {id}: {} of {len} bytes found at {start}",
                out.len()
            )));
        }
        Ok(out)
    }

    async fn delete(&self, id: BlobId) -> Result<bool, BlobStoreError> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM blobs WHERE id = $1", &[&&id.0[..]])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn expire(&self, expiry: BlobExpiry) -> Result<u64, BlobStoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM blobs WHERE (finished_at_ms IS NULL AND created_at_ms < $1)
                    OR finished_at_ms < $2",
                &[
                    &int(expiry.unfinished_before_ms),
                    &int(expiry.finished_before_ms),
                ],
            )
            .await
            .map_err(db)
    }

    async fn delete_owned(&self, owner: IdentityKey) -> Result<u64, BlobStoreError> {
        self.client()
            .await?
            .execute("DELETE FROM blobs WHERE owner = $1", &[&&owner.0[..]])
            .await
            .map_err(db)
    }

    async fn usage(&self, owner: IdentityKey) -> Result<BlobUsage, BlobStoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT count(*), coalesce(sum(size), 0)::bigint FROM blobs WHERE owner = $1",
                &[&&owner.0[..]],
            )
            .await
            .map_err(db)?;
        Ok(BlobUsage {
            blobs: uint(row.get(0)),
            bytes: uint(row.get(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use quicproquo_testkit::postgres;

    use crate::blobs::BlobStore;
    use crate::store::conformance::blobs;
    use crate::store::postgres::PgStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        let Some(pg) = postgres::for_test("postgres blob conformance") else {
            return;
        };
        blobs::run_all(|| {
            let url = pg.new_schema();
            async move {
                PgStore::open(&url.parse().expect("a valid URL"))
                    .await
                    .expect("the store opens")
                    .blob_store()
            }
        })
        .await;
    }

    /// The backend comparison of BENCHMARKS.md (100 MiB in 1 MiB appends,
    /// on a database with `synchronous_commit` on, as in production).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement"]
    async fn throughput() {
        let Some(pg) = postgres::for_test("postgres blob throughput") else {
            return;
        };
        let url = pg.url(&pg.new_database());
        let store = PgStore::open(&url.parse().expect("a valid URL"))
            .await
            .expect("the store opens")
            .blob_store();
        let total = 100 << 20;
        let times = blobs::time_upload_and_read(&store, total, 1 << 20).await;
        blobs::report("postgres (bytea rows)", total, times);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_uploaded_through_one_node_is_read_through_another() {
        let Some(pg) = postgres::for_test("postgres blobs across nodes") else {
            return;
        };
        let url = pg.url(&pg.new_database());
        let open = || async {
            PgStore::open(&url.parse().expect("a valid URL"))
                .await
                .expect("the store opens")
        };
        let (a, b) = (open().await, open().await);
        let id = blobs::upload(&a.blob_store(), 1, b"shared ciphertext").await;
        assert_eq!(
            b.blob_store().read(id, 7, 100).await.unwrap(),
            b"ciphertext"
        );
    }
}
