//! Text measured by display width: grapheme clusters (so a base letter and
//! its combining marks, or an emoji sequence, stay together), East Asian wide
//! characters counted as two columns, and control characters made visible
//! instead of reaching the terminal (a peer's `ESC [2J` must not clear it).
//!
//! [`wrap`] breaks text into lines no wider than a width, at spaces where it
//! can and inside a word where it must; it returns byte ranges into the
//! (sanitized) text so the editor can map its cursor onto them.

use std::borrow::Cow;
use std::ops::Range;

use quicproquo_protocol::text::is_terminal_unsafe;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// The display width of `s` in terminal columns.
pub fn width(s: &str) -> usize {
    s.graphemes(true).map(grapheme_width).sum()
}

/// The width of one grapheme cluster.
pub fn grapheme_width(g: &str) -> usize {
    UnicodeWidthStr::width(g)
}

/// `s` with tabs as spaces and every other control character (except `\n`)
/// and every bidirectional override replaced by a visible stand-in, so the
/// terminal only ever receives text, shown in the order it was written.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_terminal_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push_str("    "),
            c if is_terminal_unsafe(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Breaks `text` into lines of at most `max` columns; each line is a byte
/// range of `text` (without the `\n`). Always at least one line. A single
/// grapheme wider than `max` gets a line of its own (the renderer clips it).
pub fn wrap(text: &str, max: usize) -> Vec<Range<usize>> {
    let mut lines = Vec::new();
    let mut offset = 0;
    for hard in text.split('\n') {
        wrap_line(hard, offset, max.max(1), &mut lines);
        offset += hard.len() + 1;
    }
    lines
}

fn wrap_line(line: &str, base: usize, max: usize, out: &mut Vec<Range<usize>>) {
    let mut start = 0;
    let mut used = 0;
    // Where the line may break: after the last whitespace, and the width
    // used up to there.
    let mut brk: Option<(usize, usize)> = None;
    for (i, g) in line.grapheme_indices(true) {
        let w = grapheme_width(g);
        if used + w > max && i > start {
            if let Some((b, used_at_b)) = brk.filter(|(b, _)| *b > start) {
                out.push(base + start..base + b);
                start = b;
                used -= used_at_b;
            }
            // What followed the space may itself leave no room for `g`.
            if used + w > max && i > start {
                out.push(base + start..base + i);
                start = i;
                used = 0;
            }
            brk = None;
        }
        used += w;
        if g.chars().all(char::is_whitespace) {
            brk = Some((i + g.len(), used));
        }
    }
    out.push(base + start..base + line.len());
}

/// Cuts `s` to at most `max` columns, ending with `…` when something was
/// cut.
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if width(s) <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let mut out = String::new();
    let mut used = 0;
    for g in s.graphemes(true) {
        let w = grapheme_width(g);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push_str(g);
    }
    out.push('…');
    Cow::Owned(out)
}

/// `s` cut to at most `max` columns from its start, `…` first: for a path,
/// whose end (the file's name) says the most.
pub fn truncate_start(s: &str, max: usize) -> Cow<'_, str> {
    if width(s) <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let mut kept = Vec::new();
    let mut used = 0;
    for g in s.graphemes(true).rev() {
        let w = grapheme_width(g);
        if used + w > max - 1 {
            break;
        }
        used += w;
        kept.push(g);
    }
    let mut out = String::from("…");
    out.extend(kept.into_iter().rev());
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncating_from_the_start_keeps_the_end() {
        assert_eq!(truncate_start("/a/b/view.png", 9), "…view.png");
        assert_eq!(truncate_start("/a/b", 9), "/a/b");
        assert_eq!(truncate_start("/日本/x", 4), "…/x");
    }

    fn lines(text: &str, max: usize) -> Vec<&str> {
        wrap(text, max).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn wraps_at_spaces_and_inside_long_words() {
        assert_eq!(lines("hello world foo", 11), ["hello ", "world foo"]);
        assert_eq!(lines("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(lines("", 5), [""]);
        assert_eq!(lines("a\n\nb", 5), ["a", "", "b"]);
    }

    #[test]
    fn wide_and_combining_characters_count_by_display_width() {
        // Each CJK character is two columns wide.
        assert_eq!(lines("日本語のテキスト", 6), ["日本語", "のテキ", "スト"]);
        // e + combining acute stays one column and one unit.
        let s = "e\u{301}e\u{301}e\u{301}";
        assert_eq!(width(s), 3);
        assert_eq!(lines(s, 2), ["e\u{301}e\u{301}", "e\u{301}"]);
        // An emoji (two columns) never splits.
        assert_eq!(lines("ab😀cd", 3), ["ab", "😀c", "d"]);
        for (text, max) in [
            ("日本語のテキスト", 5),
            ("😀😀😀", 3),
            ("a😀b😀", 2),
            (" bcd😀", 4),
        ] {
            for l in lines(text, max) {
                assert!(width(l) <= max, "{l:?} wider than {max}");
            }
        }
    }

    #[test]
    fn controls_are_made_visible() {
        assert_eq!(sanitize("a\x1b[2Jb\tc\n"), "a\u{FFFD}[2Jb    c\n");
        assert!(matches!(sanitize("plain\ntext"), Cow::Borrowed(_)));
        // Regression: bidi overrides reached the terminal (the audit's gap).
        assert_eq!(sanitize("abc\u{202E}fed"), "abc\u{FFFD}fed");
    }

    #[test]
    fn truncates_with_an_ellipsis() {
        assert_eq!(truncate("alexander", 5), "alex…");
        assert_eq!(truncate("日本語", 4), "日…");
        assert_eq!(truncate("bob", 5), "bob");
    }
}
