//! Defences the security audit (docs/SECURITY-AUDIT.md) claims, each pinned
//! end to end by a test named after the attack it stops. Each test was
//! checked to fail with its defence removed.

use quicproquo_protocol::ipc::client::Subscription;
use quicproquo_protocol::ipc::error::IpcErrorCode;
use quicproquo_protocol::ipc::methods::{method, GroupCreateParams, GroupMembersParams};
use quicproquo_protocol::ipc::notifications::{ConnectionChange, Notification};
use quicproquo_protocol::ipc::values::{Ciphersuite, ConnectionState, ConversationRef};
use quicproquo_testkit::WAIT;

use crate::harness::{Daemon, Server};

/// Attack: turn a DM into a group behind the peer's back — add a third
/// user to it (who then reads what the peer believes is private), or remove
/// the peer. The defence: `group.add` and `group.remove` refuse a DM
/// (`group_only` in qpqd's commit.rs), and the DM keeps its two members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_cannot_be_grown_into_a_group_or_emptied() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, _bob, _carol] =
        Daemon::registered(root.path(), &srv, ["alice", "bob", "carol"]).await;
    alice.dm_open("bob").await.unwrap();

    let dm = || ConversationRef::parse("@bob").unwrap();
    let add = alice
        .client
        .request::<method::GroupAdd>(GroupMembersParams {
            conversation: dm(),
            members: vec!["carol".into()],
        })
        .await
        .expect_err("adding carol to the DM with bob is refused");
    assert_eq!(add.code(), Some(IpcErrorCode::InvalidInput), "{add}");
    assert!(add.to_string().contains("exactly two members"), "{add}");
    let remove = alice
        .client
        .request::<method::GroupRemove>(GroupMembersParams {
            conversation: dm(),
            members: vec!["bob".into()],
        })
        .await
        .expect_err("removing bob from the DM is refused");
    assert_eq!(remove.code(), Some(IpcErrorCode::InvalidInput), "{remove}");

    assert_eq!(alice.members("@bob").await, ["alice", "bob"]);
}

/// Attack (on oneself, by mistake or by a script): grow a group past what
/// one `enqueue` can reach (1,024 recipients, E031), after which no member
/// can send to it at all. The defence: `group.create` and `group.add`
/// refuse it up front, before any key package is fetched
/// (`check_group_size` in qpqd's commit.rs). Without the check the same
/// calls fail later with "no user" for the made-up names, so the test
/// checks the message, not only the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_cannot_grow_past_what_one_enqueue_reaches() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, _bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    let names = |n: usize| (0..n).map(|i| format!("u{i}")).collect::<Vec<_>>();
    let too_big = |e: &quicproquo_protocol::ipc::client::CallError| {
        e.code() == Some(IpcErrorCode::InvalidInput)
            && e.to_string().contains("at most 1025 members")
    };

    // Alice and 1,025 others: one too many.
    let create = alice
        .client
        .request::<method::GroupCreate>(GroupCreateParams {
            name: "everyone".into(),
            members: names(1025),
            ciphersuite: Ciphersuite::default(),
        })
        .await
        .expect_err("a group of 1,026 is refused");
    assert!(too_big(&create), "{create}");

    // A group of two that works, then 1,024 more: one too many again.
    alice
        .create_group("team", &["bob"], Ciphersuite::default())
        .await;
    let add = alice
        .client
        .request::<method::GroupAdd>(GroupMembersParams {
            conversation: ConversationRef::parse("team").unwrap(),
            members: names(1024),
        })
        .await
        .expect_err("growing the group to 1,026 is refused");
    assert!(too_big(&add), "{add}");
    assert_eq!(alice.members("team").await, ["alice", "bob"]);
}

/// Attack: a server that stops answering, or an impostor at its address
/// (another certificate than the pinned one), hidden from the user behind a
/// plain "reconnecting". The defence: every `connection` notification that
/// is not "online" carries a detail saying why (`connection_events` in
/// qpqd's session.rs, from the link's last error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_impostor_server_is_named_in_the_connection_notification() {
    let mut srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice] = Daemon::registered(root.path(), &srv, ["alice"]).await;
    let mut events = alice.client.subscribe(None).await.unwrap();

    srv.stop().await;
    let lost = next_connection(&mut events, |c| c.state != ConnectionState::Online).await;
    assert!(
        !lost.detail.is_empty(),
        "the first notification after the server went away says why: {lost:?}"
    );

    // Same address, a new self-signed certificate: not the pinned server.
    std::fs::remove_dir_all(srv.config.data_dir.join("tls")).unwrap();
    srv.start_again().await;
    let refused = next_connection(&mut events, |c| {
        c.detail.contains("server certificate changed")
    })
    .await;
    assert_ne!(refused.state, ConnectionState::Online, "{refused:?}");
}

/// The next `connection` notification that `wanted` accepts; fails the test
/// with what came instead if none does within [`WAIT`].
async fn next_connection(
    events: &mut Subscription,
    wanted: impl Fn(&ConnectionChange) -> bool,
) -> ConnectionChange {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if let Notification::Connection(c) = events.next().await.unwrap() {
                if wanted(&c) {
                    return c;
                }
                seen.push(c);
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no such connection notification in {WAIT:?}; saw {seen:?}"))
}
