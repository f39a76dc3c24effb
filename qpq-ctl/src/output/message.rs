//! The one shape a message has in qpq-ctl's output, whichever command
//! printed it (`send`, `history`, `search`, `recv`).
//!
//! JSON: the IPC `Message` fields (`id`, `conversation`, `sender`,
//! `timestamp_ms`, `text`, `outgoing`, `state`) plus `conversation_name`,
//! `timestamp` (RFC 3339, UTC) and, from `recv`, `seq`. People get
//! `TIME  [CONVERSATION]  SENDER  TEXT`, columns aligned within one batch and
//! the lines of a multi-line message indented under the first.

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
        queued: bool,
    }
    let rows: Vec<Row> = views
        .iter()
        .map(|v| Row {
            time: local_time(v.message.timestamp_ms),
            conversation: sanitize_line(v.conversation_name),
            sender: sanitize_line(&v.message.sender),
            text: sanitize(&v.message.text),
            queued: v.message.outgoing && v.message.state == MessageState::Queued,
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
        if r.queued {
            out.push(' ');
            out.push_str(&style.paint(Paint::Dim, "(queued)"));
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
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
}
