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
use crate::output::{Paint, Style};

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
    let exit = e.exit();
    let text = if json {
        let body = JsonError {
            error: JsonErrorBody {
                exit_code: exit.code(),
                kind: exit.kind(),
                message: e.to_string(),
                hint: e.hint(),
                server_code: e.server_code(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default() + "\n"
    } else {
        let style = Style::detect(false, no_color, &io::stderr());
        let mut text = format!("qpq-ctl: {} {e}\n", style.paint(Paint::Warn, "error:"));
        if let Some(hint) = e.hint() {
            text.push_str(&format!("{} {hint}\n", style.paint(Paint::Bold, "hint:")));
        }
        text
    };
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// A line for people on stderr (progress, prompts' context).
pub fn notice(text: &str) {
    let _ = writeln!(io::stderr().lock(), "qpq-ctl: {text}");
}
