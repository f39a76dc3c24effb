//! The behaviour every [`Store`] backend must show, as plain async functions.
//!
//! Each `case_*` function takes a fresh, empty store and panics with a message
//! naming the broken rule. [`run_all`] runs every case on its own store; a
//! backend's test module calls it with a factory (SQLite: a new temp file per
//! case; PostgreSQL: a new schema). The suite only uses the trait, so a new
//! backend runs it unchanged. It is compiled in normal builds so that tests of
//! other crates or features can reach it; it does nothing unless called.
//!
//! What is deliberately not pinned here: the order of the pair returned by
//! `channel_members`, the exact values of sequence numbers (only that they
//! increase and are never reused), and which error wins when a new account
//! conflicts on both username and identity key.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;

use quicproquo_protocol::limits::{MAX_FETCH_LIMIT, MAX_KEY_PACKAGES_STORED, MAX_QUEUE_DEPTH};
use quicproquo_protocol::types::{ChannelId, Epoch, IdempotencyKey, IdentityKey, Username};
use tokio::task::JoinSet;

mod account_changes;
mod admin;
pub mod blobs;
mod changes;

use super::{
    Account, Delivery, EnqueueOutcome, Expired, GroupEnqueueOutcome, GroupMail, GroupUpdate, Mail,
    MailQuota, NewGroup, NewMail, Purge, Store, StoreError, StoredGroup, StoredKeyPackage, Take,
};

/// Runs every case, each on a store returned by `fresh` (which must be empty).
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    case_server_secret(&fresh().await).await;
    case_accounts(&fresh().await).await;
    case_sessions(&fresh().await).await;
    case_key_packages(&fresh().await).await;
    case_key_packages_per_suite(&fresh().await).await;
    case_key_package_limit(&fresh().await).await;
    case_channels(&fresh().await).await;
    case_enqueue_and_fetch(&fresh().await).await;
    case_idempotency(&fresh().await).await;
    case_groups(&fresh().await).await;
    case_queue_full(&fresh().await).await;
    case_fetch_limit_budget_and_channel(&fresh().await).await;
    case_ack(&fresh().await).await;
    case_purge(&fresh().await).await;
    case_mail_quota(&fresh().await).await;
    case_mail_expiry(&fresh().await).await;
    case_key_package_expiry(&fresh().await).await;
    case_concurrent_enqueues(Arc::new(fresh().await)).await;
    account_changes::case_change_password(&fresh().await).await;
    account_changes::case_delete_account(&fresh().await).await;
    admin::case_account_listing(&fresh().await).await;
    admin::case_disable_account(&fresh().await).await;
    admin::case_end_sessions(&fresh().await).await;
    admin::case_mailbox_sizes(&fresh().await).await;
    changes::case_changes(&fresh().await).await;
}

// ----- helpers ---------------------------------------------------------------

/// A distinct identity key per `n`.
pub fn key(n: u8) -> IdentityKey {
    IdentityKey([n; 32])
}

/// Group "g" registered at epoch 0 with a one-byte state, for backend
/// tests of the group compare-and-swap.
pub fn group_g() -> NewGroup {
    NewGroup {
        group_id: b"g".to_vec(),
        epoch: Epoch(0),
        state: vec![0],
        group_info: vec![0],
        now_ms: 1,
    }
}

fn idem(n: u32) -> IdempotencyKey {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    IdempotencyKey(bytes)
}

fn channel(n: u8) -> ChannelId {
    ChannelId([n; 16])
}

fn user(name: &str) -> Username {
    Username::parse(name).expect("test usernames are valid")
}

fn account(name: &str, identity: IdentityKey) -> Account {
    Account {
        username: user(name),
        identity_key: identity,
        opaque_record: format!("record of {name}").into_bytes(),
        created_at_ms: 1_000,
    }
}

/// Sessions `[1; 32]` and `[2; 32]` of alice and `[3; 32]` of bob, ending
/// at 10 000 (both accounts must exist).
async fn alice_twice_bob_once<S: Store>(store: &S) {
    for (token, name) in [([1u8; 32], "alice"), ([2; 32], "alice"), ([3; 32], "bob")] {
        store
            .create_session(token, &user(name), 10_000)
            .await
            .expect("session");
    }
}

/// One enqueue from `sender` to each of `recipients` on the legacy path.
fn mail(sender: IdentityKey, key: u32, recipients: &[IdentityKey], payload: &[u8]) -> NewMail {
    NewMail {
        sender,
        idempotency_key: idem(key),
        deliveries: recipients
            .iter()
            .map(|&recipient| Delivery {
                recipient,
                channel: None,
            })
            .collect(),
        payload: payload.to_vec(),
        now_ms: 5_000,
        quota: MailQuota::UNLIMITED,
    }
}

/// A purge at `now_ms` that keeps all mail.
fn purge(now_ms: u64, idempotency_before_ms: u64) -> Purge {
    Purge {
        now_ms,
        idempotency_before_ms,
        mail_before_ms: 0,
    }
}

/// The time the key-package cases run at.
const NOW: u64 = 5_000;

/// Key packages that outlive every case.
fn lives(packages: Vec<Vec<u8>>) -> Vec<StoredKeyPackage> {
    packages.into_iter().map(lives_one).collect()
}

fn lives_one(data: Vec<u8>) -> StoredKeyPackage {
    StoredKeyPackage {
        data,
        not_after_ms: u64::MAX >> 1,
    }
}

async fn stored<S: Store>(store: &S, new: NewMail) -> Vec<u64> {
    match store.enqueue(new).await {
        Ok(EnqueueOutcome::Stored { seqs }) => seqs,
        other => panic!("enqueue should have stored the mail, got {other:?}"),
    }
}

async fn fetch_all<S: Store>(store: &S, recipient: IdentityKey) -> Vec<Mail> {
    store
        .fetch(recipient, None, MAX_FETCH_LIMIT, usize::MAX)
        .await
        .expect("fetch")
}

fn payloads(mail: &[Mail]) -> Vec<&[u8]> {
    mail.iter().map(|m| m.payload.as_slice()).collect()
}

fn assert_increasing(mail: &[Mail], what: &str) {
    assert!(
        mail.windows(2).all(|w| w[0].seq < w[1].seq),
        "{what}: fetch must return mail in increasing seq order, got {:?}",
        mail.iter().map(|m| m.seq).collect::<Vec<_>>()
    );
}

// ----- cases -----------------------------------------------------------------

/// `server_secret` stores the first `init` and ignores every later one.
pub async fn case_server_secret<S: Store>(store: &S) {
    let first = store.server_secret("cookie", vec![1; 32]).await;
    assert_eq!(
        first.expect("secret"),
        vec![1; 32],
        "first call stores init"
    );
    let again = store.server_secret("cookie", vec![2; 32]).await;
    assert_eq!(again.expect("secret"), vec![1; 32], "second init ignored");
    let other = store.server_secret("other", vec![3; 16]).await;
    assert_eq!(other.expect("secret"), vec![3; 16], "names are independent");
}

/// Accounts are found by username and by identity key; both are unique.
pub async fn case_accounts<S: Store>(store: &S) {
    let alice = account("alice", key(1));
    store
        .create_account(alice.clone())
        .await
        .expect("create alice");
    assert_eq!(
        store.account(&user("alice")).await.expect("account"),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .account_by_identity(&key(1))
            .await
            .expect("by identity"),
        Some(alice.clone())
    );
    assert_eq!(store.account(&user("bob")).await.expect("account"), None);
    assert_eq!(
        store
            .account_by_identity(&key(2))
            .await
            .expect("by identity"),
        None
    );

    let same_name = store.create_account(account("alice", key(2))).await;
    assert!(
        matches!(same_name, Err(StoreError::UsernameTaken)),
        "same username must be UsernameTaken, got {same_name:?}"
    );
    let same_key = store.create_account(account("bob", key(1))).await;
    assert!(
        matches!(same_key, Err(StoreError::IdentityKeyTaken)),
        "same identity key must be IdentityKeyTaken, got {same_key:?}"
    );
    let both = store.create_account(account("alice", key(1))).await;
    assert!(
        matches!(
            both,
            Err(StoreError::UsernameTaken | StoreError::IdentityKeyTaken)
        ),
        "a double conflict is one of the two errors, got {both:?}"
    );
    assert_eq!(
        store.account(&user("bob")).await.expect("account"),
        None,
        "failed create stores nothing"
    );
    assert_eq!(
        store
            .account_by_identity(&key(2))
            .await
            .expect("by identity"),
        None,
        "failed create stores nothing"
    );
    assert_eq!(
        store.account(&user("alice")).await.expect("account"),
        Some(alice)
    );

    store
        .create_account(account("bob", key(2)))
        .await
        .expect("bob after the failed attempts");
}

/// Sessions resolve to their account until `expires_at_ms` and after deletion not at all.
pub async fn case_sessions<S: Store>(store: &S) {
    let alice = account("alice", key(1));
    store.create_account(alice.clone()).await.expect("alice");
    let token = [7u8; 32];
    store
        .create_session(token, &alice.username, 10_000)
        .await
        .expect("create session");
    assert_eq!(
        store.session(token, 9_999).await.expect("session"),
        Some(alice.clone())
    );
    assert_eq!(
        store.session(token, 10_000).await.expect("session"),
        None,
        "a session is expired at expires_at_ms"
    );
    assert_eq!(
        store.session([8; 32], 0).await.expect("session"),
        None,
        "unknown token"
    );

    store
        .create_session([9; 32], &alice.username, 10_000)
        .await
        .expect("second session");
    store.delete_session(token).await.expect("delete");
    assert_eq!(
        store.session(token, 0).await.expect("session"),
        None,
        "deleted"
    );
    assert_eq!(
        store.session([9; 32], 0).await.expect("session"),
        Some(alice),
        "deleting one session keeps the others"
    );
    store
        .delete_session(token)
        .await
        .expect("deleting an unknown session is not an error");
}

/// One-time packages come out oldest first; the last-resort one is never consumed.
/// The default (hybrid) and the classic MLS ciphersuite codes.
const HYBRID: u16 = 0x004F;
const CLASSIC: u16 = 0x0001;

/// Key packages of one suite are never handed out for another, and each
/// suite has its own last-resort package.
pub async fn case_key_packages_per_suite<S: Store>(store: &S) {
    let owner = IdentityKey([0x51; 32]);
    store
        .add_key_packages(
            owner,
            CLASSIC,
            lives(vec![b"classic-1".to_vec()]),
            Some(lives_one(b"classic-lr".to_vec())),
            NOW,
        )
        .await
        .expect("add classic");
    assert_eq!(
        store
            .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
            .await
            .expect("take"),
        None,
        "a classic package must not be handed out for the hybrid suite"
    );
    store
        .add_key_packages(
            owner,
            HYBRID,
            lives(vec![]),
            Some(lives_one(b"hybrid-lr".to_vec())),
            NOW,
        )
        .await
        .expect("add hybrid last resort");
    assert_eq!(
        store
            .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
            .await
            .expect("take"),
        Some((b"hybrid-lr".to_vec(), true))
    );
    assert_eq!(
        store
            .take_key_package(owner, CLASSIC, NOW, Take::OneTimeFirst)
            .await
            .expect("take"),
        Some((b"classic-1".to_vec(), false))
    );
    assert_eq!(
        store
            .take_key_package(owner, CLASSIC, NOW, Take::OneTimeFirst)
            .await
            .expect("take"),
        Some((b"classic-lr".to_vec(), true))
    );
}

pub async fn case_key_packages<S: Store>(store: &S) {
    let (owner, other) = (key(1), key(2));
    assert_eq!(
        store
            .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
            .await
            .expect("take"),
        None,
        "nothing stored"
    );
    let n = store
        .add_key_packages(
            owner,
            HYBRID,
            lives(vec![b"kp1".to_vec(), b"kp2".to_vec()]),
            Some(lives_one(b"lr1".to_vec())),
            NOW,
        )
        .await;
    assert_eq!(n.expect("add"), 2);
    let n = store
        .add_key_packages(owner, HYBRID, lives(vec![b"kp3".to_vec()]), None, NOW)
        .await;
    assert_eq!(n.expect("add"), 3, "the count includes earlier uploads");

    for expected in [b"kp1", b"kp2", b"kp3"] {
        let taken = store
            .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
            .await
            .expect("take");
        assert_eq!(
            taken,
            Some((expected.to_vec(), false)),
            "oldest one-time package first"
        );
    }
    for _ in 0..2 {
        let taken = store
            .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
            .await
            .expect("take");
        assert_eq!(
            taken,
            Some((b"lr1".to_vec(), true)),
            "last resort, flagged, not removed"
        );
    }
    assert_eq!(
        store
            .take_key_package(other, HYBRID, NOW, Take::OneTimeFirst)
            .await
            .expect("take"),
        None,
        "owners are separate"
    );

    let n = store
        .add_key_packages(
            owner,
            HYBRID,
            lives(vec![]),
            Some(lives_one(b"lr2".to_vec())),
            NOW,
        )
        .await;
    assert_eq!(n.expect("add"), 0, "no one-time packages left");
    let taken = store
        .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
        .await
        .expect("take");
    assert_eq!(taken, Some((b"lr2".to_vec(), true)), "last resort replaced");

    store
        .add_key_packages(owner, HYBRID, lives(vec![b"kp4".to_vec()]), None, NOW)
        .await
        .expect("add");
    let taken = store
        .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
        .await
        .expect("take");
    assert_eq!(
        taken,
        Some((b"kp4".to_vec(), false)),
        "one-time packages before last resort"
    );
    let taken = store
        .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
        .await
        .expect("take");
    assert_eq!(
        taken,
        Some((b"lr2".to_vec(), true)),
        "upload without last resort keeps it"
    );

    store
        .add_key_packages(other, HYBRID, lives(vec![b"only".to_vec()]), None, NOW)
        .await
        .expect("add");
    let taken = store
        .take_key_package(other, HYBRID, NOW, Take::OneTimeFirst)
        .await
        .expect("take");
    assert_eq!(taken, Some((b"only".to_vec(), false)));
    assert_eq!(
        store
            .take_key_package(other, HYBRID, NOW, Take::OneTimeFirst)
            .await
            .expect("take"),
        None,
        "no last resort"
    );
}

/// `MAX_KEY_PACKAGES_STORED` one-time packages fit; one more fails and stores nothing.
pub async fn case_key_package_limit<S: Store>(store: &S) {
    let owner = key(1);
    let max = u32::try_from(MAX_KEY_PACKAGES_STORED).expect("limit fits u32");
    let first: Vec<Vec<u8>> = (0..max - 1).map(|i| i.to_be_bytes().to_vec()).collect();
    let n = store
        .add_key_packages(
            owner,
            HYBRID,
            lives(first),
            Some(lives_one(b"lr1".to_vec())),
            NOW,
        )
        .await;
    assert_eq!(n.expect("add"), max - 1);

    let over = store
        .add_key_packages(
            owner,
            HYBRID,
            lives(vec![b"a".to_vec(), b"b".to_vec()]),
            Some(lives_one(b"lr2".to_vec())),
            NOW,
        )
        .await;
    assert!(
        matches!(over, Err(StoreError::TooManyKeyPackages)),
        "exceeding the limit must fail, got {over:?}"
    );
    let n = store
        .add_key_packages(owner, HYBRID, lives(vec![b"last".to_vec()]), None, NOW)
        .await;
    assert_eq!(
        n.expect("exactly at the limit"),
        max,
        "the failed upload stored nothing"
    );
    let over = store
        .add_key_packages(owner, HYBRID, lives(vec![b"x".to_vec()]), None, NOW)
        .await;
    assert!(
        matches!(over, Err(StoreError::TooManyKeyPackages)),
        "got {over:?}"
    );

    for i in 0..max - 1 {
        let taken = store
            .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
            .await
            .expect("take");
        assert_eq!(
            taken,
            Some((i.to_be_bytes().to_vec(), false)),
            "package {i}"
        );
    }
    let taken = store
        .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
        .await
        .expect("take");
    assert_eq!(taken, Some((b"last".to_vec(), false)));
    let taken = store
        .take_key_package(owner, HYBRID, NOW, Take::OneTimeFirst)
        .await
        .expect("take");
    assert_eq!(
        taken,
        Some((b"lr1".to_vec(), true)),
        "the failed upload did not replace the last resort"
    );
}

/// One channel per unordered pair of identities.
pub async fn case_channels<S: Store>(store: &S) {
    let (a, b, c) = (key(1), key(2), key(3));
    assert_eq!(
        store.channel_members(channel(1)).await.expect("members"),
        None
    );
    let ab = store
        .create_channel(a, b, channel(1))
        .await
        .expect("create");
    assert_eq!(ab, channel(1), "a new pair gets new_id");
    let ba = store
        .create_channel(b, a, channel(2))
        .await
        .expect("create");
    assert_eq!(ba, channel(1), "(b, a) is the same channel as (a, b)");
    let ab_again = store
        .create_channel(a, b, channel(3))
        .await
        .expect("create");
    assert_eq!(ab_again, channel(1));
    let ac = store
        .create_channel(a, c, channel(4))
        .await
        .expect("create");
    assert_eq!(ac, channel(4), "another pair gets its own channel");
    let cb = store
        .create_channel(c, b, channel(5))
        .await
        .expect("create");
    assert_eq!(cb, channel(5));

    let members = store.channel_members(channel(1)).await.expect("members");
    let (x, y) = members.expect("channel 1 exists");
    assert_eq!(
        BTreeSet::from([x, y]),
        BTreeSet::from([a, b]),
        "members of channel 1"
    );
    let (x, y) = store
        .channel_members(channel(5))
        .await
        .expect("members")
        .expect("channel 5 exists");
    assert_eq!(
        BTreeSet::from([x, y]),
        BTreeSet::from([b, c]),
        "members of channel 5"
    );
    for unused in [2, 3] {
        let none = store
            .channel_members(channel(unused))
            .await
            .expect("members");
        assert_eq!(none, None, "new_id of an existing pair is not stored");
    }
}

/// Stored mail is fetched per recipient with its channel, payload and time.
pub async fn case_enqueue_and_fetch<S: Store>(store: &S) {
    let (sender, r1, r2) = (key(1), key(2), key(3));
    assert!(fetch_all(store, r1).await.is_empty(), "empty mailbox");

    let mut first = mail(sender, 1, &[r1, r2], b"hello");
    first.deliveries[1].channel = Some(channel(9));
    let seqs = stored(store, first).await;
    assert_eq!(seqs.len(), 2, "one seq per delivery");
    let seqs2 = stored(store, mail(sender, 2, &[r1], b"again")).await;
    assert_eq!(seqs2.len(), 1);
    let seqs3 = stored(store, mail(sender, 3, &[], b"nobody")).await;
    assert!(seqs3.is_empty(), "no deliveries, no seqs");

    let got = fetch_all(store, r1).await;
    assert_eq!(
        got,
        vec![
            Mail {
                seq: seqs[0],
                channel: None,
                payload: b"hello".to_vec(),
                enqueued_at_ms: 5_000,
                expired: None,
            },
            Mail {
                seq: seqs2[0],
                channel: None,
                payload: b"again".to_vec(),
                enqueued_at_ms: 5_000,
                expired: None,
            },
        ]
    );
    assert_increasing(&got, "r1");
    let got = fetch_all(store, r2).await;
    assert_eq!(
        got,
        vec![Mail {
            seq: seqs[1],
            channel: Some(channel(9)),
            payload: b"hello".to_vec(),
            enqueued_at_ms: 5_000,
            expired: None,
        }]
    );
    assert!(
        fetch_all(store, sender).await.is_empty(),
        "the sender gets nothing"
    );
    assert_eq!(
        fetch_all(store, r1).await.len(),
        2,
        "fetch does not remove mail"
    );

    let twice = stored(store, mail(sender, 4, &[r2, r2], b"dup")).await;
    assert!(
        twice[0] < twice[1],
        "the same recipient twice gets two increasing seqs"
    );
    assert_eq!(fetch_all(store, r2).await.len(), 3);
}

/// A retried `(sender, idempotency_key)` is stored once.
pub async fn case_idempotency<S: Store>(store: &S) {
    let (s1, s2, r) = (key(1), key(2), key(3));
    stored(store, mail(s1, 1, &[r], b"one")).await;
    let retry = store.enqueue(mail(s1, 1, &[r], b"one, retried")).await;
    assert_eq!(retry.expect("retry"), EnqueueOutcome::Duplicate);
    assert_eq!(
        payloads(&fetch_all(store, r).await),
        vec![b"one".as_slice()],
        "stored once"
    );

    stored(store, mail(s2, 1, &[r], b"other sender")).await;
    stored(store, mail(s1, 2, &[r], b"other key")).await;
    assert_eq!(fetch_all(store, r).await.len(), 3, "keys are per sender");
}

/// Groups: registered once; a change applies only at the revision it was
/// made from (one commit per epoch wins), together with its mail, and
/// carries the new GroupInfo; a full mailbox skips that member alone.
pub async fn case_groups<S: Store>(store: &S) {
    let (a, b, c) = (key(1), key(2), key(3));
    let g = b"group-g".to_vec();
    assert_eq!(store.group(g.clone()).await.expect("store"), None);
    let new = NewGroup {
        group_id: g.clone(),
        epoch: Epoch(0),
        state: b"state 0".to_vec(),
        group_info: b"info 0".to_vec(),
        now_ms: 1_000,
    };
    store.register_group(new.clone()).await.expect("store");
    assert!(matches!(
        store.register_group(new).await,
        Err(StoreError::GroupExists)
    ));
    let at = store
        .group(g.clone())
        .await
        .expect("store")
        .expect("the group");
    assert_eq!(
        at,
        StoredGroup {
            revision: 1,
            epoch: Epoch(0),
            state: b"state 0".to_vec()
        }
    );
    assert_eq!(
        store
            .group_info(g.clone())
            .await
            .expect("store")
            .expect("the group"),
        b"info 0"
    );

    let commit = |key: u32, from_revision, payload: &[u8], info: &[u8]| GroupMail {
        sender: a,
        idempotency_key: idem(key),
        group_id: g.clone(),
        payload: payload.to_vec(),
        recipients: vec![b],
        welcome: Some((b"welcome".to_vec(), vec![c])),
        update: Some(GroupUpdate {
            from_revision,
            epoch: Epoch(1),
            state: b"state 1".to_vec(),
            group_info: Some(info.to_vec()),
        }),
        now_ms: 2_000,
        quota: MailQuota::UNLIMITED,
    };
    let first = store
        .enqueue_group(commit(1, 1, b"c1", b"info 1"))
        .await
        .expect("store");
    let GroupEnqueueOutcome::Stored { members } = first else {
        panic!("stored expected, got {first:?}")
    };
    assert_eq!(members.len(), 2, "the commit's recipient and the welcomed");
    assert!(members.iter().all(|(_, seq)| seq.is_some()));
    // The losing commit of the same epoch: nothing of it is stored.
    assert!(matches!(
        store.enqueue_group(commit(2, 1, b"c1'", b"info 1'")).await,
        Err(StoreError::GroupChanged)
    ));
    assert_eq!(payloads(&fetch_all(store, b).await), vec![b"c1".as_slice()]);
    assert_eq!(
        payloads(&fetch_all(store, c).await),
        vec![b"welcome".as_slice()]
    );
    let at = store
        .group(g.clone())
        .await
        .expect("store")
        .expect("the group");
    assert_eq!(
        (at.revision, at.epoch, at.state.as_slice()),
        (2, Epoch(1), b"state 1".as_slice())
    );
    assert_eq!(
        store
            .group_info(g.clone())
            .await
            .expect("store")
            .expect("the group"),
        b"info 1"
    );
    // The refused commit did not use up its idempotency key; a retry of the
    // stored one is a duplicate.
    assert_eq!(
        store
            .enqueue_group(commit(1, 2, b"c1", b"info 1"))
            .await
            .expect("store"),
        GroupEnqueueOutcome::Duplicate
    );

    // An application message changes no state and reaches every recipient
    // with room: a full mailbox is skipped, not fatal.
    let mut fill = mail(a, 100, &[c], b"x");
    for i in 0..MAX_QUEUE_DEPTH as u32 - 1 {
        fill.idempotency_key = idem(1_000 + i);
        stored(store, fill.clone()).await;
    }
    let app = GroupMail {
        sender: a,
        idempotency_key: idem(3),
        group_id: g.clone(),
        payload: b"hello".to_vec(),
        recipients: vec![b, c],
        welcome: None,
        update: None,
        now_ms: 3_000,
        quota: MailQuota::UNLIMITED,
    };
    let GroupEnqueueOutcome::Stored { members } = store.enqueue_group(app).await.expect("store")
    else {
        panic!("stored expected")
    };
    assert!(members[0].1.is_some(), "{members:?}");
    assert_eq!(members[1], (c, None), "the full mailbox is reported");
    assert_eq!(
        store
            .group(g.clone())
            .await
            .expect("store")
            .expect("the group")
            .revision,
        2
    );

    // A message to an unknown group stores nothing.
    let stray = GroupMail {
        group_id: b"nobody".to_vec(),
        idempotency_key: idem(4),
        payload: b"stray".to_vec(),
        recipients: vec![b],
        welcome: None,
        update: None,
        sender: a,
        now_ms: 3_000,
        quota: MailQuota::UNLIMITED,
    };
    assert!(matches!(
        store.enqueue_group(stray).await,
        Err(StoreError::GroupChanged)
    ));

    // Idle groups go; used ones stay.
    store
        .register_group(NewGroup {
            group_id: b"idle".to_vec(),
            epoch: Epoch(0),
            state: vec![1],
            group_info: vec![2],
            now_ms: 500,
        })
        .await
        .expect("store");
    assert_eq!(store.purge_idle_groups(1_000).await.expect("store"), 1);
    assert_eq!(store.group(b"idle".to_vec()).await.expect("store"), None);
    assert!(store.group(g).await.expect("store").is_some());
}

/// A full mailbox refuses the whole enqueue, for every recipient.
pub async fn case_queue_full<S: Store>(store: &S) {
    let (sender, full, other) = (key(1), key(2), key(3));
    let mut fill = mail(sender, 1, &[], b"x");
    fill.deliveries = vec![
        Delivery {
            recipient: full,
            channel: None
        };
        MAX_QUEUE_DEPTH
    ];
    assert_eq!(
        stored(store, fill).await.len(),
        MAX_QUEUE_DEPTH,
        "exactly at the limit"
    );

    let refused = store.enqueue(mail(sender, 2, &[other, full], b"y")).await;
    match refused {
        Err(StoreError::QueueFull(who)) => assert_eq!(who, full, "names the full mailbox"),
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert!(
        fetch_all(store, other).await.is_empty(),
        "nothing is stored for the other recipients"
    );

    let first = store.fetch(full, None, 1, usize::MAX).await.expect("fetch");
    let acked = store.ack(full, vec![first[0].seq]).await.expect("ack");
    assert_eq!(acked, 1);
    // The refused enqueue did not consume its idempotency key.
    stored(store, mail(sender, 2, &[other, full], b"y")).await;
    let refused = store.enqueue(mail(sender, 3, &[full], b"z")).await;
    assert!(
        matches!(refused, Err(StoreError::QueueFull(_))),
        "got {refused:?}"
    );
    assert_eq!(
        payloads(&fetch_all(store, other).await),
        vec![b"y".as_slice()]
    );
}

/// `fetch` honours `limit`, the byte budget and the channel filter.
pub async fn case_fetch_limit_budget_and_channel<S: Store>(store: &S) {
    let (sender, r) = (key(1), key(2));
    let on = |n: u32, ch: Option<ChannelId>| {
        let mut m = mail(sender, n, &[r], &[u8::try_from(n).unwrap_or(0); 10]);
        m.deliveries[0].channel = ch;
        m
    };
    for (n, ch) in [
        (1, Some(channel(1))),
        (2, None),
        (3, Some(channel(2))),
        (4, Some(channel(1))),
        (5, Some(channel(1))),
    ] {
        stored(store, on(n, ch)).await;
    }
    let first_bytes = |m: &[Mail]| m.iter().map(|m| m.payload[0]).collect::<Vec<_>>();

    let all = fetch_all(store, r).await;
    assert_eq!(
        first_bytes(&all),
        vec![1, 2, 3, 4, 5],
        "all mail, in enqueue order"
    );
    assert_increasing(&all, "all");

    let fetch = |channel, limit, budget| store.fetch(r, channel, limit, budget);
    assert_eq!(
        first_bytes(&fetch(None, 2, usize::MAX).await.expect("fetch")),
        vec![1, 2],
        "limit"
    );
    assert!(
        fetch(None, 0, usize::MAX).await.expect("fetch").is_empty(),
        "limit 0"
    );
    assert_eq!(
        first_bytes(&fetch(None, 10, 20).await.expect("fetch")),
        vec![1, 2],
        "a budget of exactly two payloads"
    );
    assert_eq!(
        first_bytes(&fetch(None, 10, 29).await.expect("fetch")),
        vec![1, 2],
        "no message that would exceed the budget"
    );
    assert_eq!(
        first_bytes(&fetch(None, 10, 5).await.expect("fetch")),
        vec![1],
        "the first message even if it alone exceeds the budget"
    );
    assert_eq!(
        first_bytes(&fetch(None, 10, 0).await.expect("fetch")),
        vec![1]
    );

    let ch1 = fetch(Some(channel(1)), 10, usize::MAX)
        .await
        .expect("fetch");
    assert_eq!(first_bytes(&ch1), vec![1, 4, 5], "only channel 1");
    assert!(ch1.iter().all(|m| m.channel == Some(channel(1))));
    assert_eq!(
        first_bytes(&fetch(Some(channel(1)), 2, usize::MAX).await.expect("fetch")),
        vec![1, 4]
    );
    assert_eq!(
        first_bytes(&fetch(Some(channel(1)), 10, 15).await.expect("fetch")),
        vec![1]
    );
    assert_eq!(
        first_bytes(
            &fetch(Some(channel(2)), 10, usize::MAX)
                .await
                .expect("fetch")
        ),
        vec![3]
    );
    assert!(fetch(Some(channel(3)), 10, usize::MAX)
        .await
        .expect("fetch")
        .is_empty());
}

/// `ack` deletes only the caller's mail, tolerates retries, and seqs are never reused.
pub async fn case_ack<S: Store>(store: &S) {
    let (sender, r1, r2) = (key(1), key(2), key(3));
    let a = stored(store, mail(sender, 1, &[r1, r2], b"a")).await;
    let b = stored(store, mail(sender, 2, &[r1, r2], b"b")).await;
    let c = stored(store, mail(sender, 3, &[r1], b"c")).await;

    let r1_seqs = [a[0], b[0], c[0]];
    let r2_seqs = [a[1], b[1]];
    let foreign: Vec<u64> = r1_seqs
        .iter()
        .copied()
        .filter(|s| !r2_seqs.contains(s))
        .collect();
    assert!(!foreign.is_empty(), "r1 has seqs r2 does not have");
    assert_eq!(
        store.ack(r2, foreign).await.expect("ack"),
        0,
        "r2 cannot ack r1's mail"
    );
    assert_eq!(fetch_all(store, r1).await.len(), 3, "r1's mail untouched");

    let removed = store
        .ack(r1, vec![a[0], c[0], u64::MAX, 0])
        .await
        .expect("ack");
    assert_eq!(removed, 2, "unknown seqs are ignored");
    assert_eq!(payloads(&fetch_all(store, r1).await), vec![b"b".as_slice()]);
    assert_eq!(
        payloads(&fetch_all(store, r2).await),
        vec![b"a".as_slice(), b"b"],
        "r2 keeps the shared mail"
    );
    assert_eq!(
        store.ack(r1, vec![a[0], c[0]]).await.expect("re-ack"),
        0,
        "re-ack is a no-op"
    );
    assert_eq!(store.ack(r1, vec![]).await.expect("empty ack"), 0);

    let removed = store.ack(r1, vec![b[0], b[0]]).await.expect("ack");
    assert_eq!(removed, 1, "a repeated seq counts once");
    assert!(fetch_all(store, r1).await.is_empty());

    let d = stored(store, mail(sender, 4, &[r1], b"d")).await;
    assert!(
        d[0] > c[0],
        "seqs keep increasing after the mailbox was emptied"
    );
    assert_eq!(store.ack(r2, r2_seqs.to_vec()).await.expect("ack"), 2);
    assert!(fetch_all(store, r2).await.is_empty());
    assert_eq!(payloads(&fetch_all(store, r1).await), vec![b"d".as_slice()]);
}

/// `purge_expired` removes expired sessions and old idempotency keys, and counts them.
pub async fn case_purge<S: Store>(store: &S) {
    let alice = account("alice", key(1));
    store.create_account(alice.clone()).await.expect("alice");
    for (token, expires) in [([1; 32], 100), ([2; 32], 200), ([3; 32], 300)] {
        store
            .create_session(token, &alice.username, expires)
            .await
            .expect("session");
    }
    let (sender, r) = (key(1), key(2));
    let mut old = mail(sender, 1, &[r], b"old");
    old.now_ms = 1_000;
    stored(store, old).await;
    let mut new = mail(sender, 2, &[r], b"new");
    new.now_ms = 2_000;
    stored(store, new).await;

    let gone = store.purge_expired(purge(200, 2_000)).await.expect("purge");
    assert_eq!(
        gone, 3,
        "two sessions (expiring at or before now) and one key"
    );
    assert_eq!(store.session([1; 32], 0).await.expect("session"), None);
    assert_eq!(store.session([2; 32], 0).await.expect("session"), None);
    assert_eq!(
        store.session([3; 32], 0).await.expect("session"),
        Some(alice)
    );
    assert_eq!(fetch_all(store, r).await.len(), 2, "purge keeps mail");

    let again = store.enqueue(mail(sender, 1, &[r], b"old, again")).await;
    assert!(
        matches!(again, Ok(EnqueueOutcome::Stored { .. })),
        "purged key is forgotten: {again:?}"
    );
    let dup = store.enqueue(mail(sender, 2, &[r], b"new, again")).await;
    assert_eq!(
        dup.expect("enqueue"),
        EnqueueOutcome::Duplicate,
        "young key kept"
    );
    assert_eq!(
        store.purge_expired(purge(200, 2_000)).await.expect("purge"),
        0,
        "nothing left to purge"
    );
}

/// A mailbox holds at most `mailbox_bytes`, and one sender at most
/// `sender_bytes` of it; a refused enqueue stores nothing, and acks give the
/// bytes back.
pub async fn case_mail_quota<S: Store>(store: &S) {
    let (a, b, c, r, other) = (key(1), key(2), key(3), key(4), key(5));
    let quota = MailQuota {
        mailbox_bytes: 100,
        sender_bytes: 40,
    };
    let send = |sender, n, to: &[IdentityKey], size: usize| {
        let mut m = mail(sender, n, to, &vec![b'x'; size]);
        m.quota = quota;
        m
    };
    let a1 = stored(store, send(a, 1, &[r], 40)).await;
    match store.enqueue(send(a, 2, &[other, r], 1)).await {
        Err(StoreError::ShareFull(who)) => assert_eq!(who, r, "names the mailbox"),
        got => panic!("a's share of r is used up: expected ShareFull, got {got:?}"),
    }
    assert!(
        fetch_all(store, other).await.is_empty(),
        "a refused enqueue stores nothing for anyone"
    );
    stored(store, send(a, 3, &[other], 40)).await;
    stored(store, send(b, 1, &[r], 40)).await;
    match store.enqueue(send(c, 1, &[r], 21)).await {
        Err(StoreError::QueueFull(who)) => assert_eq!(who, r),
        got => panic!("r holds 80 of 100 bytes: expected QueueFull, got {got:?}"),
    }
    stored(store, send(c, 2, &[r], 20)).await;
    assert_eq!(store.ack(r, a1).await.expect("ack"), 1);
    stored(store, send(a, 4, &[r], 40)).await;
    assert_eq!(fetch_all(store, r).await.len(), 3);
}

/// Mail enqueued before `mail_before_ms` is deleted by the purge, with its
/// quota, and its sender gets an expiry notice; younger mail stays, and
/// sequence numbers are not reused.
pub async fn case_mail_expiry<S: Store>(store: &S) {
    let (sender, r) = (key(1), key(2));
    let quota = MailQuota {
        mailbox_bytes: u64::MAX,
        sender_bytes: 10,
    };
    let at = |n: u32, now_ms: u64| {
        let mut m = mail(sender, n, &[r], &[n as u8; 10]);
        m.now_ms = now_ms;
        m.quota = quota;
        m
    };
    let old = stored(store, at(1, 1_000)).await;
    let refused = store.enqueue(at(2, 3_000)).await;
    assert!(
        matches!(refused, Err(StoreError::ShareFull(_))),
        "the sender's share is full: {refused:?}"
    );
    let gone = store
        .purge_expired(Purge {
            now_ms: 3_000,
            idempotency_before_ms: 0,
            mail_before_ms: 2_000,
        })
        .await
        .expect("purge");
    assert_eq!(gone, 1, "the old mail");
    assert!(fetch_all(store, r).await.is_empty());
    let notices = fetch_all(store, sender).await;
    assert_eq!(
        notices.len(),
        1,
        "the sender is told, once per expired copy"
    );
    assert_eq!(
        notices[0].expired,
        Some(Expired {
            recipient: r,
            idempotency_key: idem(1),
        }),
        "the notice names the recipient and the enqueue"
    );
    assert!(notices[0].payload.is_empty() && notices[0].channel.is_none());
    assert_eq!(
        notices[0].enqueued_at_ms, 3_000,
        "stored at the purge's time"
    );
    let young = stored(store, at(3, 3_000)).await;
    assert!(young[0] > old[0], "seqs are not reused");
    assert_eq!(
        store
            .purge_expired(Purge {
                now_ms: 3_000,
                idempotency_before_ms: 0,
                mail_before_ms: 2_000,
            })
            .await
            .expect("purge"),
        0
    );
    assert_eq!(payloads(&fetch_all(store, r).await), vec![&[3u8; 10][..]]);
}

/// A key package is never handed out at or after its lifetime's end, does
/// not count against the stock limit then, and the purge deletes it; with
/// `Take::LastResortOnly` only the last-resort package comes out.
pub async fn case_key_package_expiry<S: Store>(store: &S) {
    let owner = key(1);
    let until = |data: &[u8], not_after_ms| StoredKeyPackage {
        data: data.to_vec(),
        not_after_ms,
    };
    store
        .add_key_packages(
            owner,
            HYBRID,
            vec![until(b"short", 100), until(b"long", 1_000)],
            Some(until(b"lr", 500)),
            50,
        )
        .await
        .expect("add");
    assert_eq!(
        store
            .take_key_package(owner, HYBRID, 50, Take::LastResortOnly)
            .await
            .expect("take"),
        Some((b"lr".to_vec(), true)),
        "only the last resort, the stock untouched"
    );
    assert_eq!(
        store
            .take_key_package(owner, HYBRID, 100, Take::OneTimeFirst)
            .await
            .expect("take"),
        Some((b"long".to_vec(), false)),
        "the expired package is skipped"
    );
    assert_eq!(
        store
            .take_key_package(owner, HYBRID, 500, Take::OneTimeFirst)
            .await
            .expect("take"),
        None,
        "the last resort expired at 500"
    );
    let n = store
        .add_key_packages(owner, HYBRID, vec![until(b"next", 2_000)], None, 600)
        .await
        .expect("add");
    assert_eq!(n, 1, "expired packages are not counted");
    let gone = store.purge_expired(purge(600, 0)).await.expect("purge");
    assert_eq!(gone, 2, "the expired one-time package and the last resort");
    assert_eq!(
        store
            .take_key_package(owner, HYBRID, 600, Take::OneTimeFirst)
            .await
            .expect("take"),
        Some((b"next".to_vec(), false))
    );
}

/// Many concurrent enqueues all succeed and every message is stored exactly once.
pub async fn case_concurrent_enqueues<S: Store>(store: Arc<S>) {
    const TASKS: u32 = 200;
    let recipients: Vec<IdentityKey> = (0..8).map(|i| key(100 + i)).collect();
    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let store = Arc::clone(&store);
        let sender = key(1 + u8::try_from(i % 5).unwrap_or(0));
        let recipient = recipients[usize::try_from(i).unwrap_or(0) % recipients.len()];
        tasks.spawn(async move {
            let payload = i.to_be_bytes();
            let outcome = store.enqueue(mail(sender, i, &[recipient], &payload)).await;
            (i, recipient, outcome)
        });
    }
    let mut expected: HashMap<IdentityKey, Vec<(u64, u32)>> = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, recipient, outcome) = joined.expect("enqueue task panicked");
        match outcome {
            Ok(EnqueueOutcome::Stored { seqs }) if seqs.len() == 1 => {
                expected.entry(recipient).or_default().push((seqs[0], i));
            }
            other => panic!("concurrent enqueue {i} failed: {other:?}"),
        }
    }
    for recipient in &recipients {
        let mut want = expected.remove(recipient).unwrap_or_default();
        want.sort_unstable();
        let got = fetch_all(&*store, *recipient).await;
        let got: Vec<(u64, u32)> = got
            .iter()
            .map(|m| {
                let bytes: [u8; 4] = m.payload.as_slice().try_into().expect("4-byte payload");
                (m.seq, u32::from_be_bytes(bytes))
            })
            .collect();
        assert_eq!(
            got, want,
            "every message exactly once, at the seq enqueue returned"
        );
    }

    // Concurrent retries of one request: exactly one is stored.
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            store
                .enqueue(mail(key(1), TASKS, &[key(99)], b"retried"))
                .await
        });
    }
    let mut stored_count = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("retry task panicked") {
            Ok(EnqueueOutcome::Stored { .. }) => stored_count += 1,
            Ok(EnqueueOutcome::Duplicate) => {}
            Err(e) => panic!("retry failed: {e}"),
        }
    }
    assert_eq!(
        stored_count, 1,
        "exactly one of the concurrent retries is stored"
    );
    assert_eq!(fetch_all(&*store, key(99)).await.len(), 1);
}
