//! The progress bar of a transfer (`send --file`, `download`) on stderr.
//!
//! Only for people watching: stderr must be a terminal and the output not
//! JSON. Anywhere else (a pipe, a log file, a script's `2>&1`) nothing at
//! all is drawn — no `\r`, no escape sequences — so a script's stderr
//! holds only a real error. The bar follows the daemon's `transfer`
//! notifications (at most every 250 ms), so it never outruns them.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::sanitize_line;

/// How often the bar is redrawn at most.
const REFRESH_HZ: u8 = 8;

/// A bar, or nothing when nobody watches.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// The bar's label, as shown.
    label: String,
}

impl Progress {
    /// A bar for `total` bytes labelled `label` (a file name from a peer:
    /// sanitized here), drawn only when stderr is a terminal and `json` is
    /// off.
    pub fn new(label: &str, total: u64, json: bool) -> Progress {
        Progress::with(label, total, !json && std::io::stderr().is_terminal())
    }

    fn with(label: &str, total: u64, shown: bool) -> Progress {
        let label = short(&sanitize_line(label));
        if !shown {
            return Progress { bar: None, label };
        }
        let style = ProgressStyle::with_template(
            "{msg:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(
            Some(total),
            ProgressDrawTarget::stderr_with_hz(REFRESH_HZ),
        )
        .with_style(style)
        .with_message(label.clone());
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress {
            bar: Some(bar),
            label,
        }
    }

    /// Whether a bar is drawn.
    #[cfg(test)]
    fn shown(&self) -> bool {
        self.bar.is_some()
    }

    /// `done` of `total` bytes moved.
    pub fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done.min(total));
        }
    }

    /// Says on the bar whether the transfer waits for the server (qpqd
    /// is offline: it goes on by itself once the server is back).
    pub fn offline(&self, offline: bool) {
        if let Some(bar) = &self.bar {
            if offline {
                bar.set_message(format!("{} (waiting for the server)", self.label));
            } else {
                bar.set_message(self.label.clone());
            }
        }
    }

    /// Takes the bar off the terminal (at the end, whatever the end).
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A label of at most 30 characters: a long file name must not push the
/// bar off an 80-column line.
fn short(label: &str) -> String {
    const MAX: usize = 30;
    if label.chars().count() <= MAX {
        return label.to_owned();
    }
    let mut s: String = label.chars().take(MAX - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_drawn_for_scripts() {
        let p = Progress::with("report.pdf", 10, false);
        assert!(!p.shown());
        p.update(5, 10);
        p.offline(true);
        p.clear();
    }

    #[test]
    fn labels_are_short_and_safe() {
        assert_eq!(short("a.txt"), "a.txt");
        let long = "x".repeat(40);
        assert_eq!(short(&long).chars().count(), 30);
        assert!(short(&long).ends_with('…'));
        assert_eq!(sanitize_line("evil\u{1b}[2J.png"), "evil\u{FFFD}[2J.png");
    }
}
