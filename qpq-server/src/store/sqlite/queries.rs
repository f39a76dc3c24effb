//! The SQL of each [`Store`](crate::store::Store) operation: plain functions
//! on a connection, run by the writer thread inside a job's savepoint.

use quicproquo_protocol::limits::{MAX_KEY_PACKAGES_STORED, MAX_QUEUE_DEPTH};
use quicproquo_protocol::types::{ChannelId, Epoch, IdempotencyKey, IdentityKey, Username};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::store::{
    Account, AccountSummary, EnqueueOutcome, Expired, GroupEnqueueOutcome, GroupMail, Mail,
    MailboxSize, NewGroup, NewMail, Purge, StoreError, StoredGroup, StoredKeyPackage, Take,
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

/// The username in column `i`.
fn username_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Username> {
    let name: String = row.get(i)?;
    Username::parse(&name)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

fn account_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        username: username_at(row, 0)?,
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
    if c.prepare_cached(
        "SELECT 1 FROM accounts WHERE username = ?1
         UNION ALL SELECT 1 FROM retired_usernames WHERE username = ?1",
    )?
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
             WHERE s.token_hash = ?1 AND s.expires_at_ms > ?2 AND a.disabled_at_ms IS NULL",
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
    let disabled: Option<bool> = c
        .prepare_cached("SELECT disabled_at_ms IS NOT NULL FROM accounts WHERE username = ?1")?
        .query_row([username], |r| r.get(0))
        .optional()?;
    if disabled == Some(true) {
        return Err(StoreError::AccountDisabled);
    }
    c.prepare_cached(
        "INSERT INTO sessions (token_hash, username, expires_at_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![token_hash, username, expires_at_ms])?;
    Ok(())
}

pub(super) fn accounts(
    c: &Connection,
    after: &str,
    limit: u32,
    now_ms: u64,
) -> Result<Vec<AccountSummary>, StoreError> {
    // Usernames are TEXT with the default BINARY collation: bytewise order.
    let mut stmt = c.prepare_cached(
        "SELECT a.username, a.identity_key, a.created_at_ms, a.disabled_at_ms IS NOT NULL,
             (SELECT count(*) FROM sessions s
                 WHERE s.username = a.username AND s.expires_at_ms > ?3),
             coalesce(m.depth, 0), coalesce(m.bytes, 0),
             (SELECT count(*) FROM key_packages k
                 WHERE k.owner = a.identity_key AND k.not_after_ms > ?3)
             + (SELECT count(*) FROM last_resort_key_packages l
                 WHERE l.owner = a.identity_key AND l.not_after_ms > ?3)
         FROM accounts a LEFT JOIN mailboxes m ON m.recipient = a.identity_key
         WHERE a.username > ?1 ORDER BY a.username LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit, now_ms], |r| {
        Ok(AccountSummary {
            username: username_at(r, 0)?,
            identity_key: IdentityKey(r.get(1)?),
            created_at_ms: r.get(2)?,
            disabled: r.get(3)?,
            sessions: r.get(4)?,
            mail_count: r.get(5)?,
            mail_bytes: r.get(6)?,
            key_packages: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn set_disabled(
    c: &Connection,
    username: &str,
    disabled: bool,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let changed = if disabled {
        c.prepare_cached(
            "UPDATE accounts SET disabled_at_ms = coalesce(disabled_at_ms, ?2) WHERE username = ?1",
        )?
        .execute(params![username, now_ms])?
    } else {
        c.prepare_cached("UPDATE accounts SET disabled_at_ms = NULL WHERE username = ?1")?
            .execute([username])?
    };
    if changed > 0 && disabled {
        end_sessions(c, username)?;
    }
    Ok(changed > 0)
}

pub(super) fn end_sessions(c: &Connection, username: &str) -> Result<u32, StoreError> {
    let ended = c
        .prepare_cached("DELETE FROM sessions WHERE username = ?1")?
        .execute([username])?;
    Ok(u32::try_from(ended).unwrap_or(u32::MAX))
}

pub(super) fn mailbox_sizes(c: &Connection, limit: u32) -> Result<Vec<MailboxSize>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT a.username, m.depth, m.bytes
         FROM mailboxes m JOIN accounts a ON a.identity_key = m.recipient
         WHERE m.depth > 0
         ORDER BY m.bytes DESC, m.depth DESC, a.username LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(MailboxSize {
            username: username_at(r, 0)?,
            mail_count: r.get(1)?,
            mail_bytes: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn change_password(
    c: &Connection,
    username: &str,
    opaque_record: &[u8],
    keep: [u8; 32],
) -> Result<(), StoreError> {
    let changed = c
        .prepare_cached("UPDATE accounts SET opaque_record = ?2 WHERE username = ?1")?
        .execute(params![username, opaque_record])?;
    if changed == 0 {
        return Err(StoreError::Backend(format!("no account {username}")));
    }
    c.prepare_cached("DELETE FROM sessions WHERE username = ?1 AND token_hash != ?2")?
        .execute(params![username, keep])?;
    Ok(())
}

pub(super) fn username_retired(c: &Connection, username: &str) -> Result<bool, StoreError> {
    Ok(
        c.prepare_cached("SELECT 1 FROM retired_usernames WHERE username = ?1")?
            .exists([username])?,
    )
}

pub(super) fn delete_account(
    c: &Connection,
    username: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    let key: Option<[u8; 32]> = c
        .prepare_cached("SELECT identity_key FROM accounts WHERE username = ?1")?
        .query_row([username], |r| r.get(0))
        .optional()?;
    let Some(key) = key else {
        return Ok(());
    };
    // The mail goes through `ack`, which keeps payload reference counts and
    // the mailbox depth right; the mailbox row itself stays (its last_seq).
    let seqs: Vec<u64> = c
        .prepare_cached("SELECT seq FROM mail WHERE recipient = ?1")?
        .query_map([key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ack(c, IdentityKey(key), &seqs)?;
    for sql in [
        "DELETE FROM key_packages WHERE owner = ?1",
        "DELETE FROM last_resort_key_packages WHERE owner = ?1",
        "DELETE FROM channels WHERE member_lo = ?1 OR member_hi = ?1",
    ] {
        c.prepare_cached(sql)?.execute([key])?;
    }
    // Sessions go with the account (ON DELETE CASCADE).
    c.prepare_cached("DELETE FROM accounts WHERE username = ?1")?
        .execute([username])?;
    c.prepare_cached(
        "INSERT INTO retired_usernames (username, retired_at_ms)
         VALUES (?1, ?2)",
    )?
    .execute(params![username, now_ms])?;
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
    packages: &[StoredKeyPackage],
    last_resort: Option<&StoredKeyPackage>,
    now_ms: u64,
) -> Result<u32, StoreError> {
    let stored: usize = c
        .prepare_cached(
            "SELECT count(*) FROM key_packages
             WHERE owner = ?1 AND suite = ?2 AND not_after_ms > ?3",
        )?
        .query_row(params![owner.0, suite, now_ms], |r| r.get(0))?;
    let total = stored.saturating_add(packages.len());
    if total > MAX_KEY_PACKAGES_STORED {
        return Err(StoreError::TooManyKeyPackages);
    }
    let mut insert = c.prepare_cached(
        "INSERT INTO key_packages (owner, suite, data, not_after_ms) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for package in packages {
        insert.execute(params![owner.0, suite, package.data, package.not_after_ms])?;
    }
    if let Some(kp) = last_resort {
        c.prepare_cached(
            "INSERT INTO last_resort_key_packages (owner, suite, data, not_after_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (owner, suite)
             DO UPDATE SET data = excluded.data, not_after_ms = excluded.not_after_ms",
        )?
        .execute(params![owner.0, suite, kp.data, kp.not_after_ms])?;
    }
    u32::try_from(total).map_err(|_| StoreError::TooManyKeyPackages)
}

pub(super) fn take_key_package(
    c: &Connection,
    owner: IdentityKey,
    suite: u16,
    now_ms: u64,
    take: Take,
) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
    if take == Take::OneTimeFirst {
        let oldest: Option<(i64, Vec<u8>)> = c
            .prepare_cached(
                "SELECT id, data FROM key_packages
                 WHERE owner = ?1 AND suite = ?2 AND not_after_ms > ?3
                 ORDER BY id LIMIT 1",
            )?
            .query_row(params![owner.0, suite, now_ms], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some((id, data)) = oldest {
            c.prepare_cached("DELETE FROM key_packages WHERE id = ?1")?
                .execute([id])?;
            return Ok(Some((data, false)));
        }
    }
    let last_resort: Option<Vec<u8>> = c
        .prepare_cached(
            "SELECT data FROM last_resort_key_packages
             WHERE owner = ?1 AND suite = ?2 AND not_after_ms > ?3",
        )?
        .query_row(params![owner.0, suite, now_ms], |r| r.get(0))
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
    c.prepare_cached("INSERT INTO payloads (refs, data, idempotency_key) VALUES (?1, ?2, ?3)")?
        .execute(params![
            mail.deliveries.len(),
            mail.payload,
            mail.idempotency_key.0
        ])?;
    let payload_id = c.last_insert_rowid();
    let size = mail.payload.len() as u64;

    // Counted before the checks: a refusal rolls back the job's savepoint.
    let mut next_seq = c.prepare_cached(
        "INSERT INTO mailboxes (recipient, last_seq, depth, bytes) VALUES (?1, 1, 1, ?2)
         ON CONFLICT (recipient)
         DO UPDATE SET last_seq = last_seq + 1, depth = depth + 1, bytes = bytes + ?2
         RETURNING last_seq, depth, bytes",
    )?;
    let mut share = c.prepare_cached(
        "INSERT INTO mail_shares (recipient, sender, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (recipient, sender) DO UPDATE SET bytes = bytes + ?3
         RETURNING bytes",
    )?;
    let mut insert = c.prepare_cached(
        "INSERT INTO mail (recipient, seq, channel, payload_id, enqueued_at_ms, sender, size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut seqs = Vec::with_capacity(mail.deliveries.len());
    for delivery in &mail.deliveries {
        let recipient = delivery.recipient;
        let (seq, depth, bytes): (u64, usize, u64) = next_seq
            .query_row(params![recipient.0, size], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if depth > MAX_QUEUE_DEPTH || bytes > mail.quota.mailbox_bytes {
            return Err(StoreError::QueueFull(recipient));
        }
        let shared: u64 = share.query_row(params![recipient.0, sender, size], |r| r.get(0))?;
        if shared > mail.quota.sender_bytes {
            return Err(StoreError::ShareFull(recipient));
        }
        let channel = delivery.channel.map(|ch| ch.0);
        insert.execute(params![
            recipient.0,
            seq,
            channel,
            payload_id,
            mail.now_ms,
            sender,
            size
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
    const ALL: &str = "SELECT m.seq, m.channel, m.enqueued_at_ms, length(p.data), p.data,
            m.expired_for, m.expired_key
        FROM mail m JOIN payloads p ON p.id = m.payload_id
        WHERE m.recipient = ?1 ORDER BY m.seq LIMIT ?2";
    const ONE_CHANNEL: &str = "SELECT m.seq, m.channel, m.enqueued_at_ms, length(p.data), p.data,
            m.expired_for, m.expired_key
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
        let expired_for: Option<[u8; 32]> = row.get(5)?;
        let expired_key: Option<[u8; 16]> = row.get(6)?;
        out.push(Mail {
            seq: row.get(0)?,
            channel: channel.map(ChannelId),
            payload: row.get(4)?,
            enqueued_at_ms: row.get(2)?,
            expired: expired_for.zip(expired_key).map(|(r, k)| Expired {
                recipient: IdentityKey(r),
                idempotency_key: IdempotencyKey(k),
            }),
        });
    }
    Ok(out)
}

pub(super) fn ack(c: &Connection, recipient: IdentityKey, seqs: &[u64]) -> Result<u32, StoreError> {
    let mut removed = 0u32;
    for &seq in seqs {
        // A seq past i64::MAX was never issued: unknown, so ignored.
        let Ok(seq) = i64::try_from(seq) else {
            continue;
        };
        if remove_mail(c, &recipient.0, seq)? {
            removed = removed.saturating_add(1);
        }
    }
    Ok(removed)
}

/// Deletes one mail row and gives back what it held: the payload's
/// reference, the mailbox's depth and bytes, the sender's share. Returns
/// whether the row was there.
fn remove_mail(c: &Connection, recipient: &[u8], seq: i64) -> Result<bool, StoreError> {
    let row: Option<(i64, Option<Vec<u8>>, i64)> = c
        .prepare_cached(
            "DELETE FROM mail WHERE recipient = ?1 AND seq = ?2
             RETURNING payload_id, sender, size",
        )?
        .query_row(params![recipient, seq], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((payload_id, sender, size)) = row else {
        return Ok(false);
    };
    let refs: i64 = c
        .prepare_cached("UPDATE payloads SET refs = refs - 1 WHERE id = ?1 RETURNING refs")?
        .query_row([payload_id], |r| r.get(0))?;
    if refs <= 0 {
        c.prepare_cached("DELETE FROM payloads WHERE id = ?1")?
            .execute([payload_id])?;
    }
    c.prepare_cached(
        "UPDATE mailboxes SET depth = depth - 1, bytes = max(bytes - ?2, 0) WHERE recipient = ?1",
    )?
    .execute(params![recipient, size])?;
    // Mail stored before senders were recorded has none, and no share.
    if let Some(sender) = sender {
        let left: Option<i64> = c
            .prepare_cached(
                "UPDATE mail_shares SET bytes = bytes - ?3 WHERE recipient = ?1 AND sender = ?2
                 RETURNING bytes",
            )?
            .query_row(params![recipient, sender, size], |r| r.get(0))
            .optional()?;
        if left.is_some_and(|b| b <= 0) {
            c.prepare_cached("DELETE FROM mail_shares WHERE recipient = ?1 AND sender = ?2")?
                .execute(params![recipient, sender])?;
        }
    }
    Ok(true)
}

pub(super) fn purge_expired(c: &Connection, purge: Purge) -> Result<u64, StoreError> {
    let mut gone = 0usize;
    for sql in [
        "DELETE FROM sessions WHERE expires_at_ms <= ?1",
        "DELETE FROM key_packages WHERE not_after_ms <= ?1",
        "DELETE FROM last_resort_key_packages WHERE not_after_ms <= ?1",
    ] {
        gone = gone.saturating_add(c.prepare_cached(sql)?.execute([purge.now_ms])?);
    }
    gone = gone.saturating_add(
        c.prepare_cached("DELETE FROM idempotency WHERE created_at_ms < ?1")?
            .execute([purge.idempotency_before_ms])?,
    );
    type Expiring = (Vec<u8>, i64, Option<[u8; 32]>, Option<[u8; 16]>);
    let expired: Vec<Expiring> = c
        .prepare_cached(
            "SELECT m.recipient, m.seq, m.sender, p.idempotency_key
             FROM mail m JOIN payloads p ON p.id = m.payload_id
             WHERE m.enqueued_at_ms < ?1",
        )?
        .query_map([purge.mail_before_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (recipient, seq, sender, key) in expired {
        if !remove_mail(c, &recipient, seq)? {
            continue;
        }
        gone = gone.saturating_add(1);
        if let (Some(sender), Some(key)) = (sender, key) {
            notify_expired(c, &sender, &recipient, &key, purge.now_ms)?;
        }
    }
    Ok(u64::try_from(gone).unwrap_or(u64::MAX))
}

/// Puts an expiry notice in `sender`'s mailbox: `recipient`'s copy of the
/// enqueue `key` is gone. Not held to the quotas (it has no bytes, and
/// there is at most one per row the sender's own mail held); it does count
/// in the depth, like any mail.
fn notify_expired(
    c: &Connection,
    sender: &[u8],
    recipient: &[u8],
    key: &[u8],
    now_ms: u64,
) -> Result<(), StoreError> {
    c.prepare_cached("INSERT INTO payloads (refs, data) VALUES (1, x'')")?
        .execute([])?;
    let payload_id = c.last_insert_rowid();
    let seq: i64 = c
        .prepare_cached(
            "INSERT INTO mailboxes (recipient, last_seq, depth, bytes) VALUES (?1, 1, 1, 0)
             ON CONFLICT (recipient) DO UPDATE SET last_seq = last_seq + 1, depth = depth + 1
             RETURNING last_seq",
        )?
        .query_row([sender], |r| r.get(0))?;
    c.prepare_cached(
        "INSERT INTO mail (recipient, seq, channel, payload_id, enqueued_at_ms, sender, size,
                           expired_for, expired_key)
         VALUES (?1, ?2, NULL, ?3, ?4, NULL, 0, ?5, ?6)",
    )?
    .execute(params![sender, seq, payload_id, now_ms, recipient, key])?;
    Ok(())
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
    store_for_each(c, mail, &mail.payload, &mail.recipients, &mut members)?;
    if let Some((welcome, to)) = &mail.welcome {
        store_for_each(c, mail, welcome, to, &mut members)?;
    }
    Ok(GroupEnqueueOutcome::Stored { members })
}

/// Stores `payload` once and a mail row for each recipient whose mailbox has
/// room (depth, bytes, and the sender's share of its bytes); one without is
/// reported as `None`, not an error. Rows record the sender and size, as
/// [`enqueue`]'s do, so the quotas and expiry treat group mail alike.
fn store_for_each(
    c: &Connection,
    mail: &GroupMail,
    payload: &[u8],
    recipients: &[IdentityKey],
    out: &mut Vec<(IdentityKey, Option<u64>)>,
) -> Result<(), StoreError> {
    if recipients.is_empty() {
        return Ok(());
    }
    let sender = mail.sender.0;
    let size = payload.len() as u64;
    c.prepare_cached("INSERT INTO payloads (refs, data, idempotency_key) VALUES (0, ?1, ?2)")?
        .execute(params![payload, mail.idempotency_key.0])?;
    let payload_id = c.last_insert_rowid();
    let mut room = c.prepare_cached(
        "SELECT m.depth, m.bytes, coalesce(s.bytes, 0)
         FROM mailboxes m LEFT JOIN mail_shares s ON s.recipient = m.recipient AND s.sender = ?2
         WHERE m.recipient = ?1",
    )?;
    let mut next_seq = c.prepare_cached(
        "INSERT INTO mailboxes (recipient, last_seq, depth, bytes) VALUES (?1, 1, 1, ?2)
         ON CONFLICT (recipient)
         DO UPDATE SET last_seq = last_seq + 1, depth = depth + 1, bytes = bytes + ?2
         RETURNING last_seq",
    )?;
    let mut share = c.prepare_cached(
        "INSERT INTO mail_shares (recipient, sender, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (recipient, sender) DO UPDATE SET bytes = bytes + ?3",
    )?;
    let mut insert = c.prepare_cached(
        "INSERT INTO mail (recipient, seq, channel, payload_id, enqueued_at_ms, sender, size)
         VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6)",
    )?;
    let mut stored = 0usize;
    for r in recipients {
        let (depth, bytes, shared): (usize, u64, u64) = room
            .query_row(params![r.0, sender], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?
            .unwrap_or((0, 0, 0));
        let full = depth >= MAX_QUEUE_DEPTH
            || bytes.saturating_add(size) > mail.quota.mailbox_bytes
            || shared.saturating_add(size) > mail.quota.sender_bytes;
        if full {
            out.push((*r, None));
            continue;
        }
        let seq: u64 = next_seq.query_row(params![r.0, size], |row| row.get(0))?;
        share.execute(params![r.0, sender, size])?;
        insert.execute(params![r.0, seq, payload_id, mail.now_ms, sender, size])?;
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
