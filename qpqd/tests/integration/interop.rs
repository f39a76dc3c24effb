//! qpqd with another MLS implementation (issue 14 item 5): a user whose
//! MLS is mls-rs (the test kit's `mlsrs`) in groups with qpqd daemons, over
//! a real server — key packages, Welcomes and commits both ways, messages
//! both ways, an mls-rs commit the daemons process, and an mls-rs group
//! with mls-rs' own 32-byte group id.

use quicproquo_daemon::payload::ConversationInfo;
use quicproquo_daemon::payload::Payload;
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::ipc::methods::{method, DeclineParams, GroupMembersParams, NoParams};
use quicproquo_protocol::ipc::values::{AutoAccept, Ciphersuite, ConversationRef};
use quicproquo_testkit::agent::{eventually, set_auto_accept};
use quicproquo_testkit::mlsrs::{MlsRsUser, Received};

use crate::harness::{Daemon, Server};

/// Waits for a commit by `from` in `group` (a daemon re-keys after it
/// joins): what the test does next must not race it.
async fn wait_for_commit(bob: &mut MlsRsUser, group: &[u8], from: &str) {
    bob.wait_for(
        &format!("a commit by {from}"),
        |r| matches!(r, Received::Commit { group: g, from: f, .. } if g == group && f == from),
    )
    .await
    .unwrap();
}

/// Waits for `bob`'s first Welcome: the group, who added him, and the
/// group's conversation info.
async fn wait_for_welcome(bob: &mut MlsRsUser) -> (Vec<u8>, String, Option<ConversationInfo>) {
    let joined = bob
        .wait_for("the Welcome", |r| matches!(r, Received::Joined { .. }))
        .await
        .unwrap();
    match joined {
        Received::Joined {
            group,
            inviter,
            info,
        } => (group, inviter, info),
        _ => unreachable!("matched a join"),
    }
}

/// A qpqd user makes a classic-suite group with the mls-rs user (its key
/// package, its Welcome); they talk both ways; the mls-rs user re-keys
/// (a commit the daemon processes) and adds a qpqd user (its Welcome to a
/// daemon), and all three talk. The server refuses a stale mls-rs commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mls_rs_user_and_qpqd_daemons_share_a_group() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, carol] = Daemon::registered(root.path(), &srv, ["alice", "carol"]).await;
    let mut bob = MlsRsUser::register(&srv, "bob").await;
    assert_eq!(bob.upload_key_packages(3).await.unwrap(), 3);

    // qpqd -> mls-rs: a key package of mls-rs', a Welcome of openmls'.
    alice
        .create_group("mixed", &["bob"], Ciphersuite::Classic)
        .await;
    let (group, inviter, info) = wait_for_welcome(&mut bob).await;
    assert_eq!(inviter, "alice");
    assert_eq!(
        info,
        Some(ConversationInfo::Group { name: None }),
        "the daemon's conversation info reads the same in mls-rs"
    );
    assert_eq!(bob.members(&group).unwrap(), ["alice", "bob"]);
    // The daemon's leaf lists the suites it supports, and no more.
    let mut advertised = bob.suites_of(&group, "alice").unwrap();
    advertised.sort();
    let mut ours: Vec<u16> = Ciphersuite::ALL.iter().map(|s| s.code()).collect();
    ours.sort();
    assert_eq!(advertised, ours, "RFC 9420 §7.2");
    // The name comes encrypted after the add.
    bob.wait_for("the group's name", |r| {
        matches!(
            r,
            Received::Message {
                payload: Payload::GroupName { .. },
                ..
            }
        )
    })
    .await
    .unwrap();
    assert_eq!(bob.name(&group), Some("mixed"));

    // Messages both ways, in the daemon's payload format.
    alice.send("mixed", "hello from openmls").await.unwrap();
    assert_eq!(
        bob.wait_for_text(&group, "hello from openmls")
            .await
            .unwrap(),
        "alice"
    );
    bob.send_text(&group, "hello from mls-rs").await.unwrap();
    let m = alice.wait_for("mixed", "hello from mls-rs").await;
    assert_eq!(m.sender, "bob");

    // An mls-rs commit (an update): the daemon follows it to the new epoch,
    // or it could not read what bob sends there.
    let before = bob.epoch(&group).unwrap();
    bob.update(&group).await.unwrap();
    assert_eq!(bob.epoch(&group), Some(before + 1));
    bob.send_text(&group, "after my update").await.unwrap();
    alice.wait_for("mixed", "after my update").await;
    alice.send("mixed", "read you there").await.unwrap();
    bob.wait_for_text(&group, "read you there").await.unwrap();

    // mls-rs -> qpqd: an add by mls-rs, its Welcome opened by openmls.
    bob.add(&group, "carol").await.unwrap();
    let seen = carol.wait_for_conversation("mixed").await;
    assert_eq!(seen.ciphersuite, Ciphersuite::Classic);
    // carol re-keys once she has joined: wait, so nobody races her commit.
    wait_for_commit(&mut bob, &group, "carol").await;
    assert_eq!(bob.members(&group).unwrap(), ["alice", "bob", "carol"]);
    let mut members = alice.members("mixed").await;
    members.sort();
    assert_eq!(members, ["alice", "bob", "carol"]);

    bob.send_text(&group, "welcome, carol").await.unwrap();
    carol.wait_for("mixed", "welcome, carol").await;
    carol.send("mixed", "thanks, both").await.unwrap();
    bob.wait_for_text(&group, "thanks, both").await.unwrap();
    alice.wait_for("mixed", "thanks, both").await;

    // The server checks mls-rs' commits as any: one on an epoch that has
    // passed (alice removed carol meanwhile) is refused and changes nothing;
    // once bob has caught up, his next one goes through.
    alice
        .client
        .request::<method::GroupRemove>(GroupMembersParams {
            conversation: ConversationRef::parse("mixed").unwrap(),
            members: vec!["carol".into()],
        })
        .await
        .unwrap();
    let stale = bob.epoch(&group).unwrap();
    let refused = bob.update(&group).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::StaleCommit), "{refused}");
    assert_eq!(bob.epoch(&group), Some(stale), "nothing merged");
    bob.wait_for_members(&group, &["alice", "bob"])
        .await
        .unwrap();
    bob.update(&group).await.unwrap();
    bob.send_text(&group, "after the retry").await.unwrap();
    alice.wait_for("mixed", "after the retry").await;
    assert!(
        !bob.received
            .iter()
            .any(|r| matches!(r, Received::Failed { .. })),
        "mls-rs processed everything: {:?}",
        bob.received
    );
}

/// A group mls-rs creates has mls-rs' own 32-byte id: a daemon it adds
/// joins it (the name arrives encrypted after the add) and reads and
/// answers in it. Ids past the protocol's bound are refused out loud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_an_mls_rs_32_byte_id_reaches_qpqd() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [carol] = Daemon::registered(root.path(), &srv, ["carol"]).await;
    let mut bob = MlsRsUser::register(&srv, "bob").await;
    let group: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    // Past the documented bound (256 bytes) the server refuses the group
    // when it is registered, saying why; nothing reaches anyone.
    let refused = bob
        .create_group(vec![7; 257], "too-long")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(ErrorCode::InvalidGroupInfo),
        "{refused}"
    );
    assert!(refused.to_string().contains("1 to 256 bytes"), "{refused}");

    bob.create_group(group.clone(), "rs-made").await.unwrap();
    bob.add(&group, "carol").await.unwrap();
    carol.wait_for_conversation("rs-made").await;
    assert_eq!(carol.members("rs-made").await, ["bob", "carol"]);
    bob.send_text(&group, "a long group id").await.unwrap();
    carol.wait_for("rs-made", "a long group id").await;
    carol.send("rs-made", "fine by me").await.unwrap();
    assert_eq!(
        bob.wait_for_text(&group, "fine by me").await.unwrap(),
        "carol"
    );
}

/// A qpqd user declines an mls-rs user's invitation: the decline notice
/// (an application message) and the leave proposal (a PublicMessage of
/// openmls') reach mls-rs, whose commit of that proposal the server takes
/// and which removes the leaf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qpqd_user_declines_an_mls_rs_invitation() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [carol] = Daemon::registered(root.path(), &srv, ["carol"]).await;
    set_auto_accept(&carol.client, AutoAccept::None)
        .await
        .unwrap();
    let mut bob = MlsRsUser::register(&srv, "bob").await;
    let group: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    bob.create_group(group.clone(), "rs-made").await.unwrap();
    bob.add(&group, "carol").await.unwrap();
    let waiting = eventually("carol's invitation", || async {
        carol
            .client
            .request::<method::Invites>(NoParams {})
            .await
            .unwrap()
            .into_iter()
            .next()
    })
    .await
    .unwrap();
    carol
        .client
        .request::<method::Decline>(DeclineParams {
            id: waiting.id,
            reason: Some("not now".into()),
        })
        .await
        .unwrap();

    let told = bob
        .wait_for("the decline notice", |r| {
            matches!(
                r,
                Received::Message {
                    payload: Payload::Declined { .. },
                    ..
                }
            )
        })
        .await
        .unwrap();
    assert!(
        matches!(&told, Received::Message { from, payload: Payload::Declined { reason }, .. }
            if from == "carol" && reason == "not now"),
        "{told:?}"
    );
    bob.wait_for("carol's leave proposal", |r| {
        matches!(r, Received::Proposal { .. })
    })
    .await
    .unwrap();
    bob.update(&group).await.unwrap();
    assert_eq!(bob.members(&group).unwrap(), ["bob"]);
}

/// Removals both ways: mls-rs removes a qpqd user (the daemon learns it is
/// out); the mls-rs user asks to leave (its proposal) and the qpqd member
/// commits it, which mls-rs reads as its removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_between_mls_rs_and_qpqd() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, carol] = Daemon::registered(root.path(), &srv, ["alice", "carol"]).await;
    let mut bob = MlsRsUser::register(&srv, "bob").await;
    bob.upload_key_packages(1).await.unwrap();
    alice
        .create_group("mixed", &["bob", "carol"], Ciphersuite::Classic)
        .await;
    let (group, _, _) = wait_for_welcome(&mut bob).await;
    carol.wait_for_conversation("mixed").await;
    // Both joiners may re-key; bob sees carol's before he commits.
    wait_for_commit(&mut bob, &group, "carol").await;

    bob.remove(&group, "carol").await.unwrap();
    assert_eq!(bob.members(&group).unwrap(), ["alice", "bob"]);
    eventually("alice's daemon follows the removal", || async {
        let mut m = alice.members("mixed").await;
        m.sort();
        (m == ["alice", "bob"]).then_some(())
    })
    .await
    .unwrap();
    bob.send_text(&group, "just us").await.unwrap();
    alice.wait_for("mixed", "just us").await;

    bob.leave(&group).await.unwrap();
    bob.wait_for(
        "alice commits bob's leaving",
        |r| matches!(r, Received::Removed { group: g } if g == &group),
    )
    .await
    .unwrap();
    eventually("alice's daemon is alone", || async {
        (alice.members("mixed").await == ["alice"]).then_some(())
    })
    .await
    .unwrap();
}

/// Attack: mallory, with her own MLS stack, invites carol into a group
/// under a credential saying "alice" (with mallory's key). Defences: the
/// server refuses the group at registration (the leaf names another user
/// than its key's account, E047), so no Welcome of it ever reaches carol;
/// behind that, carol's daemon refuses such a Welcome and says why
/// (`a_refused_invitation_is_answered_with_the_reason` in the inbox tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mls_rs_impostor_s_group_is_refused_by_the_server() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [carol] = Daemon::registered(root.path(), &srv, ["carol"]).await;
    quicproquo_testkit::wire::register(&srv.client().await, "alice").await;
    let mut mallory = MlsRsUser::register_posing_as(&srv, "mallory", "alice").await;
    let group: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    let refused = mallory
        .create_group(group.clone(), "alice's")
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("InvalidGroupInfo"),
        "{refused:?}"
    );
    assert!(
        !carol
            .conversations()
            .await
            .iter()
            .any(|c| c.name.contains("alice")),
        "carol got nothing of it"
    );
}
