//! The SQL of each [`Store`](crate::store::Store) operation on PostgreSQL:
//! async functions on one transaction (reads: on a pooled connection), each
//! recording in `changes` what it changed, for the caller to notify.
//!
//! Concurrency (several nodes, one database, READ COMMITTED): every rule
//! that must have exactly one winner is decided by a row the database locks
//! or a unique key — the group's `revision` compare-and-swap, the
//! idempotency key's `ON CONFLICT DO NOTHING`, the account and channel keys,
//! and the `mailboxes` row, which every write to a mailbox updates first, so
//! its sequence numbers, depth, byte and sender-share counters change one
//! transaction at a time.

use deadpool_postgres::GenericClient;
use quicproquo_protocol::limits::{MAX_KEY_PACKAGES_STORED, MAX_QUEUE_DEPTH};
use quicproquo_protocol::types::{ChannelId, Epoch, IdempotencyKey, IdentityKey, Username};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::Fail;
use crate::store::Change;
use crate::store::{
    Account, AccountSummary, EnqueueOutcome, Expired, GroupEnqueueOutcome, GroupMail, Mail,
    MailboxSize, NewGroup, NewMail, Purge, StoreError, StoredGroup, StoredKeyPackage, Take,
};

pub(super) type Tx<'a> = deadpool_postgres::Transaction<'a>;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// PostgreSQL integers are signed: numbers the server makes (times,
/// counters) are far below `i64::MAX`; anything past it is clamped, which
/// for a time means "never".
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// As in SQLite, epochs are stored as their bit pattern.
fn epoch_to_sql(epoch: Epoch) -> i64 {
    i64::from_ne_bytes(epoch.0.to_ne_bytes())
}

fn epoch_from_sql(stored: i64) -> Epoch {
    Epoch(u64::from_ne_bytes(stored.to_ne_bytes()))
}

fn fixed<const N: usize>(bytes: Vec<u8>) -> Result<[u8; N], Fail> {
    bytes.try_into().map_err(|b: Vec<u8>| {
        Fail::Store(StoreError::Backend(format!(
            "a stored key has {} bytes, not {N}",
            b.len()
        )))
    })
}

// Statements go through deadpool's per-connection cache: parsed once.
async fn rows(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Fail> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, params).await?)
}

async fn opt(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Option<Row>, Fail> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, params).await?)
}

async fn one(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Row, Fail> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_one(&st, params).await?)
}

async fn exec(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<u64, Fail> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, params).await?)
}

const ACCOUNT_COLUMNS: &str = "username, identity_key, opaque_record, created_at_ms";

/// The username in column `i`.
fn username_at(row: &Row, i: usize) -> Result<Username, Fail> {
    let name: String = row.try_get(i)?;
    Username::parse(&name)
        .map_err(|e| Fail::Store(StoreError::Backend(format!("stored username: {e}"))))
}

fn account_row(row: &Row) -> Result<Account, Fail> {
    Ok(Account {
        username: username_at(row, 0)?,
        identity_key: IdentityKey(fixed(row.try_get(1)?)?),
        opaque_record: row.try_get(2)?,
        created_at_ms: uint(row.try_get(3)?),
    })
}

pub(super) async fn server_secret(tx: &Tx<'_>, name: &str, init: &[u8]) -> Result<Vec<u8>, Fail> {
    // A concurrent insert of the same name (another node) waits for ours,
    // then does nothing and reads the winner's value.
    exec(
        tx,
        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &init],
    )
    .await?;
    let row = one(
        tx,
        "SELECT value FROM server_secrets WHERE name = $1",
        &[&name],
    )
    .await?;
    Ok(row.try_get(0)?)
}

pub(super) async fn create_account(tx: &Tx<'_>, account: &Account) -> Result<(), Fail> {
    let name = account.username.as_str();
    if opt(
        tx,
        "SELECT 1 FROM retired_usernames WHERE username = $1",
        &[&name],
    )
    .await?
    .is_some()
    {
        return Err(StoreError::UsernameTaken.into());
    }
    // The unique keys decide between concurrent registrations; which one
    // was violated is told by its constraint's name.
    let inserted = exec(
        tx,
        "INSERT INTO accounts (username, identity_key, opaque_record, created_at_ms)
         VALUES ($1, $2, $3, $4)",
        &[
            &name,
            &&account.identity_key.0[..],
            &account.opaque_record,
            &int(account.created_at_ms),
        ],
    )
    .await;
    match inserted {
        Err(Fail::Db(e)) => match e.as_db_error().and_then(|d| d.constraint()) {
            Some("accounts_pkey") => Err(StoreError::UsernameTaken.into()),
            Some("accounts_identity_key_key") => Err(StoreError::IdentityKeyTaken.into()),
            _ => Err(Fail::Db(e)),
        },
        other => other.map(drop),
    }
}

pub(super) async fn account_by_username(
    c: &impl GenericClient,
    name: &str,
) -> Result<Option<Account>, Fail> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username = $1");
    opt(c, &sql, &[&name])
        .await?
        .as_ref()
        .map(account_row)
        .transpose()
}

pub(super) async fn username_retired(c: &impl GenericClient, name: &str) -> Result<bool, Fail> {
    let sql = "SELECT 1 FROM retired_usernames WHERE username = $1";
    Ok(opt(c, sql, &[&name]).await?.is_some())
}

pub(super) async fn account_by_identity(
    c: &impl GenericClient,
    key: &IdentityKey,
) -> Result<Option<Account>, Fail> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE identity_key = $1");
    opt(c, &sql, &[&&key.0[..]])
        .await?
        .as_ref()
        .map(account_row)
        .transpose()
}

pub(super) async fn session(
    c: &impl GenericClient,
    token_hash: [u8; 32],
    now_ms: u64,
) -> Result<Option<Account>, Fail> {
    opt(
        c,
        "SELECT a.username, a.identity_key, a.opaque_record, a.created_at_ms
         FROM sessions s JOIN accounts a ON a.username = s.username
         WHERE s.token_hash = $1 AND s.expires_at_ms > $2 AND a.disabled_at_ms IS NULL",
        &[&&token_hash[..], &int(now_ms)],
    )
    .await?
    .as_ref()
    .map(account_row)
    .transpose()
}

pub(super) async fn create_session(
    tx: &Tx<'_>,
    token_hash: [u8; 32],
    username: &str,
    expires_at_ms: u64,
) -> Result<(), Fail> {
    // FOR SHARE: a concurrent disabling (any node) either comes first and
    // is seen here, or waits and then ends this session too.
    let disabled = opt(
        tx,
        "SELECT disabled_at_ms IS NOT NULL FROM accounts WHERE username = $1 FOR SHARE",
        &[&username],
    )
    .await?;
    if let Some(row) = disabled {
        if row.try_get::<_, bool>(0)? {
            return Err(StoreError::AccountDisabled.into());
        }
    }
    exec(
        tx,
        "INSERT INTO sessions (token_hash, username, expires_at_ms) VALUES ($1, $2, $3)",
        &[&&token_hash[..], &username, &int(expires_at_ms)],
    )
    .await?;
    Ok(())
}

pub(super) async fn change_password(
    tx: &Tx<'_>,
    username: &Username,
    opaque_record: &[u8],
    keep: [u8; 32],
    changes: &mut Vec<Change>,
) -> Result<(), Fail> {
    let name = username.as_str();
    let changed = exec(
        tx,
        "UPDATE accounts SET opaque_record = $2 WHERE username = $1",
        &[&name, &opaque_record],
    )
    .await?;
    if changed == 0 {
        return Err(StoreError::Backend(format!("no account {name}")).into());
    }
    exec(
        tx,
        "DELETE FROM sessions WHERE username = $1 AND token_hash <> $2",
        &[&name, &&keep[..]],
    )
    .await?;
    changes.push(Change::Account(username.clone()));
    Ok(())
}

pub(super) async fn delete_account(
    tx: &Tx<'_>,
    username: &Username,
    now_ms: u64,
    changes: &mut Vec<Change>,
) -> Result<(), Fail> {
    let name = username.as_str();
    let row = opt(
        tx,
        "SELECT identity_key FROM accounts WHERE username = $1 FOR UPDATE",
        &[&name],
    )
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let key: [u8; 32] = fixed(row.try_get(0)?)?;
    // The mail goes through `ack`, which keeps payload reference counts and
    // the mailbox's counters right; the mailbox row stays (its last_seq).
    let seqs: Vec<u64> = rows(
        tx,
        "SELECT seq FROM mail WHERE recipient = $1 ORDER BY seq",
        &[&&key[..]],
    )
    .await?
    .iter()
    .map(|r| r.try_get::<_, i64>(0).map(uint))
    .collect::<Result<_, _>>()?;
    ack(tx, IdentityKey(key), &seqs).await?;
    for sql in [
        "DELETE FROM key_packages WHERE owner = $1",
        "DELETE FROM last_resort_key_packages WHERE owner = $1",
        "DELETE FROM channels WHERE member_lo = $1 OR member_hi = $1",
    ] {
        exec(tx, sql, &[&&key[..]]).await?;
    }
    // Sessions go with the account (ON DELETE CASCADE).
    exec(tx, "DELETE FROM accounts WHERE username = $1", &[&name]).await?;
    exec(
        tx,
        "INSERT INTO retired_usernames (username, retired_at_ms) VALUES ($1, $2)
         ON CONFLICT (username) DO NOTHING",
        &[&name, &int(now_ms)],
    )
    .await?;
    changes.push(Change::Account(username.clone()));
    Ok(())
}

pub(super) async fn delete_session(
    tx: &Tx<'_>,
    token_hash: [u8; 32],
    changes: &mut Vec<Change>,
) -> Result<(), Fail> {
    exec(
        tx,
        "DELETE FROM sessions WHERE token_hash = $1",
        &[&&token_hash[..]],
    )
    .await?;
    changes.push(Change::Session(token_hash));
    Ok(())
}

/// Serializes the key-package writes of one owner (the count and the
/// inserts must see each other), without a row to lock.
async fn lock_owner(tx: &Tx<'_>, owner: &IdentityKey) -> Result<(), Fail> {
    let mut first = [0u8; 8];
    first.copy_from_slice(&owner.0[..8]);
    exec(
        tx,
        "SELECT pg_advisory_xact_lock($1)",
        &[&i64::from_be_bytes(first)],
    )
    .await?;
    Ok(())
}

pub(super) async fn add_key_packages(
    tx: &Tx<'_>,
    owner: IdentityKey,
    suite: u16,
    packages: &[StoredKeyPackage],
    last_resort: Option<&StoredKeyPackage>,
    now_ms: u64,
) -> Result<u32, Fail> {
    lock_owner(tx, &owner).await?;
    let suite = i32::from(suite);
    let stored: i64 = one(
        tx,
        "SELECT count(*) FROM key_packages WHERE owner = $1 AND suite = $2 AND not_after_ms > $3",
        &[&&owner.0[..], &suite, &int(now_ms)],
    )
    .await?
    .try_get(0)?;
    let total = usize::try_from(stored)
        .unwrap_or(usize::MAX)
        .saturating_add(packages.len());
    if total > MAX_KEY_PACKAGES_STORED {
        return Err(StoreError::TooManyKeyPackages.into());
    }
    let data: Vec<&[u8]> = packages.iter().map(|p| &p.data[..]).collect();
    let not_after: Vec<i64> = packages.iter().map(|p| int(p.not_after_ms)).collect();
    // In the given order, so the identity keeps them oldest first.
    exec(
        tx,
        "INSERT INTO key_packages (owner, suite, data, not_after_ms)
         SELECT $1, $2, d, n FROM unnest($3::bytea[], $4::int8[]) WITH ORDINALITY AS t(d, n, i)
         ORDER BY i",
        &[&&owner.0[..], &suite, &data, &not_after],
    )
    .await?;
    if let Some(kp) = last_resort {
        exec(
            tx,
            "INSERT INTO last_resort_key_packages (owner, suite, data, not_after_ms)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (owner, suite)
             DO UPDATE SET data = excluded.data, not_after_ms = excluded.not_after_ms",
            &[&&owner.0[..], &suite, &kp.data, &int(kp.not_after_ms)],
        )
        .await?;
    }
    u32::try_from(total).map_err(|_| StoreError::TooManyKeyPackages.into())
}

pub(super) async fn take_key_package(
    tx: &Tx<'_>,
    owner: IdentityKey,
    suite: u16,
    now_ms: u64,
    take: Take,
) -> Result<Option<(Vec<u8>, bool)>, Fail> {
    let suite = i32::from(suite);
    if take == Take::OneTimeFirst {
        // SKIP LOCKED: two requesters at once (on any nodes) get two
        // different packages, neither waiting for the other.
        let taken = opt(
            tx,
            "DELETE FROM key_packages WHERE id = (
                 SELECT id FROM key_packages
                 WHERE owner = $1 AND suite = $2 AND not_after_ms > $3
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING data",
            &[&&owner.0[..], &suite, &int(now_ms)],
        )
        .await?;
        if let Some(row) = taken {
            return Ok(Some((row.try_get(0)?, false)));
        }
    }
    let last_resort = opt(
        tx,
        "SELECT data FROM last_resort_key_packages
         WHERE owner = $1 AND suite = $2 AND not_after_ms > $3",
        &[&&owner.0[..], &suite, &int(now_ms)],
    )
    .await?;
    last_resort
        .map(|row| Ok((row.try_get(0)?, true)))
        .transpose()
}

pub(super) async fn create_channel(
    tx: &Tx<'_>,
    a: IdentityKey,
    b: IdentityKey,
    new_id: ChannelId,
) -> Result<ChannelId, Fail> {
    let (lo, hi) = (a.min(b), a.max(b));
    exec(
        tx,
        "INSERT INTO channels (id, member_lo, member_hi) VALUES ($1, $2, $3)
         ON CONFLICT (member_lo, member_hi) DO NOTHING",
        &[&&new_id.0[..], &&lo.0[..], &&hi.0[..]],
    )
    .await?;
    let row = one(
        tx,
        "SELECT id FROM channels WHERE member_lo = $1 AND member_hi = $2",
        &[&&lo.0[..], &&hi.0[..]],
    )
    .await?;
    Ok(ChannelId(fixed(row.try_get(0)?)?))
}

pub(super) async fn channel_members(
    c: &impl GenericClient,
    id: ChannelId,
) -> Result<Option<(IdentityKey, IdentityKey)>, Fail> {
    let row = opt(
        c,
        "SELECT member_lo, member_hi FROM channels WHERE id = $1",
        &[&&id.0[..]],
    )
    .await?;
    row.map(|r| {
        Ok((
            IdentityKey(fixed(r.try_get(0)?)?),
            IdentityKey(fixed(r.try_get(1)?)?),
        ))
    })
    .transpose()
}

/// Records the `(sender, key)` pair; `false` if it was there (a concurrent
/// transaction storing the same pair makes this one wait for its outcome).
async fn first_time(
    tx: &Tx<'_>,
    sender: &IdentityKey,
    key: &IdempotencyKey,
    now_ms: u64,
) -> Result<bool, Fail> {
    let inserted = exec(
        tx,
        "INSERT INTO idempotency (sender, key, created_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (sender, key) DO NOTHING",
        &[&&sender.0[..], &&key.0[..], &int(now_ms)],
    )
    .await?;
    Ok(inserted == 1)
}

/// Stores a payload for `refs` mail rows; returns its id.
async fn insert_payload(
    tx: &Tx<'_>,
    refs: usize,
    data: &[u8],
    key: Option<&IdempotencyKey>,
) -> Result<i64, Fail> {
    let refs = i32::try_from(refs).unwrap_or(i32::MAX);
    let key = key.map(|k| &k.0[..]);
    Ok(one(
        tx,
        "INSERT INTO payloads (refs, data, idempotency_key) VALUES ($1, $2, $3) RETURNING id",
        &[&refs, &data, &key],
    )
    .await?
    .try_get(0)?)
}

/// Takes the next `count` sequence numbers of `recipient`'s mailbox and
/// counts `count` more messages of `bytes` bytes in all; returns (last seq,
/// depth, bytes) after. Locks the mailbox row until the transaction ends.
async fn bump_mailbox(
    tx: &Tx<'_>,
    recipient: &[u8],
    count: i64,
    bytes: i64,
) -> Result<(u64, u64, u64), Fail> {
    let row = one(
        tx,
        "INSERT INTO mailboxes AS m (recipient, last_seq, depth, bytes) VALUES ($1, $2, $2, $3)
         ON CONFLICT (recipient) DO UPDATE
         SET last_seq = m.last_seq + $2, depth = m.depth + $2, bytes = m.bytes + $3
         RETURNING last_seq, depth, bytes",
        &[&recipient, &count, &bytes],
    )
    .await?;
    Ok((
        uint(row.try_get(0)?),
        uint(row.try_get(1)?),
        uint(row.try_get(2)?),
    ))
}

/// Adds `size` to `sender`'s share of `recipient`'s mailbox; returns it.
async fn add_share(tx: &Tx<'_>, recipient: &[u8], sender: &[u8], size: i64) -> Result<u64, Fail> {
    let row = one(
        tx,
        "INSERT INTO mail_shares AS s (recipient, sender, bytes) VALUES ($1, $2, $3)
         ON CONFLICT (recipient, sender) DO UPDATE SET bytes = s.bytes + $3
         RETURNING bytes",
        &[&recipient, &sender, &size],
    )
    .await?;
    Ok(uint(row.try_get(0)?))
}

/// The mail rows of one payload, inserted in one statement.
#[derive(Default)]
struct MailRows<'a> {
    recipients: Vec<&'a [u8]>,
    seqs: Vec<i64>,
    channels: Vec<Option<&'a [u8]>>,
}

impl<'a> MailRows<'a> {
    fn push(&mut self, recipient: &'a [u8], seq: u64, channel: Option<&'a [u8]>) {
        self.recipients.push(recipient);
        self.seqs.push(int(seq));
        self.channels.push(channel);
    }

    async fn insert(
        &self,
        tx: &Tx<'_>,
        payload_id: i64,
        now_ms: u64,
        sender: &[u8],
        size: i64,
    ) -> Result<(), Fail> {
        if self.seqs.is_empty() {
            return Ok(());
        }
        exec(
            tx,
            "INSERT INTO mail (recipient, seq, channel, payload_id, enqueued_at_ms, sender, size)
             SELECT r, s, c, $4, $5, $6, $7
             FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) AS t(r, s, c)",
            &[
                &self.recipients,
                &self.seqs,
                &self.channels,
                &payload_id,
                &int(now_ms),
                &sender,
                &size,
            ],
        )
        .await?;
        Ok(())
    }
}

pub(super) async fn enqueue(
    tx: &Tx<'_>,
    mail: &NewMail,
    changes: &mut Vec<Change>,
) -> Result<EnqueueOutcome, Fail> {
    if !first_time(tx, &mail.sender, &mail.idempotency_key, mail.now_ms).await? {
        return Ok(EnqueueOutcome::Duplicate);
    }
    if mail.deliveries.is_empty() {
        return Ok(EnqueueOutcome::Stored { seqs: Vec::new() });
    }
    let payload_id = insert_payload(
        tx,
        mail.deliveries.len(),
        &mail.payload,
        Some(&mail.idempotency_key),
    )
    .await?;
    let size = int(mail.payload.len() as u64);
    let sender = &mail.sender.0[..];
    // Each mailbox once (a recipient may repeat), locked in key order so
    // that two enqueues to overlapping recipients cannot deadlock; checked
    // in the order of the request, so the first full one is named.
    let mut counts: Vec<(IdentityKey, i64)> = Vec::new();
    for d in &mail.deliveries {
        match counts.iter_mut().find(|(k, _)| *k == d.recipient) {
            Some((_, n)) => *n += 1,
            None => counts.push((d.recipient, 1)),
        }
    }
    let mut locked = counts.clone();
    locked.sort_unstable();
    let mut after = std::collections::BTreeMap::new();
    for (recipient, n) in locked {
        let bytes = size.saturating_mul(n);
        let (last, depth, total) = bump_mailbox(tx, &recipient.0, n, bytes).await?;
        let share = add_share(tx, &recipient.0, sender, bytes).await?;
        after.insert(recipient, (last + 1 - uint(n), depth, total, share));
    }
    for (recipient, _) in &counts {
        let (_, depth, total, share) = after[recipient];
        if depth > MAX_QUEUE_DEPTH as u64 || total > mail.quota.mailbox_bytes {
            return Err(StoreError::QueueFull(*recipient).into());
        }
        if share > mail.quota.sender_bytes {
            return Err(StoreError::ShareFull(*recipient).into());
        }
    }
    let mut rows = MailRows::default();
    let mut seqs = Vec::with_capacity(mail.deliveries.len());
    for delivery in &mail.deliveries {
        let next = &mut after
            .get_mut(&delivery.recipient)
            .ok_or_else(|| StoreError::Backend("a recipient was not counted".into()))?
            .0;
        let seq = *next;
        *next += 1;
        rows.push(
            &delivery.recipient.0,
            seq,
            delivery.channel.as_ref().map(|c| &c.0[..]),
        );
        seqs.push(seq);
        changes.push(Change::Mail(delivery.recipient));
    }
    rows.insert(tx, payload_id, mail.now_ms, sender, size)
        .await?;
    Ok(EnqueueOutcome::Stored { seqs })
}

pub(super) async fn fetch(
    c: &impl GenericClient,
    recipient: IdentityKey,
    channel: Option<ChannelId>,
    limit: u32,
    byte_budget: usize,
) -> Result<Vec<Mail>, Fail> {
    // The running total is summed in the database, so a payload past the
    // budget is never sent over; the first message always comes.
    let found = rows(
        c,
        "SELECT seq, channel, enqueued_at_ms, data, expired_for, expired_key
         FROM (SELECT m.seq, m.channel, m.enqueued_at_ms, p.data, m.expired_for, m.expired_key,
                      sum(length(p.data)) OVER (ORDER BY m.seq) AS used,
                      row_number() OVER (ORDER BY m.seq) AS n
               FROM mail m JOIN payloads p ON p.id = m.payload_id
               WHERE m.recipient = $1 AND ($4::bytea IS NULL OR m.channel = $4)
               ORDER BY m.seq LIMIT $2) t
         WHERE used <= $3 OR n = 1
         ORDER BY seq",
        &[
            &&recipient.0[..],
            &i64::from(limit),
            &int(byte_budget as u64),
            &channel.as_ref().map(|ch| &ch.0[..]),
        ],
    )
    .await?;
    found
        .iter()
        .map(|row| {
            let channel: Option<Vec<u8>> = row.try_get(1)?;
            let expired_for: Option<Vec<u8>> = row.try_get(4)?;
            let expired_key: Option<Vec<u8>> = row.try_get(5)?;
            let expired = match (expired_for, expired_key) {
                (Some(r), Some(k)) => Some(Expired {
                    recipient: IdentityKey(fixed(r)?),
                    idempotency_key: IdempotencyKey(fixed(k)?),
                }),
                _ => None,
            };
            Ok(Mail {
                seq: uint(row.try_get(0)?),
                channel: channel.map(fixed).transpose()?.map(ChannelId),
                payload: row.try_get(3)?,
                enqueued_at_ms: uint(row.try_get(2)?),
                expired,
            })
        })
        .collect()
}

pub(super) async fn ack(tx: &Tx<'_>, recipient: IdentityKey, seqs: &[u64]) -> Result<u32, Fail> {
    let mut removed = 0u32;
    for &seq in seqs {
        // A seq past i64::MAX was never issued: unknown, so ignored.
        let Ok(seq) = i64::try_from(seq) else {
            continue;
        };
        if remove_mail(tx, &recipient.0, seq).await? {
            removed = removed.saturating_add(1);
        }
    }
    Ok(removed)
}

/// Deletes one mail row and gives back what it held: the payload's
/// reference, the mailbox's depth and bytes, the sender's share. Returns
/// whether the row was there.
async fn remove_mail(tx: &Tx<'_>, recipient: &[u8], seq: i64) -> Result<bool, Fail> {
    let row = opt(
        tx,
        "DELETE FROM mail WHERE recipient = $1 AND seq = $2 RETURNING payload_id, sender, size",
        &[&recipient, &seq],
    )
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let payload_id: i64 = row.try_get(0)?;
    let sender: Option<Vec<u8>> = row.try_get(1)?;
    let size: i64 = row.try_get(2)?;
    exec(
        tx,
        "UPDATE mailboxes SET depth = depth - 1, bytes = greatest(bytes - $2, 0)
         WHERE recipient = $1",
        &[&recipient, &size],
    )
    .await?;
    let refs: i32 = one(
        tx,
        "UPDATE payloads SET refs = refs - 1 WHERE id = $1 RETURNING refs",
        &[&payload_id],
    )
    .await?
    .try_get(0)?;
    if refs <= 0 {
        exec(tx, "DELETE FROM payloads WHERE id = $1", &[&payload_id]).await?;
    }
    if let Some(sender) = sender {
        exec(
            tx,
            "WITH left_over AS (
                 UPDATE mail_shares SET bytes = bytes - $3
                 WHERE recipient = $1 AND sender = $2 RETURNING bytes)
             DELETE FROM mail_shares WHERE recipient = $1 AND sender = $2
                 AND (SELECT bytes FROM left_over) <= 0",
            &[&recipient, &sender, &size],
        )
        .await?;
    }
    Ok(true)
}

pub(super) async fn purge_expired(
    tx: &Tx<'_>,
    purge: Purge,
    changes: &mut Vec<Change>,
) -> Result<u64, Fail> {
    let mut gone = 0u64;
    for sql in [
        "DELETE FROM sessions WHERE expires_at_ms <= $1",
        "DELETE FROM key_packages WHERE not_after_ms <= $1",
        "DELETE FROM last_resort_key_packages WHERE not_after_ms <= $1",
    ] {
        gone = gone.saturating_add(exec(tx, sql, &[&int(purge.now_ms)]).await?);
    }
    gone = gone.saturating_add(
        exec(
            tx,
            "DELETE FROM idempotency WHERE created_at_ms < $1",
            &[&int(purge.idempotency_before_ms)],
        )
        .await?,
    );
    let expired = rows(
        tx,
        "SELECT m.recipient, m.seq, m.sender, p.idempotency_key
         FROM mail m JOIN payloads p ON p.id = m.payload_id
         WHERE m.enqueued_at_ms < $1 ORDER BY m.recipient, m.seq",
        &[&int(purge.mail_before_ms)],
    )
    .await?;
    for row in expired {
        let recipient: Vec<u8> = row.try_get(0)?;
        let seq: i64 = row.try_get(1)?;
        let sender: Option<Vec<u8>> = row.try_get(2)?;
        let key: Option<Vec<u8>> = row.try_get(3)?;
        if !remove_mail(tx, &recipient, seq).await? {
            continue;
        }
        gone = gone.saturating_add(1);
        if let (Some(sender), Some(key)) = (sender, key) {
            notify_expired(tx, &sender, &recipient, &key, purge.now_ms).await?;
            changes.push(Change::Mail(IdentityKey(fixed(sender)?)));
        }
    }
    Ok(gone)
}

/// Puts an expiry notice in `sender`'s mailbox (as SQLite does: no bytes,
/// not held to the quotas, counted in the depth).
async fn notify_expired(
    tx: &Tx<'_>,
    sender: &[u8],
    recipient: &[u8],
    key: &[u8],
    now_ms: u64,
) -> Result<(), Fail> {
    let payload_id = insert_payload(tx, 1, &[], None).await?;
    let (seq, _, _) = bump_mailbox(tx, sender, 1, 0).await?;
    exec(
        tx,
        "INSERT INTO mail (recipient, seq, channel, payload_id, enqueued_at_ms, sender, size,
                           expired_for, expired_key)
         VALUES ($1, $2, NULL, $3, $4, NULL, 0, $5, $6)",
        &[
            &sender,
            &int(seq),
            &payload_id,
            &int(now_ms),
            &recipient,
            &key,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn register_group(tx: &Tx<'_>, g: &NewGroup) -> Result<(), Fail> {
    let inserted = exec(
        tx,
        "INSERT INTO groups (group_id, revision, epoch, state, group_info, last_used_ms)
         VALUES ($1, 1, $2, $3, $4, $5) ON CONFLICT (group_id) DO NOTHING",
        &[
            &g.group_id,
            &epoch_to_sql(g.epoch),
            &g.state,
            &g.group_info,
            &int(g.now_ms),
        ],
    )
    .await?;
    if inserted == 0 {
        return Err(StoreError::GroupExists.into());
    }
    Ok(())
}

pub(super) async fn group(
    c: &impl GenericClient,
    group_id: &[u8],
) -> Result<Option<StoredGroup>, Fail> {
    let row = opt(
        c,
        "SELECT revision, epoch, state FROM groups WHERE group_id = $1",
        &[&group_id],
    )
    .await?;
    row.map(|r| {
        Ok(StoredGroup {
            revision: uint(r.try_get(0)?),
            epoch: epoch_from_sql(r.try_get(1)?),
            state: r.try_get(2)?,
        })
    })
    .transpose()
}

pub(super) async fn group_info(
    c: &impl GenericClient,
    group_id: &[u8],
) -> Result<Option<Vec<u8>>, Fail> {
    let row = opt(
        c,
        "SELECT group_info FROM groups WHERE group_id = $1",
        &[&group_id],
    )
    .await?;
    row.map(|r| Ok(r.try_get(0)?)).transpose()
}

pub(super) async fn enqueue_group(
    tx: &Tx<'_>,
    mail: &GroupMail,
    changes: &mut Vec<Change>,
) -> Result<GroupEnqueueOutcome, Fail> {
    if !first_time(tx, &mail.sender, &mail.idempotency_key, mail.now_ms).await? {
        return Ok(GroupEnqueueOutcome::Duplicate);
    }
    // The compare-and-swap: a concurrent commit (any node) holds the row
    // until it ends; then this UPDATE re-reads it and matches no row.
    let changed = match &mail.update {
        Some(u) => opt(
            tx,
            "UPDATE groups SET revision = revision + 1, epoch = $3, state = $4,
                 group_info = coalesce($5, group_info), last_used_ms = $6
             WHERE group_id = $1 AND revision = $2
             RETURNING revision",
            &[
                &mail.group_id,
                &int(u.from_revision),
                &epoch_to_sql(u.epoch),
                &u.state,
                &u.group_info,
                &int(mail.now_ms),
            ],
        )
        .await?
        .map(|row| row.try_get::<_, i64>(0).map(uint))
        .transpose()?
        .map(|revision| {
            changes.push(Change::Group {
                id: mail.group_id.clone(),
                revision,
            })
        })
        .is_some(),
        None => {
            exec(
                tx,
                "UPDATE groups SET last_used_ms = $2 WHERE group_id = $1",
                &[&mail.group_id, &int(mail.now_ms)],
            )
            .await?
                == 1
        }
    };
    if !changed {
        return Err(StoreError::GroupChanged.into());
    }
    let mut members = Vec::new();
    store_for_each(tx, mail, &mail.payload, &mail.recipients, &mut members).await?;
    if let Some((welcome, to)) = &mail.welcome {
        store_for_each(tx, mail, welcome, to, &mut members).await?;
    }
    changes.extend(
        members
            .iter()
            .filter(|(_, seq)| seq.is_some())
            .map(|(k, _)| Change::Mail(*k)),
    );
    Ok(GroupEnqueueOutcome::Stored { members })
}

/// Stores `payload` once and a mail row for each recipient whose mailbox has
/// room; one without is reported as `None`, not an error (see SQLite's).
async fn store_for_each(
    tx: &Tx<'_>,
    mail: &GroupMail,
    payload: &[u8],
    recipients: &[IdentityKey],
    out: &mut Vec<(IdentityKey, Option<u64>)>,
) -> Result<(), Fail> {
    if recipients.is_empty() {
        return Ok(());
    }
    let sender = &mail.sender.0[..];
    let size = int(payload.len() as u64);
    let payload_id = insert_payload(tx, 0, payload, Some(&mail.idempotency_key)).await?;
    let mut rows = MailRows::default();
    let mut stored = 0usize;
    for r in recipients {
        // Locks the mailbox first, so its counters cannot change between
        // this check and the increment below.
        let room = opt(
            tx,
            "SELECT m.depth, m.bytes, coalesce(s.bytes, 0)
             FROM mailboxes m
             LEFT JOIN mail_shares s ON s.recipient = m.recipient AND s.sender = $2
             WHERE m.recipient = $1 FOR UPDATE OF m",
            &[&&r.0[..], &sender],
        )
        .await?;
        let (depth, bytes, shared) = match room {
            Some(row) => (
                uint(row.try_get(0)?),
                uint(row.try_get(1)?),
                uint(row.try_get(2)?),
            ),
            None => (0, 0, 0),
        };
        let add = uint(size);
        let full = depth >= MAX_QUEUE_DEPTH as u64
            || bytes.saturating_add(add) > mail.quota.mailbox_bytes
            || shared.saturating_add(add) > mail.quota.sender_bytes;
        if full {
            out.push((*r, None));
            continue;
        }
        let (seq, _, _) = bump_mailbox(tx, &r.0, 1, size).await?;
        add_share(tx, &r.0, sender, size).await?;
        rows.push(&r.0, seq, None);
        out.push((*r, Some(seq)));
        stored += 1;
    }
    rows.insert(tx, payload_id, mail.now_ms, sender, size)
        .await?;
    if stored == 0 {
        exec(tx, "DELETE FROM payloads WHERE id = $1", &[&payload_id]).await?;
    } else {
        let refs = i32::try_from(stored).unwrap_or(i32::MAX);
        exec(
            tx,
            "UPDATE payloads SET refs = $2 WHERE id = $1",
            &[&payload_id, &refs],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn purge_idle_groups(
    tx: &Tx<'_>,
    idle_before_ms: u64,
    changes: &mut Vec<Change>,
) -> Result<u64, Fail> {
    let gone = rows(
        tx,
        "DELETE FROM groups WHERE last_used_ms < $1 RETURNING group_id",
        &[&int(idle_before_ms)],
    )
    .await?;
    // A purged group has no revision left: every cached copy must go.
    for row in &gone {
        changes.push(Change::Group {
            id: row.try_get(0)?,
            revision: u64::MAX,
        });
    }
    Ok(gone.len() as u64)
}

pub(super) async fn accounts(
    c: &impl GenericClient,
    after: &str,
    limit: u32,
    now_ms: u64,
) -> Result<Vec<AccountSummary>, Fail> {
    // COLLATE "C": bytewise order whatever the database's locale, as the
    // trait asks (and SQLite's BINARY collation gives).
    let found = rows(
        c,
        "SELECT a.username, a.identity_key, a.created_at_ms, a.disabled_at_ms IS NOT NULL,
             (SELECT count(*) FROM sessions s
                 WHERE s.username = a.username AND s.expires_at_ms > $3),
             coalesce(m.depth, 0), coalesce(m.bytes, 0),
             (SELECT count(*) FROM key_packages k
                 WHERE k.owner = a.identity_key AND k.not_after_ms > $3)
             + (SELECT count(*) FROM last_resort_key_packages l
                 WHERE l.owner = a.identity_key AND l.not_after_ms > $3)
         FROM accounts a LEFT JOIN mailboxes m ON m.recipient = a.identity_key
         WHERE a.username COLLATE \"C\" > $1
         ORDER BY a.username COLLATE \"C\" LIMIT $2",
        &[&after, &i64::from(limit), &int(now_ms)],
    )
    .await?;
    found
        .iter()
        .map(|r| {
            Ok(AccountSummary {
                username: username_at(r, 0)?,
                identity_key: IdentityKey(fixed(r.try_get(1)?)?),
                created_at_ms: uint(r.try_get(2)?),
                disabled: r.try_get(3)?,
                sessions: u32::try_from(r.try_get::<_, i64>(4)?).unwrap_or(u32::MAX),
                mail_count: uint(r.try_get(5)?),
                mail_bytes: uint(r.try_get(6)?),
                key_packages: u32::try_from(r.try_get::<_, i64>(7)?).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

pub(super) async fn set_disabled(
    tx: &Tx<'_>,
    username: &Username,
    disabled: bool,
    now_ms: u64,
    changes: &mut Vec<Change>,
) -> Result<bool, Fail> {
    let name = username.as_str();
    let changed = if disabled {
        exec(
            tx,
            "UPDATE accounts SET disabled_at_ms = coalesce(disabled_at_ms, $2) WHERE username = $1",
            &[&name, &int(now_ms)],
        )
        .await?
    } else {
        exec(
            tx,
            "UPDATE accounts SET disabled_at_ms = NULL WHERE username = $1",
            &[&name],
        )
        .await?
    };
    if changed == 0 {
        return Ok(false);
    }
    if disabled {
        exec(tx, "DELETE FROM sessions WHERE username = $1", &[&name]).await?;
    }
    changes.push(Change::Account(username.clone()));
    Ok(true)
}

pub(super) async fn end_sessions(
    tx: &Tx<'_>,
    username: &Username,
    changes: &mut Vec<Change>,
) -> Result<u32, Fail> {
    let ended = exec(
        tx,
        "DELETE FROM sessions WHERE username = $1",
        &[&username.as_str()],
    )
    .await?;
    if ended > 0 {
        changes.push(Change::Account(username.clone()));
    }
    Ok(u32::try_from(ended).unwrap_or(u32::MAX))
}

pub(super) async fn mailbox_sizes(
    c: &impl GenericClient,
    limit: u32,
) -> Result<Vec<MailboxSize>, Fail> {
    let found = rows(
        c,
        "SELECT a.username, m.depth, m.bytes
         FROM mailboxes m JOIN accounts a ON a.identity_key = m.recipient
         WHERE m.depth > 0
         ORDER BY m.bytes DESC, m.depth DESC, a.username COLLATE \"C\" LIMIT $1",
        &[&i64::from(limit)],
    )
    .await?;
    found
        .iter()
        .map(|r| {
            Ok(MailboxSize {
                username: username_at(r, 0)?,
                mail_count: uint(r.try_get(1)?),
                mail_bytes: uint(r.try_get(2)?),
            })
        })
        .collect()
}
