//! Conformance case for the change announcements ([`Store::changes`]): each
//! write that caches or waiters elsewhere must learn of is announced once
//! it committed. A backend may announce through the database (PostgreSQL's
//! `NOTIFY`), so announcements are awaited, with a deadline, and compared as
//! a set: order between different writes is not pinned.

use std::collections::HashSet;
use std::time::Duration;

use quicproquo_protocol::types::Epoch;
use tokio::sync::broadcast;

use super::{account, idem, key, mail, stored, user};
use crate::store::{Change, GroupMail, GroupUpdate, MailQuota, NewGroup, Store};

/// How long an announcement may take to arrive (PostgreSQL: a NOTIFY round
/// trip); far more than it takes, so a miss is a missing announcement.
const DEADLINE: Duration = Duration::from_secs(10);

/// Waits until every change in `expected` was received on `changes`;
/// panics naming the missing ones after [`DEADLINE`].
pub(super) async fn received(changes: &mut broadcast::Receiver<Change>, expected: &[Change]) {
    let mut missing: HashSet<Change> = expected.iter().cloned().collect();
    let waited = tokio::time::timeout(DEADLINE, async {
        while !missing.is_empty() {
            match changes.recv().await {
                Ok(change) => {
                    missing.remove(&change);
                }
                Err(e) => panic!("receiving changes failed: {e}"),
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "changes never announced: {missing:?}");
}

/// Mail, an ended session, an account's changed sessions and a group's new
/// revision are each announced.
pub async fn case_changes<S: Store>(store: &S) {
    let mut changes = store.changes();
    let (alice, bob, carol) = (key(1), key(2), key(3));

    stored(store, mail(alice, 1, &[bob, carol], b"hello")).await;
    received(&mut changes, &[Change::Mail(bob), Change::Mail(carol)]).await;

    store
        .create_account(account("alice", alice))
        .await
        .expect("alice");
    store
        .create_session([7; 32], &user("alice"), 10_000)
        .await
        .expect("session");
    store.delete_session([7; 32]).await.expect("logout");
    received(&mut changes, &[Change::Session([7; 32])]).await;

    store
        .change_password(&user("alice"), b"new".to_vec(), [8; 32])
        .await
        .expect("password");
    received(&mut changes, &[Change::Account(user("alice"))]).await;

    let g = b"group-changes".to_vec();
    store
        .register_group(NewGroup {
            group_id: g.clone(),
            epoch: Epoch(0),
            state: b"state 0".to_vec(),
            group_info: b"info 0".to_vec(),
            now_ms: 1_000,
        })
        .await
        .expect("register");
    store
        .enqueue_group(GroupMail {
            sender: alice,
            idempotency_key: idem(2),
            group_id: g.clone(),
            payload: b"commit".to_vec(),
            recipients: vec![bob],
            welcome: None,
            update: Some(GroupUpdate {
                from_revision: 1,
                epoch: Epoch(1),
                state: b"state 1".to_vec(),
                group_info: Some(b"info 1".to_vec()),
            }),
            now_ms: 2_000,
            quota: MailQuota::UNLIMITED,
        })
        .await
        .expect("commit");
    received(
        &mut changes,
        &[Change::Group { id: g, revision: 2 }, Change::Mail(bob)],
    )
    .await;

    store
        .delete_account(&user("alice"), 3_000)
        .await
        .expect("delete");
    received(&mut changes, &[Change::Account(user("alice"))]).await;
}
