//! Pieces of an upload that overtake each other. A client keeps a few
//! `blobUpload`s in flight (one round trip per MiB would set the pace
//! otherwise), each on its own QUIC stream, so the server may read the
//! piece at 2 MiB before the one at 1 MiB. A store takes appends only at
//! the resume point; here an append that arrived early waits (briefly, and
//! only a little ahead) for its turn instead of being refused as a gap.
//!
//! The point known here is the last one this node answered for the blob
//! (`blobCreate` or `blobUpload`); with none known, or a piece far ahead,
//! or after [`REORDER_WAIT`], the store decides as before (a gap is
//! refused and the client asks where to go on). So nothing here can make a
//! wrong append succeed: it only orders right ones. What waits holds its
//! piece in memory, which the QUIC stream limit per connection bounds as it
//! bounds any request.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quicproquo_protocol::types::BlobId;
use tokio::sync::Notify;

/// How far past the known point a piece may be and still wait its turn.
pub const AHEAD: u64 = 8 << 20;

/// How long a piece waits for the ones before it.
pub const REORDER_WAIT: Duration = Duration::from_secs(2);

/// Points not touched for this long are forgotten (an upload abandoned).
const IDLE: Duration = Duration::from_secs(60);

/// The uploads' points on this node. One per service.
#[derive(Default)]
pub struct Arrivals {
    map: Mutex<Points>,
}

#[derive(Default)]
struct Points {
    points: HashMap<BlobId, Point>,
    /// The size at which idle points are next swept out.
    sweep_at: usize,
}

struct Point {
    at: u64,
    moved: Arc<Notify>,
    touched: Instant,
}

impl Arrivals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Points> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `blob`'s upload is at `at` (its owner was just answered so).
    pub fn set(&self, blob: BlobId, at: u64) {
        let now = Instant::now();
        let mut m = self.lock();
        if m.points.len() >= m.sweep_at {
            m.points.retain(|_, p| now.duration_since(p.touched) < IDLE);
            m.sweep_at = (m.points.len() * 2).max(1024);
        }
        let p = m.points.entry(blob).or_insert_with(|| Point {
            at,
            moved: Arc::default(),
            touched: now,
        });
        p.at = p.at.max(at);
        p.touched = now;
        p.moved.notify_waiters();
    }

    /// `blob`'s upload ended (finished, or refused for good).
    pub fn forget(&self, blob: &BlobId) {
        if let Some(p) = self.lock().points.remove(blob) {
            p.moved.notify_waiters();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().points.len()
    }

    /// Waits until the piece at `offset` is next: the known point reached
    /// it, or [`REORDER_WAIT`] passed. Returns at once when no point is
    /// known or `offset` is not a little ahead of it.
    pub async fn wait_turn(&self, blob: BlobId, offset: u64) {
        self.wait_turn_at_most(blob, offset, REORDER_WAIT).await;
    }

    async fn wait_turn_at_most(&self, blob: BlobId, offset: u64, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let moved = {
                let m = self.lock();
                match m.points.get(&blob) {
                    Some(p) if offset > p.at && offset - p.at <= AHEAD => p.moved.clone(),
                    _ => return,
                }
            };
            let mut notified = pin!(moved.notified());
            notified.as_mut().enable();
            // Moved between the look and `enable`?
            if self.lock().points.get(&blob).is_none_or(|p| p.at >= offset) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_piece_that_overtook_waits_for_the_one_before() {
        let arrivals = Arc::new(Arrivals::default());
        let blob = BlobId([1; 16]);
        arrivals.set(blob, 0);
        let early = {
            let a = arrivals.clone();
            tokio::spawn(async move { a.wait_turn(blob, 1 << 20).await })
        };
        tokio::task::yield_now().await;
        assert!(
            !early.is_finished(),
            "the piece at 1 MiB waits for the first"
        );
        arrivals.set(blob, 1 << 20);
        tokio::time::timeout(Duration::from_secs(1), early)
            .await
            .expect("its turn came")
            .unwrap();
    }

    #[tokio::test]
    async fn nothing_waits_without_a_point_far_ahead_or_for_long() {
        let arrivals = Arrivals::default();
        let blob = BlobId([2; 16]);
        let at_once = |offset| {
            let turn = arrivals.wait_turn(blob, offset);
            async move {
                tokio::time::timeout(REORDER_WAIT / 4, turn)
                    .await
                    .expect("no wait");
            }
        };
        // No point known: the store decides at once.
        at_once(5).await;
        arrivals.set(blob, 100);
        // At or before the point (a retry), and far ahead: at once.
        at_once(100).await;
        at_once(100 + AHEAD + 1).await;
        // A little ahead, and the piece before never comes: it waits its
        // time out, then the store decides.
        let wait = Duration::from_millis(50);
        let start = Instant::now();
        arrivals.wait_turn_at_most(blob, 101, wait).await;
        assert!(start.elapsed() >= wait, "it waited for the piece before");
        arrivals.forget(&blob);
        assert_eq!(arrivals.len(), 0);
    }
}
