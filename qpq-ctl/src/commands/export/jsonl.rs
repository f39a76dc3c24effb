//! The JSON-lines export: for programs. The first line describes the
//! conversation (`"type": "conversation"`: the IPC `Conversation`, who
//! exported it and when, how many messages follow); then one line per
//! message, oldest first (`"type": "message"`): the IPC `Message` as the
//! daemon gives it, plus `timestamp` (RFC 3339, UTC), `edits` (the earlier
//! versions, when edited) and, on an attachment, `export_path` (the file,
//! relative to the export's directory; `state` and `path` then say where it
//! was downloaded) or `export_error` (why it is not there). Keys are in alphabetical order; text is as the peer wrote it
//! (JSON escapes what needs escaping).

use std::io::{self, Write};

use serde_json::{json, Map, Value};

use super::{Entry, FileOutcome, Head};
use crate::output::rfc3339;

/// Bumped when a field changes meaning (fields are only ever added).
const VERSION: u32 = 1;

pub fn head(w: &mut dyn Write, head: &Head<'_>) -> io::Result<()> {
    line(
        w,
        &json!({
            "type": "conversation",
            "format": "qpq-export",
            "version": VERSION,
            "conversation": head.conversation,
            "exported_by": head.account,
            "exported_at": rfc3339(head.exported_ms),
            "messages": head.messages,
        }),
    )
}

pub fn message(w: &mut dyn Write, entry: &Entry<'_>) -> io::Result<()> {
    let m = entry.message;
    let mut value = serde_json::to_value(m).map_err(io::Error::other)?;
    let Some(object) = value.as_object_mut() else {
        return Err(io::Error::other("a message is not a JSON object"));
    };
    object.insert("type".into(), "message".into());
    object.insert("timestamp".into(), rfc3339(m.timestamp_ms).into());
    if !entry.edits.is_empty() {
        let edits = serde_json::to_value(entry.edits).map_err(io::Error::other)?;
        object.insert("edits".into(), edits);
    }
    if let Some(Value::Object(attachment)) = object.get_mut("attachment") {
        annotate(attachment, entry.file);
    }
    line(w, &value)
}

fn annotate(attachment: &mut Map<String, Value>, file: &FileOutcome) {
    match file {
        FileOutcome::Saved { link, path } => {
            // The message was read before its file was fetched: it is here now.
            attachment.insert("export_path".into(), link.clone().into());
            attachment.insert("state".into(), "downloaded".into());
            attachment.insert("path".into(), path.clone().into());
        }
        FileOutcome::NotSaved { reason } => {
            attachment.insert("export_error".into(), reason.clone().into());
        }
        FileOutcome::NoFile | FileOutcome::Skipped => {}
    }
}

fn line(w: &mut dyn Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *w, value).map_err(io::Error::other)?;
    w.write_all(b"\n")
}
