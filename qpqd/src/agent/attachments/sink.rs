//! Where a download's pieces go: a blocking thread that owns the
//! decryptor and the `.part` file.
//!
//! Decrypting (ChaCha20-Poly1305), hashing (SHA-256 of the plaintext) and
//! writing a 1 MiB piece take milliseconds of CPU and disk. Done on the
//! request loop they stalled the download (no range was taken off the
//! connection meanwhile) and held a tokio worker the daemon's other work
//! needs. Here the loop hands each piece, in order, to a thread through a
//! channel of [`QUEUED`] pieces and goes back to the network; a full
//! channel makes the loop wait, so memory stays bounded (the ranges in
//! flight, the queued pieces, one piece being opened).
//!
//! The thread keeps today's guarantees: a piece that does not open, a
//! write that fails, a truncated file or a wrong hash ends it at once with
//! the reason ([`Sink::stopped`] lets the loop learn it while it waits on
//! the network); the file is fsync'd before [`Sink::finish`] answers. It
//! never deletes or places the file: the caller does, after the thread has
//! let go of it (every path out of a [`Sink`] waits for the thread).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use quicproquo_protocol::blob::{BlobError, Decryptor, Descriptor};
use quicproquo_protocol::ipc::values::TransferState;
use quicproquo_protocol::limits::MAX_BLOB_CHUNK_BYTES;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{private_file, Ended};

/// Pieces waiting for the thread while it opens one: enough to cover a
/// slow write, few enough to keep memory bounded (1 MiB each).
const QUEUED: usize = 2;

/// Written bytes after which the flusher starts their writeback.
const FLUSH_EVERY: usize = 8 << 20;

enum Step {
    /// The next ciphertext bytes of the blob.
    Piece(Vec<u8>),
    /// No more: check the end, fsync.
    Finish,
}

/// What the thread and the loop share.
#[derive(Default)]
struct Shared {
    /// Ciphertext bytes decrypted and written (for progress).
    written: AtomicU64,
    /// The download is given up: stop before the next piece.
    cancelled: AtomicBool,
}

/// The sink of one download (see the module doc).
pub(super) struct Sink {
    steps: mpsc::Sender<Step>,
    shared: Arc<Shared>,
    /// `None` once the thread's end has been taken.
    thread: Option<JoinHandle<Result<(), Ended>>>,
}

impl Sink {
    /// Creates `part` (0600, emptied) and starts the thread that decrypts
    /// `d`'s ciphertext into it.
    pub fn start(d: &Descriptor, part: &Path) -> Result<Sink, Ended> {
        let dec = Decryptor::new(d).map_err(corrupt)?;
        let file = private_file(part, false).map_err(|e| cannot_write(part, e))?;
        let (steps, rx) = mpsc::channel(QUEUED);
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let part = part.to_path_buf();
        let thread = tokio::task::spawn_blocking(move || run(dec, file, &part, rx, &s));
        Ok(Sink {
            steps,
            shared,
            thread: Some(thread),
        })
    }

    /// Ciphertext bytes decrypted and written so far.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Hands the next piece over; waits while [`QUEUED`] pieces wait. A
    /// thread that stopped (a bad piece, a failed write) answers why.
    pub async fn put(&mut self, data: Vec<u8>) -> Result<(), Ended> {
        if self.steps.send(Step::Piece(data)).await.is_err() {
            return Err(self.end().await);
        }
        Ok(())
    }

    /// Resolves only if the thread stops before [`Sink::finish`]: why.
    /// Safe to drop unfinished (e.g. in a `select!`); pending for good once
    /// it has answered.
    pub async fn stopped(&mut self) -> Ended {
        if self.thread.is_none() {
            return std::future::pending().await;
        }
        self.end().await
    }

    /// Why the thread stopped early (once: then only that it did).
    async fn end(&mut self) -> Ended {
        let failed = |why: String| Ended::Failed(TransferState::Failed, why);
        let Some(thread) = self.thread.as_mut() else {
            return failed("the download's writer has stopped".into());
        };
        let end = thread.await;
        self.thread = None;
        match end {
            Err(e) => failed(format!("the download's writer failed: {e}")),
            Ok(Err(e)) => e,
            Ok(Ok(())) => failed("the download's writer stopped early".into()),
        }
    }

    /// No more pieces: the end is checked (truncation, hash) and the file
    /// fsync'd; the thread's answer.
    pub async fn finish(mut self) -> Result<(), Ended> {
        if self.steps.send(Step::Finish).await.is_err() {
            return Err(self.end().await);
        }
        match self.thread.take() {
            Some(thread) => thread.await.map_err(|e| {
                Ended::Failed(
                    TransferState::Failed,
                    format!("the download's writer failed: {e}"),
                )
            })?,
            None => Ok(()),
        }
    }

    /// Gives the download up: the thread stops before its next piece and
    /// has closed the file when this returns.
    pub async fn abandon(self) {
        let Sink {
            steps,
            shared,
            thread,
        } = self;
        shared.cancelled.store(true, Ordering::SeqCst);
        // Closing the channel wakes a thread waiting for a piece.
        drop(steps);
        if let Some(thread) = thread {
            let _ = thread.await;
        }
    }
}

/// The thread: opens each piece in order and writes its plaintext.
fn run(
    mut dec: Decryptor,
    mut file: File,
    part: &Path,
    mut rx: mpsc::Receiver<Step>,
    shared: &Shared,
) -> Result<(), Ended> {
    let mut plain = Vec::with_capacity(MAX_BLOB_CHUNK_BYTES);
    let flusher = Flusher::start(&file);
    let mut unflushed = 0;
    while let Some(step) = rx.blocking_recv() {
        if shared.cancelled.load(Ordering::SeqCst) {
            break;
        }
        match step {
            Step::Piece(data) => {
                dec.update(&data, &mut plain).map_err(corrupt)?;
                file.write_all(&plain).map_err(|e| cannot_write(part, e))?;
                unflushed += plain.len();
                if unflushed >= FLUSH_EVERY {
                    if let Some(f) = &flusher {
                        f.poke();
                    }
                    unflushed = 0;
                }
                plain.clear();
                shared
                    .written
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Step::Finish => {
                dec.finish().map_err(corrupt)?;
                if let Some(f) = flusher {
                    f.stop().map_err(|e| cannot_write(part, e))?;
                }
                return file.sync_all().map_err(|e| cannot_write(part, e));
            }
        }
    }
    Err(Ended::Failed(
        TransferState::Failed,
        "the download was given up".into(),
    ))
}

/// Starts the writeback of what the sink wrote, on a thread of its own,
/// while the sink goes on: the fsync at the end then waits only for the
/// tail (about 60 ms less for 100 MiB here) instead of the whole file.
/// Its own failure is kept and reported at the end: a flush error the
/// final fsync might no longer see (the two share the open file) must not
/// let a file that did not reach the disk count as written.
struct Flusher {
    poke: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Flusher {
    /// `None` if no thread or handle can be had: then only the final
    /// fsync writes the file back (slower, as safe).
    fn start(file: &File) -> Option<Flusher> {
        let file = file.try_clone().ok()?;
        let (poke, pokes) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("qpqd-flush".into())
            .spawn(move || {
                while pokes.recv().is_ok() {
                    file.sync_data()?;
                }
                Ok(())
            })
            .ok()?;
        Some(Flusher { poke, thread })
    }

    /// Asks for a writeback; one already asked for and not begun covers it.
    fn poke(&self) {
        let _ = self.poke.try_send(());
    }

    /// Waits for the writeback under way; its error if one failed.
    fn stop(self) -> std::io::Result<()> {
        drop(self.poke);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the flusher panicked")))
    }
}

/// A piece that does not open, a truncated file, a wrong hash.
pub(super) fn corrupt(e: BlobError) -> Ended {
    Ended::Failed(TransferState::Corrupt, e.to_string())
}

fn cannot_write(part: &Path, e: std::io::Error) -> Ended {
    Ended::Failed(
        TransferState::Failed,
        format!("`{}` cannot be written: {e}", part.display()),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quicproquo_protocol::blob::{self, BlobId, FileKey, DEFAULT_CHUNK_SIZE};

    use super::*;

    /// `plain` sealed: its descriptor and ciphertext.
    fn sealed(plain: &[u8]) -> (Descriptor, Vec<u8>) {
        let key = FileKey::generate();
        let mut ct = Vec::new();
        let s = blob::encrypt_stream(&key, DEFAULT_CHUNK_SIZE, plain, &mut ct).unwrap();
        let d = Descriptor {
            blob_id: BlobId::generate(),
            key,
            size: s.size,
            chunk_size: DEFAULT_CHUNK_SIZE,
            sha256: s.sha256,
            file_name: "f.bin".into(),
            content_type: "application/octet-stream".into(),
        };
        (d, ct)
    }

    /// A few chunks' worth, cut into pieces that do not fall on chunk
    /// boundaries (as ranges of a blob do not).
    fn sample() -> (Vec<u8>, Descriptor, Vec<Vec<u8>>) {
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (d, ct) = sealed(&plain);
        let pieces = ct.chunks(100_003).map(<[u8]>::to_vec).collect();
        (plain, d, pieces)
    }

    /// A `.part` path in a fresh directory (kept while the guard lives).
    fn part_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.bin.part");
        (dir, part)
    }

    fn start(d: &Descriptor, part: &Path) -> Sink {
        match Sink::start(d, part) {
            Ok(sink) => sink,
            Err(e) => panic!("the sink does not start: {}", state(&e).1),
        }
    }

    fn state(e: &Ended) -> (TransferState, &str) {
        match e {
            Ended::Failed(state, why) => (*state, why),
            Ended::Later(_) => panic!("a sink's failure is for good"),
        }
    }

    #[tokio::test]
    async fn pieces_in_order_make_the_file_checked_and_synced() {
        let (_dir, part) = part_file();
        let (plain, d, pieces) = sample();
        let mut sink = start(&d, &part);
        let mut handed = 0;
        for p in pieces {
            handed += p.len() as u64;
            sink.put(p).await.ok().unwrap();
        }
        let written = || sink.written();
        assert!(written() <= handed, "no more written than handed over");
        sink.finish().await.ok().unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), plain);
    }

    #[tokio::test]
    async fn a_file_past_the_flush_step_is_whole_after_the_flusher_ran() {
        let (_dir, part) = part_file();
        let plain: Vec<u8> = (0..FLUSH_EVERY as u32 + 1_500_000)
            .map(|i| (i % 253) as u8)
            .collect();
        let (d, ct) = sealed(&plain);
        let mut sink = start(&d, &part);
        for p in ct.chunks(MAX_BLOB_CHUNK_BYTES) {
            sink.put(p.to_vec()).await.ok().unwrap();
        }
        sink.finish().await.ok().unwrap();
        assert!(std::fs::read(&part).unwrap() == plain);
    }

    #[tokio::test]
    async fn a_tampered_piece_stops_the_sink_without_more_pieces() {
        let (_dir, part) = part_file();
        let (_, d, mut pieces) = sample();
        pieces[1][10] ^= 1;
        let mut sink = start(&d, &part);
        sink.put(pieces[0].clone()).await.ok().unwrap();
        sink.put(pieces[1].clone()).await.ok().unwrap();
        // What the request loop waits on beside the network.
        let e = tokio::time::timeout(Duration::from_secs(10), sink.stopped())
            .await
            .expect("the sink reports a bad piece by itself");
        assert_eq!(state(&e).0, TransferState::Corrupt, "{}", state(&e).1);
        // Handing over more answers the same reason, at once.
        let again = sink.put(pieces[2].clone()).await.err().unwrap();
        assert_eq!(state(&again).0, TransferState::Failed);
    }

    #[tokio::test]
    async fn a_blob_cut_short_is_corrupt_at_the_end() {
        let (_dir, part) = part_file();
        let (_, d, mut pieces) = sample();
        pieces.pop();
        let mut sink = start(&d, &part);
        for p in pieces {
            sink.put(p).await.ok().unwrap();
        }
        let e = sink.finish().await.err().unwrap();
        let (st, why) = state(&e);
        assert_eq!(st, TransferState::Corrupt);
        assert!(why.contains("truncated"), "{why}");
    }

    #[tokio::test]
    async fn a_failing_write_ends_the_download_naming_the_file() {
        // Writes to /dev/full fail (ENOSPC) as a full disk's do.
        let full = Path::new("/dev/full");
        if !full.exists() {
            quicproquo_testkit::skip::skip(
                "a_failing_write_ends_the_download_naming_the_file",
                "no /dev/full here",
            );
            return;
        }
        let (_, d, pieces) = sample();
        let mut sink = start(&d, full);
        let mut end = None;
        for p in pieces {
            if let Err(e) = sink.put(p).await {
                end = Some(e);
                break;
            }
        }
        let e = match end {
            Some(e) => e,
            None => tokio::time::timeout(Duration::from_secs(10), sink.stopped())
                .await
                .expect("the sink reports a failed write by itself"),
        };
        let (st, why) = state(&e);
        assert_eq!(st, TransferState::Failed);
        assert!(
            why.contains("/dev/full") && why.contains("cannot be written"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn an_abandoned_sink_ends_its_thread_without_finishing() {
        let (_dir, part) = part_file();
        let (_, d, pieces) = sample();
        let mut sink = start(&d, &part);
        sink.put(pieces[0].clone()).await.ok().unwrap();
        // The thread waits for the next piece; abandoning must wake it.
        tokio::time::timeout(Duration::from_secs(10), sink.abandon())
            .await
            .expect("the thread ends when the download is given up");
        // Nothing was checked or synced as a whole file.
        assert!(std::fs::metadata(&part).unwrap().len() < 300_000);
    }
}
