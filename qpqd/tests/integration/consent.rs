//! Consent (issue 12, 5): nobody puts a user into a group, or opens a first
//! DM with them, without asking — unless `auto_accept` says that inviter
//! needs no asking. The test kit's users accept everyone; these tests set
//! the mode they test.

use quicproquo_protocol::ipc::client::Subscription;
use quicproquo_protocol::ipc::methods::{method, DeclineParams, InvitationParams, NoParams};
use quicproquo_protocol::ipc::notifications::{InvitationUpdate, Notification};
use quicproquo_protocol::ipc::values::{AutoAccept, Ciphersuite, Invitation, InvitationState};
use quicproquo_testkit::agent::{eventually, set_auto_accept};
use quicproquo_testkit::WAIT;

use crate::harness::{Daemon, Server};

async fn invitation(events: &mut Subscription, state: InvitationState) -> InvitationUpdate {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Notification::Invitation(i) = events.next().await.unwrap() {
                if i.state == state {
                    return i;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {state:?} invitation notification"))
}

async fn invites(d: &Daemon) -> Vec<Invitation> {
    d.client
        .request::<method::Invites>(NoParams {})
        .await
        .expect("invites")
}

/// Attack: a stranger puts alice into a group (a spam or phishing room,
/// or one to watch her presence) and she is in it at once. Defence: with
/// the default `contacts`, the Welcome waits as an invitation — nothing
/// joined, nothing shown — and the group's messages wait with it; on
/// `accept` they arrive, in order, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_put_you_into_a_group_without_asking() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    set_auto_accept(&alice.client, AutoAccept::Contacts)
        .await
        .unwrap();
    let mut events = alice.client.subscribe(None).await.unwrap();

    bob.create_group("lobby", &["alice"], Ciphersuite::Hybrid)
        .await;
    for text in ["one", "two", "three"] {
        bob.send("lobby", text).await.unwrap();
    }
    bob.wait_outbox_empty().await;
    let pending = invitation(&mut events, InvitationState::Pending).await;
    // The name travels encrypted after the add (the group context is
    // public): the invitation names the members.
    assert_eq!(
        (pending.from.as_str(), pending.name.as_str()),
        ("bob", "group with bob")
    );

    // The messages were fetched (the server's mailbox drains) and held.
    eventually("alice's mailbox drains", || async {
        (srv.queued_mail() == 0).then_some(())
    })
    .await
    .unwrap();
    assert!(
        !alice
            .conversations()
            .await
            .iter()
            .any(|c| c.name == "lobby"),
        "nothing joined before she says yes"
    );
    let [waiting] = invites(&alice).await.try_into().unwrap();
    assert_eq!(waiting.from, "bob");
    let mut names: Vec<&str> = waiting
        .members
        .iter()
        .map(|m| m.username.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);

    let conv = alice
        .client
        .request::<method::Accept>(InvitationParams { id: waiting.id })
        .await
        .unwrap();
    assert_eq!(conv.name, "lobby");
    let texts: Vec<String> = alice
        .history("lobby")
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["one", "two", "three"], "held mail, in order");
    assert!(invites(&alice).await.is_empty());
    alice.send("lobby", "thanks").await.unwrap();
    bob.wait_for("lobby", "thanks").await;
}

/// Declining tells the group, authenticated by the invitee's leaf: the
/// inviter sees why, and the invitee's leaf is removed; the invitee keeps
/// nothing and hears nothing more from that group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_tells_the_inviter_and_leaves_the_group() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    set_auto_accept(&alice.client, AutoAccept::None)
        .await
        .unwrap();
    bob.create_group("lobby", &["alice"], Ciphersuite::Hybrid)
        .await;
    let waiting = eventually("alice's invitation", || async {
        invites(&alice).await.into_iter().next()
    })
    .await
    .unwrap();

    alice
        .client
        .request::<method::Decline>(DeclineParams {
            id: waiting.id,
            reason: Some("wrong team".into()),
        })
        .await
        .unwrap();
    let told = bob
        .wait_for("lobby", "alice declined the invitation: wrong team")
        .await;
    assert_eq!(told.sender, "", "a notice");
    eventually("bob's daemon removes alice", || async {
        (bob.members("lobby").await == ["bob"]).then_some(())
    })
    .await
    .unwrap();
    assert!(invites(&alice).await.is_empty());
    let again = alice
        .client
        .request::<method::Accept>(InvitationParams { id: waiting.id })
        .await
        .expect_err("a declined invitation cannot be accepted");
    assert!(
        again.to_string().contains("no pending invitation"),
        "{again}"
    );
    bob.send("lobby", "anyone?").await.unwrap();
    bob.wait_outbox_empty().await;
    assert!(!alice
        .conversations()
        .await
        .iter()
        .any(|c| c.name == "lobby"));
}

/// A first DM from someone alice shares no conversation with is a message
/// request; from someone she already shares a group with (that name with
/// that key), it is joined at once under `contacts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_dm_from_a_stranger_is_a_request_from_a_contact_it_is_not() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob, carol] =
        Daemon::registered(root.path(), &srv, ["alice", "bob", "carol"]).await;
    set_auto_accept(&alice.client, AutoAccept::Contacts)
        .await
        .unwrap();
    // alice made the group: its members are her contacts.
    alice
        .create_group("team", &["carol"], Ciphersuite::Hybrid)
        .await;
    carol.wait_for_conversation("team").await;

    carol.dm_open("alice").await.unwrap();
    carol.send("@alice", "hi from carol").await.unwrap();
    alice.wait_for("@carol", "hi from carol").await;

    bob.dm_open("alice").await.unwrap();
    bob.send("@alice", "hi from bob").await.unwrap();
    let request = eventually("bob's message request", || async {
        invites(&alice).await.into_iter().next()
    })
    .await
    .unwrap();
    assert_eq!(
        (request.from.as_str(), request.name.as_str()),
        ("bob", "@bob")
    );
    assert!(!alice.conversations().await.iter().any(|c| c.name == "@bob"));
    alice
        .client
        .request::<method::Accept>(InvitationParams { id: request.id })
        .await
        .unwrap();
    alice.wait_for("@bob", "hi from bob").await;
}
