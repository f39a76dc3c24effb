//! Groups made before the server validated groups (issue 14) are not
//! migrated: on first start with state schema 13 the daemon re-creates each
//! active one under a new id with the same members, in the same
//! conversation, and says so there.

use quicproquo_daemon::keystore::{self, OsKeyring};
use quicproquo_daemon::state;
use quicproquo_protocol::ipc::values::Ciphersuite;
use quicproquo_testkit::agent::eventually;

use crate::harness::{Daemon, Server};

const MOVED: &str = "moved to a new group";

/// Puts a stopped daemon's state back to schema 12, as the daemon of
/// before issue 14 left it: the next start runs schema step 13 (and every
/// later step, whose tables go too).
fn back_to_schema_12(d: &Daemon) {
    let dir = d.home.join("data/default");
    let (key, _) = keystore::obtain(&dir, "default", &OsKeyring, Some(&d.passphrase)).unwrap();
    let c = state::open(&dir.join("qpq-state.bin"), &key).unwrap();
    // Every step after 12 undone, newest first: the upgrade runs them all
    // again. A new schema step adds its undo here (the test fails at
    // start-up, "state is locked", when one is missing).
    c.execute_batch(
        "DROP TABLE attachments;
         DROP TABLE read_marks;
         DROP TABLE reactions; DROP TABLE message_edits; DROP TABLE pending_actions;
         DROP TABLE seen_actions;
         DROP TRIGGER messages_fts_update; DROP INDEX messages_expiring;
         DROP INDEX messages_mentioning; DROP TABLE conversation_settings;
         ALTER TABLE messages DROP COLUMN reply_to; ALTER TABLE messages DROP COLUMN reply_sender;
         ALTER TABLE messages DROP COLUMN edited; ALTER TABLE messages DROP COLUMN deleted;
         ALTER TABLE messages DROP COLUMN mentions_me;
         ALTER TABLE messages DROP COLUMN expires_at_ms;
         DROP TABLE deleted_users;
         ALTER TABLE conversations DROP COLUMN legacy;
         PRAGMA user_version = 12;",
    )
    .unwrap();
}

/// A state of schema 12 with a group and a DM: after the upgrade alice (the
/// first username) re-creates both, bob and carol attach the new groups to
/// their conversations, every history stays, the move is said, and the
/// conversations work on the new groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_from_before_validation_are_re_created_in_their_conversations() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [mut alice, mut bob, mut carol] =
        Daemon::registered(root.path(), &srv, ["alice", "bob", "carol"]).await;
    alice
        .create_group("team", &["bob", "carol"], Ciphersuite::Hybrid)
        .await;
    alice.send("team", "before").await.unwrap();
    bob.wait_for("team", "before").await;
    carol.wait_for("team", "before").await;
    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", "dm before").await.unwrap();
    bob.wait_for("@alice", "dm before").await;
    let ids = |convs: Vec<quicproquo_protocol::ipc::values::Conversation>| {
        let mut v: Vec<_> = convs.into_iter().map(|c| (c.name, c.id)).collect();
        v.sort();
        v
    };
    let bob_before = ids(bob.conversations().await);

    for d in [&mut alice, &mut bob, &mut carol] {
        d.stop().await;
        back_to_schema_12(d);
    }
    for d in [&mut bob, &mut carol, &mut alice] {
        d.start_again().await;
    }

    for (d, conv) in [
        (&bob, "team"),
        (&carol, "team"),
        (&bob, "@alice"),
        (&alice, "team"),
    ] {
        eventually("the move is said", || async {
            d.history(conv)
                .await
                .iter()
                .any(|m| m.sender.is_empty() && m.text.contains(MOVED))
                .then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{} sees {conv} moved: {e}", d.name));
    }
    assert_eq!(
        ids(bob.conversations().await),
        bob_before,
        "the same conversations, under the same ids"
    );
    let kept: Vec<String> = bob
        .history("team")
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(kept[0], "before", "{kept:?}");

    alice.send("team", "after").await.unwrap();
    bob.wait_for("team", "after").await;
    carol.wait_for("team", "after").await;
    bob.send("@alice", "dm after").await.unwrap();
    alice.wait_for("@bob", "dm after").await;
}

/// A schema step that fails leaves the daemon locked; every call and
/// `status` say why, instead of asking for an unlock that cannot help (the
/// reason was only in the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_schema_step_is_named_not_called_locked() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [mut alice] = Daemon::registered(root.path(), &srv, ["alice"]).await;
    alice.stop().await;
    {
        let dir = alice.home.join("data/default");
        let (key, _) =
            keystore::obtain(&dir, "default", &OsKeyring, Some(&alice.passphrase)).unwrap();
        let c = state::open(&dir.join("qpq-state.bin"), &key).unwrap();
        // Step 15 runs again over its own columns: "duplicate column name".
        c.execute_batch("PRAGMA user_version = 14;").unwrap();
    }
    alice.start_again().await;
    let status = alice
        .client
        .request::<quicproquo_protocol::ipc::methods::method::Status>(
            quicproquo_protocol::ipc::methods::NoParams {},
        )
        .await
        .unwrap();
    assert!(
        status.connection_detail.contains("duplicate column"),
        "{status:?}"
    );
    let err = alice
        .client
        .request::<quicproquo_protocol::ipc::methods::method::Conversations>(
            quicproquo_protocol::ipc::methods::NoParams {},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("could not be opened") && err.contains("duplicate column"),
        "{err}"
    );
}
