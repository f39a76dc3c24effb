//! Read receipts, typing indicators and disappearing messages (issue 17,
//! items 7 and 8) over real daemons and a real server: what is off is never
//! sent (counted in the recipient's mailbox on the server), and a
//! disappearing message leaves every member's history and search.

use quicproquo_protocol::ipc::methods::{
    method, ConversationSettingsParams, NoParams, ReadParams, TypingParams,
};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{
    Ciphersuite, ConnectionState, ConversationRef, ConversationSettings, DeleteScope, MessageId,
    Seq,
};
use quicproquo_testkit::agent::eventually;

use crate::harness::{next_matching, search, Daemon, Server};

fn team() -> ConversationRef {
    ConversationRef::parse("team").unwrap()
}

/// `conversation.settings` on `team` with what `set` fills in.
async fn settings(
    d: &Daemon,
    set: impl FnOnce(&mut ConversationSettingsParams),
) -> ConversationSettings {
    let mut p = ConversationSettingsParams {
        conversation: team(),
        read_receipts: None,
        typing: None,
        timer_seconds: None,
        notify: None,
        notify_content: None,
    };
    set(&mut p);
    d.client
        .request::<method::ConversationSettingsMethod>(p)
        .await
        .unwrap()
}

async fn typing(d: &Daemon, on: bool) {
    d.client
        .request::<method::Typing>(TypingParams {
            conversation: team(),
            on,
        })
        .await
        .unwrap();
}

/// Waits until `d`'s connection is (`is`) or is not (`!is`) `state`.
async fn wait_connection(d: &Daemon, state: ConnectionState, is: bool) {
    eventually(&format!("{}'s connection state", d.name), || async {
        let s = d
            .client
            .request::<method::Status>(NoParams {})
            .await
            .unwrap();
        ((s.connection == state) == is).then_some(())
    })
    .await
    .unwrap();
}

async fn read_and_type(d: &Daemon) {
    d.client
        .request::<method::Read>(ReadParams {
            conversation: team(),
            up_to: None,
        })
        .await
        .unwrap();
    typing(d, true).await;
}

/// alice makes `team` with bob, and both have a message of the other's.
async fn team_of_two(srv: &Server, root: &std::path::Path) -> [Daemon; 2] {
    let [alice, bob] = Daemon::registered(root, srv, ["alice", "bob"]).await;
    alice
        .create_group("team", &["bob"], Ciphersuite::Hybrid)
        .await;
    alice.send("team", "hello bob").await.unwrap();
    bob.wait_for("team", "hello bob").await;
    bob.send("team", "from bob").await.unwrap();
    alice.wait_for("team", "from bob").await;
    [alice, bob]
}

/// A message sent under a short timer reaches bob, then disappears on both
/// sides: a `delete` of scope `expired`, and neither history nor search
/// has it. Both sides show who set the timer. (5 s: a message still unsent
/// when its timer runs out is removed from the outbox too, and a loaded
/// test machine may take a second or two to send it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disappearing_message_is_gone_from_every_member() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = team_of_two(&srv, root.path()).await;

    let set = settings(&alice, |p| p.timer_seconds = Some(5)).await;
    assert_eq!(set.timer_seconds, 5);
    let notice = "alice set messages to disappear after 5 seconds";
    alice.wait_for("team", notice).await;
    bob.wait_for("team", notice).await;
    assert_eq!(settings(&bob, |_| {}).await.timer_seconds, 5, "shared");

    let mut alice_events = alice.client.subscribe(None).await.unwrap();
    let mut bob_events = bob.client.subscribe(None).await.unwrap();
    let sent = alice.send("team", "ephemeral zebra").await.unwrap();
    assert!(sent.meta.expires_at_ms.is_some(), "{sent:?}");
    let gone = |id: MessageId| {
        move |n: Notification| match n {
            Notification::Delete(d) if d.id == id => Some(d),
            _ => None,
        }
    };
    // Bob had it (a `message`), then lost it (a `delete`).
    let mut arrived = false;
    let deleted = next_matching("bob's copy expires", &mut bob_events, |n| match n {
        Notification::Message(m) if m.message.id == sent.id => {
            assert!(m.message.meta.expires_at_ms.is_some(), "{m:?}");
            arrived = true;
            None
        }
        other => gone(sent.id)(other),
    })
    .await;
    assert!(arrived, "bob received it before it expired");
    assert_eq!(
        (deleted.scope, deleted.by.as_str()),
        (DeleteScope::Expired, "alice")
    );
    let deleted = next_matching("alice's copy expires", &mut alice_events, gone(sent.id)).await;
    assert_eq!(deleted.scope, DeleteScope::Expired);

    for d in [&alice, &bob] {
        let history = d.history("team").await;
        assert!(
            history.iter().all(|m| m.id != sent.id),
            "{}: {history:?}",
            d.name
        );
        assert!(search(d, "zebra").await.is_empty(), "{}", d.name);
        assert_eq!(search(d, "hello").await.len(), 1, "the rest stays");
    }

    // Turned off: the next message stays.
    settings(&bob, |p| p.timer_seconds = Some(0)).await;
    alice
        .wait_for("team", "bob turned off disappearing messages")
        .await;
    let kept = alice.send("team", "this one stays").await.unwrap();
    assert_eq!(kept.meta.expires_at_ms, None);
}

/// Read receipts and typing indicators are off by default and then never
/// sent: with bob away, alice's message is the only thing in his mailbox
/// after she reads and types. Turned on, both go (two more envelopes), and
/// bob, back, sees that alice read his message and was typing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_and_typing_are_sent_only_when_on() {
    let mut srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = team_of_two(&srv, root.path()).await;
    let from_bob = bob.wait_for("team", "from bob").await;
    alice.wait_outbox_empty().await;
    bob.wait_outbox_empty().await;
    eventually("bob's mailbox drains", || async {
        (srv.queued_mail_for("bob") == 0).then_some(())
    })
    .await
    .unwrap();
    bob.stop().await;

    let off = settings(&alice, |_| {}).await;
    assert!(!off.read_receipts && !off.typing, "privacy first: {off:?}");
    alice.send("team", "while bob is away").await.unwrap();
    read_and_type(&alice).await;
    alice.wait_outbox_empty().await;
    assert_eq!(
        srv.queued_mail_for("bob"),
        1,
        "only the message: no read receipt, no typing"
    );

    let on = settings(&alice, |p| {
        p.read_receipts = Some(true);
        p.typing = Some(true);
    })
    .await;
    assert!(on.read_receipts && on.typing);
    read_and_type(&alice).await;
    alice.wait_outbox_empty().await;
    assert_eq!(
        srv.queued_mail_for("bob"),
        3,
        "the message, a read receipt, a typing indicator"
    );
    // Read again with nothing new: no second receipt.
    read_and_type(&alice).await;
    alice.wait_outbox_empty().await;
    assert_eq!(srv.queued_mail_for("bob"), 3, "nothing new was read");

    // Typing is never queued: said while offline, it is dropped, not sent
    // after the reconnect (the `off` would go if online: it does below).
    srv.stop().await;
    wait_connection(&alice, ConnectionState::Online, false).await;
    typing(&alice, false).await;
    srv.start_again().await;
    wait_connection(&alice, ConnectionState::Online, true).await;
    alice.wait_outbox_empty().await;
    assert_eq!(
        srv.queued_mail_for("bob"),
        3,
        "the typing `off` was dropped"
    );
    typing(&alice, false).await;
    assert_eq!(
        srv.queued_mail_for("bob"),
        4,
        "sent now that alice is online"
    );

    bob.start_again().await;
    let mut replay = bob.client.subscribe(Some(Seq(0))).await.unwrap();
    let (mut read, mut typing) = (None, false);
    next_matching("bob sees alice's receipt and typing", &mut replay, |n| {
        match n {
            Notification::Read(r) => read = Some(r),
            Notification::Typing(t) => typing |= t.by == "alice" && t.on,
            _ => {}
        }
        (read.is_some() && typing).then_some(())
    })
    .await;
    let read = read.unwrap();
    assert_eq!((read.by.as_str(), read.up_to), ("alice", from_bob.id));
    let mine = bob.wait_for("team", "from bob").await;
    assert_eq!(mine.meta.read_by, ["alice"], "{mine:?}");
}
