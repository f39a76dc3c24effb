//! Writing results: JSON for scripts, aligned text for people.
//!
//! Owns stdout ([`Out`]): every write returns its error, so a closed pipe
//! ends the command (quietly, see `main`) instead of panicking the way
//! `println!` does. Colour only when stdout is a terminal and `NO_COLOR` is
//! unset. Text that peers control (names, messages) is shown with control
//! and bidi-override characters replaced, so a message cannot move the
//! cursor, recolour the terminal or reorder what follows it.
//!
//! Not here: what each command shows ([`crate::commands`]) beyond the shared
//! message shape ([`message`]).

use std::io::{self, IsTerminal, Write};

use quicproquo_protocol::text::is_terminal_unsafe;
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

use crate::error::CtlError;

pub mod event;
pub mod message;
pub mod progress;
pub mod table;

pub use event::EventView;
pub use message::MessageView;
pub use table::Table;

/// A terminal style; a no-op when colour is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    Bold,
    Dim,
    Name,
    Conversation,
    Warn,
    /// A message that mentions us.
    Mention,
    Reactions,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Bold => "1",
            Paint::Dim => "2",
            Paint::Name => "1;36",
            Paint::Conversation => "1;33",
            Paint::Warn => "1;31",
            Paint::Mention => "1;35",
            Paint::Reactions => "33",
        }
    }
}

/// Whether output is JSON, and how text is styled.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub json: bool,
    pub color: bool,
}

impl Style {
    /// Colour when `stream` is a terminal and colour is allowed (`NO_COLOR`
    /// unset or empty, no-color.org: read once, in `main`).
    pub fn detect(json: bool, no_color: bool, stream: &impl IsTerminal) -> Style {
        Style {
            json,
            color: !json && !no_color && stream.is_terminal(),
        }
    }

    pub fn paint(&self, p: Paint, s: &str) -> String {
        if self.color && !s.is_empty() {
            format!("\x1b[{}m{s}\x1b[0m", p.code())
        } else {
            s.to_owned()
        }
    }
}

/// stdout for one command.
pub struct Out {
    style: Style,
    stdout: io::Stdout,
}

impl Out {
    pub fn new(json: bool, no_color: bool) -> Out {
        let stdout = io::stdout();
        Out {
            style: Style::detect(json, no_color, &stdout),
            stdout,
        }
    }

    pub fn style(&self) -> Style {
        self.style
    }

    pub fn is_json(&self) -> bool {
        self.style.json
    }

    /// Writes `text` as is.
    pub fn write(&mut self, text: &str) -> Result<(), CtlError> {
        self.stdout
            .lock()
            .write_all(text.as_bytes())
            .map_err(CtlError::Output)
    }

    /// Writes one line (the newline is added).
    pub fn line(&mut self, text: &str) -> Result<(), CtlError> {
        let mut out = self.stdout.lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(CtlError::Output)
    }

    /// Copies `reader` to stdout as it is (`download -o -`). Blocking, but
    /// nothing else runs while a command writes its result.
    pub fn copy_from(&mut self, mut reader: impl io::Read) -> Result<(), CtlError> {
        io::copy(&mut reader, &mut self.stdout.lock())
            .map(|_| ())
            .map_err(CtlError::Output)
    }

    /// Writes `value` as compact JSON on one line.
    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CtlError> {
        let mut line = serde_json::to_vec(value)
            .map_err(|e| CtlError::io("encoding JSON", io::Error::other(e)))?;
        line.push(b'\n');
        self.stdout
            .lock()
            .write_all(&line)
            .map_err(CtlError::Output)
    }

    /// Writes a human table, or `json` when JSON was asked for.
    pub fn table_or_json<T: Serialize + ?Sized>(
        &mut self,
        table: Table,
        json: &T,
    ) -> Result<(), CtlError> {
        if self.is_json() {
            self.json(json)
        } else {
            let text = table.render(&self.style);
            self.write(&text)
        }
    }

    pub fn flush(&mut self) -> Result<(), CtlError> {
        self.stdout.flush().map_err(CtlError::Output)
    }
}

/// `text` with every control character except newline and tab, and every
/// bidi override or isolate, replaced by U+FFFD; tabs become spaces.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            c if is_terminal_unsafe(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// [`sanitize`] for one-line fields (names): newlines go too.
pub fn sanitize_line(text: &str) -> String {
    sanitize(text).replace('\n', "\u{FFFD}")
}

/// A word enum (`online`, `hybrid`…) as the IPC spells it.
pub fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A file size for people (the rule every part of qpq shows sizes by).
pub use quicproquo_protocol::file_names::human_size as size;

/// Display width in terminal columns.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// A timestamp in local time (`TZ`, else the system zone), to the minute.
pub fn local_time(timestamp_ms: u64) -> String {
    let Ok(ts) = i64::try_from(timestamp_ms)
        .map_err(|_| ())
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).map_err(|_| ()))
    else {
        return "????-??-?? ??:??".to_owned();
    };
    ts.to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// A timestamp as RFC 3339 in UTC (`2026-04-05T14:02:03.123Z`).
pub fn rfc3339(timestamp_ms: u64) -> String {
    i64::try_from(timestamp_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_defuses_terminal_escapes() {
        assert_eq!(sanitize("hi\x1b[2Jthere"), "hi\u{FFFD}[2Jthere");
        assert_eq!(sanitize("a\r\nb\tc"), "a\u{FFFD}\nb c");
        assert_eq!(sanitize("evil\u{202E}txt.exe"), "evil\u{FFFD}txt.exe");
        assert_eq!(sanitize("\u{9b}31m"), "\u{FFFD}31m", "C1 CSI");
        assert_eq!(sanitize_line("two\nlines"), "two\u{FFFD}lines");
        let ok = "héllo 世界 👋🏽 שלום";
        assert_eq!(sanitize(ok), ok);
    }

    #[test]
    fn paint_only_with_colour() {
        let plain = Style {
            json: false,
            color: false,
        };
        assert_eq!(plain.paint(Paint::Bold, "x"), "x");
        let color = Style {
            json: false,
            color: true,
        };
        assert_eq!(color.paint(Paint::Bold, "x"), "\x1b[1mx\x1b[0m");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            local_time(1_700_000_000_123).len(),
            "2023-11-14 22:13".len()
        );
        assert_eq!(local_time(u64::MAX), "????-??-?? ??:??");
    }
}
