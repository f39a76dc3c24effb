//! Image previews through kitty's graphics protocol, in terminals that have
//! it (kitty, Ghostty): the image is sent once, then placed with *Unicode
//! placeholders* — cells holding U+10EEEE plus two combining marks that
//! say the cell's row and column in the image, coloured with the image's
//! id. Those cells are ordinary text to ratatui, so a preview scrolls,
//! clips at the pane's edge and hides under a box like any row, exactly as
//! the half-block previews do; the terminal draws the image's pixels over
//! them.
//!
//! Detection reads the environment only (no query to the terminal, so
//! nothing can wait for an answer); inside tmux, which passes these
//! sequences on only when configured to, the half-blocks are used.
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

/// Whether the terminal draws kitty's Unicode placeholders, from the
/// environment alone (`var` reads a variable).
pub fn detected(var: impl Fn(&str) -> Option<String>) -> bool {
    if var("TMUX").is_some() {
        return false;
    }
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
    let data = base64(rgba);
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

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ABC[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_reads_the_environment_and_stays_off_in_tmux() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(detected(env(&[("KITTY_WINDOW_ID", "1")])));
        assert!(detected(env(&[("TERM", "xterm-kitty")])));
        assert!(detected(env(&[("TERM_PROGRAM", "ghostty")])));
        assert!(!detected(env(&[("TERM", "xterm-256color")])));
        assert!(!detected(env(&[
            ("KITTY_WINDOW_ID", "1"),
            ("TMUX", "/tmp/tmux-0/default,1,0")
        ])));
    }

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
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
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
