//! Conformance cases for what a logged-in user changes about their own
//! account: the password (other sessions end) and the account itself
//! (everything the server keeps about it goes; the name stays taken).

use super::{account, fetch_all, key, mail, stored, user};
use crate::store::{Account, Store, StoreError};

/// Creates alice (key 1) and bob (key 2); returns alice.
async fn alice_and_bob<S: Store>(store: &S) -> Account {
    let alice = account("alice", key(1));
    store.create_account(alice.clone()).await.expect("alice");
    store
        .create_account(account("bob", key(2)))
        .await
        .expect("bob");
    alice
}

/// `change_password` replaces the record and ends every session but the one kept.
pub async fn case_change_password<S: Store>(store: &S) {
    let alice = alice_and_bob(store).await;
    super::alice_twice_bob_once(store).await;

    store
        .change_password(&alice.username, b"new record".to_vec(), [1; 32])
        .await
        .expect("change password");

    let now = store.account(&alice.username).await.expect("account");
    assert_eq!(
        now.map(|a| a.opaque_record),
        Some(b"new record".to_vec()),
        "the record is replaced"
    );
    assert!(
        store.session([1; 32], 0).await.expect("session").is_some(),
        "the session that changed the password stays"
    );
    assert_eq!(
        store.session([2; 32], 0).await.expect("session"),
        None,
        "every other session of the account ends"
    );
    assert!(
        store.session([3; 32], 0).await.expect("session").is_some(),
        "other accounts' sessions stay"
    );
}

/// `delete_account` removes the account and all it owns, and retires the name.
pub async fn case_delete_account<S: Store>(store: &S) {
    let alice = alice_and_bob(store).await;
    store
        .create_session([1; 32], &alice.username, 10_000)
        .await
        .expect("session");
    store
        .add_key_packages(
            key(1),
            super::HYBRID,
            vec![super::StoredKeyPackage {
                data: vec![1; 8],
                not_after_ms: 4_000_000_000_000,
            }],
            Some(super::StoredKeyPackage {
                data: vec![2; 8],
                not_after_ms: 4_000_000_000_000,
            }),
            0,
        )
        .await
        .expect("key packages");
    let dm = store
        .create_channel(key(1), key(2), super::channel(9))
        .await
        .expect("channel");
    // One payload for both: deleting alice's copy must keep bob's.
    stored(store, mail(key(3), 1, &[key(1), key(2)], b"to both")).await;

    store
        .delete_account(&alice.username, 20_000)
        .await
        .expect("delete");

    assert_eq!(store.account(&alice.username).await.expect("account"), None);
    assert_eq!(
        store.account_by_identity(&key(1)).await.expect("account"),
        None
    );
    assert_eq!(
        store.session([1; 32], 0).await.expect("session"),
        None,
        "sessions go"
    );
    assert_eq!(
        store
            .take_key_package(key(1), super::HYBRID, 0, super::Take::OneTimeFirst)
            .await
            .expect("take"),
        None,
        "one-time and last-resort key packages go"
    );
    assert_eq!(
        store.channel_members(dm).await.expect("members"),
        None,
        "DM channels go"
    );
    assert!(
        fetch_all(store, key(1)).await.is_empty(),
        "waiting mail goes"
    );
    let bobs = fetch_all(store, key(2)).await;
    assert_eq!(
        super::payloads(&bobs),
        vec![b"to both".as_slice()],
        "a shared payload stays for the other recipients"
    );

    assert!(
        store
            .username_retired(&alice.username)
            .await
            .expect("retired"),
        "a deleted account's name is retired"
    );
    assert!(
        !store.username_retired(&user("bob")).await.expect("retired"),
        "a live account's name is not retired"
    );
    assert!(
        !store
            .username_retired(&user("nobody"))
            .await
            .expect("retired"),
        "a name never registered is not retired"
    );
    let again = store.create_account(account("alice", key(4))).await;
    assert!(
        matches!(again, Err(StoreError::UsernameTaken)),
        "a deleted account's name is never registered again, got {again:?}"
    );
    store
        .delete_account(&user("nobody"), 20_000)
        .await
        .expect("deleting an unknown account is not an error");
}
