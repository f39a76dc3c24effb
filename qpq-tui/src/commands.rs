//! Slash commands: the same words as `qpq-ctl` (`/dm user`, `/group create
//! name [users]`, `/add user`, …), parsed from the editor's text, and Tab
//! completion of command names and usernames. Pure functions; what a command
//! does is decided in `update`.

use quicproquo_protocol::ipc::values::NotifyMode;

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Dm(String),
    GroupCreate {
        name: String,
        members: Vec<String>,
    },
    Add(Vec<String>),
    Remove(Vec<String>),
    Leave,
    Rekey,
    /// Acknowledge a damaged or rolled-back state (`integrity.acknowledge`).
    AckIntegrity,
    Members,
    Verify(String),
    Invites,
    Search(String),
    /// The last failed message of the open conversation: send it again.
    Retry,
    /// The last failed message of the open conversation: delete it.
    Discard,
    /// A new account password, typed in a box.
    Passwd,
    /// Delete the account (a box asks for the username and the password).
    DeleteAccount,
    /// React with any emoji to the selected message (else the newest).
    React(String),
    /// Messages that mention us, to jump to.
    Mentions,
    /// This conversation's settings (`conversation.settings`).
    Receipts(bool),
    Typing(bool),
    /// Seconds; 0 turns disappearing messages off.
    Timer(u64),
    Notify(NotifyMode),
    /// Send a file (`path` as typed, unquoted: `update` resolves `~` and
    /// relative paths) with a caption.
    Attach {
        path: String,
        caption: String,
    },
    Help,
    Quit,
}

/// One command for help and completion.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
    /// Which argument positions (0-based) are usernames; `usize::MAX` means
    /// "from this one on".
    pub users_from: Option<usize>,
}

pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "dm",
        args: "user",
        help: "open the direct conversation with a user",
        users_from: Some(0),
    },
    Spec {
        name: "group",
        args: "create name [users…]",
        help: "create a group (post-quantum hybrid suite)",
        users_from: Some(2),
    },
    Spec {
        name: "add",
        args: "user…",
        help: "add users to this group",
        users_from: Some(0),
    },
    Spec {
        name: "remove",
        args: "user…",
        help: "remove users from this group",
        users_from: Some(0),
    },
    Spec {
        name: "invites",
        args: "",
        help: "invitations waiting for you (accept or decline)",
        users_from: None,
    },
    Spec {
        name: "leave",
        args: "",
        help: "leave this group",
        users_from: None,
    },
    Spec {
        name: "rekey",
        args: "",
        help: "new keys for this group (MLS self-update)",
        users_from: None,
    },
    Spec {
        name: "ack-integrity",
        args: "",
        help: "re-key all groups, resume after a state alarm",
        users_from: None,
    },
    Spec {
        name: "members",
        args: "",
        help: "show/hide the members and their key status",
        users_from: None,
    },
    Spec {
        name: "verify",
        args: "user",
        help: "show the safety number shared with a user",
        users_from: Some(0),
    },
    Spec {
        name: "search",
        args: "words",
        help: "search all conversations and jump to a result",
        users_from: None,
    },
    Spec {
        name: "retry",
        args: "",
        help: "send the last failed (✗) message here again",
        users_from: None,
    },
    Spec {
        name: "discard",
        args: "",
        help: "delete the last failed (✗) message here",
        users_from: None,
    },
    Spec {
        name: "react",
        args: "emoji",
        help: "react to the selected message (else the newest)",
        users_from: None,
    },
    Spec {
        name: "mentions",
        args: "",
        help: "messages that mention you; Enter jumps to one",
        users_from: None,
    },
    Spec {
        name: "receipts",
        args: "on|off",
        help: "send read receipts in this conversation",
        users_from: None,
    },
    Spec {
        name: "typing",
        args: "on|off",
        help: "send typing indicators in this conversation",
        users_from: None,
    },
    Spec {
        name: "timer",
        args: "1d|8h|30m|off",
        help: "messages here disappear after this long (for everyone)",
        users_from: None,
    },
    Spec {
        name: "notify",
        args: "all|mentions|none",
        help: "which messages here qpqd notifies the desktop of",
        users_from: None,
    },
    Spec {
        name: "attach",
        args: "PATH [caption]",
        help: "send a file (Tab completes the path; quote or \\ spaces)",
        users_from: None,
    },
    Spec {
        name: "passwd",
        args: "",
        help: "change the password; other sessions end",
        users_from: None,
    },
    Spec {
        name: "delete-account",
        args: "",
        help: "delete the account and this profile",
        users_from: None,
    },
    Spec {
        name: "help",
        args: "",
        help: "keys and commands",
        users_from: None,
    },
    Spec {
        name: "quit",
        args: "",
        help: "quit",
        users_from: None,
    },
];

/// What the editor's text is when Enter is pressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A message to send (`//x` sends `/x`).
    Message(String),
    Command(Command),
}

/// Parses the editor's text. `Err` is a message for the user.
pub fn parse(text: &str) -> Result<Input, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Ok(Input::Message(text.to_owned()));
    };
    if rest.starts_with('/') {
        return Ok(Input::Message(rest.to_owned()));
    }
    let mut words = rest.split_whitespace();
    let name = words.next().unwrap_or("");
    let args: Vec<String> = words
        .map(|w| w.trim_start_matches('@').to_owned())
        .collect();
    let usage = |spec: &str| format!("usage: /{name} {spec}");
    let one = |args: Vec<String>, spec: &str| match <[String; 1]>::try_from(args) {
        Ok([a]) => Ok(a),
        Err(_) => Err(usage(spec)),
    };
    let none = |args: &[String]| {
        if args.is_empty() {
            Ok(())
        } else {
            Err(format!("/{name} takes no arguments"))
        }
    };
    let cmd = match name {
        "dm" => Command::Dm(one(args, "user")?),
        "group" => match args.split_first() {
            Some((sub, rest)) if sub == "create" && !rest.is_empty() => Command::GroupCreate {
                name: rest[0].clone(),
                members: rest[1..].to_vec(),
            },
            _ => return Err(usage("create name [users…]")),
        },
        "add" if !args.is_empty() => Command::Add(args),
        "add" => return Err(usage("user…")),
        "remove" if !args.is_empty() => Command::Remove(args),
        "remove" => return Err(usage("user…")),
        "leave" => none(&args).map(|_| Command::Leave)?,
        "rekey" => none(&args).map(|_| Command::Rekey)?,
        "ack-integrity" => none(&args).map(|_| Command::AckIntegrity)?,
        "members" => none(&args).map(|_| Command::Members)?,
        "verify" => Command::Verify(one(args, "user")?),
        "invites" => none(&args).map(|_| Command::Invites)?,
        "retry" => none(&args).map(|_| Command::Retry)?,
        "discard" => none(&args).map(|_| Command::Discard)?,
        "search" => {
            let query = rest["search".len()..].trim();
            if query.is_empty() {
                return Err(usage("words"));
            }
            quicproquo_protocol::limits::check_search_query(query)?;
            Command::Search(query.to_owned())
        }
        "react" => {
            let emoji = one(args, "emoji")?;
            if emoji.len() > MAX_EMOJI_BYTES {
                return Err(format!(
                    "/react takes one emoji (at most {MAX_EMOJI_BYTES} bytes)"
                ));
            }
            Command::React(emoji)
        }
        "mentions" => none(&args).map(|_| Command::Mentions)?,
        "receipts" => {
            Command::Receipts(on_off(&one(args, "on|off")?).ok_or_else(|| usage("on|off"))?)
        }
        "typing" => Command::Typing(on_off(&one(args, "on|off")?).ok_or_else(|| usage("on|off"))?),
        "timer" => {
            Command::Timer(parse_duration(&one(args, "1d|8h|30m|off")?).ok_or_else(|| {
                format!(
                    "usage: /timer 1d|8h|30m|90s|off (at most {} days)",
                    MAX_TIMER_SECONDS / 86_400
                )
            })?)
        }
        "notify" => {
            let word = one(args, "all|mentions|none")?;
            let mode = NotifyMode::ALL
                .iter()
                .copied()
                .find(|m| notify_word(*m) == word)
                .ok_or_else(|| usage("all|mentions|none"))?;
            Command::Notify(mode)
        }
        "attach" => {
            let (path, caption) = crate::attach::split_args(&rest["attach".len()..])?;
            Command::Attach { path, caption }
        }
        "passwd" => none(&args).map(|_| Command::Passwd)?,
        "delete-account" => none(&args).map(|_| Command::DeleteAccount)?,
        "help" | "?" => Command::Help,
        "quit" | "q" | "exit" => Command::Quit,
        "" => return Err("type a command after /, e.g. /help (// sends a /)".into()),
        other => return Err(format!("unknown command /{other}; /help lists them")),
    };
    Ok(Input::Command(cmd))
}

/// The longest emoji `/react` passes on (the daemon checks it too).
const MAX_EMOJI_BYTES: usize = 32;
/// The longest disappearing timer: one year.
pub const MAX_TIMER_SECONDS: u64 = 365 * 86_400;

fn on_off(word: &str) -> Option<bool> {
    match word {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// `30s`, `5m`, `8h`, `1d`, `2w` (a bare number is seconds); `off` or `0`
/// is 0. `None` when it is none of those or longer than a year.
pub fn parse_duration(word: &str) -> Option<u64> {
    if word == "off" {
        return Some(0);
    }
    let split = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (n, unit) = word.split_at(split);
    let n: u64 = n.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(scale).filter(|s| *s <= MAX_TIMER_SECONDS)
}

/// A timer as people say it: "1 day", "8 hours", "90 seconds".
pub fn duration_words(seconds: u64) -> String {
    let (n, unit) = [
        (7 * 86_400, "week"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ]
    .into_iter()
    .find(|(u, _)| seconds >= *u && seconds.is_multiple_of(*u))
    .map_or((seconds, "second"), |(u, name)| (seconds / u, name));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The word `/notify` and the daemon use for a mode.
pub fn notify_word(mode: NotifyMode) -> &'static str {
    match mode {
        NotifyMode::All => "all",
        NotifyMode::Mentions => "mentions",
        NotifyMode::None => "none",
    }
}

/// A completion: replace `text[start..end]` with one of `candidates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub start: usize,
    pub end: usize,
    pub candidates: Vec<String>,
}

/// Completes the word before `cursor`: a command name after a leading `/`,
/// a username where the command takes one, or any `@name` in a message.
/// `users` is every username the TUI knows of.
pub fn complete(text: &str, cursor: usize, users: &[String]) -> Option<Completion> {
    let before = &text[..cursor];
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word = &before[start..];
    let mut candidates: Vec<String> =
        if let Some(prefix) = word.strip_prefix('/').filter(|_| start == 0) {
            COMMANDS
                .iter()
                .filter(|c| c.name.starts_with(prefix))
                .map(|c| format!("/{}", c.name))
                .collect()
        } else if let Some(prefix) = word.strip_prefix('@') {
            users
                .iter()
                .filter(|u| u.starts_with(prefix))
                .map(|u| format!("@{u}"))
                .collect()
        } else if let Some(cmd) = before.strip_prefix('/') {
            let mut words = cmd.split_whitespace();
            let name = words.next()?;
            let spec = COMMANDS.iter().find(|c| c.name == name)?;
            // The argument being completed: words before it, not counting the
            // command itself.
            let index = cmd[..start - 1].split_whitespace().count() - 1;
            if spec.users_from.is_some_and(|from| index >= from) {
                users
                    .iter()
                    .filter(|u| u.starts_with(word))
                    .cloned()
                    .collect()
            } else if name == "group" && index == 0 {
                ["create"]
                    .iter()
                    .filter(|s| s.starts_with(word))
                    .map(|s| (*s).to_owned())
                    .collect()
            } else {
                Vec::new()
            }
        } else {
            Vec::new()
        };
    candidates.sort();
    candidates.dedup();
    (!candidates.is_empty()).then_some(Completion {
        start,
        end: cursor,
        candidates,
    })
}

/// The longest prefix all candidates share.
pub fn common_prefix(candidates: &[String]) -> &str {
    let Some(first) = candidates.first() else {
        return "";
    };
    let mut prefix = first.as_str();
    for c in &candidates[1..] {
        while !c.starts_with(prefix) {
            let cut = prefix.char_indices().next_back().map_or(0, |(i, _)| i);
            prefix = &prefix[..cut];
        }
    }
    prefix
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cmd(s: &str) -> Command {
        match parse(s).unwrap() {
            Input::Command(c) => c,
            Input::Message(m) => panic!("{s:?} parsed as message {m:?}"),
        }
    }

    #[test]
    fn the_same_words_as_qpq_ctl() {
        assert_eq!(cmd("/dm bob"), Command::Dm("bob".into()));
        assert_eq!(cmd("/dm @bob"), Command::Dm("bob".into()));
        assert_eq!(
            cmd("/group create team bob carol"),
            Command::GroupCreate {
                name: "team".into(),
                members: vec!["bob".into(), "carol".into()]
            }
        );
        assert_eq!(
            cmd("/group create solo"),
            Command::GroupCreate {
                name: "solo".into(),
                members: vec![]
            }
        );
        assert_eq!(cmd("/add dave"), Command::Add(vec!["dave".into()]));
        assert_eq!(cmd("/remove dave"), Command::Remove(vec!["dave".into()]));
        assert_eq!(cmd("/leave"), Command::Leave);
        assert_eq!(cmd("/rekey"), Command::Rekey);
        assert_eq!(cmd("/retry"), Command::Retry);
        assert_eq!(cmd("/discard"), Command::Discard);
        assert_eq!(cmd("/ack-integrity"), Command::AckIntegrity);
        assert_eq!(cmd("/members"), Command::Members);
        assert_eq!(cmd("/verify bob"), Command::Verify("bob".into()));
        assert_eq!(cmd("/invites"), Command::Invites);
        assert_eq!(
            cmd("/search  lunch  plans "),
            Command::Search("lunch  plans".into())
        );
        assert_eq!(cmd("/help"), Command::Help);
        assert_eq!(cmd("/quit"), Command::Quit);
        assert_eq!(cmd("/react 🎉"), Command::React("🎉".into()));
        assert_eq!(cmd("/mentions"), Command::Mentions);
        assert_eq!(cmd("/receipts on"), Command::Receipts(true));
        assert_eq!(cmd("/typing off"), Command::Typing(false));
        assert_eq!(cmd("/timer 1d"), Command::Timer(86_400));
        assert_eq!(cmd("/timer off"), Command::Timer(0));
        assert_eq!(
            cmd("/notify mentions"),
            Command::Notify(NotifyMode::Mentions)
        );
        assert_eq!(
            cmd("/attach ~/My\\ Photos/a.png  look at this"),
            Command::Attach {
                path: "~/My Photos/a.png".into(),
                caption: "look at this".into()
            }
        );
        assert!(parse("/attach").unwrap_err().contains("usage: /attach"));
    }

    #[test]
    fn settings_words_and_their_mistakes() {
        assert!(parse("/receipts maybe").unwrap_err().contains("on|off"));
        assert!(parse("/timer 2y").unwrap_err().contains("365 days"));
        assert!(parse("/timer 400d").is_err(), "longer than a year");
        assert!(parse("/timer 99999999999999999999d").is_err());
        assert!(parse("/notify loud")
            .unwrap_err()
            .contains("all|mentions|none"));
        assert!(parse("/react").is_err());
        assert!(parse(&format!("/react {}", "👍".repeat(20))).is_err());
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("2w"), Some(14 * 86_400));
        assert_eq!(duration_words(86_400), "1 day");
        assert_eq!(duration_words(8 * 3_600), "8 hours");
        assert_eq!(duration_words(90), "90 seconds");
        assert_eq!(duration_words(14 * 86_400), "2 weeks");
    }

    #[test]
    fn messages_and_mistakes() {
        assert_eq!(parse("hello").unwrap(), Input::Message("hello".into()));
        assert_eq!(parse("//etc").unwrap(), Input::Message("/etc".into()));
        assert!(parse("/dm").unwrap_err().contains("usage: /dm user"));
        assert!(parse("/dm a b").is_err());
        assert!(parse("/group team").unwrap_err().contains("create"));
        assert!(parse("/leave now").is_err());
        assert!(parse("/frobnicate").unwrap_err().contains("/help"));
        assert!(parse("/search ").is_err());
        let words: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
        let pasted = format!("/search {}", words.join(" "));
        assert!(
            parse(&pasted).unwrap_err().contains("at most 16"),
            "a pasted paragraph is refused before it reaches qpqd"
        );
    }

    #[test]
    fn completes_commands_and_users() {
        let users: Vec<String> = ["bob", "bobby", "carol"].map(String::from).to_vec();
        let c = complete("/re", 3, &users).unwrap();
        assert_eq!(
            c.candidates,
            ["/react", "/receipts", "/rekey", "/remove", "/retry"]
        );
        assert_eq!(common_prefix(&c.candidates), "/re");
        let c = complete("/dm b", 5, &users).unwrap();
        assert_eq!((c.start, c.end), (4, 5));
        assert_eq!(c.candidates, ["bob", "bobby"]);
        assert_eq!(common_prefix(&c.candidates), "bob");
        assert_eq!(
            complete("/group create team c", 20, &users)
                .unwrap()
                .candidates,
            ["carol"]
        );
        // The group's name is not a username.
        assert_eq!(complete("/group create c", 15, &users), None);
        assert_eq!(
            complete("/group c", 8, &users).unwrap().candidates,
            ["create"]
        );
        assert_eq!(
            complete("hi @ca", 6, &users).unwrap().candidates,
            ["@carol"]
        );
        assert_eq!(complete("hello b", 7, &users), None);
        assert_eq!(complete("/search b", 9, &users), None);
    }
}
