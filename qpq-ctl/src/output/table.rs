//! Aligned columns for people: widths measured in terminal columns (CJK and
//! emoji take two), the last column never padded, cells sanitized.

use super::{sanitize_line, width, Paint, Style};

/// A table with an optional header row.
#[derive(Debug, Default)]
pub struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<(String, Option<Paint>)>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: Some(header.iter().map(|h| (*h).to_owned()).collect()),
            rows: Vec::new(),
        }
    }

    /// A table without a header (key/value lists).
    pub fn plain() -> Table {
        Table::default()
    }

    pub fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| (sanitize_line(c.as_ref()), None))
                .collect(),
        );
    }

    /// A row whose cells carry a style each.
    pub fn styled_row(&mut self, cells: Vec<(String, Option<Paint>)>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|(c, p)| (sanitize_line(&c), p))
                .collect(),
        );
    }

    /// The table as text, each line ending in `\n`; nothing when it has no
    /// rows (not even the header).
    pub fn render(&self, style: &Style) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let header: Option<Vec<(String, Option<Paint>)>> = self
            .header
            .as_ref()
            .map(|h| h.iter().map(|c| (c.clone(), Some(Paint::Bold))).collect());
        let all: Vec<&Vec<(String, Option<Paint>)>> =
            header.iter().chain(self.rows.iter()).collect();
        let columns = all.iter().map(|r| r.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                all.iter()
                    .filter_map(|r| r.get(i))
                    .map(|(c, _)| width(c))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in all {
            let mut line = String::new();
            for (i, (cell, paint)) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(&match paint {
                    Some(p) => style.paint(*p, cell),
                    None => cell.clone(),
                });
                if i + 1 < row.len() {
                    let pad = widths[i].saturating_sub(width(cell));
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style {
        json: false,
        color: false,
    };

    #[test]
    fn aligns_by_display_width() {
        let mut t = Table::new(&["NAME", "UNREAD"]);
        t.row(["team", "3"]);
        t.row(["世界", "10"]);
        t.row(["a\x1b[31mb", "0"]);
        assert_eq!(
            t.render(&PLAIN),
            "NAME     UNREAD\nteam     3\n世界     10\na\u{FFFD}[31mb  0\n"
        );
    }

    #[test]
    fn empty_table_prints_nothing_and_colour_keeps_alignment() {
        assert_eq!(Table::new(&["A"]).render(&PLAIN), "");
        let mut t = Table::plain();
        t.styled_row(vec![("ab".into(), Some(Paint::Name)), ("x".into(), None)]);
        t.row(["abcd", "y"]);
        let color = Style {
            json: false,
            color: true,
        };
        assert_eq!(t.render(&color), "\x1b[1;36mab\x1b[0m    x\nabcd  y\n");
    }
}
