//! The names of the files an export writes, and how the pages link to them.
//!
//! Group names and attachment names are chosen by peers, so a name made
//! here is one harmless path component by the rule of
//! `protocol::file_names` (the daemon's and the front-ends' too), and
//! unique in its directory, ignoring case (case-insensitive file systems),
//! by a ` (2)`, ` (3)`… before the extension.

use std::collections::HashSet;

use quicproquo_protocol::file_names::numbered;
pub use quicproquo_protocol::file_names::safe_file_name as safe_name;

/// `name`, or the first of `name (2)`, `name (3)`… not in `used` (compared
/// ignoring case); it is added to `used`.
pub fn unique(name: String, used: &mut HashSet<String>) -> String {
    if used.insert(name.to_lowercase()) {
        return name;
    }
    (2u64..)
        .map(|n| numbered(&name, n))
        .find(|candidate| used.insert(candidate.to_lowercase()))
        .expect("some number is free")
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

/// A file size for people, as the rest of qpq shows it.
pub use quicproquo_protocol::file_names::human_size as size;

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

#[cfg(test)]
mod tests {
    use quicproquo_protocol::file_names::MAX_BYTES;

    use super::*;

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
        assert_eq!(size(1536), "1.5 kB");
        assert_eq!(size(5 * 1024 * 1024), "5.2 MB");
        assert!(is_image("image/PNG; charset=x"));
        assert!(
            !is_image("image/svg+xml"),
            "SVG is a document, not a picture"
        );
        assert!(!is_image("text/html"));
    }
}
