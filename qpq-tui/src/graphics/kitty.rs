//! Image previews through kitty's graphics protocol, in terminals that have
//! it (kitty, Ghostty): the image is sent once, then placed with *Unicode
//! placeholders* — cells holding U+10EEEE plus two combining marks that
//! say the cell's row and column in the image, coloured with the image's
//! id. Those cells are ordinary text to ratatui, so a preview scrolls,
//! clips at the pane's edge and hides under a box like any row, exactly as
//! the half-block previews do; the terminal draws the image's pixels over
//! them.
//!
//! Detection reads the environment only ([`super::detect`]).
//! Transmission asks the terminal for no reply (`q=2`): an answer would
//! arrive as keystrokes.

/// The placeholder character.
pub const PLACEHOLDER: char = '\u{10EEEE}';

/// The combining marks for row and column numbers 0–39, in the order the
/// protocol's table lists them (previews are at most 40 columns).
const DIACRITICS: [char; 40] = [
    '\u{0305}', '\u{030D}', '\u{030E}', '\u{0310}', '\u{0312}', '\u{033D}', '\u{033E}', '\u{033F}',
    '\u{0346}', '\u{034A}', '\u{034B}', '\u{034C}', '\u{0350}', '\u{0351}', '\u{0352}', '\u{0357}',
    '\u{035B}', '\u{0363}', '\u{0364}', '\u{0365}', '\u{0366}', '\u{0367}', '\u{0368}', '\u{0369}',
    '\u{036A}', '\u{036B}', '\u{036C}', '\u{036D}', '\u{036E}', '\u{036F}', '\u{0483}', '\u{0484}',
    '\u{0485}', '\u{0486}', '\u{0487}', '\u{0592}', '\u{0593}', '\u{0594}', '\u{0595}', '\u{0597}',
];

/// The most rows or columns a placement can have here.
pub const MAX_CELLS: u16 = DIACRITICS.len() as u16;

/// Pixels per cell assumed when sizing what is sent (the terminal scales it
/// to the cells; this only sets how sharp it is).
pub const CELL_PX: (u32, u32) = (10, 20);

/// Whether the environment names kitty or Ghostty (`var` reads a
/// variable); [`super::detect`] also rules out tmux and screen.
pub fn detected(var: &impl Fn(&str) -> Option<String>) -> bool {
    var("KITTY_WINDOW_ID").is_some()
        || var("TERM").as_deref() == Some("xterm-kitty")
        || var("TERM").as_deref() == Some("xterm-ghostty")
        || var("TERM_PROGRAM").as_deref() == Some("ghostty")
}

/// Where an image sent to the terminal is drawn: its id and size in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// 1..=0xFF_FFFF: the id is the placeholder cells' 24-bit colour.
    pub id: u32,
    pub cols: u16,
    pub rows: u16,
}

impl Placement {
    /// The foreground colour that names the image.
    pub fn colour(&self) -> (u8, u8, u8) {
        let [_, r, g, b] = self.id.to_be_bytes();
        (r, g, b)
    }

    /// Row `row` of the placement, its first `cols` cells.
    pub fn row(&self, row: u16, cols: u16) -> String {
        let r = DIACRITICS[usize::from(row.min(MAX_CELLS - 1))];
        (0..cols.min(self.cols).min(MAX_CELLS))
            .flat_map(|c| [PLACEHOLDER, r, DIACRITICS[usize::from(c)]])
            .collect()
    }
}

/// The escape sequences that send `rgba` (`w`×`h` pixels) as image `p.id`
/// and make a virtual placement of it `p.cols`×`p.rows` cells, quietly.
pub fn transmit(p: Placement, rgba: &[u8], w: u32, h: u32) -> Vec<u8> {
    /// Base64 bytes per escape sequence (the protocol's limit, a multiple
    /// of 4).
    const CHUNK: usize = 4096;
    let data = super::base64(rgba);
    let chunks: Vec<&[u8]> = data.as_bytes().chunks(CHUNK).collect();
    let mut out = Vec::with_capacity(data.len() + chunks.len() * 16 + 64);
    for (i, chunk) in chunks.iter().enumerate() {
        let more = u8::from(i + 1 < chunks.len());
        if i == 0 {
            out.extend_from_slice(
                format!(
                    "\x1b_Ga=T,q=2,f=32,s={w},v={h},i={},U=1,c={},r={},m={more};",
                    p.id, p.cols, p.rows
                )
                .as_bytes(),
            );
        } else {
            out.extend_from_slice(format!("\x1b_Gm={more};").as_bytes());
        }
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\x1b\\");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_one_column_each_and_name_their_cell() {
        let p = Placement {
            id: 0x01_02_03,
            cols: 3,
            rows: 2,
        };
        assert_eq!(p.colour(), (1, 2, 3));
        let row = p.row(1, 10);
        assert_eq!(
            row,
            "\u{10EEEE}\u{030D}\u{0305}\u{10EEEE}\u{030D}\u{030D}\u{10EEEE}\u{030D}\u{030E}"
        );
        assert_eq!(crate::wrap::width(&row), 3, "each cell one column");
        assert_eq!(crate::wrap::width(&p.row(0, 2)), 2, "cut to the pane");
    }

    #[test]
    fn transmission_is_chunked_base64_and_asks_for_no_reply() {
        let p = Placement {
            id: 7,
            cols: 4,
            rows: 2,
        };
        let rgba = vec![9u8; 40 * 20 * 4];
        let out = String::from_utf8(transmit(p, &rgba, 40, 20)).unwrap();
        assert!(out.starts_with("\x1b_Ga=T,q=2,f=32,s=40,v=20,i=7,U=1,c=4,r=2,m=1;"));
        assert!(out.ends_with("\x1b\\"));
        // 3,200 bytes are 4,268 base64 characters: two sequences.
        assert_eq!(out.matches("\x1b_G").count(), 2);
        assert!(out.contains("\x1b\\\x1b_Gm=0;"));
    }
}
