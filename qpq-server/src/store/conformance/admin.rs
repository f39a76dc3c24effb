//! Conformance cases for what the operator does to accounts
//! (`qpq-server admin`): list them a page at a time, disable and enable
//! them, end their sessions, and see whose mailboxes hold the most.

use super::changes::received;
use super::{account, alice_twice_bob_once, key, lives, mail, stored, user, HYBRID};
use crate::store::{AccountSummary, Change, MailboxSize, Store, StoreError};

/// The listing's clock: sessions ending at or before it are not counted.
const NOW: u64 = 5_000;

/// Creates carol (key 3), alice (key 1) and bob (key 2), in that order so
/// the listing's order is not the order of creation.
async fn three_accounts<S: Store>(store: &S) {
    for (name, n) in [("carol", 3), ("alice", 1), ("bob", 2)] {
        store
            .create_account(account(name, key(n)))
            .await
            .expect("account");
    }
}

fn names(page: &[AccountSummary]) -> Vec<&str> {
    page.iter().map(|a| a.username.as_str()).collect()
}

/// `accounts` pages by username and counts what each account holds.
pub async fn case_account_listing<S: Store>(store: &S) {
    assert!(
        store
            .accounts(None, 10, NOW)
            .await
            .expect("list")
            .is_empty(),
        "an empty store lists nobody"
    );
    three_accounts(store).await;
    let alice = user("alice");
    store
        .create_session([1; 32], &alice, NOW + 1)
        .await
        .expect("live session");
    store
        .create_session([2; 32], &alice, NOW)
        .await
        .expect("session ending now");
    store
        .add_key_packages(
            key(1),
            HYBRID,
            lives(vec![vec![1; 8], vec![2; 8]]),
            lives(vec![vec![3; 8]]).pop(),
            0,
        )
        .await
        .expect("key packages");
    stored(store, mail(key(2), 1, &[key(1)], b"four")).await;
    stored(store, mail(key(2), 2, &[key(1)], b"sixsix")).await;

    let first = store.accounts(None, 2, NOW).await.expect("first page");
    assert_eq!(names(&first), ["alice", "bob"], "ordered by username");
    assert_eq!(
        first[0],
        AccountSummary {
            username: alice.clone(),
            identity_key: key(1),
            created_at_ms: 1_000,
            disabled: false,
            sessions: 1,
            mail_count: 2,
            mail_bytes: 10,
            key_packages: 3,
        },
        "one unexpired session, two mails of 4 + 6 bytes, 2 one-time + 1 last-resort package"
    );
    assert_eq!(
        (
            first[1].sessions,
            first[1].mail_count,
            first[1].key_packages
        ),
        (0, 0, 0),
        "bob holds nothing"
    );
    let next = store
        .accounts(Some(user("bob")), 2, NOW)
        .await
        .expect("next page");
    assert_eq!(names(&next), ["carol"], "the page after bob");
    assert!(store
        .accounts(Some(user("carol")), 2, NOW)
        .await
        .expect("last page")
        .is_empty());
}

/// A disabled account keeps everything but its sessions and cannot get a
/// new one until it is enabled again.
pub async fn case_disable_account<S: Store>(store: &S) {
    three_accounts(store).await;
    let alice = user("alice");
    alice_twice_bob_once(store).await;
    stored(store, mail(key(2), 1, &[key(1)], b"waits")).await;

    let mut changes = store.changes();
    assert!(store
        .set_disabled(&alice, true, NOW)
        .await
        .expect("disable"));
    received(&mut changes, &[Change::Account(alice.clone())]).await;
    for token in [[1u8; 32], [2; 32]] {
        assert_eq!(
            store.session(token, 0).await.expect("session"),
            None,
            "disabling ends every session at once"
        );
    }
    assert!(
        store.session([3; 32], 0).await.expect("session").is_some(),
        "other accounts' sessions stay"
    );
    let refused = store.create_session([4; 32], &alice, 10_000).await;
    assert!(
        matches!(refused, Err(StoreError::AccountDisabled)),
        "a disabled account gets no session, got {refused:?}"
    );
    assert_eq!(store.session([4; 32], 0).await.expect("session"), None);
    assert!(
        store.set_disabled(&alice, true, NOW).await.expect("again"),
        "disabling twice is not an error"
    );
    let listed = store.accounts(None, 1, NOW).await.expect("list");
    assert!(listed[0].disabled, "the listing shows it disabled");
    assert_eq!(listed[0].mail_count, 1, "its mail stays");
    assert!(
        store.account(&alice).await.expect("account").is_some(),
        "the account stays"
    );

    assert!(store
        .set_disabled(&alice, false, NOW)
        .await
        .expect("enable"));
    store
        .create_session([5; 32], &alice, 10_000)
        .await
        .expect("an enabled account gets sessions again");
    assert!(store.session([5; 32], 0).await.expect("session").is_some());
    assert!(!store.accounts(None, 1, NOW).await.expect("list")[0].disabled);

    assert!(
        !store
            .set_disabled(&user("nobody"), true, NOW)
            .await
            .expect("unknown"),
        "an unknown account is reported, not created"
    );
}

/// `end_sessions` ends one account's sessions and says how many.
pub async fn case_end_sessions<S: Store>(store: &S) {
    three_accounts(store).await;
    let alice = user("alice");
    alice_twice_bob_once(store).await;

    let mut changes = store.changes();
    assert_eq!(store.end_sessions(&alice).await.expect("end"), 2);
    received(&mut changes, &[Change::Account(alice.clone())]).await;
    assert_eq!(store.session([1; 32], 0).await.expect("session"), None);
    assert_eq!(store.session([2; 32], 0).await.expect("session"), None);
    assert!(store.session([3; 32], 0).await.expect("session").is_some());
    assert_eq!(store.end_sessions(&alice).await.expect("again"), 0);
    assert_eq!(
        store.end_sessions(&user("nobody")).await.expect("unknown"),
        0
    );
    store
        .create_session([4; 32], &alice, 10_000)
        .await
        .expect("logging in again works");
}

/// `mailbox_sizes` lists the fullest mailboxes first, empty ones never.
pub async fn case_mailbox_sizes<S: Store>(store: &S) {
    three_accounts(store).await;
    stored(store, mail(key(9), 1, &[key(1), key(2)], b"twelve bytes")).await;
    stored(store, mail(key(9), 2, &[key(2)], b"1")).await;
    let seqs = stored(store, mail(key(9), 3, &[key(3)], b"gone")).await;
    store.ack(key(3), seqs).await.expect("ack");

    let sizes = store.mailbox_sizes(10).await.expect("sizes");
    let size = |name: &str, mail_count, mail_bytes| MailboxSize {
        username: user(name),
        mail_count,
        mail_bytes,
    };
    assert_eq!(
        sizes,
        [size("bob", 2, 13), size("alice", 1, 12)],
        "biggest first; carol's emptied mailbox is left out"
    );
    assert_eq!(
        store.mailbox_sizes(1).await.expect("top 1"),
        [size("bob", 2, 13)]
    );
}
