//! The PostgreSQL schema and its versioned migrations.
//!
//! `schema_version` holds one row: how many of [`MIGRATIONS`] have run.
//! Each step runs in its own transaction that first takes a transaction
//! advisory lock, so nodes starting at once on an empty database migrate one
//! after the other (the second finds the work done). A database whose
//! version is newer than this binary's is refused with the same message as
//! SQLite's.
//!
//! The tables mean what SQLite's do (see `sqlite::schema`): a payload is
//! stored once and reference-counted by its mail rows; `mailboxes` keeps each
//! recipient's last sequence number (never reused, so the row is never
//! deleted), queue depth and bytes, and doubles as the lock that orders
//! concurrent enqueues to one mailbox; `mail_shares` counts one sender's
//! bytes in one mailbox. PostgreSQL 15 is the oldest version tested.

use tokio_postgres::Client;

use super::backend;
use crate::store::StoreError;

/// The key of the advisory lock migrations hold (any constant: it only has
/// to be the same for every node).
const MIGRATION_LOCK: i64 = 0x7170_715f_7363_6865; // "qpq_sche"

/// Every step, oldest first; the version is how many have run.
pub(super) const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2_DISABLED, super::blobs::SCHEMA];

/// The schema of SQLite's version 4 (issue 15's bounds), in one step.
const SCHEMA_V1: &str = "
CREATE TABLE server_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE accounts (
    username      text PRIMARY KEY,
    identity_key  bytea NOT NULL UNIQUE CHECK (length(identity_key) = 32),
    opaque_record bytea NOT NULL,
    created_at_ms bigint NOT NULL
);

-- Usernames of deleted accounts, never registered again.
CREATE TABLE retired_usernames (
    username      text PRIMARY KEY,
    retired_at_ms bigint NOT NULL
);

CREATE TABLE sessions (
    token_hash    bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    username      text NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    expires_at_ms bigint NOT NULL
);
CREATE INDEX sessions_by_username ON sessions (username);
CREATE INDEX sessions_by_expiry ON sessions (expires_at_ms);

-- The identity orders one-time packages oldest first.
CREATE TABLE key_packages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner        bytea NOT NULL,
    suite        integer NOT NULL,
    data         bytea NOT NULL,
    not_after_ms bigint NOT NULL
);
CREATE INDEX key_packages_by_owner ON key_packages (owner, suite, id);
CREATE INDEX key_packages_by_expiry ON key_packages (not_after_ms);

CREATE TABLE last_resort_key_packages (
    owner        bytea NOT NULL,
    suite        integer NOT NULL,
    data         bytea NOT NULL,
    not_after_ms bigint NOT NULL,
    PRIMARY KEY (owner, suite)
);
CREATE INDEX last_resort_key_packages_by_expiry ON last_resort_key_packages (not_after_ms);

-- member_lo <= member_hi bytewise, so the pair is unordered.
CREATE TABLE channels (
    id        bytea PRIMARY KEY CHECK (length(id) = 16),
    member_lo bytea NOT NULL,
    member_hi bytea NOT NULL,
    UNIQUE (member_lo, member_hi),
    CHECK (member_lo <= member_hi)
);

CREATE TABLE mailboxes (
    recipient bytea PRIMARY KEY,
    last_seq  bigint NOT NULL,
    depth     bigint NOT NULL,
    bytes     bigint NOT NULL
);

CREATE TABLE mail_shares (
    recipient bytea NOT NULL,
    sender    bytea NOT NULL,
    bytes     bigint NOT NULL,
    PRIMARY KEY (recipient, sender)
);

-- Payloads are ciphertext: compressing them only costs time.
CREATE TABLE payloads (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    refs            integer NOT NULL,
    data            bytea NOT NULL,
    idempotency_key bytea
);
ALTER TABLE payloads ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE mail (
    recipient      bytea NOT NULL,
    seq            bigint NOT NULL,
    channel        bytea,
    payload_id     bigint NOT NULL,
    enqueued_at_ms bigint NOT NULL,
    sender         bytea,
    size           bigint NOT NULL,
    expired_for    bytea,
    expired_key    bytea,
    PRIMARY KEY (recipient, seq)
);
CREATE INDEX mail_by_channel ON mail (recipient, channel, seq);
CREATE INDEX mail_by_age ON mail (enqueued_at_ms);

CREATE TABLE idempotency (
    sender        bytea NOT NULL,
    key           bytea NOT NULL,
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (sender, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at_ms);

-- epoch holds the u64 bit pattern, as in SQLite.
CREATE TABLE groups (
    group_id     bytea PRIMARY KEY,
    revision     bigint NOT NULL,
    epoch        bigint NOT NULL,
    state        bytea NOT NULL,
    group_info   bytea NOT NULL,
    last_used_ms bigint NOT NULL
);
CREATE INDEX groups_by_use ON groups (last_used_ms);
";

/// As SQLite's step 5: accounts the operator disabled, and since when (NULL
/// while enabled).
const SCHEMA_V2_DISABLED: &str = "
ALTER TABLE accounts ADD COLUMN disabled_at_ms bigint;
";

/// The schema version the database is at (0: never migrated), read
/// without changing anything, beside the newest this binary knows.
pub(super) async fn version(client: &Client) -> Result<(usize, usize), StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(backend)?
        .get(0);
    let version = if exists {
        let v: i32 = client
            .query_one("SELECT version FROM schema_version", &[])
            .await
            .map_err(backend)?
            .get(0);
        usize::try_from(v).unwrap_or(usize::MAX)
    } else {
        0
    };
    Ok((version, MIGRATIONS.len()))
}

/// Brings the schema to the newest version, one step per transaction,
/// refusing a database written by a newer server.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    migrate_to(client, MIGRATIONS).await
}

/// [`migrate`] with the given steps (tests run an older list).
pub(super) async fn migrate_to(client: &mut Client, steps: &[&str]) -> Result<(), StoreError> {
    loop {
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                 version  integer NOT NULL
             );
             INSERT INTO schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;",
        )
        .await
        .map_err(backend)?;
        let version: i32 = tx
            .query_one("SELECT version FROM schema_version", &[])
            .await
            .map_err(backend)?
            .get(0);
        let done = usize::try_from(version).unwrap_or(usize::MAX);
        if done > steps.len() {
            return Err(StoreError::Backend(format!(
                "the database schema is version {version}; this server knows up to {}",
                steps.len()
            )));
        }
        let Some(step) = steps.get(done) else {
            tx.commit().await.map_err(backend)?;
            return Ok(());
        };
        tx.batch_execute(step).await.map_err(backend)?;
        tx.execute("UPDATE schema_version SET version = version + 1", &[])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::info!(version = done + 1, "database schema migrated");
    }
}
