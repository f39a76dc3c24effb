//! The one shape a message has in qpq-ctl's output, whichever command
//! printed it (`send`, `history`, `search`, `recv`).
//!
//! JSON: the IPC `Message` fields (`id`, `conversation`, `sender`,
//! `timestamp_ms`, `text`, `outgoing`, `state`, `failure` when failed, and
//! issue 17's `reply_to`, `reactions`, `edited`, `deleted`, `mentions_me`,
//! `expires_at_ms`, `read_by`, each only when not empty; issue 18's
//! `attachment` {name, size, content_type, sha256, state, path?, error?})
//! plus
//! `conversation_name`, `timestamp` (RFC 3339, UTC) and, from `recv`, `seq`
//! and `type: "message"` (recv's lines also carry events).
//! People get `TIME  [ID]  [CONVERSATION]  SENDER  TEXT`, columns aligned
//! within one batch and the lines of a multi-line message indented under
//! the first. A reply starts with the quoted line (`> alice: first words`),
//! an attachment is a line of its own before its caption (`📎 report.pdf
//! (2.1 MB, application/pdf)`, then how its transfer stands when that is
//! news: `uploading`, `downloaded to PATH`, `corrupt: …`),
//! reactions follow the text on a line of their own (`👍 2 alice, bob`),
//! and notes end it: `(edited)`, `(read by …)`, `(disappears …)`; a failed
//! message ends with why and its id, for `retry` or `discard`.

use quicproquo_protocol::ipc::values::{
    Attachment, ConversationId, Message, MessageId, MessageMeta, MessageState, Quote, Reaction,
    TransferState,
};
use serde::Serialize;

use super::{local_time, rfc3339, sanitize, sanitize_line, size, width, Paint, Style};

/// A message with what the daemon's `Message` lacks for printing.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    pub message: &'a Message,
    pub conversation_name: &'a str,
    /// The notification's sequence number (`recv` only).
    pub seq: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct MessageJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub conversation: ConversationId,
    pub conversation_name: &'a str,
    pub id: MessageId,
    pub sender: &'a str,
    pub timestamp: String,
    pub timestamp_ms: u64,
    pub text: &'a str,
    pub outgoing: bool,
    pub state: MessageState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'a str>,
    #[serde(flatten)]
    pub meta: &'a MessageMeta,
    /// `message` in `recv`'s output, where events are lines too.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
}

impl<'a> MessageView<'a> {
    pub fn json(&self) -> MessageJson<'a> {
        let m = self.message;
        MessageJson {
            seq: self.seq,
            conversation: m.conversation,
            conversation_name: self.conversation_name,
            id: m.id,
            sender: &m.sender,
            timestamp: rfc3339(m.timestamp_ms),
            timestamp_ms: m.timestamp_ms,
            text: &m.text,
            outgoing: m.outgoing,
            state: m.state,
            failure: m.failure.as_deref(),
            meta: &m.meta,
            kind: self.seq.map(|_| "message"),
        }
    }
}

/// Which columns people get.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns {
    /// The conversation's name (messages of several conversations).
    pub conversation: bool,
    /// Each message's id (`--ids`).
    pub ids: bool,
}

/// Messages for people.
pub fn render(views: &[MessageView<'_>], columns: Columns, style: &Style) -> String {
    struct Row {
        time: String,
        id: String,
        conversation: String,
        sender: String,
        /// Lines: the quote, the text (or the deleted marker), reactions.
        lines: Vec<(Option<Paint>, String)>,
        /// Which of `lines` is the text.
        text_at: usize,
        /// After the text: `(edited)`, `(queued)`, why it failed…
        notes: Vec<(Paint, String)>,
    }
    let rows: Vec<Row> = views
        .iter()
        .map(|v| Row {
            time: local_time(v.message.timestamp_ms),
            id: v.message.id.to_string(),
            conversation: sanitize_line(v.conversation_name),
            sender: sanitize_line(&v.message.sender),
            lines: body(v.message),
            text_at: text_at(v.message),
            notes: notes(v.message),
        })
        .collect();
    let conv_w = rows
        .iter()
        .map(|r| width(&r.conversation))
        .max()
        .unwrap_or(0);
    let sender_w = rows.iter().map(|r| width(&r.sender)).max().unwrap_or(0);
    let mut out = String::new();
    for r in &rows {
        let mut prefix = style.paint(Paint::Dim, &r.time);
        let mut indent = width(&r.time) + 2;
        prefix.push_str("  ");
        if columns.ids {
            prefix.push_str(&style.paint(Paint::Dim, &r.id));
            prefix.push_str("  ");
            indent += r.id.len() + 2;
        }
        if columns.conversation {
            prefix.push_str(&style.paint(Paint::Conversation, &r.conversation));
            prefix.extend(std::iter::repeat_n(
                ' ',
                conv_w - width(&r.conversation) + 2,
            ));
            indent += conv_w + 2;
        }
        prefix.push_str(&style.paint(Paint::Name, &r.sender));
        prefix.extend(std::iter::repeat_n(' ', sender_w - width(&r.sender) + 2));
        indent += sender_w + 2;
        let pad = " ".repeat(indent);
        out.push_str(&prefix);
        let mut first = true;
        for (i, (paint, text)) in r.lines.iter().enumerate() {
            for line in text.split('\n') {
                if !first {
                    out.push('\n');
                    out.push_str(&pad);
                }
                first = false;
                match paint {
                    Some(p) => out.push_str(&style.paint(*p, line)),
                    None => out.push_str(line),
                }
            }
            // The notes close the text, before the reactions' line.
            if i == r.text_at {
                for (paint, note) in &r.notes {
                    out.push(' ');
                    out.push_str(&style.paint(*paint, note));
                }
            }
            let trimmed = out.trim_end_matches(' ').len();
            out.truncate(trimmed);
        }
        out.push('\n');
    }
    out
}

/// The lines of a message: the quote of what it answers, its text (or that
/// it was deleted), its reactions. The peer's words are sanitized.
fn body(m: &Message) -> Vec<(Option<Paint>, String)> {
    let mut lines = Vec::new();
    if let (true, Some(q)) = (quotes(m), &m.meta.reply_to) {
        lines.push((Some(Paint::Dim), quote(q)));
    }
    if m.meta.deleted {
        lines.push((Some(Paint::Dim), "(message deleted)".to_owned()));
    } else {
        let paint = m.meta.mentions_me.then_some(Paint::Mention);
        match &m.meta.attachment {
            Some(a) => {
                lines.push((Some(Paint::Bold), attachment(a)));
                if !m.text.is_empty() {
                    lines.push((paint, sanitize(&m.text)));
                }
            }
            None => lines.push((paint, sanitize(&m.text))),
        }
    }
    if !m.meta.reactions.is_empty() {
        lines.push((Some(Paint::Reactions), reactions(&m.meta.reactions)));
    }
    lines
}

/// Which of [`body`]'s lines the notes follow: the text, or an
/// attachment's line when it has no caption.
fn text_at(m: &Message) -> usize {
    let caption = !m.meta.deleted && m.meta.attachment.is_some() && !m.text.is_empty();
    usize::from(quotes(m)) + usize::from(caption)
}

/// `📎 report.pdf (2.1 MB, application/pdf)`, and where its bytes are when
/// that is news (not for one that simply waits on the server). Name, type
/// and error come from the sender or the network: sanitized.
pub fn attachment(a: &Attachment) -> String {
    let mut line = format!(
        "📎 {} ({}, {})",
        sanitize_line(&a.name),
        size(a.size),
        sanitize_line(&a.content_type)
    );
    let error = || {
        a.error
            .as_deref()
            .map(|e| format!(": {}", sanitize_line(e)))
            .unwrap_or_default()
    };
    let state = match a.state {
        TransferState::Uploaded | TransferState::Available => String::new(),
        TransferState::Uploading => "uploading".to_owned(),
        TransferState::Downloading => "downloading".to_owned(),
        TransferState::Downloaded => match &a.path {
            Some(path) => format!("downloaded to {}", sanitize_line(path)),
            None => "downloaded".to_owned(),
        },
        TransferState::Failed => format!("transfer failed{}", error()),
        TransferState::Corrupt => format!("corrupt{}", error()),
        TransferState::Expired => "expired: the server no longer has it".to_owned(),
    };
    if !state.is_empty() {
        line.push_str(" [");
        line.push_str(&state);
        line.push(']');
    }
    line
}

/// Whether a message shows what it answers: not once it was deleted
/// (nothing of it is left to put in context).
fn quotes(m: &Message) -> bool {
    m.meta.reply_to.is_some() && !m.meta.deleted
}

/// `> alice: the first words`, or `> (unknown message)`.
pub fn quote(q: &Quote) -> String {
    let sender = sanitize_line(&q.sender);
    if q.missing {
        format!("> {sender}: (unknown message)")
    } else if q.excerpt.is_empty() {
        format!("> {sender}: (message deleted)")
    } else {
        format!("> {sender}: {}", sanitize_line(&q.excerpt))
    }
}

/// `👍 2 alice, bob  🎉 1 carol`.
pub fn reactions(all: &[Reaction]) -> String {
    all.iter()
        .map(|r| {
            let by: Vec<String> = r.by.iter().map(|b| sanitize_line(b)).collect();
            format!(
                "{} {} {}",
                sanitize_line(&r.emoji),
                r.by.len(),
                by.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// What follows the text: `(edited)`; for our message that has not gone
/// `(queued)`, for a failed one why (the daemon's words, sanitized) and what
/// to do, or `(expired: …)`; who read it; when it disappears.
fn notes(m: &Message) -> Vec<(Paint, String)> {
    let mut notes = Vec::new();
    if m.meta.edited && !m.meta.deleted {
        notes.push((Paint::Dim, "(edited)".to_owned()));
    }
    if m.outgoing {
        match m.state {
            MessageState::Queued => notes.push((Paint::Dim, "(queued)".into())),
            MessageState::Failed => notes.push((
                Paint::Warn,
                format!(
                    "(failed: {}; qpq-ctl retry|discard {})",
                    sanitize_line(m.failure.as_deref().unwrap_or("refused")),
                    m.id
                ),
            )),
            MessageState::Expired => notes.push((
                Paint::Warn,
                "(expired: a recipient did not fetch it in time and the server deleted it)".into(),
            )),
            _ => {}
        }
    }
    if !m.meta.read_by.is_empty() {
        let by: Vec<String> = m.meta.read_by.iter().map(|b| sanitize_line(b)).collect();
        notes.push((Paint::Dim, format!("(read by {})", by.join(", "))));
    }
    if let Some(at) = m.meta.expires_at_ms {
        notes.push((Paint::Dim, format!("(disappears {})", local_time(at))));
    }
    notes
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::ipc::values::MessageState;

    use super::*;

    fn msg(sender: &str, text: &str) -> Message {
        Message {
            id: MessageId([1; 16]),
            conversation: ConversationId([2; 16]),
            sender: sender.into(),
            timestamp_ms: 1_700_000_000_000,
            text: text.into(),
            outgoing: false,
            state: MessageState::Received,
            failure: None,
            meta: Default::default(),
        }
    }

    #[test]
    fn json_has_the_contract_fields() {
        let m = msg("bob", "hi");
        let v = MessageView {
            message: &m,
            conversation_name: "team",
            seq: Some(7),
        };
        let json = serde_json::to_value(v.json()).unwrap();
        for key in [
            "seq",
            "conversation",
            "conversation_name",
            "id",
            "sender",
            "timestamp",
            "timestamp_ms",
            "text",
            "outgoing",
            "state",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert_eq!(json["conversation"], "02".repeat(16));
        assert_eq!(json["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(json["state"], "received");
    }

    #[test]
    fn columns_align_and_lines_indent() {
        let a = msg("bob", "one\ntwo");
        let b = msg("carol", "three");
        let views = [
            MessageView {
                message: &a,
                conversation_name: "team",
                seq: None,
            },
            MessageView {
                message: &b,
                conversation_name: "世界",
                seq: None,
            },
        ];
        let style = Style {
            json: false,
            color: false,
        };
        let text = render(
            &views,
            Columns {
                conversation: true,
                ids: false,
            },
            &style,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let col = |l: &str, needle: &str| width(&l[..l.find(needle).unwrap()]);
        assert_eq!(col(lines[0], "one"), col(lines[2], "three"));
        assert_eq!(col(lines[0], "one"), col(lines[1], "two"));
        assert_eq!(col(lines[0], "bob"), col(lines[2], "carol"));
    }

    #[test]
    fn a_failed_message_says_why_and_how_to_retry_it() {
        let mut m = msg("alice", "hello club");
        m.outgoing = true;
        m.state = MessageState::Failed;
        m.failure = Some("E020: no such user\u{1b}[2J".into());
        let views = [MessageView {
            message: &m,
            conversation_name: "club",
            seq: None,
        }];
        let style = Style {
            json: false,
            color: false,
        };
        let text = render(&views, Columns::default(), &style);
        assert!(
            text.contains("hello club (failed: E020: no such user")
                && text.contains(&format!("qpq-ctl retry|discard {}", m.id)),
            "{text}"
        );
        assert!(
            !text.contains('\u{1b}'),
            "the reason is sanitized: {text:?}"
        );
        let json = serde_json::to_value(views[0].json()).unwrap();
        assert_eq!(json["state"], "failed");
        assert!(json["failure"].as_str().unwrap().starts_with("E020"));
        let sent = msg("bob", "hi");
        let json = serde_json::to_value(
            MessageView {
                message: &sent,
                conversation_name: "c",
                seq: None,
            }
            .json(),
        )
        .unwrap();
        assert!(
            json.get("failure").is_none(),
            "only a failed message has one"
        );
    }

    const PLAIN: Style = Style {
        json: false,
        color: false,
    };

    fn views_in_team<'a>(all: &[&'a Message]) -> Vec<MessageView<'a>> {
        all.iter()
            .map(|m| MessageView {
                message: m,
                conversation_name: "team",
                seq: None,
            })
            .collect()
    }

    #[test]
    fn attachments_show_as_a_line_before_their_caption() {
        let file = |state, name: &str| Attachment {
            name: name.into(),
            size: 2_100_000,
            content_type: "application/pdf".into(),
            sha256: "ab".repeat(32),
            state,
            path: None,
            error: None,
        };
        let mut captioned = msg("bob", "the report");
        captioned.meta.attachment = Some(Box::new(file(TransferState::Available, "report.pdf")));
        captioned.meta.edited = true;
        let mut bare = msg("bob", "");
        let mut evil = file(TransferState::Corrupt, "evil\u{1b}[2J\u{202E}fdp.exe");
        evil.content_type = "text/x\u{1b}]0;".into();
        evil.error = Some("chunk 3\nhint: rm".into());
        bare.meta.attachment = Some(Box::new(evil));
        let mut mine = msg("alice", "");
        mine.outgoing = true;
        mine.state = MessageState::Queued;
        mine.meta.attachment = Some(Box::new(file(TransferState::Uploading, "a.pdf")));
        let all = [&captioned, &bare, &mine];
        let views = views_in_team(&all);
        let style = PLAIN;
        let text = render(&views, Columns::default(), &style);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].ends_with("bob    📎 report.pdf (2.1 MB, application/pdf)"),
            "{text}"
        );
        assert!(lines[1].ends_with("       the report (edited)"), "{text}");
        assert!(
            lines[2].ends_with(
                "bob    📎 evil\u{FFFD}[2J\u{FFFD}fdp.exe (2.1 MB, text/x\u{FFFD}]0;) \
                 [corrupt: chunk 3\u{FFFD}hint: rm]"
            ),
            "{text}"
        );
        assert!(
            lines[3].ends_with("alice  📎 a.pdf (2.1 MB, application/pdf) [uploading] (queued)"),
            "{text}"
        );
        let json = serde_json::to_value(views[0].json()).unwrap();
        assert_eq!(json["attachment"]["name"], "report.pdf");
        assert_eq!(json["attachment"]["size"], 2_100_000);
        assert_eq!(json["attachment"]["state"], "available");
        assert_eq!(json["attachment"]["sha256"], "ab".repeat(32));
        assert!(json["attachment"].get("path").is_none());
        assert_eq!(json["text"], "the report");
    }

    #[test]
    fn replies_reactions_edits_and_deletes_show() {
        let mut reply = msg("bob", "sure, at 3");
        reply.meta.reply_to = Some(Quote {
            id: MessageId([7; 16]),
            sender: "alice".into(),
            excerpt: "meet today?\u{1b}[2J".into(),
            missing: false,
        });
        reply.meta.edited = true;
        reply.meta.reactions = vec![
            Reaction {
                emoji: "👍".into(),
                by: vec!["alice".into(), "carol".into()],
            },
            Reaction {
                emoji: "🎉".into(),
                by: vec!["dave".into()],
            },
        ];
        let mut gone = msg("alice", "");
        gone.meta.deleted = true;
        gone.meta.edited = true;
        gone.meta.reply_to = reply.meta.reply_to.clone();
        let mut mine = msg("alice", "see you");
        mine.outgoing = true;
        mine.state = MessageState::Sent;
        mine.meta.read_by = vec!["bob".into()];
        mine.meta.expires_at_ms = Some(1_700_086_400_000);
        let mut unknown = msg("carol", "what?");
        unknown.meta.reply_to = Some(Quote {
            id: MessageId([8; 16]),
            sender: "bob".into(),
            excerpt: String::new(),
            missing: true,
        });
        let all = [&reply, &gone, &mine, &unknown];
        let views = views_in_team(&all);
        let style = PLAIN;
        let text = render(&views, Columns::default(), &style);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert!(
            lines[0].ends_with("bob    > alice: meet today?\u{FFFD}[2J"),
            "{text}"
        );
        assert!(lines[1].ends_with("       sure, at 3 (edited)"), "{text}");
        assert!(
            lines[2].ends_with("       👍 2 alice, carol  🎉 1 dave"),
            "{text}"
        );
        let col = |l: &str, needle: &str| width(&l[..l.find(needle).unwrap()]);
        assert_eq!(col(lines[0], ">"), col(lines[1], "sure"));
        assert_eq!(col(lines[1], "sure"), col(lines[2], "👍"));
        assert!(
            lines[3].ends_with("alice  (message deleted)"),
            "no (edited): {text}"
        );
        let disappears = local_time(1_700_086_400_000);
        assert!(
            lines[4].ends_with(&format!(
                "alice  see you (read by bob) (disappears {disappears})"
            )),
            "{text}"
        );
        assert!(
            lines[5].ends_with("carol  > bob: (unknown message)"),
            "{text}"
        );
        assert!(lines[6].ends_with("       what?"), "{text}");

        let with_ids = render(
            &views[..1],
            Columns {
                conversation: true,
                ids: true,
            },
            &style,
        );
        assert!(
            with_ids.contains(&format!("  {}  team  bob  >", "01".repeat(16))),
            "{with_ids}"
        );

        let json = serde_json::to_value(views[0].json()).unwrap();
        assert_eq!(json["reply_to"]["sender"], "alice");
        assert_eq!(json["reactions"][0]["by"][1], "carol");
        assert_eq!(json["edited"], true);
        assert!(json.get("deleted").is_none(), "empty fields stay absent");
        assert!(json.get("type").is_none(), "only recv's lines are typed");
        let recv = MessageView {
            seq: Some(3),
            ..views[0]
        };
        assert_eq!(
            serde_json::to_value(recv.json()).unwrap()["type"],
            "message"
        );
    }
}
