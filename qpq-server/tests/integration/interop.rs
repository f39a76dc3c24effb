//! The validating server with an MLS implementation other than openmls
//! (issue 14 item 5): mls-rs users alone, no openmls client, so the
//! server's openmls `PublicGroup` is what reads mls-rs' GroupInfo, commits
//! and proposals. (With qpqd daemons: qpqd's `interop` tests.)

use quicproquo_protocol::errors::ErrorCode;
use quicproquo_testkit::mlsrs::{MlsRsUser, Received};
use quicproquo_testkit::TestServer;

/// An mls-rs group with mls-rs' own 32-byte id is registered, grows,
/// re-keys and shrinks through the server; once removed, a member can
/// neither send nor commit to it.
#[tokio::test]
async fn the_server_follows_an_mls_rs_group() {
    let srv = TestServer::start().await;
    let mut bob = MlsRsUser::register(&srv, "bob").await;
    let mut dave = MlsRsUser::register(&srv, "dave").await;
    dave.upload_key_packages(1).await.unwrap();
    let group: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    bob.create_group(group.clone(), "rs only").await.unwrap();

    bob.add(&group, "dave").await.unwrap();
    bob.send_text(&group, "hi dave").await.unwrap();
    assert_eq!(dave.wait_for_text(&group, "hi dave").await.unwrap(), "bob");
    assert_eq!(dave.name(&group), Some("rs only"));

    dave.update(&group).await.unwrap();
    bob.wait_for(
        "dave's update",
        |r| matches!(r, Received::Commit { from, .. } if from == "dave"),
    )
    .await
    .unwrap();
    assert_eq!(bob.epoch(&group), dave.epoch(&group));
    dave.send_text(&group, "after my update").await.unwrap();
    bob.wait_for_text(&group, "after my update").await.unwrap();

    // dave has not fetched his removal yet: the server knows it.
    bob.remove(&group, "dave").await.unwrap();
    let refused = dave.send_text(&group, "still here?").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotGroupMember), "{refused}");
    let refused = dave.update(&group).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotGroupMember), "{refused}");
    dave.wait_for("his removal", |r| matches!(r, Received::Removed { .. }))
        .await
        .unwrap();
    assert_eq!(bob.members(&group).unwrap(), ["bob"]);
}
