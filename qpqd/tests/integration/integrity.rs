//! The state's integrity across restarts (issue 12, item 7): a damaged
//! write-ahead log, a state put back from an older copy, a tampered counter
//! file — each is detected when the daemon opens its state, reported, and
//! holds sending until the user acknowledges it.

use std::path::{Path, PathBuf};

use quicproquo_protocol::ipc::methods::{method, NoParams, StatusResult};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{ConnectionState, IntegrityState, MembershipEvent};

use crate::harness::{paths_for, Daemon, Server};

/// How many messages bob receives before his state is damaged.
const RECEIVED: usize = 20;

/// The state file's write-ahead log (SQLite names it `<db>-wal`).
fn wal_of(home: &Path) -> PathBuf {
    let mut wal = paths_for(home).state_file.into_os_string();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Flips one bit in the page data of the frame half way through the
/// write-ahead log's current frames (those carrying the header's salt);
/// returns which frame of how many. SQLite checks frames with a running
/// checksum when it opens the log and silently drops the first bad frame
/// and every frame after it.
fn flip_a_bit_in_the_wal(wal: &Path) -> (usize, usize) {
    let mut bytes = std::fs::read(wal).unwrap();
    assert!(bytes.len() > 32, "{} holds no frames", wal.display());
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let page_size = be(8) as usize;
    let salt = (be(16), be(20));
    let frame = 24 + page_size;
    let current = (0..)
        .map(|i| 32 + i * frame)
        .take_while(|at| at + frame <= bytes.len() && (be(at + 8), be(at + 12)) == salt)
        .count();
    assert!(current >= 4, "only {current} frames in the log");
    let victim = current / 2;
    bytes[32 + victim * frame + 24 + 100] ^= 0x10;
    std::fs::write(wal, bytes).unwrap();
    (victim, current)
}

/// Alice sends bob `RECEIVED` messages one by one (a commit each on bob's
/// side); bob has them all.
async fn bob_receives(alice: &Daemon, bob: &Daemon) -> Vec<String> {
    alice.dm_open("bob").await.unwrap();
    let mut sent = Vec::new();
    for i in 0..RECEIVED {
        let text = format!("message {i}");
        alice.send("@bob", &text).await.unwrap();
        bob.wait_for("@alice", &text).await;
        sent.push(text);
    }
    bob.wait_outbox_empty().await;
    sent
}

fn texts(history: Vec<quicproquo_protocol::ipc::values::Message>) -> Vec<String> {
    history.into_iter().map(|m| m.text).collect()
}

async fn status(d: &Daemon) -> StatusResult {
    d.client
        .request::<method::Status>(NoParams {})
        .await
        .expect("status")
}

/// The state files of a daemon's profile (the database and, if any, its
/// write-ahead log and index), copied to `to` or put back from it.
fn copy_state(home: &Path, to: &Path, back: bool) {
    let state = paths_for(home).state_file;
    let dir = state.parent().unwrap();
    let name = state.file_name().unwrap().to_str().unwrap().to_owned();
    for suffix in ["", "-wal", "-shm"] {
        let live = dir.join(format!("{name}{suffix}"));
        let saved = to.join(format!("{name}{suffix}"));
        let (from, into) = if back {
            (&saved, &live)
        } else {
            (&live, &saved)
        };
        let _ = std::fs::remove_file(into);
        if from.exists() {
            std::fs::copy(from, into).unwrap();
        }
    }
}

/// The counter file beside the state.
fn counter_file_of(home: &Path) -> PathBuf {
    let mut f = paths_for(home).state_file.into_os_string();
    f.push(".counter");
    PathBuf::from(f)
}

/// What bob's status says once restarted on a damaged state: the finding,
/// with words for people, and no connection.
fn assert_held(s: &StatusResult, expected: IntegrityState, what: &str) {
    assert_eq!(s.integrity, expected, "{what}: {s:?}");
    assert!(
        s.integrity_detail.contains("acknowledge"),
        "{what}: the user is told what to do: {s:?}"
    );
    assert_ne!(s.connection, ConnectionState::Online, "{what}: held: {s:?}");
}

/// Attack (or a bad disk): one bit of bob's write-ahead log flips while his
/// daemon is down. SQLite drops the damaged frame and every later one, so
/// the state opens as it was several commits ago — mail that was already
/// acknowledged to the server (and deleted there) is gone. Before the fix
/// the state opened with 5 of 20 messages and `status` said nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_the_wal_is_reported_not_silently_rolled_back() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    let sent = bob_receives(&alice, &bob).await;

    bob.kill9().await;
    let (frame, frames) = flip_a_bit_in_the_wal(&wal_of(&bob.home));
    bob.start_again().await;

    let kept = texts(bob.history("@alice").await);
    let what = format!(
        "a bit flipped in frame {frame} of {frames} of the write-ahead log; {} of {} messages kept",
        kept.len(),
        sent.len()
    );
    assert_held(&status(&bob).await, IntegrityState::Rollback, &what);
    // It stays reported across a restart until acknowledged.
    bob.restart().await;
    assert_held(&status(&bob).await, IntegrityState::Rollback, &what);
}

/// Attack: put back an older copy of the state (a backup, or what a thief
/// copied earlier) after the daemon had received more. Detected as a
/// rollback; sending and receiving wait. Acknowledging re-keys the DM (the
/// peer sees the epoch change before anything else from bob), then what
/// bob queued meanwhile goes out, and what was sent to him meanwhile
/// arrives; afterwards restarts are clean again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_copy_put_back_is_a_rollback_and_acknowledging_rekeys_then_sends() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    let saved = tempfile::tempdir().unwrap();
    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", "before the copy").await.unwrap();
    bob.wait_for("@alice", "before the copy").await;
    bob.wait_outbox_empty().await;
    bob.stop().await;
    copy_state(&bob.home, saved.path(), false);
    bob.start_again().await;
    alice.send("@bob", "after the copy").await.unwrap();
    bob.wait_for("@alice", "after the copy").await;
    bob.wait_outbox_empty().await;
    bob.stop().await;
    copy_state(&bob.home, saved.path(), true);
    bob.start_again().await;

    assert_held(&status(&bob).await, IntegrityState::Rollback, "older copy");
    assert_eq!(
        texts(bob.history("@alice").await),
        ["before the copy"],
        "the copy is what opened"
    );
    // Held: a message queues, a call that needs the server says why.
    bob.send("@alice", "written while held").await.unwrap();
    assert_eq!(status(&bob).await.outbox, 1);
    let refused = bob.dm_open("carol").await.unwrap_err();
    assert!(
        refused.to_string().contains("integrity"),
        "a call that needs the server names the hold: {refused}"
    );

    // Alice's mail to him waits on the server meanwhile.
    alice.send("@bob", "sent while bob was held").await.unwrap();
    alice.wait_outbox_empty().await;

    let mut alice_events = alice.client.subscribe(None).await.unwrap();
    let ack = bob
        .client
        .request::<method::IntegrityAcknowledge>(NoParams {})
        .await
        .unwrap();
    assert_eq!(ack.rekeyed, ["@alice"], "{ack:?}");
    assert!(ack.failed.is_empty(), "{ack:?}");
    let s = status(&bob).await;
    assert_eq!(s.integrity, IntegrityState::Ok, "{s:?}");

    // Alice sees bob's re-key first, then the message he queued.
    let mut seen = Vec::new();
    loop {
        let n = tokio::time::timeout(quicproquo_testkit::WAIT, alice_events.next())
            .await
            .expect("alice hears from bob in time")
            .unwrap();
        match n {
            Notification::Membership(m) if m.event == MembershipEvent::Rekeyed => {
                seen.push(format!("rekeyed by {}", m.by))
            }
            Notification::Message(m) if m.message.sender == "bob" => {
                seen.push(m.message.text);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["rekeyed by bob", "written while held"]);
    bob.wait_for("@alice", "sent while bob was held").await;

    bob.restart().await;
    assert_eq!(status(&bob).await.integrity, IntegrityState::Ok);
}

/// Attack: defeat the counter by editing or deleting its file. A flipped
/// bit fails the MAC; a deleted file, once the state has counted commits,
/// is missing. Each is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_deleted_counter_file_is_reported() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    quicproquo_testkit::agent::first_dm(&alice.client, &bob.client, "hello")
        .await
        .unwrap();
    bob.stop().await;

    let counter = counter_file_of(&bob.home);
    let mut bytes = std::fs::read(&counter).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&counter, &bytes).unwrap();
    bob.start_again().await;
    assert_held(
        &status(&bob).await,
        IntegrityState::CounterInvalid,
        "a bit flipped in the counter file",
    );

    bob.stop().await;
    std::fs::remove_file(&counter).unwrap();
    bob.start_again().await;
    assert_held(
        &status(&bob).await,
        IntegrityState::CounterMissing,
        "the counter file deleted",
    );
}

/// A clean restart and a kill -9 raise nothing: the state is as it was
/// written, and the daemon goes online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restarts_and_a_crash_raise_nothing() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    assert_eq!(status(&bob).await.integrity, IntegrityState::Ok, "fresh");
    alice.dm_open("bob").await.unwrap();
    for (i, how) in ["graceful", "kill -9"].into_iter().enumerate() {
        let text = format!("before restart {i}");
        alice.send("@bob", &text).await.unwrap();
        bob.wait_for("@alice", &text).await;
        if i == 0 {
            bob.restart().await;
        } else {
            bob.kill9_and_restart().await;
        }
        let s = status(&bob).await;
        assert_eq!(
            s.integrity,
            IntegrityState::Ok,
            "after a {how} restart: {s:?}"
        );
        assert!(s.integrity_detail.is_empty(), "{s:?}");
        let after = format!("after restart {i}");
        bob.send("@alice", &after).await.unwrap();
        alice.wait_for("@bob", &after).await;
    }
}
