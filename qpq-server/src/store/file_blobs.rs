//! [`FileBlobStore`]: the [`BlobStore`] of SQLite deployments — each blob a
//! file in `<data dir>/blobs/`, their metadata in a small SQLite database
//! beside them (`blobs/blobs.sqlite3`, its own file so that bulk uploads
//! never queue behind the main store's group-commit writer).
//!
//! An upload is `<id>.part`. Appends write at the *written* point, kept in
//! memory; every [`SYNC_EVERY`] bytes (and at the last byte) the file is
//! `fsync`ed and only then does the metadata's *recorded* point move up to
//! it. So after a crash the recorded point is never past the bytes on disk
//! (bytes past it, from appends after the last `fsync`, are overwritten by
//! the resumed upload, which starts from the recorded point: the client
//! asks `blobCreate` where to go on, never trusts what an append answered).
//! An `fsync` per 1 MiB append cost 3.4–6 ms on our disk, more than the
//! append's transfer; one per 8 MiB keeps at most 8 MiB per upload to
//! re-send after a power loss. `finish` renames it to `<id>` and `fsync`s the
//! directory; a crash between the rename and the metadata is repaired by
//! the retried `finish`. Metadata and file operations of one call run on a
//! blocking thread; the metadata connection is held only for its queries,
//! never across a file write, so uploads to different blobs go on in
//! parallel.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use quicproquo_protocol::types::IdentityKey;
use rusqlite::{params, Connection, OptionalExtension};

use crate::blobs::{
    check_create, owned_by, plan_append, plan_finish, plan_read, BlobExpiry, BlobId, BlobInfo,
    BlobStore, BlobStoreError, BlobUsage, NewBlob,
};

/// The metadata database's file name in the blob directory.
pub const DB_FILE: &str = "blobs.sqlite3";

/// How far an upload's written point may run ahead of its recorded
/// (`fsync`ed) point.
pub const SYNC_EVERY: u64 = 8 << 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    id             BLOB PRIMARY KEY,
    owner          BLOB NOT NULL,
    group_id       BLOB NOT NULL,
    size           INTEGER NOT NULL,
    stored         INTEGER NOT NULL DEFAULT 0,
    created_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_owner ON blobs (owner);
";

/// The file-backed [`BlobStore`]. Cheap to clone.
#[derive(Clone)]
pub struct FileBlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db: Mutex<Connection>,
    /// Uploads under way: each one's written point when it is past the
    /// recorded one. Its own lock orders the appends to one blob; the map's
    /// lock is held only to find it.
    written: Mutex<HashMap<BlobId, Arc<Upload>>>,
}

/// An upload's appends in order, and how far they wrote.
#[derive(Default)]
struct Upload {
    order: Mutex<()>,
    /// Read without `order` (by `info`), so never ahead of the file.
    written: AtomicU64,
    /// A background `fsync` of this upload is running.
    syncing: AtomicBool,
}

impl std::fmt::Debug for FileBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBlobStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> BlobStoreError {
    BlobStoreError::Backend(e.to_string())
}

/// SQLite integers are signed; sizes and times are far below `i64::MAX`.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlobInfo> {
    let id: Vec<u8> = r.get(0)?;
    let owner: Vec<u8> = r.get(1)?;
    let bad = |i, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            format!("stored {what} has the wrong length").into(),
        )
    };
    Ok(BlobInfo {
        id: BlobId::from_slice(&id).map_err(|_| bad(0, "blob id"))?,
        owner: IdentityKey::from_slice(&owner).map_err(|_| bad(1, "owner"))?,
        group_id: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        stored: r.get::<_, i64>(4)? as u64,
        created_at_ms: r.get::<_, i64>(5)? as u64,
        finished_at_ms: r.get::<_, Option<i64>>(6)?.map(|t| t as u64),
    })
}

const SELECT: &str =
    "SELECT id, owner, group_id, size, stored, created_at_ms, finished_at_ms FROM blobs";

fn info(db: &Connection, id: &BlobId) -> Result<Option<BlobInfo>, BlobStoreError> {
    db.prepare_cached(&format!("{SELECT} WHERE id = ?1"))
        .and_then(|mut s| s.query_row([&id.0[..]], info_row).optional())
        .map_err(backend)
}

fn owned(db: &Connection, id: &BlobId, owner: &IdentityKey) -> Result<BlobInfo, BlobStoreError> {
    owned_by(info(db, id)?, owner)
}

fn remove_if_present(path: &Path) -> Result<(), BlobStoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(backend(e)),
        _ => Ok(()),
    }
}

impl Inner {
    fn part(&self, id: &BlobId) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn done(&self, id: &BlobId) -> PathBuf {
        finished_file(&self.dir, id)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done state behind
        // (every write is one statement or transaction): keep going.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self, new: NewBlob) -> Result<BlobInfo, BlobStoreError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(backend)?;
        if let Some(existing) = self.info(&tx, &new.id)? {
            return new.retry_of(existing);
        }
        let used: i64 = tx
            .query_row(
                "SELECT coalesce(sum(size), 0) FROM blobs WHERE owner = ?1",
                [&new.owner.0[..]],
                |r| r.get(0),
            )
            .map_err(backend)?;
        check_create(&new, used as u64)?;
        tx.execute(
            "INSERT INTO blobs (id, owner, group_id, size, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&new.id.0[..], &new.owner.0[..], new.group_id, int(new.size), int(new.now_ms)],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(new.into_info())
    }

    /// `id`'s upload under way (a new one, written point 0, if none is).
    fn upload(&self, id: &BlobId) -> Arc<Upload> {
        let mut map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(*id).or_default())
    }

    /// `id` as stored, its resume point the written one. Takes the
    /// metadata connection (`db`) and the map's lock after it, as
    /// `delete_rows` does; `append` never holds the map's lock while it
    /// waits for `db`.
    fn info(&self, db: &Connection, id: &BlobId) -> Result<Option<BlobInfo>, BlobStoreError> {
        let Some(mut blob) = info(db, id)? else {
            return Ok(None);
        };
        let map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = map.get(id) {
            blob.stored = blob.stored.max(u.written.load(Ordering::Acquire));
        }
        Ok(Some(blob))
    }

    fn forget_upload(&self, id: &BlobId) {
        let mut map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    fn append(
        self: &Arc<Self>,
        id: BlobId,
        owner: IdentityKey,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, BlobStoreError> {
        // Checked before an entry is made, so that appends to blobs that do
        // not exist or are someone else's leave nothing in memory.
        owned(&self.db(), &id, &owner)?;
        let upload = self.upload(&id);
        let _order = upload.order.lock().unwrap_or_else(|p| p.into_inner());
        let mut before = match owned(&self.db(), &id, &owner) {
            Ok(b) => b,
            Err(e) => {
                self.forget_upload(&id);
                return Err(e);
            }
        };
        let recorded = before.stored;
        before.stored = recorded.max(upload.written.load(Ordering::Acquire));
        let Some(skip) = plan_append(&before, offset, data.len())? else {
            return Ok(before.stored);
        };
        let path = self.part(&id);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(backend)?;
        file.seek(SeekFrom::Start(before.stored))
            .and_then(|_| file.write_all(&data[skip..]))
            .map_err(backend)?;
        // Deleted or expired meanwhile: drop the file we wrote.
        if info(&self.db(), &id)?.is_none() {
            self.forget_upload(&id);
            remove_if_present(&path)?;
            return Err(BlobStoreError::NotFound);
        }
        let after = before.stored + (data.len() - skip) as u64;
        upload.written.store(after, Ordering::Release);
        if after - recorded >= SYNC_EVERY && !upload.syncing.swap(true, Ordering::AcqRel) {
            self.sync_in_background(id, file, after, upload.clone());
        }
        Ok(after)
    }

    /// `fsync`s `file` (bytes up to `point` were written before), then
    /// records `point`, off the request's path: the appends go on meanwhile,
    /// so the disk and the network work at once. One at a time per upload;
    /// `finish` `fsync`s whatever is left.
    fn sync_in_background(
        self: &Arc<Self>,
        id: BlobId,
        file: File,
        point: u64,
        upload: Arc<Upload>,
    ) {
        let me = Arc::clone(self);
        let syncing = Arc::clone(&upload);
        let spawned = std::thread::Builder::new()
            .name("blob-sync".into())
            .spawn(move || {
                let recorded = file.sync_data().map_err(backend).and_then(|()| {
                    me.db()
                        .execute(
                            "UPDATE blobs SET stored = ?1 WHERE id = ?2 AND stored < ?1 AND finished_at_ms IS NULL",
                            params![int(point), &id.0[..]],
                        )
                        .map_err(backend)
                });
                if let Err(e) = recorded {
                    tracing::warn!(error = %e, "an upload's point was not recorded; it resumes from an earlier one after a restart");
                }
                syncing.syncing.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread to fsync an upload; finish does it");
            upload.syncing.store(false, Ordering::Release);
        }
    }

    fn finish(
        &self,
        id: BlobId,
        owner: IdentityKey,
        now_ms: u64,
    ) -> Result<BlobInfo, BlobStoreError> {
        let db = self.db();
        let mut blob = owned_by(self.info(&db, &id)?, &owner)?;
        if !plan_finish(&blob)? {
            return Ok(blob);
        }
        let (part, done) = (self.part(&id), self.done(&id));
        match std::fs::rename(&part, &done) {
            Ok(()) => {}
            // Renamed before a crash, or an empty blob that never had a file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !done.exists() {
                    File::create(&done).map_err(backend)?;
                }
            }
            Err(e) => return Err(backend(e)),
        }
        // The file's bytes must be the part's, and stay if the data's cut past
        // a resumed upload's end (bytes of an append whose metadata was lost).
        let file = OpenOptions::new()
            .write(true)
            .open(&done)
            .map_err(backend)?;
        file.set_len(blob.size)
            .and_then(|()| file.sync_all())
            .and_then(|()| File::open(&self.dir)?.sync_all())
            .map_err(backend)?;
        db.execute(
            "UPDATE blobs SET finished_at_ms = ?1, stored = size WHERE id = ?2",
            params![int(now_ms), &id.0[..]],
        )
        .map_err(backend)?;
        blob.finished_at_ms = Some(now_ms);
        drop(db);
        self.forget_upload(&id);
        Ok(blob)
    }

    fn read(&self, id: BlobId, offset: u64, len: u32) -> Result<Vec<u8>, BlobStoreError> {
        let blob = info(&self.db(), &id)?.ok_or(BlobStoreError::NotFound)?;
        let (start, len) = plan_read(&blob, offset, len)?;
        let mut out = vec![0u8; len];
        let mut file = File::open(self.done(&id)).map_err(backend)?;
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut out))
            .map_err(backend)?;
        Ok(out)
    }

    fn delete_rows(&self, db: &Connection, ids: &[BlobId]) -> Result<(), BlobStoreError> {
        for id in ids {
            db.execute("DELETE FROM blobs WHERE id = ?1", [&id.0[..]])
                .map_err(backend)?;
            remove_if_present(&self.part(id))?;
            remove_if_present(&self.done(id))?;
            self.forget_upload(id);
        }
        Ok(())
    }

    fn delete(&self, id: BlobId) -> Result<bool, BlobStoreError> {
        let db = self.db();
        let existed = info(&db, &id)?.is_some();
        self.delete_rows(&db, &[id])?;
        Ok(existed)
    }

    /// Deletes the blobs `sql` selects (their ids) with `params`.
    fn delete_where(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<u64, BlobStoreError> {
        let db = self.db();
        let ids: Vec<BlobId> = db
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(params, |r| r.get::<_, Vec<u8>>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(backend)?
            .iter()
            .filter_map(|id| BlobId::from_slice(id).ok())
            .collect();
        self.delete_rows(&db, &ids)?;
        Ok(ids.len() as u64)
    }

    fn expire(&self, expiry: BlobExpiry) -> Result<u64, BlobStoreError> {
        self.delete_where(
            "SELECT id FROM blobs WHERE (finished_at_ms IS NULL AND created_at_ms < ?1)
                OR finished_at_ms < ?2",
            params![
                int(expiry.unfinished_before_ms),
                int(expiry.finished_before_ms)
            ],
        )
    }

    /// Removes blob files whose blob is gone (a crash between deleting a
    /// row and its file); run at open, before any upload can race it.
    fn remove_orphans(&self) -> Result<u64, BlobStoreError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(backend)? {
            let path = entry.map_err(backend)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let hex = name.strip_suffix(".part").unwrap_or(name);
            let mut id = [0u8; BlobId::LEN];
            if hex::decode_to_slice(hex, &mut id).is_err() {
                continue; // not a blob file (the database, its WAL)
            }
            if info(&self.db(), &BlobId(id))?.is_none() {
                remove_if_present(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn usage(&self, owner: IdentityKey) -> Result<BlobUsage, BlobStoreError> {
        self.db()
            .query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM blobs WHERE owner = ?1",
                [&owner.0[..]],
                |r| {
                    Ok(BlobUsage {
                        blobs: r.get::<_, i64>(0)? as u64,
                        bytes: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .map_err(backend)
    }
}

/// A server that stops (not one that crashes) records how far each upload
/// under way got, so a restart costs its clients nothing: the bytes are
/// `fsync`ed, then the point recorded (moving only forward).
impl Drop for Inner {
    fn drop(&mut self) {
        let uploads = std::mem::take(self.written.get_mut().unwrap_or_else(|p| p.into_inner()));
        for (id, upload) in uploads {
            let written = upload.written.load(Ordering::Acquire);
            if written == 0 {
                continue;
            }
            let synced = File::open(self.part(&id)).and_then(|f| f.sync_data());
            let recorded = synced.map_err(backend).and_then(|()| {
                self.db()
                    .execute(
                        "UPDATE blobs SET stored = ?1 WHERE id = ?2 AND stored < ?1 AND finished_at_ms IS NULL",
                        params![int(written), &id.0[..]],
                    )
                    .map_err(backend)
            });
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "an upload's point was not recorded at stop; it resumes from an earlier one");
            }
        }
    }
}

impl FileBlobStore {
    /// Opens (creating it, private to this user) the blob directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, BlobStoreError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(backend)?;
        }
        let db = Connection::open(dir.join(DB_FILE)).map_err(backend)?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .and_then(|()| db.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| db.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| db.execute_batch(SCHEMA))
            .map_err(backend)?;
        let inner = Inner {
            dir: dir.to_owned(),
            db: Mutex::new(db),
            written: Mutex::new(HashMap::new()),
        };
        let orphans = inner.remove_orphans()?;
        if orphans > 0 {
            tracing::info!(orphans, "removed blob files that no blob names");
        }
        Ok(FileBlobStore {
            inner: Arc::new(inner),
        })
    }

    /// Runs `work` on a blocking thread: file and SQLite calls block.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Arc<Inner>) -> Result<T, BlobStoreError> + Send + 'static,
    ) -> Result<T, BlobStoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| backend(format!("blob task failed: {e}")))?
    }
}

impl BlobStore for FileBlobStore {
    async fn create(&self, new: NewBlob) -> Result<BlobInfo, BlobStoreError> {
        self.run(move |s| s.create(new)).await
    }

    async fn append(
        &self,
        id: BlobId,
        owner: IdentityKey,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<u64, BlobStoreError> {
        self.run(move |s| s.append(id, owner, offset, &data)).await
    }

    async fn info(&self, id: BlobId) -> Result<Option<BlobInfo>, BlobStoreError> {
        self.run(move |s| s.info(&s.db(), &id)).await
    }

    async fn finish(
        &self,
        id: BlobId,
        owner: IdentityKey,
        now_ms: u64,
    ) -> Result<BlobInfo, BlobStoreError> {
        self.run(move |s| s.finish(id, owner, now_ms)).await
    }

    async fn read(&self, id: BlobId, offset: u64, len: u32) -> Result<Vec<u8>, BlobStoreError> {
        self.run(move |s| s.read(id, offset, len)).await
    }

    async fn delete(&self, id: BlobId) -> Result<bool, BlobStoreError> {
        self.run(move |s| s.delete(id)).await
    }

    async fn expire(&self, expiry: BlobExpiry) -> Result<u64, BlobStoreError> {
        self.run(move |s| s.expire(expiry)).await
    }

    async fn usage(&self, owner: IdentityKey) -> Result<BlobUsage, BlobStoreError> {
        self.run(move |s| s.usage(owner)).await
    }

    async fn delete_owned(&self, owner: IdentityKey) -> Result<u64, BlobStoreError> {
        self.run(move |s| s.delete_where("SELECT id FROM blobs WHERE owner = ?1", [&owner.0[..]]))
            .await
    }
}

/// The blob directory of a data directory.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join("blobs")
}

/// Where a finished blob's bytes are in the blob directory `dir`.
fn finished_file(dir: &Path, id: &BlobId) -> PathBuf {
    dir.join(id.to_string())
}

/// What [`snapshot`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub blobs: u64,
    pub bytes: u64,
}

/// Copies the finished blobs of the blob directory `dir` (of a serving
/// server or a stopped one) into the empty directory `into`, for `qpq-server
/// backup`: the metadata as of one read transaction (SQLite's online
/// backup), then each finished blob's file — hard-linked where `into` is on
/// the same file system (a finished file is never written again, only
/// removed), copied otherwise. Unfinished uploads are left out (their
/// uploader starts over after a restore), as are blobs removed while the
/// copy ran. Every file and `into` are fsynced. Blocks.
pub fn snapshot(dir: &Path, into: &Path) -> Result<Snapshot, BlobStoreError> {
    use rusqlite::OpenFlags;
    let src = Connection::open_with_flags(dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(backend)?;
    src.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(backend)?;
    let mut copy = Connection::open(into.join(DB_FILE)).map_err(backend)?;
    crate::store::sqlite::copy_in_one_step(&src, &mut copy).map_err(backend)?;
    copy.execute("DELETE FROM blobs WHERE finished_at_ms IS NULL", [])
        .map_err(backend)?;
    let ids: Vec<BlobId> = {
        let mut st = copy.prepare("SELECT id FROM blobs").map_err(backend)?;
        let rows = st
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(backend)?;
        rows.filter_map(|r| r.ok().and_then(|v| v.try_into().ok()).map(BlobId))
            .collect()
    };
    let mut done = Snapshot::default();
    let mut gone = Vec::new();
    for id in ids {
        let (from, to) = (finished_file(dir, &id), finished_file(into, &id));
        let linked = std::fs::hard_link(&from, &to);
        let result = match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                gone.push(id);
                continue;
            }
            // Another file system (or one without hard links): copy.
            Err(_) => std::fs::copy(&from, &to).map(drop),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                gone.push(id);
                continue;
            }
            Err(e) => return Err(backend(format!("{}: {e}", from.display()))),
        }
        let f = File::open(&to).map_err(backend)?;
        f.sync_all().map_err(backend)?;
        done.blobs += 1;
        done.bytes += f.metadata().map_err(backend)?.len();
    }
    {
        let tx = copy.transaction().map_err(backend)?;
        for id in &gone {
            tx.execute("DELETE FROM blobs WHERE id = ?1", [&id.0[..]])
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
    }
    // One file, no WAL beside it: the copy is complete on its own.
    copy.pragma_update(None, "journal_mode", "DELETE")
        .map_err(backend)?;
    drop(copy);
    File::open(into.join(DB_FILE))
        .and_then(|f| f.sync_all())
        .and_then(|()| File::open(into))
        .and_then(|d| d.sync_all())
        .map_err(backend)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::blobs;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut n = 0;
        blobs::run_all(|| {
            n += 1;
            let path = dir.path().join(n.to_string());
            async move { FileBlobStore::open(&path).expect("open") }
        })
        .await;
    }

    /// The backend comparison of BENCHMARKS.md (100 MiB in 1 MiB appends);
    /// `cargo test -p quicproquo-server --lib file_blobs -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement"]
    async fn throughput() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FileBlobStore::open(dir.path()).expect("open");
        let total = 100 << 20;
        let times = blobs::time_upload_and_read(&store, total, 1 << 20).await;
        blobs::report(
            "files (fsync every 8 MiB, beside the appends)",
            total,
            times,
        );
    }

    #[tokio::test]
    async fn blobs_survive_reopening_and_finished_files_are_named_by_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FileBlobStore::open(dir.path()).expect("open");
        let id = blobs::upload(&store, 1, b"sealed bytes").await;
        drop(store);
        let store = FileBlobStore::open(dir.path()).expect("reopen");
        assert_eq!(store.read(id, 0, 100).await.unwrap(), b"sealed bytes");
        assert!(dir.path().join(id.to_string()).exists());
        assert!(!dir.path().join(format!("{id}.part")).exists());
        assert!(store.delete(id).await.unwrap());
        assert!(!dir.path().join(id.to_string()).exists());
    }

    #[tokio::test]
    async fn files_no_blob_names_are_removed_at_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FileBlobStore::open(dir.path()).expect("open");
        let kept = blobs::upload(&store, 1, b"kept").await;
        drop(store);
        let orphan = dir.path().join(BlobId([3; 16]).to_string());
        let orphan_part = dir.path().join(format!("{}.part", BlobId([4; 16])));
        std::fs::write(&orphan, b"x").expect("write");
        std::fs::write(&orphan_part, b"x").expect("write");
        let store = FileBlobStore::open(dir.path()).expect("reopen");
        assert!(!orphan.exists() && !orphan_part.exists());
        assert_eq!(store.read(kept, 0, 10).await.expect("read"), b"kept");
        assert!(dir.path().join("blobs.sqlite3").exists());
    }

    /// Appends are fsynced and recorded every `SYNC_EVERY` bytes: a restart
    /// (the written point was only in memory) resumes from the last
    /// recorded point, never past it, and the upload completes
    /// byte-identical over the bytes written after it.
    #[tokio::test]
    async fn a_restart_resumes_from_the_last_synced_point() {
        const MIB: usize = 1 << 20;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FileBlobStore::open(dir.path()).expect("open");
        let id = BlobId([9; 16]);
        let data: Vec<u8> = (0..11 * MIB).map(|i| (i * 7 % 251) as u8).collect();
        store
            .create(blobs::new_blob(id, 1, data.len() as u64))
            .await
            .unwrap();
        for piece in 0..10 {
            let at = piece * MIB;
            let point = store
                .append(id, blobs::owner(1), at as u64, data[at..at + MIB].to_vec())
                .await
                .unwrap();
            assert_eq!(point, (at + MIB) as u64, "the answer is the written point");
        }
        let info = store.info(id).await.unwrap().unwrap();
        assert_eq!(info.stored, 10 * MIB as u64, "info tells the written point");
        // The fsync runs beside the appends: wait until it recorded 8 MiB.
        let recorded = || {
            let db = Connection::open(dir.path().join(DB_FILE)).unwrap();
            db.query_row("SELECT stored FROM blobs", [], |r| r.get::<_, i64>(0))
                .unwrap() as u64
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while recorded() < SYNC_EVERY && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // A crash: what was in memory is lost (no drop runs).
        std::mem::forget(store);

        let store = FileBlobStore::open(dir.path()).expect("reopen");
        let info = store.info(id).await.unwrap().unwrap();
        assert_eq!(
            info.stored, SYNC_EVERY,
            "the recorded point is the last fsync"
        );
        // The client asks where to go on and sends the rest from there.
        let mut at = info.stored as usize;
        while at < data.len() {
            let end = (at + MIB).min(data.len());
            at = store
                .append(id, blobs::owner(1), at as u64, data[at..end].to_vec())
                .await
                .unwrap() as usize;
        }
        store.finish(id, blobs::owner(1), 2).await.unwrap();
        let mut back = Vec::new();
        while back.len() < data.len() {
            back.extend(store.read(id, back.len() as u64, MIB as u32).await.unwrap());
        }
        assert!(back == data, "byte-identical after the resume");
    }

    /// A store that closes (the server stops) records how far its uploads
    /// got: the restarted upload goes on from there.
    #[tokio::test]
    async fn a_stop_records_the_written_point() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FileBlobStore::open(dir.path()).expect("open");
        let id = BlobId([8; 16]);
        store.create(blobs::new_blob(id, 1, 1 << 20)).await.unwrap();
        store
            .append(id, blobs::owner(1), 0, vec![1; 3000])
            .await
            .unwrap();
        drop(store);
        let store = FileBlobStore::open(dir.path()).expect("reopen");
        assert_eq!(store.info(id).await.unwrap().unwrap().stored, 3000);
    }

    /// An append refused (no such blob, or someone else's) leaves no
    /// upload state in memory: strangers cannot grow the map.
    #[tokio::test]
    async fn refused_appends_keep_nothing_in_memory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FileBlobStore::open(dir.path()).expect("open");
        let id = BlobId([5; 16]);
        store.create(blobs::new_blob(id, 1, 10)).await.unwrap();
        for n in 0..100u8 {
            let stranger = BlobId([n + 100; 16]);
            assert!(store
                .append(stranger, blobs::owner(1), 0, b"x".to_vec())
                .await
                .is_err());
        }
        assert!(store
            .append(id, blobs::owner(2), 0, b"x".to_vec())
            .await
            .is_err());
        let held = store.inner.written.lock().unwrap().len();
        assert_eq!(held, 0, "refused appends left upload state behind");
        store
            .append(id, blobs::owner(1), 0, b"xy".to_vec())
            .await
            .unwrap();
        assert_eq!(store.inner.written.lock().unwrap().len(), 1);
        store.delete(id).await.unwrap();
        assert_eq!(
            store.inner.written.lock().unwrap().len(),
            0,
            "deleting forgets it"
        );
    }

    #[tokio::test]
    async fn bytes_past_the_resume_point_from_a_lost_append_are_overwritten() {
        // An append whose data reached the file but whose metadata did not
        // commit (a crash between the two): the resumed upload writes over it.
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FileBlobStore::open(dir.path()).expect("open");
        let id = BlobId([7; 16]);
        store.create(blobs::new_blob(id, 1, 6)).await.unwrap();
        assert_eq!(
            store
                .append(id, blobs::owner(1), 0, b"abc".to_vec())
                .await
                .unwrap(),
            3
        );
        std::fs::write(dir.path().join(format!("{id}.part")), b"abcXXXXXXX").unwrap();
        assert_eq!(
            store
                .append(id, blobs::owner(1), 3, b"def".to_vec())
                .await
                .unwrap(),
            6
        );
        store.finish(id, blobs::owner(1), 5).await.unwrap();
        assert_eq!(store.read(id, 0, 100).await.unwrap(), b"abcdef");
    }
}
