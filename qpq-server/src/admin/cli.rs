//! `qpq-server admin …`: the command line, its client for the admin socket,
//! and how answers are printed (a table or a sentence for people, `--json`
//! for scripts). Exit statuses are [`Exit`]'s.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::wire::{AdminError, AdminRequest, AdminResponse, QueueRow, UserRow, MAX_PAGE};
use super::SOCKET_NAME;

/// Operator commands for the server running on a data directory, over its
/// admin socket (DATA_DIR/admin.sock). Run them as the server's user (or
/// root). Exit status: 0 done, 1 no such user, 2 usage or not confirmed,
/// 3 no server running, 4 not permitted, 5 other failure.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The server's data directory [default: the server's, as it would start]
    #[arg(long = "data-dir", value_name = "DIR", conflicts_with = "socket")]
    pub data_dir: Option<PathBuf>,
    /// The admin socket itself (instead of DATA_DIR/admin.sock)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print JSON (one object) instead of a table or a sentence
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// List every account: state, sessions, waiting mail, key packages
    Users,
    /// Disable an account: its sessions end now and it cannot log in
    Disable { user: String },
    /// Enable a disabled account again
    Enable { user: String },
    /// Delete an account for good: sessions, mail and key packages go, and
    /// the name is never registered again
    Delete {
        user: String,
        /// Do not ask (needed when standard input is not a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// End every session of an account now (it may log in again)
    RevokeSessions { user: String },
    /// The accounts with the most waiting mail
    Queues {
        /// How many to show
        #[arg(long, default_value_t = 20)]
        top: u32,
    },
}

/// The exit statuses (documented in the book's admin page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Done = 0,
    UnknownUser = 1,
    Usage = 2,
    NoServer = 3,
    NotPermitted = 4,
    Failed = 5,
}

/// A failure to report: its status and a sentence for people.
struct Failure {
    exit: Exit,
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(exit: Exit, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            exit,
            code,
            message: message.into(),
        }
    }
}

/// Runs one admin command and returns the process's exit status.
/// `server_data_dir` resolves the data directory as the server would (its
/// flags, environment and configuration file) when neither `--data-dir`
/// nor `--socket` is given.
pub fn run(args: AdminArgs, server_data_dir: impl FnOnce() -> Result<PathBuf, String>) -> i32 {
    let json = args.json;
    let outcome = socket_of(&args, server_data_dir).and_then(|socket| execute(&args, &socket));
    let exit = match outcome {
        Ok(out) => {
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            Exit::Done
        }
        Err(f) => {
            if json {
                let obj = serde_json::json!({ "error": { "code": f.code, "message": f.message } });
                println!("{obj}");
            }
            eprintln!("qpq-server admin: {}", f.message);
            f.exit
        }
    };
    exit as i32
}

/// Where the socket is, and how to name it in messages.
struct Socket {
    path: PathBuf,
    /// "DATA_DIR (admin.sock …)" or the socket path.
    named: String,
}

fn socket_of(
    args: &AdminArgs,
    server_data_dir: impl FnOnce() -> Result<PathBuf, String>,
) -> Result<Socket, Failure> {
    if let Some(path) = &args.socket {
        return Ok(Socket {
            path: path.clone(),
            named: path.display().to_string(),
        });
    }
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => server_data_dir().map_err(|e| Failure::new(Exit::Usage, "usage", e))?,
    };
    Ok(Socket {
        path: dir.join(SOCKET_NAME),
        named: dir.display().to_string(),
    })
}

/// Runs the command; the text to print on success.
fn execute(args: &AdminArgs, socket: &Socket) -> Result<String, Failure> {
    let json = args.json;
    match &args.command {
        AdminCommand::Users => {
            let mut conn = Connection::open(socket)?;
            let mut users = Vec::new();
            let mut after = None;
            loop {
                match conn.call(&AdminRequest::Users {
                    after: after.take(),
                    limit: MAX_PAGE,
                })? {
                    AdminResponse::Users { users: page, next } => {
                        users.extend(page);
                        match next {
                            Some(n) => after = Some(n),
                            None => break,
                        }
                    }
                    other => return Err(unexpected(other)),
                }
            }
            Ok(if json {
                format!("{}\n", serde_json::json!({ "users": users }))
            } else {
                users_table(&users)
            })
        }
        AdminCommand::Queues { top } => {
            match Connection::open(socket)?.call(&AdminRequest::Queues { top: *top })? {
                AdminResponse::Queues { queues } => Ok(if json {
                    format!("{}\n", serde_json::json!({ "queues": queues }))
                } else {
                    queues_table(&queues)
                }),
                other => Err(unexpected(other)),
            }
        }
        AdminCommand::Disable { user } => change(
            socket,
            json,
            AdminRequest::Disable { user: user.clone() },
            "disabled: its sessions ended and it cannot log in",
        ),
        AdminCommand::Enable { user } => change(
            socket,
            json,
            AdminRequest::Enable { user: user.clone() },
            "enabled: it can log in again",
        ),
        AdminCommand::RevokeSessions { user } => change(
            socket,
            json,
            AdminRequest::RevokeSessions { user: user.clone() },
            "sessions revoked",
        ),
        AdminCommand::Delete { user, yes } => {
            if !yes {
                confirm_delete(user)?;
            }
            change(
                socket,
                json,
                AdminRequest::Delete { user: user.clone() },
                "deleted: its sessions, mail and key packages are gone and the name stays taken",
            )
        }
    }
}

/// Sends a request that changes one account; `what` says what happened.
fn change(
    socket: &Socket,
    json: bool,
    request: AdminRequest,
    what: &str,
) -> Result<String, Failure> {
    match Connection::open(socket)?.call(&request)? {
        AdminResponse::Done {
            user,
            sessions_ended,
        } => Ok(if json {
            let mut obj = serde_json::json!({ "user": user, "done": what });
            if let Some(n) = sessions_ended {
                obj["sessions_ended"] = n.into();
            }
            format!("{obj}\n")
        } else {
            match sessions_ended {
                Some(n) => format!("{user}: {what} ({n} ended)\n"),
                None => format!("{user}: {what}\n"),
            }
        }),
        other => Err(unexpected(other)),
    }
}

/// Asks on the terminal; refuses when there is none to ask on.
fn confirm_delete(user: &str) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::new(
            Exit::Usage,
            "not-confirmed",
            format!(
                "not deleting {user}: standard input is not a terminal to confirm on; \
                 add --yes to delete without asking"
            ),
        ));
    }
    eprint!(
        "Delete the account {user} for good? Its sessions, waiting mail and key packages go, \
         and the name can never be registered again.\nType the username to confirm: "
    );
    let _ = std::io::stderr().flush();
    let mut typed = String::new();
    let _ = stdin.lock().read_line(&mut typed);
    if typed.trim() == user {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Usage,
            "not-confirmed",
            format!("not deleting {user}: the name typed did not match"),
        ))
    }
}

/// An error answer, or one of the wrong kind.
fn unexpected(answer: AdminResponse) -> Failure {
    match answer {
        AdminResponse::Error { code, message } => {
            let (exit, name) = match code {
                AdminError::UnknownUser => (Exit::UnknownUser, "unknown-user"),
                AdminError::NotPermitted => (Exit::NotPermitted, "not-permitted"),
                AdminError::BadRequest => (Exit::Failed, "bad-request"),
                AdminError::Busy => (Exit::Failed, "busy"),
                AdminError::Internal => (Exit::Failed, "internal"),
            };
            Failure::new(exit, name, message)
        }
        other => Failure::new(
            Exit::Failed,
            "bad-answer",
            format!("the server answered something else: {other:?}"),
        ),
    }
}

/// How long the client waits for an answer (a deletion of a large mailbox
/// takes a while; a hung server does not hang the operator's shell).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// One connection to the admin socket.
struct Connection {
    #[cfg(unix)]
    reader: BufReader<std::os::unix::net::UnixStream>,
}

impl Connection {
    #[cfg(unix)]
    fn open(socket: &Socket) -> Result<Self, Failure> {
        use std::io::ErrorKind;
        let stream = std::os::unix::net::UnixStream::connect(&socket.path).map_err(|e| {
            let name = &socket.named;
            match e.kind() {
                ErrorKind::NotFound => Failure::new(
                    Exit::NoServer,
                    "no-server",
                    format!("no qpq-server is running on {name} ({SOCKET_NAME} missing)"),
                ),
                ErrorKind::ConnectionRefused => Failure::new(
                    Exit::NoServer,
                    "no-server",
                    format!(
                        "no qpq-server is running on {name} ({SOCKET_NAME} is left from a \
                         server that stopped)"
                    ),
                ),
                ErrorKind::PermissionDenied => Failure::new(
                    Exit::NotPermitted,
                    "not-permitted",
                    format!(
                        "permission denied on {}: run this as the server's user (or root)",
                        socket.path.display()
                    ),
                ),
                _ => Failure::new(
                    Exit::Failed,
                    "io",
                    format!("cannot connect to {}: {e}", socket.path.display()),
                ),
            }
        })?;
        let _ = stream.set_read_timeout(Some(ANSWER_TIMEOUT));
        let _ = stream.set_write_timeout(Some(ANSWER_TIMEOUT));
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    #[cfg(not(unix))]
    fn open(_socket: &Socket) -> Result<Self, Failure> {
        Err(Failure::new(
            Exit::Failed,
            "unsupported",
            "the admin socket is a Unix socket; this system has none",
        ))
    }

    #[cfg(unix)]
    fn call(&mut self, request: &AdminRequest) -> Result<AdminResponse, Failure> {
        let io = |e: std::io::Error| {
            Failure::new(Exit::Failed, "io", format!("talking to the server: {e}"))
        };
        let mut line = serde_json::to_vec(request).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        // A server that refuses the peer answers and hangs up without
        // reading: the write may fail, and the refusal is still there to read.
        let written = self.reader.get_mut().write_all(&line);
        let mut answer = String::new();
        let read = self.reader.read_line(&mut answer);
        match (read, written) {
            (Ok(n), _) if n > 0 => {}
            (_, Err(e)) | (Err(e), Ok(())) => return Err(io(e)),
            (Ok(_), Ok(())) => {
                return Err(Failure::new(
                    Exit::Failed,
                    "io",
                    "the server closed the connection without an answer",
                ))
            }
        }
        serde_json::from_str(&answer).map_err(|e| {
            Failure::new(
                Exit::Failed,
                "bad-answer",
                format!("the server's answer is not understood ({e}): is it another version?"),
            )
        })
    }

    #[cfg(not(unix))]
    fn call(&mut self, _request: &AdminRequest) -> Result<AdminResponse, Failure> {
        unreachable!("open fails first")
    }
}

/// Lays out rows under a header, each column as wide as its widest cell;
/// numbers (every column after the first whose header says so) align right.
fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

fn users_table(users: &[UserRow]) -> String {
    if users.is_empty() {
        return "no accounts\n".into();
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.username.clone(),
                if u.disabled { "disabled" } else { "active" }.into(),
                u.sessions.to_string(),
                u.mail_count.to_string(),
                u.mail_bytes.to_string(),
                u.key_packages.to_string(),
                utc(u.created_at_ms),
                u.identity_key.chars().take(16).collect(),
            ]
        })
        .collect();
    table(
        &[
            "USER",
            "STATE",
            "SESSIONS",
            "MAIL",
            "BYTES",
            "KEY PACKAGES",
            "CREATED (UTC)",
            "IDENTITY KEY",
        ],
        &rows,
        &[false, false, true, true, true, true, false, false],
    )
}

fn queues_table(queues: &[QueueRow]) -> String {
    if queues.is_empty() {
        return "no mail is waiting\n".into();
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                q.username.clone(),
                q.mail_count.to_string(),
                q.mail_bytes.to_string(),
            ]
        })
        .collect();
    table(&["USER", "MAIL", "BYTES"], &rows, &[false, true, true])
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn utc(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn tables_align_and_dates_read_as_utc() {
        let t = queues_table(&[
            QueueRow {
                username: "alice".into(),
                mail_count: 2,
                mail_bytes: 12_000,
            },
            QueueRow {
                username: "bo".into(),
                mail_count: 10,
                mail_bytes: 5,
            },
        ]);
        assert_eq!(
            t,
            "USER   MAIL  BYTES\nalice     2  12000\nbo       10      5\n"
        );
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn a_missing_data_dir_is_a_usage_error() {
        let args = AdminArgs {
            data_dir: None,
            socket: None,
            json: false,
            command: AdminCommand::Users,
        };
        let err = socket_of(&args, || Err("no data directory".into())).err();
        assert_eq!(err.map(|f| f.exit), Some(Exit::Usage));
    }

    #[test]
    fn the_socket_is_named_after_the_data_dir() {
        let args = AdminArgs {
            data_dir: Some(Path::new("/srv/qpq").into()),
            socket: None,
            json: false,
            command: AdminCommand::Users,
        };
        let s = socket_of(&args, || unreachable!()).ok().map(|s| s.path);
        assert_eq!(s, Some(PathBuf::from("/srv/qpq/admin.sock")));
    }
}
