//! The command line, as clap definitions: the one source of `--help`, the
//! man pages and the shell completions. Names and words follow the IPC
//! methods (`docs/src/reference/ipc.md`) and the TUI's commands; this is a
//! contract with scripts, so options are added, never renamed or removed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use quicproquo_protocol::ipc::values::{
    AutoAccept, Ciphersuite, ConversationRef, InvitationId, Limit, MessageId,
};
use quicproquo_protocol::paths::Profile;
use quicproquo_protocol::Fingerprint;

use crate::exit::Exit;

const ABOUT: &str = "quicproquo from a shell: everything qpqd does, for scripts, cron and CI";

const LONG_ABOUT: &str = "\
quicproquo from a shell: everything qpqd does, for scripts, cron jobs and CI pipelines.

qpq-ctl talks to qpqd, the agent that holds your identity, groups and history, and
starts it on demand (unless --no-autostart). With --json every command prints JSON on
stdout, and an error as one JSON object on stderr; without it, output is for people.";

#[derive(Debug, Parser)]
#[command(
    name = "qpq-ctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = Exit::help_table(),
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Account profile: one qpqd and one identity per profile [default: $QPQ_PROFILE, else `default`]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<Profile>,
    /// Print JSON on stdout (one object per line for `recv --follow`)
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not start qpqd when it is not running: fail with exit status 3
    #[arg(long, global = true)]
    pub no_autostart: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start, stop or check qpqd, the agent of this profile
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Create an account on a server, in this profile
    Register(AccountArgs),
    /// Log this profile's account in again (after `logout` or an expired session)
    Login(AccountArgs),
    /// End the session on the server; the identity stays in the profile
    Logout,
    /// Change the account's password (asks for the current one); other sessions end
    Passwd(PasswdArgs),
    /// Delete the account on the server, then this profile
    #[command(subcommand)]
    Account(AccountCommand),
    /// Show the account of this profile: username, identity key, server
    Whoami,
    /// Show the account, connection, keystore, outbox and unread count
    Status,
    /// Check the keystore, directories, daemon, server, clock, session and key packages;
    /// each line ✓ or ✗ with the fix (exit status 1 when something is wrong)
    Doctor,
    /// Give qpqd the passphrase that decrypts its state (when `status` says locked)
    Unlock(UnlockArgs),
    /// Acknowledge a damaged or rolled-back state (when `status` shows `integrity`):
    /// re-key every group, then send again
    AckIntegrity,
    /// List conversations: id, name, kind, members, unread
    List,
    /// Open (or create) the DM with a user; prints the conversation
    Dm {
        /// The other user
        username: String,
    },
    /// Create groups, add or remove members, leave, re-key
    #[command(subcommand)]
    Group(GroupCommand),
    /// List a conversation's members and whether their keys are verified
    Members {
        /// Name, id, or @username
        conversation: ConversationRef,
    },
    /// Send a message; with no text or `-` it is read from stdin. With --file, send a
    /// file (end-to-end encrypted), with --caption as its text
    #[command(long_about = SEND_LONG_ABOUT)]
    Send(SendArgs),
    /// Download a message's attachment, check it, and write it to a file (or stdout)
    #[command(long_about = DOWNLOAD_LONG_ABOUT)]
    Download(DownloadArgs),
    /// React to a message with an emoji, or take the reaction back (--remove)
    React(ReactArgs),
    /// Change the text of one of your messages, for every member; with `-` it is read
    /// from stdin
    Edit(EditArgs),
    /// Delete one of your messages for everyone, or any message for yourself (--for-me)
    Delete(DeleteArgs),
    /// Show the earlier versions of an edited message, oldest first
    Edits(MessageArgs),
    /// Show messages that mention you (@username), oldest first
    Mentions(MentionsArgs),
    /// Tell the members you are typing (on) or stopped (off), where typing indicators
    /// are on
    Typing(TypingArgs),
    /// Mark a conversation read (up to a message); where read receipts are on, the
    /// members are told
    Read(ReadArgs),
    /// Show a conversation's settings (read receipts, typing, timer, notifications), or
    /// with --default the defaults
    Get(GetArgs),
    /// Change a conversation's setting, or with --default the default of conversations
    /// without their own
    #[command(
        long_about = SET_LONG_ABOUT,
        override_usage = "qpq-ctl set <CONVERSATION> <SETTING> <VALUE>\n       \
                          qpq-ctl set --default <SETTING> <VALUE>"
    )]
    Set(SetArgs),
    /// Show a conversation's latest messages, oldest first
    History(HistoryArgs),
    /// Send a failed message again (its id is in `history`)
    Retry {
        /// The message id, 32 hex digits
        message: MessageId,
    },
    /// Delete a failed message instead of sending it (its id is in `history`)
    Discard {
        /// The message id, 32 hex digits
        message: MessageId,
    },
    /// Print new incoming messages; with --follow, stream them until interrupted
    #[command(long_about = RECV_LONG_ABOUT)]
    Recv(RecvArgs),
    /// Show the safety number shared with a user; --confirm marks their key verified
    Verify(VerifyArgs),
    /// Search messages, best match first
    Search(SearchArgs),
    /// List invitations waiting for you: groups, and first DMs from people you share no
    /// conversation with
    Invites,
    /// Accept an invitation: join, and read what the group sent meanwhile
    Accept {
        /// The invitation's id (from `invites`)
        id: InvitationId,
    },
    /// Decline an invitation: the group is told, and its keys are forgotten
    Decline {
        /// The invitation's id (from `invites`)
        id: InvitationId,
        /// Told to the inviter (at most 200 characters)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show or set which invitations are joined without asking
    AutoAccept {
        /// everyone, verified (users whose key you verified), contacts (users you share a
        /// conversation with; the default) or none
        #[arg(value_parser = parse_auto_accept)]
        mode: Option<AutoAccept>,
    },
    /// Print a shell completion script
    #[command(
        after_help = "Install, e.g.: qpq-ctl completions bash > ~/.local/share/bash-completion/completions/qpq-ctl"
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command to a directory
    #[command(after_help = "Read it with: qpq-ctl man | man -l -")]
    Man {
        /// Write qpq-ctl.1 and one page per command (qpq-ctl-send.1, …) here
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Write conversations to files you keep: JSON lines, Markdown or one self-contained
    /// HTML page each, with their attachments downloaded next to them
    #[command(long_about = EXPORT_LONG_ABOUT)]
    Export(ExportArgs),
}

const SEND_LONG_ABOUT: &str = "\
Send a message; with no text or `-` it is read from stdin.

With --file PATH, send a file: qpqd encrypts it with a key of its own into its spool
(the file may change or go once that is done), uploads it to the server, and sends
the message (the file's name, size, type, key and hash, and --caption as its text)
when the upload is complete. send waits for that, with a progress bar on a terminal;
with --no-wait it returns as soon as qpqd holds the file, and the upload goes on in
the background (also after Ctrl-C: it resumes after a restart of qpqd). stdin is not
read for a file's message: --caption - reads the caption from stdin.";

const DOWNLOAD_LONG_ABOUT: &str = "\
Download a message's attachment: qpqd fetches it, decrypts it and checks its hash,
and the file appears only once the check passed (a tampered or truncated file is
`corrupt`, exit status 14, and nothing is written).

Without -o the file goes to the current directory under the name its sender gave
(made one file name: separators and control characters replaced by `_`, no leading
dot, at most 80 bytes, as `export` names files), made unique with
` (1)`, ` (2)`… unless --force. `-o -` writes the file to stdout (not to a
terminal): qpqd downloads it into the profile's data directory first.";

const EXPORT_LONG_ABOUT: &str = "\
Write conversations to files you keep: every message oldest first, with its sender,
time, reply, reactions, edits (and the earlier versions), deletions and attachments.

One file per conversation in DIR (default: a new directory qpq-export-PROFILE-DATE
in the current directory), named after the conversation; attachments are downloaded
into CONVERSATION-files/ beside it and linked from it. An attachment that cannot be
downloaded (expired, corrupt) is listed as such; the export goes on. Existing files
are never overwritten without --force.

Formats: jsonl (one JSON object per line: the conversation, then each message as the
IPC gives it, times in UTC), markdown, html (one page with no scripts and nothing
loaded from elsewhere; light or dark as the browser prefers). Markdown and HTML show
local times with their UTC offset.";

const SET_LONG_ABOUT: &str = "\
Change a conversation's setting: set CONVERSATION SETTING VALUE, or the default of
conversations without their own value: set --default SETTING VALUE. Prints the
settings as they apply afterwards (as `get`).

Settings and values:
  read-receipts on|off        tell the members what you read (default off)
  typing on|off               tell the members when you type (default off)
  timer DURATION|off          messages sent from now on disappear after DURATION:
                              a number and s, m, h, d or w (30s, 10m, 1d, 2w; at most
                              a year); set for every member, per conversation only
  notify all|mentions|none    which messages qpqd shows as desktop notifications
  notify-content on|off       whether notifications show the sender and text";

const RECV_LONG_ABOUT: &str = "\
Print new incoming messages (messages sent from this profile are not shown).

Without --since, recv resumes where the last recv of this profile stopped: the last
sequence number seen is kept in `qpq-ctl.seq` in the profile's data directory (one
cursor per --conversation), so each message is printed by one recv. The first recv of
a profile prints every message it has. With --since SEQ, recv prints what came after
SEQ and leaves the cursor alone; JSON output carries each message's `seq`.

With --follow, recv streams messages until interrupted (Ctrl-C, SIGTERM, or its reader
going away, which ends it with success). It survives a restart of qpqd: it reconnects
and resumes after the last sequence number, losing and repeating nothing. With --json
it prints one JSON object per line, flushed per message.

With --follow it also prints what members do to messages and conversations, each
as it happens: reactions, edits, deletes, read receipts, typing, timers, and
conversations renamed (each JSON line has a `type`: message, reaction, edit,
delete, read, typing, timer, conversation or transfer). What this profile did is
not shown, except how its file transfers ended (`transfer`: uploaded, downloaded,
failed, corrupt or expired).
With --mentions only messages that mention you are printed, and nothing else.";

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start qpqd for this profile unless it already runs
    Start,
    /// Stop qpqd (it flushes its state first); waits until it has exited
    Stop,
    /// Tell whether qpqd runs (exit status 0) or not (3)
    Status,
}

#[derive(Debug, Args)]
pub struct AccountArgs {
    /// The server, HOST:PORT; a deployment of several nodes as HOST:PORT,HOST:PORT (or one
    /// name with several addresses): the daemon moves to another when its node goes away
    #[arg(long, env = "QPQ_SERVER", value_name = "HOST:PORT[,HOST:PORT…]")]
    pub server: String,
    /// Pin the server's certificate: its SHA-256, 64 hex digits (colons allowed)
    #[arg(long, value_name = "SHA256", value_parser = parse_fingerprint)]
    pub server_fingerprint: Option<Fingerprint>,
    /// Read the password from the first line of stdin instead of prompting
    #[arg(long)]
    pub password_stdin: bool,
    /// The account's username
    pub username: String,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Read the current password from the first line of stdin and the new one from the
    /// second, instead of prompting
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Delete the account on the server (mail waiting there, key packages, sessions; the
    /// name is never registered again), then this profile. Asks for the password and for
    /// the username typed out
    Delete(AccountDeleteArgs),
}

#[derive(Debug, Args)]
pub struct AccountDeleteArgs {
    /// Confirm without a prompt: the account's username, typed out
    #[arg(long, value_name = "USERNAME")]
    pub confirm: Option<String>,
    /// Read the password from the first line of stdin instead of prompting (needs --confirm)
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Read the passphrase from the first line of stdin instead of prompting
    #[arg(long)]
    pub passphrase_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group, optionally with members; prints the conversation
    Create {
        /// The group's name
        name: String,
        /// Users to add
        usernames: Vec<String>,
        /// MLS ciphersuite: hybrid (X25519 + ML-KEM-768) or classic (X25519)
        #[arg(long, default_value_t = Ciphersuite::Hybrid, value_parser = suite_parser())]
        ciphersuite: Ciphersuite,
    },
    /// Add users to a group; prints the conversation
    Add {
        /// Name, id, or @username
        conversation: ConversationRef,
        #[arg(required = true)]
        usernames: Vec<String>,
    },
    /// Remove users from a group; prints the conversation
    Remove {
        /// Name, id, or @username
        conversation: ConversationRef,
        #[arg(required = true)]
        usernames: Vec<String>,
    },
    /// Leave a group
    Leave {
        /// Name, id, or @username
        conversation: ConversationRef,
    },
    /// Re-key the group (an MLS self-update: new keys for everything after)
    Rekey {
        /// Name, id, or @username
        conversation: ConversationRef,
    },
}

/// `hybrid` or `classic`, listed in `--help` and completions from the one
/// ciphersuite type.
fn suite_parser() -> impl clap::builder::TypedValueParser<Value = Ciphersuite> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Ciphersuite::ALL.map(Ciphersuite::as_str))
        .map(|s| Ciphersuite::parse(&s).unwrap_or_default())
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Name, id, or @username
    pub conversation: ConversationRef,
    /// The message; without it, or with `-`, the message is read from stdin
    /// (any UTF-8, any number of lines; trailing line breaks are dropped)
    #[arg(conflicts_with = "file")]
    pub text: Option<String>,
    /// Send this file (a path relative to the current directory, or absolute)
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// With --file: the text sent with it (`-`: read from stdin); default none
    #[arg(long, value_name = "TEXT", requires = "file")]
    pub caption: Option<String>,
    /// With --file: the name the members see [default: the file's name]
    #[arg(long, value_name = "NAME", requires = "file")]
    pub name: Option<String>,
    /// With --file: its MIME type, e.g. image/png [default: guessed from the name]
    #[arg(long = "type", value_name = "TYPE", requires = "file")]
    pub content_type: Option<String>,
    /// With --file: return once qpqd holds the file; it uploads and sends in the background
    #[arg(long, requires = "file")]
    pub no_wait: bool,
    /// Send even though a member's identity key changed (exit status 11 otherwise)
    #[arg(long)]
    pub confirm_changed_keys: bool,
    /// Answer this message (its id, 32 hex digits, from `history --ids` or `--json`)
    #[arg(long, value_name = "ID")]
    pub reply_to: Option<MessageId>,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// Write the file here (`-`: stdout) [default: ./NAME, made unique]
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Replace a file that is already there
    #[arg(long)]
    pub force: bool,
}

/// A message: its conversation (this profile's name for it) and its id, the
/// same on every member's side.
#[derive(Debug, Args)]
pub struct MessageArgs {
    /// Name, id, or @username
    pub conversation: ConversationRef,
    /// The message id, 32 hex digits
    pub id: MessageId,
}

#[derive(Debug, Args)]
pub struct ReactArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// One emoji, e.g. 👍 (at most 32 bytes, no spaces; the daemon checks it)
    pub emoji: String,
    /// Take back your reaction with this emoji
    #[arg(long)]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// The new text; with `-` it is read from stdin (like `send`)
    pub text: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// Delete it from this profile's history only (any message); without it, the
    /// message goes for every member (only your own messages)
    #[arg(long)]
    pub for_me: bool,
}

#[derive(Debug, Args)]
pub struct MentionsArgs {
    /// Only this conversation: name, id, or @username
    pub conversation: Option<ConversationRef>,
    /// At most this many of the latest mentions, 1 to 500
    #[arg(long, value_name = "N", default_value = "50", value_parser = parse_limit)]
    pub limit: Limit,
    /// Show each message's id (without --json)
    #[arg(long)]
    pub ids: bool,
}

#[derive(Debug, Args)]
pub struct TypingArgs {
    /// Name, id, or @username
    pub conversation: ConversationRef,
    /// on: typing now (members show it for a few seconds); off: stopped
    #[arg(value_parser = parse_on_off, value_name = "on|off", action = clap::ArgAction::Set)]
    pub state: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Name, id, or @username
    pub conversation: ConversationRef,
    /// Only up to and including this message (its id); default: everything
    #[arg(long, value_name = "ID")]
    pub up_to: Option<MessageId>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Name, id, or @username
    #[arg(required_unless_present = "default", conflicts_with = "default")]
    pub conversation: Option<ConversationRef>,
    /// The defaults of conversations without their own value
    #[arg(long)]
    pub default: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Set the default of conversations without their own value (then no CONVERSATION)
    #[arg(long)]
    pub default: bool,
    /// CONVERSATION SETTING VALUE, or with --default SETTING VALUE (settings:
    /// read-receipts, typing, timer, notify, notify-content)
    #[arg(value_name = "ARG", num_args = 2..=3, required = true)]
    pub words: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Name, id, or @username
    pub conversation: ConversationRef,
    /// How many of the latest messages, 1 to 500
    #[arg(long, value_name = "N", default_value = "50", value_parser = parse_limit)]
    pub limit: Limit,
    /// Show each message's id (for `react`, `edit`, `delete`, `send --reply-to`)
    #[arg(long)]
    pub ids: bool,
}

#[derive(Debug, Args)]
pub struct RecvArgs {
    /// Stream messages until interrupted
    #[arg(long, short)]
    pub follow: bool,
    /// Print what came after this sequence number (and leave the cursor alone)
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,
    /// Only this conversation: name, id, or @username
    #[arg(long, value_name = "C")]
    pub conversation: Option<ConversationRef>,
    /// Only messages that mention you (@username), and no other events
    #[arg(long)]
    pub mentions: bool,
    /// Show each message's id (without --json)
    #[arg(long)]
    pub ids: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The user
    pub username: String,
    /// Mark the user's current identity key verified (after comparing safety numbers)
    #[arg(long)]
    pub confirm: bool,
    /// With --confirm: the safety number you compared; nothing is marked if the key
    /// changed since (recommended)
    #[arg(long, value_name = "NUMBER", requires = "confirm")]
    pub safety_number: Option<String>,
    /// The conversation whose copy of the user's key to check (default: your DM
    /// with them): the key messages there are encrypted to
    #[arg(long = "in", value_name = "CONVERSATION")]
    pub conversation: Option<ConversationRef>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to look for
    #[arg(required = true)]
    pub words: Vec<String>,
    /// Only this conversation: name, id, or @username
    #[arg(long, value_name = "C")]
    pub conversation: Option<ConversationRef>,
    /// At most this many results, 1 to 500
    #[arg(long, value_name = "N", default_value = "50", value_parser = parse_limit)]
    pub limit: Limit,
    /// Show each message's id (without --json)
    #[arg(long)]
    pub ids: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Conversations to export (name, id, or @username); none: every conversation
    pub conversations: Vec<ConversationRef>,
    /// jsonl, markdown or html
    #[arg(long, value_enum, default_value_t = ExportFormat::Html)]
    pub format: ExportFormat,
    /// The directory to write to [default: ./qpq-export-PROFILE-DATE]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// List attachments without downloading them
    #[arg(long)]
    pub no_attachments: bool,
    /// Overwrite the files of an earlier export in DIR
    #[arg(long)]
    pub force: bool,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line
    Jsonl,
    /// Markdown, readable as it is
    Markdown,
    /// One self-contained HTML page
    Html,
}

fn parse_fingerprint(s: &str) -> Result<Fingerprint, String> {
    quicproquo_protocol::parse_fingerprint(s)
        .ok_or_else(|| "expected a SHA-256: 64 hex digits, colons allowed".to_owned())
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    s.parse::<u16>()
        .ok()
        .and_then(Limit::new)
        .ok_or_else(|| format!("expected a number from 1 to {}", Limit::MAX))
}

/// `on` or `off`.
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}` is not on or off")),
    }
}

/// An `auto_accept` mode as the IPC spells it.
fn parse_auto_accept(s: &str) -> Result<AutoAccept, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not one of everyone, verified, contacts, none"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("qpq-ctl").chain(args.iter().copied()))
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["send", "--json", "@bob", "hi", "--profile", "work"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.profile.unwrap().as_str(), "work");
        let Command::Send(s) = cli.command else {
            panic!("not send")
        };
        assert_eq!(s.conversation, ConversationRef::Dm("bob".into()));
        assert_eq!(s.text.as_deref(), Some("hi"));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["history", "team", "--limit", "0"][..],
            &["history", "team", "--limit", "501"],
            &["send", ""],
            &["send", "@", "hi"],
            &["--profile", "Bad Name", "list"],
            &[
                "register",
                "--server",
                "h:1",
                "--server-fingerprint",
                "abc",
                "a",
            ],
            &["group", "add", "team"],
            &["search"],
            &["completions", "tcsh"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }

    /// The synopsis in qpq-ctl.md names every command and every option.
    #[test]
    fn book_lists_every_command_and_option() {
        let book = include_str!("../../docs/src/reference/qpq-ctl.md");
        let synopsis = book.split("```").nth(1).expect("a synopsis block");
        let cli = Cli::command();
        let mut leaves: Vec<(String, &clap::Command)> = Vec::new();
        for sub in cli.get_subcommands() {
            if sub.has_subcommands() {
                for leaf in sub.get_subcommands() {
                    leaves.push((format!("{} {}", sub.get_name(), leaf.get_name()), leaf));
                }
            } else {
                leaves.push((sub.get_name().to_owned(), sub));
            }
        }
        for (path, cmd) in leaves {
            let (group, leaf) = path.split_once(' ').unwrap_or((&path, ""));
            let line = synopsis
                .lines()
                .map(str::trim_start)
                .find(|l| l.starts_with(&format!("{group} ")) || *l == group)
                .unwrap_or_else(|| panic!("qpq-ctl.md lacks `{path}`"));
            let line = if leaf.is_empty() || line.contains(leaf) {
                line.to_owned()
            } else {
                synopsis
                    .lines()
                    .map(str::trim_start)
                    .find(|l| l.starts_with(&path))
                    .unwrap_or_else(|| panic!("qpq-ctl.md lacks `{path}`"))
                    .to_owned()
            };
            for arg in cmd.get_arguments() {
                if let Some(long) = arg.get_long() {
                    if ["help", "version", "profile", "json", "no-autostart"].contains(&long) {
                        continue;
                    }
                    assert!(
                        line.contains(&format!("--{long}")),
                        "`{path}` lacks --{long}"
                    );
                }
            }
        }
    }

    #[test]
    fn help_documents_exit_statuses() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit status:"), "{help}");
        assert!(
            help.contains("11  a member's identity key changed"),
            "{help}"
        );
    }
}
