//! iTerm2's inline images (`OSC 1337 ; File=…`), which iTerm2, WezTerm,
//! mintty and others draw: a PNG, base64-encoded, painted at the cursor and
//! scaled by the terminal to the cells asked for — so unlike sixel, the
//! terminal's cell size in pixels only sets how sharp it is.
//!
//! The sequence names no file (`name=` is left out): nothing from the
//! sender's message ever reaches the terminal this way, only pixels this
//! module encoded.

use std::io::Cursor;

use image::{ImageFormat, RgbaImage};

/// The sequence that paints `png` over `cols`×`rows` cells from the cursor.
pub fn sequence(png: &[u8], cols: u16, rows: u16) -> Vec<u8> {
    let data = super::base64(png);
    let mut out = format!(
        "\x1b]1337;File=inline=1;size={};width={cols};height={rows};preserveAspectRatio=1:",
        png.len()
    )
    .into_bytes();
    out.reserve(data.len() + 1);
    out.extend_from_slice(data.as_bytes());
    out.push(0x07);
    out
}

/// `img` as a PNG, painted over `cols`×`rows` cells.
pub fn encode(img: &RgbaImage, cols: u16, rows: u16) -> Result<Vec<u8>, image::ImageError> {
    let mut png = Cursor::new(Vec::new());
    img.write_to(&mut png, ImageFormat::Png)?;
    Ok(sequence(png.get_ref(), cols, rows))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine as _;

    #[test]
    fn the_osc_gives_the_cells_and_carries_a_png_of_the_pixels() {
        let img = RgbaImage::from_fn(30, 20, |x, y| {
            if x < 15 {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([0, 0, u8::try_from(y).unwrap(), 255])
            }
        });
        let out = encode(&img, 3, 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, rest) = text.split_once(':').unwrap();
        let size = head
            .strip_prefix("\x1b]1337;File=inline=1;size=")
            .and_then(|h| h.strip_suffix(";width=3;height=1;preserveAspectRatio=1"))
            .unwrap();
        let data = rest.strip_suffix('\x07').unwrap();
        // Only base64 between the header and the BEL: no other control
        // character, nothing that could end the sequence early.
        assert!(data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(size, png.len().to_string());
        let back = image::load_from_memory_with_format(&png, ImageFormat::Png)
            .unwrap()
            .to_rgba8();
        assert_eq!(back, img, "the same pixels, losslessly");

        assert_eq!(
            sequence(b"f", 1, 2),
            b"\x1b]1337;File=inline=1;size=1;width=1;height=2;preserveAspectRatio=1:Zg==\x07"
        );
    }
}
