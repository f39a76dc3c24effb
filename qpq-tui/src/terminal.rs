//! Taking over the terminal and giving it back: raw mode, the alternate
//! screen, bracketed paste, mouse reporting and (where the terminal supports
//! it) disambiguated keys so Shift+Enter can be told from Enter. Restored on
//! a normal exit, on an error (the guard's `Drop`) and on a panic (the hook
//! restores before the panic message prints, so it is readable).
//!
//! Terminal input is read on its own thread and forwarded to the event
//! loop's channel; only the loop writes to the terminal.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{
    self, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event, KeyboardEnhancementFlags, PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::action::Action;

pub type Term = Terminal<CrosstermBackend<io::Stdout>>;

/// How long the input thread may take to notice it should stop (it bounds
/// the time quitting takes, not the latency of any event).
const STOP_CHECK: Duration = Duration::from_millis(25);

/// Restores the terminal when dropped.
pub struct Guard {
    mouse: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore(self.mouse);
    }
}

/// Sets the terminal up; the guard puts it back.
pub fn setup(mouse: bool) -> io::Result<(Term, Guard)> {
    install_panic_hook(mouse);
    enable_raw_mode()?;
    let guard = Guard { mouse };
    let mut out = io::stdout();
    execute!(out, EnterAlternateScreen, EnableBracketedPaste)?;
    if mouse {
        execute!(out, EnableMouseCapture)?;
    }
    // Terminals without the kitty keyboard protocol ignore this.
    let _ = execute!(
        out,
        PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
    );
    let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    Ok((terminal, guard))
}

/// Puts the terminal back; safe to call more than once.
pub fn restore(mouse: bool) {
    let mut out = io::stdout();
    let _ = execute!(out, PopKeyboardEnhancementFlags);
    if mouse {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(
        out,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = out.flush();
}

fn install_panic_hook(mouse: bool) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // A decoder's panic is caught and becomes "no preview": the screen
        // stays as it is, with nothing printed over it.
        if crate::preview::in_decoder() {
            return;
        }
        restore(mouse);
        previous(info);
    }));
}

/// Reads terminal events on a thread until `stop` is set or the loop is
/// gone. The poll timeout only bounds how long stopping takes; events are
/// forwarded the moment they arrive.
pub fn spawn_input(tx: mpsc::Sender<Action>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    std::thread::spawn(move || {
        let mut cell_px = crate::graphics::terminal_cell_px();
        while !stop.load(Ordering::Relaxed) {
            match event::poll(STOP_CHECK) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => break,
            }
            let action = match event::read() {
                Ok(Event::Key(k)) => Action::Key(k),
                Ok(Event::Mouse(m)) => Action::Mouse(m),
                // A pasted or dropped file's path is looked at here, so
                // `update` gets the answer without touching the disk.
                Ok(Event::Paste(p)) => match crate::attach::dropped_file(&p, home.as_deref()) {
                    Some(file) => Action::PasteFile { text: p, file },
                    None => Action::Paste(p),
                },
                Ok(Event::Resize(w, h)) => {
                    let now = crate::graphics::terminal_cell_px();
                    if now != cell_px {
                        cell_px = now;
                        if tx.blocking_send(Action::CellSize(now)).is_err() {
                            break;
                        }
                    }
                    Action::Resize(w, h)
                }
                Ok(_) => continue,
                Err(_) => break,
            };
            if tx.blocking_send(action).is_err() {
                break;
            }
        }
    })
}
