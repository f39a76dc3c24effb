//! Message text: the rule for what may be sent ([`MessageText`], checked by
//! the daemon and by front-ends before they call it), and what must not reach
//! a terminal when text from another user is shown.

use crate::limits::MAX_MESSAGE_TEXT_BYTES;

/// The text of a chat message: not blank, at most
/// [`MAX_MESSAGE_TEXT_BYTES`] bytes of UTF-8. (Control characters are
/// allowed — a message may have several lines; front-ends neutralize them
/// when they show text, see [`is_terminal_unsafe`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

/// Why a text is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageTextError {
    #[error("an empty message is not sent")]
    Empty,
    #[error(
        "the message is {len} bytes, over the limit of {MAX_MESSAGE_TEXT_BYTES}; nothing was sent"
    )]
    TooLong { len: usize },
}

impl MessageText {
    pub fn new(text: String) -> Result<Self, MessageTextError> {
        if text.trim().is_empty() {
            return Err(MessageTextError::Empty);
        }
        if text.len() > MAX_MESSAGE_TEXT_BYTES {
            return Err(MessageTextError::TooLong { len: text.len() });
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Whether text written to a stream (log lines) may carry colour codes: only
/// when the stream is a terminal, and never with `NO_COLOR` set to something
/// (no-color.org). A log file, a pipe or a journal gets plain text.
pub fn colour_allowed(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// A character that must not reach a terminal as it is: a control character
/// (escape sequences start with one, and can move the cursor, rewrite the
/// screen or set the window title) or a bidirectional override, isolate or
/// mark, which make text display in another order than it was written
/// ("Trojan Source", CVE-2021-42574). Front-ends show U+FFFD instead;
/// the daemon refuses such characters in group names.
pub fn is_terminal_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
}

/// `s` as the plain-text part of a desktop notification (its summary, a
/// name): every character [`is_terminal_unsafe`] — line breaks included —
/// shown as U+FFFD, so a sender or group name is one line in the order it
/// was written.
pub fn notification_plain(s: &str) -> String {
    s.chars()
        .map(|c| if is_terminal_unsafe(c) { '\u{FFFD}' } else { c })
        .collect()
}

/// `s` (text from another user) as the body of a desktop notification. Most
/// notification servers read the body as markup (a subset of HTML), so
/// `&`, `<` and `>` are escaped: a message cannot set links, images or
/// styles. Unsafe characters are replaced as on the terminal (tabs become
/// spaces); line breaks stay.
pub fn notification_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push('\n'),
            '\t' => out.push_str("    "),
            c if is_terminal_unsafe(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        use std::ffi::OsStr;
        assert!(colour_allowed(true, None));
        assert!(!colour_allowed(false, None));
        assert!(!colour_allowed(true, Some(OsStr::new("1"))));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(colour_allowed(true, Some(OsStr::new(""))));
    }

    #[test]
    fn a_message_is_not_blank_and_not_over_the_limit() {
        assert_eq!(
            MessageText::new(" \n\t".into()),
            Err(MessageTextError::Empty)
        );
        assert_eq!(
            MessageText::new(String::new()),
            Err(MessageTextError::Empty)
        );
        let max = "x".repeat(MAX_MESSAGE_TEXT_BYTES);
        assert_eq!(MessageText::new(max.clone()).unwrap().as_str(), max);
        // Bytes, not characters: 'é' is two.
        let over = "é".repeat(MAX_MESSAGE_TEXT_BYTES / 2 + 1);
        assert_eq!(
            MessageText::new(over.clone()),
            Err(MessageTextError::TooLong { len: over.len() })
        );
        assert_eq!(
            MessageText::new("two\nlines".into()).unwrap().into_string(),
            "two\nlines"
        );
    }

    #[test]
    fn controls_and_bidi_overrides_are_unsafe() {
        for c in [
            '\u{1b}', '\u{7}', '\n', '\u{9b}', '\u{202E}', '\u{2066}', '\u{200F}',
        ] {
            assert!(is_terminal_unsafe(c), "{c:?}");
        }
        for c in ['a', 'é', '🦀', '\u{05D0}', ' '] {
            assert!(!is_terminal_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn notification_text_has_no_markup_and_nothing_unsafe() {
        assert_eq!(
            notification_markup("<b>hi</b> & <a href=\"x\">\tx</a>\nnext\u{1b}[2J"),
            "&lt;b&gt;hi&lt;/b&gt; &amp; &lt;a href=\"x\"&gt;    x&lt;/a&gt;\nnext\u{FFFD}[2J"
        );
        assert_eq!(
            notification_plain("ali\u{202E}ce\nteam <b>"),
            "ali\u{FFFD}ce\u{FFFD}team <b>",
            "a name stays one line; the summary is not markup"
        );
    }
}
