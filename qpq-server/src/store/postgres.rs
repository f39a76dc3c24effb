//! [`PgStore`]: the [`Store`] on PostgreSQL, for several server nodes
//! sharing one database.
//!
//! A deadpool pool of tokio-postgres connections serves the calls: reads run
//! as single statements on a pooled connection, every write in one
//! transaction (READ COMMITTED) that commits before the call returns `Ok` —
//! with PostgreSQL's default `synchronous_commit = on` the write is then
//! durable. A transaction the database aborts for a deadlock or a
//! serialization failure (two nodes writing the same rows in different
//! orders) is retried a few times; every other failure rolls it back and is
//! returned.
//!
//! Writes that others must learn of send their [`Change`]s with `pg_notify`
//! inside the same transaction; `listen` keeps one LISTEN connection per
//! store (outside the pool) and feeds what arrives, from every node, into
//! [`PgStore::changes`].
//!
//! The URL and TLS are `options`', the schema and migrations `schema`'s,
//! the SQL `queries`'.

mod blobs;
mod listen;
pub mod options;
mod queries;
mod schema;
#[cfg(test)]
mod tests;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use quicproquo_protocol::types::{ChannelId, IdentityKey, Username};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;

pub use self::blobs::PgBlobStore;
pub use self::options::PgOptions;
use super::{
    Account, AccountSummary, Change, EnqueueOutcome, GroupEnqueueOutcome, GroupMail, Mail,
    MailboxSize, NewGroup, NewMail, Purge, Store, StoreError, StoredGroup, StoredKeyPackage, Take,
    CHANGES_BUFFER,
};

/// How many times a transaction aborted by a deadlock or serialization
/// failure is run again before the error is returned.
const ATTEMPTS: u32 = 5;

/// The PostgreSQL [`Store`]. Cheap to share behind an `Arc`.
pub struct PgStore {
    pool: Pool,
    changes: broadcast::Sender<Change>,
    /// Keeps the LISTEN connection up; aborted when the store is dropped.
    listener: tokio::task::JoinHandle<()>,
    name: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Why a query function failed: the database (maybe worth a retry) or a
/// rule of the store (an answer).
#[derive(Debug)]
enum Fail {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    /// A deadlock or serialization failure: the same transaction run again
    /// can succeed.
    fn retryable(&self) -> bool {
        match self {
            Fail::Db(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE
            ),
            Fail::Store(_) => false,
        }
    }

    fn into_store(self) -> StoreError {
        match self {
            Fail::Db(e) => backend(e),
            Fail::Store(e) => e,
        }
    }
}

/// tokio-postgres' `Display` says only the kind ("db error"); the cause
/// (the server's message) is in its source.
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(describe(&e))
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => backend(e),
        other => StoreError::Backend(format!("database connection pool: {other}")),
    }
}

/// Runs `$body` (a query function's future on transaction `$tx`, which
/// pushes its changes to `$changes`) in a transaction: notifies the changes,
/// commits, and returns the body's result; retries a deadlocked or
/// serialization-failed attempt. A macro rather than a function because the
/// body borrows the transaction it is given.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident, $changes:ident| $body:expr) => {{
        let mut client = $store.pool.get().await.map_err(pool_error)?;
        let mut attempt = 1;
        loop {
            let $tx = client.transaction().await.map_err(backend)?;
            #[allow(unused_mut)]
            let mut $changes: Vec<Change> = Vec::new();
            let outcome = match $body.await {
                Ok(value) => match listen::notify(&$tx, &$changes).await {
                    Ok(()) => $tx.commit().await.map(|()| value).map_err(Fail::from),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(value) => break Ok(value),
                Err(e) if e.retryable() && attempt < ATTEMPTS => {
                    tracing::debug!(
                        attempt,
                        "database transaction aborted by a conflict; retrying"
                    );
                    attempt += 1;
                }
                Err(e) => break Err(e.into_store()),
            }
        }
    }};
}

/// Runs a read (`$body`, a query function's future on pooled connection
/// `$c`) outside a transaction.
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {{
        let $c = $store.pool.get().await.map_err(pool_error)?;
        $body.await.map_err(Fail::into_store)
    }};
}

impl PgStore {
    /// Connects as [`PgStore::open`] does, changing nothing, and returns the
    /// schema version the database is at (0: empty) and the newest this
    /// binary knows: what `qpq-server check-config` reports.
    pub async fn probe(options: &PgOptions) -> Result<(usize, usize), StoreError> {
        let name = options.to_string();
        let fail = |what: &str, e: String| StoreError::Backend(format!("{name}: {what}: {e}"));
        let tls = options.tls().map_err(|e| fail("TLS", e))?;
        let (client, connection) = options
            .config
            .connect(tls)
            .await
            .map_err(|e| fail("cannot connect", describe(&e)))?;
        let driver = tokio::spawn(connection);
        let version = schema::version(&client).await;
        drop(client);
        let _ = driver.await;
        version.map_err(|e| fail("reading the schema version", e.to_string()))
    }

    /// Connects (checking the database is reachable), migrates the schema,
    /// and starts listening for changes. Errors name the database by its
    /// redacted URL.
    pub async fn open(options: &PgOptions) -> Result<Self, StoreError> {
        let name = options.to_string();
        let fail = |what: &str, e: String| StoreError::Backend(format!("{name}: {what}: {e}"));
        let tls = options.tls().map_err(|e| fail("TLS", e))?;
        let config = options.config.clone();
        let (mut client, connection) = config
            .connect(tls.clone())
            .await
            .map_err(|e| fail("cannot connect", describe(&e)))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %describe(&e), "migration connection ended");
            }
        });
        let migrated = schema::migrate(&mut client).await;
        drop(client);
        let _ = driver.await;
        migrated.map_err(|e| fail("migrating the schema", e.to_string()))?;

        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        let listening = listen::listen(&config, &tls, &changes)
            .await
            .map_err(|e| fail("cannot listen for changes", describe(&e)))?;
        let listener = tokio::spawn(listen::keep_listening(
            listening,
            config.clone(),
            tls.clone(),
            changes.clone(),
        ));
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size())
            .build()
            .map_err(|e| fail("connection pool", e.to_string()))?;
        Ok(PgStore {
            pool,
            changes,
            listener,
            name,
        })
    }
}

impl Store for PgStore {
    async fn server_secret(&self, name: &str, init: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        in_transaction!(self, |tx, changes| queries::server_secret(&tx, name, &init))
    }

    async fn create_account(&self, account: Account) -> Result<(), StoreError> {
        in_transaction!(self, |tx, changes| queries::create_account(&tx, &account))
    }

    async fn account(&self, username: &Username) -> Result<Option<Account>, StoreError> {
        read!(self, |c| queries::account_by_username(
            &c,
            username.as_str()
        ))
    }

    async fn account_by_identity(&self, key: &IdentityKey) -> Result<Option<Account>, StoreError> {
        read!(self, |c| queries::account_by_identity(&c, key))
    }

    async fn username_retired(&self, username: &Username) -> Result<bool, StoreError> {
        read!(self, |c| queries::username_retired(&c, username.as_str()))
    }

    async fn change_password(
        &self,
        username: &Username,
        opaque_record: Vec<u8>,
        keep: [u8; 32],
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx, changes| queries::change_password(
            &tx,
            username,
            &opaque_record,
            keep,
            &mut changes
        ))
    }

    async fn delete_account(&self, username: &Username, now_ms: u64) -> Result<(), StoreError> {
        in_transaction!(self, |tx, changes| queries::delete_account(
            &tx,
            username,
            now_ms,
            &mut changes
        ))
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        username: &Username,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx, changes| queries::create_session(
            &tx,
            token_hash,
            username.as_str(),
            expires_at_ms
        ))
    }

    async fn session(
        &self,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> Result<Option<Account>, StoreError> {
        read!(self, |c| queries::session(&c, token_hash, now_ms))
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<(), StoreError> {
        in_transaction!(self, |tx, changes| queries::delete_session(
            &tx,
            token_hash,
            &mut changes
        ))
    }

    async fn add_key_packages(
        &self,
        owner: IdentityKey,
        suite: u16,
        packages: Vec<StoredKeyPackage>,
        last_resort: Option<StoredKeyPackage>,
        now_ms: u64,
    ) -> Result<u32, StoreError> {
        in_transaction!(self, |tx, changes| queries::add_key_packages(
            &tx,
            owner,
            suite,
            &packages,
            last_resort.as_ref(),
            now_ms
        ))
    }

    async fn take_key_package(
        &self,
        owner: IdentityKey,
        suite: u16,
        now_ms: u64,
        take: Take,
    ) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        in_transaction!(self, |tx, changes| queries::take_key_package(
            &tx, owner, suite, now_ms, take
        ))
    }

    async fn create_channel(
        &self,
        a: IdentityKey,
        b: IdentityKey,
        new_id: ChannelId,
    ) -> Result<ChannelId, StoreError> {
        in_transaction!(self, |tx, changes| queries::create_channel(
            &tx, a, b, new_id
        ))
    }

    async fn channel_members(
        &self,
        id: ChannelId,
    ) -> Result<Option<(IdentityKey, IdentityKey)>, StoreError> {
        read!(self, |c| queries::channel_members(&c, id))
    }

    async fn enqueue(&self, mail: NewMail) -> Result<EnqueueOutcome, StoreError> {
        in_transaction!(self, |tx, changes| queries::enqueue(
            &tx,
            &mail,
            &mut changes
        ))
    }

    async fn fetch(
        &self,
        recipient: IdentityKey,
        channel: Option<ChannelId>,
        limit: u32,
        byte_budget: usize,
    ) -> Result<Vec<Mail>, StoreError> {
        read!(self, |c| queries::fetch(
            &c,
            recipient,
            channel,
            limit,
            byte_budget
        ))
    }

    async fn ack(&self, recipient: IdentityKey, seqs: Vec<u64>) -> Result<u32, StoreError> {
        in_transaction!(self, |tx, changes| queries::ack(&tx, recipient, &seqs))
    }

    async fn purge_expired(&self, purge: Purge) -> Result<u64, StoreError> {
        in_transaction!(self, |tx, changes| queries::purge_expired(
            &tx,
            purge,
            &mut changes
        ))
    }

    async fn register_group(&self, group: NewGroup) -> Result<(), StoreError> {
        in_transaction!(self, |tx, changes| queries::register_group(&tx, &group))
    }

    async fn group(&self, group_id: Vec<u8>) -> Result<Option<StoredGroup>, StoreError> {
        read!(self, |c| queries::group(&c, &group_id))
    }

    async fn group_info(&self, group_id: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        read!(self, |c| queries::group_info(&c, &group_id))
    }

    async fn enqueue_group(&self, mail: GroupMail) -> Result<GroupEnqueueOutcome, StoreError> {
        in_transaction!(self, |tx, changes| queries::enqueue_group(
            &tx,
            &mail,
            &mut changes
        ))
    }

    async fn purge_idle_groups(&self, idle_before_ms: u64) -> Result<u64, StoreError> {
        in_transaction!(self, |tx, changes| queries::purge_idle_groups(
            &tx,
            idle_before_ms,
            &mut changes
        ))
    }

    async fn accounts(
        &self,
        after: Option<Username>,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<AccountSummary>, StoreError> {
        // The empty string sorts before every username.
        let after = after.map(|u| u.as_str().to_owned()).unwrap_or_default();
        read!(self, |c| queries::accounts(&c, &after, limit, now_ms))
    }

    async fn set_disabled(
        &self,
        username: &Username,
        disabled: bool,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, |tx, changes| queries::set_disabled(
            &tx,
            username,
            disabled,
            now_ms,
            &mut changes
        ))
    }

    async fn end_sessions(&self, username: &Username) -> Result<u32, StoreError> {
        in_transaction!(self, |tx, changes| queries::end_sessions(
            &tx,
            username,
            &mut changes
        ))
    }

    async fn mailbox_sizes(&self, limit: u32) -> Result<Vec<MailboxSize>, StoreError> {
        read!(self, |c| queries::mailbox_sizes(&c, limit))
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}
