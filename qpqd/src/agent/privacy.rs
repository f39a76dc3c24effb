//! Read receipts, typing indicators and disappearing messages (issue 17):
//! each sent only where the user turned it on (`db::settings`; the global
//! defaults are off), received from members as signals (`payload::Signal`)
//! and timers (`payload::Action::Timer`).
//!
//! - Read receipts go through the outbox (durable, in order after the
//!   messages they follow), at most one waiting per conversation: a newer
//!   one replaces it (`db::privacy::replace_pending_receipt`).
//! - Typing indicators never enter the outbox: one is worth something for a
//!   few seconds, so it is sent now, while online, or not at all; at most
//!   one `on` per conversation per [`TYPING_EVERY`], an `off` only after an
//!   `on`.
//! - Disappearing messages: the timer is a conversation setting every member
//!   shares (any member may change it; each change is said in the
//!   conversation). Each message sent under it carries `ttl`; every member
//!   sets `expires_at_ms` from its own clock, and the sweeper
//!   ([`Agent::expiry_loop`]) removes what expired, wherever the state kept
//!   its text (`db::privacy::purge`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicproquo_protocol::ipc::methods::{ConversationSettingsParams, SettingsParams};
use quicproquo_protocol::ipc::notifications::{
    DeleteUpdate, NewMessage, Notification, ReadUpdate, TimerUpdate, TypingUpdate,
};
use quicproquo_protocol::ipc::values::{
    ConversationRef, ConversationSettings, DeleteScope, MessageId, Settings,
};
use quicproquo_protocol::types::{IdempotencyKey, Username};
use tokio::sync::Notify;

use super::history::{conv_id, find, find_active, ipc_message};
use super::inbox::Stored;
use super::{emit, Agent, AgentError, AgentResult};
use crate::core::{Core, CoreError};
use crate::db::conversations::Conversation;
use crate::db::messages::{self, Message, State};
use crate::db::{now_ms, outbox, privacy, settings, Id};
use crate::link::ConnState;
use crate::mls::{GroupId, MlsError};
use crate::payload::{Action, Envelope, Known, MessageRef, Signal, MAX_TIMER_SECONDS};

/// At most one typing `on` per conversation this often (members show it for
/// about 6 s, so a longer burst of typing stays visible).
pub(crate) const TYPING_EVERY: Duration = Duration::from_secs(3);

/// A typing indicator not on the server within this long is dropped: after
/// that it would say something no longer true.
const TYPING_FRESH: Duration = Duration::from_secs(5);

/// The longest the sweeper sleeps without looking again (a clock change or
/// a missed wake-up costs at most this much delay).
const SWEEP_IDLE: Duration = Duration::from_secs(60);

/// Most messages removed in one transaction (the core thread is not held
/// for long by a large backlog of expired messages).
const SWEEP_BATCH: u32 = 200;

/// What the agent keeps in memory for this module.
#[derive(Default)]
pub(crate) struct PrivacyState {
    /// Per conversation: when we last sent typing `on`, and whether an `off`
    /// may follow.
    typing: std::sync::Mutex<HashMap<Id, Typing>>,
    /// Wakes the sweeper: a message that expires before its next wake-up
    /// was stored.
    expiry_kick: Notify,
    /// When the sweeper wakes next (Unix ms; 0 while it sweeps).
    scheduled_ms: AtomicU64,
}

#[derive(Clone, Copy)]
struct Typing {
    last_on: Instant,
    on: bool,
}

impl PrivacyState {
    /// Whether a typing signal `on` for `conversation` goes now (and the
    /// record of it, if so).
    fn typing_goes(&self, conversation: Id, on: bool, now: Instant) -> bool {
        let mut t = self.typing.lock().unwrap_or_else(|p| p.into_inner());
        match (t.get(&conversation).copied(), on) {
            (Some(prev), true) if now.duration_since(prev.last_on) < TYPING_EVERY => false,
            (_, true) => {
                t.insert(conversation, Typing { last_on: now, on });
                true
            }
            (Some(prev), false) if prev.on => {
                t.insert(conversation, Typing { on, ..prev });
                true
            }
            (_, false) => false,
        }
    }

    /// Called for each notification published: a message that disappears
    /// before the sweeper's next wake-up wakes it.
    pub(crate) fn saw(&self, n: &Notification) {
        if let Notification::Message(m) = n {
            if let Some(at) = m.message.meta.expires_at_ms {
                if at < self.scheduled_ms.load(Ordering::SeqCst) {
                    self.expiry_kick.notify_one();
                }
            }
        }
    }
}

impl Agent {
    /// `conversation.settings`: sets each value given, and answers every
    /// value as it applies. A changed timer is sent to every member.
    pub async fn conversation_settings(
        &self,
        p: ConversationSettingsParams,
    ) -> AgentResult<ConversationSettings> {
        if let Some(s) = p.timer_seconds {
            if s > MAX_TIMER_SECONDS {
                return Err(AgentError::InvalidInput(
                    "a disappearing timer is at most one year (31536000 seconds)".into(),
                ));
            }
        }
        let (answer, events, queued) = self
            .core()?
            .run(move |c| c.atomically(|c| set_conversation(c, &p)))
            .await?;
        self.publish(events);
        if queued {
            self.outbox_kick.notify_one();
        }
        Ok(answer)
    }

    /// `settings`: sets each default given, and answers every default.
    pub async fn settings(&self, p: SettingsParams) -> AgentResult<Settings> {
        self.core()?
            .run(move |c| c.atomically(|c| set_defaults(c, &p)))
            .await
    }

    /// `typing`: tells the members we are (or stopped) typing, if typing
    /// indicators are on for the conversation, we are online, and the rate
    /// limit allows. Never queued: not sent now, not sent at all.
    pub async fn typing(&self, r: &ConversationRef, on: bool) -> AgentResult<()> {
        let r = r.clone();
        let core = self.core()?;
        let (conv, group, enabled) = core
            .run(move |c| -> AgentResult<_> {
                let conv = find_active(c, &r)?;
                let enabled = settings::effective(c.db(), conv.id)?.typing;
                Ok((conv.id, GroupId::from_slice(&conv.group_id), enabled))
            })
            .await?;
        let Some(group) = group else {
            return Ok(());
        };
        if !enabled {
            return Ok(());
        }
        let online = self
            .link()
            .map(|l| l.state() == ConnState::Online)
            .unwrap_or(false);
        if !online || !self.privacy.typing_goes(conv, on, Instant::now()) {
            return Ok(());
        }
        let sent = tokio::time::timeout(TYPING_FRESH, self.send_now(group, Signal::Typing { on }))
            .await
            .unwrap_or_else(|_| Err(AgentError::offline()));
        if let Err(e) = sent {
            tracing::debug!(error = %e, "a typing indicator was dropped");
        }
        Ok(())
    }

    /// Encrypts `signal` for `group` and enqueues it at once, holding the
    /// group's lock in between (no commit of ours moves the epoch).
    async fn send_now(&self, group: GroupId, signal: Signal) -> AgentResult<()> {
        let _guard = self.group_lock(&group).lock_owned().await;
        let body = signal.payload().encode();
        let ciphertext = self
            .core()?
            .run(move |c| -> AgentResult<Option<Vec<u8>>> {
                let e = c.engine()?;
                if e.members(group).map_err(CoreError::from)?.len() <= 1 {
                    return Ok(None);
                }
                match e.encrypt(group, &body) {
                    Ok(ct) => Ok(Some(ct)),
                    // Proposals wait for a commit: not now, then.
                    Err(MlsError::PendingProposals(_)) => Ok(None),
                    Err(e) => Err(CoreError::from(e).into()),
                }
            })
            .await?;
        if let Some(ct) = ciphertext {
            self.deliver_group(group, &ct, IdempotencyKey(Id::random().0), None, None)
                .await?;
        }
        Ok(())
    }

    /// Removes expired messages now, then whenever the next one is due
    /// (woken early when a message that expires sooner is stored). Runs
    /// from the moment the state is open until shutdown.
    pub(crate) async fn expiry_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown_signal();
        loop {
            let Ok(core) = self.core() else {
                return;
            };
            // Anything stored during the sweep wakes the next round.
            self.privacy.scheduled_ms.store(0, Ordering::SeqCst);
            let next = match core.run(|c| sweep(c, now_ms())).await {
                Ok((events, next)) => {
                    self.publish(events);
                    next
                }
                Err(e) => {
                    tracing::warn!(error = %e, "expired messages could not be removed now");
                    None
                }
            };
            let now = now_ms();
            let wait = next
                .map(|t| Duration::from_millis(t.saturating_sub(now)))
                .unwrap_or(SWEEP_IDLE)
                .min(SWEEP_IDLE);
            let wake = now.saturating_add(wait.as_millis() as u64);
            self.privacy.scheduled_ms.store(wake, Ordering::SeqCst);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.privacy.expiry_kick.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Core operation: `conversation.settings`' changes, in one transaction;
/// the answer, the notifications, and whether the outbox has news.
fn set_conversation(
    c: &mut Core,
    p: &ConversationSettingsParams,
) -> AgentResult<(ConversationSettings, Vec<Notification>, bool)> {
    let conv = match p.timer_seconds {
        Some(_) => find_active(c, &p.conversation)?,
        None => find(c, &p.conversation)?,
    };
    let set = |c: &Core, name: &str, v: Option<String>| -> rusqlite::Result<()> {
        match v {
            Some(v) => settings::set_conversation_value(c.db(), conv.id, name, Some(&v)),
            None => Ok(()),
        }
    };
    set(
        c,
        settings::READ_RECEIPTS,
        p.read_receipts.map(|b| b.to_string()),
    )?;
    set(c, settings::TYPING, p.typing.map(|b| b.to_string()))?;
    set(
        c,
        settings::NOTIFY,
        p.notify.map(|m| settings::notify_word(m).to_owned()),
    )?;
    set(
        c,
        settings::NOTIFY_CONTENT,
        p.notify_content.map(|b| b.to_string()),
    )?;
    if p.read_receipts == Some(false) {
        privacy::drop_pending_receipt(c.db(), conv.id)?;
    }
    let mut events = Vec::new();
    let mut queued = false;
    if let Some(seconds) = p.timer_seconds {
        if seconds != settings::effective(c.db(), conv.id)?.timer_seconds {
            let me = c.engine()?.username().clone();
            let id = Id::random();
            let now = now_ms();
            let fallback = timer_text(me.as_str(), seconds);
            let body = Action::Timer { seconds }
                .payload(id, now, fallback)
                .encode();
            outbox::push(c.db(), conv.id, &body, None, now)?;
            events = apply_timer(c, &conv, &me, id, seconds)?.events;
            queued = true;
        }
    }
    let e = settings::effective(c.db(), conv.id)?;
    let answer = ConversationSettings {
        conversation: conv_id(conv.id),
        read_receipts: e.read_receipts,
        typing: e.typing,
        timer_seconds: e.timer_seconds,
        notify: e.notify,
        notify_content: e.notify_content,
    };
    Ok((answer, events, queued))
}

/// Core operation: `settings`' changes; every default as it now is.
fn set_defaults(c: &mut Core, p: &SettingsParams) -> AgentResult<Settings> {
    let db = c.db();
    let bool_word = |b: bool| if b { "true" } else { "false" };
    if let Some(b) = p.read_receipts {
        settings::set_default_value(db, settings::READ_RECEIPTS, bool_word(b))?;
    }
    if let Some(b) = p.typing {
        settings::set_default_value(db, settings::TYPING, bool_word(b))?;
    }
    if let Some(m) = p.notify {
        settings::set_default_value(db, settings::NOTIFY, settings::notify_word(m))?;
    }
    if let Some(b) = p.notify_content {
        settings::set_default_value(db, settings::NOTIFY_CONTENT, bool_word(b))?;
    }
    let d = settings::defaults(db)?;
    Ok(Settings {
        read_receipts: d.read_receipts,
        typing: d.typing,
        notify: d.notify,
        notify_content: d.notify_content,
    })
}

/// After `read` (in its transaction): the read receipt for the newest
/// message we read in `conv`, queued (in place of one still waiting) when
/// receipts are on there and it names a later message than the last we
/// queued. Whether one was queued.
pub(super) fn queue_read_receipt(c: &mut Core, conv: &Conversation) -> AgentResult<bool> {
    if !conv.active || !settings::effective(c.db(), conv.id)?.read_receipts {
        return Ok(false);
    }
    let Some((row, id, sender)) = privacy::newest_read(c.db(), conv.id)? else {
        return Ok(false);
    };
    if !privacy::advance_mark(c.db(), conv.id, privacy::ME, row)? {
        return Ok(false);
    }
    let body = Signal::Read {
        up_to: MessageRef::new(id, &sender),
    }
    .payload()
    .encode();
    privacy::replace_pending_receipt(c.db(), conv.id, &body, now_ms())?;
    Ok(true)
}

/// A signal (read receipt, typing) from `sender`; one this build does not
/// know is dropped (signals are ephemeral by definition).
pub(super) fn signal_received(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    x: &Envelope,
) -> Result<Stored, CoreError> {
    match x.signal() {
        Ok(Known::Yes(Signal::Read { up_to })) => read_received(c, conv, sender, &up_to),
        Ok(Known::Yes(Signal::Typing { on })) => {
            let ev = emit(c, |seq| {
                Notification::Typing(TypingUpdate {
                    seq,
                    conversation: conv_id(conv.id),
                    by: sender.to_string(),
                    on,
                })
            })?;
            Ok(stored(vec![ev]))
        }
        Ok(Known::Unsupported(kind)) => {
            tracing::debug!(%kind, "dropped a signal of a type this build does not know");
            Ok(Stored::default())
        }
        Err(e) => {
            tracing::info!(error = %e, "ignored a malformed signal");
            Ok(Stored::default())
        }
    }
}

fn stored(events: Vec<Notification>) -> Stored {
    Stored {
        events,
        ..Stored::default()
    }
}

/// `sender` read `conv` up to `up_to`: their mark moves there (never
/// back), if this conversation holds that message from that sender.
fn read_received(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    up_to: &MessageRef,
) -> Result<Stored, CoreError> {
    let Some(id) = up_to.message_id() else {
        return Ok(Stored::default());
    };
    let Some(row) = privacy::position(c.db(), conv.id, id, &up_to.sender)? else {
        tracing::info!(reader = %sender, "ignored a read receipt naming a message not in its conversation");
        return Ok(Stored::default());
    };
    if !privacy::advance_mark(c.db(), conv.id, sender.as_str(), row)? {
        return Ok(Stored::default());
    }
    let ev = emit(c, |seq| {
        Notification::Read(ReadUpdate {
            seq,
            conversation: conv_id(conv.id),
            by: sender.to_string(),
            up_to: MessageId(id.0),
        })
    })?;
    Ok(stored(vec![ev]))
}

/// `sender` set the conversation's disappearing timer (action `id`).
pub(super) fn timer_received(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    id: Id,
    seconds: u64,
) -> Result<Stored, CoreError> {
    apply_timer(c, conv, sender, id, seconds)
}

/// The timer `by` set (action `id`, ours or a member's): the conversation's
/// setting, a notice in it, a `timer` notification. The notice takes the
/// action's id, so the same action applied twice is applied once.
fn apply_timer(
    c: &mut Core,
    conv: &Conversation,
    by: &Username,
    id: Id,
    seconds: u64,
) -> Result<Stored, CoreError> {
    let m = Message {
        id,
        conversation: conv.id,
        sender: String::new(),
        timestamp_ms: now_ms(),
        text: timer_text(by.as_str(), seconds),
        outgoing: false,
        state: State::Received,
        extra: Default::default(),
    };
    if !messages::insert(c.db(), &m)? {
        return Ok(Stored::default());
    }
    let value = (seconds > 0).then(|| seconds.to_string());
    settings::set_conversation_value(c.db(), conv.id, settings::TIMER_SECONDS, value.as_deref())?;
    let notice = emit(c, |seq| {
        Notification::Message(NewMessage {
            seq,
            message: ipc_message(&m),
        })
    })?;
    let timer = emit(c, |seq| {
        Notification::Timer(TimerUpdate {
            seq,
            conversation: conv_id(conv.id),
            by: by.to_string(),
            seconds,
        })
    })?;
    Ok(stored(vec![notice, timer]))
}

/// "alice set messages to disappear after 1 day" / "alice turned off
/// disappearing messages": the notice, and the fallback older daemons show.
pub(crate) fn timer_text(who: &str, seconds: u64) -> String {
    if seconds == 0 {
        return format!("{who} turned off disappearing messages");
    }
    format!(
        "{who} set messages to disappear after {}",
        duration_words(seconds)
    )
}

/// A duration in the largest unit that divides it: "1 day", "90 seconds".
fn duration_words(seconds: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (7 * 24 * 3600, "week"),
        (24 * 3600, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let (size, unit) = UNITS
        .iter()
        .copied()
        .find(|(size, _)| seconds.is_multiple_of(*size))
        .unwrap_or((1, "second"));
    let n = seconds / size;
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// When a message sent or received now with `ttl` seconds disappears.
pub(crate) fn expiry(now_ms: u64, ttl: u64) -> u64 {
    now_ms.saturating_add(ttl.saturating_mul(1000))
}

/// The `ttl` of a message sent in `conversation` now (its timer), if any.
pub(crate) fn ttl(c: &rusqlite::Connection, conversation: Id) -> rusqlite::Result<Option<u64>> {
    let seconds = settings::effective(c, conversation)?.timer_seconds;
    Ok((seconds > 0).then_some(seconds))
}

/// Core operation: removes every message expired at `now` (in batches,
/// each its own transaction, each message with a `delete` notification of
/// scope `expired`), empties the write-ahead log if anything went, and
/// answers when the next message expires.
pub(crate) fn sweep(c: &mut Core, now: u64) -> Result<(Vec<Notification>, Option<u64>), CoreError> {
    let mut events = Vec::new();
    loop {
        let n = c.atomically(|c| -> Result<usize, CoreError> {
            let due = privacy::due(c.db(), now, SWEEP_BATCH)?;
            let ids: Vec<Id> = due.iter().map(|m| m.id).collect();
            privacy::purge(c.db(), &ids)?;
            for m in &due {
                events.push(emit(c, |seq| {
                    Notification::Delete(DeleteUpdate {
                        seq,
                        conversation: conv_id(m.conversation),
                        id: MessageId(m.id.0),
                        by: m.sender.clone(),
                        scope: DeleteScope::Expired,
                    })
                })?);
            }
            Ok(due.len())
        })?;
        if n < SWEEP_BATCH as usize {
            break;
        }
    }
    if !events.is_empty() {
        privacy::checkpoint(c.db())?;
    }
    Ok((events, privacy::next_expiry(c.db())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::conversations;
    use crate::payload::Payload;

    fn core_with_team() -> (tempfile::TempDir, Core, Conversation) {
        let (d, conn, team) = crate::db::test_db_with_team();
        let conv = conversations::by_id(&conn, team).unwrap().unwrap();
        (d, Core::new(conn), conv)
    }

    fn stored_msg(c: &Core, conv: Id, sender: &str, text: &str, expires: Option<u64>) -> Message {
        let m = Message {
            id: Id::random(),
            conversation: conv,
            sender: sender.into(),
            timestamp_ms: 1,
            text: text.into(),
            outgoing: sender == "me",
            state: if sender == "me" {
                State::Sent
            } else {
                State::Received
            },
            extra: messages::Extra {
                expires_at_ms: expires,
                ..Default::default()
            },
        };
        assert!(messages::insert(c.db(), &m).unwrap());
        m
    }

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    /// The sweeper removes what expired (with a `delete` of scope
    /// `expired`), says when the next one is due, and the word leaves the
    /// full-text index: not found by a search, not a term of the index
    /// (fts5vocab), and not in the index's stored segments either.
    #[test]
    fn the_sweeper_removes_what_expired_and_its_words_leave_the_index() {
        let (_d, mut c, conv) = core_with_team();
        let gone = stored_msg(&c, conv.id, "bob", "aardvark plans", Some(1_000));
        stored_msg(&c, conv.id, "bob", "later", Some(5_000));
        stored_msg(&c, conv.id, "bob", "forever", None);
        c.db()
            .execute_batch(
                "CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, 'messages_fts', 'row');",
            )
            .unwrap();
        let in_index = |c: &Core| -> (i64, i64) {
            let vocab = c
                .db()
                .query_row(
                    "SELECT count(*) FROM temp.vocab WHERE term = 'aardvark'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let raw = c
                .db()
                .query_row(
                    "SELECT count(*) FROM messages_fts_data WHERE instr(block, 'aardvark') > 0",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (vocab, raw)
        };
        assert_eq!(in_index(&c), (1, 1), "indexed before");

        let (events, next) = sweep(&mut c, 999).unwrap();
        assert!(events.is_empty());
        assert_eq!(next, Some(1_000));
        let (events, next) = sweep(&mut c, 2_000).unwrap();
        let [Notification::Delete(d)] = events.as_slice() else {
            panic!("one delete: {events:?}");
        };
        assert_eq!(
            (d.id, d.scope, d.by.as_str()),
            (MessageId(gone.id.0), DeleteScope::Expired, "bob")
        );
        assert_eq!(next, Some(5_000));
        assert!(messages::by_id(c.db(), gone.id).unwrap().is_none());
        assert!(messages::search(c.db(), "aardvark", None, 10, 0)
            .unwrap()
            .is_empty());
        assert_eq!(in_index(&c), (0, 0), "gone from the index's pages");
        assert_eq!(
            messages::history(c.db(), conv.id, None, 10).unwrap().len(),
            2
        );
    }

    /// A read receipt moves the reader's mark (once) and our message says
    /// who read it; one naming a message of another sender or not in this
    /// conversation is ignored; typing is a notification only.
    #[test]
    fn signals_from_members() {
        let (_d, mut c, conv) = core_with_team();
        let ours = stored_msg(&c, conv.id, "me", "deploy?", None);
        let read = |up_to: MessageRef| Envelope::of_signal(&Signal::Read { up_to });
        let bob = user("bob");
        let s =
            signal_received(&mut c, &conv, &bob, &read(MessageRef::new(ours.id, "me"))).unwrap();
        assert!(
            matches!(s.events.as_slice(), [Notification::Read(r)] if r.by == "bob" && r.up_to.0 == ours.id.0),
            "{:?}",
            s.events
        );
        assert_eq!(privacy::read_by(c.db(), conv.id, ours.id).unwrap(), ["bob"]);
        let again =
            signal_received(&mut c, &conv, &bob, &read(MessageRef::new(ours.id, "me"))).unwrap();
        assert!(again.events.is_empty(), "nothing new");
        let carol = user("carol");
        for bad in [
            MessageRef::new(ours.id, "mallory"),
            MessageRef::new(Id::random(), "me"),
        ] {
            let s = signal_received(&mut c, &conv, &carol, &read(bad)).unwrap();
            assert!(s.events.is_empty());
        }
        assert_eq!(privacy::read_by(c.db(), conv.id, ours.id).unwrap(), ["bob"]);

        let typing = Envelope::of_signal(&Signal::Typing { on: true });
        let s = signal_received(&mut c, &conv, &carol, &typing).unwrap();
        assert!(
            matches!(s.events.as_slice(), [Notification::Typing(t)] if t.by == "carol" && t.on),
            "{:?}",
            s.events
        );
    }

    /// A member's timer becomes the conversation's, said in it; the same
    /// action again changes nothing; 0 turns it off.
    #[test]
    fn a_timer_applies_once_and_is_said() {
        let (_d, mut c, conv) = core_with_team();
        let id = Id::random();
        let s = timer_received(&mut c, &conv, &user("alice"), id, 24 * 3600).unwrap();
        assert!(
            matches!(s.events.as_slice(), [Notification::Message(m), Notification::Timer(t)]
                if m.message.text == "alice set messages to disappear after 1 day"
                    && m.message.sender.is_empty() && t.seconds == 24 * 3600),
            "{:?}",
            s.events
        );
        assert_eq!(
            settings::effective(c.db(), conv.id).unwrap().timer_seconds,
            86_400
        );
        assert!(timer_received(&mut c, &conv, &user("alice"), id, 24 * 3600)
            .unwrap()
            .events
            .is_empty());
        timer_received(&mut c, &conv, &user("bob"), Id::random(), 0).unwrap();
        assert_eq!(
            settings::effective(c.db(), conv.id).unwrap().timer_seconds,
            0
        );
        assert_eq!(ttl(c.db(), conv.id).unwrap(), None);
        assert_eq!(
            messages::history(c.db(), conv.id, None, 10).unwrap().len(),
            2
        );
    }

    /// Reading queues a receipt only where receipts are on, and only for
    /// something newer than the last; it names the newest message read.
    #[test]
    fn reading_queues_one_receipt_when_on() {
        let (_d, mut c, conv) = core_with_team();
        let first = stored_msg(&c, conv.id, "bob", "one", None);
        messages::mark_read(c.db(), conv.id, None).unwrap();
        assert!(
            !queue_read_receipt(&mut c, &conv).unwrap(),
            "off by default"
        );
        assert_eq!(outbox::next(c.db(), 0, &[]).unwrap(), outbox::Next::Empty);

        settings::set_conversation_value(c.db(), conv.id, settings::READ_RECEIPTS, Some("true"))
            .unwrap();
        assert!(queue_read_receipt(&mut c, &conv).unwrap());
        assert!(!queue_read_receipt(&mut c, &conv).unwrap(), "nothing newer");
        let second = stored_msg(&c, conv.id, "bob", "two", None);
        messages::mark_read(c.db(), conv.id, None).unwrap();
        assert!(queue_read_receipt(&mut c, &conv).unwrap());
        let outbox::Next::Message(e) = outbox::next(c.db(), 0, &[]).unwrap() else {
            panic!("a receipt waits");
        };
        assert_eq!(e.message_id, None);
        let Payload::Signal { x } = Payload::decode(&e.body).unwrap() else {
            panic!("a signal");
        };
        assert_eq!(
            x.signal().unwrap(),
            Known::Yes(Signal::Read {
                up_to: MessageRef::new(second.id, "bob")
            })
        );
        assert_eq!(
            crate::db::outbox::len(c.db()).unwrap(),
            1,
            "one waits: {first:?} replaced"
        );
    }

    #[test]
    fn timer_notices_say_the_duration_in_words() {
        assert_eq!(
            timer_text("alice", 24 * 3600),
            "alice set messages to disappear after 1 day"
        );
        assert_eq!(
            timer_text("bob", 90),
            "bob set messages to disappear after 90 seconds"
        );
        assert_eq!(
            timer_text("bob", 2 * 7 * 24 * 3600),
            "bob set messages to disappear after 2 weeks"
        );
        assert_eq!(
            timer_text("bob", 7200),
            "bob set messages to disappear after 2 hours"
        );
        assert_eq!(
            timer_text("carol", 0),
            "carol turned off disappearing messages"
        );
    }

    /// At most one `on` per conversation per [`TYPING_EVERY`]; an `off`
    /// only after an `on`, once.
    #[test]
    fn typing_is_rate_limited_per_conversation() {
        let s = PrivacyState::default();
        let (a, b) = (Id::random(), Id::random());
        let t0 = Instant::now();
        assert!(!s.typing_goes(a, false, t0), "no off before an on");
        assert!(s.typing_goes(a, true, t0));
        assert!(!s.typing_goes(a, true, t0 + Duration::from_secs(1)));
        assert!(s.typing_goes(b, true, t0), "per conversation");
        assert!(s.typing_goes(a, false, t0 + Duration::from_secs(1)));
        assert!(
            !s.typing_goes(a, false, t0 + Duration::from_secs(1)),
            "once"
        );
        assert!(s.typing_goes(a, true, t0 + TYPING_EVERY));
    }
}
