//! stderr: the error that ended a command, with its hint, and notices.
//!
//! Without `--json` an error is `qpq-ctl: error: …` plus a `hint:` line
//! (coloured on a terminal without `NO_COLOR`); with `--json` it is one
//! object, `{"error":{"exit_code","kind","message","hint","server_code"}}`,
//! so a script parsing stdout can parse stderr the same way. Writes to
//! stderr ignore failures: there is nowhere left to report them.

use std::io::{self, Write};

use serde::Serialize;

use crate::error::CtlError;
use crate::output::{sanitize_line, Paint, Style};

#[derive(Serialize)]
struct JsonError<'a> {
    error: JsonErrorBody<'a>,
}

#[derive(Serialize)]
struct JsonErrorBody<'a> {
    exit_code: u8,
    kind: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_code: Option<String>,
}

pub fn error(e: &CtlError, json: bool, no_color: bool) {
    let _ = io::stderr()
        .lock()
        .write_all(error_text(e, json, no_color).as_bytes());
}

/// What [`error`] writes. The message is made safe for a terminal: it may
/// quote the daemon, which may quote the server, and neither may move the
/// cursor, retitle the window or fake a `hint:` line.
fn error_text(e: &CtlError, json: bool, no_color: bool) -> String {
    let exit = e.exit();
    let message = sanitize_line(&e.to_string());
    if json {
        let body = JsonError {
            error: JsonErrorBody {
                exit_code: exit.code(),
                kind: exit.kind(),
                message,
                hint: e.hint(),
                server_code: e.server_code().map(|c| sanitize_line(&c)),
            },
        };
        serde_json::to_string(&body).unwrap_or_default() + "\n"
    } else {
        let style = Style::detect(false, no_color, &io::stderr());
        let mut text = format!(
            "qpq-ctl: {} {message}\n",
            style.paint(Paint::Warn, "error:")
        );
        if let Some(hint) = e.hint() {
            text.push_str(&format!("{} {hint}\n", style.paint(Paint::Bold, "hint:")));
        }
        text
    }
}

/// A line for people on stderr (progress, prompts' context).
pub fn notice(text: &str) {
    let _ = writeln!(io::stderr().lock(), "qpq-ctl: {text}");
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::errors::{ErrorCode, WireError};
    use quicproquo_protocol::ipc::client::CallError;
    use quicproquo_protocol::ipc::ErrorObject;

    use super::*;

    /// Regression: a hostile server's error text (relayed by the daemon)
    /// reached the terminal as it was, escape sequences and all.
    #[test]
    fn a_servers_escape_sequences_do_not_reach_the_terminal() {
        let hostile = "login failed\x1b]0;pwned\x07\x1b[2J\u{9b}31m\u{202E}txt\nhint: run rm -rf ~";
        let mut obj = ErrorObject::server_refused(&WireError::bare(ErrorCode::LoginFailed));
        obj.message = hostile.to_owned();
        let e = CtlError::Call(CallError::Rpc(obj));
        for json in [false, true] {
            let text = error_text(&e, json, true);
            assert!(
                !text
                    .chars()
                    .any(|c| c != '\n' && quicproquo_protocol::text::is_terminal_unsafe(c)),
                "{text:?}"
            );
            // The message stays on its line: no forged `hint:` of its own.
            assert!(!text.contains("\nhint: run"), "{text:?}");
            assert!(text.contains("login failed\u{FFFD}]0;pwned"), "{text:?}");
        }
        let human = error_text(&e, false, true);
        assert!(human.starts_with("qpq-ctl: error: login failed"), "{human}");
    }
}
