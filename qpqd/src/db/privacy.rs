//! The privacy tables (schema 17) and what disappearing messages remove.
//!
//! - Read marks: per conversation and member, the position (our `messages`
//!   rowid) of the newest message that member said they read. Positions are
//!   our local order, so "read up to X" covers every message stored before
//!   X, ours included. Our own row (member [`ME`]) holds what the last read
//!   receipt we queued named, and that receipt's outbox key while it waits
//!   (at most one waits per conversation: a newer one replaces it).
//! - Expiry: the messages whose `expires_at_ms` is past, and [`purge`],
//!   which removes one everywhere the state keeps its text.

use rusqlite::{params, Connection, OptionalExtension};

use super::{outbox, Id};

/// The member name of our own read mark (no username is empty).
pub const ME: &str = "";

/// Moves `member`'s read mark in `conversation` to the message at `row`, if
/// that is later than the mark. Whether it moved.
pub fn advance_mark(
    c: &Connection,
    conversation: Id,
    member: &str,
    row: i64,
) -> rusqlite::Result<bool> {
    let n = c.execute(
        "INSERT INTO read_marks (conversation, member, up_to_row) VALUES (?1, ?2, ?3)
         ON CONFLICT (conversation, member) DO UPDATE SET up_to_row = excluded.up_to_row
             WHERE excluded.up_to_row > read_marks.up_to_row",
        params![conversation, member, row],
    )?;
    Ok(n > 0)
}

/// The position of `member`'s read mark in `conversation`, if any.
pub fn mark(c: &Connection, conversation: Id, member: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT up_to_row FROM read_marks WHERE conversation = ?1 AND member = ?2",
        params![conversation, member],
        |r| r.get(0),
    )
    .optional()
}

/// The members who said they read our message `id` (their mark is at it or
/// after it), by name.
pub fn read_by(c: &Connection, conversation: Id, id: Id) -> rusqlite::Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT member FROM read_marks
          WHERE conversation = ?1 AND member <> ''
            AND up_to_row >= (SELECT rowid FROM messages WHERE id = ?2)
          ORDER BY member",
    )?;
    let rows = st.query_map(params![conversation, id], |r| r.get(0))?;
    rows.collect()
}

/// The position of the message `id` from `sender` in `conversation`; `None`
/// when this conversation holds no such message (a receipt naming it is
/// ignored). Notices (no sender) are nobody's to name.
pub fn position(
    c: &Connection,
    conversation: Id,
    id: Id,
    sender: &str,
) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT rowid FROM messages
          WHERE id = ?1 AND conversation = ?2 AND sender = ?3 AND sender <> ''",
        params![id, conversation, sender],
        |r| r.get(0),
    )
    .optional()
}

/// The newest message from another member that we have read in
/// `conversation` (at or before its read marker): its position, id and
/// sender.
pub fn newest_read(
    c: &Connection,
    conversation: Id,
) -> rusqlite::Result<Option<(i64, Id, String)>> {
    c.query_row(
        "SELECT m.rowid, m.id, m.sender FROM messages m JOIN conversations v ON v.id = m.conversation
          WHERE m.conversation = ?1 AND m.rowid <= v.read_up_to
            AND m.outgoing = 0 AND m.sender <> ''
          ORDER BY m.rowid DESC LIMIT 1",
        [conversation],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
}

/// Queues `body` (our read receipt for `conversation`) in the outbox in
/// place of the one still waiting there, if any: at most one waits per
/// conversation. Call after [`advance_mark`] for [`ME`].
pub fn replace_pending_receipt(
    c: &Connection,
    conversation: Id,
    body: &[u8],
    now_ms: u64,
) -> rusqlite::Result<()> {
    drop_pending_receipt(c, conversation)?;
    let seq = outbox::push(c, conversation, body, None, now_ms)?;
    // The key, not the seq, names it later: a sent entry's seq may be reused
    // by the next entry (`INTEGER PRIMARY KEY` without AUTOINCREMENT), a key
    // is random.
    c.execute(
        "UPDATE read_marks SET pending_key = (SELECT idempotency_key FROM outbox WHERE seq = ?3)
          WHERE conversation = ?1 AND member = ?2",
        params![conversation, ME, seq as i64],
    )?;
    Ok(())
}

/// Removes our read receipt for `conversation` from the outbox if it still
/// waits there (replaced, or receipts turned off). One in flight goes.
pub fn drop_pending_receipt(c: &Connection, conversation: Id) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM outbox WHERE kind = 'app' AND message_id IS NULL AND idempotency_key =
            (SELECT pending_key FROM read_marks WHERE conversation = ?1 AND member = ?2)",
        params![conversation, ME],
    )?;
    c.execute(
        "UPDATE read_marks SET pending_key = NULL WHERE conversation = ?1 AND member = ?2",
        params![conversation, ME],
    )?;
    Ok(())
}

/// A message whose disappearing timer ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub id: Id,
    pub conversation: Id,
    pub sender: String,
}

/// When the next message disappears (Unix ms), if any will.
pub fn next_expiry(c: &Connection) -> rusqlite::Result<Option<u64>> {
    c.query_row(
        "SELECT min(expires_at_ms) FROM messages WHERE expires_at_ms IS NOT NULL",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )
    .map(|t| t.map(|t| t.max(0) as u64))
}

/// Up to `limit` messages expired at `now_ms`, the earliest first.
pub fn due(c: &Connection, now_ms: u64, limit: u32) -> rusqlite::Result<Vec<Expired>> {
    let mut st = c.prepare_cached(
        "SELECT id, conversation, sender FROM messages
          WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1
          ORDER BY expires_at_ms LIMIT ?2",
    )?;
    let rows = st.query_map(params![now_ms as i64, limit], |r| {
        Ok(Expired {
            id: r.get(0)?,
            conversation: r.get(1)?,
            sender: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Removes the messages `ids` everywhere the state keeps their text: the
/// message row (its full-text index entry goes with it, by trigger), our
/// outbox entry for it if still unsent (its body is the text), the
/// delivery receipt we queued for it, and every notification log row that
/// names it (a reply's quote of it included).
pub fn purge(c: &Connection, ids: &[Id]) -> rusqlite::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    for id in ids {
        // Our message waiting to be sent, or the receipt for theirs.
        c.execute("DELETE FROM outbox WHERE message_id = ?1", [id])?;
        // Issue 17: the edits, reactions and pending actions of the
        // message live in the actions tables; `db::actions::purge_message`
        // removes them once that module is on this branch.
        c.execute("DELETE FROM messages WHERE id = ?1", [id])?;
    }
    // One pass over the log for the whole batch: any row whose JSON names
    // one of the ids (ids are 128 random bits: no false match).
    let hex: Vec<String> = ids.iter().map(Id::to_string).collect();
    let hex = serde_json::to_string(&hex)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    c.execute(
        "DELETE FROM notifications
          WHERE EXISTS (SELECT 1 FROM json_each(?1) j WHERE instr(notifications.params, j.value) > 0)",
        [hex],
    )?;
    Ok(())
}

/// Pushes what [`purge`] freed out of the write-ahead log into the main
/// file (where `secure_delete` zeroed it) and empties the log, so no old
/// copy of a removed page stays in it. Outside any transaction.
pub fn checkpoint(c: &Connection) -> rusqlite::Result<()> {
    let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        tracing::info!("the write-ahead log could not be emptied now (a search is reading); it is at the next sweep");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::messages::{self, Extra, Message, State};

    fn msg(conv: Id, sender: &str, outgoing: bool, text: &str) -> Message {
        Message {
            id: Id::random(),
            conversation: conv,
            sender: sender.into(),
            timestamp_ms: 1,
            text: text.into(),
            outgoing,
            state: if outgoing {
                State::Sent
            } else {
                State::Received
            },
            extra: Extra::default(),
        }
    }

    fn pos(c: &Connection, m: &Message) -> i64 {
        position(c, m.conversation, m.id, &m.sender)
            .unwrap()
            .unwrap()
    }

    /// A mark only moves forward; our message counts as read by the
    /// members whose mark is at it or after it; a receipt can only name a
    /// message of its conversation, by its real sender.
    #[test]
    fn read_marks_move_forward_and_say_who_read_what() {
        let (_d, c, team) = crate::db::test_db_with_team();
        let ours = msg(team, "me", true, "deploy?");
        let theirs = msg(team, "bob", false, "done");
        let later = msg(team, "me", true, "thanks");
        for m in [&ours, &theirs, &later] {
            messages::insert(&c, m).unwrap();
        }
        assert!(read_by(&c, team, ours.id).unwrap().is_empty());
        assert!(advance_mark(&c, team, "bob", pos(&c, &ours)).unwrap());
        assert!(advance_mark(&c, team, "carol", pos(&c, &theirs)).unwrap());
        assert!(
            !advance_mark(&c, team, "bob", pos(&c, &ours) - 1).unwrap(),
            "never back"
        );
        assert_eq!(read_by(&c, team, ours.id).unwrap(), ["bob", "carol"]);
        assert!(read_by(&c, team, later.id).unwrap().is_empty());
        assert!(advance_mark(&c, team, ME, pos(&c, &theirs)).unwrap());
        assert_eq!(
            read_by(&c, team, ours.id).unwrap(),
            ["bob", "carol"],
            "our own mark is not a reader"
        );
        assert_eq!(mark(&c, team, "bob").unwrap(), Some(pos(&c, &ours)));

        // Named with the wrong sender, or in another conversation: nothing.
        assert_eq!(position(&c, team, theirs.id, "mallory").unwrap(), None);
        assert_eq!(position(&c, Id::random(), theirs.id, "bob").unwrap(), None);
        let notice = msg(team, "", false, "alice named the group");
        messages::insert(&c, &notice).unwrap();
        assert_eq!(position(&c, team, notice.id, "").unwrap(), None);
    }

    /// The newest message read is someone else's, at or before the marker.
    #[test]
    fn the_newest_read_message_is_from_another_member() {
        let (_d, c, team) = crate::db::test_db_with_team();
        assert_eq!(newest_read(&c, team).unwrap(), None);
        let a = msg(team, "bob", false, "one");
        let b = msg(team, "bob", false, "two");
        let ours = msg(team, "me", true, "three");
        for m in [&a, &b, &ours] {
            messages::insert(&c, m).unwrap();
        }
        messages::mark_read(&c, team, Some(a.id)).unwrap();
        assert_eq!(newest_read(&c, team).unwrap().map(|r| r.1), Some(a.id));
        messages::mark_read(&c, team, None).unwrap();
        let (_, id, sender) = newest_read(&c, team).unwrap().unwrap();
        assert_eq!((id, sender.as_str()), (b.id, "bob"), "not our own");
    }

    /// At most one receipt waits per conversation: a newer one replaces
    /// it, turning receipts off drops it, other entries stay.
    #[test]
    fn one_pending_receipt_per_conversation() {
        let (_d, c, team) = crate::db::test_db_with_team();
        let mine = Id::random();
        outbox::push(&c, team, b"a message", Some(mine), 1).unwrap();
        let bodies = |c: &Connection| -> Vec<Vec<u8>> {
            let mut st = c.prepare("SELECT body FROM outbox ORDER BY seq").unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        advance_mark(&c, team, ME, 1).unwrap();
        replace_pending_receipt(&c, team, b"read 1", 2).unwrap();
        advance_mark(&c, team, ME, 2).unwrap();
        replace_pending_receipt(&c, team, b"read 2", 3).unwrap();
        assert_eq!(bodies(&c), [b"a message".to_vec(), b"read 2".to_vec()]);
        drop_pending_receipt(&c, team).unwrap();
        assert_eq!(bodies(&c), [b"a message".to_vec()]);
        drop_pending_receipt(&c, team).unwrap();
        assert_eq!(bodies(&c), [b"a message".to_vec()], "nothing else goes");
    }

    /// What expires is found in order and purged with its outbox entry,
    /// receipt and log rows; the rest stays.
    #[test]
    fn purge_removes_a_message_everywhere_it_is_kept() {
        let (_d, c, team) = crate::db::test_db_with_team();
        let mut gone = msg(team, "me", true, "the secret plan");
        gone.extra.expires_at_ms = Some(1_000);
        let mut theirs = msg(team, "bob", false, "secret reply");
        theirs.extra.expires_at_ms = Some(2_000);
        let stays = msg(team, "bob", false, "public");
        for m in [&gone, &theirs, &stays] {
            messages::insert(&c, m).unwrap();
        }
        outbox::push(&c, team, b"body", Some(gone.id), 1).unwrap();
        outbox::push_receipt(&c, team, theirs.id, 1).unwrap();
        outbox::push_receipt(&c, team, stays.id, 1).unwrap();
        for (i, id) in [gone.id, theirs.id, stays.id].iter().enumerate() {
            crate::db::notifications::append(
                &c,
                "message",
                &format!(r#"{{"seq":{i},"message":{{"id":"{id}","text":""}}}}"#),
                1,
            )
            .unwrap();
        }
        assert_eq!(next_expiry(&c).unwrap(), Some(1_000));
        assert!(due(&c, 999, 10).unwrap().is_empty());
        let expired = due(&c, 5_000, 10).unwrap();
        let ids: Vec<Id> = expired.iter().map(|e| e.id).collect();
        assert_eq!(ids, [gone.id, theirs.id]);
        purge(&c, &ids).unwrap();
        checkpoint(&c).unwrap();
        assert_eq!(next_expiry(&c).unwrap(), None);
        assert!(messages::by_id(&c, gone.id).unwrap().is_none());
        assert!(messages::by_id(&c, stays.id).unwrap().is_some());
        assert!(messages::search(&c, "secret", None, 10, 0)
            .unwrap()
            .is_empty());
        let left: i64 = c
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "only the receipt for the message that stays");
        let log: String = c
            .query_row("SELECT group_concat(params) FROM notifications", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(
            log.contains(&stays.id.to_string()) && !log.contains(&gone.id.to_string()),
            "{log}"
        );
    }
}
