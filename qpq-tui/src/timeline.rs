//! One conversation's messages as far as they are loaded (oldest first,
//! each once), where the view is, and whether older pages remain.
//!
//! The view is anchored to a message, not to a row: [`View::At`] names the
//! message at the bottom of the pane (the selected one) and how many of its
//! rows are scrolled below the edge. Day separators and the "new messages"
//! marker belong to the block of the message after them, so they can never
//! shift which message is selected. Loading an older page shifts the anchor's
//! index by the page's length.

use std::collections::HashSet;

use quicproquo_protocol::ipc::values::{
    Attachment, DeliveryState, Message, MessageId, MessageState, Reaction,
};

/// The longest excerpt of a quoted original (as the daemon's `Quote`).
const QUOTE_CHARS: usize = 80;

/// How much of the history is here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    /// Nothing asked yet.
    NotLoaded,
    Loading,
    Loaded,
    Failed(String),
}

/// Where the message pane is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Pinned to the newest message; new ones scroll in.
    #[default]
    Follow,
    /// Message `index` is at the bottom with `skip` of its rows hidden below.
    At { index: usize, skip: usize },
}

#[derive(Debug, Clone)]
pub struct Timeline {
    messages: Vec<Message>,
    ids: HashSet<MessageId>,
    pub load: LoadState,
    /// Older messages may exist on the daemon.
    pub has_older: bool,
    pub loading_older: bool,
    pub view: View,
    /// The first message that was unread when the conversation was opened.
    pub new_marker: Option<MessageId>,
    /// Incoming messages that arrived while scrolled back.
    pub unseen_below: usize,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            messages: Vec::new(),
            ids: HashSet::new(),
            load: LoadState::NotLoaded,
            has_older: true,
            loading_older: false,
            view: View::Follow,
            new_marker: None,
            unseen_below: 0,
        }
    }
}

impl Timeline {
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains(id)
    }

    pub fn index_of(&self, id: &MessageId) -> Option<usize> {
        if !self.ids.contains(id) {
            return None;
        }
        self.messages.iter().rposition(|m| m.id == *id)
    }

    /// Adds a live message at the end. False when it was already here.
    pub fn push(&mut self, message: Message) -> bool {
        if !self.ids.insert(message.id) {
            // A resend or a notification after `send` answered: keep the
            // furthest delivery state.
            if let Some(m) = self.messages.iter_mut().rev().find(|m| m.id == message.id) {
                if rank(message.state) > rank(m.state) {
                    m.state = message.state;
                }
            }
            return false;
        }
        self.messages.push(message);
        true
    }

    /// The latest page arrived: it replaces nothing, but messages that came
    /// live before it stay after it.
    pub fn set_latest(&mut self, page: Vec<Message>, complete: bool) {
        let live = std::mem::take(&mut self.messages);
        self.ids.clear();
        // What was here and is not older than the page came live meanwhile;
        // anything older returns with the older pages.
        let from = page.first().map_or(0, |m| m.timestamp_ms);
        let live = live.into_iter().filter(|m| m.timestamp_ms >= from);
        for m in page.into_iter().chain(live) {
            if self.ids.insert(m.id) {
                self.messages.push(m);
            }
        }
        self.load = LoadState::Loaded;
        self.has_older = !complete;
        self.loading_older = false;
        self.view = View::Follow;
    }

    /// An older page arrived (oldest first): prepend what is new and keep
    /// the anchor on the same message. Returns how many were added.
    pub fn prepend(&mut self, page: Vec<Message>, complete: bool) -> usize {
        let fresh: Vec<Message> = page
            .into_iter()
            .filter(|m| !self.ids.contains(&m.id))
            .collect();
        let n = fresh.len();
        for m in &fresh {
            self.ids.insert(m.id);
        }
        self.messages.splice(0..0, fresh);
        if let View::At { index, skip } = self.view {
            self.view = View::At {
                index: index + n,
                skip,
            };
        }
        self.has_older = !complete;
        self.loading_older = false;
        n
    }

    /// A delivery notification for an own message.
    /// A `delivery` notification: states move forward (to delivered, or to
    /// expired with `reason`), except that a message fails (with `reason`)
    /// and a failed one is queued again.
    pub fn delivered(&mut self, id: &MessageId, state: DeliveryState, reason: Option<String>) {
        let Some(m) = self.messages.iter_mut().rev().find(|m| m.id == *id) else {
            return;
        };
        match state {
            DeliveryState::Failed => {
                m.state = MessageState::Failed;
                m.failure = reason;
            }
            // A recipient never fetched it; `reason` says who.
            DeliveryState::Expired => {
                if rank(m.state) < rank(MessageState::Expired) {
                    m.state = MessageState::Expired;
                    m.failure = reason;
                }
            }
            DeliveryState::Queued => {
                if m.state == MessageState::Failed {
                    m.state = MessageState::Queued;
                    m.failure = None;
                }
            }
            DeliveryState::Sent | DeliveryState::Delivered => {
                let state = if state == DeliveryState::Sent {
                    MessageState::Sent
                } else {
                    MessageState::Delivered
                };
                if rank(state) > rank(m.state) {
                    m.state = state;
                    m.failure = None;
                }
            }
        }
    }

    /// The newest of our messages that failed (what `/retry` and
    /// `/discard` act on).
    pub fn last_failed(&self) -> Option<&Message> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.outgoing && m.state == MessageState::Failed)
    }

    /// Forgets a message (discarded).
    pub fn remove(&mut self, id: &MessageId) {
        if !self.ids.remove(id) {
            return;
        }
        let Some(at) = self.messages.iter().rposition(|m| m.id == *id) else {
            return;
        };
        self.messages.remove(at);
        // A view anchored at or after it keeps its message in sight.
        if let View::At { index, skip } = self.view {
            self.view = match index.checked_sub(usize::from(at <= index)) {
                Some(index) if index < self.messages.len() => View::At { index, skip },
                _ => View::Follow,
            };
        }
    }

    pub fn get(&self, id: &MessageId) -> Option<&Message> {
        self.index_of(id).and_then(|i| self.messages.get(i))
    }

    fn get_mut(&mut self, id: &MessageId) -> Option<&mut Message> {
        let i = self.index_of(id)?;
        self.messages.get_mut(i)
    }

    /// The attachment on message `id`, to follow its transfer.
    pub fn attachment_mut(&mut self, id: &MessageId) -> Option<&mut Attachment> {
        self.get_mut(id)?.meta.attachment.as_deref_mut()
    }

    /// The daemon's current view of a message (the answer to `react` or
    /// `edit`) replaces ours; the delivery state never goes back.
    pub fn replace(&mut self, message: Message) {
        if let Some(m) = self.get_mut(&message.id) {
            let state = if rank(m.state) > rank(message.state) {
                m.state
            } else {
                message.state
            };
            *m = Message { state, ..message };
        }
    }

    /// A `reaction` notification: `by` added (or took back) `emoji`.
    /// Reactions keep the order they were first given in.
    pub fn react(&mut self, id: &MessageId, emoji: &str, by: &str, removed: bool) {
        let Some(m) = self.get_mut(id) else {
            return;
        };
        let reactions = &mut m.meta.reactions;
        let at = reactions.iter().position(|r| r.emoji == emoji);
        match (at, removed) {
            (Some(i), true) => {
                reactions[i].by.retain(|b| b != by);
                if reactions[i].by.is_empty() {
                    reactions.remove(i);
                }
            }
            (Some(i), false) => {
                if !reactions[i].by.iter().any(|b| b == by) {
                    reactions[i].by.push(by.to_owned());
                }
            }
            (None, false) => reactions.push(Reaction {
                emoji: emoji.to_owned(),
                by: vec![by.to_owned()],
            }),
            (None, true) => {}
        }
    }

    /// An `edit` notification. The notification log keeps no text (a
    /// replay after a reconnect has none): then only the marker changes.
    pub fn edit(&mut self, id: &MessageId, text: &str) {
        let Some(m) = self.get_mut(id) else {
            return;
        };
        m.meta.edited = true;
        if text.is_empty() {
            return;
        }
        m.text = text.to_owned();
        // Replies quoting it show the new words, as the daemon's next page
        // would.
        let excerpt: String = text.chars().take(QUOTE_CHARS).collect();
        self.requote(id, &excerpt);
    }

    /// Sets the excerpt of every loaded reply quoting `id`.
    fn requote(&mut self, id: &MessageId, excerpt: &str) {
        for m in &mut self.messages {
            if let Some(q) = m.meta.reply_to.as_mut().filter(|q| q.id == *id) {
                q.excerpt = excerpt.to_owned();
            }
        }
    }

    /// Deleted by its sender for everyone: the text goes, a marker stays,
    /// and replies quoting it lose their excerpt (as the daemon sends them).
    pub fn delete_for_everyone(&mut self, id: &MessageId) {
        let Some(m) = self.get_mut(id) else {
            return;
        };
        m.text.clear();
        m.meta.deleted = true;
        m.meta.reactions.clear();
        self.requote(id, "");
    }

    /// A `read` notification: `by` read everything up to `up_to`, so each
    /// of our messages up to there lists them. The walk stops at the first
    /// message that already does (everything before it was read with it),
    /// so a receipt costs the messages it newly covers, not the history.
    pub fn read(&mut self, up_to: &MessageId, by: &str) {
        let Some(end) = self.index_of(up_to) else {
            return;
        };
        for m in self.messages[..=end].iter_mut().rev() {
            if !m.outgoing {
                continue;
            }
            if m.meta.read_by.iter().any(|b| b == by) {
                break;
            }
            m.meta.read_by.push(by.to_owned());
        }
    }

    /// The oldest loaded message, for the next page's `before`.
    pub fn oldest(&self) -> Option<MessageId> {
        self.messages.first().map(|m| m.id)
    }

    pub fn newest(&self) -> Option<&Message> {
        self.messages.last()
    }

    /// The selected message: the one at the bottom when scrolled back.
    pub fn selected(&self) -> Option<usize> {
        match self.view {
            View::Follow => None,
            View::At { index, .. } => Some(index),
        }
    }
}

fn rank(s: MessageState) -> u8 {
    match s {
        MessageState::Queued | MessageState::Failed => 0,
        MessageState::Sent => 1,
        MessageState::Delivered | MessageState::Expired => 2,
        MessageState::Received => 3,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use quicproquo_protocol::ipc::values::ConversationId;

    use super::*;

    pub(crate) fn msg(n: u32, text: &str) -> Message {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        Message {
            id: MessageId(id),
            conversation: ConversationId([1; 16]),
            sender: "bob".into(),
            timestamp_ms: 1_767_225_600_000 + u64::from(n) * 60_000,
            text: text.into(),
            outgoing: false,
            state: MessageState::Received,
            failure: None,
            meta: Default::default(),
        }
    }

    #[test]
    fn each_message_once_and_pages_keep_the_anchor() {
        let mut t = Timeline::default();
        assert!(t.push(msg(10, "live")));
        t.set_latest(vec![msg(8, "a"), msg(9, "b"), msg(10, "live")], false);
        assert_eq!(t.len(), 3);
        assert!(!t.push(msg(9, "b")));
        t.view = View::At { index: 1, skip: 0 };
        let added = t.prepend(vec![msg(6, "x"), msg(7, "y"), msg(8, "a")], true);
        assert_eq!(added, 2);
        assert_eq!(t.view, View::At { index: 3, skip: 0 });
        assert_eq!(t.messages()[3].text, "b", "still the same message");
        assert!(!t.has_older);
        assert_eq!(t.index_of(&msg(7, "").id), Some(1));
    }

    #[test]
    fn reactions_edits_deletes_and_receipts_change_the_message() {
        let mut t = Timeline::default();
        let mut mine = msg(1, "mine");
        mine.outgoing = true;
        mine.sender = "alice".into();
        let mut mine2 = msg(3, "mine too");
        mine2.outgoing = true;
        t.set_latest(vec![mine.clone(), msg(2, "theirs"), mine2.clone()], true);
        t.react(&mine.id, "👍", "bob", false);
        t.react(&mine.id, "👍", "carol", false);
        t.react(&mine.id, "👍", "bob", false);
        t.react(&mine.id, "🎉", "bob", false);
        let r = &t.get(&mine.id).unwrap().meta.reactions;
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].by, ["bob", "carol"], "once each, in order");
        t.react(&mine.id, "🎉", "bob", true);
        t.react(&mine.id, "😢", "bob", true);
        assert_eq!(t.get(&mine.id).unwrap().meta.reactions.len(), 1);

        t.edit(&msg(2, "").id, "fixed");
        assert_eq!(t.messages()[1].text, "fixed");
        t.edit(&msg(2, "").id, "");
        assert_eq!(t.messages()[1].text, "fixed", "a replayed edit has no text");
        assert!(t.messages()[1].meta.edited);

        t.read(&mine2.id, "bob");
        t.read(&mine2.id, "bob");
        assert_eq!(t.messages()[0].meta.read_by, ["bob"]);
        assert_eq!(t.messages()[2].meta.read_by, ["bob"]);
        assert!(t.messages()[1].meta.read_by.is_empty(), "not ours");

        let mut reply = msg(4, "re");
        reply.meta.reply_to = Some(quicproquo_protocol::ipc::values::Quote {
            id: mine.id,
            sender: "alice".into(),
            excerpt: "mine".into(),
            missing: false,
        });
        t.push(reply);
        t.edit(&mine.id, "mine, edited");
        let q = t.messages()[3].meta.reply_to.as_ref().unwrap();
        assert_eq!(q.excerpt, "mine, edited", "a quote shows the edit");
        t.delete_for_everyone(&mine.id);
        let m = t.get(&mine.id).unwrap();
        assert!(m.meta.deleted && m.text.is_empty() && m.meta.reactions.is_empty());
        let q = t.messages()[3].meta.reply_to.as_ref().unwrap();
        assert!(
            q.excerpt.is_empty(),
            "the quote of a deleted message goes too"
        );
    }

    #[test]
    fn delivery_states_only_move_forward() {
        let mut t = Timeline::default();
        let mut m = msg(1, "mine");
        m.outgoing = true;
        m.state = MessageState::Queued;
        t.push(m.clone());
        t.delivered(&m.id, DeliveryState::Delivered, None);
        t.delivered(&m.id, DeliveryState::Sent, None);
        assert_eq!(t.messages()[0].state, MessageState::Delivered);
        t.push(m);
        assert_eq!(t.messages()[0].state, MessageState::Delivered);
    }

    #[test]
    fn a_sent_message_expires_with_its_reason_and_stays_expired() {
        let mut t = Timeline::default();
        let mut m = msg(1, "mine");
        m.outgoing = true;
        m.state = MessageState::Sent;
        t.push(m.clone());
        let why = "bob did not fetch it";
        t.delivered(&m.id, DeliveryState::Expired, Some(why.into()));
        assert_eq!(t.messages()[0].state, MessageState::Expired);
        assert_eq!(t.messages()[0].failure.as_deref(), Some(why));
        t.delivered(&m.id, DeliveryState::Sent, None);
        assert_eq!(t.messages()[0].state, MessageState::Expired);
        assert!(t.last_failed().is_none(), "nothing to retry");
    }
}
