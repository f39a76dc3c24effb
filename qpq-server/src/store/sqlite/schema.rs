//! The database file and what is in it: the file is created private, each
//! connection gets its settings (WAL, `synchronous=NORMAL` with the writer's
//! own sync of the log before any answer), and the
//! migrations bring the schema to the newest version.
//!
//! Schema notes: a payload sent to many recipients is stored once
//! (`payloads`, reference-counted by its `mail` rows), because a group commit
//! can be megabytes fanned out to a thousand members. `mailboxes` keeps each
//! recipient's last sequence number (so a seq is never reused, even after the
//! mailbox was emptied) and queue depth (so the limit check does not count rows).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::store::StoreError;

/// How long SQLite retries when another process holds the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations; `PRAGMA user_version` counts how many have run.
pub(super) const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    SCHEMA_V2,
    SCHEMA_V3,
    SCHEMA_V4_BOUNDS,
    SCHEMA_V5_DISABLED,
];

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

-- One-time key packages per MLS ciphersuite (a package only joins a group
-- of its suite); the rowid orders them oldest first.
CREATE TABLE key_packages (
    id    INTEGER PRIMARY KEY,
    owner BLOB NOT NULL,
    suite INTEGER NOT NULL,
    data  BLOB NOT NULL
) STRICT;
CREATE INDEX key_packages_by_owner ON key_packages (owner, suite, id);

CREATE TABLE last_resort_key_packages (
    owner BLOB NOT NULL,
    suite INTEGER NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (owner, suite)
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

/// Protocol 2: the server validates groups. The epoch claims of protocol 1
/// go (a claim was only a number a sender wrote; any user could freeze a
/// group with one); a group's public MLS state replaces them. `revision`
/// increases with every change and is compare-and-swapped; `last_used_ms`
/// lets idle groups be purged.
const SCHEMA_V2: &str = "
DROP TABLE group_epochs;

CREATE TABLE groups (
    group_id     BLOB PRIMARY KEY,
    revision     INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    state        BLOB NOT NULL,
    group_info   BLOB NOT NULL,
    last_used_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX groups_by_use ON groups (last_used_ms);
";

/// Usernames of deleted accounts: kept so a name is never registered again
/// (a contact who knew the old owner would otherwise reach a stranger).
const SCHEMA_V3: &str = "
CREATE TABLE retired_usernames (
    username      TEXT PRIMARY KEY,
    retired_at_ms INTEGER NOT NULL
) STRICT;
";

/// Issue 15's bounds. Mail rows record their sender and size, mailboxes and
/// each sender's share of one count their bytes (kept as counters, like
/// `depth`, so a quota check reads one row), expired mail becomes a notice
/// to its sender, and key packages keep their lifetime's end. Key packages stored before were never
/// verified (any MLS header passed), so they are deleted: daemons upload a
/// verified stock, and their last-resort package, on their next connection.
const SCHEMA_V4_BOUNDS: &str = "
ALTER TABLE mail ADD COLUMN sender BLOB;
ALTER TABLE mail ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE mail SET size = (SELECT length(data) FROM payloads WHERE payloads.id = mail.payload_id);
CREATE INDEX mail_by_age ON mail (enqueued_at_ms);

ALTER TABLE mailboxes ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET bytes =
    (SELECT coalesce(sum(size), 0) FROM mail WHERE mail.recipient = mailboxes.recipient);

-- What one sender has waiting in one mailbox; a row goes when it reaches 0.
-- An expiry notice is a mail row to the sender of mail that expired: no
-- sender, an empty payload, and what it names (see `Envelope` in the
-- schema). The payload keeps its enqueue's idempotency key for it.
ALTER TABLE mail ADD COLUMN expired_for BLOB;
ALTER TABLE mail ADD COLUMN expired_key BLOB;
ALTER TABLE payloads ADD COLUMN idempotency_key BLOB;

CREATE TABLE mail_shares (
    recipient BLOB NOT NULL,
    sender    BLOB NOT NULL,
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (recipient, sender)
) STRICT, WITHOUT ROWID;

DELETE FROM key_packages;
DELETE FROM last_resort_key_packages;
ALTER TABLE key_packages ADD COLUMN not_after_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE last_resort_key_packages ADD COLUMN not_after_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX key_packages_by_expiry ON key_packages (not_after_ms);
CREATE INDEX last_resort_key_packages_by_expiry ON last_resort_key_packages (not_after_ms);
";

/// Accounts the operator disabled (`qpq-server admin disable`): when, or
/// NULL while enabled. Nothing else changes, so enabling restores the account.
const SCHEMA_V5_DISABLED: &str = "
ALTER TABLE accounts ADD COLUMN disabled_at_ms INTEGER;
";

#[cfg(unix)]
pub(super) fn create_private(path: &Path) -> std::io::Result<()> {
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
pub(super) fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Per-connection settings.
///
/// `synchronous=NORMAL`: COMMIT writes the write-ahead log without syncing
/// it; the writer's syncer thread `fdatasync`s the log after COMMIT and
/// before any answer, which is what `FULL` would do inside COMMIT, but off
/// the writer's path (see `writer`). SQLite still syncs the log before each
/// checkpoint and the database after it, so the log is only reused once its
/// content is on disk in the database.
pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "the database refused WAL mode (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The write-ahead log of the database at `path` (SQLite names it so).
pub(super) fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

/// Brings the schema to the newest version, refusing a database written by a
/// newer server.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
