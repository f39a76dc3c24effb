//! A private D-Bus session bus and a fake notification server on it, for
//! the daemon's desktop notifications: the test sees every `Notify` call's
//! arguments. The bus is a `dbus-daemon` of the test's own (never the
//! user's or CI's session bus, where other tests' daemons notify too), killed
//! when the [`SessionBus`] is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use dbus::blocking::Connection;
use dbus::channel::MatchingReceiver;
use dbus::message::MatchRule;
use tokio::io::AsyncBufReadExt;

/// A `dbus-daemon --session` of the test's own.
pub struct SessionBus {
    pub address: String,
    _daemon: tokio::process::Child,
}

impl SessionBus {
    /// Starts one; `Err` says why it cannot (no `dbus-daemon`), for the
    /// test to [`crate::skip::skip`].
    pub async fn start() -> Result<SessionBus, String> {
        let mut daemon = tokio::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run dbus-daemon: {e}"))?;
        let stdout = daemon.stdout.take().ok_or("dbus-daemon has no stdout")?;
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(stdout);
        tokio::time::timeout(crate::WAIT, reader.read_line(&mut line))
            .await
            .map_err(|_| "dbus-daemon printed no address".to_owned())?
            .map_err(|e| format!("reading dbus-daemon's address: {e}"))?;
        let address = line.trim().to_owned();
        if address.is_empty() {
            return Err("dbus-daemon printed no address".into());
        }
        Ok(SessionBus {
            address,
            _daemon: daemon,
        })
    }
}

/// One `Notify` call as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    pub app_name: String,
    pub replaces_id: u32,
    pub summary: String,
    pub body: String,
    pub category: Option<String>,
    /// The `transient` hint: not to be kept in the server's history.
    pub transient: bool,
}

/// `org.freedesktop.Notifications` on a bus, answering every `Notify` with
/// a new id and handing its arguments to the test; stops when dropped.
pub struct FakeNotifications {
    calls: Receiver<Notified>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeNotifications {
    /// Claims the name on the bus at `address` (returns once it is claimed).
    pub fn serve(address: &str) -> Result<FakeNotifications, dbus::Error> {
        let conn = Connection::new_address(address)?;
        conn.request_name("org.freedesktop.Notifications", false, true, true)?;
        let (tx, calls) = channel();
        let mut next_id = 0u32;
        conn.start_receive(
            MatchRule::new_method_call(),
            Box::new(move |msg, conn| {
                use dbus::channel::Sender;
                if msg.member().as_deref() == Some("Notify") {
                    let args = msg.read_all::<(
                        String,
                        u32,
                        String,
                        String,
                        String,
                        Vec<String>,
                        dbus::arg::PropMap,
                        i32,
                    )>();
                    if let Ok((app_name, replaces_id, _, summary, body, _, hints, _)) = args {
                        let category = hints
                            .get("category")
                            .and_then(|v| v.0.as_str().map(str::to_owned));
                        let transient = hints
                            .get("transient")
                            .and_then(|v| v.0.as_u64())
                            .is_some_and(|b| b != 0);
                        let _ = tx.send(Notified {
                            app_name,
                            replaces_id,
                            summary,
                            body,
                            category,
                            transient,
                        });
                    }
                    next_id += 1;
                    let _ = conn.send(msg.method_return().append1(next_id));
                } else if let Some(reply) = dbus::channel::default_reply(&msg) {
                    let _ = conn.send(reply);
                }
                true
            }),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if conn.process(Duration::from_millis(50)).is_err() {
                    break;
                }
            }
        });
        Ok(FakeNotifications {
            calls,
            stop,
            thread: Some(thread),
        })
    }

    /// The next call, waiting at most [`crate::WAIT`].
    pub fn next(&self) -> Option<Notified> {
        self.calls.recv_timeout(crate::WAIT).ok()
    }

    /// The calls received so far, without waiting.
    pub fn received(&self) -> Vec<Notified> {
        self.calls.try_iter().collect()
    }
}

impl Drop for FakeNotifications {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
