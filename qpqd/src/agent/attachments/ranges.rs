//! A download's `blobDownload` requests in flight: a few ranges asked at
//! once from where the file stands, answered in order.
//!
//! Each request runs in its own task so the connection keeps moving while
//! the download waits on one answer or on its sink. Dropping [`Ranges`]
//! aborts whatever is still in flight (a failure, a short read, a
//! reconnect): no request outlives the pass that asked it.

use std::collections::VecDeque;

use quicproquo_protocol::blob::BlobId;
use quicproquo_protocol::limits::MAX_BLOB_CHUNK_BYTES;
use quicproquo_protocol::types::SessionToken;
use quicproquo_protocol::wire;
use tokio::task::JoinHandle;

use crate::link::{Link, LinkError};

type Answer = JoinHandle<Result<Vec<u8>, LinkError>>;

/// Ranges requested and not yet taken, oldest first.
pub(super) struct Ranges {
    link: Link,
    token: SessionToken,
    blob: BlobId,
    /// Ciphertext bytes of the blob.
    total: u64,
    /// Where the next range starts.
    next: u64,
    depth: usize,
    flight: VecDeque<(u64, Answer)>,
}

impl Ranges {
    /// Ranges of `blob` from `from` on, `depth` at once (nothing asked yet).
    pub fn new(
        link: Link,
        token: SessionToken,
        blob: BlobId,
        from: u64,
        total: u64,
        depth: usize,
    ) -> Self {
        Ranges {
            link,
            token,
            blob,
            total,
            next: from,
            depth: depth.max(1),
            flight: VecDeque::new(),
        }
    }

    /// Asks for more until `depth` ranges are in flight or the blob's end
    /// is asked for.
    pub fn fill(&mut self) {
        while self.flight.len() < self.depth && self.next < self.total {
            let len = (self.total - self.next).min(MAX_BLOB_CHUNK_BYTES as u64) as u32;
            let (link, auth, blob, offset) =
                (self.link.clone(), self.token.clone(), self.blob, self.next);
            let answer = tokio::spawn(async move {
                link.request(wire::BlobDownload {
                    auth,
                    blob,
                    offset,
                    length: len,
                })
                .await
            });
            self.flight.push_back((u64::from(len), answer));
            self.next += u64::from(len);
        }
    }

    /// The oldest range in flight: its length asked and its answer.
    pub fn next(&mut self) -> Option<(u64, Answer)> {
        self.flight.pop_front()
    }
}

impl Drop for Ranges {
    fn drop(&mut self) {
        for (_, answer) in &self.flight {
            answer.abort();
        }
    }
}
