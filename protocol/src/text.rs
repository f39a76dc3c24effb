//! Text that came from another user and is shown on a terminal.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
