//! File names from peers, made safe to create on this machine: the one
//! rule every front-end and the daemon use when a name another user chose
//! (an attachment's, a group's) becomes a file.
//!
//! A name made here is one harmless path component: path separators,
//! control and bidi characters and the characters Windows refuses
//! (`<>:"|?*`) become `_`; leading and trailing dots and spaces go (no
//! hidden file such as `.bashrc`, no `..`); it is at most [`MAX_BYTES`]
//! long (a short extension is kept); a Windows device name (`con`, `nul`,
//! `com1`…) gets a `_` in front. [`free_path`] then never overwrites: the
//! name, else `name (1).ext`, `name (2).ext`… And [`human_size`] is how
//! every part shows a file's size.

use std::path::{Path, PathBuf};

use crate::text::is_terminal_unsafe;

/// The longest name made, in bytes (well under every file system's 255).
pub const MAX_BYTES: usize = 80;

/// The longest extension kept when a name is shortened, dot included.
const MAX_EXTENSION: usize = 16;

/// `raw` as one safe path component; `fallback` when nothing is left.
pub fn safe_file_name(raw: &str, fallback: &str) -> String {
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

/// `name` with ` (n)` before its extension, still at most [`MAX_BYTES`].
pub fn numbered(name: &str, n: u64) -> String {
    let (stem, extension) = split_extension(name);
    let suffix = format!(" ({n})");
    let stem = truncate(
        stem,
        MAX_BYTES.saturating_sub(extension.len() + suffix.len()),
    );
    format!("{stem}{suffix}{extension}")
}

/// `dir` joined with `name` made safe ([`safe_file_name`], `fallback` when
/// nothing is left of it), or with the first [`numbered`] form of it that
/// `taken` says is free: a peer's name never overwrites a file.
pub fn free_path(dir: &Path, name: &str, fallback: &str, taken: impl Fn(&Path) -> bool) -> PathBuf {
    let name = safe_file_name(name, fallback);
    let first = dir.join(&name);
    if !taken(&first) {
        return first;
    }
    (1..)
        .map(|n| dir.join(numbered(&name, n)))
        .find(|p| !taken(p))
        .expect("some number is free")
}

/// A size as people read it, in decimal units as file managers show them:
/// `512 B`, `12.3 kB`, `2.1 MB`, `150 MB` (one decimal below 100).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    // Lossy above 2^53 bytes, which no file reaches.
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    // 999.95 kB would round to "1000.0 kB": move up a unit first.
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if v < 99.95 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// `("report", ".pdf")`; an extension is letters and digits after the last
/// dot, at most 16 bytes with the dot, and not the whole name.
pub fn split_extension(name: &str) -> (&str, &str) {
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

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c == '.' || c.is_whitespace())
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
            assert_eq!(safe_file_name(raw, "conversation"), want, "{raw:?}");
        }
    }

    #[test]
    fn long_names_are_bounded_and_keep_their_extension() {
        let long = format!("{}.png", "é".repeat(100));
        let name = safe_file_name(&long, "x");
        assert!(name.len() <= MAX_BYTES, "{}", name.len());
        assert!(name.ends_with(".png"), "{name}");
        let no_ext = "x".repeat(300);
        assert_eq!(safe_file_name(&no_ext, "x").len(), MAX_BYTES);
    }

    #[test]
    fn sizes_read_as_file_managers_show_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(12_345), "12.3 kB");
        assert_eq!(human_size(2_100_000), "2.1 MB");
        assert_eq!(human_size(150_000_000), "150 MB");
        assert_eq!(human_size(999_999), "1.0 MB");
        assert_eq!(human_size(u64::MAX), "18447 PB");
    }

    #[test]
    fn numbered_names_keep_the_extension_and_the_bound() {
        assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
        assert_eq!(numbered("README", 2), "README (2)");
        let long = format!("{}.png", "y".repeat(MAX_BYTES));
        let n = numbered(&safe_file_name(&long, "x"), 12);
        assert!(n.len() <= MAX_BYTES && n.ends_with(" (12).png"), "{n}");
    }

    #[test]
    fn a_free_path_never_names_a_taken_file() {
        let taken = [PathBuf::from("/d/a.png"), PathBuf::from("/d/a (1).png")];
        let taken = |p: &Path| taken.iter().any(|t| t == p);
        assert_eq!(
            free_path(Path::new("/d"), "b.png", "f", taken),
            PathBuf::from("/d/b.png")
        );
        assert_eq!(
            free_path(Path::new("/d"), "a.png", "f", taken),
            PathBuf::from("/d/a (2).png")
        );
        assert_eq!(
            free_path(Path::new("/d"), "../../a.png", "f", |_| false),
            PathBuf::from("/d/_.._a.png")
        );
        assert_eq!(
            free_path(Path::new("/d"), "..", "file", |_| false),
            PathBuf::from("/d/file")
        );
    }
}
