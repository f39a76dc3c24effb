//! The validating delivery service: groups registered with their public
//! state, every commit checked against it, group messages fanned out by the
//! server to the members it knows. Real QUIC, real SQLite, real MLS
//! (openmls members driven by hand, `testkit::mls`).
//!
//! The three attacks of issue 14 each start here as they succeeded on
//! protocol 1 (the freeze by a forged epoch claim, the stall by a commit
//! nobody can process, delivery into a group by a stranger) and are refused.

use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::wire::{Request, Response};
use quicproquo_testkit::mls::{self, Member, CLASSIC, HYBRID};
use quicproquo_testkit::wire;

use crate::harness::{code, TestServer};

pub(crate) fn refused<T: std::fmt::Debug>(
    r: Result<T, quicproquo_protocol::client::ClientError>,
) -> ErrorCode {
    match r {
        Err(quicproquo_protocol::client::ClientError::Server(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// An MLS PublicMessage framing (RFC 9420 §6.2) from the member in leaf 1,
/// with `body` where the content should be.
fn public_framing(group: &[u8], epoch: u64, content_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 1, 0, 1, group.len() as u8];
    m.extend_from_slice(group);
    m.extend_from_slice(&epoch.to_be_bytes());
    m.push(1); // sender type: member
    m.extend_from_slice(&1u32.to_be_bytes());
    m.push(0); // authenticated data
    m.push(content_type);
    m.extend_from_slice(body);
    m
}

/// Alice's group with Bob in it, through the server: registered, Bob added
/// by a checked commit, Bob joined from the Welcome the server delivered.
pub(crate) async fn team(
    srv: &TestServer,
) -> (quicproquo_protocol::client::Client, Member, Member) {
    let client = srv.client().await;
    let mut alice = Member::register(&client, "alice").await;
    let mut bob = Member::register(&client, "bob").await;
    alice.create_group(HYBRID, None);
    alice.register_group(&client).await.unwrap();
    let add = alice.add(&[bob.key_package(HYBRID)]);
    let sent = alice.commit(&client, add).await.unwrap();
    assert_eq!(
        mls::delivered(&sent)
            .iter()
            .map(|m| m.member)
            .collect::<Vec<_>>(),
        vec![bob.account.identity],
        "the Welcome goes to the member added, the commit to nobody else"
    );
    let mail = bob.take_mail(&client).await;
    assert_eq!(mail.len(), 1, "bob gets the Welcome alone");
    bob.join(&mail[0]);
    assert_eq!(bob.epoch(), alice.epoch());
    (client, alice, bob)
}

#[tokio::test]
async fn group_messages_are_checked_and_fanned_out_by_the_server() {
    let srv = TestServer::start().await;
    let (client, mut alice, mut bob) = team(&srv).await;
    let mut carol = Member::register(&client, "carol").await;

    // One upload reaches every other member.
    let add = alice.add(&[carol.key_package(HYBRID)]);
    let sent = alice.commit(&client, add).await.unwrap();
    assert_eq!(mls::delivered(&sent).len(), 2, "{sent:?}");
    assert_eq!(bob.process(&bob.take_mail(&client).await[0]), None);
    carol.join(&carol.take_mail(&client).await[0]);

    let hello = alice.encrypt(b"hello team");
    let sent = alice.send(&client, &hello, None, None).await.unwrap();
    let mut to: Vec<_> = sent.members.iter().map(|m| m.member).collect();
    to.sort_by_key(|k| k.0);
    let mut want = vec![bob.account.identity, carol.account.identity];
    want.sort_by_key(|k| k.0);
    assert_eq!(to, want);
    for m in [&mut bob, &mut carol] {
        let mail = m.take_mail(&client).await;
        assert_eq!(m.process(&mail[0]).as_deref(), Some(&b"hello team"[..]));
    }

    // A member's re-key is checked and reaches the others.
    let update = bob.self_update();
    bob.commit(&client, update).await.unwrap();
    for m in [&mut alice, &mut carol] {
        let mail = m.take_mail(&client).await;
        m.process(&mail[0]);
        assert_eq!(m.epoch(), bob.epoch());
    }
}

/// Attack (audit gap 1): anyone who knows a group id claimed its epoch
/// 2^64 − 1 with a forged "commit"; the server then refused every real
/// commit of the group as stale (E033). Now a stranger is not a member
/// (E041), the per-recipient path takes no group message (E049), and a
/// member's forged epoch is refused as one the group has not reached (E043);
/// real commits go on.
#[tokio::test]
async fn a_forged_epoch_claim_no_longer_freezes_a_group() {
    let srv = TestServer::start().await;
    let (client, mut alice, mut bob) = team(&srv).await;
    let group = alice.group_id();
    let eve = wire::register(&client, "eve").await;

    let forged = wire::mls_framing(&group, u64::MAX, 3, b"forged commit");
    let inner = quicproquo_protocol::padding::unpad(&forged)
        .unwrap()
        .to_vec();
    let as_stranger = mls::send_to(&client, &eve, &group, &inner, None, None).await;
    assert_eq!(refused(as_stranger), ErrorCode::NotGroupMember);
    let claim = client
        .call(&Request::Enqueue {
            auth: eve.session.token.clone(),
            deliveries: Vec::new(),
            payload: forged.clone(),
            idempotency_key: quicproquo_protocol::types::IdempotencyKey(rand::random()),
        })
        .await;
    assert_eq!(code(claim), ErrorCode::WrongGroup);
    let as_member = bob.send(&client, &inner, None, None).await;
    assert_eq!(refused(as_member), ErrorCode::EncryptedHandshake);
    let public = public_framing(&group, u64::MAX, 3, b"forged commit");
    let as_member = bob.send(&client, &public, None, None).await;
    assert_eq!(refused(as_member), ErrorCode::FutureEpoch);

    let update = alice.self_update();
    alice.commit(&client, update).await.unwrap();
    let mail = bob.take_mail(&client).await;
    bob.process(&mail[0]);
    assert_eq!(bob.epoch(), alice.epoch());
}

/// Attack: a commit the members cannot process (garbage at the group's
/// epoch, or a commit altered after it was signed) was accepted and ordered
/// first; every member's own commit then lost the epoch race. Now it is
/// refused (E034 undecodable, E042 invalid) and stores nothing.
#[tokio::test]
async fn a_commit_nobody_can_process_is_refused_and_stalls_nothing() {
    let srv = TestServer::start().await;
    let (client, mut alice, mut bob) = team(&srv).await;
    let group = alice.group_id();
    let epoch = alice.epoch();
    // A PublicMessage framing at the right epoch with a body that is no commit.
    let garbage = public_framing(&group, epoch, 3, &[0x5a; 200]);
    let r = bob
        .send(&client, &garbage, Some(alice.group_info()), None)
        .await;
    assert_eq!(refused(r), ErrorCode::InvalidPayload);
    // Bob's real commit with one byte changed in its middle: it parses, but
    // its signature no longer verifies.
    let update = bob.self_update();
    let mut altered = update.commit.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x01;
    let r = bob
        .send(&client, &altered, Some(update.group_info.clone()), None)
        .await;
    assert_eq!(refused(r), ErrorCode::InvalidCommit);
    bob.discard();
    assert!(
        alice.take_mail(&client).await.is_empty(),
        "nothing was stored"
    );

    // A real commit of the same epoch still wins.
    let update = alice.self_update();
    alice.commit(&client, update).await.unwrap();
    let mail = bob.take_mail(&client).await;
    bob.process(&mail[0]);
    assert_eq!(bob.epoch(), epoch + 1);
}

/// Attack: anyone with a DM channel to a member delivered into any group id
/// the member was in. Group messages now go only through the group, from
/// its members.
#[tokio::test]
async fn a_stranger_cannot_deliver_into_a_group() {
    let srv = TestServer::start().await;
    let (client, alice, bob) = team(&srv).await;
    let group = alice.group_id();
    let eve = wire::register(&client, "eve").await;
    let channel = wire::first_dm(&client, &eve, &bob.account).await;
    let fake = wire::mls_framing(&group, alice.epoch(), 1, b"fake application message");
    let through_channel = client
        .call(&Request::Enqueue {
            auth: eve.session.token.clone(),
            deliveries: vec![quicproquo_protocol::wire::Delivery {
                recipient: bob.account.identity,
                channel: Some(channel),
            }],
            payload: fake.clone(),
            idempotency_key: quicproquo_protocol::types::IdempotencyKey(rand::random()),
        })
        .await;
    assert_eq!(code(through_channel), ErrorCode::WrongGroup);
    let inner = quicproquo_protocol::padding::unpad(&fake).unwrap().to_vec();
    let through_group = mls::send_to(&client, &eve, &group, &inner, None, None).await;
    assert_eq!(refused(through_group), ErrorCode::NotGroupMember);
    assert!(bob.take_mail(&client).await.is_empty());
}

#[tokio::test]
async fn one_commit_per_epoch_wins_and_the_loser_rebases() {
    let srv = TestServer::start().await;
    let (client, mut alice, mut bob) = team(&srv).await;
    let a = alice.self_update();
    let b = bob.self_update();
    alice.commit(&client, a).await.unwrap();
    let lost = bob.commit(&client, b).await;
    assert_eq!(refused(lost), ErrorCode::StaleCommit);
    let mail = bob.take_mail(&client).await;
    bob.process(&mail[0]);
    let again = bob.self_update();
    bob.commit(&client, again).await.unwrap();
    let mail = alice.take_mail(&client).await;
    alice.process(&mail[0]);
    assert_eq!(alice.epoch(), bob.epoch());
}

#[tokio::test]
async fn a_removed_member_hears_of_it_and_can_no_longer_send() {
    let srv = TestServer::start().await;
    let (client, mut alice, mut bob) = team(&srv).await;
    let remove = alice.remove(1);
    let sent = alice.commit(&client, remove).await.unwrap();
    assert_eq!(
        sent.members.iter().map(|m| m.member).collect::<Vec<_>>(),
        vec![bob.account.identity],
        "the removed member gets the commit"
    );
    let mail = bob.take_mail(&client).await;
    bob.process(&mail[0]);
    assert!(!bob.group.as_ref().unwrap().is_active());
    let late = wire::mls_framing(&alice.group_id(), alice.epoch(), 1, b"still here?");
    let inner = quicproquo_protocol::padding::unpad(&late).unwrap().to_vec();
    let r = mls::send_to(&client, &bob.account, &alice.group_id(), &inner, None, None).await;
    assert_eq!(refused(r), ErrorCode::NotGroupMember);
}

#[tokio::test]
async fn a_commit_must_carry_the_new_epochs_group_info() {
    let srv = TestServer::start().await;
    let (client, mut alice, _bob) = team(&srv).await;
    let old_info = alice.group_info();
    let update = alice.self_update();
    let without = alice.send(&client, &update.commit, None, None).await;
    assert_eq!(refused(without), ErrorCode::GroupInfoMismatch);
    let stale = alice
        .send(&client, &update.commit, Some(old_info), None)
        .await;
    assert_eq!(refused(stale), ErrorCode::GroupInfoMismatch);
    let welcome_without_add = alice
        .send(
            &client,
            &update.commit,
            Some(update.group_info.clone()),
            Some(b"\0\x01\0\x03x"),
        )
        .await;
    assert_eq!(refused(welcome_without_add), ErrorCode::GroupInfoMismatch);
    // The refusals left the group as it was: the right GroupInfo works.
    alice.commit(&client, update).await.unwrap();
}

#[tokio::test]
async fn registration_takes_the_creator_alone_and_any_group_id_length() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let mut alice = Member::register(&client, "alice").await;
    let mut mallory = Member::register(&client, "mallory").await;

    // mls-rs' default 32-byte ids, and the classic suite.
    alice.create_group(CLASSIC, Some(&[0x42; 32]));
    alice.register_group(&client).await.unwrap();
    assert_eq!(
        refused(alice.register_group(&client).await),
        ErrorCode::GroupExists
    );
    // Someone else's GroupInfo is not a registration of one's own group.
    mallory.create_group(HYBRID, None);
    let theirs = mallory.group_info();
    let r = client
        .call(&Request::RegisterGroup {
            auth: alice.account.session.token.clone(),
            group_info: theirs,
        })
        .await;
    assert_eq!(code(r), ErrorCode::InvalidGroupInfo);
    let r = client
        .call(&Request::RegisterGroup {
            auth: alice.account.session.token.clone(),
            group_info: b"\0\x01\0\x04not a group info".to_vec(),
        })
        .await;
    assert!(
        matches!(
            code(r),
            ErrorCode::InvalidPayload | ErrorCode::InvalidGroupInfo
        ),
        "garbage is refused"
    );
    // A message to a group the server does not know.
    let unknown = wire::mls_framing(b"no-such-group-01", 0, 1, b"x");
    let inner = quicproquo_protocol::padding::unpad(&unknown)
        .unwrap()
        .to_vec();
    let r = mls::send_to(
        &client,
        &alice.account,
        b"no-such-group-01",
        &inner,
        None,
        None,
    )
    .await;
    assert_eq!(refused(r), ErrorCode::UnknownGroup);
}

#[tokio::test]
async fn a_full_mailbox_fails_that_member_alone() {
    // Small quotas, one sender's share as large as a mailbox: one stranger
    // can fill carol's mailbox for the test.
    let srv = TestServer::start_with(|c| {
        c.quotas.mailbox_bytes = 16 << 20;
        c.quotas.sender_share_bytes = 16 << 20;
    })
    .await;
    let (client, mut alice, mut bob) = team(&srv).await;
    let mut carol = Member::register(&client, "carol").await;
    let add = alice.add(&[carol.key_package(HYBRID)]);
    alice.commit(&client, add).await.unwrap();
    bob.process(&bob.take_mail(&client).await[0]);
    carol.join(&carol.take_mail(&client).await[0]);

    let eve = wire::register(&client, "eve").await;
    wire::fill_mailbox(&client, &eve, carol.account.identity).await;
    let hello = alice.encrypt(b"still delivered");
    let sent = alice.send(&client, &hello, None, None).await.unwrap();
    let carols = sent
        .members
        .iter()
        .find(|m| m.member == carol.account.identity)
        .unwrap();
    assert_eq!(carols.error, Some(ErrorCode::QueueFull));
    let bobs = sent
        .members
        .iter()
        .find(|m| m.member == bob.account.identity)
        .unwrap();
    assert!(bobs.error.is_none() && bobs.seq > 0, "{bobs:?}");
    let mail = bob.take_mail(&client).await;
    assert_eq!(
        bob.process(&mail[0]).as_deref(),
        Some(&b"still delivered"[..])
    );
}

#[tokio::test]
async fn an_older_client_is_told_to_upgrade() {
    let srv = TestServer::start().await;
    let old = quicproquo_protocol::client::Client::connect_with_alpn(
        srv.addr,
        "localhost",
        srv.trust(),
        b"qpq/1",
    )
    .await
    .unwrap();
    assert!(matches!(
        old.call(&Request::Health).await.unwrap(),
        Response::Health { .. }
    ));
    let r = old
        .call(&Request::ResolveUser {
            auth: quicproquo_protocol::types::SessionToken::from_slice(&[1; 32]).unwrap(),
            username: quicproquo_protocol::types::Username::parse("alice").unwrap(),
        })
        .await;
    assert_eq!(code(r), ErrorCode::UpgradeRequired);
}

/// Attack: a leaf whose credential names another user than its key's
/// account (mallory's key, "alice" in the credential) — in a registration
/// or brought in by an add — was stored and passed on; only the daemons
/// caught it. The server refuses it now.
#[tokio::test]
async fn a_leaf_claiming_another_users_name_is_refused() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let _alice = Member::register(&client, "alice").await;
    let mut mallory = Member::register(&client, "mallory").await;
    let mut bob = Member::register(&client, "bob").await;

    mallory.impersonate("alice");
    mallory.create_group(HYBRID, None);
    assert_eq!(
        refused(mallory.register_group(&client).await),
        ErrorCode::InvalidGroupInfo
    );

    bob.create_group(HYBRID, None);
    bob.register_group(&client).await.unwrap();
    let forged = mallory.key_package(HYBRID);
    let add = bob.add(&[forged]);
    assert_eq!(
        refused(bob.commit(&client, add).await),
        ErrorCode::InvalidCommit
    );
    assert!(mallory.take_mail(&client).await.is_empty());
}
