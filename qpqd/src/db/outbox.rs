//! The outbox: what the user sent, durable before `send` returns, drained to
//! the server when it is reachable. An entry keeps the plaintext body (the
//! file is encrypted) and is encrypted for the group only when it is sent,
//! so a message queued across epoch changes is still readable. Its
//! idempotency key is fixed at queue time: a retry after a crash is stored
//! once by the server.
//!
//! Each conversation is a queue of its own: its messages go in order, but
//! a conversation that cannot send (in back-off, or waiting for a commit:
//! the caller's `skip` list) holds up no other. An entry refused for good is
//! parked with its reason and holds up nothing, not even its conversation.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::Id;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub conversation: Id,
    pub body: Vec<u8>,
    pub idempotency_key: [u8; 16],
    pub message_id: Option<Id>,
}

/// Queues a delivery receipt for message `id` of the DM `conversation`.
/// Receipts are not sent in order with messages: `first` hands them out
/// only when no message waits, [`RECEIPT_DELAY_MS`] after they were queued,
/// all of a conversation's together (one MLS message for a burst).
pub fn push_receipt(c: &Connection, conversation: Id, id: Id, now_ms: u64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO outbox (conversation, kind, body, idempotency_key, message_id, created_ms)
         VALUES (?1, 'receipt', x'', ?2, ?3, ?4)",
        params![conversation, Id::random(), id, now_ms as i64],
    )?;
    Ok(())
}

/// How long a receipt waits before it is sent, so that a burst of messages
/// gets one receipt and receipts keep out of the way of the conversation.
pub const RECEIPT_DELAY_MS: u64 = 250;

/// What the outbox should send next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A message (in order: the oldest first).
    Message(Entry),
    /// Receipts for these message ids of one conversation; remove `seqs`
    /// once sent.
    Receipts {
        conversation: Id,
        ids: Vec<Id>,
        seqs: Vec<u64>,
        idempotency_key: [u8; 16],
    },
    /// Only receipts wait, the oldest due in this many milliseconds.
    Wait(u64),
    Empty,
}

pub fn push(
    c: &Connection,
    conversation: Id,
    body: &[u8],
    message_id: Option<Id>,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    let key = Id::random();
    c.execute(
        "INSERT INTO outbox (conversation, kind, body, idempotency_key, message_id, created_ms)
         VALUES (?1, 'app', ?2, ?3, ?4, ?5)",
        params![conversation, body, key, message_id, now_ms as i64],
    )?;
    Ok(c.last_insert_rowid() as u64)
}

/// What to send next at `now_ms`, leaving out the conversations in `skip`:
/// the oldest head of a conversation's messages (each conversation drains in
/// order), else the receipts that are due.
pub fn next(c: &Connection, now_ms: u64, skip: &[Id]) -> rusqlite::Result<Next> {
    if let Some(e) = first(c, skip)? {
        return Ok(Next::Message(e));
    }
    let oldest: Option<(Id, i64)> = c
        .prepare_cached(&format!(
            "SELECT conversation, created_ms FROM outbox
              WHERE kind = 'receipt' AND conversation NOT IN ({})
              ORDER BY seq LIMIT 1",
            placeholders(skip.len())
        ))?
        .query_row(params_from_iter(skip), |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((conversation, created)) = oldest else {
        return Ok(Next::Empty);
    };
    let due = (created.max(0) as u64).saturating_add(RECEIPT_DELAY_MS);
    if due > now_ms {
        return Ok(Next::Wait(due - now_ms));
    }
    let mut st = c.prepare(
        "SELECT seq, message_id, idempotency_key FROM outbox
          WHERE kind = 'receipt' AND conversation = ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st.query_map(
        params![conversation, crate::payload::MAX_RECEIPT_IDS as i64],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, Id>(1)?,
                r.get::<_, Id>(2)?,
            ))
        },
    )?;
    // The batch's idempotency key comes from its entries' keys, so a retry
    // of the same batch is stored once by the server, while a batch that
    // grew meanwhile (after a crash) is a new message, not a "duplicate"
    // that would drop the receipts it added.
    let (mut ids, mut seqs, mut key) = (Vec::new(), Vec::new(), Sha256::new());
    for row in rows {
        let (seq, id, k) = row?;
        seqs.push(seq);
        ids.push(id);
        key.update(k.0);
    }
    let mut idempotency_key = [0u8; 16];
    idempotency_key.copy_from_slice(&key.finalize()[..16]);
    Ok(Next::Receipts {
        conversation,
        ids,
        seqs,
        idempotency_key,
    })
}

/// `n` SQL parameters, `?,?,…` (an empty `IN ()` is valid in SQLite).
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// The oldest message entry waiting (not parked) in a conversation not in
/// `skip`: the head of its conversation, since nothing older of it waits.
/// In key order, so with nothing skipped this reads one row; a skipped
/// conversation costs the rows of it that are older than the answer.
fn first(c: &Connection, skip: &[Id]) -> rusqlite::Result<Option<Entry>> {
    c.prepare_cached(&format!(
        "SELECT seq, conversation, body, idempotency_key, message_id FROM outbox
          WHERE kind = 'app' AND parked IS NULL AND conversation NOT IN ({})
          ORDER BY seq LIMIT 1",
        placeholders(skip.len())
    ))?
    .query_row(params_from_iter(skip), |r| {
        let key: Id = r.get(3)?;
        Ok(Entry {
            seq: r.get::<_, i64>(0)? as u64,
            conversation: r.get(1)?,
            body: r.get(2)?,
            idempotency_key: key.0,
            message_id: r.get(4)?,
        })
    })
    .optional()
}

/// Gives the entries `seqs` fresh idempotency keys: after the server
/// answered an attempt without storing the message for anyone, the next
/// attempt (a new ciphertext) must not look like a retry of it.
pub fn new_keys(c: &Connection, seqs: &[u64]) -> rusqlite::Result<()> {
    for seq in seqs {
        c.execute(
            "UPDATE outbox SET idempotency_key = ?2 WHERE seq = ?1",
            params![*seq as i64, Id::random()],
        )?;
    }
    Ok(())
}

pub fn remove(c: &Connection, seq: u64) -> rusqlite::Result<()> {
    c.execute("DELETE FROM outbox WHERE seq = ?1", [seq as i64])?;
    Ok(())
}

pub fn remove_all(c: &Connection, seqs: &[u64]) -> rusqlite::Result<()> {
    for seq in seqs {
        remove(c, *seq)?;
    }
    Ok(())
}

/// Messages waiting (receipts and parked messages not counted).
pub fn len(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row(
        "SELECT count(*) FROM outbox WHERE kind = 'app' AND parked IS NULL",
        [],
        |r| r.get::<_, i64>(0).map(|n| n as u64),
    )
}

/// Parks the message entry `seq` with `reason`: kept for a retry, skipped by
/// [`next`].
pub fn park(c: &Connection, seq: u64, reason: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE outbox SET parked = ?2 WHERE seq = ?1 AND kind = 'app'",
        params![seq as i64, reason],
    )?;
    Ok(())
}

/// Why the message `id` is parked, if it is.
pub fn parked_reason(c: &Connection, id: Id) -> rusqlite::Result<Option<String>> {
    Ok(c.query_row(
        "SELECT parked FROM outbox WHERE message_id = ?1 AND kind = 'app'",
        [id],
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()?
    .flatten())
}

/// Puts the parked message `id` back in its queue; whether it was parked.
pub fn unpark(c: &Connection, id: Id) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE outbox SET parked = NULL
          WHERE message_id = ?1 AND kind = 'app' AND parked IS NOT NULL",
        [id],
    )?;
    Ok(n > 0)
}

/// Removes the parked message `id`; whether it was parked.
pub fn discard(c: &Connection, id: Id) -> rusqlite::Result<bool> {
    let n = c.execute(
        "DELETE FROM outbox WHERE message_id = ?1 AND kind = 'app' AND parked IS NOT NULL",
        [id],
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_fixed_idempotency_keys() {
        let (_d, c) = crate::db::test_db();
        let conv = Id::random();
        let a = push(&c, conv, b"first", Some(Id::random()), 1).unwrap();
        push(&c, conv, b"second", None, 2).unwrap();
        assert_eq!(len(&c).unwrap(), 2);
        let e1 = first(&c, &[]).unwrap().unwrap();
        assert_eq!((e1.seq, &e1.body[..]), (a, &b"first"[..]));
        assert_eq!(
            first(&c, &[]).unwrap().unwrap().idempotency_key,
            e1.idempotency_key
        );
        remove(&c, a).unwrap();
        let e2 = first(&c, &[]).unwrap().unwrap();
        assert_eq!(e2.body, b"second");
        assert_ne!(e2.idempotency_key, e1.idempotency_key);
    }

    #[test]
    fn receipts_wait_give_way_to_messages_and_go_together() {
        let (_d, c) = crate::db::test_db();
        let (dm, other) = (Id::random(), Id::random());
        let (m1, m2, m3) = (Id::random(), Id::random(), Id::random());
        push_receipt(&c, dm, m1, 1_000).unwrap();
        push_receipt(&c, other, m3, 1_050).unwrap();
        push_receipt(&c, dm, m2, 1_100).unwrap();
        assert_eq!(len(&c).unwrap(), 0, "receipts are not messages waiting");
        assert_eq!(next(&c, 1_000, &[]).unwrap(), Next::Wait(RECEIPT_DELAY_MS));
        // A message goes first, whatever is older.
        let msg = push(&c, other, b"hi", None, 1_200).unwrap();
        match next(&c, 5_000, &[]).unwrap() {
            Next::Message(e) => assert_eq!(e.seq, msg),
            n => panic!("{n:?}"),
        }
        remove(&c, msg).unwrap();
        // Then one batch per conversation, oldest conversation first.
        match next(&c, 5_000, &[]).unwrap() {
            Next::Receipts {
                conversation,
                ids,
                seqs,
                ..
            } => {
                assert_eq!(conversation, dm);
                assert_eq!(ids, [m1, m2]);
                remove_all(&c, &seqs).unwrap();
            }
            n => panic!("{n:?}"),
        }
        match next(&c, 5_000, &[]).unwrap() {
            Next::Receipts { ids, seqs, .. } => {
                assert_eq!(ids, [m3]);
                remove_all(&c, &seqs).unwrap();
            }
            n => panic!("{n:?}"),
        }
        assert_eq!(next(&c, 5_000, &[]).unwrap(), Next::Empty);
    }

    /// A conversation in `skip` holds up no other; a parked message holds
    /// up nothing, keeps its reason, and goes again when unparked.
    #[test]
    fn conversations_queue_apart_and_parked_entries_wait_aside() {
        let (_d, c) = crate::db::test_db();
        let (stuck, free) = (Id::random(), Id::random());
        let (m1, m2) = (Id::random(), Id::random());
        let s1 = push(&c, stuck, b"one", Some(m1), 1).unwrap();
        let s2 = push(&c, stuck, b"two", Some(m2), 2).unwrap();
        let f = push(&c, free, b"other", None, 3).unwrap();
        let head = |skip: &[Id]| match next(&c, 10, skip).unwrap() {
            Next::Message(e) => e.seq,
            n => panic!("{n:?}"),
        };
        assert_eq!(head(&[]), s1, "oldest first");
        assert_eq!(
            head(&[stuck]),
            f,
            "a skipped conversation holds up no other"
        );
        push_receipt(&c, stuck, Id::random(), 0).unwrap();
        remove(&c, f).unwrap();
        assert_eq!(next(&c, 10_000, &[stuck]).unwrap(), Next::Empty);

        park(&c, s1, "E020: no such user").unwrap();
        assert_eq!(
            parked_reason(&c, m1).unwrap().as_deref(),
            Some("E020: no such user")
        );
        assert_eq!(parked_reason(&c, m2).unwrap(), None);
        assert_eq!(head(&[]), s2, "a parked entry holds up nothing");
        assert_eq!(len(&c).unwrap(), 1, "parked is not waiting");
        assert!(!unpark(&c, m2).unwrap(), "only a parked entry is unparked");
        assert!(unpark(&c, m1).unwrap());
        assert_eq!(head(&[]), s1);
        park(&c, s1, "again").unwrap();
        assert!(discard(&c, m1).unwrap());
        assert!(!discard(&c, m1).unwrap());
        assert!(
            !discard(&c, m2).unwrap(),
            "a waiting entry is not discarded"
        );
        assert_eq!(head(&[]), s2);
    }

    /// A retried batch keeps its idempotency key (stored once); a batch that
    /// grew meanwhile gets another (not dropped as a duplicate).
    #[test]
    fn a_receipt_batch_key_follows_its_entries() {
        let (_d, c) = crate::db::test_db();
        let dm = Id::random();
        push_receipt(&c, dm, Id::random(), 1).unwrap();
        let key = |c: &Connection| match next(c, 10_000, &[]).unwrap() {
            Next::Receipts {
                idempotency_key, ..
            } => idempotency_key,
            n => panic!("{n:?}"),
        };
        let first = key(&c);
        assert_eq!(key(&c), first);
        push_receipt(&c, dm, Id::random(), 2).unwrap();
        assert_ne!(key(&c), first);
    }
}
