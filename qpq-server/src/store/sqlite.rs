//! [`SqliteStore`]: the embedded [`Store`], one SQLite file in WAL mode.
//!
//! One dedicated OS thread owns the only connection. Every call, read or
//! write, becomes a job sent to it over a bounded channel, with a oneshot for
//! the answer. The thread does group commit: it waits for one job, takes
//! whatever else is queued (up to `MAX_BATCH`), and runs the whole batch in
//! one `BEGIN IMMEDIATE` transaction, each job inside its own savepoint so a
//! job that fails (a stale commit, a full mailbox) is rolled back alone.
//! Answers are sent only after `COMMIT` returned, so with `synchronous=FULL`
//! an `Ok` means the write is on disk; if `COMMIT` fails every job of the batch
//! gets [`StoreError::Backend`]. One fsync thus covers many requests.
//!
//! Reads go through the same thread: they see every earlier write, need no
//! second connection, and a read-only batch commits without touching the disk.
//! When every handle is dropped the channel closes; the thread finishes the
//! queued jobs, closes the database and exits.
//!
//! Schema notes: a payload sent to many recipients is stored once
//! (`payloads`, reference-counted by its `mail` rows), because a group commit
//! can be megabytes fanned out to a thousand members. `mailboxes` keeps each
//! recipient's last sequence number (so a seq is never reused, even after the
//! mailbox was emptied) and queue depth (so the limit check does not count rows).

use std::path::Path;
use std::thread;
use std::time::Duration;

use quicproquo_protocol::limits::{MAX_KEY_PACKAGES_STORED, MAX_QUEUE_DEPTH};
use quicproquo_protocol::types::{ChannelId, Epoch, IdentityKey, Username};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{Account, EnqueueOutcome, Mail, NewMail, Store, StoreError};

/// Most jobs run in one transaction.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before callers wait to send (backpressure).
const QUEUE_CAPACITY: usize = 1024;
/// How long SQLite retries when another process holds the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations; `PRAGMA user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[SCHEMA_V1];

const SCHEMA_V1: &str = "
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE accounts (
    username      TEXT PRIMARY KEY,
    identity_key  BLOB NOT NULL UNIQUE CHECK (length(identity_key) = 32),
    opaque_record BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash    BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    username      TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    expires_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_by_username ON sessions (username);
CREATE INDEX sessions_by_expiry ON sessions (expires_at_ms);

-- One-time key packages; the rowid orders them oldest first.
CREATE TABLE key_packages (
    id    INTEGER PRIMARY KEY,
    owner BLOB NOT NULL,
    data  BLOB NOT NULL
) STRICT;
CREATE INDEX key_packages_by_owner ON key_packages (owner, id);

CREATE TABLE last_resort_key_packages (
    owner BLOB PRIMARY KEY,
    data  BLOB NOT NULL
) STRICT;

-- member_lo <= member_hi bytewise, so the pair is unordered.
CREATE TABLE channels (
    id        BLOB PRIMARY KEY CHECK (length(id) = 16),
    member_lo BLOB NOT NULL,
    member_hi BLOB NOT NULL,
    UNIQUE (member_lo, member_hi),
    CHECK (member_lo <= member_hi)
) STRICT;

-- Never deleted: last_seq must survive an empty mailbox.
CREATE TABLE mailboxes (
    recipient BLOB PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    depth     INTEGER NOT NULL
) STRICT;

-- refs counts the mail rows pointing here (maintained by enqueue and ack,
-- not by a foreign key, which would need an index on mail.payload_id).
CREATE TABLE payloads (
    id   INTEGER PRIMARY KEY,
    refs INTEGER NOT NULL,
    data BLOB NOT NULL
) STRICT;

CREATE TABLE mail (
    recipient      BLOB NOT NULL,
    seq            INTEGER NOT NULL,
    channel        BLOB,
    payload_id     INTEGER NOT NULL,
    enqueued_at_ms INTEGER NOT NULL,
    PRIMARY KEY (recipient, seq)
) STRICT;
CREATE INDEX mail_by_channel ON mail (recipient, channel, seq);

CREATE TABLE idempotency (
    sender        BLOB NOT NULL,
    key           BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (sender, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at_ms);

-- epoch holds the u64 bit pattern (see epoch_to_sql).
CREATE TABLE group_epochs (
    group_id BLOB PRIMARY KEY,
    epoch    INTEGER NOT NULL
) STRICT;
";

/// The SQLite [`Store`]. Cheap to share behind an `Arc`; see the module docs.
pub struct SqliteStore {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// Closed by the writer thread when it exits.
    stopped: oneshot::Receiver<()>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600 on Unix) and migrates the database
    /// at `path`, then starts the writer thread.
    ///
    /// Blocks on file I/O: call it at start-up or from `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path)
            .map_err(|e| StoreError::Backend(format!("creating {}: {e}", path.display())))?;
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stopped) = oneshot::channel();
        thread::Builder::new()
            .name("qpq-sqlite".into())
            .spawn(move || writer(conn, queue, stop))
            .map_err(|e| StoreError::Backend(format!("starting the database thread: {e}")))?;
        Ok(Self { jobs, stopped })
    }

    /// Drops this handle and waits until the writer thread has finished every
    /// queued job and closed the database. Dropping the store without calling
    /// this is also safe; it just does not wait.
    pub async fn close(self) {
        let Self { jobs, stopped } = self;
        drop(jobs);
        // Err means the thread is gone, which is what we wait for.
        let _ = stopped.await;
    }

    /// Runs `work` on the writer thread inside the current batch's
    /// transaction and returns its result once that transaction committed.
    ///
    /// If the caller's future is dropped after the job was sent, the job
    /// still runs (like a request already on the wire).
    async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call {
            work: Some(work),
            result: None,
            reply,
        });
        self.jobs.send(job).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the database thread has stopped".into())
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // SQLite gives the -wal and -shm files the mode of the database file.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Per-connection settings. `synchronous=FULL` makes every COMMIT fsync the WAL.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "the database refused WAL mode (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Brings the schema to the newest version, refusing a database written by a
/// newer server.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database schema is version {version}; this server knows up to {}",
            MIGRATIONS.len()
        )));
    }
    for (done, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", done + 1)?;
    }
    tx.commit()?;
    Ok(())
}

// ----- the writer thread -----------------------------------------------------

/// A unit of work for the writer thread, its result held until the batch commits.
trait Job: Send {
    /// Runs inside the batch transaction; `false` if the job failed (and its
    /// savepoint must be rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Sends the answer; `committed` is the outcome of the batch's COMMIT.
    fn reply(self: Box<Self>, committed: Result<(), &str>);
}

struct Call<F, T> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for Call<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn reply(self: Box<Self>, committed: Result<(), &str>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Backend("job was not run".into())),
            (Err(e), _) => Err(StoreError::Backend(e.to_owned())),
        };
        // The caller may have given up waiting; the work is done either way.
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: block for one job, take what else is queued, run the
/// batch, repeat until every sender is gone.
fn writer(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    stop: oneshot::Sender<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, &mut batch);
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the database failed");
    }
    drop(stop);
}

/// Runs `batch` in one transaction and answers every job after COMMIT.
fn run_batch(conn: &mut Connection, batch: &mut Vec<Box<dyn Job>>) {
    let committed = run_transaction(conn, batch).map_err(|e| {
        tracing::error!(jobs = batch.len(), error = %e, "database transaction failed");
        e.to_string()
    });
    for job in batch.drain(..) {
        job.reply(committed.as_ref().copied().map_err(String::as_str));
    }
}

fn run_transaction(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    // Dropping `tx` on an early return rolls the whole batch back.
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        let savepoint = tx.savepoint()?;
        if job.run(&savepoint) {
            savepoint.commit()?;
        } else {
            // Rolls back to the savepoint and releases it. If SQLite already
            // rolled back the whole transaction (I/O error, disk full), the
            // savepoint is gone and this fails the batch.
            savepoint.finish()?;
        }
    }
    tx.commit()
}

// ----- the operations, run on the writer thread ------------------------------

/// Epochs are `u64`; SQLite integers are `i64`. The bit pattern is stored, so
/// every epoch round-trips and comparisons happen in Rust on `u64`.
fn epoch_to_sql(epoch: Epoch) -> i64 {
    i64::from_ne_bytes(epoch.0.to_ne_bytes())
}

fn epoch_from_sql(stored: i64) -> Epoch {
    Epoch(u64::from_ne_bytes(stored.to_ne_bytes()))
}

const ACCOUNT_COLUMNS: &str = "username, identity_key, opaque_record, created_at_ms";

fn account_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    let name: String = row.get(0)?;
    let username = Username::parse(&name)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))?;
    Ok(Account {
        username,
        identity_key: IdentityKey(row.get(1)?),
        opaque_record: row.get(2)?,
        created_at_ms: row.get(3)?,
    })
}

fn server_secret(c: &Connection, name: &str, init: &[u8]) -> Result<Vec<u8>, StoreError> {
    c.prepare_cached(
        "INSERT INTO server_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![name, init])?;
    let value = c
        .prepare_cached("SELECT value FROM server_secrets WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?;
    Ok(value)
}

fn create_account(c: &Connection, account: &Account) -> Result<(), StoreError> {
    // Checked before inserting rather than by parsing constraint messages; the
    // transaction holds the write lock, so nothing can slip in between.
    let name = account.username.as_str();
    if c.prepare_cached("SELECT 1 FROM accounts WHERE username = ?1")?
        .exists([name])?
    {
        return Err(StoreError::UsernameTaken);
    }
    if c.prepare_cached("SELECT 1 FROM accounts WHERE identity_key = ?1")?
        .exists([account.identity_key.0])?
    {
        return Err(StoreError::IdentityKeyTaken);
    }
    c.prepare_cached(
        "INSERT INTO accounts (username, identity_key, opaque_record, created_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        name,
        account.identity_key.0,
        account.opaque_record,
        account.created_at_ms
    ])?;
    Ok(())
}

fn account_by(
    c: &Connection,
    column: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Account>, StoreError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {column} = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([value], account_row)
        .optional()?)
}

fn session(
    c: &Connection,
    token_hash: [u8; 32],
    now_ms: u64,
) -> Result<Option<Account>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT a.username, a.identity_key, a.opaque_record, a.created_at_ms
             FROM sessions s JOIN accounts a ON a.username = s.username
             WHERE s.token_hash = ?1 AND s.expires_at_ms > ?2",
    )?
    .query_row(params![token_hash, now_ms], account_row)
    .optional()?)
}

fn add_key_packages(
    c: &Connection,
    owner: IdentityKey,
    packages: &[Vec<u8>],
    last_resort: Option<&[u8]>,
) -> Result<u32, StoreError> {
    let stored: usize = c
        .prepare_cached("SELECT count(*) FROM key_packages WHERE owner = ?1")?
        .query_row([owner.0], |r| r.get(0))?;
    let total = stored.saturating_add(packages.len());
    if total > MAX_KEY_PACKAGES_STORED {
        return Err(StoreError::TooManyKeyPackages);
    }
    let mut insert = c.prepare_cached("INSERT INTO key_packages (owner, data) VALUES (?1, ?2)")?;
    for package in packages {
        insert.execute(params![owner.0, package])?;
    }
    if let Some(data) = last_resort {
        c.prepare_cached(
            "INSERT INTO last_resort_key_packages (owner, data) VALUES (?1, ?2)
             ON CONFLICT (owner) DO UPDATE SET data = excluded.data",
        )?
        .execute(params![owner.0, data])?;
    }
    u32::try_from(total).map_err(|_| StoreError::TooManyKeyPackages)
}

fn take_key_package(
    c: &Connection,
    owner: IdentityKey,
) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
    let oldest: Option<(i64, Vec<u8>)> = c
        .prepare_cached("SELECT id, data FROM key_packages WHERE owner = ?1 ORDER BY id LIMIT 1")?
        .query_row([owner.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((id, data)) = oldest {
        c.prepare_cached("DELETE FROM key_packages WHERE id = ?1")?
            .execute([id])?;
        return Ok(Some((data, false)));
    }
    let last_resort: Option<Vec<u8>> = c
        .prepare_cached("SELECT data FROM last_resort_key_packages WHERE owner = ?1")?
        .query_row([owner.0], |r| r.get(0))
        .optional()?;
    Ok(last_resort.map(|data| (data, true)))
}

fn create_channel(
    c: &Connection,
    a: IdentityKey,
    b: IdentityKey,
    new_id: ChannelId,
) -> Result<ChannelId, StoreError> {
    let (lo, hi) = (a.min(b), a.max(b));
    c.prepare_cached(
        "INSERT INTO channels (id, member_lo, member_hi) VALUES (?1, ?2, ?3)
         ON CONFLICT (member_lo, member_hi) DO NOTHING",
    )?
    .execute(params![new_id.0, lo.0, hi.0])?;
    let id = c
        .prepare_cached("SELECT id FROM channels WHERE member_lo = ?1 AND member_hi = ?2")?
        .query_row(params![lo.0, hi.0], |r| r.get(0))?;
    Ok(ChannelId(id))
}

fn channel_members(
    c: &Connection,
    id: ChannelId,
) -> Result<Option<(IdentityKey, IdentityKey)>, StoreError> {
    Ok(
        c.prepare_cached("SELECT member_lo, member_hi FROM channels WHERE id = ?1")?
            .query_row([id.0], |r| {
                Ok((IdentityKey(r.get(0)?), IdentityKey(r.get(1)?)))
            })
            .optional()?,
    )
}

fn enqueue(c: &Connection, mail: &NewMail) -> Result<EnqueueOutcome, StoreError> {
    let sender = mail.sender.0;
    let seen = c
        .prepare_cached("SELECT 1 FROM idempotency WHERE sender = ?1 AND key = ?2")?
        .exists(params![sender, mail.idempotency_key.0])?;
    if seen {
        return Ok(EnqueueOutcome::Duplicate);
    }

    if let Some(claim) = &mail.commit {
        let accepted = c
            .prepare_cached("SELECT epoch FROM group_epochs WHERE group_id = ?1")?
            .query_row([&claim.group_id], |r| r.get(0))
            .optional()?
            .map(epoch_from_sql);
        if let Some(accepted) = accepted.filter(|&accepted| accepted >= claim.epoch) {
            return Err(StoreError::StaleCommit {
                requested: claim.epoch,
                accepted,
            });
        }
        c.prepare_cached(
            "INSERT INTO group_epochs (group_id, epoch) VALUES (?1, ?2)
             ON CONFLICT (group_id) DO UPDATE SET epoch = excluded.epoch",
        )?
        .execute(params![claim.group_id, epoch_to_sql(claim.epoch)])?;
    }

    c.prepare_cached("INSERT INTO idempotency (sender, key, created_at_ms) VALUES (?1, ?2, ?3)")?
        .execute(params![sender, mail.idempotency_key.0, mail.now_ms])?;

    if mail.deliveries.is_empty() {
        return Ok(EnqueueOutcome::Stored { seqs: Vec::new() });
    }
    c.prepare_cached("INSERT INTO payloads (refs, data) VALUES (?1, ?2)")?
        .execute(params![mail.deliveries.len(), mail.payload])?;
    let payload_id = c.last_insert_rowid();

    let mut next_seq = c.prepare_cached(
        "INSERT INTO mailboxes (recipient, last_seq, depth) VALUES (?1, 1, 1)
         ON CONFLICT (recipient) DO UPDATE SET last_seq = last_seq + 1, depth = depth + 1
         RETURNING last_seq, depth",
    )?;
    let mut insert = c.prepare_cached(
        "INSERT INTO mail (recipient, seq, channel, payload_id, enqueued_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut seqs = Vec::with_capacity(mail.deliveries.len());
    for delivery in &mail.deliveries {
        let (seq, depth): (u64, usize) =
            next_seq.query_row([delivery.recipient.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if depth > MAX_QUEUE_DEPTH {
            return Err(StoreError::QueueFull(delivery.recipient));
        }
        let channel = delivery.channel.map(|ch| ch.0);
        insert.execute(params![
            delivery.recipient.0,
            seq,
            channel,
            payload_id,
            mail.now_ms
        ])?;
        seqs.push(seq);
    }
    Ok(EnqueueOutcome::Stored { seqs })
}

fn fetch(
    c: &Connection,
    recipient: IdentityKey,
    channel: Option<ChannelId>,
    limit: u32,
    byte_budget: usize,
) -> Result<Vec<Mail>, StoreError> {
    const ALL: &str = "SELECT m.seq, m.channel, m.enqueued_at_ms, length(p.data), p.data
        FROM mail m JOIN payloads p ON p.id = m.payload_id
        WHERE m.recipient = ?1 ORDER BY m.seq LIMIT ?2";
    const ONE_CHANNEL: &str = "SELECT m.seq, m.channel, m.enqueued_at_ms, length(p.data), p.data
        FROM mail m JOIN payloads p ON p.id = m.payload_id
        WHERE m.recipient = ?1 AND m.channel = ?3 ORDER BY m.seq LIMIT ?2";
    let mut stmt = c.prepare_cached(if channel.is_some() { ONE_CHANNEL } else { ALL })?;
    let mut rows = match channel {
        Some(ch) => stmt.query(params![recipient.0, limit, ch.0])?,
        None => stmt.query(params![recipient.0, limit])?,
    };
    let mut out = Vec::new();
    let mut used = 0usize;
    while let Some(row) = rows.next()? {
        // The length is read first so a payload past the budget is never copied.
        let len: usize = row.get(3)?;
        used = used.saturating_add(len);
        if used > byte_budget && !out.is_empty() {
            break;
        }
        let channel: Option<[u8; 16]> = row.get(1)?;
        out.push(Mail {
            seq: row.get(0)?,
            channel: channel.map(ChannelId),
            payload: row.get(4)?,
            enqueued_at_ms: row.get(2)?,
        });
    }
    Ok(out)
}

fn ack(c: &Connection, recipient: IdentityKey, seqs: &[u64]) -> Result<u32, StoreError> {
    let mut delete = c.prepare_cached(
        "DELETE FROM mail WHERE recipient = ?1 AND seq = ?2 RETURNING payload_id",
    )?;
    let mut release =
        c.prepare_cached("UPDATE payloads SET refs = refs - 1 WHERE id = ?1 RETURNING refs")?;
    let mut removed = 0u32;
    for &seq in seqs {
        // A seq past i64::MAX was never issued: unknown, so ignored.
        let Ok(seq) = i64::try_from(seq) else {
            continue;
        };
        let payload_id: Option<i64> = delete
            .query_row(params![recipient.0, seq], |r| r.get(0))
            .optional()?;
        let Some(payload_id) = payload_id else {
            continue;
        };
        removed = removed.saturating_add(1);
        let refs: i64 = release.query_row([payload_id], |r| r.get(0))?;
        if refs <= 0 {
            c.prepare_cached("DELETE FROM payloads WHERE id = ?1")?
                .execute([payload_id])?;
        }
    }
    if removed > 0 {
        c.prepare_cached("UPDATE mailboxes SET depth = depth - ?2 WHERE recipient = ?1")?
            .execute(params![recipient.0, removed])?;
    }
    Ok(removed)
}

fn purge_expired(
    c: &Connection,
    now_ms: u64,
    idempotency_before_ms: u64,
) -> Result<u64, StoreError> {
    let sessions = c
        .prepare_cached("DELETE FROM sessions WHERE expires_at_ms <= ?1")?
        .execute([now_ms])?;
    let keys = c
        .prepare_cached("DELETE FROM idempotency WHERE created_at_ms < ?1")?
        .execute([idempotency_before_ms])?;
    Ok(u64::try_from(sessions.saturating_add(keys)).unwrap_or(u64::MAX))
}

impl Store for SqliteStore {
    async fn server_secret(&self, name: &str, init: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let name = name.to_owned();
        self.call(move |c| server_secret(c, &name, &init)).await
    }

    async fn create_account(&self, account: Account) -> Result<(), StoreError> {
        self.call(move |c| create_account(c, &account)).await
    }

    async fn account(&self, username: &Username) -> Result<Option<Account>, StoreError> {
        let name = username.as_str().to_owned();
        self.call(move |c| account_by(c, "username", &name)).await
    }

    async fn account_by_identity(&self, key: &IdentityKey) -> Result<Option<Account>, StoreError> {
        let key = key.0;
        self.call(move |c| account_by(c, "identity_key", &key))
            .await
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        username: &Username,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let name = username.as_str().to_owned();
        self.call(move |c| {
            c.prepare_cached(
                "INSERT INTO sessions (token_hash, username, expires_at_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![token_hash, name, expires_at_ms])?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> Result<Option<Account>, StoreError> {
        self.call(move |c| session(c, token_hash, now_ms)).await
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<(), StoreError> {
        self.call(move |c| {
            c.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
                .execute([token_hash])?;
            Ok(())
        })
        .await
    }

    async fn add_key_packages(
        &self,
        owner: IdentityKey,
        packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    ) -> Result<u32, StoreError> {
        self.call(move |c| add_key_packages(c, owner, &packages, last_resort.as_deref()))
            .await
    }

    async fn take_key_package(
        &self,
        owner: IdentityKey,
    ) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        self.call(move |c| take_key_package(c, owner)).await
    }

    async fn create_channel(
        &self,
        a: IdentityKey,
        b: IdentityKey,
        new_id: ChannelId,
    ) -> Result<ChannelId, StoreError> {
        self.call(move |c| create_channel(c, a, b, new_id)).await
    }

    async fn channel_members(
        &self,
        id: ChannelId,
    ) -> Result<Option<(IdentityKey, IdentityKey)>, StoreError> {
        self.call(move |c| channel_members(c, id)).await
    }

    async fn enqueue(&self, mail: NewMail) -> Result<EnqueueOutcome, StoreError> {
        self.call(move |c| enqueue(c, &mail)).await
    }

    async fn fetch(
        &self,
        recipient: IdentityKey,
        channel: Option<ChannelId>,
        limit: u32,
        byte_budget: usize,
    ) -> Result<Vec<Mail>, StoreError> {
        self.call(move |c| fetch(c, recipient, channel, limit, byte_budget))
            .await
    }

    async fn ack(&self, recipient: IdentityKey, seqs: Vec<u64>) -> Result<u32, StoreError> {
        self.call(move |c| ack(c, recipient, &seqs)).await
    }

    async fn purge_expired(
        &self,
        now_ms: u64,
        idempotency_before_ms: u64,
    ) -> Result<u64, StoreError> {
        self.call(move |c| purge_expired(c, now_ms, idempotency_before_ms))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use quicproquo_protocol::types::IdempotencyKey;
    use tokio::task::JoinSet;

    use super::*;
    use crate::store::conformance::{self, key};
    use crate::store::{CommitClaim, Delivery};

    fn new_mail(sender: u8, idem: u8, recipient: u8, payload: &[u8]) -> NewMail {
        NewMail {
            sender: key(sender),
            idempotency_key: IdempotencyKey([idem; 16]),
            deliveries: vec![Delivery {
                recipient: key(recipient),
                channel: None,
            }],
            payload: payload.to_vec(),
            commit: None,
            now_ms: 1,
        }
    }

    fn commit(mut mail: NewMail, epoch: u64) -> NewMail {
        mail.commit = Some(CommitClaim {
            group_id: b"g".to_vec(),
            epoch: Epoch(epoch),
        });
        mail
    }

    /// A job for [`run_batch`], with the receiver of its answer.
    fn job<T: Send + 'static>(
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Call {
            work: Some(work),
            result: None,
            reply,
        });
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
        let seqs = match store.enqueue(commit(new_mail(1, 1, 2, b"kept"), 3)).await {
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
        let stale = store.enqueue(commit(new_mail(1, 2, 2, b"old"), 3)).await;
        assert!(
            matches!(stale, Err(StoreError::StaleCommit { .. })),
            "{stale:?}"
        );
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
        assert_eq!(get("synchronous"), 2, "FULL");
        assert_eq!(get("foreign_keys"), 1);
        assert_eq!(get("busy_timeout"), 5_000);
        assert_eq!(get("user_version"), 1);
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
        let (first, first_rx) = job(|c| enqueue(c, &commit(new_mail(1, 1, 9, b"e5"), 5)));
        // Stale because of the first job in the same, still uncommitted, batch.
        let (stale, stale_rx) = job(|c| enqueue(c, &commit(new_mail(1, 2, 9, b"e5'"), 5)));
        // Fails after writing: its writes must be undone, the others' kept.
        let (partial, partial_rx) = job(|c| {
            enqueue(c, &commit(new_mail(3, 1, 9, b"undone"), 7))?;
            Err::<(), _>(StoreError::QueueFull(key(9)))
        });
        let (plain, plain_rx) = job(|c| enqueue(c, &new_mail(2, 1, 9, b"plain")));
        let (retry, retry_rx) = job(|c| enqueue(c, &commit(new_mail(3, 1, 9, b"e6"), 6)));
        let (read, read_rx) = job(|c| fetch(c, key(9), None, 10, usize::MAX));
        let mut batch = vec![first, stale, partial, plain, retry, read];
        run_batch(&mut conn, &mut batch);
        assert!(batch.is_empty(), "every job answered");

        let stored = |r: Result<EnqueueOutcome, StoreError>| {
            assert!(matches!(r, Ok(EnqueueOutcome::Stored { .. })), "{r:?}");
        };
        stored(answer(first_rx));
        let stale = answer(stale_rx);
        assert!(
            matches!(
                stale,
                Err(StoreError::StaleCommit {
                    requested: Epoch(5),
                    accepted: Epoch(5)
                })
            ),
            "{stale:?}"
        );
        let partial = answer(partial_rx);
        assert!(
            matches!(partial, Err(StoreError::QueueFull(_))),
            "{partial:?}"
        );
        stored(answer(plain_rx));
        // Same sender and key as the failed job, and epoch 6 < 7: both of its
        // writes (idempotency key, epoch claim) were rolled back.
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

    /// Stale commits racing ordinary enqueues through the real writer thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_stale_commits_do_not_disturb_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("qpq.db")).expect("open"));
        let mut tasks = JoinSet::new();
        for i in 0..100u8 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                // Every even task claims epoch 1 of one group: exactly one wins.
                let mail = new_mail(i, 1, 50, &[i]);
                let mail = if i % 2 == 0 { commit(mail, 1) } else { mail };
                (i, store.enqueue(mail).await)
            });
        }
        let (mut commits, mut plain) = (0, 0);
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("task") {
                (i, Ok(EnqueueOutcome::Stored { .. })) if i % 2 == 0 => commits += 1,
                (_, Ok(EnqueueOutcome::Stored { .. })) => plain += 1,
                (i, Err(StoreError::StaleCommit { .. })) if i % 2 == 0 => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((commits, plain), (1, 50));
        let mail = store
            .fetch(key(50), None, 500, usize::MAX)
            .await
            .expect("fetch");
        assert_eq!(mail.len(), 51, "one commit and every ordinary message");
    }
}
