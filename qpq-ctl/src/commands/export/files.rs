//! The names of the files an export writes, and how the pages link to them.
//!
//! Group names and attachment names are chosen by peers, so a name made
//! here is one harmless path component: path separators, control and bidi
//! characters and the characters Windows refuses (`<>:"|?*`) become `_`;
//! leading and trailing dots and spaces go (no hidden file, no `..`); it is
//! at most [`MAX_BYTES`] long (an attachment keeps a short extension); a
//! Windows device name (`con`, `nul`, `com1`…) gets a `_` in front; and it is
//! unique in its directory, ignoring case (case-insensitive file systems),
//! by a ` (2)`, ` (3)`… before the extension.

use std::collections::HashSet;

use quicproquo_protocol::text::is_terminal_unsafe;

/// The longest name made, in bytes (well under every file system's 255).
pub const MAX_BYTES: usize = 80;

/// The longest extension kept when a name is shortened, dot included.
const MAX_EXTENSION: usize = 16;

/// `raw` as one safe path component; `fallback` when nothing is left.
pub fn safe_name(raw: &str, fallback: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            let refused = matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|');
            if refused || is_terminal_unsafe(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = trim(&cleaned);
    let (stem, extension) = split_extension(trimmed);
    let stem = trim(truncate(stem, MAX_BYTES - extension.len()));
    let stem = if stem.is_empty() { fallback } else { stem };
    let device = is_device_name(stem);
    format!("{}{stem}{extension}", if device { "_" } else { "" })
}

/// `name`, or the first of `name (2)`, `name (3)`… not in `used` (compared
/// ignoring case); it is added to `used`.
pub fn unique(name: String, used: &mut HashSet<String>) -> String {
    if used.insert(name.to_lowercase()) {
        return name;
    }
    let (stem, extension) = split_extension(&name);
    let mut n = 2u64;
    loop {
        let suffix = format!(" ({n})");
        let stem = truncate(stem, MAX_BYTES - extension.len() - suffix.len());
        let candidate = format!("{stem}{suffix}{extension}");
        if used.insert(candidate.to_lowercase()) {
            return candidate;
        }
        n += 1;
    }
}

/// A relative link (`/`-separated components) as a URL path: every byte
/// but letters, digits, `-._~/` percent-encoded, so spaces, `#`, `?`,
/// parentheses and quotes in a name cannot end or redirect the link in
/// either Markdown or HTML.
pub fn url_path(link: &str) -> String {
    let mut out = String::with_capacity(link.len());
    for b in link.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A file size for people: `512 B`, `12.3 KiB`, `4.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Whether a browser shows the type in `<img>` (and a Markdown viewer
/// inline). The type is the sender's word: a lie shows a broken image.
pub fn is_image(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif" | "image/bmp"
    )
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c == '.' || c.is_whitespace())
}

/// `("report", ".pdf")`; an extension is letters and digits after the last
/// dot, at most [`MAX_EXTENSION`] bytes, and not the whole name.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i)
            if i > 0
                && name.len() - i <= MAX_EXTENSION
                && name[i + 1..].bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            name.split_at(i)
        }
        _ => (name, ""),
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_device_name(stem: &str) -> bool {
    let base = stem
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(base.as_str(), "con" | "prn" | "aux" | "nul")
        || (base.len() == 4
            && (base.starts_with("com") || base.starts_with("lpt"))
            && base.as_bytes()[3].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_become_one_harmless_component() {
        for (raw, want) in [
            ("team", "team"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("..", "conversation"),
            (".hidden", "hidden"),
            ("a/b\\c:d*e?f\"g<h>i|j", "a_b_c_d_e_f_g_h_i_j"),
            ("evil\u{202E}gpj.exe", "evil_gpj.exe"),
            ("tab\there\nnewline", "tab_here_newline"),
            ("  spaced out . ", "spaced out"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("com1", "_com1"),
            ("common", "common"),
            ("", "conversation"),
            ("Grüße 👋", "Grüße 👋"),
        ] {
            assert_eq!(safe_name(raw, "conversation"), want, "{raw:?}");
        }
    }

    #[test]
    fn long_names_are_bounded_and_keep_their_extension() {
        let long = format!("{}.png", "é".repeat(100));
        let name = safe_name(&long, "x");
        assert!(name.len() <= MAX_BYTES, "{}", name.len());
        assert!(name.ends_with(".png"), "{name}");
        let no_ext = "x".repeat(300);
        assert_eq!(safe_name(&no_ext, "x").len(), MAX_BYTES);
    }

    #[test]
    fn names_are_unique_ignoring_case() {
        let mut used = HashSet::new();
        assert_eq!(unique("a.png".into(), &mut used), "a.png");
        assert_eq!(unique("A.png".into(), &mut used), "A (2).png");
        assert_eq!(unique("a.png".into(), &mut used), "a (3).png");
        assert_eq!(unique("team".into(), &mut used), "team");
        assert_eq!(unique("team".into(), &mut used), "team (2)");
        let long = "y".repeat(MAX_BYTES);
        assert_eq!(unique(long.clone(), &mut used), long);
        let second = unique(long, &mut used);
        assert!(
            second.len() <= MAX_BYTES && second.ends_with(" (2)"),
            "{second}"
        );
    }

    #[test]
    fn links_and_sizes() {
        assert_eq!(
            url_path("team-files/my photo (1)#?.png"),
            "team-files/my%20photo%20%281%29%23%3F.png"
        );
        assert_eq!(url_path("é"), "%C3%A9");
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
        assert!(is_image("image/PNG; charset=x"));
        assert!(
            !is_image("image/svg+xml"),
            "SVG is a document, not a picture"
        );
        assert!(!is_image("text/html"));
    }
}
