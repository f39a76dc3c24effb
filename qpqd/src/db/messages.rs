//! The message history: stored before a message is acknowledged to the
//! server (so nothing received is lost), de-duplicated by message id (so
//! at-least-once delivery shows each message once), searchable (FTS5), with
//! read state kept here so every front-end agrees on unread counts.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::Id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Sent,
    Delivered,
    Received,
    /// Refused for good; its outbox entry is parked (`outbox::park`).
    Failed,
    /// Sent, but a recipient's copy expired on the server unfetched.
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sent => "sent",
            State::Delivered => "delivered",
            State::Received => "received",
            State::Failed => "failed",
            State::Expired => "expired",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "queued" => State::Queued,
            "sent" => State::Sent,
            "delivered" => State::Delivered,
            "failed" => State::Failed,
            "expired" => State::Expired,
            _ => State::Received,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: Id,
    pub conversation: Id,
    pub sender: String,
    pub timestamp_ms: u64,
    pub text: String,
    pub outgoing: bool,
    pub state: State,
    pub extra: Extra,
}

/// What a message carries beyond its text (schema 15, issue 17).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// The message it answers: its id and sender, as the reply named them.
    pub reply_to: Option<(Id, String)>,
    pub edited: bool,
    pub deleted: Deleted,
    pub mentions_me: bool,
    pub expires_at_ms: Option<u64>,
}

/// Whether a message was deleted, and for whom.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deleted {
    #[default]
    No,
    /// By its sender: the text is gone, a marker stays.
    ForEveryone,
    /// By us, from this profile: not shown at all (the row stays as a
    /// tombstone so a redelivery does not bring it back).
    ForMe,
}

impl Deleted {
    pub fn as_i64(self) -> i64 {
        match self {
            Deleted::No => 0,
            Deleted::ForEveryone => 1,
            Deleted::ForMe => FOR_ME,
        }
    }

    pub fn from_i64(n: i64) -> Deleted {
        match n {
            1 => Deleted::ForEveryone,
            2 => Deleted::ForMe,
            _ => Deleted::No,
        }
    }
}

/// `messages.deleted` of a message deleted for me: a tombstone no read
/// shows (history, search, mentions, unread counts).
const FOR_ME: i64 = 2;

const COLUMNS: &str = "m.id, m.conversation, m.sender, m.timestamp_ms, m.text, m.outgoing, m.state,
    m.reply_to, m.reply_sender, m.edited, m.deleted, m.mentions_me, m.expires_at_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<Message> {
    let state: String = r.get(6)?;
    let reply_to: Option<Id> = r.get(7)?;
    let reply_sender: Option<String> = r.get(8)?;
    Ok(Message {
        id: r.get(0)?,
        conversation: r.get(1)?,
        sender: r.get(2)?,
        timestamp_ms: r.get::<_, i64>(3)? as u64,
        text: r.get(4)?,
        outgoing: r.get(5)?,
        state: State::parse(&state),
        extra: Extra {
            reply_to: reply_to.map(|id| (id, reply_sender.unwrap_or_default())),
            edited: r.get(9)?,
            deleted: Deleted::from_i64(r.get(10)?),
            mentions_me: r.get(11)?,
            expires_at_ms: r.get::<_, Option<i64>>(12)?.map(|t| t as u64),
        },
    })
}

/// Stores a message; `false` if its id was stored before (a redelivery).
pub fn insert(c: &Connection, m: &Message) -> rusqlite::Result<bool> {
    let (reply_to, reply_sender) = match &m.extra.reply_to {
        Some((id, sender)) => (Some(*id), Some(sender.as_str())),
        None => (None, None),
    };
    let n = c.execute(
        "INSERT OR IGNORE INTO messages (id, conversation, sender, timestamp_ms, text, outgoing, state,
             reply_to, reply_sender, edited, deleted, mentions_me, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            m.id,
            m.conversation,
            m.sender,
            m.timestamp_ms as i64,
            m.text,
            m.outgoing,
            m.state.as_str(),
            reply_to,
            reply_sender,
            m.extra.edited,
            m.extra.deleted.as_i64(),
            m.extra.mentions_me,
            m.extra.expires_at_ms.map(|t| t as i64),
        ],
    )?;
    Ok(n == 1)
}

pub fn by_id(c: &Connection, id: Id) -> rusqlite::Result<Option<Message>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM messages m WHERE m.id = ?1"),
        [id],
        row,
    )
    .optional()
}

/// Moves our message `id` in `conversation` to `to` if it is in one of the
/// states before it (queued → sent → delivered or expired; never back).
/// Whether it moved.
pub fn advance(c: &Connection, id: Id, conversation: Id, to: State) -> rusqlite::Result<bool> {
    let before: &[&str] = match to {
        State::Sent => &["queued"],
        State::Delivered | State::Expired => &["queued", "sent"],
        State::Queued | State::Received | State::Failed => &[],
    };
    let mut n = 0;
    for from in before {
        n += c.execute(
            "UPDATE messages SET state = ?3 WHERE id = ?1 AND conversation = ?2 AND outgoing = 1 AND state = ?4",
            params![id, conversation, to.as_str(), from],
        )?;
    }
    Ok(n > 0)
}

/// Sets our message `id` to `to` whatever its state: a message fails
/// (queued → failed) and is retried (failed → queued) outside the forward
/// order of [`advance`]. Whether it exists.
pub fn set_state(c: &Connection, id: Id, to: State) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE messages SET state = ?2 WHERE id = ?1 AND outgoing = 1",
        params![id, to.as_str()],
    )?;
    Ok(n > 0)
}

/// Removes our message `id` from the history (a discarded failed message).
pub fn delete(c: &Connection, id: Id) -> rusqlite::Result<()> {
    c.execute("DELETE FROM messages WHERE id = ?1 AND outgoing = 1", [id])?;
    Ok(())
}

/// Up to `limit` messages of a conversation before `before` (or the newest),
/// oldest first.
pub fn history(
    c: &Connection,
    conversation: Id,
    before: Option<Id>,
    limit: u32,
) -> rusqlite::Result<Vec<Message>> {
    history_within(c, conversation, before, limit, usize::MAX)
}

/// [`history`], reading no further back once the texts read add up to
/// `text_bytes` (the one that crosses it included): an answer capped in
/// bytes need not read 500 maximum-size messages to send six.
pub fn history_within(
    c: &Connection,
    conversation: Id,
    before: Option<Id>,
    limit: u32,
    text_bytes: usize,
) -> rusqlite::Result<Vec<Message>> {
    let before_row = rowid_before(c, before)?;
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM messages m WHERE m.conversation = ?1 AND m.rowid < ?2
             AND m.deleted != {FOR_ME}
         ORDER BY m.rowid DESC LIMIT ?3"
    ))?;
    let mut out: Vec<Message> = Vec::new();
    let mut bytes = 0;
    for m in st.query_map(params![conversation, before_row, limit], row)? {
        let m = m?;
        bytes += m.text.len();
        out.push(m);
        if bytes >= text_bytes {
            break;
        }
    }
    out.reverse();
    Ok(out)
}

/// The messages that mention us (`mentions_me`), in one conversation or
/// all, before message `before` (or the newest): the newest `limit`, oldest
/// first. Deleted ones are not mentions any more.
pub fn mentioning(
    c: &Connection,
    conversation: Option<Id>,
    before: Option<Id>,
    limit: u32,
) -> rusqlite::Result<Vec<Message>> {
    let before_row = rowid_before(c, before)?;
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM messages m WHERE m.mentions_me = 1 AND m.deleted = 0
             AND (?1 IS NULL OR m.conversation = ?1) AND m.rowid < ?2
         ORDER BY m.rowid DESC LIMIT ?3"
    ))?;
    let mut out = st
        .query_map(params![conversation, before_row, limit], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// The rowid a page "before `before`" ends at: everything when `None` (or
/// an id not here).
fn rowid_before(c: &Connection, before: Option<Id>) -> rusqlite::Result<i64> {
    Ok(match before {
        Some(id) => c
            .query_row("SELECT rowid FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(i64::MAX),
        None => i64::MAX,
    })
}

/// Turns what a person typed into an FTS5 query: every word must appear
/// (prefix match on the last), and nothing typed is FTS syntax.
fn fts_query(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    if terms.is_empty() {
        return None;
    }
    let mut q = terms.join(" ");
    q.push('*');
    Some(q)
}

/// Full-text search over the whole history (or one conversation), best
/// match first, skipping the `offset` best.
pub fn search(
    c: &Connection,
    words: &str,
    conversation: Option<Id>,
    limit: u32,
    offset: u32,
) -> rusqlite::Result<Vec<Message>> {
    let Some(q) = fts_query(words) else {
        return Ok(Vec::new());
    };
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM messages_fts f JOIN messages m ON m.rowid = f.rowid
         WHERE messages_fts MATCH ?1 AND (?2 IS NULL OR m.conversation = ?2)
             AND m.deleted = 0
         ORDER BY bm25(messages_fts), m.rowid DESC LIMIT ?3 OFFSET ?4"
    ))?;
    let rows = st.query_map(params![q, conversation, limit, offset], row)?;
    rows.collect()
}

pub fn unread(c: &Connection, conversation: Id) -> rusqlite::Result<u64> {
    c.query_row(
        &format!(
            "SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conversation
             WHERE m.conversation = ?1 AND m.outgoing = 0 AND m.rowid > v.read_up_to
                 AND m.deleted != {FOR_ME}"
        ),
        [conversation],
        |r| r.get::<_, i64>(0).map(|n| n as u64),
    )
}

pub fn unread_total(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row(
        &format!(
            "SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conversation
             WHERE m.outgoing = 0 AND m.rowid > v.read_up_to AND m.deleted != {FOR_ME}"
        ),
        [],
        |r| r.get::<_, i64>(0).map(|n| n as u64),
    )
}

/// Marks a conversation read up to a message (or entirely).
pub fn mark_read(c: &Connection, conversation: Id, up_to: Option<Id>) -> rusqlite::Result<()> {
    let row: i64 = match up_to {
        Some(id) => c
            .query_row(
                "SELECT rowid FROM messages WHERE id = ?1 AND conversation = ?2",
                params![id, conversation],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0),
        None => c.query_row(
            "SELECT coalesce(max(rowid), 0) FROM messages WHERE conversation = ?1",
            [conversation],
            |r| r.get(0),
        )?,
    };
    c.execute(
        "UPDATE conversations SET read_up_to = max(read_up_to, ?2) WHERE id = ?1",
        params![conversation, row],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Connection, Id) {
        crate::db::test_db_with_team()
    }

    fn msg(conv: Id, text: &str, outgoing: bool) -> Message {
        Message {
            id: Id::random(),
            conversation: conv,
            sender: if outgoing { "me" } else { "bob" }.into(),
            timestamp_ms: 1,
            text: text.into(),
            outgoing,
            state: if outgoing {
                State::Queued
            } else {
                State::Received
            },
            extra: Extra::default(),
        }
    }

    #[test]
    fn dedupe_history_pages_and_unread() {
        let (_d, c, conv) = setup();
        let first = msg(conv, "one", false);
        assert!(insert(&c, &first).unwrap());
        assert!(!insert(&c, &first).unwrap(), "a redelivery is stored once");
        let mut ids = vec![first.id];
        for i in 2..=5 {
            let m = msg(conv, &format!("msg {i}"), i == 3);
            insert(&c, &m).unwrap();
            ids.push(m.id);
        }
        let last2 = history(&c, conv, None, 2).unwrap();
        assert_eq!(last2.iter().map(|m| m.id).collect::<Vec<_>>(), ids[3..]);
        let before = history(&c, conv, Some(ids[3]), 10).unwrap();
        assert_eq!(before.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..3]);
        // Read no further back than the bytes asked for (the crossing one in).
        let within = history_within(&c, conv, None, 10, "msg 5".len() + 1).unwrap();
        assert_eq!(within.iter().map(|m| m.id).collect::<Vec<_>>(), ids[3..]);
        assert_eq!(
            unread(&c, conv).unwrap(),
            4,
            "own messages are never unread"
        );
        mark_read(&c, conv, Some(ids[1])).unwrap();
        assert_eq!(unread(&c, conv).unwrap(), 2);
        mark_read(&c, conv, None).unwrap();
        assert_eq!(unread_total(&c).unwrap(), 0);
    }

    #[test]
    fn search_takes_words_not_syntax() {
        let (_d, c, conv) = setup();
        insert(&c, &msg(conv, "the deploy is done", false)).unwrap();
        insert(
            &c,
            &msg(conv, "deployment failed: \"quota\" AND more", false),
        )
        .unwrap();
        insert(&c, &msg(conv, "lunch?", false)).unwrap();
        assert_eq!(
            search(&c, "deploy", None, 10, 0).unwrap().len(),
            2,
            "prefix"
        );
        assert_eq!(search(&c, "deploy done", None, 10, 0).unwrap().len(), 1);
        // Quotes, operators and stray punctuation are plain words.
        assert_eq!(search(&c, "\"quota\" AND", None, 10, 0).unwrap().len(), 1);
        assert!(search(&c, "NEAR( ) * -", None, 10, 0).is_ok());
        assert!(search(&c, "   ", None, 10, 0).unwrap().is_empty());
        assert!(search(&c, "lunch", Some(Id::random()), 10, 0)
            .unwrap()
            .is_empty());
    }
}
