//! What commands read from their user: a message from stdin, a password from
//! stdin or the terminal.
//!
//! A message is checked here before anything is sent: valid UTF-8, not empty,
//! not over [`MAX_TEXT_BYTES`] (stdin is read only that far, so a huge pipe
//! is refused without being swallowed). A password is never a flag or an
//! environment variable (both leak into `ps` and shell history): it comes
//! from the first line of stdin (`--password-stdin`) or a prompt on the
//! terminal without echo. The readers are blocking: callers run them on
//! tokio's blocking pool ([`blocking`]).

use std::io::{self, BufRead, Read};

use quicproquo_protocol::ipc::values::Secret;

use crate::error::CtlError;

/// The longest message text the daemon accepts.
pub use quicproquo_protocol::limits::MAX_MESSAGE_TEXT_BYTES as MAX_TEXT_BYTES;
use quicproquo_protocol::text::MessageText;
/// Trailing line breaks read beyond the limit before giving up.
const SLACK: usize = 1024;
/// The longest password line read from stdin.
const MAX_SECRET_BYTES: usize = 4096;

/// Runs a blocking reader off the async runtime's thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CtlError> + Send + 'static,
) -> Result<T, CtlError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CtlError::io("reading input", io::Error::other(e)))?
}

/// Checks a message given on the command line.
/// The rule is the daemon's ([`MessageText`]); checking it here too means a
/// script gets the error before anything is started.
pub fn check_message(text: String) -> Result<String, CtlError> {
    MessageText::new(text)
        .map(MessageText::into_string)
        .map_err(|e| CtlError::Input(e.to_string()))
}

/// Reads a message from `reader` to its end: trailing line breaks (`\n`,
/// `\r\n`) are dropped, everything else is kept as is.
pub fn read_message(reader: impl Read) -> Result<String, CtlError> {
    let cap = MAX_TEXT_BYTES + SLACK;
    let mut bytes = Vec::new();
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CtlError::io("reading the message from stdin", e))?;
    if bytes.len() > cap {
        return Err(CtlError::Input(format!(
            "the message on stdin is over the limit of {MAX_TEXT_BYTES} bytes; nothing was sent"
        )));
    }
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        CtlError::Input(format!(
            "the message on stdin is not UTF-8 (bad byte at offset {}); nothing was sent",
            e.utf8_error().valid_up_to()
        ))
    })?;
    check_message(text)
}

/// Reads a secret from the first line of `reader`.
pub fn read_secret_line(reader: impl BufRead, what: &str) -> Result<Secret, CtlError> {
    let mut line = Vec::new();
    reader
        .take(MAX_SECRET_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| CtlError::io(format!("reading the {what} from stdin"), e))?;
    let secret = Secret::new(
        String::from_utf8(std::mem::take(&mut line))
            .map_err(|_| CtlError::Input(format!("the {what} on stdin is not UTF-8")))?,
    );
    let text = secret.expose();
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.len() > MAX_SECRET_BYTES {
        return Err(CtlError::Input(format!(
            "the {what} on stdin is longer than {MAX_SECRET_BYTES} bytes"
        )));
    }
    if text.is_empty() {
        return Err(CtlError::Input(format!(
            "the {what} on stdin is empty (the first line is read)"
        )));
    }
    Ok(Secret::new(text))
}

/// Asks for a secret on the terminal without echo. A `new` one (its
/// shortest length given) is asked twice and must be long enough.
pub fn prompt_secret(what: &str, new: Option<usize>) -> Result<Secret, CtlError> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Secret::new)
            .map_err(|e| {
                CtlError::Usage(format!(
                    "no terminal to ask for the {what} on ({e}): \
                     pass --{}-stdin and write it to stdin",
                    if what == "passphrase" {
                        "passphrase"
                    } else {
                        "password"
                    }
                ))
            })
    };
    let first = ask(&format!("{}: ", capitalize(what)))?;
    if first.expose().is_empty() {
        return Err(CtlError::Input(format!("the {what} is empty")));
    }
    if let Some(min) = new {
        check_new_secret(what, &first, min)?;
        let again = ask(&format!("{} again: ", capitalize(what)))?;
        if again != first {
            return Err(CtlError::Input(format!(
                "the two {what}s differ; nothing was changed"
            )));
        }
    }
    Ok(first)
}

/// A new password or passphrase must be long enough.
pub fn check_new_secret(what: &str, secret: &Secret, min: usize) -> Result<(), CtlError> {
    match quicproquo_protocol::limits::new_secret_problem(what, secret.expose(), min) {
        Some(problem) => Err(CtlError::Input(problem)),
        None => Ok(()),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn messages_keep_their_lines_and_lose_trailing_breaks() {
        let text = "first line\n\n  indented — ünïcödé 世界 👋🏽\r\nlast\n\n";
        assert_eq!(
            read_message(text.as_bytes()).unwrap(),
            "first line\n\n  indented — ünïcödé 世界 👋🏽\r\nlast"
        );
        assert_eq!(read_message(&b"crlf\r\n"[..]).unwrap(), "crlf");
    }

    #[test]
    fn empty_bad_and_oversized_messages_are_refused() {
        for input in [&b""[..], b"\n\n", b"  \n\t\n", b"\xff\xfe"] {
            let e = read_message(input).unwrap_err();
            assert_eq!(e.exit(), Exit::InvalidInput, "{input:?}: {e}");
        }
        let max = "x".repeat(MAX_TEXT_BYTES);
        assert_eq!(read_message(format!("{max}\n").as_bytes()).unwrap(), max);
        let over = format!("{max}y");
        let e = read_message(over.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("65537 bytes"), "{e}");
        let huge = vec![b'x'; 10 * MAX_TEXT_BYTES];
        let e = read_message(&huge[..]).unwrap_err();
        assert!(e.to_string().contains("over the limit"), "{e}");
        assert!(check_message(over).is_err());
    }

    #[test]
    fn secrets_are_the_first_line() {
        let s = read_secret_line(&b"hunter2\r\nrest"[..], "password").unwrap();
        assert_eq!(s.expose(), "hunter2");
        let s = read_secret_line(&b"no newline"[..], "password").unwrap();
        assert_eq!(s.expose(), "no newline");
        for bad in [&b""[..], b"\n", b"\xff\n"] {
            let e = read_secret_line(bad, "password").unwrap_err();
            assert_eq!(e.exit(), Exit::InvalidInput);
        }
    }
}
