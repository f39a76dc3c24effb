//! What actions on messages leave in the state (issue 17, schema 16):
//! reactions, the earlier versions of edited messages, deletes, actions
//! kept until the message they name arrives, and the ids of actions already
//! applied. The rules (who may do what) are `agent::actions`'; this module
//! only stores and reads.
//!
//! A history page reads the reactions and quotes of all its messages in two
//! queries ([`reactions_of`], [`originals_of`]), never one per message.

use std::collections::HashMap;

use quicproquo_protocol::ipc::values::Reaction;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::messages::Message;
use super::Id;

/// Most actions kept per conversation for messages not here yet; past it the
/// oldest are dropped (a member cannot fill our state with actions naming
/// messages that never come).
pub const MAX_PENDING_PER_CONVERSATION: u64 = 1_000;

/// How long an action waits for its message, and how long an applied
/// action's id is remembered (a redelivery comes with the next fetch, long
/// before this).
pub const KEEP_MS: u64 = 7 * 24 * 3600 * 1000;

/// Longest quote excerpt, in characters.
pub const EXCERPT_CHARS: usize = 80;

/// Records that action `id` was seen; `false` if it was before (a
/// redelivery: not applied again). Ids older than [`KEEP_MS`] are forgotten.
pub fn first_seen(c: &Connection, id: Id, now_ms: u64) -> rusqlite::Result<bool> {
    c.execute(
        "DELETE FROM seen_actions WHERE seen_ms < ?1",
        [now_ms.saturating_sub(KEEP_MS) as i64],
    )?;
    let n = c.execute(
        "INSERT OR IGNORE INTO seen_actions (id, seen_ms) VALUES (?1, ?2)",
        params![id, now_ms as i64],
    )?;
    Ok(n == 1)
}

/// `reactor` gave `emoji` to `message`; `false` if they had already.
pub fn add_reaction(
    c: &Connection,
    message: Id,
    reactor: &str,
    emoji: &str,
) -> rusqlite::Result<bool> {
    let n = c.execute(
        "INSERT OR IGNORE INTO reactions (message, reactor, emoji) VALUES (?1, ?2, ?3)",
        params![message, reactor, emoji],
    )?;
    Ok(n == 1)
}

/// `reactor` took `emoji` back; `false` if they had not given it.
pub fn remove_reaction(
    c: &Connection,
    message: Id,
    reactor: &str,
    emoji: &str,
) -> rusqlite::Result<bool> {
    let n = c.execute(
        "DELETE FROM reactions WHERE message = ?1 AND reactor = ?2 AND emoji = ?3",
        params![message, reactor, emoji],
    )?;
    Ok(n == 1)
}

/// `?, ?, …` for `n` parameters.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The reactions of each of `messages` (those with none are absent): one
/// entry per emoji in the order it was first given, its reactors in the
/// order they gave it. One query.
pub fn reactions_of(
    c: &Connection,
    messages: &[Id],
) -> rusqlite::Result<HashMap<Id, Vec<Reaction>>> {
    let mut out: HashMap<Id, Vec<Reaction>> = HashMap::new();
    if messages.is_empty() {
        return Ok(out);
    }
    let mut st = c.prepare(&format!(
        "SELECT message, emoji, reactor FROM reactions WHERE message IN ({}) ORDER BY rowid",
        placeholders(messages.len())
    ))?;
    let rows = st.query_map(params_from_iter(messages.iter()), |r| {
        Ok((r.get::<_, Id>(0)?, r.get::<_, String>(1)?, r.get(2)?))
    })?;
    for row in rows {
        let (message, emoji, reactor) = row?;
        let list = out.entry(message).or_default();
        match list.iter_mut().find(|r| r.emoji == emoji) {
            Some(r) => r.by.push(reactor),
            None => list.push(Reaction {
                emoji,
                by: vec![reactor],
            }),
        }
    }
    Ok(out)
}

/// What a reply shows of the message it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub conversation: Id,
    pub sender: String,
    pub text: String,
    pub deleted: super::messages::Deleted,
}

/// The messages of `ids` that are here, by id. One query.
pub fn originals_of(c: &Connection, ids: &[Id]) -> rusqlite::Result<HashMap<Id, Original>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut st = c.prepare(&format!(
        "SELECT id, conversation, sender, text, deleted FROM messages WHERE id IN ({})",
        placeholders(ids.len())
    ))?;
    let rows = st.query_map(params_from_iter(ids.iter()), |r| {
        Ok((
            r.get::<_, Id>(0)?,
            Original {
                conversation: r.get(1)?,
                sender: r.get(2)?,
                text: r.get(3)?,
                deleted: super::messages::Deleted::from_i64(r.get(4)?),
            },
        ))
    })?;
    for row in rows {
        let (id, o) = row?;
        out.insert(id, o);
    }
    Ok(out)
}

/// The start of `text` as a quote shows it: at most [`EXCERPT_CHARS`]
/// characters, line breaks and runs of spaces as one space.
pub fn excerpt(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(EXCERPT_CHARS).collect()
}

/// Replaces the text of message `m` with `text`, written at `timestamp_ms`
/// (an edit by its sender): the text it had is kept as an earlier version,
/// with the time it was written. The search index follows (the schema-15
/// update trigger).
pub fn edit(
    c: &Connection,
    m: &Message,
    text: &str,
    timestamp_ms: u64,
    mentions_me: bool,
) -> rusqlite::Result<()> {
    // `edited` holds the time of the newest edit: when the text it replaces
    // was written (0: never edited, the original's send time).
    let edited_ms: i64 = c.query_row("SELECT edited FROM messages WHERE id = ?1", [m.id], |r| {
        r.get(0)
    })?;
    let written = if edited_ms > 0 {
        edited_ms
    } else {
        m.timestamp_ms as i64
    };
    c.execute(
        "INSERT INTO message_edits (message, text, timestamp_ms) VALUES (?1, ?2, ?3)",
        params![m.id, m.text, written],
    )?;
    // An edit dated before the version it replaces (a skewed clock) still
    // marks the message edited.
    let at = (timestamp_ms as i64).max(written).max(1);
    c.execute(
        "UPDATE messages SET text = ?2, edited = ?3, mentions_me = ?4 WHERE id = ?1",
        params![m.id, text, at, mentions_me],
    )?;
    Ok(())
}

/// The earlier versions of message `id`, oldest first: `(text, written at)`.
pub fn versions(c: &Connection, id: Id) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut st = c.prepare(
        "SELECT text, timestamp_ms FROM message_edits WHERE message = ?1 ORDER BY rowid",
    )?;
    let rows = st.query_map([id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}

/// Deletes message `id`: its text (and so its search row, the update
/// trigger) and its earlier versions go; the row stays, marked, so that a
/// redelivery does not bring it back. For everyone the reactions stay
/// beside the "message deleted" marker; for me nothing of it is shown, so
/// they go too.
pub fn delete(c: &Connection, id: Id, scope: super::messages::Deleted) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE messages SET text = '', deleted = ?2, mentions_me = 0 WHERE id = ?1",
        params![id, scope.as_i64()],
    )?;
    c.execute("DELETE FROM message_edits WHERE message = ?1", [id])?;
    // A deleted message's file cannot be fetched from here any more.
    super::attachments::forget(c, id)?;
    if scope == super::messages::Deleted::ForMe {
        c.execute("DELETE FROM reactions WHERE message = ?1", [id])?;
    }
    Ok(())
}

/// An action that named a message not here yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: Id,
    pub conversation: Id,
    pub sender: String,
    /// The action, as `payload::Action` JSON.
    pub action: String,
    pub timestamp_ms: u64,
}

/// Keeps action `p` until message `target` arrives. Past
/// [`MAX_PENDING_PER_CONVERSATION`] the conversation's oldest go; any
/// older than [`KEEP_MS`] go too.
pub fn keep_pending(c: &Connection, target: Id, p: &Pending, now_ms: u64) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM pending_actions WHERE received_ms < ?1",
        [now_ms.saturating_sub(KEEP_MS) as i64],
    )?;
    c.execute(
        "INSERT OR IGNORE INTO pending_actions
             (id, conversation, target, sender, action, timestamp_ms, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            p.id,
            p.conversation,
            target,
            p.sender,
            p.action,
            p.timestamp_ms as i64,
            now_ms as i64
        ],
    )?;
    c.execute(
        "DELETE FROM pending_actions WHERE conversation = ?1 AND rowid NOT IN
             (SELECT rowid FROM pending_actions WHERE conversation = ?1
              ORDER BY rowid DESC LIMIT ?2)",
        params![p.conversation, MAX_PENDING_PER_CONVERSATION as i64],
    )?;
    Ok(())
}

/// The actions waiting for message `target`, in the order they arrived,
/// removed from the waiting list.
pub fn take_pending(c: &Connection, target: Id) -> rusqlite::Result<Vec<Pending>> {
    let mut st = c.prepare(
        "SELECT id, conversation, sender, action, timestamp_ms FROM pending_actions
         WHERE target = ?1 ORDER BY rowid",
    )?;
    let found = st
        .query_map([target], |r| {
            Ok(Pending {
                id: r.get(0)?,
                conversation: r.get(1)?,
                sender: r.get(2)?,
                action: r.get(3)?,
                timestamp_ms: r.get::<_, i64>(4)? as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !found.is_empty() {
        c.execute("DELETE FROM pending_actions WHERE target = ?1", [target])?;
    }
    Ok(found)
}

/// How many actions wait in `conversation` (for tests and `diagnose`).
pub fn pending_count(c: &Connection, conversation: Id) -> rusqlite::Result<u64> {
    c.query_row(
        "SELECT count(*) FROM pending_actions WHERE conversation = ?1",
        [conversation],
        |r| r.get::<_, i64>(0).map(|n| n as u64),
    )
}

/// Whether `text` names `username` as a mention: `@username` not preceded
/// by a username character (so `me@alice.org` is no mention) and not
/// followed by one (so `@alicex` is not `@alice`); a trailing `.` ends a
/// sentence, not the name. Case-insensitive: usernames are lowercase.
pub fn mentions(text: &str, username: &str) -> bool {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let needle = format!("@{}", username.to_ascii_lowercase());
    let mut from = 0;
    while let Some(at) = lower[from..].find(&needle) {
        let start = from + at;
        let end = start + needle.len();
        let before_ok = start == 0 || !is_name(bytes[start - 1]);
        // A `.` right after is punctuation unless a name character follows it.
        let mut after = end;
        while after < bytes.len() && bytes[after] == b'.' {
            after += 1;
        }
        let after_ok = match bytes.get(end) {
            None => true,
            Some(b'.') => bytes.get(after).is_none_or(|b| !is_name(*b)),
            Some(b) => !is_name(*b),
        };
        if before_ok && after_ok {
            return true;
        }
        from = start + 1;
    }
    false
}

/// The time message `id` was last edited, if it was.
pub fn edited_at(c: &Connection, id: Id) -> rusqlite::Result<Option<u64>> {
    let at: Option<i64> = c
        .query_row("SELECT edited FROM messages WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(at.filter(|t| *t > 0).map(|t| t as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::messages::{self, Deleted, Extra, State};

    fn msg(conv: Id, sender: &str, text: &str) -> Message {
        Message {
            id: Id::random(),
            conversation: conv,
            sender: sender.into(),
            timestamp_ms: 10,
            text: text.into(),
            outgoing: false,
            state: State::Received,
            extra: Extra::default(),
        }
    }

    #[test]
    fn reactions_aggregate_per_emoji_in_first_given_order() {
        let (_d, c, conv) = crate::db::test_db_with_team();
        let m = msg(conv, "alice", "hi");
        let other = msg(conv, "alice", "bye");
        messages::insert(&c, &m).unwrap();
        messages::insert(&c, &other).unwrap();
        assert!(add_reaction(&c, m.id, "bob", "👍").unwrap());
        assert!(add_reaction(&c, m.id, "carol", "🎉").unwrap());
        assert!(add_reaction(&c, m.id, "carol", "👍").unwrap());
        assert!(!add_reaction(&c, m.id, "bob", "👍").unwrap(), "once each");
        assert!(add_reaction(&c, other.id, "bob", "👀").unwrap());
        let all = reactions_of(&c, &[m.id, other.id, Id::random()]).unwrap();
        assert_eq!(
            all[&m.id],
            vec![
                Reaction {
                    emoji: "👍".into(),
                    by: vec!["bob".into(), "carol".into()]
                },
                Reaction {
                    emoji: "🎉".into(),
                    by: vec!["carol".into()]
                },
            ]
        );
        assert_eq!(all[&other.id].len(), 1);
        assert!(remove_reaction(&c, m.id, "bob", "👍").unwrap());
        assert!(!remove_reaction(&c, m.id, "bob", "👍").unwrap());
        let after = reactions_of(&c, &[m.id]).unwrap();
        assert_eq!(after[&m.id][0].by, vec!["carol".to_string()]);
        // Gone with their message.
        c.execute("DELETE FROM messages WHERE id = ?1", [m.id])
            .unwrap();
        assert!(reactions_of(&c, &[m.id]).unwrap().is_empty());
    }

    #[test]
    fn edits_keep_versions_and_the_index_follows_and_deletes_remove_them() {
        let (_d, c, conv) = crate::db::test_db_with_team();
        let m = msg(conv, "alice", "deploy is broken");
        messages::insert(&c, &m).unwrap();
        edit(&c, &m, "deploy is fixed", 20, false).unwrap();
        let now = messages::by_id(&c, m.id).unwrap().unwrap();
        assert!(now.extra.edited);
        assert_eq!(edited_at(&c, m.id).unwrap(), Some(20));
        edit(&c, &now, "deploy is done", 30, false).unwrap();
        assert_eq!(
            versions(&c, m.id).unwrap(),
            vec![
                ("deploy is broken".to_string(), 10),
                ("deploy is fixed".to_string(), 20)
            ]
        );
        assert!(messages::search(&c, "broken", None, 10, 0)
            .unwrap()
            .is_empty());
        assert_eq!(messages::search(&c, "done", None, 10, 0).unwrap().len(), 1);

        delete(&c, m.id, Deleted::ForEveryone).unwrap();
        let gone = messages::by_id(&c, m.id).unwrap().unwrap();
        assert_eq!(gone.text, "");
        assert_eq!(gone.extra.deleted, Deleted::ForEveryone);
        assert!(versions(&c, m.id).unwrap().is_empty());
        assert!(messages::search(&c, "deploy", None, 10, 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn pending_actions_are_bounded_and_taken_once() {
        let (_d, c, conv) = crate::db::test_db_with_team();
        let target = Id::random();
        let p = |n: u64| Pending {
            id: Id::random(),
            conversation: conv,
            sender: "bob".into(),
            action: format!("{{\"n\":{n}}}"),
            timestamp_ms: n,
        };
        let first = p(0);
        keep_pending(&c, target, &first, 1_000).unwrap();
        keep_pending(&c, target, &first, 1_000).unwrap();
        assert_eq!(pending_count(&c, conv).unwrap(), 1, "once by id");
        for n in 1..=MAX_PENDING_PER_CONVERSATION {
            keep_pending(&c, Id::random(), &p(n), 1_000).unwrap();
        }
        assert_eq!(
            pending_count(&c, conv).unwrap(),
            MAX_PENDING_PER_CONVERSATION
        );
        assert!(
            take_pending(&c, target).unwrap().is_empty(),
            "the oldest went first"
        );
        let second = p(7);
        keep_pending(&c, target, &second, 2_000).unwrap();
        assert_eq!(take_pending(&c, target).unwrap(), vec![second]);
        assert!(take_pending(&c, target).unwrap().is_empty());
        // A week later everything waiting has gone.
        keep_pending(&c, Id::random(), &p(1), 2_000 + KEEP_MS + 1).unwrap();
        assert_eq!(pending_count(&c, conv).unwrap(), 1);
    }

    #[test]
    fn an_action_is_applied_once() {
        let (_d, c) = crate::db::test_db();
        let id = Id::random();
        assert!(first_seen(&c, id, 5).unwrap());
        assert!(!first_seen(&c, id, 6).unwrap());
        assert!(first_seen(&c, Id::random(), 5 + KEEP_MS + 1).unwrap());
        assert!(first_seen(&c, id, 5 + KEEP_MS + 2).unwrap(), "forgotten");
    }

    #[test]
    fn mentions_are_whole_names() {
        for yes in [
            "@alice",
            "hi @alice",
            "@alice, look",
            "ask @Alice.",
            "(@alice)",
            "@alice...",
        ] {
            assert!(mentions(yes, "alice"), "{yes}");
        }
        for no in [
            "alice",
            "me@alice.org",
            "@alicex",
            "@alice.b",
            "@alice-2",
            "@ alice",
            "",
        ] {
            assert!(!mentions(no, "alice"), "{no}");
        }
        assert!(mentions("@alicex and @alice", "alice"));
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("a\n\n b  c"), "a b c");
        assert_eq!(excerpt(&"é".repeat(200)).chars().count(), EXCERPT_CHARS);
    }
}
