//! The Markdown export: for people, readable as plain text and rendered
//! alike by CommonMark viewers. Each message is a line naming its sender
//! and local time (with its UTC offset), then the quote it answers, its
//! text, its attachment (a link to the downloaded file, an inline image for
//! pictures), its reactions and, when edited, its earlier versions.
//!
//! Text from peers (messages, names, file names, reactions) is escaped so
//! it shows as written and cannot make headings, lists, links, images,
//! code or raw HTML: every character Markdown gives meaning to anywhere is
//! backslash-escaped, block markers at the start of a line too, leading
//! spaces become no-break spaces (no indented code), control and bidi
//! characters show as U+FFFD.

use std::io::{self, Write};

use quicproquo_protocol::ipc::values::{Attachment, MessageVersion};

use super::files::{is_image, size, url_path};
use super::{local_time, state_note, Entry, FileOutcome, Head};
use crate::output::{sanitize, sanitize_line, word};

pub fn head(w: &mut dyn Write, head: &Head<'_>) -> io::Result<()> {
    let c = head.conversation;
    let members: Vec<String> = c.members.iter().map(|m| escape_line(m)).collect();
    writeln!(w, "# {}\n", escape_line(&sanitize_line(&c.name)))?;
    writeln!(
        w,
        "{} · members: {} · {} message{} · exported by {} on {}. \
         Times are local, with their offset from UTC.\n",
        word(&c.kind),
        members.join(", "),
        head.messages,
        if head.messages == 1 { "" } else { "s" },
        escape_line(head.account),
        local_time(head.exported_ms),
    )?;
    writeln!(w, "---\n")
}

pub fn message(w: &mut dyn Write, entry: &Entry<'_>) -> io::Result<()> {
    let m = entry.message;
    let mut line = if m.sender.is_empty() {
        "*quicproquo notice*".to_owned()
    } else {
        format!("**{}**", escape_line(&sanitize_line(&m.sender)))
    };
    line.push_str(&format!(" · {}", local_time(m.timestamp_ms)));
    if m.meta.edited {
        line.push_str(" · *edited*");
    }
    if let Some(note) = state_note(m) {
        line.push_str(&format!(" · *{}*", escape_line(&sanitize_line(&note))));
    }
    writeln!(w, "{line}\n")?;
    if let Some(q) = &m.meta.reply_to {
        let excerpt = if q.missing {
            "*(unknown message)*".to_owned()
        } else {
            escape_line(&sanitize_line(&q.excerpt))
        };
        writeln!(
            w,
            "> **{}**: {excerpt}\n",
            escape_line(&sanitize_line(&q.sender))
        )?;
    }
    if m.meta.deleted {
        writeln!(w, "*(deleted by its sender)*\n")?;
    } else if !m.text.is_empty() {
        writeln!(w, "{}\n", escape(&m.text))?;
    }
    if let (Some(a), false) = (&m.meta.attachment, m.meta.deleted) {
        attachment(w, a, entry.file)?;
    }
    if !m.meta.reactions.is_empty() {
        let reactions: Vec<String> = m
            .meta
            .reactions
            .iter()
            .map(|r| {
                let by: Vec<String> =
                    r.by.iter()
                        .map(|u| escape_line(&sanitize_line(u)))
                        .collect();
                format!(
                    "{} {}",
                    escape_line(&sanitize_line(&r.emoji)),
                    by.join(", ")
                )
            })
            .collect();
        writeln!(w, "{}\n", reactions.join(" · "))?;
    }
    if !entry.edits.is_empty() {
        edits(w, entry.edits)?;
    }
    Ok(())
}

fn attachment(w: &mut dyn Write, a: &Attachment, file: &FileOutcome) -> io::Result<()> {
    let name = escape_line(&sanitize_line(&a.name));
    let facts = format!(
        "{} · {}",
        size(a.size),
        escape_line(&sanitize_line(&a.content_type))
    );
    match file {
        FileOutcome::Saved { link, .. } => {
            let url = url_path(link);
            if is_image(&a.content_type) {
                writeln!(w, "![{name}]({url})\n")?;
            }
            writeln!(w, "📎 [{name}]({url}) · {facts}\n")
        }
        FileOutcome::NotSaved { reason } => writeln!(
            w,
            "📎 {name} · {facts} · *not downloaded: {}*\n",
            escape_line(&sanitize_line(reason))
        ),
        FileOutcome::Skipped => writeln!(w, "📎 {name} · {facts} · *not downloaded*\n"),
        FileOutcome::NoFile => Ok(()),
    }
}

fn edits(w: &mut dyn Write, versions: &[MessageVersion]) -> io::Result<()> {
    writeln!(w, "*Earlier versions:*\n")?;
    for v in versions {
        // A list item's later lines are indented to stay in the item.
        let text = escape(&v.text).replace('\n', "\n  ");
        writeln!(w, "- *{}*: {text}", local_time(v.timestamp_ms))?;
    }
    writeln!(w)
}

/// Peer text of any number of lines as Markdown that shows as written:
/// each line escaped ([`escape_line`]), lines kept apart by hard breaks,
/// an empty line a paragraph break.
pub fn escape(text: &str) -> String {
    let clean = sanitize(text);
    let lines: Vec<&str> = clean.split('\n').collect();
    let mut out = String::with_capacity(clean.len() + 16);
    for (i, line) in lines.iter().enumerate() {
        out.push_str(&escape_line(line));
        let Some(next) = lines.get(i + 1) else { break };
        // A backslash before a line end is a hard break, but not at the end
        // of a paragraph (it would show).
        if !line.is_empty() && !next.is_empty() {
            out.push('\\');
        }
        out.push('\n');
    }
    out
}

/// One line of peer text with everything Markdown reads escaped.
pub fn escape_line(line: &str) -> String {
    let rest = line.trim_start_matches(' ');
    let mut out: String = std::iter::repeat_n('\u{A0}', line.len() - rest.len()).collect();
    // A heading, a list item or a setext underline at the line's start.
    if rest.starts_with(['#', '-', '+', '=']) {
        out.push('\\');
    }
    // An ordered list item: up to nine digits, then `.` or `)`.
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let list_mark =
        (1..=9).contains(&digits) && matches!(rest.as_bytes().get(digits), Some(b'.' | b')'));
    for (i, c) in rest.char_indices() {
        let inline = matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '!'
        );
        if inline || (list_mark && i == digits) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_in_peer_text_shows_as_written() {
        assert_eq!(
            escape_line("plain words, e.g. this"),
            "plain words, e.g. this"
        );
        assert_eq!(escape_line("# not a heading"), "\\# not a heading");
        assert_eq!(escape_line("- not a list"), "\\- not a list");
        assert_eq!(escape_line("1. not a list"), "1\\. not a list");
        assert_eq!(escape_line("2026) neither"), "2026\\) neither");
        assert_eq!(escape_line("> no quote"), "\\> no quote");
        assert_eq!(
            escape_line("    no code"),
            "\u{A0}\u{A0}\u{A0}\u{A0}no code"
        );
        assert_eq!(
            escape_line("*b* _i_ `c` [l](u) ![i](u) <b>&amp; a|b ~s~ \\"),
            "\\*b\\* \\_i\\_ \\`c\\` \\[l\\](u) \\!\\[i\\](u) \\<b\\>\\&amp; a\\|b \\~s\\~ \\\\"
        );
    }

    #[test]
    fn lines_keep_apart() {
        assert_eq!(escape("one\ntwo"), "one\\\ntwo");
        assert_eq!(escape("one\n\ntwo"), "one\n\ntwo");
        assert_eq!(escape("esc\u{1b}[2J"), "esc\u{FFFD}\\[2J");
    }
}
