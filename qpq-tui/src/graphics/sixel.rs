//! Sixel images, which foot, mlterm, Windows Terminal, Konsole, WezTerm
//! and xterm (as a VT340) draw: pixels in bands six high, in a palette of
//! at most 256 colours, painted at the cursor pixel for pixel — so the
//! image is sized from the terminal's real cell size, never a guess, or it
//! would spill over its neighbours. Encoding (palette, dithering) is the
//! `icy_sixel` crate's; this module only sizes what it is given.
//!
//! Transparent pixels stay undrawn (background mode 1), as in the
//! half-blocks underneath.

use image::RgbaImage;

/// Why an image could not be encoded.
pub type Error = icy_sixel::SixelError;

/// The height in pixels an image `rows` cells tall may take: the largest
/// multiple of six within the cells, since some terminals round the last
/// band up to six pixels and would otherwise paint into the row below.
pub fn max_height(rows: u16, cell_h: u32) -> u32 {
    let h = u32::from(rows) * cell_h;
    if h < 6 {
        h
    } else {
        h - h % 6
    }
}

/// The DCS sequence that paints `img` at the cursor.
pub fn encode(img: &RgbaImage) -> Result<Vec<u8>, Error> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let sixel = icy_sixel::SixelImage::try_from_rgba(img.as_raw().clone(), w, h)?
        .with_background_mode(icy_sixel::BackgroundMode::Transparent)
        .encode()?;
    Ok(sixel.into_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_dcs_sequence_decodes_to_the_pixels() {
        // Two flat colours and a transparent corner: exact in any palette.
        let img = RgbaImage::from_fn(20, 12, |x, y| match (x < 10, y < 6) {
            (true, true) => image::Rgba([0, 0, 0, 0]),
            (true, false) => image::Rgba([255, 0, 0, 255]),
            (false, _) => image::Rgba([0, 0, 255, 255]),
        });
        let out = encode(&img).unwrap();
        assert!(out.starts_with(b"\x1bP"), "a DCS");
        assert!(out.ends_with(b"\x1b\\"), "ended by ST");
        let body = &out[2..out.len() - 2];
        let q = body.iter().position(|&b| b == b'q').unwrap();
        // P1=9: square pixels; P2=1: transparent pixels left undrawn.
        assert_eq!(&body[..q], b"9;1;0");
        // Nothing but sixel data inside: no escape, no BEL, no C1.
        assert!(body.iter().all(|&b| (0x20..0x7f).contains(&b)));

        let back = icy_sixel::SixelImage::decode(&out).unwrap();
        assert_eq!((back.width, back.height), (20, 12));
        let px = |x: usize, y: usize| &back.pixels[(y * 20 + x) * 4..][..4];
        assert_eq!(px(15, 0), [0, 0, 255, 255]);
        assert_eq!(px(2, 9), [255, 0, 0, 255]);
        assert_eq!(px(2, 2)[3], 0, "transparent stays transparent");
    }

    #[test]
    fn heights_stay_within_the_cells() {
        assert_eq!(max_height(8, 18), 144);
        assert_eq!(max_height(8, 17), 132, "136 rounded down to a band");
        assert_eq!(max_height(1, 5), 5, "never more than the cells");
    }
}
