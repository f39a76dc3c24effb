//! The daemon under faults (issue 13): a disk that fills up while mail
//! arrives.

use quicproquo_protocol::ipc::methods::{method, NoParams};
use quicproquo_protocol::ipc::values::StorageState;
use quicproquo_testkit::agent::eventually;

use crate::harness::{Daemon, Server};

/// How many messages arrive while bob's disk is full.
const WHILE_FULL: usize = 5;

/// Bob's disk is full while five DMs arrive (`QPQ_TEST_DISK_FULL`: SQLite's
/// own "database or disk is full" on every write that needs room). They
/// used to be skipped and acknowledged, so they were gone once space was
/// freed. Now the batch is not acknowledged, `status` says storing fails,
/// and after the restart with room every message is there, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_that_cannot_be_stored_is_not_acknowledged() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", "hello").await.unwrap();
    bob.wait_for("@alice", "hello").await;
    alice.wait_outbox_empty().await;
    bob.stop().await;
    assert_eq!(srv.queued_mail(), 0, "nothing waits before the disk fills");

    bob.start_again_with_env(&[("QPQ_TEST_DISK_FULL", "1".into())])
        .await;
    // Each larger than a page, so storing it needs room the file lacks.
    let sent: Vec<String> = (0..WHILE_FULL)
        .map(|i| format!("while full {i} {}", "x".repeat(6000)))
        .collect();
    for text in &sent {
        alice.send("@bob", text).await.unwrap();
    }
    alice.wait_outbox_empty().await;
    // Either bob reports the failure, or (the bug) he acknowledged some of
    // the mail he could not store.
    let status = eventually("bob fetched the mail and failed to store it", || async {
        let st = bob
            .client
            .request::<method::Status>(NoParams {})
            .await
            .ok()?;
        (st.storage == StorageState::Failing || srv.queued_mail() < WHILE_FULL).then_some(st)
    })
    .await
    .unwrap();
    assert!(
        srv.queued_mail() >= WHILE_FULL,
        "the mail stays on the server while it cannot be stored (status: {status:?})"
    );
    assert_eq!(status.storage, StorageState::Failing, "{status:?}");
    assert!(
        status.storage_detail.contains("full"),
        "status says why: {status:?}"
    );

    // Room again.
    bob.restart().await;
    let last = sent.last().unwrap();
    bob.wait_for("@alice", last).await;
    let got: Vec<String> = bob
        .history("@alice")
        .await
        .into_iter()
        .map(|m| m.text)
        .filter(|t| t.starts_with("while full"))
        .collect();
    assert_eq!(got, sent, "every message once, in order");
    let st = bob
        .client
        .request::<method::Status>(NoParams {})
        .await
        .unwrap();
    assert_eq!(st.storage, StorageState::Ok, "{st:?}");
    eventually("bob acknowledged what he stored", || async {
        (srv.queued_mail() == 0).then_some(())
    })
    .await
    .unwrap();
}
