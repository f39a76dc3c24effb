//! Sharper image previews through the terminal's own graphics, where it has
//! them: which protocol ([`detect`], [`choose`]), what a decode is asked to
//! produce for it ([`Target`]), and the protocols themselves — kitty's
//! Unicode placeholders ([`kitty`]), iTerm2's inline images ([`iterm2`])
//! and sixel ([`sixel`]). Everywhere else, and whenever a sharp copy cannot
//! be shown safely, the half-blocks of [`crate::preview`] are drawn.
//!
//! Detection reads the environment only: a question to the terminal would
//! be answered as keystrokes, mixed with the user's, and could hang on a
//! terminal that never answers. Inside tmux or GNU screen, which pass these
//! sequences on only when configured to, `auto` keeps the half-blocks.
//!
//! kitty's placeholders are text cells, so they scroll and clip like text.
//! iTerm2's and sixel images are pixels painted at the cursor, over the
//! cells: [`paint`] writes them after ratatui's frame, only where a preview
//! is wholly visible and uncovered, and erases them when they move.

pub mod iterm2;
pub mod kitty;
pub mod paint;
pub mod sixel;

use base64::Engine as _;
use serde::Deserialize;

/// The `graphics` setting: which protocol previews use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// Whatever [`detect`] finds in the environment.
    #[default]
    Auto,
    Kitty,
    Iterm2,
    Sixel,
    /// No graphics protocol: half-blocks everywhere.
    Halfblocks,
}

/// A graphics protocol of the terminal's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Kitty,
    Iterm2,
    Sixel,
}

/// What a decode produces besides the half-blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    HalfBlocks,
    /// A copy sent once under this id, placed with placeholders.
    Kitty(u32),
    /// An image painted over the cells; the cell size in pixels sets how
    /// sharp it is (iTerm2 scales to the cells it is given).
    Iterm2 {
        cell_px: (u32, u32),
    },
    /// An image painted pixel for pixel: its size in pixels is its size on
    /// screen, so the cell size must be the terminal's own.
    Sixel {
        cell_px: (u32, u32),
    },
}

/// An image painted at the cursor (iTerm2, sixel), with the cells it
/// covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub cols: u16,
    pub rows: u16,
    /// The sequence that paints it, written again each time it comes into
    /// view. It carries only encoded pixels, nothing from the sender's
    /// message (no file name).
    pub bytes: Vec<u8>,
}

/// The protocol the environment names, if any (`var` reads a variable).
///
/// - inside tmux (`TMUX`) or GNU screen (`STY`): none;
/// - kitty or Ghostty ([`kitty::detected`]): kitty's;
/// - iTerm2 (`TERM_PROGRAM=iTerm.app`, or `LC_TERMINAL=iTerm2`, which
///   ssh forwards), WezTerm (`TERM_PROGRAM=WezTerm`) or mintty
///   (`TERM_PROGRAM=mintty`): iTerm2's;
/// - foot (`TERM=foot…`), mlterm (`TERM=mlterm…`), Windows Terminal
///   (`WT_SESSION`) or Konsole 22.04 and later (`KONSOLE_VERSION` ≥
///   220400): sixel.
///
/// xterm says `TERM=xterm…` like most terminals, and draws sixel only when
/// started as a VT340: it gets `graphics = "sixel"` by hand.
pub fn detect(var: impl Fn(&str) -> Option<String>) -> Option<Protocol> {
    if var("TMUX").is_some() || var("STY").is_some() {
        return None;
    }
    if kitty::detected(&var) {
        return Some(Protocol::Kitty);
    }
    let program = var("TERM_PROGRAM").unwrap_or_default();
    if matches!(program.as_str(), "iTerm.app" | "WezTerm" | "mintty")
        || var("LC_TERMINAL").as_deref() == Some("iTerm2")
    {
        return Some(Protocol::Iterm2);
    }
    let term = var("TERM").unwrap_or_default();
    let konsole = var("KONSOLE_VERSION")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|v| v >= 220_400);
    if term.starts_with("foot")
        || term.starts_with("mlterm")
        || var("WT_SESSION").is_some()
        || konsole
    {
        return Some(Protocol::Sixel);
    }
    None
}

/// The protocol previews use: the setting's, or the detected one for
/// `auto`. Sixel needs the cell size in pixels (`cell_px`, from the
/// terminal's window size); without it, half-blocks.
pub fn choose(
    setting: Setting,
    var: impl Fn(&str) -> Option<String>,
    cell_px: Option<(u32, u32)>,
) -> Option<Protocol> {
    let protocol = match setting {
        Setting::Auto => detect(var),
        Setting::Kitty => Some(Protocol::Kitty),
        Setting::Iterm2 => Some(Protocol::Iterm2),
        Setting::Sixel => Some(Protocol::Sixel),
        Setting::Halfblocks => None,
    };
    protocol.filter(|p| *p != Protocol::Sixel || cell_px.is_some())
}

/// Cells larger than this (in pixels) are taken for a wrong report: they
/// would make the images sent needlessly large.
const MAX_CELL_PX: (u32, u32) = (64, 128);

/// The size of a cell in pixels, from the window's size in cells and in
/// pixels as the terminal reported it to the kernel (`TIOCGWINSZ`: no
/// question to the terminal). `None` when it reported no pixels.
pub fn cell_px(cols: u16, rows: u16, width: u16, height: u16) -> Option<(u32, u32)> {
    if cols == 0 || rows == 0 {
        return None;
    }
    let (w, h) = (
        u32::from(width) / u32::from(cols),
        u32::from(height) / u32::from(rows),
    );
    (w > 0 && h > 0 && w <= MAX_CELL_PX.0 && h <= MAX_CELL_PX.1).then_some((w, h))
}

/// This terminal's cell size in pixels, when it reports one.
pub fn terminal_cell_px() -> Option<(u32, u32)> {
    let s = crossterm::terminal::window_size().ok()?;
    cell_px(s.columns, s.rows, s.width, s.height)
}

/// Standard base64 with padding (both protocols carry their data so).
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Environment variables and their values.
    type Vars = &'static [(&'static str, &'static str)];

    /// A reader of the variables in `pairs`.
    fn env(pairs: Vars) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn detection_reads_the_environment_and_stays_off_in_tmux() {
        use Protocol::*;
        let cases: &[(Vars, Option<Protocol>)] = &[
            (&[("KITTY_WINDOW_ID", "1")], Some(Kitty)),
            (&[("TERM", "xterm-kitty")], Some(Kitty)),
            (&[("TERM", "xterm-ghostty")], Some(Kitty)),
            (&[("TERM_PROGRAM", "ghostty")], Some(Kitty)),
            (&[("TERM_PROGRAM", "iTerm.app")], Some(Iterm2)),
            (&[("LC_TERMINAL", "iTerm2")], Some(Iterm2)),
            (&[("TERM_PROGRAM", "WezTerm")], Some(Iterm2)),
            (&[("TERM_PROGRAM", "mintty")], Some(Iterm2)),
            (&[("TERM", "foot")], Some(Sixel)),
            (&[("TERM", "foot-extra")], Some(Sixel)),
            (&[("TERM", "mlterm")], Some(Sixel)),
            (&[("WT_SESSION", "0c9f…")], Some(Sixel)),
            (&[("KONSOLE_VERSION", "230805")], Some(Sixel)),
            (&[("KONSOLE_VERSION", "211200")], None),
            (&[("TERM", "xterm-256color")], None),
            (&[("TERM_PROGRAM", "Apple_Terminal")], None),
            (&[], None),
            // Multiplexers keep the half-blocks, whatever is outside.
            (
                &[
                    ("KITTY_WINDOW_ID", "1"),
                    ("TMUX", "/tmp/tmux-0/default,1,0"),
                ],
                None,
            ),
            (&[("LC_TERMINAL", "iTerm2"), ("TMUX", "/tmp/t,1,0")], None),
            (&[("TERM", "foot"), ("STY", "123.pts-0.host")], None),
        ];
        for (vars, want) in cases {
            assert_eq!(detect(env(vars)), *want, "{vars:?}");
        }
    }

    #[test]
    fn the_setting_chooses_and_sixel_needs_the_cell_size() {
        let foot = env(&[("TERM", "foot")]);
        let px = Some((9, 18));
        assert_eq!(choose(Setting::Auto, &foot, px), Some(Protocol::Sixel));
        assert_eq!(choose(Setting::Auto, &foot, None), None);
        assert_eq!(choose(Setting::Halfblocks, &foot, px), None);
        assert_eq!(choose(Setting::Iterm2, &foot, None), Some(Protocol::Iterm2));
        assert_eq!(choose(Setting::Kitty, &foot, None), Some(Protocol::Kitty));
        // Chosen by hand, a protocol is used even in tmux (which may pass
        // it on, or draw sixel itself).
        let tmux = env(&[("TMUX", "/tmp/t,1,0")]);
        assert_eq!(choose(Setting::Sixel, &tmux, px), Some(Protocol::Sixel));
        assert_eq!(choose(Setting::Auto, &tmux, px), None);

        assert_eq!(cell_px(80, 24, 720, 432), Some((9, 18)));
        assert_eq!(cell_px(80, 24, 0, 0), None, "no pixels reported");
        assert_eq!(cell_px(0, 0, 720, 432), None);
        assert_eq!(cell_px(10, 2, 65_000, 65_000), None, "implausible");
    }
}
