//! Painting iTerm2 and sixel images over their previews, after ratatui's
//! frame, and erasing them when they move.
//!
//! Both protocols paint pixels at the cursor, outside ratatui's model of
//! the screen: ratatui rewrites only the cells that changed, so an image
//! left where its message no longer is would stay. The cells beneath an
//! image hold its half-block rendering, so ratatui's frame is right even
//! where the image is not painted. Each frame, [`Painter::plan`] compares
//! the images to paint (wholly visible, uncovered: found by the render)
//! with those painted before:
//!
//! - an image painted before at the same place is left alone (its cells
//!   did not change, so ratatui wrote nothing over it): typing costs no
//!   image bytes;
//! - an image gone or moved has its rows erased and their cells rewritten
//!   from ratatui's buffer (text written over an image replaces it, in
//!   every terminal that has these protocols), then any image on those
//!   rows is painted again;
//! - after a resize, ratatui cleared the screen: everything is painted.
//!
//! The cursor is saved before and restored after (DECSC/DECRC), so the
//! input's cursor stays where ratatui put it.

use quicproquo_protocol::ipc::values::MessageId;
use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::Rect;

/// An image to paint this frame, over these cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    pub id: MessageId,
    pub rect: Rect,
}

/// What a frame's images need written after it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Rows to erase and rewrite from ratatui's buffer, top to bottom.
    pub rows: Vec<u16>,
    /// Images to paint, after the rows are rewritten.
    pub paint: Vec<Paint>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.paint.is_empty()
    }
}

/// What is painted on the screen now, frame to frame.
#[derive(Debug, Default)]
pub struct Painter {
    shown: Vec<Paint>,
    area: Option<Rect>,
    repaint: bool,
}

impl Painter {
    /// The next frame paints every image again (after a resize, which a
    /// terminal may answer by dropping images).
    pub fn repaint_all(&mut self) {
        self.repaint = true;
    }

    /// What to write after a frame of size `area` whose wholly visible
    /// images are `now`; from then on, `now` is what is shown.
    pub fn plan(&mut self, now: &[Paint], area: Rect) -> Plan {
        let before = if self.area == Some(area) {
            std::mem::take(&mut self.shown)
        } else {
            // A resized terminal was cleared by ratatui: nothing is left.
            self.area = Some(area);
            Vec::new()
        };
        let mut rows: Vec<u16> = before
            .iter()
            .filter(|b| !now.contains(b))
            .flat_map(|b| b.rect.top()..b.rect.bottom())
            .collect();
        rows.sort_unstable();
        rows.dedup();
        let repaint = std::mem::take(&mut self.repaint);
        let paint = now
            .iter()
            .filter(|n| {
                repaint
                    || !before.contains(n)
                    || rows
                        .iter()
                        .any(|r| (n.rect.top()..n.rect.bottom()).contains(r))
            })
            .copied()
            .collect();
        self.shown = now.to_vec();
        Plan { rows, paint }
    }
}

/// Saves the cursor and its attributes (DECSC).
pub const SAVE: &[u8] = b"\x1b7";
/// Restores them (DECRC).
pub const RESTORE: &[u8] = b"\x1b8";

/// Erases whole rows (0-based): the images on them go with the text.
pub fn erase(rows: &[u16]) -> Vec<u8> {
    rows.iter()
        .flat_map(|r| format!("\x1b[{};1H\x1b[2K", u32::from(*r) + 1).into_bytes())
        .collect()
}

/// Paints `image` (an iTerm2 or sixel sequence) with its top-left cell at
/// `rect`'s.
pub fn at(rect: Rect, image: &[u8]) -> Vec<u8> {
    let mut out = format!("\x1b[{};{}H", u32::from(rect.y) + 1, u32::from(rect.x) + 1).into_bytes();
    out.extend_from_slice(image);
    out
}

/// The cells of `rows` in `buffer` that a blank row needs written, as
/// ratatui itself would write them (wide characters once).
pub fn cells(buffer: &Buffer, rows: &[u16]) -> Vec<(u16, u16, Cell)> {
    Buffer::empty(buffer.area)
        .diff(buffer)
        .into_iter()
        .filter(|(_, y, _)| rows.contains(y))
        .map(|(x, y, c)| (x, y, c.clone()))
        .collect()
}

/// The cells of `rect` (to tell, at the end of a frame, whether something
/// was drawn over an image's place).
pub fn snapshot(buffer: &Buffer, rect: Rect) -> Vec<Cell> {
    rect.positions().map(|p| buffer[p].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paint(id: u8, y: u16) -> Paint {
        Paint {
            id: MessageId([id; 16]),
            rect: Rect::new(20, y, 10, 3),
        }
    }

    #[test]
    fn only_what_moved_is_erased_and_painted_again() {
        let screen = Rect::new(0, 0, 80, 24);
        let mut p = Painter::default();
        // First frame: everything is painted, nothing erased.
        let plan = p.plan(&[paint(1, 2), paint(2, 10)], screen);
        assert_eq!(plan.rows, Vec::<u16>::new());
        assert_eq!(plan.paint, [paint(1, 2), paint(2, 10)]);
        // Nothing moved (a keystroke): nothing written.
        assert!(p.plan(&[paint(1, 2), paint(2, 10)], screen).is_empty());
        // Scrolled up one row: the old rows erased, both painted anew.
        let plan = p.plan(&[paint(1, 1), paint(2, 9)], screen);
        assert_eq!(plan.rows, [2, 3, 4, 10, 11, 12]);
        assert_eq!(plan.paint, [paint(1, 1), paint(2, 9)]);
        // The first scrolled out (or covered): erased; the second stays,
        // untouched, as its rows were not erased.
        let plan = p.plan(&[paint(2, 9)], screen);
        assert_eq!(plan.rows, [1, 2, 3]);
        assert_eq!(plan.paint, []);
        // An erased row under a kept image: painted again.
        let plan = p.plan(&[paint(2, 9), paint(3, 12)], screen);
        assert_eq!(plan.paint, [paint(3, 12)]);
        let plan = p.plan(&[paint(2, 9)], screen);
        assert_eq!(plan.rows, [12, 13, 14]);
        assert_eq!(plan.paint, []);
        let plan = p.plan(&[paint(2, 9), paint(4, 11)], screen);
        assert_eq!(plan.paint, [paint(4, 11)]);
        let plan = p.plan(&[paint(2, 9)], screen);
        assert_eq!(plan.rows, [11, 12, 13]);
        assert_eq!(plan.paint, [paint(2, 9)], "row 11 was the kept image's");
        // Resized: the screen was cleared; paint all, erase nothing.
        let plan = p.plan(&[paint(2, 9)], Rect::new(0, 0, 100, 30));
        assert_eq!((plan.rows, plan.paint), (vec![], vec![paint(2, 9)]));
        // Resized back and forth to the same size: ratatui cleared
        // nothing, but the terminal may have dropped the image.
        p.repaint_all();
        let plan = p.plan(&[paint(2, 9)], Rect::new(0, 0, 100, 30));
        assert_eq!((plan.rows, plan.paint), (vec![], vec![paint(2, 9)]));
        assert!(
            p.plan(&[paint(2, 9)], Rect::new(0, 0, 100, 30)).is_empty(),
            "once"
        );
    }

    #[test]
    fn sequences_address_rows_and_columns_from_one() {
        assert_eq!(erase(&[0, 4]), b"\x1b[1;1H\x1b[2K\x1b[5;1H\x1b[2K");
        assert_eq!(at(Rect::new(3, 7, 2, 2), b"IMG"), b"\x1b[8;4HIMG");
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 3));
        buf.set_string(0, 1, "a界b", ratatui::style::Style::default());
        buf.set_string(0, 2, "zz", ratatui::style::Style::default());
        let c = cells(&buf, &[1]);
        let xs: Vec<(u16, &str)> = c.iter().map(|(x, _, c)| (*x, c.symbol())).collect();
        assert_eq!(xs, [(0, "a"), (1, "界"), (3, "b")], "wide characters once");
    }
}
