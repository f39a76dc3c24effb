//! The behaviour every [`BlobStore`] backend must show (the file store of
//! SQLite deployments and PostgreSQL's), as plain async functions like the
//! rest of the conformance suite: [`run_all`] runs each case on a fresh store.

use std::future::Future;
use std::sync::Arc;

use quicproquo_protocol::types::IdentityKey;
use tokio::task::JoinSet;

use crate::blobs::{
    BlobExpiry, BlobId, BlobLimits, BlobStore, BlobStoreError, BlobUsage, NewBlob,
    MAX_BLOB_CHUNK_BYTES,
};

pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: BlobStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    case_upload_and_read(&fresh().await).await;
    case_retries_and_refusals(&fresh().await).await;
    case_limits_and_quota(&fresh().await).await;
    case_expiry(&fresh().await).await;
    case_empty_blob(&fresh().await).await;
    case_delete_owned(&fresh().await).await;
    case_concurrent_creates_share_one_quota(Arc::new(fresh().await)).await;
}

pub fn owner(n: u8) -> IdentityKey {
    IdentityKey([n; 32])
}

/// A blob of `size` bytes of `owner(n)` in group "g", created at time 1.
pub fn new_blob(id: BlobId, n: u8, size: u64) -> NewBlob {
    NewBlob {
        id,
        owner: owner(n),
        group_id: b"g".to_vec(),
        size,
        now_ms: 1,
        limits: BlobLimits::default(),
    }
}

/// Creates, uploads in one append and finishes a blob of `owner(n)`.
pub async fn upload<S: BlobStore>(store: &S, n: u8, data: &[u8]) -> BlobId {
    let id = BlobId::generate();
    store
        .create(new_blob(id, n, data.len() as u64))
        .await
        .expect("create");
    store
        .append(id, owner(n), 0, data.to_vec())
        .await
        .expect("append");
    store.finish(id, owner(n), 2).await.expect("finish");
    id
}

pub async fn case_upload_and_read<S: BlobStore>(store: &S) {
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let id = BlobId([1; 16]);
    let created = store.create(new_blob(id, 1, 3000)).await.expect("create");
    assert_eq!((created.stored, created.size), (0, 3000));
    assert_eq!(created.finished_at_ms, None);
    for (offset, piece) in [(0, &data[..1000]), (1000, &data[1000..2500])] {
        let stored = store
            .append(id, owner(1), offset, piece.to_vec())
            .await
            .expect("append");
        assert_eq!(stored, offset + piece.len() as u64);
    }
    let status = store.info(id).await.expect("info").expect("the blob");
    assert_eq!(status.stored, 2500, "info tells the resume point");
    assert_eq!(
        store.read(id, 0, 10).await,
        Err(BlobStoreError::NotFinished),
        "an unfinished blob is not readable"
    );
    store
        .append(id, owner(1), 2500, data[2500..].to_vec())
        .await
        .expect("last append");
    let done = store.finish(id, owner(1), 9).await.expect("finish");
    assert_eq!(done.finished_at_ms, Some(9));
    assert_eq!(done.group_id, b"g");
    assert_eq!(
        store.read(id, 0, 3000).await.expect("the store answers"),
        data
    );
    assert_eq!(
        store.read(id, 999, 2).await.expect("the store answers"),
        &data[999..1001]
    );
    assert_eq!(
        store.read(id, 2990, 100).await.expect("the store answers"),
        &data[2990..],
        "a read is cut at the end"
    );
    assert!(store
        .read(id, 5000, 10)
        .await
        .expect("the store answers")
        .is_empty());
    assert_eq!(
        store.usage(owner(1)).await.expect("the store answers"),
        BlobUsage {
            blobs: 1,
            bytes: 3000
        }
    );
    assert_eq!(
        store.usage(owner(2)).await.expect("the store answers"),
        BlobUsage::default()
    );
    assert!(store.delete(id).await.expect("the store answers"));
    assert!(!store.delete(id).await.expect("the store answers"));
    assert_eq!(store.info(id).await.expect("the store answers"), None);
    assert_eq!(store.read(id, 0, 1).await, Err(BlobStoreError::NotFound));
}

pub async fn case_retries_and_refusals<S: BlobStore>(store: &S) {
    let id = BlobId([2; 16]);
    store.create(new_blob(id, 1, 10)).await.expect("create");
    let again = store.create(new_blob(id, 1, 10)).await.expect("a retry");
    assert_eq!(again.stored, 0);
    assert_eq!(
        store.create(new_blob(id, 1, 11)).await,
        Err(BlobStoreError::Exists)
    );
    assert_eq!(
        store.create(new_blob(id, 2, 10)).await,
        Err(BlobStoreError::Exists),
        "another owner cannot take the id"
    );
    assert_eq!(
        store.append(id, owner(1), 0, b"01234".to_vec()).await,
        Ok(5)
    );
    assert_eq!(
        store.append(id, owner(1), 0, b"01234".to_vec()).await,
        Ok(5),
        "the same append again is a harmless retry"
    );
    assert_eq!(
        store.append(id, owner(1), 3, b"3456".to_vec()).await,
        Ok(7),
        "an overlapping append adds what is new"
    );
    assert_eq!(
        store.append(id, owner(1), 8, b"8".to_vec()).await,
        Err(BlobStoreError::Gap {
            offset: 8,
            stored: 7
        })
    );
    assert_eq!(
        store.append(id, owner(1), 7, b"7890".to_vec()).await,
        Err(BlobStoreError::PastEnd { size: 10 })
    );
    assert_eq!(
        store.append(id, owner(2), 7, b"7".to_vec()).await,
        Err(BlobStoreError::NotFound),
        "only the owner uploads"
    );
    assert_eq!(
        store.finish(id, owner(1), 5).await,
        Err(BlobStoreError::Incomplete {
            stored: 7,
            size: 10
        })
    );
    store
        .append(id, owner(1), 7, b"789".to_vec())
        .await
        .expect("complete");
    assert_eq!(
        store.finish(id, owner(2), 5).await,
        Err(BlobStoreError::NotFound),
        "only the owner finishes"
    );
    let first = store.finish(id, owner(1), 5).await.expect("finish");
    let second = store.finish(id, owner(1), 6).await.expect("finish again");
    assert_eq!(first, second, "finishing twice changes nothing");
    assert_eq!(
        store.append(id, owner(1), 10, Vec::new()).await,
        Err(BlobStoreError::Finished)
    );
    assert_eq!(
        store.read(id, 0, 100).await.expect("the store answers"),
        b"0123456789"
    );
    assert_eq!(
        store
            .read(id, 0, u32::MAX)
            .await
            .expect("the store answers")
            .len(),
        10,
        "a read's length is clamped"
    );
    assert_eq!(
        store
            .append(BlobId([9; 16]), owner(1), 0, b"x".to_vec())
            .await,
        Err(BlobStoreError::NotFound)
    );
}

pub async fn case_limits_and_quota<S: BlobStore>(store: &S) {
    let limits = BlobLimits {
        max_blob_bytes: 100,
        quota_bytes: 250,
    };
    let with = |id: u8, size: u64| NewBlob {
        limits,
        ..new_blob(BlobId([id; 16]), 1, size)
    };
    assert_eq!(
        store.create(with(1, 101)).await,
        Err(BlobStoreError::TooLarge {
            size: 101,
            max: 100
        })
    );
    store.create(with(1, 100)).await.expect("at the limit");
    store.create(with(2, 100)).await.expect("within the quota");
    // Unfinished uploads hold their reservation.
    assert_eq!(
        store.create(with(3, 100)).await,
        Err(BlobStoreError::QuotaExceeded {
            used: 200,
            quota: 250,
            size: 100
        })
    );
    store.create(with(3, 50)).await.expect("what is left");
    // Another user's quota is their own.
    store
        .create(NewBlob {
            limits,
            ..new_blob(BlobId([4; 16]), 2, 100)
        })
        .await
        .expect("another owner");
    assert!(store
        .delete(BlobId([1; 16]))
        .await
        .expect("the store answers"));
    store
        .create(with(5, 100))
        .await
        .expect("a deletion frees quota");
    let usage = store.usage(owner(1)).await.expect("the store answers");
    assert_eq!(
        usage,
        BlobUsage {
            blobs: 3,
            bytes: 250
        }
    );
}

pub async fn case_expiry<S: BlobStore>(store: &S) {
    let at = |id: u8, now_ms: u64| NewBlob {
        now_ms,
        ..new_blob(BlobId([id; 16]), 1, 1)
    };
    // Old and new uploads, unfinished; old and new finished blobs.
    store.create(at(1, 100)).await.expect("the store answers");
    store.create(at(2, 300)).await.expect("the store answers");
    for (id, finished) in [(3, 100), (4, 300)] {
        store.create(at(id, 50)).await.expect("the store answers");
        store
            .append(BlobId([id; 16]), owner(1), 0, b"x".to_vec())
            .await
            .expect("the store answers");
        store
            .finish(BlobId([id; 16]), owner(1), finished)
            .await
            .expect("the store answers");
    }
    let gone = store
        .expire(BlobExpiry {
            unfinished_before_ms: 200,
            finished_before_ms: 200,
        })
        .await
        .expect("the store answers");
    assert_eq!(gone, 2);
    for (id, kept) in [(1, false), (2, true), (3, false), (4, true)] {
        assert_eq!(
            store
                .info(BlobId([id; 16]))
                .await
                .expect("the store answers")
                .is_some(),
            kept,
            "blob {id}"
        );
    }
    // A finished blob counts from its finish, not its creation (4 was
    // created at 50, long before the cut-off).
    assert_eq!(
        store
            .read(BlobId([4; 16]), 0, 1)
            .await
            .expect("the store answers"),
        b"x"
    );
    assert_eq!(
        store
            .usage(owner(1))
            .await
            .expect("the store answers")
            .blobs,
        2
    );
}

pub async fn case_delete_owned<S: BlobStore>(store: &S) {
    let done = upload(store, 1, b"finished").await;
    let partial = BlobId([5; 16]);
    store.create(new_blob(partial, 1, 9)).await.expect("create");
    let theirs = upload(store, 2, b"someone else's").await;
    assert_eq!(store.delete_owned(owner(1)).await, Ok(2));
    for (id, kept) in [(done, false), (partial, false), (theirs, true)] {
        assert_eq!(
            store.info(id).await.expect("the store answers").is_some(),
            kept,
            "{id}"
        );
    }
    assert_eq!(
        store.usage(owner(1)).await.expect("the store answers"),
        BlobUsage::default()
    );
}

pub async fn case_empty_blob<S: BlobStore>(store: &S) {
    let id = BlobId([3; 16]);
    store
        .create(new_blob(id, 1, 0))
        .await
        .expect("the store answers");
    store
        .finish(id, owner(1), 2)
        .await
        .expect("nothing to upload");
    assert!(store
        .read(id, 0, 10)
        .await
        .expect("the store answers")
        .is_empty());
    // The largest append is accepted in one piece.
    let big = BlobId([4; 16]);
    let data = vec![0xA5; MAX_BLOB_CHUNK_BYTES];
    store
        .create(new_blob(big, 1, data.len() as u64))
        .await
        .expect("the store answers");
    store
        .append(big, owner(1), 0, data.clone())
        .await
        .expect("the store answers");
    store
        .finish(big, owner(1), 2)
        .await
        .expect("the store answers");
    assert!(
        store
            .read(big, 0, u32::MAX)
            .await
            .expect("the store answers")
            == data
    );
}

pub async fn case_concurrent_creates_share_one_quota<S: BlobStore>(store: Arc<S>) {
    let limits = BlobLimits {
        max_blob_bytes: 100,
        quota_bytes: 400,
    };
    let mut set = JoinSet::new();
    for i in 0..10u8 {
        let store = store.clone();
        set.spawn(async move {
            store
                .create(NewBlob {
                    limits,
                    ..new_blob(BlobId([i; 16]), 1, 100)
                })
                .await
        });
    }
    let results = set.join_all().await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 4, "exactly the quota is handed out: {results:?}");
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(BlobStoreError::QuotaExceeded { .. }))));
}

/// Uploads `total` bytes in appends of `chunk` bytes and reads them back in
/// reads of `chunk` bytes; returns how long each way took (the backend
/// comparison in BENCHMARKS.md, run by the backends' ignored tests).
pub async fn time_upload_and_read<S: BlobStore>(
    store: &S,
    total: usize,
    chunk: usize,
) -> (std::time::Duration, std::time::Duration) {
    let id = BlobId::generate();
    let piece = vec![0x5A; chunk];
    let started = std::time::Instant::now();
    store
        .create(NewBlob {
            limits: BlobLimits {
                max_blob_bytes: total as u64,
                quota_bytes: total as u64,
            },
            ..new_blob(id, 1, total as u64)
        })
        .await
        .expect("create");
    let mut offset = 0;
    while offset < total {
        let n = chunk.min(total - offset);
        store
            .append(id, owner(1), offset as u64, piece[..n].to_vec())
            .await
            .expect("append");
        offset += n;
    }
    store.finish(id, owner(1), 2).await.expect("finish");
    let uploaded = started.elapsed();
    let started = std::time::Instant::now();
    let mut offset = 0;
    while offset < total {
        let got = store
            .read(id, offset as u64, chunk as u32)
            .await
            .expect("read");
        assert!(!got.is_empty(), "a read inside the blob returns bytes");
        offset += got.len();
    }
    (uploaded, started.elapsed())
}

/// Prints one row of the comparison: MiB/s each way.
pub fn report(backend: &str, total: usize, (up, down): (std::time::Duration, std::time::Duration)) {
    let mib = total as f64 / (1024.0 * 1024.0);
    println!(
        "{backend}: {mib:.0} MiB up {:.1} MiB/s ({:.2} s), down {:.1} MiB/s ({:.2} s)",
        mib / up.as_secs_f64(),
        up.as_secs_f64(),
        mib / down.as_secs_f64(),
        down.as_secs_f64()
    );
}
