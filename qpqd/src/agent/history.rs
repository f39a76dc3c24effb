//! Reading what is stored: the conversation list, a conversation's history,
//! full-text search and read markers. Each call is one core trip.
//!
//! A `history` or `search` answer holds at most [`MAX_REPLY_BYTES`] of
//! messages ([`fit`]): a peer's 64 KiB messages, whose JSON escaping may
//! double them, can no longer make an answer longer than the line limit.
//! An answer cut short holds fewer messages than asked for; the caller pages
//! on (`before` the oldest for `history`, `offset` for `search`).

use quicproquo_protocol::ipc::values::{
    Conversation as IpcConversation, ConversationId, ConversationKind, ConversationRef,
    Message as IpcMessage, MessageId, MessageMeta, MessageState, Quote,
};
use quicproquo_protocol::ipc::MAX_REPLY_BYTES;

use quicproquo_protocol::limits::check_search_query;
use rusqlite::Connection;

use super::{Agent, AgentError, AgentResult};
use crate::reader::ReadError;

/// Longest a search runs before it is stopped (-32007).
const SEARCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
use crate::core::Core;
use crate::db::conversations::{self, Conversation, Kind};
use crate::db::messages::{self, Deleted, Message, State};
use crate::db::{self, Id};
use crate::mls::{GroupId, Suite};

impl Agent {
    pub async fn conversations(&self) -> AgentResult<Vec<IpcConversation>> {
        self.core()?
            .run(|c| -> AgentResult<_> {
                conversations::all(c.db())?
                    .iter()
                    .map(|conv| view(c, conv))
                    .collect()
            })
            .await
    }

    pub async fn history(
        &self,
        r: &ConversationRef,
        before: Option<MessageId>,
        limit: u32,
    ) -> AgentResult<Vec<IpcMessage>> {
        let r = r.clone();
        let before = before.map(|m| Id(m.0));
        self.core()?
            .run(move |c| {
                let conv = find(c, &r)?;
                // No message's JSON is shorter than its text: rows past
                // that many bytes of text could not be sent anyway.
                let stored =
                    messages::history_within(c.db(), conv.id, before, limit, MAX_REPLY_BYTES)?;
                // The newest that fit: the caller goes on before the oldest.
                let mut out = fit(c.db(), stored.iter().rev())?;
                out.reverse();
                Ok(out)
            })
            .await
    }

    /// Full-text search, bounded twice: the query in words and bytes
    /// (`check_search_query`), and the time, `SEARCH_DEADLINE`. It runs on
    /// the read-only connection, off the core thread, so a long search holds
    /// up nothing else.
    pub async fn search(
        &self,
        query: &str,
        r: Option<&ConversationRef>,
        limit: u32,
        offset: u32,
    ) -> AgentResult<Vec<IpcMessage>> {
        check_search_query(query).map_err(AgentError::InvalidInput)?;
        let r = r.cloned();
        let q = query.to_owned();
        let reader = self.opened()?.reader;
        let found = reader
            .run(SEARCH_DEADLINE, move |db| {
                let conv = match &r {
                    Some(r) => match conversations::resolve(db, &r.to_string())? {
                        Some(conv) => Some(conv.id),
                        None => return Ok(Err(r.to_string())),
                    },
                    None => None,
                };
                let found = messages::search(db, &q, conv, limit, offset)?;
                Ok(Ok(fit(db, found.iter())?))
            })
            .await;
        match found {
            Ok(Ok(messages)) => Ok(messages),
            Ok(Err(r)) => Err(AgentError::NotFound(format!("no conversation `{r}`"))),
            Err(ReadError::Deadline(d)) => {
                Err(AgentError::InvalidInput(ReadError::Deadline(d).to_string()))
            }
            Err(e) => Err(AgentError::internal(e)),
        }
    }

    pub async fn read(&self, r: &ConversationRef, up_to: Option<MessageId>) -> AgentResult<u64> {
        let r = r.clone();
        let up_to = up_to.map(|m| Id(m.0));
        let (unread, receipt) = self
            .core()?
            .run(move |c| {
                c.atomically(|c| -> AgentResult<_> {
                    let conv = find(c, &r)?;
                    messages::mark_read(c.db(), conv.id, up_to)?;
                    let receipt = super::privacy::queue_read_receipt(c, &conv)?;
                    Ok((messages::unread(c.db(), conv.id)?, receipt))
                })
            })
            .await?;
        if receipt {
            self.outbox_kick.notify_one();
        }
        Ok(unread)
    }
}

/// Finds a conversation by what the user typed, or says it does not exist.
pub(crate) fn find(c: &Core, r: &ConversationRef) -> AgentResult<Conversation> {
    conversations::resolve(c.db(), &r.to_string())?
        .ok_or_else(|| AgentError::NotFound(format!("no conversation `{r}`")))
}

/// [`find`], for a conversation we are still a member of.
pub(crate) fn find_active(c: &Core, r: &ConversationRef) -> AgentResult<Conversation> {
    let conv = find(c, r)?;
    if !conv.active {
        return Err(AgentError::NotFound(format!(
            "you are no longer a member of `{r}`"
        )));
    }
    Ok(conv)
}

/// A conversation as front-ends see it.
pub(crate) fn view(c: &Core, conv: &Conversation) -> AgentResult<IpcConversation> {
    Ok(view_db(c, conv)?)
}

/// [`view`], where a database error is what can go wrong (the inbox).
pub(crate) fn view_db(c: &Core, conv: &Conversation) -> rusqlite::Result<IpcConversation> {
    let unread = messages::unread(c.db(), conv.id)?;
    let members = match c.engine_ref() {
        Some(e) => match GroupId::from_slice(&conv.group_id) {
            Some(g) if conv.active => e
                .members(g)
                .map(|ms| ms.into_iter().map(|m| m.username.to_string()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    Ok(IpcConversation {
        id: conv_id(conv.id),
        name: conv.name.clone(),
        kind: match conv.kind {
            Kind::Dm => ConversationKind::Dm,
            Kind::Group => ConversationKind::Group,
        },
        members,
        unread,
        ciphersuite: conv.ciphersuite,
        last_activity_ms: conv.last_activity_ms,
    })
}

pub(crate) fn ipc_message(m: &Message) -> IpcMessage {
    IpcMessage {
        id: MessageId(m.id.0),
        conversation: conv_id(m.conversation),
        sender: m.sender.clone(),
        timestamp_ms: m.timestamp_ms,
        text: m.text.clone(),
        outgoing: m.outgoing,
        state: match m.state {
            State::Queued => MessageState::Queued,
            State::Sent => MessageState::Sent,
            State::Delivered => MessageState::Delivered,
            State::Received => MessageState::Received,
            State::Failed => MessageState::Failed,
            State::Expired => MessageState::Expired,
        },
        failure: None,
        // The quote and reactions need the database: `stored_messages`.
        meta: MessageMeta {
            edited: m.extra.edited,
            deleted: m.extra.deleted == Deleted::ForEveryone,
            mentions_me: m.extra.mentions_me,
            expires_at_ms: m.extra.expires_at_ms,
            ..Default::default()
        },
    }
}

/// The messages, in the order given, while their JSON stays within
/// [`MAX_REPLY_BYTES`] — at least one, which always fits (64 KiB of text is
/// at most 128 KiB of JSON: control characters, escaped six-fold, are
/// refused in messages).
pub(super) fn fit<'a>(
    db: &Connection,
    stored: impl Iterator<Item = &'a Message>,
) -> rusqlite::Result<Vec<IpcMessage>> {
    let stored: Vec<&Message> = stored.collect();
    let mut out = Vec::new();
    let mut bytes = 0;
    for m in stored_messages(db, &stored)? {
        bytes += json_len(&m) + 1;
        if bytes > MAX_REPLY_BYTES && !out.is_empty() {
            break;
        }
        out.push(m);
    }
    Ok(out)
}

/// The length of `m`'s JSON, counted without building it.
fn json_len(m: &IpcMessage) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    // Serializing plain data into a counter cannot fail.
    let _ = serde_json::to_writer(&mut n, m);
    n.0
}

/// [`ipc_message`] for a stored message: a `failed` one says why, a reply
/// quotes what it answers, reactions are listed.
pub(crate) fn stored_message(db: &Connection, m: &Message) -> rusqlite::Result<IpcMessage> {
    let mut out = stored_messages(db, &[m])?;
    Ok(out.pop().expect("one message in, one out"))
}

/// [`stored_message`] for a page of messages, in the same order: the
/// reactions and quoted originals of the whole page are read in one query
/// each (a page of 500 is three queries, not 1,500).
pub(crate) fn stored_messages(
    db: &Connection,
    ms: &[&Message],
) -> rusqlite::Result<Vec<IpcMessage>> {
    let ids: Vec<Id> = ms.iter().map(|m| m.id).collect();
    let mut reactions = db::actions::reactions_of(db, &ids)?;
    let quoted: Vec<Id> = ms
        .iter()
        .filter_map(|m| m.extra.reply_to.as_ref().map(|(id, _)| *id))
        .collect();
    let originals = db::actions::originals_of(db, &quoted)?;
    let mut attachments = db::attachments::views_of(db, &ids)?;
    let mut out = Vec::with_capacity(ms.len());
    for m in ms {
        let mut ipc = ipc_message(m);
        ipc.meta.attachment = attachments.remove(&m.id).map(Box::new);
        if m.state == State::Failed {
            ipc.failure = db::outbox::parked_reason(db, m.id)?;
            // An attachment whose upload was refused never reached the outbox.
            if ipc.failure.is_none() {
                ipc.failure = ipc.meta.attachment.as_ref().and_then(|a| a.error.clone());
            }
        }
        ipc.meta.reactions = reactions.remove(&m.id).unwrap_or_default();
        ipc.meta.reply_to = m
            .extra
            .reply_to
            .as_ref()
            .map(|(id, sender)| quote(m, *id, sender, originals.get(id)));
        if m.outgoing {
            ipc.meta.read_by = db::privacy::read_by(db, m.conversation, m.id)?;
        }
        out.push(ipc);
    }
    Ok(out)
}

/// What reply `m` shows of the message `id` from `sender` it answers: the
/// start of its text if it is here, in the same conversation and from that
/// sender (a reply cannot put words in someone else's mouth), else
/// `missing`; an empty excerpt once deleted.
fn quote(m: &Message, id: Id, sender: &str, original: Option<&db::actions::Original>) -> Quote {
    let shown = original.filter(|o| {
        o.conversation == m.conversation && o.sender == sender && o.deleted != Deleted::ForMe
    });
    Quote {
        id: MessageId(id.0),
        sender: sender.to_owned(),
        excerpt: match shown {
            Some(o) if o.deleted == Deleted::No => db::actions::excerpt(&o.text),
            _ => String::new(),
        },
        missing: shown.is_none(),
    }
}

pub(crate) fn conv_id(id: Id) -> ConversationId {
    ConversationId(id.0)
}

/// A new conversation row for an MLS group we created or joined.
pub(crate) fn new_conversation(
    kind: Kind,
    name: String,
    group: GroupId,
    peer: Option<String>,
    suite: Suite,
) -> Conversation {
    Conversation {
        id: Id::random(),
        kind,
        name,
        group_id: group.as_bytes().to_vec(),
        peer,
        ciphersuite: suite,
        last_activity_ms: db::now_ms(),
        active: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::messages::Extra;

    /// A page of 500 where one message in ten carries a reaction and one in
    /// ten is a reply: every message gets its own meta from the page's two
    /// batched reads. Prints how long the page took with and without the
    /// meta (`--nocapture`), the figure the brief asks for.
    #[test]
    fn a_page_reads_reactions_and_quotes_in_batches() {
        let (_d, c, conv) = db::test_db_with_team();
        let mut page = Vec::new();
        for i in 0..500u32 {
            let reply_to = (i % 10 == 5).then(|| (page[i as usize - 1], "bob".to_string()));
            let m = Message {
                id: Id::random(),
                conversation: conv,
                sender: "bob".into(),
                timestamp_ms: u64::from(i),
                text: format!("message {i}"),
                outgoing: false,
                state: State::Received,
                extra: Extra {
                    reply_to,
                    ..Default::default()
                },
            };
            messages::insert(&c, &m).unwrap();
            if i % 10 == 0 {
                db::actions::add_reaction(&c, m.id, "carol", "👍").unwrap();
            }
            page.push(m.id);
        }
        let started = std::time::Instant::now();
        let stored = messages::history(&c, conv, None, 500).unwrap();
        let read = started.elapsed();
        let refs: Vec<&Message> = stored.iter().collect();
        let plain: Vec<IpcMessage> = stored.iter().map(ipc_message).collect();
        let started = std::time::Instant::now();
        let full = stored_messages(&c, &refs).unwrap();
        let with_meta = started.elapsed();
        // The same meta read one message at a time (two queries each).
        let started = std::time::Instant::now();
        for m in &refs {
            stored_messages(&c, &[m]).unwrap();
        }
        let one_by_one = started.elapsed();
        println!(
            "a page of 500: {read:?} to read the rows, {with_meta:?} more for reactions and \
             quotes batched, {one_by_one:?} one message at a time"
        );
        assert_eq!(full.len(), plain.len());
        for (i, m) in full.iter().enumerate() {
            assert_eq!(m.meta.reactions.len(), usize::from(i % 10 == 0), "{i}");
            match &m.meta.reply_to {
                Some(q) => {
                    assert_eq!(i % 10, 5);
                    assert_eq!(q.excerpt, format!("message {}", i - 1));
                    assert!(!q.missing);
                }
                None => assert_ne!(i % 10, 5),
            }
        }
    }
}
