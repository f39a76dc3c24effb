//! The loop that owns the terminal: wait for an action, drain every action
//! already queued (a batch), update, carry out the effects, draw once.
//! Redraws happen only when something happened, and at most once per frame
//! budget: a burst of a thousand notifications costs one frame, not a
//! thousand. A tick each second lets what depends on time alone change
//! (typing indicators, our `typing off`); it draws only when it did.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quicproquo_protocol::ipc::values::MessageId;

use ratatui::backend::Backend;
use ratatui::buffer::Cell;
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::action::{Action, Effect, Request};
use crate::app::App;
use crate::graphics::paint::{self, Painter, Plan};
use crate::graphics::Target;
use crate::preview::Preview;
use crate::render::render_with_images;
use crate::update::update;

/// The shortest time between two frames (~120 fps at most).
const FRAME_BUDGET: Duration = Duration::from_millis(8);
/// Actions applied before a frame is drawn regardless.
const MAX_BATCH: usize = 4096;

/// How often time alone can change the screen (typing indicators).
const TICK: Duration = Duration::from_secs(1);

/// Side effects that need the outside world besides the worker. Desktop
/// notifications are qpqd's (its notifier, told what is shown by `focus`).
pub trait Outside {
    fn bell(&mut self);
    /// Hands a downloaded file to the desktop's opener.
    fn open(&mut self, path: &Path);
    /// Decodes an image preview off the UI thread; the answer comes back
    /// as [`Action::Preview`].
    fn decode(&mut self, id: MessageId, path: PathBuf, max_bytes: u64, target: Target);
    /// Writes raw bytes to the terminal between two frames.
    fn transmit(&mut self, bytes: &[u8]);
}

/// The real terminal's bell, opener and decoder.
pub struct Desktop {
    /// Where decoded previews go (the loop's own channel).
    pub actions: mpsc::Sender<Action>,
    /// One decode at a time: each may hold up to
    /// [`crate::preview::MAX_DECODE_BYTES`], so a screen of images from a
    /// peer costs that once, not once per image.
    pub decoding: std::sync::Arc<std::sync::Mutex<()>>,
}

impl Outside for Desktop {
    fn bell(&mut self) {
        let mut out = io::stdout();
        let _ = out.write_all(b"\x07");
        let _ = out.flush();
    }

    fn open(&mut self, path: &Path) {
        // The path is absolute (the daemon's or ours), so it can never be
        // read as an option; the name in it is only ever this one
        // argument. Detached: no terminal I/O, and a thread reaps it.
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        if !path.is_absolute() {
            return;
        }
        let child = std::process::Command::new(opener)
            .arg(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            std::thread::spawn(move || child.wait());
        }
    }

    fn decode(&mut self, id: MessageId, path: PathBuf, max_bytes: u64, target: Target) {
        let actions = self.actions.clone();
        let decoding = std::sync::Arc::clone(&self.decoding);
        tokio::task::spawn_blocking(move || {
            // A decoder that panicked poisoned nothing worth refusing for.
            let _one = decoding.lock().unwrap_or_else(|e| e.into_inner());
            let result = crate::preview::decode_guarded(&path, max_bytes, target);
            let _ = actions.blocking_send(Action::Preview { id, result });
        });
    }

    fn transmit(&mut self, bytes: &[u8]) {
        let mut out = io::stdout();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
}

/// The bell of one batch (a burst of messages rings once), and the files
/// to open and images to decode it asked for.
#[derive(Default)]
struct Alerts {
    bell: bool,
    open: Vec<PathBuf>,
    decode: Vec<(MessageId, PathBuf, u64, Target)>,
    transmit: Vec<Vec<u8>>,
    /// The terminal was resized: it may have dropped painted images even
    /// where ratatui did not clear the screen (the same size again).
    resized: bool,
}

impl Alerts {
    fn flush(&mut self, outside: &mut dyn Outside) {
        if std::mem::take(&mut self.bell) {
            outside.bell();
        }
        for path in self.open.drain(..) {
            outside.open(&path);
        }
        for (id, path, max, target) in self.decode.drain(..) {
            outside.decode(id, path, max, target);
        }
        // Before the frame that shows the placeholders.
        for bytes in self.transmit.drain(..) {
            outside.transmit(&bytes);
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
    let mut painter = Painter::default();
    let mut ticks = tokio::time::interval_at((Instant::now() + TICK).into(), TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            let mut paints = Vec::new();
            let frame = terminal
                .draw(|f| paints = render_with_images(app, f))
                .map_err(io::Error::other)?;
            if std::mem::take(&mut alerts.resized) {
                painter.repaint_all();
            }
            let plan = painter.plan(&paints, frame.area);
            if !plan.is_empty() {
                let cells = paint::cells(frame.buffer, &plan.rows);
                paint_images(terminal, app, outside, &plan, &cells)?;
            }
            if on_frame(app) {
                return Ok(());
            }
            last_draw = Some(Instant::now());
        }
        let first = tokio::select! {
            a = actions.recv() => a,
            _ = ticks.tick() => {
                // Time alone redraws only when it changed something.
                let (quit, redraw) = apply(app, Action::Tick, requests, &mut alerts);
                if quit {
                    return Ok(());
                }
                dirty = redraw;
                continue;
            }
        };
        let Some(first) = first else {
            return Ok(());
        };
        if apply(app, first, requests, &mut alerts).0 || drain(app, actions, requests, &mut alerts)
        {
            return Ok(());
        }
        dirty = true;
    }
}

/// After a frame, erases the iTerm2 and sixel images that moved and paints
/// those that need it ([`crate::graphics::paint`]): the erased rows'
/// cells are written again by the backend, as ratatui has them.
fn paint_images<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &App,
    outside: &mut dyn Outside,
    plan: &Plan,
    cells: &[(u16, u16, Cell)],
) -> io::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut bytes = paint::SAVE.to_vec();
    bytes.extend(paint::erase(&plan.rows));
    outside.transmit(&bytes);
    if !cells.is_empty() {
        let backend = terminal.backend_mut();
        backend
            .draw(cells.iter().map(|(x, y, c)| (*x, *y, c)))
            .map_err(io::Error::other)?;
        Backend::flush(backend).map_err(io::Error::other)?;
    }
    let mut bytes = Vec::new();
    for p in &plan.paint {
        if let Some(Preview::Ready(pic)) = app.previews.get(&p.id) {
            if let Some(image) = &pic.image {
                bytes.extend(paint::at(p.rect, &image.bytes));
            }
        }
    }
    bytes.extend_from_slice(paint::RESTORE);
    outside.transmit(&bytes);
    Ok(())
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
                if apply(app, a, requests, alerts).0 {
                    return true;
                }
            }
            Err(_) => break,
        }
    }
    false
}

/// One action through `update` (at the time it is applied), then its
/// effects. Returns (quit, redraw asked).
fn apply(
    app: &mut App,
    action: Action,
    requests: &mpsc::Sender<Request>,
    alerts: &mut Alerts,
) -> (bool, bool) {
    let (mut quit, mut redraw) = (false, false);
    app.now = Instant::now();
    alerts.resized |= matches!(action, Action::Resize(..));
    for effect in update(app, action) {
        match effect {
            Effect::Request(r) => {
                if requests.try_send(r).is_err() {
                    app.error("Too many requests queued for qpqd; try again");
                }
            }
            Effect::Bell => alerts.bell = true,
            Effect::Open(path) => alerts.open.push(path),
            Effect::Decode {
                id,
                path,
                max_bytes,
                target,
            } => alerts.decode.push((id, path, max_bytes, target)),
            Effect::Transmit(bytes) => alerts.transmit.push(bytes),
            Effect::Redraw => redraw = true,
            Effect::Quit => quit = true,
        }
    }
    (quit, redraw)
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
    let tx_loop = tx.clone();
    let (mut terminal, guard) = crate::terminal::setup(session.config.mouse)?;
    let size = terminal.size()?;
    let mut app = App::new(session.config, session.profile, (size.width, size.height));
    app.cell_px = crate::graphics::terminal_cell_px();
    app.graphics =
        crate::graphics::choose(app.config.graphics, |k| std::env::var(k).ok(), app.cell_px);
    let stop = Arc::new(AtomicBool::new(false));
    let input = crate::terminal::spawn_input(tx, Arc::clone(&stop));
    let mut times: Option<StartTimes> = None;
    let exit_early = session.exit_after_first_frame;
    let result = run(
        &mut terminal,
        &mut app,
        &mut actions,
        &requests,
        &mut Desktop {
            actions: tx_loop,
            decoding: Default::default(),
        },
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
        fn open(&mut self, _: &Path) {}
        fn decode(&mut self, _: MessageId, _: PathBuf, _: u64, _: Target) {}
        fn transmit(&mut self, _: &[u8]) {}
    }

    fn note(seq: u64, conv: quicproquo_protocol::ipc::values::ConversationId) -> Action {
        Action::Daemon(DaemonEvent::Notification(Notification::Message(
            NewMessage {
                seq: Seq(seq),
                message: message(conv, 100 + seq as u32, "bob", 5000 + seq, "burst"),
            },
        )))
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
            // Quitting tells qpqd nothing is shown any more.
            if matches!(r, Request::Call(Call::Focus(_))) {
                continue;
            }
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
