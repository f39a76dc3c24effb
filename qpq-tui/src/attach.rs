//! Files on the user's side of an attachment (issue 18), as pure functions:
//! `/attach`'s path argument (quotes and backslash escapes), resolving `~`
//! and relative paths against the TUI's own directory (the daemon wants an
//! absolute path), Tab completion of paths, recognising a pasted or dropped
//! file path, where a saved file goes, and sizes and names as people read
//! them. The file system is touched only through the listing function the
//! caller passes (completion) and in [`dropped_file`] (which the input
//! thread calls, not `update`).

use std::path::{Path, PathBuf};

/// Where the TUI runs: what `~`, a relative path and "save" mean. Read once
/// at start ([`Places::from_env`]); tests make their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Places {
    /// The directory relative `/attach` paths start from.
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
    /// Where the save key writes: `download_dir` in qpq-tui.toml, else
    /// `$XDG_DOWNLOAD_DIR`, else `~/Downloads` when it exists, else `cwd`.
    pub downloads: PathBuf,
}

impl Places {
    pub fn from_env() -> Places {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let downloads = std::env::var_os("XDG_DOWNLOAD_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .or_else(|| {
                home.as_ref()
                    .map(|h| h.join("Downloads"))
                    .filter(|d| d.is_dir())
            })
            .unwrap_or_else(|| cwd.clone());
        Places {
            cwd,
            home,
            downloads,
        }
    }
}

/// Splits `/attach`'s arguments into the path (its first word, unquoted)
/// and the caption (the rest of the line). The path may be quoted with
/// `"…"` or `'…'`, or have its spaces escaped with `\` (as shells and
/// Tab completion write them).
pub fn split_args(rest: &str) -> Result<(String, String), String> {
    let rest = rest.trim_start();
    let (path, end) = first_word(rest)?;
    if path.is_empty() {
        return Err("usage: /attach PATH [caption]".into());
    }
    Ok((path, rest[end..].trim().to_owned()))
}

/// The first shell word of `s` unquoted, and the byte offset where it ends.
fn first_word(s: &str) -> Result<(String, usize), String> {
    match word_parts(s) {
        (_, _, true) => Err("the path's quote is not closed".into()),
        (word, end, false) => Ok((word, end)),
    }
}

/// The first shell word of `s` unquoted, where it ends, and whether a
/// quote is still open there (a word being typed).
fn word_parts(s: &str) -> (String, usize, bool) {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => match chars.next() {
                Some((_, n @ ('"' | '\\'))) => out.push(n),
                Some((_, n)) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            (Some(_), c) => out.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, '\\') => {
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            }
            (None, c) if c.is_whitespace() => return (out, i, false),
            (None, c) => out.push(c),
        }
    }
    (out, s.len(), quote.is_some())
}

/// `name` with what would end or split a word escaped by `\`: how Tab
/// completion writes a path into the input.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_whitespace() || matches!(c, '\\' | '"' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `~`, `~/x` and relative paths made absolute (the daemon reads the file
/// and accepts only absolute paths).
pub fn resolve(path: &str, places: &Places) -> Result<PathBuf, String> {
    let expanded = if path == "~" || path.starts_with("~/") {
        let Some(home) = &places.home else {
            return Err("~ cannot be resolved: HOME is not set".into());
        };
        home.join(path.trim_start_matches('~').trim_start_matches('/'))
    } else {
        PathBuf::from(path)
    };
    Ok(if expanded.is_absolute() {
        expanded
    } else {
        places.cwd.join(expanded)
    })
}

/// A directory entry for completion: its name and whether it is a
/// directory.
pub type Entry = (String, bool);

/// Lists a directory (the real one for the TUI, bounded: a huge directory
/// costs one Tab at most this many entries).
pub fn list_dir(dir: &Path) -> std::io::Result<Vec<Entry>> {
    const MAX_ENTRIES: usize = 10_000;
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)?.take(MAX_ENTRIES) {
        let e = e?;
        // A link to a directory completes as a directory.
        let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
        out.push((e.file_name().to_string_lossy().into_owned(), is_dir));
    }
    Ok(out)
}

/// What Tab does with a path being typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCompletion {
    /// The new text of the word (escaped), replacing the typed one.
    pub replacement: String,
    /// The word is complete (one file): a space may follow.
    pub done: bool,
    /// Several entries match: their names, to list.
    pub matches: Vec<String>,
}

/// Completes `word` (as typed: escaped or quoted) against the directory it
/// names. Hidden entries only when the typed name starts with a dot.
/// `None`: nothing matches, or `word` is more than one word (the caption).
pub fn complete_path(
    word: &str,
    places: &Places,
    list: impl Fn(&Path) -> std::io::Result<Vec<Entry>>,
) -> Option<PathCompletion> {
    let (typed, end, _) = word_parts(word);
    if end != word.len() {
        return None;
    }
    let (dir_part, prefix) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed.as_str()),
    };
    let dir = if dir_part.is_empty() {
        places.cwd.clone()
    } else {
        resolve(dir_part, places).ok()?
    };
    let mut found: Vec<Entry> = list(&dir)
        .ok()?
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .filter(|(name, _)| prefix.starts_with('.') || !name.starts_with('.'))
        .collect();
    found.sort();
    let shown = |(name, is_dir): &Entry| {
        if *is_dir {
            format!("{name}/")
        } else {
            name.clone()
        }
    };
    match found.as_slice() {
        [] => None,
        [only] => Some(PathCompletion {
            replacement: format!("{}{}", escape(dir_part), escape(&shown(only))),
            done: !only.1,
            matches: Vec::new(),
        }),
        many => {
            let names: Vec<String> = many.iter().map(shown).collect();
            let common = crate::commands::common_prefix(&names);
            Some(PathCompletion {
                replacement: format!("{}{}", escape(dir_part), escape(common)),
                done: false,
                matches: names,
            })
        }
    }
}

/// The path a paste is, when it is exactly one absolute (or `~`) path: as
/// typed, quoted by a terminal's drop (`'…'`, `"…"`, `\ ` escapes) or as a
/// `file://` URL. Whether the file exists is [`dropped_file`]'s question.
pub fn pasted_path(text: &str, home: Option<&Path>) -> Option<PathBuf> {
    let text = text.trim();
    if text.is_empty() || text.contains(['\n', '\r']) {
        return None;
    }
    let raw = if let Some(url) = text.strip_prefix("file://") {
        // `file:///x` or `file://localhost/x`; another host is not ours.
        let path = url.strip_prefix("localhost").unwrap_or(url);
        if !path.starts_with('/') {
            return None;
        }
        percent_decode(path)?
    } else {
        let (word, end) = first_word(text).ok()?;
        if end != text.len() {
            // More than one word: text, not a path.
            return None;
        }
        word
    };
    let path = if raw == "~" || raw.starts_with("~/") {
        home?.join(raw.trim_start_matches('~').trim_start_matches('/'))
    } else {
        PathBuf::from(raw)
    };
    path.is_absolute().then_some(path)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A paste that is one existing regular file: its path and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastedFile {
    pub path: PathBuf,
    pub size: u64,
}

/// [`pasted_path`], when that path is an existing regular file. Called on
/// the input thread (it asks the file system), so `update` stays pure.
pub fn dropped_file(text: &str, home: Option<&Path>) -> Option<PastedFile> {
    let path = pasted_path(text, home)?;
    let meta = std::fs::metadata(&path).ok()?;
    meta.is_file().then_some(PastedFile {
        path,
        size: meta.len(),
    })
}

pub use quicproquo_protocol::file_names::human_size;

/// The last component of one of our own paths, for saying what is
/// attached (sanitized by the caller like any text shown).
pub fn own_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.to_string_lossy().into_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The content types the preview decodes (by their bytes, not this name:
/// the type only says whether to try).
pub fn previewable(content_type: &str) -> bool {
    matches!(
        content_type.trim().to_ascii_lowercase().as_str(),
        "image/png" | "image/jpeg" | "image/jpg" | "image/gif"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn places() -> Places {
        Places {
            cwd: PathBuf::from("/work/here"),
            home: Some(PathBuf::from("/home/al")),
            downloads: PathBuf::from("/home/al/Downloads"),
        }
    }

    #[test]
    fn attach_arguments_quotes_and_escapes() {
        let s = |a: &str| split_args(a).unwrap();
        assert_eq!(s("a.png"), ("a.png".into(), String::new()));
        assert_eq!(
            s("a.png  look at this "),
            ("a.png".into(), "look at this".into())
        );
        assert_eq!(s("my\\ file.pdf hi"), ("my file.pdf".into(), "hi".into()));
        assert_eq!(s("\"my file.pdf\" hi"), ("my file.pdf".into(), "hi".into()));
        assert_eq!(s("'it''s.txt'"), ("its.txt".into(), String::new()));
        assert_eq!(s("\"a\\\"b\""), ("a\"b".into(), String::new()));
        assert!(split_args("\"open").unwrap_err().contains("quote"));
        assert!(split_args("   ").unwrap_err().contains("usage"));
        assert_eq!(escape("my file's.pdf"), "my\\ file\\'s.pdf");
        assert_eq!(s(&escape("a b\\c")).0, "a b\\c", "escape round-trips");
    }

    #[test]
    fn paths_resolve_against_home_and_the_working_directory() {
        let p = places();
        assert_eq!(resolve("~/x.pdf", &p).unwrap(), Path::new("/home/al/x.pdf"));
        assert_eq!(resolve("~", &p).unwrap(), Path::new("/home/al"));
        assert_eq!(resolve("x.pdf", &p).unwrap(), Path::new("/work/here/x.pdf"));
        assert_eq!(resolve("/etc/x", &p).unwrap(), Path::new("/etc/x"));
        assert_eq!(
            resolve("~bob/x", &p).unwrap(),
            Path::new("/work/here/~bob/x"),
            "only our own ~"
        );
        let homeless = Places { home: None, ..p };
        assert!(resolve("~/x", &homeless).is_err());
    }

    #[test]
    fn tab_completes_paths() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["report.pdf", "report-2.pdf", "photo one.png", ".hidden"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("pics")).unwrap();
        let p = Places {
            cwd: dir.path().to_owned(),
            ..places()
        };
        let c = |w: &str| complete_path(w, &p, list_dir);
        // A common prefix, and the list.
        let r = c("rep").unwrap();
        assert_eq!(r.replacement, "report");
        assert_eq!(r.matches, ["report-2.pdf", "report.pdf"]);
        assert!(!r.done);
        // One file: done, spaces escaped.
        let r = c("pho").unwrap();
        assert_eq!((r.replacement.as_str(), r.done), ("photo\\ one.png", true));
        // A typed escape or quote is read as the name it stands for.
        assert_eq!(c("photo\\ o").unwrap().replacement, "photo\\ one.png");
        assert_eq!(c("\"photo o").unwrap().replacement, "photo\\ one.png");
        // A directory gets its slash and is not done.
        let r = c("pi").unwrap();
        assert_eq!((r.replacement.as_str(), r.done), ("pics/", false));
        // Hidden files only when asked for.
        assert_eq!(c(".h").unwrap().replacement, ".hidden");
        assert!(c("").unwrap().matches.iter().all(|m| !m.starts_with('.')));
        assert!(c("zzz").is_none());
        // Absolute and `~` directories, kept as typed.
        let abs = format!("{}/rep", dir.path().display());
        assert_eq!(
            c(&abs).unwrap().replacement,
            format!("{}/report", escape(&dir.path().display().to_string()))
        );
        let home = Places {
            home: Some(dir.path().to_owned()),
            ..p.clone()
        };
        let r = complete_path("~/pi", &home, list_dir).unwrap();
        assert_eq!(r.replacement, "~/pics/");
        assert!(complete_path("/nonexistent-dir/x", &p, list_dir).is_none());
        assert!(c("report.pdf cap").is_none(), "the caption is not a path");
    }

    #[test]
    fn pasted_and_dropped_paths() {
        let home = Some(Path::new("/home/al"));
        let p = |t: &str| pasted_path(t, home);
        assert_eq!(p("/tmp/a b.pdf"), None, "two words are text");
        assert_eq!(p("'/tmp/a b.pdf'\n"), Some("/tmp/a b.pdf".into()));
        assert_eq!(p("/tmp/a\\ b.pdf"), Some("/tmp/a b.pdf".into()));
        assert_eq!(p("\"/tmp/a b.pdf\""), Some("/tmp/a b.pdf".into()));
        assert_eq!(p("file:///tmp/a%20b.pdf"), Some("/tmp/a b.pdf".into()));
        assert_eq!(p("file://localhost/tmp/x"), Some("/tmp/x".into()));
        assert_eq!(p("file://elsewhere/tmp/x"), None);
        assert_eq!(p("file:///tmp/%zz"), None);
        assert_eq!(p("~/x.png"), Some("/home/al/x.png".into()));
        assert_eq!(p("relative.png"), None);
        assert_eq!(p("/tmp/a\n/tmp/b"), None, "several lines are text");
        assert_eq!(p("hello"), None);

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("drop me.txt");
        std::fs::write(&f, b"12345").unwrap();
        let quoted = format!("'{}' ", f.display());
        assert_eq!(
            dropped_file(&quoted, None),
            Some(PastedFile { path: f, size: 5 })
        );
        let d = format!("{}", dir.path().display());
        assert_eq!(dropped_file(&d, None), None, "a directory is not offered");
        assert_eq!(dropped_file("/nonexistent/x", None), None);
    }

    #[test]
    fn sizes_names_and_targets() {
        assert!(previewable("image/PNG"));
        assert!(!previewable("image/svg+xml"));
    }
}
