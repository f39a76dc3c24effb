//! Bursts into one notification per conversation: the first message of a
//! quiet conversation waits [`GATHER`] for company (a catch-up batch after a
//! restart arrives within it), and after a notification the conversation
//! stays quiet for [`WINDOW`], gathering what comes meanwhile into the next
//! one ("5 new messages in team"). Pure bookkeeping over the instants the
//! caller passes, so the tests need no clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quicproquo_protocol::ipc::values::ConversationId;

/// How long the first message of a quiet conversation waits for more.
pub const GATHER: Duration = Duration::from_millis(300);
/// At most one notification per conversation this often.
pub const WINDOW: Duration = Duration::from_secs(2);

/// One message that may notify, with what its notification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub conversation: ConversationId,
    pub conversation_name: String,
    /// A DM: the title names the peer instead of "in &lt;conversation&gt;".
    pub dm: bool,
    pub sender: String,
    pub text: String,
    pub timestamp_ms: u64,
    pub mentions_me: bool,
    /// The conversation's `notify_content`: show the sender and the text.
    pub content: bool,
    /// It disappears (a timer): the notification server should not keep it.
    pub disappears: bool,
}

/// What one notification says: the newest message of the burst and how
/// many it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    pub last: Incoming,
    pub count: u32,
    /// Any message of the burst mentions us.
    pub mentions_me: bool,
    /// Any message of the burst disappears.
    pub disappears: bool,
}

struct Slot {
    pending: Option<(Burst, Instant)>,
    /// No notification for this conversation before then.
    quiet_until: Instant,
}

/// The conversations with a notification pending or just given.
#[derive(Default)]
pub struct Coalescer {
    slots: HashMap<ConversationId, Slot>,
}

impl Coalescer {
    pub fn add(&mut self, m: Incoming, now: Instant) {
        let slot = self.slots.entry(m.conversation).or_insert(Slot {
            pending: None,
            quiet_until: now,
        });
        match &mut slot.pending {
            Some((b, _)) => {
                b.count = b.count.saturating_add(1);
                b.mentions_me |= m.mentions_me;
                b.disappears |= m.disappears;
                b.last = m;
            }
            None => {
                let due = (now + GATHER).max(slot.quiet_until);
                let (mentions_me, disappears) = (m.mentions_me, m.disappears);
                slot.pending = Some((
                    Burst {
                        last: m,
                        count: 1,
                        mentions_me,
                        disappears,
                    },
                    due,
                ));
            }
        }
    }

    /// When the next notification is due, if one is pending.
    pub fn next_due(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|s| s.pending.as_ref().map(|(_, due)| *due))
            .min()
    }

    /// The notifications due at `now`, earliest first (so they go out in the
    /// order their conversations' first messages came in).
    pub fn take_due(&mut self, now: Instant) -> Vec<Burst> {
        let mut due = Vec::new();
        for slot in self.slots.values_mut() {
            if slot.pending.as_ref().is_some_and(|(_, at)| *at <= now) {
                if let Some(p) = slot.pending.take() {
                    due.push(p);
                }
                slot.quiet_until = now + WINDOW;
            }
        }
        // A conversation quiet again needs no slot: the map holds only
        // those with something pending or a window still open.
        self.slots
            .retain(|_, s| s.pending.is_some() || s.quiet_until > now);
        due.sort_by_key(|(_, at)| *at);
        due.into_iter().map(|(b, _)| b).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(conv: u8, text: &str) -> Incoming {
        Incoming {
            conversation: ConversationId([conv; 16]),
            conversation_name: format!("c{conv}"),
            dm: false,
            sender: "alice".into(),
            text: text.into(),
            timestamp_ms: 1,
            mentions_me: text.contains('@'),
            content: false,
            disappears: text.contains('⏲'),
        }
    }

    #[test]
    fn a_burst_is_one_notification_naming_the_count_and_the_newest() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        for i in 0..20 {
            c.add(msg(1, &format!("m{i}")), t0 + Duration::from_millis(i));
        }
        c.add(msg(1, "hi @me"), t0 + Duration::from_millis(50));
        c.add(msg(1, "gone soon ⏲"), t0 + Duration::from_millis(60));
        c.add(msg(1, "hi @me"), t0 + Duration::from_millis(70));
        assert!(c.take_due(t0 + Duration::from_millis(100)).is_empty());
        assert_eq!(c.next_due(), Some(t0 + GATHER));
        let out = c.take_due(t0 + GATHER);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].count, 23);
        assert_eq!(out[0].last.text, "hi @me");
        assert!(out[0].mentions_me && out[0].disappears);
        assert_eq!(c.next_due(), None);
    }

    #[test]
    fn after_a_notification_the_conversation_waits_a_window() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        c.add(msg(1, "a"), t0);
        let first = t0 + GATHER;
        assert_eq!(c.take_due(first).len(), 1);
        c.add(msg(1, "b"), first + Duration::from_millis(10));
        c.add(msg(1, "c"), first + Duration::from_millis(20));
        assert_eq!(c.next_due(), Some(first + WINDOW), "not before the window");
        assert!(c
            .take_due(first + WINDOW - Duration::from_millis(1))
            .is_empty());
        let out = c.take_due(first + WINDOW);
        assert_eq!((out.len(), out[0].count), (1, 2));
        // Long quiet: the next message waits only the gather time, and
        // the map no longer holds the conversation meanwhile.
        let later = first + WINDOW * 3;
        assert!(c.take_due(later).is_empty());
        assert!(c.slots.is_empty());
        c.add(msg(1, "d"), later);
        assert_eq!(c.next_due(), Some(later + GATHER));
    }

    #[test]
    fn conversations_are_independent_and_go_out_in_order() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        c.add(msg(2, "x"), t0);
        c.add(msg(1, "y"), t0 + Duration::from_millis(5));
        let out = c.take_due(t0 + Duration::from_secs(1));
        let names: Vec<_> = out
            .iter()
            .map(|b| b.last.conversation_name.as_str())
            .collect();
        assert_eq!(names, ["c2", "c1"]);
    }
}
