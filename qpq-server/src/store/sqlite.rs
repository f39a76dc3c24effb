//! [`SqliteStore`]: the embedded [`Store`], one SQLite file in WAL mode.
//!
//! One dedicated OS thread owns the only connection. Every call, read or
//! write, becomes a job sent to it over a bounded channel, with a oneshot for
//! the answer. The thread does group commit: it waits for one job, takes
//! whatever else is queued (up to `MAX_BATCH`), and runs the whole batch in
//! one `BEGIN IMMEDIATE` transaction, each job inside its own savepoint so a
//! job that fails (a stale commit, a full mailbox) is rolled back alone.
//! Answers are sent only after the batch is on disk: `COMMIT` writes it to
//! the write-ahead log (`synchronous=NORMAL`) and a second thread, the
//! syncer, `fdatasync`s the log before answering, while the writer already
//! runs the next batch; if `COMMIT` or the sync fails every job of the batch
//! gets [`StoreError::Backend`]. One fsync thus covers many requests.
//!
//! Changes ([`Change`]) are announced from the async methods once their
//! call committed, to this process's subscribers only: an SQLite database
//! has one server.
//!
//! Reads go through the same thread: they see every earlier write, need no
//! second connection, and a read-only batch commits without touching the disk.
//! When every handle is dropped the channel closes; the thread finishes the
//! queued jobs, closes the database and exits.
//!
//! The schema and its notes are in `schema`, the writer thread in `writer`,
//! and the SQL of each operation in `queries`.

mod queries;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::path::Path;
use std::thread;

use quicproquo_protocol::types::{ChannelId, IdentityKey, Username};
use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use self::writer::{Call, Job};
use super::{
    Account, AccountSummary, Change, EnqueueOutcome, GroupEnqueueOutcome, GroupMail, Mail,
    MailboxSize, NewGroup, NewMail, Purge, Store, StoreError, StoredGroup, StoredKeyPackage, Take,
};

/// The schema version this build writes (`PRAGMA user_version`); a newer
/// database is refused (`qpq-server check-config` and `restore` read it).
pub const SCHEMA_VERSION: usize = schema::MIGRATIONS.len();

/// The SQLite [`Store`]. Cheap to share behind an `Arc`; see the module docs.
pub struct SqliteStore {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// Closed by the writer thread when it exits.
    stopped: oneshot::Receiver<()>,
    changes: broadcast::Sender<Change>,
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
        schema::create_private(path)
            .map_err(|e| StoreError::Backend(format!("creating {}: {e}", path.display())))?;
        let mut conn = Connection::open(path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        let wal = schema::wal_path(path);
        let (jobs, queue) = mpsc::channel(writer::QUEUE_CAPACITY);
        let (stop, stopped) = oneshot::channel();
        thread::Builder::new()
            .name("qpq-sqlite".into())
            .spawn(move || writer::writer(conn, wal, queue, stop))
            .map_err(|e| StoreError::Backend(format!("starting the database thread: {e}")))?;
        let (changes, _) = broadcast::channel(super::CHANGES_BUFFER);
        Ok(Self {
            jobs,
            stopped,
            changes,
        })
    }

    /// Announces a committed change; nobody listening is fine.
    fn announce(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    /// Drops this handle and waits until the writer thread has finished every
    /// queued job and closed the database. Dropping the store without calling
    /// this is also safe; it just does not wait.
    pub async fn close(self) {
        let Self { jobs, stopped, .. } = self;
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
        let job: Box<dyn Job> = Box::new(Call::new(work, reply));
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

impl Store for SqliteStore {
    async fn server_secret(&self, name: &str, init: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let name = name.to_owned();
        self.call(move |c| queries::server_secret(c, &name, &init))
            .await
    }

    async fn create_account(&self, account: Account) -> Result<(), StoreError> {
        self.call(move |c| queries::create_account(c, &account))
            .await
    }

    async fn account(&self, username: &Username) -> Result<Option<Account>, StoreError> {
        let name = username.as_str().to_owned();
        self.call(move |c| queries::account_by(c, "username", &name))
            .await
    }

    async fn account_by_identity(&self, key: &IdentityKey) -> Result<Option<Account>, StoreError> {
        let key = key.0;
        self.call(move |c| queries::account_by(c, "identity_key", &key))
            .await
    }

    async fn username_retired(&self, username: &Username) -> Result<bool, StoreError> {
        let name = username.as_str().to_owned();
        self.call(move |c| queries::username_retired(c, &name))
            .await
    }

    async fn change_password(
        &self,
        username: &Username,
        opaque_record: Vec<u8>,
        keep: [u8; 32],
    ) -> Result<(), StoreError> {
        let name = username.as_str().to_owned();
        self.call(move |c| queries::change_password(c, &name, &opaque_record, keep))
            .await?;
        self.announce(Change::Account(username.clone()));
        Ok(())
    }

    async fn delete_account(&self, username: &Username, now_ms: u64) -> Result<(), StoreError> {
        let name = username.as_str().to_owned();
        self.call(move |c| queries::delete_account(c, &name, now_ms))
            .await?;
        self.announce(Change::Account(username.clone()));
        Ok(())
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        username: &Username,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let name = username.as_str().to_owned();
        self.call(move |c| queries::create_session(c, token_hash, &name, expires_at_ms))
            .await
    }

    async fn session(
        &self,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> Result<Option<Account>, StoreError> {
        self.call(move |c| queries::session(c, token_hash, now_ms))
            .await
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<(), StoreError> {
        self.call(move |c| queries::delete_session(c, token_hash))
            .await?;
        self.announce(Change::Session(token_hash));
        Ok(())
    }

    async fn add_key_packages(
        &self,
        owner: IdentityKey,
        suite: u16,
        packages: Vec<StoredKeyPackage>,
        last_resort: Option<StoredKeyPackage>,
        now_ms: u64,
    ) -> Result<u32, StoreError> {
        self.call(move |c| {
            queries::add_key_packages(c, owner, suite, &packages, last_resort.as_ref(), now_ms)
        })
        .await
    }

    async fn take_key_package(
        &self,
        owner: IdentityKey,
        suite: u16,
        now_ms: u64,
        take: Take,
    ) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        self.call(move |c| queries::take_key_package(c, owner, suite, now_ms, take))
            .await
    }

    async fn create_channel(
        &self,
        a: IdentityKey,
        b: IdentityKey,
        new_id: ChannelId,
    ) -> Result<ChannelId, StoreError> {
        self.call(move |c| queries::create_channel(c, a, b, new_id))
            .await
    }

    async fn channel_members(
        &self,
        id: ChannelId,
    ) -> Result<Option<(IdentityKey, IdentityKey)>, StoreError> {
        self.call(move |c| queries::channel_members(c, id)).await
    }

    async fn enqueue(&self, mail: NewMail) -> Result<EnqueueOutcome, StoreError> {
        let recipients: Vec<IdentityKey> = mail.deliveries.iter().map(|d| d.recipient).collect();
        let outcome = self.call(move |c| queries::enqueue(c, &mail)).await?;
        if let EnqueueOutcome::Stored { .. } = outcome {
            for r in recipients {
                self.announce(Change::Mail(r));
            }
        }
        Ok(outcome)
    }

    async fn fetch(
        &self,
        recipient: IdentityKey,
        channel: Option<ChannelId>,
        limit: u32,
        byte_budget: usize,
    ) -> Result<Vec<Mail>, StoreError> {
        self.call(move |c| queries::fetch(c, recipient, channel, limit, byte_budget))
            .await
    }

    async fn ack(&self, recipient: IdentityKey, seqs: Vec<u64>) -> Result<u32, StoreError> {
        self.call(move |c| queries::ack(c, recipient, &seqs)).await
    }

    async fn purge_expired(&self, purge: Purge) -> Result<u64, StoreError> {
        self.call(move |c| queries::purge_expired(c, purge)).await
    }

    async fn register_group(&self, group: NewGroup) -> Result<(), StoreError> {
        self.call(move |c| queries::register_group(c, &group)).await
    }

    async fn group(&self, group_id: Vec<u8>) -> Result<Option<StoredGroup>, StoreError> {
        self.call(move |c| queries::group(c, &group_id)).await
    }

    async fn group_info(&self, group_id: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(move |c| queries::group_info(c, &group_id)).await
    }

    async fn enqueue_group(&self, mail: GroupMail) -> Result<GroupEnqueueOutcome, StoreError> {
        let changed = mail.update.as_ref().map(|u| Change::Group {
            id: mail.group_id.clone(),
            revision: u.from_revision + 1,
        });
        let outcome = self.call(move |c| queries::enqueue_group(c, &mail)).await?;
        if let GroupEnqueueOutcome::Stored { members } = &outcome {
            if let Some(change) = changed {
                self.announce(change);
            }
            for (member, seq) in members {
                if seq.is_some() {
                    self.announce(Change::Mail(*member));
                }
            }
        }
        Ok(outcome)
    }

    async fn purge_idle_groups(&self, idle_before_ms: u64) -> Result<u64, StoreError> {
        self.call(move |c| queries::purge_idle_groups(c, idle_before_ms))
            .await
    }

    async fn accounts(
        &self,
        after: Option<Username>,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<AccountSummary>, StoreError> {
        // The empty string sorts before every username.
        let after = after.map(|u| u.as_str().to_owned()).unwrap_or_default();
        self.call(move |c| queries::accounts(c, &after, limit, now_ms))
            .await
    }

    async fn set_disabled(
        &self,
        username: &Username,
        disabled: bool,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let name = username.as_str().to_owned();
        let found = self
            .call(move |c| queries::set_disabled(c, &name, disabled, now_ms))
            .await?;
        if found {
            self.announce(Change::Account(username.clone()));
        }
        Ok(found)
    }

    async fn end_sessions(&self, username: &Username) -> Result<u32, StoreError> {
        let name = username.as_str().to_owned();
        let ended = self.call(move |c| queries::end_sessions(c, &name)).await?;
        if ended > 0 {
            self.announce(Change::Account(username.clone()));
        }
        Ok(ended)
    }

    async fn mailbox_sizes(&self, limit: u32) -> Result<Vec<MailboxSize>, StoreError> {
        self.call(move |c| queries::mailbox_sizes(c, limit)).await
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

/// Every page in one `sqlite3_backup_step(-1)`: one read transaction, so
/// the copy is one consistent snapshot (in steps, a write between two steps
/// would restart the copy). Retries while the source is busy or locked.
/// `qpq-server backup` copies the store and the blob metadata with it.
pub(crate) fn copy_in_one_step(src: &Connection, dst: &mut Connection) -> rusqlite::Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let backup = Backup::new(src, dst)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            _ => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("the database stayed busy for 60 s".into()),
                ))
            }
        }
    }
}
