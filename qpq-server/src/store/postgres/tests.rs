//! Tests of the PostgreSQL store against a real server (the test kit's
//! throwaway PostgreSQL; skipped with a notice where none is installed):
//! the shared conformance suite, migrations, change events between two
//! stores on one database (two nodes), and exactly-one-wins across nodes.

use std::sync::Arc;

use quicproquo_protocol::types::{Epoch, IdempotencyKey};
use quicproquo_testkit::postgres::{self, Postgres};
use tokio::task::JoinSet;

use super::*;
use crate::store::conformance::{self, group_g, key};
use crate::store::{Delivery, GroupUpdate, MailQuota};

async fn open(url: &str) -> PgStore {
    PgStore::open(&url.parse().expect("a valid URL"))
        .await
        .expect("the store opens")
}

/// Two stores on one fresh database: two server nodes.
async fn two_nodes(pg: &Postgres) -> (PgStore, PgStore) {
    let url = pg.url(&pg.new_database());
    let (a, b) = tokio::join!(open(&url), open(&url));
    (a, b)
}

fn mail_to(recipient: u8, idem: u8) -> NewMail {
    NewMail {
        sender: key(1),
        idempotency_key: IdempotencyKey([idem; 16]),
        deliveries: vec![Delivery {
            recipient: key(recipient),
            channel: None,
        }],
        payload: b"hello".to_vec(),
        now_ms: 1,
        quota: MailQuota::UNLIMITED,
    }
}

fn commit(idem: u8, from_revision: u64) -> GroupMail {
    GroupMail {
        sender: key(idem),
        idempotency_key: IdempotencyKey([idem; 16]),
        group_id: b"g".to_vec(),
        payload: vec![idem],
        recipients: vec![key(200)],
        welcome: None,
        update: Some(GroupUpdate {
            from_revision,
            epoch: Epoch(from_revision),
            state: vec![idem],
            group_info: None,
        }),
        now_ms: 1,
        quota: MailQuota::UNLIMITED,
    }
}

/// The next change `rx` receives, failing the test after a while.
async fn next_change(rx: &mut broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(quicproquo_testkit::WAIT, rx.recv())
        .await
        .expect("a change arrives")
        .expect("the channel is open and not lagging")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(pg) = postgres::for_test("postgres conformance") else {
        return;
    };
    conformance::run_all(|| {
        let url = pg.new_schema();
        async move { open(&url).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_is_migrated_once_by_nodes_starting_together() {
    let Some(pg) = postgres::for_test("postgres migrations") else {
        return;
    };
    let db = pg.new_database();
    let url = pg.url(&db);
    let opened: Vec<PgStore> = {
        let mut set = JoinSet::new();
        for _ in 0..4 {
            let url = url.clone();
            set.spawn(async move { open(&url).await });
        }
        set.join_all().await
    };
    assert_eq!(opened.len(), 4);
    let version = pg
        .psql(&db, "SELECT version FROM schema_version")
        .expect("read the version");
    assert_eq!(version.trim(), schema::MIGRATIONS.len().to_string());
    // Usable afterwards from every node.
    opened[0]
        .create_channel(key(1), key(2), ChannelId([9; 16]))
        .await
        .expect("write");
    assert!(opened[3]
        .channel_members(ChannelId([9; 16]))
        .await
        .expect("read")
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_database_is_refused() {
    let Some(pg) = postgres::for_test("postgres newer schema") else {
        return;
    };
    let url = pg.new_schema();
    drop(open(&url).await);
    let schema = url
        .split("search_path%3D")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .expect("the schema's name");
    pg.psql(
        "qpq_tests",
        &format!("UPDATE {schema}.schema_version SET version = 99"),
    )
    .expect("bump the version");
    let err = PgStore::open(&url.parse().expect("valid"))
        .await
        .expect_err("must refuse");
    let err = err.to_string();
    assert!(
        err.contains("the database schema is version 99; this server knows up to"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_clear_error_without_the_password() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://qpq:hunter2@127.0.0.1:{port}/qpq?connect_timeout=5");
    let err = PgStore::open(&url.parse().expect("valid"))
        .await
        .expect_err("nothing listens there")
        .to_string();
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_committed_on_one_node_reach_the_other() {
    let Some(pg) = postgres::for_test("postgres change events") else {
        return;
    };
    let (a, b) = two_nodes(pg).await;
    let mut on_b = b.changes();
    let mut on_a = a.changes();

    a.enqueue(mail_to(2, 1)).await.expect("enqueue");
    assert_eq!(next_change(&mut on_b).await, Change::Mail(key(2)));
    assert_eq!(
        next_change(&mut on_a).await,
        Change::Mail(key(2)),
        "a node hears its own changes"
    );

    // A refused write notifies nothing: the next change B hears is the
    // commit that won.
    a.register_group(group_g()).await.expect("register");
    let stale = commit(3, 7);
    assert!(matches!(
        a.enqueue_group(stale).await,
        Err(StoreError::GroupChanged)
    ));
    b.enqueue_group(commit(4, 1)).await.expect("the commit");
    assert_eq!(
        next_change(&mut on_b).await,
        Change::Group {
            id: b"g".to_vec(),
            revision: 2
        }
    );
    assert_eq!(next_change(&mut on_b).await, Change::Mail(key(200)));

    let token = [5u8; 32];
    let alice = Username::parse("alice").expect("valid");
    a.create_account(Account {
        username: alice.clone(),
        identity_key: key(5),
        opaque_record: vec![1],
        created_at_ms: 1,
    })
    .await
    .expect("account");
    a.create_session(token, &alice, u64::MAX >> 1)
        .await
        .expect("session");
    a.delete_session(token).await.expect("logout");
    assert_eq!(next_change(&mut on_b).await, Change::Session(token));
    a.change_password(&alice, vec![2], [0; 32])
        .await
        .expect("password");
    assert_eq!(next_change(&mut on_b).await, Change::Account(alice));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_reconnects_and_reports_lost() {
    let Some(pg) = postgres::for_test("postgres listener reconnect") else {
        return;
    };
    let db = pg.new_database();
    let a = open(&pg.url(&db)).await;
    let mut rx = a.changes();
    // The database drops the node's LISTEN connection (a restart, a
    // failover, a network cut look the same to the node).
    let killed = pg
        .psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND query LIKE 'LISTEN%'"
            ),
        )
        .expect("terminate");
    assert_eq!(killed.trim(), "1", "one LISTEN connection");
    assert_eq!(next_change(&mut rx).await, Change::Lost);
    a.enqueue(mail_to(3, 1)).await.expect("enqueue");
    assert_eq!(
        next_change(&mut rx).await,
        Change::Mail(key(3)),
        "listening again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_from_two_nodes_have_exactly_one_winner() {
    let Some(pg) = postgres::for_test("postgres group CAS") else {
        return;
    };
    let (a, b) = two_nodes(pg).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    a.register_group(group_g()).await.expect("register");
    let mut set = JoinSet::new();
    for n in 0..8u8 {
        let node = if n % 2 == 0 { a.clone() } else { b.clone() };
        set.spawn(async move { node.enqueue_group(commit(10 + n, 1)).await });
    }
    let results = set.join_all().await;
    let won = results
        .iter()
        .filter(|r| matches!(r, Ok(GroupEnqueueOutcome::Stored { .. })))
        .count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::GroupChanged)))
        .count();
    assert_eq!((won, lost), (1, 7), "{results:?}");
    let g = b.group(b"g".to_vec()).await.expect("read").expect("there");
    assert_eq!(g.revision, 2);
    // Only the winner's message was stored.
    let mail = a
        .fetch(key(200), None, 100, usize::MAX)
        .await
        .expect("fetch");
    assert_eq!(mail.len(), 1);
    assert_eq!(g.state, mail[0].payload, "the winner's state and message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_server_secrets_and_never_reuse_a_sequence_number() {
    let Some(pg) = postgres::for_test("postgres shared secrets") else {
        return;
    };
    let (a, b) = two_nodes(pg).await;
    let (sa, sb) = tokio::join!(
        a.server_secret("opaque_setup", vec![1]),
        b.server_secret("opaque_setup", vec![2])
    );
    let (sa, sb) = (sa.expect("a"), sb.expect("b"));
    assert_eq!(sa, sb, "both nodes use one OPAQUE setup");

    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut set = JoinSet::new();
    for n in 0..20u8 {
        let node = if n % 2 == 0 { a.clone() } else { b.clone() };
        set.spawn(async move {
            match node.enqueue(mail_to(7, n)).await {
                Ok(EnqueueOutcome::Stored { seqs }) => seqs[0],
                other => panic!("{other:?}"),
            }
        });
    }
    let mut seqs = set.join_all().await;
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 20, "every enqueue got its own seq");
    let fetched: Vec<u64> = a
        .fetch(key(7), None, 100, usize::MAX)
        .await
        .expect("fetch")
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(fetched, seqs, "visible in order");
}

/// A database a previous server left at schema step 1 (before accounts
/// could be disabled), with an account in it, is migrated at the next
/// start: the account is kept and the new step's column works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_version_is_migrated_with_its_data() {
    let Some(pg) = postgres::for_test("postgres migration from the previous version") else {
        return;
    };
    let db = pg.new_database();
    let url = pg.url(&db);
    let options: PgOptions = url.parse().expect("a valid URL");
    let (mut client, connection) = options
        .config
        .connect(options.tls().expect("TLS settings"))
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    schema::migrate_to(&mut client, &schema::MIGRATIONS[..1])
        .await
        .expect("step 1");
    drop(client);
    let _ = driver.await;
    pg.psql(
        &db,
        "INSERT INTO accounts (username, identity_key, opaque_record, created_at_ms)
         VALUES ('alice', decode(repeat('01', 32), 'hex'), '\\x02', 1000)",
    )
    .expect("an account of the previous version");
    assert_eq!(
        version_of(pg, &db),
        "1",
        "the database starts at the previous version"
    );

    let store = open(&url).await;
    assert_eq!(version_of(pg, &db), schema::MIGRATIONS.len().to_string());
    let alice = Username::parse("alice").expect("valid");
    let kept = store.account(&alice).await.expect("read").expect("kept");
    assert_eq!(kept.identity_key, key(1));
    assert!(store
        .set_disabled(&alice, true, 2_000)
        .await
        .expect("disable"));
}

/// The schema version a database records, as psql prints it.
fn version_of(pg: &Postgres, db: &str) -> String {
    pg.psql(db, "SELECT version FROM schema_version")
        .expect("read the version")
        .trim()
        .to_owned()
}
