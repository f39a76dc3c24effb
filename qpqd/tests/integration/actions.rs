//! Replies, reactions, edits, deletes and mentions (issue 17, items 1–6)
//! over real daemons and a real server: each action one member takes is
//! seen by the other as a notification and in `history`; only a message's
//! sender edits or deletes it (-32013), and a forged edit sent over the
//! wire by a member (an mls-rs user sending the raw payload) changes
//! nothing and is said in the conversation.

use quicproquo_daemon::db::Id;
use quicproquo_daemon::payload::{Action, MessageRef};
use quicproquo_protocol::ipc::client::CallError;
use quicproquo_protocol::ipc::error::IpcErrorCode;
use quicproquo_protocol::ipc::methods::{
    method, DeleteParams, EditParams, MentionsParams, MessageRefParams, ReactParams, SendParams,
};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{
    Ciphersuite, ConversationRef, DeleteScope, Message, MessageId,
};
use quicproquo_testkit::mlsrs::{MlsRsUser, Received};

use crate::harness::{next_matching, search, Daemon, Server};

fn conv(name: &str) -> ConversationRef {
    ConversationRef::parse(name).unwrap()
}

async fn react(d: &Daemon, id: MessageId, emoji: &str) -> Result<Message, CallError> {
    d.client
        .request::<method::React>(ReactParams {
            conversation: conv("team"),
            id,
            emoji: emoji.into(),
            remove: false,
        })
        .await
}

async fn edit(d: &Daemon, id: MessageId, text: &str) -> Result<Message, CallError> {
    d.client
        .request::<method::Edit>(EditParams {
            conversation: conv("team"),
            id,
            text: text.into(),
        })
        .await
}

async fn delete(d: &Daemon, id: MessageId, for_me: bool) -> Result<(), CallError> {
    d.client
        .request::<method::Delete>(DeleteParams {
            conversation: conv("team"),
            id,
            for_me,
        })
        .await
        .map(|_| ())
}

/// `id` in `d`'s history of `team`, once `ready` says it is as expected.
async fn wait_until(d: &Daemon, id: MessageId, ready: impl Fn(&Message) -> bool) -> Message {
    quicproquo_testkit::agent::eventually(&format!("{}: message {id:?}", d.name), || async {
        d.history("team")
            .await
            .into_iter()
            .find(|m| m.id == id && ready(m))
    })
    .await
    .unwrap()
}

/// alice reacts, edits, and deletes; bob replies and is mentioned. Each is
/// a notification on the other side and shows in its history; bob cannot
/// edit or delete alice's message; the deleted text leaves bob's search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_reaches_the_other_member() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice
        .create_group("team", &["bob"], Ciphersuite::Hybrid)
        .await;
    let sent = alice.send("team", "the deploy is done").await.unwrap();
    let got = bob.wait_for("team", "the deploy is done").await;
    assert_eq!(got.id, sent.id, "the same id on both sides");
    let mut bob_events = bob.client.subscribe(None).await.unwrap();
    let mut alice_events = alice.client.subscribe(None).await.unwrap();

    // Reaction.
    let mine = react(&alice, sent.id, "👍").await.unwrap();
    assert_eq!(mine.meta.reactions[0].by, ["alice"]);
    let r = next_matching("the reaction reaches bob", &mut bob_events, |n| match n {
        Notification::Reaction(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(
        (r.id, r.emoji.as_str(), r.by.as_str()),
        (sent.id, "👍", "alice")
    );
    let seen = wait_until(&bob, sent.id, |m| !m.meta.reactions.is_empty()).await;
    assert_eq!(seen.meta.reactions[0].by, ["alice"]);

    // Reply, with a mention.
    let reply = bob
        .client
        .request::<method::Send>(SendParams {
            conversation: conv("team"),
            text: "great, @alice".into(),
            confirm_changed_keys: false,
            reply_to: Some(sent.id),
        })
        .await
        .unwrap();
    assert_eq!(
        reply.meta.reply_to.as_ref().unwrap().excerpt,
        "the deploy is done"
    );
    let quoted = next_matching("the quote reaches alice", &mut alice_events, |n| match n {
        Notification::Message(m) if m.message.id == reply.id => Some(m.message),
        _ => None,
    })
    .await;
    let q = quoted.meta.reply_to.unwrap();
    assert_eq!(
        (q.id, q.sender.as_str(), q.missing),
        (sent.id, "alice", false)
    );
    assert!(quoted.meta.mentions_me);
    let mentions = alice
        .client
        .request::<method::Mentions>(MentionsParams {
            conversation: None,
            before: None,
            limit: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(
        mentions.iter().map(|m| m.id).collect::<Vec<_>>(),
        [reply.id]
    );

    // Bob may not edit or delete alice's message.
    for refused in [
        edit(&bob, sent.id, "mine now").await.map(|_| ()),
        delete(&bob, sent.id, false).await,
    ] {
        assert_eq!(refused.unwrap_err().code(), Some(IpcErrorCode::NotAllowed));
    }

    // Edit.
    let edited = edit(&alice, sent.id, "the deploy is done, twice")
        .await
        .unwrap();
    assert!(edited.meta.edited);
    let e = next_matching("the edit reaches bob", &mut bob_events, |n| match n {
        Notification::Edit(e) => Some(e),
        _ => None,
    })
    .await;
    assert_eq!(
        (e.id, e.text.as_str()),
        (sent.id, "the deploy is done, twice")
    );
    let seen = wait_until(&bob, sent.id, |m| m.meta.edited).await;
    assert_eq!(seen.text, "the deploy is done, twice");
    let versions = bob
        .client
        .request::<method::MessageEdits>(MessageRefParams {
            conversation: conv("team"),
            id: sent.id,
        })
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].text, "the deploy is done");
    assert_eq!(versions[0].timestamp_ms, sent.timestamp_ms);

    // Delete for everyone.
    assert_eq!(search(&bob, "deploy").await.len(), 1);
    delete(&alice, sent.id, false).await.unwrap();
    let d = next_matching("the delete reaches bob", &mut bob_events, |n| match n {
        Notification::Delete(d) => Some(d),
        _ => None,
    })
    .await;
    assert_eq!(
        (d.id, d.scope, d.by.as_str()),
        (sent.id, DeleteScope::Everyone, "alice")
    );
    let gone = wait_until(&bob, sent.id, |m| m.meta.deleted).await;
    assert_eq!(gone.text, "");
    assert!(search(&bob, "deploy").await.is_empty());
    assert!(search(&alice, "deploy").await.is_empty());
    // The reply now quotes a deleted message: no words.
    let reply_now = wait_until(&alice, reply.id, |_| true).await;
    assert_eq!(reply_now.meta.reply_to.unwrap().excerpt, "");

    // Delete for me: gone from bob's history only.
    delete(&bob, reply.id, true).await.unwrap();
    assert!(bob.history("team").await.iter().all(|m| m.id != reply.id));
    assert!(alice.history("team").await.iter().any(|m| m.id == reply.id));
}

/// Attack: a member sends, over the wire, an edit of another member's
/// message (an mls-rs user, who can put any payload in the group). The
/// defence: the daemons apply an edit only from the message's own sender;
/// this one changes nothing and is said in the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_edit_sent_by_a_member_is_ignored_with_a_notice() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, carol] = Daemon::registered(root.path(), &srv, ["alice", "carol"]).await;
    let mut bob = MlsRsUser::register(&srv, "bob").await;
    bob.upload_key_packages(3).await.unwrap();
    alice
        .create_group("team", &["bob", "carol"], Ciphersuite::Classic)
        .await;
    let joined = bob
        .wait_for("the Welcome", |r| matches!(r, Received::Joined { .. }))
        .await
        .unwrap();
    let Received::Joined { group, .. } = joined else {
        unreachable!("matched a join")
    };
    let sent = alice.send("team", "pay invoice 42").await.unwrap();
    bob.wait_for_text(&group, "pay invoice 42").await.unwrap();
    carol.wait_for("team", "pay invoice 42").await;

    let id = Id(sent.id.0);
    for target in [MessageRef::new(id, "alice"), MessageRef::new(id, "bob")] {
        let forged = Action::Edit {
            target,
            text: "pay invoice 43 to bob".into(),
        }
        .payload(Id::random(), 1, "(edited) pay invoice 43 to bob".into());
        bob.send_payload(&group, &forged).await.unwrap();
    }
    bob.send_text(&group, "after the forgery").await.unwrap();
    for d in [&alice, &carol] {
        d.wait_for("team", "after the forgery").await;
        let history = d.history("team").await;
        let original = history.iter().find(|m| m.id == sent.id).unwrap();
        assert_eq!(original.text, "pay invoice 42", "{}", d.name);
        assert!(!original.meta.edited);
        let notices: Vec<&str> = history
            .iter()
            .filter(|m| m.sender.is_empty())
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(
            notices,
            [
                "bob tried to edit a message of alice's; ignored",
                "bob tried to edit a message of alice's; ignored"
            ],
            "{}",
            d.name
        );
    }
}
