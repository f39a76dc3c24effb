//! Exit statuses: part of qpq-ctl's contract with scripts.
//!
//! One table ([`Exit::ALL`]) feeds `--help`, the man page and the JSON error
//! object; a test keeps `docs/src/reference/qpq-ctl.md` in step with it. A
//! status never changes meaning once released (like sysexits.h, but our own
//! small numbers: a script tests `$? -eq 5`, it does not decode bit fields).

use std::fmt::Write as _;

/// How qpq-ctl ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// Anything without a status of its own (a bug, an unreadable file).
    Failure = 1,
    /// Bad command line (clap's status) or no terminal to prompt on.
    Usage = 2,
    DaemonUnreachable = 3,
    NotLoggedIn = 4,
    NotFound = 5,
    Refused = 6,
    NetworkDown = 7,
    Locked = 8,
    InvalidInput = 9,
    Conflict = 10,
    IdentityChanged = 11,
    UntrustedDaemon = 12,
    /// `status` found the state damaged or rolled back (`integrity`).
    Integrity = 13,
    /// An attachment failed its integrity check (the IPC's `-32015`).
    Corrupt = 14,
    /// An attachment's blob is gone from the server (the IPC's `-32016`).
    Expired = 15,
}

impl Exit {
    /// Every status, in numeric order.
    pub const ALL: &'static [Exit] = &[
        Exit::Ok,
        Exit::Failure,
        Exit::Usage,
        Exit::DaemonUnreachable,
        Exit::NotLoggedIn,
        Exit::NotFound,
        Exit::Refused,
        Exit::NetworkDown,
        Exit::Locked,
        Exit::InvalidInput,
        Exit::Conflict,
        Exit::IdentityChanged,
        Exit::UntrustedDaemon,
        Exit::Integrity,
        Exit::Corrupt,
        Exit::Expired,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// A stable word for the status: the `kind` of a JSON error.
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::DaemonUnreachable => "daemon_unreachable",
            Exit::NotLoggedIn => "not_logged_in",
            Exit::NotFound => "not_found",
            Exit::Refused => "refused",
            Exit::NetworkDown => "network_down",
            Exit::Locked => "locked",
            Exit::InvalidInput => "invalid_input",
            Exit::Conflict => "conflict",
            Exit::IdentityChanged => "identity_changed",
            Exit::UntrustedDaemon => "untrusted_daemon",
            Exit::Integrity => "integrity",
            Exit::Corrupt => "corrupt",
            Exit::Expired => "expired",
        }
    }

    /// What the status means, for people.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success",
            Exit::Failure => "any other failure",
            Exit::Usage => "usage error: bad command line, or no terminal to prompt on",
            Exit::DaemonUnreachable => {
                "qpqd cannot be reached: not running (with --no-autostart), failed to start, \
                 went away, or speaks another IPC version"
            }
            Exit::NotLoggedIn => "not logged in: no account in this profile, or logged out",
            Exit::NotFound => "not found: no such user or conversation",
            Exit::Refused => {
                "refused by the server (the message names its E-code, E0xx), or not \
                 allowed: only a message's sender can edit it or delete it for everyone"
            }
            Exit::NetworkDown => "network down: the server cannot be reached",
            Exit::Locked => "locked: qpqd needs the state passphrase (`qpq-ctl unlock`)",
            Exit::InvalidInput => {
                "invalid input: empty or oversized message, bad username, bad server \
                 address, a file that cannot be read or written (missing, a directory, \
                 already there without --force)"
            }
            Exit::Conflict => "conflict: already exists (e.g. a second account in one profile)",
            Exit::IdentityChanged => {
                "a member's identity key changed: verify, then resend with --confirm-changed-keys"
            }
            Exit::UntrustedDaemon => {
                "refused to talk to the socket: its directory is not private to you, or \
                 another user runs the process behind it; nothing was sent"
            }
            Exit::Integrity => {
                "status: the state was found damaged or rolled back; sending is held until \
                 `qpq-ctl ack-integrity`"
            }
            Exit::Corrupt => {
                "an attachment failed its integrity check (tampered with or truncated on \
                 the server): nothing was written"
            }
            Exit::Expired => "an attachment has expired: the server no longer has the file",
        }
    }

    /// The table for `--help`, wrapped for an 80-column terminal.
    pub fn help_table() -> String {
        let mut s = String::from("Exit status:\n");
        for e in Self::ALL {
            let mut line = format!("  {:>2} ", e.code());
            for word in e.meaning().split(' ') {
                if line.len() + 1 + word.len() > 80 {
                    let _ = writeln!(s, "{line}");
                    line = " ".repeat(5);
                }
                line.push(' ');
                line.push_str(word);
            }
            let _ = writeln!(s, "{line}");
        }
        s.push_str(
            "\nA conversation is named by its name, its id (32 hex digits), or @username\n\
             for the DM with that user. Documentation: docs/src/reference/qpq-ctl.md",
        );
        s
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_their_index_and_kinds_unique() {
        let mut kinds = std::collections::HashSet::new();
        for (i, e) in Exit::ALL.iter().enumerate() {
            assert_eq!(usize::from(e.code()), i, "{e:?}");
            assert!(kinds.insert(e.kind()), "duplicate kind {}", e.kind());
        }
    }

    /// The book's exit status table lists exactly [`Exit::ALL`], in order,
    /// with the same words.
    #[test]
    fn book_lists_every_status() {
        let book = include_str!("../../docs/src/reference/qpq-ctl.md");
        let section = book
            .split("\n## Exit status")
            .nth(1)
            .expect("qpq-ctl.md has an Exit status section");
        let rows: Vec<(u8, String)> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| "))
            .filter_map(|l| {
                let mut cells = l.split(" | ");
                let code = cells.next()?.trim().parse().ok()?;
                let kind = cells.next()?.trim().trim_matches('`').to_owned();
                Some((code, kind))
            })
            .collect();
        let ours: Vec<(u8, String)> = Exit::ALL
            .iter()
            .map(|e| (e.code(), e.kind().to_owned()))
            .collect();
        assert_eq!(rows, ours, "qpq-ctl.md and Exit disagree");
    }

    #[test]
    fn help_lists_every_status() {
        let help = Exit::help_table();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for e in Exit::ALL {
            assert!(
                flat.contains(&format!("{} {}", e.code(), e.meaning())),
                "{e:?}"
            );
        }
        assert!(help.lines().all(|l| l.len() <= 80), "{help}");
    }
}
