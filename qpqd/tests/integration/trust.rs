//! Attacks on trust by an ordinary account (issue 12), each carried out by
//! the test kit's [`Attacker`]: a registered user without a daemon, whose
//! MLS credentials say what it likes. Each test failed on the code before its
//! defence and names what it checks.

use ed25519_dalek::SigningKey;
use quicproquo_daemon::mls::{classify, Incoming};
use quicproquo_daemon::payload::{ConversationInfo, Payload};
use quicproquo_protocol::client::ClientError;
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::ipc::client::Subscription;
use quicproquo_protocol::ipc::error::IpcErrorCode;
use quicproquo_protocol::ipc::notifications::{InvitationUpdate, Notification};
use quicproquo_protocol::ipc::values::{Ciphersuite, InvitationState};
use quicproquo_testkit::agent::eventually;
use quicproquo_testkit::attacker::Attacker;
use quicproquo_testkit::WAIT;

use crate::harness::{Daemon, Server};

/// The one group the server has registered (the DM just opened).
fn only_group_on(srv: &Server) -> [u8; 16] {
    let db = rusqlite::Connection::open(srv.config.database.sqlite_path().unwrap()).unwrap();
    let ids: Vec<Vec<u8>> = db
        .prepare("SELECT group_id FROM groups")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids.len(), 1, "one group so far");
    ids[0].clone().try_into().unwrap()
}

/// The next `invitation` notification.
async fn next_invitation(events: &mut Subscription) -> InvitationUpdate {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Notification::Invitation(i) =
                events.next().await.expect("the subscription stays open")
            {
                return i;
            }
        }
    })
    .await
    .expect("an invitation notification")
}

/// Attack (issue 12, 1): mallory sends alice a Welcome into a two-member
/// "DM" whose creator credential says `bob` but holds mallory's key, with a
/// group id lower than the real DM's, so that alice's daemon would merge it
/// into `@bob` and send there. Defence: the inviter's credential is checked
/// against the directory before anything is pinned or joined; this one is
/// refused and shown, the DM and its verified key are untouched, and what
/// alice writes to `@bob` still reaches bob only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_bob_cannot_take_over_a_verified_dm() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", "hello bob").await.unwrap();
    bob.wait_for("@alice", "hello bob").await;
    let shown = alice.verify("bob", None, None).await.unwrap();
    let compared = bob.verify("alice", None, None).await.unwrap();
    assert_eq!(shown.safety_number, compared.safety_number);
    alice
        .verify("bob", None, Some(&shown.safety_number))
        .await
        .unwrap();
    let real_dm = only_group_on(&srv);
    let real_bob_key = alice
        .member_list("@bob")
        .await
        .into_iter()
        .find(|m| m.username == "bob")
        .unwrap()
        .identity;
    let mut events = alice.client.subscribe(None).await.unwrap();

    let mallory = Attacker::register(&srv, "mallory").await;
    let (kp, alice_key) = mallory.key_package("alice").await;
    let as_bob = Attacker::engine("bob", &mallory.account.signing);
    let forged = Attacker::forge_group(as_bob, &ConversationInfo::Dm, &[kp], |g| {
        g.as_bytes() < &real_dm[..]
    });
    mallory.deliver(alice_key, &forged.welcome).await.unwrap();

    let refused = next_invitation(&mut events).await;
    assert_eq!(refused.state, InvitationState::Refused, "{refused:?}");
    assert_eq!(refused.from, "bob");
    assert!(
        refused.reason.contains("not the key the server lists"),
        "{refused:?}"
    );

    // Nothing moved: bob's key is still the verified one, and @bob is the
    // real DM.
    let members = alice.member_list("@bob").await;
    let bob_there = members.iter().find(|m| m.username == "bob").unwrap();
    assert_eq!(bob_there.identity, real_bob_key);
    assert!(bob_there.verified && !bob_there.key_changed, "{members:?}");
    alice.send("@bob", "for bob only").await.unwrap();
    bob.wait_for("@alice", "for bob only").await;
    let again = alice.verify("bob", None, None).await.unwrap();
    assert!(again.verified && again.matches_directory, "{again:?}");
    assert_eq!(again.safety_number, shown.safety_number);
}

/// Attack (issue 12, 1): mallory (under her own, honest name) invites alice
/// into a group where a second key of hers poses as `bob`, whom alice has
/// verified. Defence: trust is a (name, key) pair — the impostor leaf is
/// shown unverified and changed in the members list, `verify bob --in team`
/// computes the number from the key in that group, says it is not the key
/// the server lists, and refuses to confirm it; the real DM with bob stays
/// verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_member_is_flagged_and_cannot_be_verified() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_open("bob").await.unwrap();
    let shown = alice.verify("bob", None, None).await.unwrap();
    alice
        .verify("bob", None, Some(&shown.safety_number))
        .await
        .unwrap();

    let mallory = Attacker::register(&srv, "mallory").await;
    let fake_bob_key = SigningKey::generate(&mut rand::rngs::OsRng);
    // The key is a real account's (under another name), so the server
    // opens channels to it: a send reaches it.
    quicproquo_testkit::wire::register_with(&mallory.client, "mallory2", fake_bob_key.clone())
        .await;
    let mut fake_bob = Attacker::engine("bob", &fake_bob_key);
    let fake_bob_kp = fake_bob
        .key_packages(quicproquo_daemon::mls::Suite::Hybrid, 1)
        .unwrap()
        .remove(0);
    let (alice_kp, alice_key) = mallory.key_package("alice").await;
    let me = Attacker::engine("mallory", &mallory.account.signing);
    let team = ConversationInfo::Group {
        name: Some("team".into()),
    };
    let forged = Attacker::forge_group(me, &team, &[alice_kp, fake_bob_kp], |_| true);
    mallory.deliver(alice_key, &forged.welcome).await.unwrap();
    alice.wait_for_conversation("team").await;

    let members = alice.member_list("team").await;
    let impostor = members.iter().find(|m| m.username == "bob").unwrap();
    assert!(
        !impostor.verified && impostor.key_changed,
        "the impostor leaf is flagged: {members:?}"
    );
    let in_team = alice.verify("bob", Some("team"), None).await.unwrap();
    assert!(!in_team.matches_directory, "{in_team:?}");
    assert!(!in_team.verified, "{in_team:?}");
    assert_ne!(in_team.safety_number, shown.safety_number);
    let e = alice
        .verify("bob", Some("team"), Some(&in_team.safety_number))
        .await
        .expect_err("the impostor's key cannot be confirmed");
    assert_eq!(e.code(), Some(IpcErrorCode::IdentityChanged), "{e}");
    assert!(
        e.to_string().contains("not the key the server lists"),
        "{e}"
    );

    // Sending there is refused until alice says so; when she does, the
    // message goes to the impostor's key (it is a member) — and looking up
    // its channel pins nothing: bob stays bob.
    let refused = alice
        .send("team", "hello team")
        .await
        .expect_err("a member whose key is not bob's stops the send");
    assert_eq!(
        refused.code(),
        Some(IpcErrorCode::IdentityChanged),
        "{refused}"
    );
    alice
        .client
        .request::<quicproquo_protocol::ipc::methods::method::Send>(
            quicproquo_protocol::ipc::methods::SendParams {
                conversation: "team".parse().unwrap(),
                text: "hello team".into(),
                confirm_changed_keys: true,
                reply_to: None,
            },
        )
        .await
        .unwrap();
    alice.wait_outbox_empty().await;

    // The real DM is still verified, and bob is not "changed" there.
    let dm = alice.member_list("@bob").await;
    let real = dm.iter().find(|m| m.username == "bob").unwrap();
    assert!(real.verified && !real.key_changed, "{dm:?}");
    let still = alice.verify("bob", None, None).await.unwrap();
    assert!(still.verified && still.matches_directory, "{still:?}");
    drop(bob);
}

/// Attack (issue 12, 3): carol, removed from a group, keeps posting with
/// the keys of the epoch before her removal (which members keep for late
/// messages). Defences: the server refuses a group message from someone
/// not a member (E041; issue 14); behind it, a daemon accepts a message
/// from a past epoch only from someone still a member (unit-tested in the
/// inbox; before issue 14 this test saw that drop said in the
/// conversation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_keep_posting() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    let carol = Attacker::register(&srv, "carol").await;
    let mut engine = Attacker::engine("carol", &carol.account.signing);
    carol.publish_key_packages(&mut engine, 2).await;

    alice
        .create_group("team", &["bob", "carol"], Ciphersuite::Hybrid)
        .await;
    let welcome = eventually("carol's Welcome", || async {
        carol
            .take_mail()
            .await
            .into_iter()
            .find(|m| matches!(classify(m), Ok(Incoming::Welcome)))
    })
    .await
    .unwrap();
    let joined = engine.join(&welcome).unwrap();
    bob.wait_for_conversation("team").await;

    alice
        .client
        .request::<quicproquo_protocol::ipc::methods::method::GroupRemove>(
            quicproquo_protocol::ipc::methods::GroupMembersParams {
                conversation: "team".parse().unwrap(),
                members: vec!["carol".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(alice.members("team").await, ["alice", "bob"]);

    // Carol never processes her removal: her engine still has the keys.
    let body = Payload::text(
        quicproquo_daemon::db::Id::random(),
        1,
        "still here after removal",
    )
    .encode();
    let late = engine.encrypt(joined.group, &body).unwrap();
    let refused = quicproquo_testkit::mls::send_to(
        &carol.client,
        &carol.account,
        joined.group.as_bytes(),
        &late,
        None,
        None,
    )
    .await
    .expect_err("a former member's message is refused");
    assert!(
        matches!(&refused, ClientError::Server(e) if e.code == ErrorCode::NotGroupMember),
        "{refused}"
    );
    bob.send("team", "barrier").await.unwrap();
    alice.wait_for("team", "barrier").await;

    let history = alice.history("team").await;
    assert!(
        !history.iter().any(|m| m.text.contains("still here")),
        "{history:?}"
    );
}

/// Attack (issue 12, 6): a DM peer adds a third user to the DM, who then
/// reads what alice believes is private. Defence: a commit that changes a
/// DM's membership is refused (the DM keeps its two members) and the
/// attempt is said in the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_peer_cannot_add_a_third_member() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, carol] = Daemon::registered(root.path(), &srv, ["alice", "carol"]).await;
    let bob = Attacker::register(&srv, "bob").await;
    let mut engine = Attacker::engine("bob", &bob.account.signing);
    bob.publish_key_packages(&mut engine, 2).await;

    alice.dm_open("bob").await.unwrap();
    let welcome = eventually("bob's Welcome", || async {
        bob.take_mail()
            .await
            .into_iter()
            .find(|m| matches!(classify(m), Ok(Incoming::Welcome)))
    })
    .await
    .unwrap();
    let dm = engine.join(&welcome).unwrap().group;

    let (carol_kp, _) = bob.key_package("carol").await;
    let staged = engine.add_members(dm, &[carol_kp]).unwrap();
    engine.merge_pending(dm).unwrap();
    // A valid commit by a member: the server takes it (it does not know
    // who may join a DM); alice's daemon is the one to refuse it.
    quicproquo_testkit::mls::send_to(
        &bob.client,
        &bob.account,
        dm.as_bytes(),
        &staged.commit,
        Some(staged.group_info),
        staged.welcome.as_deref(),
    )
    .await
    .unwrap();

    let notice = eventually("alice hears of the attempt", || async {
        let members = alice.members("@bob").await;
        let history = alice.history("@bob").await;
        let said = history
            .into_iter()
            .find(|m| m.sender.is_empty() && m.text.contains("carol"));
        (members.len() > 2 || said.is_some()).then_some((members, said))
    })
    .await
    .unwrap();
    assert_eq!(notice.0, ["alice", "bob"], "the DM keeps two members");
    let said = notice.1.expect("the attempt is said in the DM");
    assert!(said.text.contains("refused"), "{said:?}");
    drop(carol);
}
