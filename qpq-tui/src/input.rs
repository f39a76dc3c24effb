//! The message editor: multi-line text with a cursor that moves by grapheme
//! cluster, and the recall of sent messages (Up/Down in an empty editor).
//! No terminal here: the renderer asks [`Editor::layout`] for the wrapped
//! lines and where the cursor is.

use unicode_segmentation::UnicodeSegmentation;

use crate::wrap;

/// How many sent messages Up can recall.
const RECALL_MAX: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Editor {
    text: String,
    /// A byte offset on a grapheme boundary.
    cursor: usize,
    /// Sent messages, oldest first.
    sent: Vec<String>,
    /// While recalling: which entry of `sent` is shown.
    recall: Option<usize>,
}

/// The editor wrapped to a width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditorLayout {
    pub lines: Vec<String>,
    /// Column and line of the cursor.
    pub cursor: (usize, usize),
}

impl Editor {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn set_text(&mut self, text: impl Into<String>) {
        self.text = text.into();
        self.cursor = self.text.len();
    }

    /// Empties the editor and returns what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        self.recall = None;
        std::mem::take(&mut self.text)
    }

    /// Remembers a sent message for recall.
    pub fn remember(&mut self, text: &str) {
        if self.sent.last().map(String::as_str) != Some(text) {
            self.sent.push(text.to_owned());
            if self.sent.len() > RECALL_MAX {
                self.sent.remove(0);
            }
        }
        self.recall = None;
    }

    /// Replaces `text[start..end]` (a completion) and puts the cursor
    /// after the replacement.
    pub fn replace_range(&mut self, start: usize, end: usize, with: &str) {
        self.recall = None;
        self.text.replace_range(start..end, with);
        self.cursor = start + with.len();
    }

    pub fn insert_str(&mut self, s: &str) {
        self.recall = None;
        // Pasted text may carry `\r\n`; keep only `\n` as a line break.
        let s = s.replace("\r\n", "\n").replace('\r', "\n");
        self.text.insert_str(self.cursor, &s);
        self.cursor += s.len();
    }

    pub fn insert_char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.insert_str(c.encode_utf8(&mut buf));
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map_or(self.cursor, |g| self.cursor + g.len())
    }

    pub fn backspace(&mut self) {
        let prev = self.prev_boundary();
        self.text.replace_range(prev..self.cursor, "");
        self.cursor = prev;
    }

    pub fn delete(&mut self) {
        let next = self.next_boundary();
        self.text.replace_range(self.cursor..next, "");
    }

    pub fn left(&mut self) {
        self.cursor = self.prev_boundary();
    }

    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self) -> usize {
        self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i)
    }

    pub fn home(&mut self) {
        self.cursor = self.line_start();
    }

    pub fn end(&mut self) {
        self.cursor = self.line_end();
    }

    /// Deletes the word before the cursor (Ctrl+W).
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| {
            i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
        });
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes from the start of the line to the cursor (Ctrl+U).
    pub fn delete_to_line_start(&mut self) {
        let start = self.line_start();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Moves the cursor up a line (in the text, by display column). Returns
    /// false on the first line.
    pub fn up(&mut self) -> bool {
        let start = self.line_start();
        if start == 0 {
            return false;
        }
        let col = wrap::width(&self.text[start..self.cursor]);
        let prev_start = self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
        self.cursor = column_offset(&self.text, prev_start, start - 1, col);
        true
    }

    /// Moves the cursor down a line. Returns false on the last line.
    pub fn down(&mut self) -> bool {
        let end = self.line_end();
        if end == self.text.len() {
            return false;
        }
        let col = wrap::width(&self.text[self.line_start()..self.cursor]);
        let next_start = end + 1;
        let next_end = self.text[next_start..]
            .find('\n')
            .map_or(self.text.len(), |i| next_start + i);
        self.cursor = column_offset(&self.text, next_start, next_end, col);
        true
    }

    /// Up in an empty (or recalled) editor: the previous sent message.
    pub fn recall_prev(&mut self) -> bool {
        if !(self.text.is_empty() || self.recall.is_some()) || self.sent.is_empty() {
            return false;
        }
        let i = match self.recall {
            None => self.sent.len() - 1,
            Some(0) => 0,
            Some(i) => i - 1,
        };
        self.recall = Some(i);
        self.text = self.sent[i].clone();
        self.cursor = self.text.len();
        true
    }

    /// Down while recalling: the next sent message, then empty.
    pub fn recall_next(&mut self) -> bool {
        let Some(i) = self.recall else {
            return false;
        };
        if i + 1 < self.sent.len() {
            self.recall = Some(i + 1);
            self.text = self.sent[i + 1].clone();
        } else {
            self.recall = None;
            self.text.clear();
        }
        self.cursor = self.text.len();
        true
    }

    pub fn is_recalling(&self) -> bool {
        self.recall.is_some()
    }

    /// The text wrapped to `width` columns and the cursor's place in it.
    pub fn layout(&self, width: usize) -> EditorLayout {
        let width = width.max(1);
        let text = wrap::sanitize(&self.text);
        // Sanitizing may change lengths only where control characters are,
        // which the editor never inserts except by paste; map the cursor by
        // measuring the sanitized prefix.
        let cursor = wrap::sanitize(&self.text[..self.cursor]).len();
        let ranges = wrap::wrap(&text, width);
        let mut pos = (0, 0);
        for (row, r) in ranges.iter().enumerate() {
            let next_starts_here = ranges.get(row + 1).is_some_and(|n| n.start == cursor);
            if r.start <= cursor && cursor <= r.end && !next_starts_here {
                pos = (wrap::width(&text[r.start..cursor]), row);
                break;
            }
        }
        // A full line leaves the cursor past the edge: show it on the next.
        if pos.0 >= width {
            pos = (0, pos.1 + 1);
        }
        let mut lines: Vec<String> = ranges.into_iter().map(|r| text[r].to_owned()).collect();
        while lines.len() <= pos.1 {
            lines.push(String::new());
        }
        EditorLayout { lines, cursor: pos }
    }
}

/// The byte offset in `text[start..end]` at display column `col` (or the
/// line's end when it is shorter).
fn column_offset(text: &str, start: usize, end: usize, col: usize) -> usize {
    let mut used = 0;
    for (i, g) in text[start..end].grapheme_indices(true) {
        let w = wrap::grapheme_width(g);
        if used + w > col {
            return start + i;
        }
        used += w;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_by_grapheme() {
        let mut e = Editor::default();
        e.insert_str("e\u{301}😀日");
        e.backspace();
        assert_eq!(e.text(), "e\u{301}😀");
        e.left();
        e.left();
        assert_eq!(e.cursor(), 0);
        e.delete();
        assert_eq!(e.text(), "😀");
        e.end();
        e.insert_char('x');
        assert_eq!(e.text(), "😀x");
    }

    #[test]
    fn lines_and_columns() {
        let mut e = Editor::default();
        e.insert_str("hello\n日本\nab");
        assert!(e.up());
        // Column 2 of "日本" is the start of 本.
        assert_eq!(&e.text()[e.cursor()..], "本\nab");
        assert!(e.up());
        assert_eq!(&e.text()[e.cursor()..], "llo\n日本\nab");
        assert!(!e.up());
        assert!(e.down());
        assert!(e.down());
        assert!(!e.down());
        e.home();
        assert_eq!(&e.text()[e.cursor()..], "ab");
    }

    #[test]
    fn word_and_line_deletion() {
        let mut e = Editor::default();
        e.insert_str("one two  three");
        e.delete_word();
        assert_eq!(e.text(), "one two  ");
        e.delete_word();
        assert_eq!(e.text(), "one ");
        e.delete_to_line_start();
        assert_eq!(e.text(), "");
    }

    #[test]
    fn recall_of_sent_messages() {
        let mut e = Editor::default();
        e.remember("first");
        e.remember("second");
        assert!(e.recall_prev());
        assert_eq!(e.text(), "second");
        assert!(e.recall_prev());
        assert_eq!(e.text(), "first");
        assert!(e.recall_prev());
        assert_eq!(e.text(), "first");
        assert!(e.recall_next());
        assert_eq!(e.text(), "second");
        assert!(e.recall_next());
        assert_eq!(e.text(), "");
        assert!(!e.recall_next());
        e.insert_str("draft");
        assert!(!e.recall_prev(), "a draft is never replaced");
    }

    #[test]
    fn layout_places_the_cursor() {
        let mut e = Editor::default();
        e.insert_str("abcdef");
        let l = e.layout(3);
        assert_eq!(l.lines, ["abc", "def", ""]);
        assert_eq!(l.cursor, (0, 2));
        e.left();
        assert_eq!(e.layout(3).cursor, (2, 1));
        e.set_text("日本語");
        assert_eq!(e.layout(4).cursor, (2, 1));
        e.set_text("a\nb");
        assert_eq!(e.layout(10).cursor, (1, 1));
        e.set_text("");
        assert_eq!(e.layout(10).cursor, (0, 0));
    }
}
