//! The outbox: what the user sent, durable before `send` returns, drained to
//! the server when it is reachable. An entry keeps the plaintext body (the
//! file is encrypted) and is encrypted for the group only when it is sent,
//! so a message queued across epoch changes is still readable. Its
//! idempotency key is fixed at queue time: a retry after a crash is stored
//! once by the server.

use rusqlite::{params, Connection, OptionalExtension};

use super::Id;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub conversation: Id,
    pub body: Vec<u8>,
    pub idempotency_key: [u8; 16],
    pub message_id: Option<Id>,
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

/// The oldest entry (the outbox drains in order, per conversation and overall).
pub fn first(c: &Connection) -> rusqlite::Result<Option<Entry>> {
    c.query_row(
        "SELECT seq, conversation, body, idempotency_key, message_id FROM outbox ORDER BY seq LIMIT 1",
        [],
        |r| {
            let key: Id = r.get(3)?;
            Ok(Entry {
                seq: r.get::<_, i64>(0)? as u64,
                conversation: r.get(1)?,
                body: r.get(2)?,
                idempotency_key: key.0,
                message_id: r.get(4)?,
            })
        },
    )
    .optional()
}

pub fn remove(c: &Connection, seq: u64) -> rusqlite::Result<()> {
    c.execute("DELETE FROM outbox WHERE seq = ?1", [seq as i64])?;
    Ok(())
}

pub fn len(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row("SELECT count(*) FROM outbox", [], |r| {
        r.get::<_, i64>(0).map(|n| n as u64)
    })
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
        let e1 = first(&c).unwrap().unwrap();
        assert_eq!((e1.seq, &e1.body[..]), (a, &b"first"[..]));
        assert_eq!(
            first(&c).unwrap().unwrap().idempotency_key,
            e1.idempotency_key
        );
        remove(&c, a).unwrap();
        let e2 = first(&c).unwrap().unwrap();
        assert_eq!(e2.body, b"second");
        assert_ne!(e2.idempotency_key, e1.idempotency_key);
    }
}
