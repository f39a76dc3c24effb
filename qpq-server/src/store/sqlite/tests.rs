//! Tests of the SQLite store: the shared conformance suite, durability
//! across reopen and kill -9, connection settings, and group commit.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use quicproquo_protocol::types::{Epoch, IdempotencyKey};
use tokio::task::JoinSet;

use super::queries::{ack, enqueue, enqueue_group, fetch, register_group};
use super::schema::{configure, create_private, migrate};
use super::writer::run_batch;
use super::*;
use crate::store::conformance::{self, group_g, key};
use crate::store::{Delivery, GroupEnqueueOutcome, GroupMail, GroupUpdate};

fn new_mail(sender: u8, idem: u8, recipient: u8, payload: &[u8]) -> NewMail {
    NewMail {
        sender: key(sender),
        idempotency_key: IdempotencyKey([idem; 16]),
        deliveries: vec![Delivery {
            recipient: key(recipient),
            channel: None,
        }],
        payload: payload.to_vec(),
        now_ms: 1,
        quota: crate::store::MailQuota::UNLIMITED,
    }
}

/// A group message to `recipient` that changes group `g`'s state from
/// `from_revision` (a commit, as the store sees one).
fn change(sender: u8, idem: u8, recipient: u8, payload: &[u8], from_revision: u64) -> GroupMail {
    GroupMail {
        sender: key(sender),
        idempotency_key: IdempotencyKey([idem; 16]),
        group_id: b"g".to_vec(),
        payload: payload.to_vec(),
        recipients: vec![key(recipient)],
        welcome: None,
        update: Some(GroupUpdate {
            from_revision,
            epoch: Epoch(from_revision),
            state: vec![from_revision as u8],
            group_info: None,
        }),
        now_ms: 1,
        quota: crate::store::MailQuota::UNLIMITED,
    }
}

/// A job for [`run_batch`], with the receiver of its answer.
fn job<T: Send + 'static>(
    work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>) {
    let (reply, answer) = oneshot::channel();
    let job = Box::new(Call::new(work, reply));
    (job, answer)
}

fn answer<T>(mut rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
    rx.try_recv().expect("answered after the batch")
}

fn open_conn(path: &Path) -> Connection {
    create_private(path).expect("create");
    let mut conn = Connection::open(path).expect("open");
    configure(&conn).expect("configure");
    migrate(&mut conn).expect("migrate");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir
            .path()
            .join(format!("{}.db", n.fetch_add(1, Ordering::Relaxed)));
        async move { SqliteStore::open(&path).expect("open") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qpq.db");
    let store = SqliteStore::open(&path).expect("open");
    store.server_secret("s", vec![1]).await.expect("secret");
    let seqs = match store.enqueue(new_mail(1, 1, 2, b"kept")).await {
        Ok(EnqueueOutcome::Stored { seqs }) => seqs,
        other => panic!("{other:?}"),
    };
    drop(store); // without close(): every Ok was already durable

    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(
        store.server_secret("s", vec![2]).await.expect("secret"),
        vec![1]
    );
    let mail = store
        .fetch(key(2), None, 10, usize::MAX)
        .await
        .expect("fetch");
    assert_eq!(mail.len(), 1);
    assert_eq!(
        (mail[0].seq, mail[0].payload.as_slice()),
        (seqs[0], b"kept".as_slice())
    );
    let dup = store
        .enqueue(new_mail(1, 1, 2, b"kept"))
        .await
        .expect("enqueue");
    assert_eq!(dup, EnqueueOutcome::Duplicate, "idempotency key kept");
    store.close().await;

    let store = SqliteStore::open(&path).expect("reopen after close");
    let next = store
        .enqueue(new_mail(1, 3, 2, b"next"))
        .await
        .expect("enqueue");
    assert!(
        matches!(&next, EnqueueOutcome::Stored { seqs: s } if s[0] > seqs[0]),
        "seqs continue after reopen: {next:?}"
    );
}

#[test]
fn connection_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = open_conn(&dir.path().join("qpq.db"));
    let get = |pragma: &str| -> i64 {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .expect("pragma")
    };
    assert_eq!(
        get("synchronous"),
        1,
        "NORMAL: the writer syncs the log itself"
    );
    assert_eq!(get("foreign_keys"), 1);
    assert_eq!(get("busy_timeout"), 5_000);
    assert_eq!(
        get("user_version"),
        super::schema::MIGRATIONS.len() as i64,
        "every migration ran"
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qpq.db");
    let store = SqliteStore::open(&path).expect("open");
    store.server_secret("s", vec![1]).await.expect("write");
    for file in ["qpq.db", "qpq.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    store.close().await;
}

/// Mail stored by a server before the quotas keeps counting after the
/// upgrade: its size is filled in and the mailbox's bytes summed, so acks
/// give back what it holds; the unverified key packages are gone.
#[tokio::test]
async fn step_2_counts_the_mail_already_stored_and_drops_unverified_key_packages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qpq.db");
    create_private(&path).expect("create");
    let conn = Connection::open(&path).expect("open");
    configure(&conn).expect("configure");
    conn.execute_batch(super::schema::MIGRATIONS[0])
        .expect("schema 1");
    conn.execute_batch(
        "PRAGMA user_version = 1;
         INSERT INTO payloads (id, refs, data) VALUES (1, 2, x'00112233'), (2, 1, x'44');
         INSERT INTO key_packages (owner, suite, data) VALUES (x'01', 79, x'00010005');
         INSERT INTO last_resort_key_packages (owner, suite, data) VALUES (x'01', 79, x'00');",
    )
    .expect("schema 1 rows");
    let r = key(9).0;
    conn.execute(
        "INSERT INTO mailboxes (recipient, last_seq, depth) VALUES (?1, 3, 3)",
        [r],
    )
    .expect("mailbox");
    for (seq, payload) in [(1, 1), (2, 1), (3, 2)] {
        conn.execute(
            "INSERT INTO mail (recipient, seq, channel, payload_id, enqueued_at_ms)
             VALUES (?1, ?2, NULL, ?3, 1)",
            rusqlite::params![r, seq, payload],
        )
        .expect("mail");
    }
    drop(conn);

    let mut conn = Connection::open(&path).expect("reopen");
    migrate(&mut conn).expect("migrate");
    let bytes: i64 = conn
        .query_row("SELECT bytes FROM mailboxes", [], |r| r.get(0))
        .expect("bytes");
    assert_eq!(bytes, 9, "4 + 4 + 1 bytes waiting");
    assert_eq!(ack(&conn, key(9), &[1, 2]).expect("ack"), 2);
    let (depth, bytes): (i64, i64) = conn
        .query_row("SELECT depth, bytes FROM mailboxes", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("counters");
    assert_eq!((depth, bytes), (1, 1), "the acks gave back what they held");
    let kps: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM key_packages) + (SELECT count(*) FROM last_resort_key_packages)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(kps, 0);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qpq.db");
    let conn = open_conn(&path);
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = SqliteStore::open(&path).expect_err("must refuse");
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[test]
fn a_failing_job_is_rolled_back_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = open_conn(&dir.path().join("qpq.db"));
    register_group(&conn, &group_g()).expect("register");
    let (first, first_rx) = job(|c| enqueue_group(c, &change(1, 1, 9, b"e5", 1)));
    // Stale because of the first job in the same, still uncommitted, batch.
    let (stale, stale_rx) = job(|c| enqueue_group(c, &change(1, 2, 9, b"e5'", 1)));
    // Fails after writing: its writes must be undone, the others' kept.
    let (partial, partial_rx) = job(|c| {
        enqueue_group(c, &change(3, 1, 9, b"undone", 2))?;
        Err::<(), _>(StoreError::QueueFull(key(9)))
    });
    let (plain, plain_rx) = job(|c| enqueue(c, &new_mail(2, 1, 9, b"plain")));
    // Same sender and key as the failed job, from the same revision: both of
    // its writes (idempotency key, state) were rolled back.
    let (retry, retry_rx) = job(|c| enqueue_group(c, &change(3, 1, 9, b"e6", 2)));
    let (read, read_rx) = job(|c| fetch(c, key(9), None, 10, usize::MAX));
    let mut batch = vec![first, stale, partial, plain, retry, read];
    run_batch(&mut conn, &mut batch);
    assert!(batch.is_empty(), "every job answered");

    let stored = |r: Result<GroupEnqueueOutcome, StoreError>| {
        assert!(matches!(r, Ok(GroupEnqueueOutcome::Stored { .. })), "{r:?}");
    };
    stored(answer(first_rx));
    let stale = answer(stale_rx);
    assert!(matches!(stale, Err(StoreError::GroupChanged)), "{stale:?}");
    let partial = answer(partial_rx);
    assert!(
        matches!(partial, Err(StoreError::QueueFull(_))),
        "{partial:?}"
    );
    let plain = answer(plain_rx);
    assert!(
        matches!(plain, Ok(EnqueueOutcome::Stored { .. })),
        "{plain:?}"
    );
    stored(answer(retry_rx));
    let read = answer(read_rx).expect("fetch");
    let payloads: Vec<&[u8]> = read.iter().map(|m| m.payload.as_slice()).collect();
    assert_eq!(payloads, vec![b"e5".as_slice(), b"plain", b"e6"]);
    assert!(conn.is_autocommit(), "the batch transaction is closed");
}

#[test]
fn a_failed_commit_fails_every_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = open_conn(&dir.path().join("qpq.db"));
    conn.execute_batch(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
    )
    .expect("test tables");
    let (good, good_rx) = job(|c| enqueue(c, &new_mail(1, 1, 9, b"lost")));
    // A deferred foreign key is only checked at COMMIT, which then fails.
    let (bad, bad_rx) = job(|c| {
        c.execute("INSERT INTO child (p) VALUES (42)", [])?;
        Ok(())
    });
    let mut batch = vec![good, bad];
    run_batch(&mut conn, &mut batch);

    for result in [answer(good_rx).map(drop), answer(bad_rx)] {
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    }
    assert!(
        conn.is_autocommit(),
        "the failed transaction was rolled back"
    );
    let mail = fetch(&conn, key(9), None, 10, usize::MAX).expect("fetch");
    assert!(mail.is_empty(), "nothing of the failed batch is stored");
}

/// Set (to a database path) only in the child process of the kill test.
const KILL_CHILD_DB: &str = "QPQ_SQLITE_KILL_CHILD_DB";

/// The child of [`acknowledged_writes_survive_kill_9`]: enqueues from
/// eight tasks and prints `acked <n>` after every `Ok`, until killed.
#[test]
#[ignore = "run in a child process by acknowledged_writes_survive_kill_9"]
fn kill_9_child() {
    use std::io::Write;
    let Some(path) = std::env::var_os(KILL_CHILD_DB) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(Path::new(&path)).expect("open"));
        let mut tasks = JoinSet::new();
        for task in 0..8u32 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                // Bounded, in case the parent dies without killing us.
                for n in (task..20_000).step_by(8) {
                    let mut mail = new_mail(1, 0, 2, &n.to_be_bytes());
                    mail.idempotency_key.0[..4].copy_from_slice(&n.to_be_bytes());
                    store.enqueue(mail).await.expect("enqueue");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "acked {n}")
                        .and_then(|()| out.flush())
                        .expect("stdout");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
}

/// The durability contract from the process side: every write answered
/// `Ok` before a kill -9 is there after reopening.
#[cfg(unix)]
#[test]
fn acknowledged_writes_survive_kill_9() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill(); // SIGKILL
            let _ = self.0.wait();
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qpq.db");
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "store::sqlite::tests::kill_9_child"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(KILL_CHILD_DB, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut acked = BTreeSet::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        if let Some(n) = line.strip_prefix("acked ") {
            acked.insert(n.parse::<u32>().expect("number"));
            if acked.len() == 300 {
                break;
            }
        }
    }
    drop(child); // kill -9 while the other writers are in flight
    assert_eq!(acked.len(), 300, "the child acknowledged writes");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = SqliteStore::open(&path).expect("reopen after kill");
    let mail = runtime
        .block_on(store.fetch(key(2), None, u32::MAX, usize::MAX))
        .expect("fetch");
    let found: BTreeSet<u32> = mail
        .iter()
        .map(|m| u32::from_be_bytes(m.payload.as_slice().try_into().expect("4 bytes")))
        .collect();
    let lost: Vec<&u32> = acked.difference(&found).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

/// Commits racing for one group revision, and ordinary enqueues, through
/// the real writer thread: exactly one commit wins, nothing else is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stale_commits_do_not_disturb_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("qpq.db")).expect("open"));
    store.register_group(group_g()).await.expect("register");
    let mut tasks = JoinSet::new();
    for i in 0..100u8 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let won = if i % 2 == 0 {
                // Every even task changes revision 1 of one group.
                matches!(
                    store.enqueue_group(change(i, 1, 50, &[i], 1)).await,
                    Ok(GroupEnqueueOutcome::Stored { .. })
                )
            } else {
                matches!(
                    store.enqueue(new_mail(i, 1, 50, &[i])).await,
                    Ok(EnqueueOutcome::Stored { .. })
                )
            };
            (i, won)
        });
    }
    let (mut commits, mut plain) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            (i, true) if i % 2 == 0 => commits += 1,
            (_, true) => plain += 1,
            (i, false) if i % 2 == 0 => {}
            other => panic!("an ordinary enqueue failed: {other:?}"),
        }
    }
    assert_eq!((commits, plain), (1, 50));
    let mail = store
        .fetch(key(50), None, 500, usize::MAX)
        .await
        .expect("fetch");
    assert_eq!(mail.len(), 51, "one commit and every ordinary message");
}
