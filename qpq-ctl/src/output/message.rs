//! The one shape a message has in qpq-ctl's output, whichever command
//! printed it (`send`, `history`, `search`, `recv`).
//!
//! JSON: the IPC `Message` fields (`id`, `conversation`, `sender`,
//! `timestamp_ms`, `text`, `outgoing`, `state`, `failure` when failed) plus
//! `conversation_name`, `timestamp` (RFC 3339, UTC) and, from `recv`, `seq`.
//! People get `TIME  [CONVERSATION]  SENDER  TEXT`, columns aligned within
//! one batch and the lines of a multi-line message indented under the
//! first; a failed message ends with why and its id, for `retry` or
//! `discard`.

use quicproquo_protocol::ipc::values::{ConversationId, Message, MessageId, MessageState};
use serde::Serialize;

use super::{local_time, rfc3339, sanitize, sanitize_line, width, Paint, Style};

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
        }
    }
}

/// Messages for people; `with_conversation` adds the conversation column.
pub fn render(views: &[MessageView<'_>], with_conversation: bool, style: &Style) -> String {
    struct Row {
        time: String,
        conversation: String,
        sender: String,
        text: String,
        /// After the text: `(queued)`, or why it failed.
        note: Option<(Paint, String)>,
    }
    let rows: Vec<Row> = views
        .iter()
        .map(|v| Row {
            time: local_time(v.message.timestamp_ms),
            conversation: sanitize_line(v.conversation_name),
            sender: sanitize_line(&v.message.sender),
            text: sanitize(&v.message.text),
            note: note(v.message),
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
        if with_conversation {
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
        let mut lines = r.text.split('\n');
        out.push_str(&prefix);
        out.push_str(lines.next().unwrap_or_default());
        for line in lines {
            out.push('\n');
            out.push_str(&pad);
            out.push_str(line);
        }
        if let Some((paint, note)) = &r.note {
            out.push(' ');
            out.push_str(&style.paint(*paint, note));
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
}

/// What follows the text of our message that has not gone: `(queued)`,
/// for a failed one why (the daemon's words, sanitized) and what to do, or
/// `(expired: …)`.
fn note(m: &Message) -> Option<(Paint, String)> {
    if !m.outgoing {
        return None;
    }
    match m.state {
        MessageState::Queued => Some((Paint::Dim, "(queued)".into())),
        MessageState::Failed => Some((
            Paint::Warn,
            format!(
                "(failed: {}; qpq-ctl retry|discard {})",
                sanitize_line(m.failure.as_deref().unwrap_or("refused")),
                m.id
            ),
        )),
        MessageState::Expired => Some((
            Paint::Warn,
            "(expired: a recipient did not fetch it in time and the server deleted it)".into(),
        )),
        _ => None,
    }
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
        let text = render(&views, true, &style);
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
        let text = render(&views, false, &style);
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
}
