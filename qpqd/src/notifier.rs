//! Notifications from the daemon, with or without a front-end open: the
//! notifier follows the agent's own event stream (the `message` events
//! front-ends get; live ones carry the text) and tells the desktop, over
//! D-Bus where there is a session bus, and/or a `notify_command` hook.
//!
//! What notifies: a message from someone else (not ours, not the daemon's
//! notices, not a deleted one) in a conversation whose `notify` setting
//! lets it through (`all`, or `mentions` when it mentions us) and that no
//! front-end shows right now (`focus`, per connection). What it says: the
//! sender and the text only when the conversation's `notify_content` is on;
//! else "New message in team" and nothing more.
//!
//! Never on the core's path: the agent's broadcast does not wait for a slow
//! receiver (a lagging notifier loses events, counted), settings are read on
//! the read-only connection, bursts are coalesced per conversation
//! (`coalesce`), and each way out has its own bounded queue (`desktop`: a
//! thread for libdbus; `command`: at most a few processes), dropping and
//! counting when full.
//!
//! Submodules: `config` (qpqd.toml and the environment), `focus` (which
//! conversations front-ends show), `coalesce`, `desktop`, `command`.

mod coalesce;
mod command;
mod config;
#[cfg(all(unix, not(target_os = "macos")))]
mod desktop;
mod focus;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{ConversationId, ConversationRef, Message, NotifyMode};
use quicproquo_protocol::text::{notification_markup, notification_plain};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::agent::{Agent, AgentError, AgentResult};
use crate::db::conversations::{self, Kind};
use crate::db::{settings, Id};

pub use coalesce::{Burst, Incoming};
pub use config::{file as config_file, Config, ConfigError};
pub use focus::{Focus, FocusSlot};

/// The longest text a desktop notification shows (in characters).
const BODY_CHARS: usize = 200;
/// How long a settings read may take before the message is not notified.
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts notifying for `agent` as `config` says (nothing, if it names no
/// way out). Call before the state is opened, so nothing received is missed.
pub fn start(agent: &Arc<Agent>, config: Config) {
    let Some(outlets) = Outlets::new(&config) else {
        tracing::info!("notifications are off: no session bus, desktop = false, no notify_command");
        return;
    };
    let events = agent.events();
    agent.spawn(run(Arc::clone(agent), events, outlets));
}

/// Where notifications go, and what was dropped on the way.
struct Outlets {
    #[cfg(all(unix, not(target_os = "macos")))]
    desktop: Option<desktop::Desktop>,
    command: Option<command::Command>,
    dropped: AtomicU64,
}

impl Outlets {
    fn new(config: &Config) -> Option<Self> {
        #[cfg(all(unix, not(target_os = "macos")))]
        let desktop = match (&config.session_bus, config.desktop) {
            (Some(address), true) => match desktop::Desktop::start(address.clone()) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "no desktop notifications: cannot start their thread");
                    None
                }
            },
            _ => None,
        };
        #[cfg(all(unix, not(target_os = "macos")))]
        let any_desktop = desktop.is_some();
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        let any_desktop = false;
        let command = config
            .command
            .clone()
            .map(|argv| command::Command::new(argv, config.command_deadline));
        (any_desktop || command.is_some()).then(|| Outlets {
            #[cfg(all(unix, not(target_os = "macos")))]
            desktop,
            command,
            dropped: AtomicU64::new(0),
        })
    }

    fn deliver(&self, burst: &Burst) {
        #[cfg(all(unix, not(target_os = "macos")))]
        if let Some(d) = &self.desktop {
            let (summary, body) = render(burst);
            let note = desktop::Note {
                conversation: burst.last.conversation,
                summary,
                body,
                transient: burst.disappears,
            };
            if !d.send(note) {
                self.dropped(1, "the desktop queue is full");
            }
        }
        if let Some(c) = &self.command {
            let mut line = serde_json::to_vec(&HookInput::of(burst)).unwrap_or_default();
            line.push(b'\n');
            if !c.start(line) {
                self.dropped(1, "every notify command slot is busy");
            }
        }
    }

    fn dropped(&self, n: u64, why: &str) {
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        // Not a line per drop under a flood: the first, then at each power
        // of two.
        if total.is_power_of_two() || n > 1 {
            tracing::warn!(dropped = total, why, "notifications dropped");
        }
    }
}

async fn run(
    agent: Arc<Agent>,
    mut events: tokio::sync::broadcast::Receiver<crate::agent::Event>,
    outlets: Outlets,
) {
    let mut shutdown = agent.shutdown_signal();
    let mut pending = coalesce::Coalescer::default();
    loop {
        let due = pending.next_due();
        let wait_due = async {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
            event = events.recv() => match event {
                Ok(Notification::Message(m)) => {
                    if let Some(incoming) = intake(&agent, m.message).await {
                        pending.add(incoming, Instant::now());
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => outlets.dropped(n, "the notifier fell behind the events"),
                Err(RecvError::Closed) => break,
            },
            () = wait_due => {
                for burst in pending.take_due(Instant::now()) {
                    // Focused since it came in: the front-end shows it.
                    if !agent.focus().shown(&burst.last.conversation) {
                        outlets.deliver(&burst);
                    }
                }
            }
        }
    }
}

/// Whether `m` notifies at all (by itself, and as the conversation's
/// settings say), and what its notification needs to say.
async fn intake(agent: &Agent, m: Message) -> Option<Incoming> {
    if m.outgoing || m.sender.is_empty() || m.meta.deleted {
        return None;
    }
    if agent.focus().shown(&m.conversation) {
        return None;
    }
    let reader = agent.reader().ok()?;
    let conv = Id(m.conversation.0);
    let found = reader
        .run(READ_DEADLINE, move |db| {
            let Some(c) = conversations::by_id(db, conv)? else {
                return Ok(None);
            };
            Ok(Some((c, settings::effective(db, conv)?)))
        })
        .await;
    let (c, s) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "not notified: its conversation's settings could not be read");
            return None;
        }
    };
    decide(m, c, &s)
}

/// [`intake`]'s verdict once the conversation and its settings are known.
fn decide(m: Message, c: conversations::Conversation, s: &settings::Effective) -> Option<Incoming> {
    let wanted = match s.notify {
        NotifyMode::All => true,
        NotifyMode::Mentions => m.meta.mentions_me,
        NotifyMode::None => false,
    };
    wanted.then(|| Incoming {
        conversation: m.conversation,
        conversation_name: c.name,
        dm: c.kind == Kind::Dm,
        sender: m.sender,
        text: m.text,
        timestamp_ms: m.timestamp_ms,
        mentions_me: m.meta.mentions_me,
        content: s.notify_content,
        disappears: m.meta.expires_at_ms.is_some(),
    })
}

/// A desktop notification's summary (plain text) and body (markup): names
/// and text from other users made safe for both.
pub fn render(b: &Burst) -> (String, String) {
    let m = &b.last;
    let place = if m.dm {
        format!("from {}", m.sender)
    } else {
        format!("in {}", m.conversation_name)
    };
    let summary = match (b.count, m.content) {
        (1, true) if m.dm => m.sender.clone(),
        (1, true) => format!("{} {place}", m.sender),
        (1, false) => format!("New message {place}"),
        (n, _) => format!("{n} new messages {place}"),
    };
    let body = match (b.count, m.content) {
        (_, false) => String::new(),
        (1, true) => excerpt(&m.text),
        (_, true) if m.dm => excerpt(&m.text),
        (_, true) => format!("{}: {}", m.sender, excerpt(&m.text)),
    };
    (notification_plain(&summary), notification_markup(&body))
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(BODY_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The JSON object a `notify_command` reads on stdin (one line).
#[derive(Debug, Serialize)]
pub struct HookInput<'a> {
    pub conversation: ConversationId,
    pub conversation_name: &'a str,
    /// Only when the conversation shows content (`notify_content`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<&'a str>,
    /// Only when the conversation shows content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// How many messages this notification stands for (the newest is the
    /// one named).
    pub count: u32,
    pub mentions_me: bool,
    pub timestamp_ms: u64,
}

impl<'a> HookInput<'a> {
    pub fn of(b: &'a Burst) -> Self {
        let m = &b.last;
        HookInput {
            conversation: m.conversation,
            conversation_name: &m.conversation_name,
            sender: m.content.then_some(m.sender.as_str()),
            text: m.content.then_some(m.text.as_str()),
            count: b.count,
            mentions_me: b.mentions_me,
            timestamp_ms: m.timestamp_ms,
        }
    }
}

impl Agent {
    /// The conversation a front-end names for `focus`, read off the core
    /// thread.
    pub(crate) async fn focus_target(&self, r: &ConversationRef) -> AgentResult<ConversationId> {
        let name = r.to_string();
        let found = self
            .reader()?
            .run(READ_DEADLINE, move |db| conversations::resolve(db, &name))
            .await;
        match found {
            Ok(Some(c)) => Ok(ConversationId(c.id.0)),
            Ok(None) => Err(AgentError::NotFound(format!("no conversation `{r}`"))),
            Err(e) => Err(AgentError::internal(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst(count: u32, content: bool, dm: bool) -> Burst {
        Burst {
            last: Incoming {
                conversation: ConversationId([7; 16]),
                conversation_name: if dm { "alice".into() } else { "team".into() },
                dm,
                sender: "alice".into(),
                text: "<b>lunch</b> & \u{1b}[31mred".into(),
                timestamp_ms: 42,
                mentions_me: false,
                content,
                disappears: false,
            },
            count,
            mentions_me: count > 1,
            disappears: false,
        }
    }

    #[test]
    fn hidden_content_says_nothing_but_where() {
        assert_eq!(
            render(&burst(1, false, false)),
            ("New message in team".into(), String::new())
        );
        assert_eq!(
            render(&burst(5, false, false)),
            ("5 new messages in team".into(), String::new())
        );
        assert_eq!(render(&burst(1, false, true)).0, "New message from alice");
        let json = serde_json::to_value(HookInput::of(&burst(1, false, false))).unwrap();
        assert!(
            json.get("text").is_none() && json.get("sender").is_none(),
            "{json}"
        );
        assert_eq!(json["conversation_name"], "team");
        assert_eq!(json["count"], 1);
        assert_eq!(json["timestamp_ms"], 42);
    }

    #[test]
    fn shown_content_is_escaped_and_names_the_sender() {
        let (summary, body) = render(&burst(1, true, false));
        assert_eq!(summary, "alice in team");
        assert_eq!(body, "&lt;b&gt;lunch&lt;/b&gt; &amp; \u{FFFD}[31mred");
        assert_eq!(render(&burst(1, true, true)).0, "alice");
        let (summary, body) = render(&burst(3, true, false));
        assert_eq!(summary, "3 new messages in team");
        assert!(body.starts_with("alice: &lt;b&gt;"), "{body}");
        let json = serde_json::to_value(HookInput::of(&burst(3, true, false))).unwrap();
        assert_eq!(json["sender"], "alice");
        assert_eq!(
            json["text"], "<b>lunch</b> & \u{1b}[31mred",
            "JSON needs no escaping of ours"
        );
        assert_eq!(json["mentions_me"], true);
        assert_eq!(json["conversation"], "07".repeat(16));
    }

    #[test]
    fn a_long_text_is_cut_for_the_desktop() {
        let mut b = burst(1, true, false);
        b.last.text = "é".repeat(1000);
        let (_, body) = render(&b);
        assert_eq!(body.chars().count(), BODY_CHARS + 1);
        assert!(body.ends_with('…'));
    }

    /// The conversation's `notify` and `notify_content`, written the way
    /// `conversation.settings` stores them.
    #[test]
    fn the_conversation_settings_decide() {
        let (_d, db, team) = crate::db::test_db_with_team();
        let conv = conversations::by_id(&db, team).unwrap().unwrap();
        let message = |text: &str, mentions_me: bool| Message {
            id: quicproquo_protocol::ipc::values::MessageId([1; 16]),
            conversation: ConversationId(team.0),
            sender: "alice".into(),
            timestamp_ms: 5,
            text: text.into(),
            outgoing: false,
            state: quicproquo_protocol::ipc::values::MessageState::Received,
            failure: None,
            meta: quicproquo_protocol::ipc::values::MessageMeta {
                mentions_me,
                ..Default::default()
            },
        };
        let verdict = |text: &str, mentions_me: bool| {
            let s = settings::effective(&db, team).unwrap();
            decide(message(text, mentions_me), conv.clone(), &s)
        };
        let by_default = verdict("hi", false).unwrap();
        assert!(!by_default.content, "content hidden by default");
        assert_eq!(by_default.conversation_name, "team");
        settings::set_conversation_value(&db, team, settings::NOTIFY_CONTENT, Some("true"))
            .unwrap();
        assert!(verdict("hi", false).unwrap().content);
        let mentions = settings::notify_word(NotifyMode::Mentions);
        settings::set_conversation_value(&db, team, settings::NOTIFY, Some(mentions)).unwrap();
        assert!(
            verdict("hi", false).is_none(),
            "no mention, no notification"
        );
        assert!(verdict("hi @me", true).unwrap().mentions_me);
        let none = settings::notify_word(NotifyMode::None);
        settings::set_conversation_value(&db, team, settings::NOTIFY, Some(none)).unwrap();
        assert!(verdict("hi @me", true).is_none());
        settings::set_conversation_value(&db, team, settings::NOTIFY, None).unwrap();
        settings::set_default_value(&db, settings::NOTIFY, none).unwrap();
        assert!(verdict("hi", false).is_none(), "the global default applies");
    }
}
