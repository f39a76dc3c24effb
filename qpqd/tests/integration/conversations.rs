//! Groups, DMs, membership changes, restarts and crashes across real daemons.

use quicproquo_testkit::agent::eventually;
use std::collections::HashSet;
use std::time::Duration;

use quicproquo_protocol::ipc::error::IpcErrorCode;
use quicproquo_protocol::ipc::methods::{method, ConversationParams, GroupMembersParams};
use quicproquo_protocol::ipc::values::{Ciphersuite, ConversationKind, ConversationRef};

use crate::harness::{Daemon, Server};

fn conv(s: &str) -> ConversationRef {
    ConversationRef::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_removal_and_rekey() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob, carol] =
        Daemon::registered(root.path(), &srv, ["alice", "bob", "carol"]).await;

    let team = alice
        .create_group("team", &["bob", "carol"], Ciphersuite::Hybrid)
        .await;
    assert_eq!(team.kind, ConversationKind::Group);
    assert_eq!(
        team.ciphersuite,
        Ciphersuite::Hybrid,
        "the plan's M7: post-quantum by default"
    );
    bob.wait_for_conversation("team").await;
    carol.wait_for_conversation("team").await;

    // Messages flow every way.
    alice.send("team", "hello team").await.unwrap();
    bob.wait_for("team", "hello team").await;
    carol.wait_for("team", "hello team").await;
    bob.send("team", "hi from bob").await.unwrap();
    alice.wait_for("team", "hi from bob").await;
    carol.wait_for("team", "hi from bob").await;
    let mut members = bob.members("team").await;
    members.sort();
    assert_eq!(members, ["alice", "bob", "carol"]);

    // carol is removed and reads nothing sent after.
    alice
        .client
        .request::<method::GroupRemove>(GroupMembersParams {
            conversation: conv("team"),
            members: vec!["carol".into()],
        })
        .await
        .unwrap();
    // `members` succeeds (it panics on an error) and is empty: carol's
    // daemon processed the removal; the conversation itself stays.
    eventually("carol sees she was removed", || async {
        carol.members("team").await.is_empty().then_some(())
    })
    .await
    .unwrap();
    assert!(carol.conversations().await.iter().any(|c| c.name == "team"));
    let e = carol.send("team", "am I still here?").await.unwrap_err();
    assert_eq!(e.code(), Some(IpcErrorCode::NotFound), "{e}");
    alice.send("team", "after carol left").await.unwrap();
    bob.wait_for("team", "after carol left").await;
    // A barrier instead of a grace period: alice's DM is stored after the
    // group message (bob already has that one), and carol's daemon reads
    // its mailbox in order, so once the DM is there, anything alice's
    // daemon had sent carol for the group has been handled too.
    alice.dm_open("carol").await.unwrap();
    alice
        .send("@carol", "after the group message")
        .await
        .unwrap();
    carol.wait_for("@alice", "after the group message").await;
    let carols = carol.history("team").await;
    assert!(
        carols.iter().any(|m| m.text == "hello team"),
        "the check reads carol's real conversation"
    );
    assert!(
        !carols.iter().any(|m| m.text == "after carol left"),
        "a removed member must not read later messages"
    );

    // bob re-keys; everyone continues.
    let before = alice
        .client
        .request::<method::GroupRekey>(ConversationParams {
            conversation: conv("team"),
        })
        .await
        .unwrap();
    let after = bob
        .client
        .request::<method::GroupRekey>(ConversationParams {
            conversation: conv("team"),
        })
        .await
        .unwrap();
    assert!(after.epoch > before.epoch);
    bob.send("team", "after rekey").await.unwrap();
    alice.wait_for("team", "after rekey").await;
    alice.send("team", "still here").await.unwrap();
    bob.wait_for("team", "still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_survives_daemon_and_server_restarts() {
    let mut srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;

    let dm = alice.dm_open("bob").await.unwrap();
    assert_eq!(dm.kind, ConversationKind::Dm);
    // Opening it again is the same conversation.
    let again = alice.dm_open("bob").await.unwrap();
    assert_eq!(again.id, dm.id);

    alice.send("@bob", "first").await.unwrap();
    bob.wait_for("@alice", "first").await;

    // bob's daemon restarts: history intact, new mail arrives.
    bob.restart().await;
    assert!(bob
        .history("@alice")
        .await
        .iter()
        .any(|m| m.text == "first"));
    alice.send("@bob", "after bob restarted").await.unwrap();
    bob.wait_for("@alice", "after bob restarted").await;

    // The server goes away; sends are queued, then drained when it is back.
    srv.stop().await;
    let queued = alice
        .send("@bob", "sent while the server was down")
        .await
        .unwrap();
    assert_eq!(
        queued.state,
        quicproquo_protocol::ipc::values::MessageState::Queued
    );
    srv.start_again().await;
    bob.wait_for("@alice", "sent while the server was down")
        .await;
    bob.send("@alice", "and back").await.unwrap();
    alice.wait_for("@bob", "and back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_do_not_fork_the_group() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob, carol] =
        Daemon::registered(root.path(), &srv, ["alice", "bob", "carol"]).await;
    alice
        .create_group("race", &["bob", "carol"], Ciphersuite::Hybrid)
        .await;
    bob.wait_for_conversation("race").await;
    carol.wait_for_conversation("race").await;
    // Let the joiners' own post-join updates settle.
    alice.send("race", "warm up").await.unwrap();
    bob.wait_for("race", "warm up").await;
    carol.wait_for("race", "warm up").await;

    let params = || ConversationParams {
        conversation: conv("race"),
    };
    let (a, b) = tokio::join!(
        alice.client.request::<method::GroupRekey>(params()),
        bob.client.request::<method::GroupRekey>(params())
    );
    a.unwrap();
    b.unwrap();
    // Nobody forked: everyone still reads everyone.
    for (who, text) in [
        (&alice, "a after race"),
        (&bob, "b after race"),
        (&carol, "c after race"),
    ] {
        who.send("race", text).await.unwrap();
    }
    for d in [&alice, &bob, &carol] {
        for text in ["a after race", "b after race", "c after race"] {
            d.wait_for("race", text).await;
        }
    }
}

/// kill -9 while the outbox holds a burst: the server is stopped first so
/// nothing can drain, which makes "queued at the kill" a checked fact
/// instead of a hope about timing. Every send answered before the kill is
/// durable: it arrives once the server is back, exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_and_repeats_nothing() {
    let mut srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [mut alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", "before the stop").await.unwrap();
    bob.wait_for("@alice", "before the stop").await;
    eventually("alice's outbox is empty", || async {
        (outbox(&alice).await == 0).then_some(())
    })
    .await
    .unwrap();

    srv.stop().await;
    let mut answered = Vec::new();
    for i in 0..26 {
        let text = format!("burst {i}");
        alice.send("@bob", &text).await.unwrap();
        answered.push(text);
    }
    assert_eq!(outbox(&alice).await, 26, "the burst is queued at the kill");
    alice.kill9_and_restart().await;
    assert_eq!(outbox(&alice).await, 26, "the outbox survived kill -9");
    srv.start_again().await;
    for i in 26..40 {
        let text = format!("burst {i}");
        alice.send("@bob", &text).await.unwrap();
        answered.push(text);
    }
    for text in &answered {
        bob.wait_for("@alice", text).await;
    }
    let got: Vec<String> = bob
        .history("@alice")
        .await
        .into_iter()
        .map(|m| m.text)
        .filter(|t| t.starts_with("burst "))
        .collect();
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(
        got.len(),
        unique.len(),
        "a message was shown twice: {got:?}"
    );
    assert_eq!(got.len(), answered.len(), "every answered send arrives");
    // Per-sender order is kept.
    assert_eq!(got, answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_resume_after_a_daemon_restart_and_search_and_verify_work() {
    use quicproquo_protocol::ipc::methods::{SearchParams, VerifyParams};
    use quicproquo_protocol::ipc::notifications::Notification;
    use quicproquo_protocol::ipc::values::Limit;

    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_open("bob").await.unwrap();

    // bob's front-end subscribes and sees the first message live.
    let mut sub = bob.client.subscribe(None).await.unwrap();
    alice.send("@bob", "live one").await.unwrap();
    let seen = loop {
        match tokio::time::timeout(Duration::from_secs(15), sub.next())
            .await
            .unwrap()
            .unwrap()
        {
            Notification::Message(m) if m.message.text == "live one" => break m.seq,
            _ => {}
        }
    };
    drop(sub);

    // qpqd restarts; messages arrive while no front-end listens; resuming
    // from the last seen sequence number gives exactly what was missed.
    bob.restart().await;
    for t in ["missed 1", "missed 2"] {
        alice.send("@bob", t).await.unwrap();
        bob.wait_for("@alice", t).await;
    }
    let mut sub = bob.client.subscribe(Some(seen)).await.unwrap();
    let mut texts = Vec::new();
    while texts.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(15), sub.next())
            .await
            .unwrap()
            .unwrap()
        {
            Notification::Message(m) => {
                assert!(m.seq > seen);
                texts.push(m.message.text);
            }
            other => assert!(other.seq() > seen),
        }
    }
    assert_eq!(
        texts,
        ["missed 1", "missed 2"],
        "nothing lost, nothing repeated"
    );

    // Full-text search over the local history.
    let hits = bob
        .client
        .request::<method::Search>(SearchParams {
            query: "missed".into(),
            conversation: None,
            limit: Limit::new(10).unwrap(),
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!(hits.len(), 2);

    // Both sides compute the same safety number.
    let verify = |peer: &str| VerifyParams {
        username: peer.into(),
        confirm: false,
        safety_number: None,
        conversation: None,
    };
    let a = alice
        .client
        .request::<method::Verify>(verify("bob"))
        .await
        .unwrap();
    let b = bob
        .client
        .request::<method::Verify>(verify("alice"))
        .await
        .unwrap();
    assert_eq!(a.safety_number, b.safety_number);
    assert!(!a.key_changed);
    let confirmed = alice
        .client
        .request::<method::Verify>(VerifyParams {
            username: "bob".into(),
            confirm: true,
            safety_number: Some(a.safety_number.clone()),
            conversation: None,
        })
        .await
        .unwrap();
    assert!(confirmed.verified);
    // A confirmation bound to another number (the key changed after the
    // user compared) marks nothing.
    let e = bob
        .client
        .request::<method::Verify>(VerifyParams {
            username: "alice".into(),
            confirm: true,
            safety_number: Some("00000 ".repeat(12)),
            conversation: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(IpcErrorCode::IdentityChanged), "{e}");
    let b = bob
        .client
        .request::<method::Verify>(verify("alice"))
        .await
        .unwrap();
    assert!(!b.verified, "nothing was marked");
}

/// The classic X25519 suite stays selectable per group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_suite_group_works_too() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    let g = alice
        .create_group("old-school", &["bob"], Ciphersuite::Classic)
        .await;
    assert_eq!(g.ciphersuite, Ciphersuite::Classic);
    let seen = bob.wait_for_conversation("old-school").await;
    assert_eq!(seen.ciphersuite, Ciphersuite::Classic);
    alice.send("old-school", "classic hello").await.unwrap();
    bob.wait_for("old-school", "classic hello").await;
}

/// What a conversation is travels in the group context of the Welcome, so
/// the new member's conversation has its kind the moment the `joined`
/// notification arrives (it used to be `group-<hex>` until a separate
/// message came), a DM its name too. A group's name is not in the group
/// context, which the server reads now (issue 14): until the adder's
/// encrypted name arrives, the group is called after its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_know_the_conversation_at_once() {
    use quicproquo_protocol::ipc::notifications::Notification;
    use quicproquo_protocol::ipc::values::MembershipEvent;

    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    let mut sub = bob.client.subscribe(None).await.unwrap();
    alice.dm_open("bob").await.unwrap();
    let team = alice
        .create_group("team ü", &["bob"], Ciphersuite::Classic)
        .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("bob is told he joined")
            .unwrap();
        let Notification::Membership(m) = n else {
            continue;
        };
        if m.event != MembershipEvent::Joined {
            continue;
        }
        assert_eq!(m.by, "alice");
        let conv = bob
            .conversations()
            .await
            .into_iter()
            .find(|c| c.id == m.conversation)
            .expect("the joined conversation is listed");
        seen.push((conv.name, conv.kind, conv.ciphersuite));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            (
                "@alice".to_string(),
                ConversationKind::Dm,
                Ciphersuite::Hybrid
            ),
            (
                "group with alice".to_string(),
                ConversationKind::Group,
                team.ciphersuite
            ),
        ]
    );
    bob.wait_for_conversation("team ü").await;
    // `dm.open` on bob's side now finds that DM instead of making another.
    let dm = bob.dm_open("alice").await.unwrap();
    assert_eq!(dm.name, "@alice");
    assert_eq!(bob.conversations().await.len(), 2);
}

/// Both users open the DM at the same moment: two MLS groups exist for one
/// pair. Both daemons keep one conversation and send on the same group, and
/// nothing sent on either group is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_opened_by_both_at_once_converges() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    let (a, b) = tokio::join!(alice.dm_open("bob"), bob.dm_open("alice"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.name.as_str(), b.name.as_str()), ("@bob", "@alice"));
    // Sent at once too, each on whichever group its side had then.
    let (x, y) = tokio::join!(
        alice.send("@bob", "first from alice"),
        bob.send("@alice", "first from bob")
    );
    x.unwrap();
    y.unwrap();
    bob.wait_for("@alice", "first from alice").await;
    alice.wait_for("@bob", "first from bob").await;
    for (d, peer) in [(&alice, "@bob"), (&bob, "@alice")] {
        let convs = d.conversations().await;
        assert_eq!(
            convs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            [peer],
            "{} has one conversation",
            d.name
        );
    }
    // After both Welcomes, both sides send on the same group: later
    // messages keep arriving in the one conversation.
    alice.send("@bob", "second from alice").await.unwrap();
    bob.send("@alice", "second from bob").await.unwrap();
    bob.wait_for("@alice", "second from alice").await;
    alice.wait_for("@bob", "second from bob").await;
    for d in [&alice, &bob] {
        let peer = if d.name == "alice" { "@bob" } else { "@alice" };
        let mut texts: Vec<String> = d.history(peer).await.into_iter().map(|m| m.text).collect();
        texts.sort();
        assert_eq!(
            texts,
            [
                "first from alice",
                "first from bob",
                "second from alice",
                "second from bob"
            ],
            "{}'s history",
            d.name
        );
    }
}

/// Regression: re-adding a member who was removed failed on their side
/// (the conversation row for that group already existed), so they never
/// rejoined. They rejoin, in a new conversation: the old one keeps its
/// history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_can_be_added_again() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice
        .create_group("team", &["bob"], Ciphersuite::Hybrid)
        .await;
    alice.send("team", "before").await.unwrap();
    bob.wait_for("team", "before").await;
    let bob_in_team = || GroupMembersParams {
        conversation: conv("team"),
        members: vec!["bob".into()],
    };
    for round in 0..2 {
        let remove = alice.client.request::<method::GroupRemove>(bob_in_team());
        remove.await.unwrap();
        eventually("bob sees he was removed", || async {
            bob.members("team").await.is_empty().then_some(())
        })
        .await
        .unwrap();
        assert!(bob.conversations().await.iter().any(|c| c.name == "team"));
        let add = alice.client.request::<method::GroupAdd>(bob_in_team());
        add.await.unwrap();
        let text = format!("after re-add {round}");
        alice.send("team", &text).await.unwrap();
        bob.wait_for("team", &text).await;
    }
    // Each join is a conversation of its own (whoever re-invites bob chose
    // the members; issue 12, 6): the old ones keep their history, inactive,
    // and the name finds the one he is in.
    let convs = bob.conversations().await;
    assert_eq!(convs.len(), 3, "one conversation per join: {convs:?}");
    let texts: Vec<String> = bob
        .history("team")
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["after re-add 1"]);
    let first = convs.iter().min_by_key(|c| c.last_activity_ms).unwrap();
    let kept: Vec<String> = bob
        .history(&first.id.to_string())
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(kept, ["before"], "the first join's history is kept");
    let mut members = bob.members("team").await;
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
}

/// In a DM, the peer's daemon says when it has stored a message: the
/// sender's message goes `sent` → `delivered`, with `delivery`
/// notifications. Groups send no receipts (each would reach every member),
/// so a group message stays `sent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_messages_become_delivered_group_messages_stay_sent() {
    use quicproquo_protocol::ipc::notifications::Notification;
    use quicproquo_protocol::ipc::values::{DeliveryState, MessageState};

    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_open("bob").await.unwrap();
    alice
        .create_group("team", &["bob"], Ciphersuite::Hybrid)
        .await;
    bob.wait_for_conversation("team").await;
    let mut sub = alice.client.subscribe(None).await.unwrap();
    let sent = alice.send("@bob", "are you there").await.unwrap();
    let mut states = Vec::new();
    while !states.contains(&DeliveryState::Delivered) {
        let n = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("a delivery notification")
            .unwrap();
        if let Notification::Delivery(d) = n {
            if d.id == sent.id {
                states.push(d.state);
            }
        }
    }
    assert_eq!(states.last(), Some(&DeliveryState::Delivered));
    let mine = alice.history("@bob").await;
    let m = mine.iter().find(|m| m.id == sent.id).unwrap();
    assert_eq!(m.state, MessageState::Delivered);
    // bob's copy is an ordinary received message; his receipt is no message.
    let theirs = bob.history("@alice").await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].state, MessageState::Received);

    alice.send("team", "to the group").await.unwrap();
    bob.wait_for("team", "to the group").await;
    alice.send("@bob", "after the group one").await.unwrap();
    bob.wait_for("@alice", "after the group one").await;
    let team = alice.history("team").await;
    assert_eq!(team.len(), 1);
    assert_eq!(team[0].state, MessageState::Sent, "no receipts in groups");
}

/// How many messages wait in `d`'s outbox, as `status` reports it.
pub(crate) async fn outbox(d: &Daemon) -> u64 {
    d.client
        .request::<method::Status>(quicproquo_protocol::ipc::methods::NoParams {})
        .await
        .unwrap()
        .outbox
}
