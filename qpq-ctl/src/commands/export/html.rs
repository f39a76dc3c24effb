//! The HTML export: one self-contained page per conversation, to read in
//! any browser. Its style is inline, light or dark as the browser prefers
//! (`prefers-color-scheme`); it has no script and loads nothing from
//! elsewhere — its Content-Security-Policy allows styles inline and images
//! from the export's own files only, so even a mistake in escaping could not
//! run or fetch anything. Downloaded pictures are shown with `<img>` from
//! their relative path, other files linked.
//!
//! Every string from a peer (messages, names, file names, reactions, the
//! group's name in the title) is HTML-escaped, and control and bidi
//! characters show as U+FFFD. Times are local with their UTC offset; each
//! `<time>` carries the UTC instant too.

use std::io::{self, Write};

use quicproquo_protocol::ipc::values::{Attachment, MessageVersion};

use super::files::{is_image, size, url_path};
use super::{local_time, state_note, Entry, FileOutcome, Head};
use crate::output::{rfc3339, sanitize, sanitize_line, word};

const STYLE: &str = "
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1d1f23; --dim: #646a73;
  --accent: #2557a7; --quote: #f1f3f5; --line: #dde1e6; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #16181c; --fg: #e4e6ea; --dim: #9aa1ab; --accent: #86a9ff;
    --quote: #23262c; --line: #30343b; }
}
body { background: var(--bg); color: var(--fg); margin: 0 auto; max-width: 46rem;
  padding: 1rem 1.25rem 3rem; font: 15px/1.5 system-ui, -apple-system, sans-serif; }
h1 { font-size: 1.4rem; margin: .5rem 0 .25rem; overflow-wrap: anywhere; }
.about { color: var(--dim); font-size: .9em; margin: 0 0 1rem; }
article { border-top: 1px solid var(--line); padding: .6rem 0; }
.meta { color: var(--dim); font-size: .85em; }
.sender { color: var(--accent); font-weight: 600; }
.note { font-style: italic; }
.text { margin: .2rem 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.deleted, .notice { color: var(--dim); font-style: italic; }
blockquote { margin: .3rem 0; padding: .2rem .6rem; background: var(--quote);
  border-left: 3px solid var(--line); border-radius: 3px; }
blockquote a { color: inherit; }
.file { margin: .3rem 0; }
.file img { display: block; max-width: 100%; max-height: 24rem; height: auto;
  margin: .3rem 0; border-radius: 4px; }
.file .missing { color: var(--dim); font-style: italic; }
.reactions { margin: .2rem 0; font-size: .9em; }
.reactions span { display: inline-block; margin-right: .5rem; padding: 0 .4rem;
  border: 1px solid var(--line); border-radius: 1rem; }
details { color: var(--dim); font-size: .9em; }
details p { white-space: pre-wrap; margin: .2rem 0; }
a { color: var(--accent); }
";

/// Styles inline, images from the export's files, nothing else.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' file:; \
                      base-uri 'none'; form-action 'none'";

pub fn head(w: &mut dyn Write, head: &Head<'_>) -> io::Result<()> {
    let c = head.conversation;
    let name = escape(&sanitize_line(&c.name));
    let members: Vec<String> = c
        .members
        .iter()
        .map(|m| escape(&sanitize_line(m)))
        .collect();
    write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{name} — quicproquo</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>{name}</h1>\n<p class=\"about\">{kind} · members: {members} · \
         {count} message{s} · exported by {account} on {at}. Times are local, with their \
         offset from UTC.</p>\n</header>\n<main>\n",
        kind = word(&c.kind),
        members = members.join(", "),
        count = head.messages,
        s = if head.messages == 1 { "" } else { "s" },
        account = escape(&sanitize_line(head.account)),
        at = time(head.exported_ms),
    )
}

pub fn message(w: &mut dyn Write, entry: &Entry<'_>) -> io::Result<()> {
    let m = entry.message;
    let sender = if m.sender.is_empty() {
        "<span class=\"notice\">quicproquo notice</span>".to_owned()
    } else {
        format!(
            "<span class=\"sender\">{}</span>",
            escape(&sanitize_line(&m.sender))
        )
    };
    let mut notes = String::new();
    if m.meta.edited {
        notes.push_str(" · <span class=\"note\">edited</span>");
    }
    if let Some(note) = state_note(m) {
        notes.push_str(&format!(
            " · <span class=\"note\">{}</span>",
            escape(&sanitize_line(&note))
        ));
    }
    // Message ids are 32 hex digits: safe in an attribute as they are.
    write!(
        w,
        "<article id=\"m-{}\">\n<div class=\"meta\">{sender} {}{notes}</div>\n",
        m.id,
        time(m.timestamp_ms)
    )?;
    if let Some(q) = &m.meta.reply_to {
        let excerpt = if q.missing {
            "<i>(unknown message)</i>".to_owned()
        } else {
            escape(&sanitize_line(&q.excerpt))
        };
        writeln!(
            w,
            "<blockquote><a href=\"#m-{}\">{}</a>: {excerpt}</blockquote>",
            q.id,
            escape(&sanitize_line(&q.sender))
        )?;
    }
    if m.meta.deleted {
        writeln!(w, "<p class=\"text deleted\">(deleted by its sender)</p>")?;
    } else if !m.text.is_empty() {
        writeln!(w, "<p class=\"text\">{}</p>", escape(&sanitize(&m.text)))?;
    }
    if let (Some(a), false) = (&m.meta.attachment, m.meta.deleted) {
        attachment(w, a, entry.file)?;
    }
    if !m.meta.reactions.is_empty() {
        w.write_all(b"<div class=\"reactions\">")?;
        for r in &m.meta.reactions {
            let by: Vec<String> = r.by.iter().map(|u| escape(&sanitize_line(u))).collect();
            write!(
                w,
                "<span>{} {}</span>",
                escape(&sanitize_line(&r.emoji)),
                by.join(", ")
            )?;
        }
        w.write_all(b"</div>\n")?;
    }
    if !entry.edits.is_empty() {
        edits(w, entry.edits)?;
    }
    w.write_all(b"</article>\n")
}

pub fn tail(w: &mut dyn Write) -> io::Result<()> {
    w.write_all(b"</main>\n</body>\n</html>\n")
}

fn attachment(w: &mut dyn Write, a: &Attachment, file: &FileOutcome) -> io::Result<()> {
    let name = escape(&sanitize_line(&a.name));
    let facts = format!(
        "{} · {}",
        size(a.size),
        escape(&sanitize_line(&a.content_type))
    );
    w.write_all(b"<div class=\"file\">")?;
    match file {
        FileOutcome::Saved { link, .. } => {
            // Percent-encoded: only `-._~/`, letters and digits remain,
            // none of which can leave the attribute.
            let url = url_path(link);
            if is_image(&a.content_type) {
                write!(
                    w,
                    "<a href=\"{url}\"><img src=\"{url}\" alt=\"{name}\"></a>"
                )?;
            }
            write!(w, "📎 <a href=\"{url}\">{name}</a> · {facts}")?;
        }
        FileOutcome::NotSaved { reason } => write!(
            w,
            "📎 {name} · {facts} · <span class=\"missing\">not downloaded: {}</span>",
            escape(&sanitize_line(reason))
        )?,
        FileOutcome::Skipped => write!(
            w,
            "📎 {name} · {facts} · <span class=\"missing\">not downloaded</span>"
        )?,
        FileOutcome::NoFile => {}
    }
    w.write_all(b"</div>\n")
}

fn edits(w: &mut dyn Write, versions: &[MessageVersion]) -> io::Result<()> {
    writeln!(
        w,
        "<details><summary>{} earlier version{}</summary>",
        versions.len(),
        if versions.len() == 1 { "" } else { "s" }
    )?;
    for v in versions {
        writeln!(
            w,
            "<p>{}: {}</p>",
            time(v.timestamp_ms),
            escape(&sanitize(&v.text))
        )?;
    }
    w.write_all(b"</details>\n")
}

/// A `<time>` showing local time, carrying the UTC instant.
fn time(ms: u64) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        rfc3339(ms),
        local_time(ms)
    )
}

/// `text` safe as HTML element content and inside a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_cannot_become_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("plain 👋"), "plain 👋");
    }
}
