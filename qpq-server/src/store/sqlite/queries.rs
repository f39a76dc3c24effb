//! The SQL of each [`Store`](crate::store::Store) operation: plain functions
//! on a connection, run by the writer thread inside a job's savepoint.

use quicproquo_protocol::limits::{MAX_KEY_PACKAGES_STORED, MAX_QUEUE_DEPTH};
use quicproquo_protocol::types::{ChannelId, Epoch, IdentityKey, Username};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::store::{
    Account, EnqueueOutcome, GroupEnqueueOutcome, GroupMail, Mail, NewGroup, NewMail, StoreError,
    StoredGroup,
};

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

pub(super) fn server_secret(
    c: &Connection,
    name: &str,
    init: &[u8],
) -> Result<Vec<u8>, StoreError> {
    c.prepare_cached(
        "INSERT INTO server_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![name, init])?;
    let value = c
        .prepare_cached("SELECT value FROM server_secrets WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?;
    Ok(value)
}

pub(super) fn create_account(c: &Connection, account: &Account) -> Result<(), StoreError> {
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

pub(super) fn account_by(
    c: &Connection,
    column: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Account>, StoreError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {column} = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([value], account_row)
        .optional()?)
}

pub(super) fn session(
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

pub(super) fn create_session(
    c: &Connection,
    token_hash: [u8; 32],
    username: &str,
    expires_at_ms: u64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO sessions (token_hash, username, expires_at_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![token_hash, username, expires_at_ms])?;
    Ok(())
}

pub(super) fn delete_session(c: &Connection, token_hash: [u8; 32]) -> Result<(), StoreError> {
    c.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
        .execute([token_hash])?;
    Ok(())
}

pub(super) fn add_key_packages(
    c: &Connection,
    owner: IdentityKey,
    suite: u16,
    packages: &[Vec<u8>],
    last_resort: Option<&[u8]>,
) -> Result<u32, StoreError> {
    let stored: usize = c
        .prepare_cached("SELECT count(*) FROM key_packages WHERE owner = ?1 AND suite = ?2")?
        .query_row(params![owner.0, suite], |r| r.get(0))?;
    let total = stored.saturating_add(packages.len());
    if total > MAX_KEY_PACKAGES_STORED {
        return Err(StoreError::TooManyKeyPackages);
    }
    let mut insert =
        c.prepare_cached("INSERT INTO key_packages (owner, suite, data) VALUES (?1, ?2, ?3)")?;
    for package in packages {
        insert.execute(params![owner.0, suite, package])?;
    }
    if let Some(data) = last_resort {
        c.prepare_cached(
            "INSERT INTO last_resort_key_packages (owner, suite, data) VALUES (?1, ?2, ?3)
             ON CONFLICT (owner, suite) DO UPDATE SET data = excluded.data",
        )?
        .execute(params![owner.0, suite, data])?;
    }
    u32::try_from(total).map_err(|_| StoreError::TooManyKeyPackages)
}

pub(super) fn take_key_package(
    c: &Connection,
    owner: IdentityKey,
    suite: u16,
) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
    let oldest: Option<(i64, Vec<u8>)> = c
        .prepare_cached(
            "SELECT id, data FROM key_packages WHERE owner = ?1 AND suite = ?2 ORDER BY id LIMIT 1",
        )?
        .query_row(params![owner.0, suite], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((id, data)) = oldest {
        c.prepare_cached("DELETE FROM key_packages WHERE id = ?1")?
            .execute([id])?;
        return Ok(Some((data, false)));
    }
    let last_resort: Option<Vec<u8>> = c
        .prepare_cached(
            "SELECT data FROM last_resort_key_packages WHERE owner = ?1 AND suite = ?2",
        )?
        .query_row(params![owner.0, suite], |r| r.get(0))
        .optional()?;
    Ok(last_resort.map(|data| (data, true)))
}

pub(super) fn create_channel(
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

pub(super) fn channel_members(
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

pub(super) fn enqueue(c: &Connection, mail: &NewMail) -> Result<EnqueueOutcome, StoreError> {
    let sender = mail.sender.0;
    let seen = c
        .prepare_cached("SELECT 1 FROM idempotency WHERE sender = ?1 AND key = ?2")?
        .exists(params![sender, mail.idempotency_key.0])?;
    if seen {
        return Ok(EnqueueOutcome::Duplicate);
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

pub(super) fn fetch(
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

pub(super) fn ack(c: &Connection, recipient: IdentityKey, seqs: &[u64]) -> Result<u32, StoreError> {
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

pub(super) fn purge_expired(
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

pub(super) fn register_group(c: &Connection, g: &NewGroup) -> Result<(), StoreError> {
    let inserted = c
        .prepare_cached(
            "INSERT INTO groups (group_id, revision, epoch, state, group_info, last_used_ms)
             VALUES (?1, 1, ?2, ?3, ?4, ?5) ON CONFLICT (group_id) DO NOTHING",
        )?
        .execute(params![
            g.group_id,
            epoch_to_sql(g.epoch),
            g.state,
            g.group_info,
            g.now_ms
        ])?;
    if inserted == 0 {
        return Err(StoreError::GroupExists);
    }
    Ok(())
}

pub(super) fn group(c: &Connection, group_id: &[u8]) -> Result<Option<StoredGroup>, StoreError> {
    Ok(
        c.prepare_cached("SELECT revision, epoch, state FROM groups WHERE group_id = ?1")?
            .query_row([group_id], |r| {
                Ok(StoredGroup {
                    revision: r.get(0)?,
                    epoch: epoch_from_sql(r.get(1)?),
                    state: r.get(2)?,
                })
            })
            .optional()?,
    )
}

pub(super) fn group_info(c: &Connection, group_id: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        c.prepare_cached("SELECT group_info FROM groups WHERE group_id = ?1")?
            .query_row([group_id], |r| r.get(0))
            .optional()?,
    )
}

pub(super) fn enqueue_group(
    c: &Connection,
    mail: &GroupMail,
) -> Result<GroupEnqueueOutcome, StoreError> {
    let sender = mail.sender.0;
    let seen = c
        .prepare_cached("SELECT 1 FROM idempotency WHERE sender = ?1 AND key = ?2")?
        .exists(params![sender, mail.idempotency_key.0])?;
    if seen {
        return Ok(GroupEnqueueOutcome::Duplicate);
    }
    let changed = match &mail.update {
        Some(u) => c
            .prepare_cached(
                "UPDATE groups SET revision = revision + 1, epoch = ?3, state = ?4,
                     group_info = coalesce(?5, group_info), last_used_ms = ?6
                 WHERE group_id = ?1 AND revision = ?2",
            )?
            .execute(params![
                mail.group_id,
                u.from_revision,
                epoch_to_sql(u.epoch),
                u.state,
                u.group_info,
                mail.now_ms
            ])?,
        None => c
            .prepare_cached("UPDATE groups SET last_used_ms = ?2 WHERE group_id = ?1")?
            .execute(params![mail.group_id, mail.now_ms])?,
    };
    if changed == 0 {
        return Err(StoreError::GroupChanged);
    }
    c.prepare_cached("INSERT INTO idempotency (sender, key, created_at_ms) VALUES (?1, ?2, ?3)")?
        .execute(params![sender, mail.idempotency_key.0, mail.now_ms])?;

    let mut members = Vec::new();
    store_for_each(
        c,
        &mail.payload,
        &mail.recipients,
        mail.now_ms,
        &mut members,
    )?;
    if let Some((welcome, to)) = &mail.welcome {
        store_for_each(c, welcome, to, mail.now_ms, &mut members)?;
    }
    Ok(GroupEnqueueOutcome::Stored { members })
}

/// Stores `payload` once and a mail row for each recipient whose mailbox has
/// room; a full one is reported as `None`, not an error.
fn store_for_each(
    c: &Connection,
    payload: &[u8],
    recipients: &[IdentityKey],
    now_ms: u64,
    out: &mut Vec<(IdentityKey, Option<u64>)>,
) -> Result<(), StoreError> {
    if recipients.is_empty() {
        return Ok(());
    }
    c.prepare_cached("INSERT INTO payloads (refs, data) VALUES (0, ?1)")?
        .execute(params![payload])?;
    let payload_id = c.last_insert_rowid();
    let mut depth = c.prepare_cached("SELECT depth FROM mailboxes WHERE recipient = ?1")?;
    let mut next_seq = c.prepare_cached(
        "INSERT INTO mailboxes (recipient, last_seq, depth) VALUES (?1, 1, 1)
         ON CONFLICT (recipient) DO UPDATE SET last_seq = last_seq + 1, depth = depth + 1
         RETURNING last_seq",
    )?;
    let mut insert = c.prepare_cached(
        "INSERT INTO mail (recipient, seq, channel, payload_id, enqueued_at_ms)
         VALUES (?1, ?2, NULL, ?3, ?4)",
    )?;
    let mut stored = 0usize;
    for r in recipients {
        let full = depth
            .query_row([r.0], |row| row.get::<_, usize>(0))
            .optional()?
            .is_some_and(|d| d >= MAX_QUEUE_DEPTH);
        if full {
            out.push((*r, None));
            continue;
        }
        let seq: u64 = next_seq.query_row([r.0], |row| row.get(0))?;
        insert.execute(params![r.0, seq, payload_id, now_ms])?;
        out.push((*r, Some(seq)));
        stored += 1;
    }
    if stored == 0 {
        c.prepare_cached("DELETE FROM payloads WHERE id = ?1")?
            .execute([payload_id])?;
    } else {
        c.prepare_cached("UPDATE payloads SET refs = ?2 WHERE id = ?1")?
            .execute(params![payload_id, stored])?;
    }
    Ok(())
}

pub(super) fn purge_idle_groups(c: &Connection, idle_before_ms: u64) -> Result<u64, StoreError> {
    Ok(
        c.prepare_cached("DELETE FROM groups WHERE last_used_ms < ?1")?
            .execute([idle_before_ms])? as u64,
    )
}
