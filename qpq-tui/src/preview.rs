//! Inline previews of image attachments (issue 18), drawn with half-block
//! characters: each cell shows two pixels, the upper as the foreground of
//! `▀` and the lower as its background, so a preview is ordinary styled
//! text. It scrolls, wraps into the message's block and snapshots like any
//! other row, and works in every terminal with colour, tmux included —
//! no graphics protocol to detect, so nothing can hang waiting for a
//! terminal's answer. Where the terminal has graphics ([`crate::graphics`]),
//! a sharper copy is made too: for kitty's protocol, placed with Unicode
//! placeholders (text cells too); for iTerm2's and sixel, an image painted
//! over the half-blocks, which stay in the cells beneath it.
//!
//! The file was written by the daemon after its integrity check, but its
//! bytes are the sender's: decoding runs off the UI thread
//! ([`crate::event_loop`] hands it to a blocking task), only PNG, JPEG and
//! GIF (first frame) are tried, whatever the content type claims, and an
//! image over [`MAX_PIXELS`] or a decoder asking for more than
//! [`MAX_DECODE_BYTES`] is refused before it can take the TUI's memory
//! (a small file can claim a huge canvas). What is kept per message is
//! the thumbnail, a few kilobytes, and for iTerm2 and sixel the encoded
//! image painted over it (for a photo up to a few hundred kilobytes:
//! painting it again must not cost an encode on the UI thread).

use std::path::Path;

use image::{ImageFormat, ImageReader, Limits};

use crate::graphics::kitty::{self, Placement};
use crate::graphics::{iterm2, sixel, Image, Target};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

/// Rows of the terminal a preview takes at most.
pub const ROWS: u16 = 8;
/// Columns a preview takes at most.
pub const COLS: u16 = 40;
/// Larger images are refused (50 megapixels).
pub const MAX_PIXELS: u64 = 50_000_000;
/// What a decoder may allocate at once.
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Why an image is not previewed (said dimmed in its place).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PreviewError {
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("larger than the preview limit ({0} MiB)")]
    TooLarge(u64),
    #[error("{0}×{1} pixels is too large to preview")]
    TooManyPixels(u32, u32),
    #[error("not a PNG, JPEG or GIF image")]
    Unsupported,
    #[error("the image could not be decoded: {0}")]
    Decode(String),
}

/// A decoded thumbnail: rows of pixels, `None` where transparent; in a
/// terminal with kitty's graphics, also where the sharper copy sent to the
/// terminal is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: usize,
    pixels: Vec<Vec<Option<[u8; 3]>>>,
    pub kitty: Option<Placement>,
    /// The escape sequences that send it to the terminal, until they are
    /// written (once).
    pub send: Option<Vec<u8>>,
    /// For iTerm2 and sixel: the image painted over the half-blocks, which
    /// are then exactly its cells.
    pub image: Option<Image>,
}

/// A message's preview, as far as it has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preview {
    Decoding,
    Ready(Picture),
    Failed(PreviewError),
}

thread_local! {
    /// This thread is decoding a peer's image (see [`decode_guarded`]).
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a panic now comes from a decoder: the terminal's panic hook then
/// leaves the screen alone (the TUI goes on; the image gets no preview).
pub fn in_decoder() -> bool {
    DECODING.with(std::cell::Cell::get)
}

/// [`decode`], with a decoder's panic (a bug a crafted image could reach)
/// turned into an error instead of ending the TUI or resetting the terminal.
pub fn decode_guarded(
    path: &Path,
    max_file_bytes: u64,
    target: Target,
) -> Result<Picture, PreviewError> {
    DECODING.with(|d| d.set(true));
    let result = std::panic::catch_unwind(|| decode(path, max_file_bytes, target));
    DECODING.with(|d| d.set(false));
    result.unwrap_or_else(|_| Err(PreviewError::Decode("the decoder failed".into())))
}

/// Decodes the image at `path` (at most `max_file_bytes`) into a thumbnail
/// of at most [`COLS`]×[`ROWS`] cells, and the sharper copy `target` asks
/// for. Blocking: run it off the UI thread.
pub fn decode(path: &Path, max_file_bytes: u64, target: Target) -> Result<Picture, PreviewError> {
    let io = |e: std::io::Error| PreviewError::Io(e.to_string());
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > max_file_bytes {
        return Err(PreviewError::TooLarge(max_file_bytes / (1024 * 1024)));
    }
    let open = || -> Result<ImageReader<_>, PreviewError> {
        // The format from the bytes alone, never from the peer's name.
        let mut reader = ImageReader::open(path).map_err(io)?;
        reader.clear_format();
        let mut reader = reader.with_guessed_format().map_err(io)?;
        if !matches!(
            reader.format(),
            Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif)
        ) {
            return Err(PreviewError::Unsupported);
        }
        let mut limits = Limits::default();
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        reader.limits(limits);
        Ok(reader)
    };
    // The header first: the canvas size is checked before any pixel.
    let (w, h) = open()?
        .into_dimensions()
        .map_err(|e| PreviewError::Decode(e.to_string()))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(PreviewError::TooManyPixels(w, h));
    }
    let img = open()?
        .decode()
        .map_err(|e| PreviewError::Decode(e.to_string()))?;
    let (cols, rows) = match target {
        Target::HalfBlocks | Target::Kitty(_) => (COLS, ROWS),
        // The image painted over the half-blocks covers exactly their
        // cells, so they are sized to its placement.
        Target::Iterm2 { .. } | Target::Sixel { .. } => {
            let p = placement(0, img.width(), img.height());
            (p.cols, p.rows)
        }
    };
    // Half-block pixels are about square: a cell is twice as tall as wide.
    let thumb = match target {
        Target::Iterm2 { .. } | Target::Sixel { .. } => {
            img.thumbnail_exact(u32::from(cols), u32::from(rows) * 2)
        }
        _ => img.thumbnail(u32::from(cols), u32::from(rows) * 2),
    }
    .to_rgba8();
    let pixels = thumb
        .rows()
        .map(|row| {
            row.map(|p| {
                let [r, g, b, a] = p.0;
                (a >= 128).then_some([r, g, b])
            })
            .collect()
        })
        .collect();
    let mut picture = Picture {
        width: thumb.width() as usize,
        pixels,
        kitty: None,
        send: None,
        image: None,
    };
    let failed = |e: &dyn std::fmt::Display| PreviewError::Decode(e.to_string());
    match target {
        Target::HalfBlocks => {}
        Target::Kitty(id) => {
            let p = placement(id, img.width(), img.height());
            let (cw, ch) = kitty::CELL_PX;
            let big = img
                .thumbnail(u32::from(p.cols) * cw, u32::from(p.rows) * ch)
                .to_rgba8();
            picture.send = Some(kitty::transmit(p, big.as_raw(), big.width(), big.height()));
            picture.kitty = Some(p);
        }
        Target::Iterm2 { cell_px: (cw, ch) } => {
            let big = img
                .thumbnail(u32::from(cols) * cw, u32::from(rows) * ch)
                .to_rgba8();
            let bytes = iterm2::encode(&big, cols, rows).map_err(|e| failed(&e))?;
            picture.image = Some(Image { cols, rows, bytes });
        }
        Target::Sixel { cell_px: (cw, ch) } => {
            // Never taller or wider than the cells: sixel is painted pixel
            // for pixel.
            let big = img
                .thumbnail(u32::from(cols) * cw, sixel::max_height(rows, ch))
                .to_rgba8();
            let bytes = sixel::encode(&big).map_err(|e| failed(&e))?;
            picture.image = Some(Image { cols, rows, bytes });
        }
    }
    Ok(picture)
}

/// The cells a `w`×`h`-pixel image takes: at most [`COLS`]×[`ROWS`], its
/// shape kept (a cell is about twice as tall as wide).
fn placement(id: u32, w: u32, h: u32) -> Placement {
    let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let (max_c, max_r) = (f64::from(COLS), f64::from(ROWS));
    let (cols, rows) = if w / h * 2.0 * max_r <= max_c {
        ((w / h * 2.0 * max_r).round(), max_r)
    } else {
        (max_c, (max_c * h / w / 2.0).round())
    };
    Placement {
        id,
        cols: (cols as u16).clamp(1, COLS),
        rows: (rows as u16).clamp(1, ROWS),
    }
}

impl Picture {
    /// A picture from pixel rows (tests).
    pub fn from_rows(pixels: Vec<Vec<Option<[u8; 3]>>>) -> Picture {
        Picture {
            width: pixels.first().map_or(0, Vec::len),
            pixels,
            kitty: None,
            send: None,
            image: None,
        }
    }

    /// The rows of cells, cut to `max_cols`.
    pub fn lines(&self, max_cols: usize) -> Vec<Line<'static>> {
        if let Some(k) = self.kitty {
            let (r, g, b) = k.colour();
            let style = Style::default().fg(Color::Rgb(r, g, b));
            let cols = u16::try_from(max_cols).unwrap_or(u16::MAX);
            return (0..k.rows)
                .map(|row| Line::from(Span::styled(k.row(row, cols), style)))
                .collect();
        }
        let rgb = |p: [u8; 3]| Color::Rgb(p[0], p[1], p[2]);
        let cols = self.width.min(max_cols);
        self.pixels
            .chunks(2)
            .map(|pair| {
                let top = &pair[0];
                let bottom = pair.get(1);
                let spans: Vec<Span<'static>> = (0..cols)
                    .map(|x| {
                        let t = top.get(x).copied().flatten();
                        let b = bottom.and_then(|r| r.get(x).copied().flatten());
                        match (t, b) {
                            (Some(t), Some(b)) => {
                                Span::styled("▀", Style::default().fg(rgb(t)).bg(rgb(b)))
                            }
                            (Some(t), None) => Span::styled("▀", Style::default().fg(rgb(t))),
                            (None, Some(b)) => Span::styled("▄", Style::default().fg(rgb(b))),
                            (None, None) => Span::raw(" "),
                        }
                    })
                    .collect();
                Line::from(spans)
            })
            .collect()
    }

    /// Rows of the terminal it takes.
    pub fn rows(&self) -> usize {
        match self.kitty {
            Some(k) => usize::from(k.rows),
            None => self.pixels.len().div_ceil(2),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32) {
        let img = image::RgbaImage::from_fn(w, h, |x, _| {
            if x < w / 2 {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([0, 0, 255, 0])
            }
        });
        img.save_with_format(path, ImageFormat::Png).unwrap();
    }

    #[test]
    fn a_png_becomes_half_blocks_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wide.png");
        write_png(&p, 400, 100);
        let pic = decode(&p, 10 << 20, Target::HalfBlocks).unwrap();
        assert_eq!(pic.width, usize::from(COLS));
        assert_eq!(pic.rows(), 5, "the aspect ratio kept: 40×10 pixels");
        let lines = pic.lines(80);
        assert_eq!(lines.len(), 5);
        let first = &lines[0].spans;
        assert_eq!(first.len(), 40);
        assert_eq!(first[0].content, "▀");
        assert_eq!(first[0].style.fg, Some(Color::Rgb(255, 0, 0)));
        assert_eq!(first[39].content, " ", "transparent stays blank");
        assert_eq!(pic.lines(10)[0].spans.len(), 10, "cut to the pane");

        // For kitty: the same shape in cells, and a sharper copy to send.
        let pic = decode(&p, 10 << 20, Target::Kitty(5)).unwrap();
        let k = pic.kitty.unwrap();
        assert_eq!((k.id, k.cols, k.rows), (5, 40, 5));
        let send = String::from_utf8(pic.send.clone().unwrap()).unwrap();
        assert!(send.starts_with("\x1b_Ga=T,q=2,f=32,s=400,v=100,i=5,U=1,c=40,r=5,"));
        let lines = pic.lines(80);
        assert_eq!((lines.len(), pic.rows()), (5, 5));
        assert_eq!(crate::wrap::width(&lines[4].spans[0].content), 40);
        assert_eq!(lines[0].spans[0].style.fg, Some(Color::Rgb(0, 0, 5)));
        // A tall image keeps its shape too.
        assert_eq!(placement(1, 100, 400).cols, 4);
        assert_eq!(placement(1, 100, 400).rows, 8);
    }

    #[test]
    fn iterm2_and_sixel_images_cover_exactly_the_half_blocks_cells() {
        let dir = tempfile::tempdir().unwrap();
        // A peer's name never reaches the sequences: only pixels do.
        let p = dir.path().join("\x1b]0;pwned\x07.png");
        write_png(&p, 400, 100);
        // 400×100 keeps its shape in 40×5 cells.
        let pic = decode(&p, 10 << 20, Target::Iterm2 { cell_px: (8, 16) }).unwrap();
        let img = pic.image.clone().unwrap();
        assert_eq!((img.cols, img.rows), (40, 5));
        assert_eq!((pic.width, pic.rows()), (40, 5), "the cells beneath");
        assert!(pic.kitty.is_none() && pic.send.is_none());
        let text = String::from_utf8(img.bytes).unwrap();
        assert!(
            text.starts_with("\x1b]1337;File=inline=1;size="),
            "{text:.60}"
        );
        assert!(text.contains(";width=40;height=5;preserveAspectRatio=1:"));
        // A PNG of the cells' pixels: 40×5 cells of 8×16.
        let data = text.split_once(':').unwrap().1.trim_end_matches('\x07');
        let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).unwrap();
        assert!(!text.contains("pwned"));
        let sharp = image::load_from_memory(&png).unwrap();
        assert_eq!((sharp.width(), sharp.height()), (320, 80));

        let pic = decode(&p, 10 << 20, Target::Sixel { cell_px: (8, 17) }).unwrap();
        let img = pic.image.clone().unwrap();
        assert_eq!((img.cols, img.rows, pic.rows()), (40, 5, 5));
        assert!(!img.bytes.windows(5).any(|w| w == b"pwned"));
        let back = icy_sixel::SixelImage::decode(&img.bytes).unwrap();
        // Never past its cells: 5 rows of 17 pixels are 85, 84 in bands.
        assert!(
            back.width <= 320 && back.height <= 84,
            "{}×{}",
            back.width,
            back.height
        );
        assert_eq!(back.width, 320);
        let px = |x: usize, y: usize| &back.pixels[(y * back.width + x) * 4..][..4];
        assert_eq!(px(10, 10), [255, 0, 0, 255], "the left half red");
        assert_eq!(px(300, 10)[3], 0, "the right half transparent");
    }

    #[test]
    fn bombs_liars_and_oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A tiny PNG whose header claims 100,000 × 100,000 pixels.
        let p = dir.path().join("bomb.png");
        write_png(&p, 1, 1);
        let mut png = std::fs::read(&p).unwrap();
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = {
            let mut c = 0xFFFF_FFFFu32;
            for &b in &png[12..29] {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        (c >> 1) ^ 0xEDB8_8320
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        };
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&p, &png).unwrap();
        assert_eq!(
            decode(&p, 10 << 20, Target::HalfBlocks),
            Err(PreviewError::TooManyPixels(100_000, 100_000))
        );
        // Text named .png is not an image.
        let t = dir.path().join("fake.png");
        std::fs::write(&t, b"not an image at all").unwrap();
        assert_eq!(
            decode(&t, 10 << 20, Target::HalfBlocks),
            Err(PreviewError::Unsupported)
        );
        // A truncated image is an error, not a panic.
        let good = dir.path().join("good.png");
        write_png(&good, 64, 64);
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            decode(&cut, 10 << 20, Target::HalfBlocks),
            Err(PreviewError::Decode(_))
        ));
        assert_eq!(
            decode(&good, 10, Target::HalfBlocks),
            Err(PreviewError::TooLarge(0))
        );
        assert!(matches!(
            decode(&dir.path().join("gone.png"), 10 << 20, Target::HalfBlocks),
            Err(PreviewError::Io(_))
        ));
        // The guarded decode answers the same, and leaves the flag clear.
        assert_eq!(
            decode_guarded(&good, 10 << 20, Target::HalfBlocks),
            decode(&good, 10 << 20, Target::HalfBlocks)
        );
        assert_eq!(
            decode_guarded(&t, 10 << 20, Target::HalfBlocks),
            Err(PreviewError::Unsupported)
        );
        assert!(!in_decoder());
    }
}
