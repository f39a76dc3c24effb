//! Desktop notifications: `org.freedesktop.Notifications.Notify` on the
//! session bus, called from a thread of its own (libdbus blocks), fed
//! through a small bounded queue — a slow or hung notification server
//! never holds up the daemon; what does not fit is dropped and counted.
//!
//! The bus is connected on the first notification and again after a call
//! fails; a conversation's newer notification replaces its older one on
//! screen (`replaces_id`), so a busy group shows one, not a stack.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::Duration;

use dbus::arg::{PropMap, RefArg, Variant};
use dbus::blocking::Connection;
use quicproquo_protocol::ipc::values::ConversationId;

/// Notifications waiting for the bus, at most.
const QUEUE: usize = 16;
/// How long one call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub const BUS_NAME: &str = "org.freedesktop.Notifications";
pub const OBJECT_PATH: &str = "/org/freedesktop/Notifications";
pub const INTERFACE: &str = "org.freedesktop.Notifications";
/// The application name the notification server shows.
pub const APP_NAME: &str = "quicproquo";

/// One notification, ready for the bus: `summary` plain text, `body` markup
/// already escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub conversation: ConversationId,
    pub summary: String,
    pub body: String,
    /// A disappearing message's: the server is asked not to keep it in its
    /// history (the `transient` hint).
    pub transient: bool,
}

/// The queue to the bus thread.
pub struct Desktop {
    tx: SyncSender<Note>,
}

impl Desktop {
    /// Starts the thread that talks to the bus at `address`.
    pub fn start(address: String) -> std::io::Result<Desktop> {
        let (tx, rx) = sync_channel::<Note>(QUEUE);
        std::thread::Builder::new()
            .name("qpqd-notify".into())
            .spawn(move || {
                let mut bus = Bus {
                    address,
                    conn: None,
                    shown: HashMap::new(),
                    warned: false,
                };
                // Ends when the notifier (the sender) is gone.
                while let Ok(note) = rx.recv() {
                    bus.show(&note);
                }
            })?;
        Ok(Desktop { tx })
    }

    /// Queues `note`; `false` when the queue is full (or the thread gone).
    pub fn send(&self, note: Note) -> bool {
        match self.tx.try_send(note) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

struct Bus {
    address: String,
    conn: Option<Connection>,
    /// The id the server gave each conversation's last notification.
    shown: HashMap<ConversationId, u32>,
    /// The first failure is a warning; the same again is only debug.
    warned: bool,
}

impl Bus {
    fn show(&mut self, note: &Note) {
        let replaces = self.shown.get(&note.conversation).copied().unwrap_or(0);
        match self.call(note, replaces) {
            Ok(id) => {
                self.shown.insert(note.conversation, id);
                self.warned = false;
            }
            Err(e) => {
                // Connect again next time: the bus may have restarted.
                self.conn = None;
                if std::mem::replace(&mut self.warned, true) {
                    tracing::debug!(error = %e, "desktop notification failed again");
                } else {
                    tracing::warn!(error = %e, "desktop notification failed (is a notification server running on the session bus?)");
                }
            }
        }
    }

    fn call(&mut self, note: &Note, replaces: u32) -> Result<u32, dbus::Error> {
        let conn = match &self.conn {
            Some(c) => c,
            None => self.conn.insert(Connection::new_address(&self.address)?),
        };
        notify(conn, note, replaces)
    }
}

/// Calls `Notify` and returns the notification's id.
pub fn notify(conn: &Connection, note: &Note, replaces: u32) -> Result<u32, dbus::Error> {
    let mut hints = PropMap::new();
    hints.insert(
        "category".into(),
        Variant(Box::new("im.received".to_owned()) as Box<dyn RefArg>),
    );
    if note.transient {
        hints.insert(
            "transient".into(),
            Variant(Box::new(true) as Box<dyn RefArg>),
        );
    }
    let proxy = conn.with_proxy(BUS_NAME, OBJECT_PATH, CALL_TIMEOUT);
    let (id,): (u32,) = proxy.method_call(
        INTERFACE,
        "Notify",
        (
            APP_NAME,
            replaces,
            "",
            note.summary.as_str(),
            note.body.as_str(),
            Vec::<String>::new(),
            hints,
            -1i32,
        ),
    )?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::text::notification_markup;
    use quicproquo_testkit::dbus::{FakeNotifications, SessionBus};

    use super::*;

    /// Through the queue and the bus thread to a notification server: the
    /// body as escaped markup, and a conversation's next notification
    /// replacing its last.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notifications_reach_the_server_escaped_and_replace_the_last() {
        let bus = match SessionBus::start().await {
            Ok(bus) => bus,
            Err(why) => {
                quicproquo_testkit::skip::skip("desktop notifications", &why);
                return;
            }
        };
        let server = FakeNotifications::serve(&bus.address).unwrap();
        let desktop = Desktop::start(bus.address.clone()).unwrap();
        let note = |body: &str| Note {
            conversation: ConversationId([1; 16]),
            summary: "alice in team".into(),
            body: notification_markup(body),
            transient: body == "again",
        };
        assert!(desktop.send(note("<a href=\"https://evil\">click</a> & <img src=x>")));
        let server = tokio::task::spawn_blocking(move || {
            let first = server.next().expect("a Notify call");
            assert_eq!(
                first.body,
                "&lt;a href=\"https://evil\"&gt;click&lt;/a&gt; &amp; &lt;img src=x&gt;"
            );
            assert_eq!(
                (first.summary.as_str(), first.replaces_id),
                ("alice in team", 0)
            );
            assert_eq!(first.app_name, APP_NAME);
            assert!(!first.transient);
            server
        })
        .await
        .unwrap();
        assert!(desktop.send(note("again")));
        let second = tokio::task::spawn_blocking(move || server.next())
            .await
            .unwrap()
            .expect("a second Notify call");
        assert_eq!(
            second.replaces_id, 1,
            "replaces the first (the server's id 1)"
        );
        assert!(second.transient, "a disappearing message's is not kept");
    }
}
