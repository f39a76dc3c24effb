//! The loop that owns the terminal: wait for an action, drain every action
//! already queued (a batch), update, carry out the effects, draw once.
//! Redraws happen only when something happened, and at most once per frame
//! budget: a burst of a thousand notifications costs one frame, not a
//! thousand.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::action::{Action, Effect, Request};
use crate::app::App;
use crate::render::render;
use crate::update::update;
use crate::wrap::sanitize;

/// The shortest time between two frames (~120 fps at most).
const FRAME_BUDGET: Duration = Duration::from_millis(8);
/// Actions applied before a frame is drawn regardless.
const MAX_BATCH: usize = 4096;

/// Side effects that need the outside world besides the worker.
pub trait Outside {
    fn bell(&mut self);
    fn notify(&mut self, title: &str, body: &str);
}

/// The real terminal's bell and `notify-send`.
pub struct Desktop;

impl Outside for Desktop {
    fn bell(&mut self) {
        let mut out = io::stdout();
        let _ = out.write_all(b"\x07");
        let _ = out.flush();
    }

    fn notify(&mut self, title: &str, body: &str) {
        // Best effort: no notification daemon is no error. A thread reaps
        // the child so no zombie is left.
        let child = std::process::Command::new("notify-send")
            .args(notify_send_args(title, body))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            std::thread::spawn(move || child.wait());
        }
    }
}

/// The arguments of `notify-send` for a notification whose title (a
/// sender, a group name) and body (the start of a message) come from other
/// users. `--` ends the options, so a title starting with `-` is not read as
/// one (`-u critical`, `--action=…`). The body is Pango markup to most
/// notification servers, so `&`, `<` and `>` are escaped: a message cannot
/// set links, images or styles. Control characters and bidi overrides are
/// replaced as on the terminal ([`sanitize`]); the body keeps its line
/// breaks.
pub fn notify_send_args(title: &str, body: &str) -> [String; 4] {
    let mut markup = String::with_capacity(body.len());
    for c in sanitize(body).chars() {
        match c {
            '&' => markup.push_str("&amp;"),
            '<' => markup.push_str("&lt;"),
            '>' => markup.push_str("&gt;"),
            c => markup.push(c),
        }
    }
    [
        "--app-name=qpq-tui".to_owned(),
        "--".to_owned(),
        sanitize(title).replace('\n', "\u{FFFD}"),
        markup,
    ]
}

/// The bell and desktop notifications of one batch: a burst of messages
/// rings once and notifies once.
#[derive(Default)]
struct Alerts {
    bell: bool,
    notify: Option<(String, String)>,
}

impl Alerts {
    fn flush(&mut self, outside: &mut dyn Outside) {
        if std::mem::take(&mut self.bell) {
            outside.bell();
        }
        if let Some((title, body)) = self.notify.take() {
            outside.notify(&title, &body);
        }
    }
}

/// Runs until a quit. `on_frame` is called after every draw; returning true
/// ends the loop (start-up measurements).
pub async fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    actions: &mut mpsc::Receiver<Action>,
    requests: &mpsc::Sender<Request>,
    outside: &mut dyn Outside,
    mut on_frame: impl FnMut(&App) -> bool,
) -> io::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    let mut alerts = Alerts::default();
    loop {
        if dirty {
            if let Some(t) = last_draw {
                let next = t + FRAME_BUDGET;
                if Instant::now() < next {
                    tokio::time::sleep_until(next.into()).await;
                    // Whatever arrived meanwhile joins this frame.
                    if drain(app, actions, requests, &mut alerts) {
                        return Ok(());
                    }
                }
            }
            alerts.flush(outside);
            terminal
                .draw(|f| render(app, f))
                .map_err(io::Error::other)?;
            if on_frame(app) {
                return Ok(());
            }
            last_draw = Some(Instant::now());
        }
        let Some(first) = actions.recv().await else {
            return Ok(());
        };
        if apply(app, first, requests, &mut alerts) || drain(app, actions, requests, &mut alerts) {
            return Ok(());
        }
        dirty = true;
    }
}

/// Applies every queued action (up to a batch). True on quit.
fn drain(
    app: &mut App,
    actions: &mut mpsc::Receiver<Action>,
    requests: &mpsc::Sender<Request>,
    alerts: &mut Alerts,
) -> bool {
    for _ in 0..MAX_BATCH {
        match actions.try_recv() {
            Ok(a) => {
                if apply(app, a, requests, alerts) {
                    return true;
                }
            }
            Err(_) => break,
        }
    }
    false
}

/// One action through `update`, then its effects. True on quit.
fn apply(
    app: &mut App,
    action: Action,
    requests: &mpsc::Sender<Request>,
    alerts: &mut Alerts,
) -> bool {
    let mut quit = false;
    for effect in update(app, action) {
        match effect {
            Effect::Request(r) => {
                if requests.try_send(r).is_err() {
                    app.error("Too many requests queued for qpqd; try again");
                }
            }
            Effect::Bell => alerts.bell = true,
            Effect::Notify { title, body } => alerts.notify = Some((title, body)),
            Effect::Quit => quit = true,
        }
    }
    quit
}

/// What a terminal session needs besides the daemon.
pub struct Session {
    pub config: crate::config::Config,
    pub profile: String,
    /// Quit right after the first frame (start-up timing).
    pub exit_after_first_frame: bool,
}

/// When the first frames were drawn, counted from the start.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartTimes {
    /// Any first frame (it may say "Connecting to qpqd…").
    pub first_frame: Duration,
    /// The first frame showing the conversations (or the first-run form).
    pub ready: Option<Duration>,
}

/// Takes over the terminal, starts the worker and input thread, and runs
/// the loop until the user quits. The terminal is restored however this
/// ends.
pub async fn run_terminal(
    target: crate::worker::Target,
    session: Session,
    started: Instant,
) -> io::Result<StartTimes> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let (tx, mut actions) = mpsc::channel(1024);
    let (requests, worker) = crate::worker::spawn(target, tx.clone());
    let (mut terminal, guard) = crate::terminal::setup(session.config.mouse)?;
    let size = terminal.size()?;
    let mut app = App::new(session.config, session.profile, (size.width, size.height));
    let stop = Arc::new(AtomicBool::new(false));
    let input = crate::terminal::spawn_input(tx, Arc::clone(&stop));
    let mut times: Option<StartTimes> = None;
    let exit_early = session.exit_after_first_frame;
    let result = run(
        &mut terminal,
        &mut app,
        &mut actions,
        &requests,
        &mut Desktop,
        |app| {
            let t = times.get_or_insert(StartTimes {
                first_frame: started.elapsed(),
                ready: None,
            });
            let ready = match &app.screen {
                crate::app::Screen::Main => {
                    matches!(app.conversations, crate::app::Loadable::Ready(_))
                        && app.timeline().is_none_or(|tl| !tl.is_empty())
                }
                crate::app::Screen::Account(_) | crate::app::Screen::Unlock(_) => true,
                crate::app::Screen::Starting => false,
            };
            if ready && t.ready.is_none() {
                t.ready = Some(started.elapsed());
            }
            exit_early && t.ready.is_some()
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    drop(requests);
    worker.abort();
    drop(guard);
    // The input thread notices `stop` within its poll timeout.
    let _ = tokio::task::spawn_blocking(move || input.join()).await;
    result.map(|()| times.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use quicproquo_protocol::ipc::methods::ReadParams;
    use quicproquo_protocol::ipc::notifications::NewMessage;
    use quicproquo_protocol::ipc::values::{ConversationRef, Seq};
    use quicproquo_protocol::ipc::{Call, Notification};
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::action::DaemonEvent;
    use crate::testing::{app, message, BOB, TEAM};

    #[derive(Default)]
    struct Counting {
        bells: usize,
    }

    impl Outside for Counting {
        fn bell(&mut self) {
            self.bells += 1;
        }
        fn notify(&mut self, _: &str, _: &str) {}
    }

    fn note(seq: u64, conv: quicproquo_protocol::ipc::values::ConversationId) -> Action {
        Action::Daemon(DaemonEvent::Notification(Notification::Message(
            NewMessage {
                seq: Seq(seq),
                message: message(conv, 100 + seq as u32, "bob", 5000 + seq, "burst"),
            },
        )))
    }

    /// Regression: the title and body went to `notify-send` as they came,
    /// so a group named `-u critical` was an option and a message's
    /// `<a href>` or `<img>` was markup to the notification server.
    #[test]
    fn notify_send_gets_plain_arguments_and_escaped_markup() {
        let args = notify_send_args(
            "--action=x=pwn in \u{1b}[2Jteam\n",
            "<a href=\"https://evil\">click</a> & <img src=\"file:///x\"/>\u{202E}\nline 2\x07",
        );
        assert_eq!(args[0], "--app-name=qpq-tui");
        assert_eq!(args[1], "--", "options end before the title");
        assert_eq!(args[2], "--action=x=pwn in \u{FFFD}[2Jteam\u{FFFD}");
        assert_eq!(
            args[3],
            "&lt;a href=\"https://evil\"&gt;click&lt;/a&gt; &amp; \
             &lt;img src=\"file:///x\"/&gt;\u{FFFD}\nline 2\u{FFFD}"
        );
        // Ordinary text is unchanged.
        let plain = notify_send_args("bob", "héllo 👋\nsee you");
        assert_eq!(
            plain[2..],
            ["bob".to_owned(), "héllo 👋\nsee you".to_owned()]
        );
    }

    /// A burst of notifications is one batch and one frame, and the loop
    /// forwards requests to the worker's channel.
    #[tokio::test]
    async fn a_burst_is_drawn_once() {
        let mut app = app(80, 20);
        let mut terminal = Terminal::new(TestBackend::new(80, 20)).unwrap();
        let (tx, mut rx) = mpsc::channel(4096);
        let (req_tx, mut req_rx) = mpsc::channel(4096);
        for seq in 0..1000 {
            tx.send(note(seq, if seq % 2 == 0 { TEAM } else { BOB }))
                .await
                .unwrap();
        }
        let mut frames = 0;
        let mut outside = Counting::default();
        // The quit is queued by the frame hook, once the second frame is
        // drawn: if the burst took more than one frame, the rest of it is
        // still queued ahead of the quit and shows up as more frames.
        let quit = tx.clone();
        run(
            &mut terminal,
            &mut app,
            &mut rx,
            &req_tx,
            &mut outside,
            |_| {
                frames += 1;
                if frames == 2 {
                    quit.try_send(Action::Key(KeyEvent::new(
                        KeyCode::Char('q'),
                        KeyModifiers::CONTROL,
                    )))
                    .expect("room for the quit");
                }
                false
            },
        )
        .await
        .unwrap();
        // The first frame, then one for the whole burst.
        assert_eq!(frames, 2);
        assert_eq!(outside.bells, 1, "a burst rings once");
        assert_eq!(app.timeline().unwrap().len(), 4 + 500);
        assert_eq!(app.conversation(BOB).unwrap().unread, 2 + 500);
        let mut reads = 0;
        while let Ok(r) = req_rx.try_recv() {
            assert!(
                matches!(
                    r,
                    Request::Call(Call::Read(ReadParams {
                        conversation: ConversationRef::Id(TEAM),
                        ..
                    }))
                ),
                "{r:?}"
            );
            reads += 1;
        }
        assert_eq!(reads, 500);
    }
}
