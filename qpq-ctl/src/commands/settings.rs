//! `get` and `set`: a conversation's settings (read receipts, typing
//! indicators, the disappearing timer, notifications), or with `--default`
//! the defaults of conversations without their own value.
//!
//! `set` takes `CONVERSATION SETTING VALUE`, or `--default SETTING VALUE`:
//! clap cannot tell an optional leading positional from the next one, so
//! the words are read here, with the same exit status (2) as clap's usage
//! errors. The setting names are the IPC's with dashes (`read-receipts`,
//! `notify-content`); the timer is only per conversation (every member
//! shares it), so it has no default.

use quicproquo_protocol::ipc::methods::{method, ConversationSettingsParams, SettingsParams};
use quicproquo_protocol::ipc::values::{
    ConversationRef, ConversationSettings, NotifyMode, Settings,
};

use super::word;
use crate::cli::{parse_on_off, GetArgs, SetArgs};
use crate::duration;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{Out, Table};
use crate::session::Session;

/// One setting and its new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    ReadReceipts(bool),
    Typing(bool),
    Timer(u64),
    Notify(NotifyMode),
    NotifyContent(bool),
}

const SETTINGS: &str = "read-receipts, typing, timer, notify, notify-content";

impl Change {
    fn parse(setting: &str, value: &str) -> Result<Change, CtlError> {
        let usage = |e: String| CtlError::Usage(format!("{setting}: {e}"));
        Ok(match setting {
            "read-receipts" => Change::ReadReceipts(parse_on_off(value).map_err(usage)?),
            "typing" => Change::Typing(parse_on_off(value).map_err(usage)?),
            "timer" => Change::Timer(duration::parse_timer(value).map_err(usage)?),
            "notify" => Change::Notify(parse_notify(value).map_err(usage)?),
            "notify-content" => Change::NotifyContent(parse_on_off(value).map_err(usage)?),
            other => {
                return Err(CtlError::Usage(format!(
                    "`{other}` is not a setting; the settings are {SETTINGS}"
                )))
            }
        })
    }

    fn conversation_params(self, conversation: ConversationRef) -> ConversationSettingsParams {
        let mut p = read_only(conversation);
        match self {
            Change::ReadReceipts(on) => p.read_receipts = Some(on),
            Change::Typing(on) => p.typing = Some(on),
            Change::Timer(s) => p.timer_seconds = Some(s),
            Change::Notify(n) => p.notify = Some(n),
            Change::NotifyContent(on) => p.notify_content = Some(on),
        }
        p
    }

    fn default_params(self) -> Result<SettingsParams, CtlError> {
        let mut p = SettingsParams::default();
        match self {
            Change::ReadReceipts(on) => p.read_receipts = Some(on),
            Change::Typing(on) => p.typing = Some(on),
            Change::Timer(_) => {
                return Err(CtlError::Usage(
                    "the disappearing timer has no default: it is set per conversation, for \
                     every member (`qpq-ctl set CONVERSATION timer 1d`)"
                        .into(),
                ))
            }
            Change::Notify(n) => p.notify = Some(n),
            Change::NotifyContent(on) => p.notify_content = Some(on),
        }
        Ok(p)
    }
}

/// Asks for a conversation's settings, changing none.
fn read_only(conversation: ConversationRef) -> ConversationSettingsParams {
    ConversationSettingsParams {
        conversation,
        read_receipts: None,
        typing: None,
        timer_seconds: None,
        notify: None,
        notify_content: None,
    }
}

/// A notification mode as the IPC spells it.
fn parse_notify(s: &str) -> Result<NotifyMode, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not one of all, mentions, none"))
}

/// The command line's words: where, what, to what.
fn parse_words(args: SetArgs) -> Result<(Option<ConversationRef>, Change), CtlError> {
    match (args.default, args.words.as_slice()) {
        (true, [setting, value]) => Ok((None, Change::parse(setting, value)?)),
        (false, [conversation, setting, value]) => {
            let conversation = ConversationRef::parse(conversation)
                .map_err(|e| CtlError::Usage(format!("`{conversation}`: {e}")))?;
            Ok((Some(conversation), Change::parse(setting, value)?))
        }
        (true, _) => Err(CtlError::Usage(
            "with --default, give SETTING VALUE (no conversation): e.g. \
             `qpq-ctl set --default read-receipts on`"
                .into(),
        )),
        (false, _) => Err(CtlError::Usage(
            "give CONVERSATION SETTING VALUE (e.g. `qpq-ctl set team timer 1d`), or \
             --default SETTING VALUE"
                .into(),
        )),
    }
}

pub async fn get(session: &Session, out: &mut Out, args: GetArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    match args.conversation {
        Some(conversation) => {
            let s = client
                .request::<method::ConversationSettingsMethod>(read_only(conversation))
                .await?;
            print_conversation(out, &s)
        }
        None => {
            let s = client
                .request::<method::SettingsMethod>(SettingsParams::default())
                .await?;
            print_defaults(out, &s)
        }
    }
}

pub async fn set(session: &Session, out: &mut Out, args: SetArgs) -> Result<Exit, CtlError> {
    let (conversation, change) = parse_words(args)?;
    // Every usage error comes before the daemon is reached.
    match conversation {
        Some(c) => {
            let params = change.conversation_params(c);
            let client = session.connect().await?;
            let s = client
                .request::<method::ConversationSettingsMethod>(params)
                .await?;
            print_conversation(out, &s)
        }
        None => {
            let params = change.default_params()?;
            let client = session.connect().await?;
            let s = client.request::<method::SettingsMethod>(params).await?;
            print_defaults(out, &s)
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn print_conversation(out: &mut Out, s: &ConversationSettings) -> Result<Exit, CtlError> {
    let mut t = Table::plain();
    t.row(["read-receipts", on_off(s.read_receipts)]);
    t.row(["typing", on_off(s.typing)]);
    let timer = match s.timer_seconds {
        0 => "off".to_owned(),
        n => format!("{} ({})", duration::short(n), duration::long(n)),
    };
    t.row(["timer", &timer]);
    t.row(["notify", &word(&s.notify)]);
    t.row(["notify-content", on_off(s.notify_content)]);
    out.table_or_json(t, s)?;
    Ok(Exit::Ok)
}

fn print_defaults(out: &mut Out, s: &Settings) -> Result<Exit, CtlError> {
    let mut t = Table::plain();
    t.row(["read-receipts", on_off(s.read_receipts)]);
    t.row(["typing", on_off(s.typing)]);
    t.row(["notify", &word(&s.notify)]);
    t.row(["notify-content", on_off(s.notify_content)]);
    out.table_or_json(t, s)?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    fn words(default: bool, w: &[&str]) -> SetArgs {
        SetArgs {
            default,
            words: w.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn words_name_a_conversation_or_the_default() {
        let (c, ch) = parse_words(words(false, &["team", "timer", "1d"])).unwrap();
        assert_eq!(c, Some(ConversationRef::Name("team".into())));
        assert_eq!(ch, Change::Timer(86_400));
        let (c, ch) = parse_words(words(true, &["read-receipts", "on"])).unwrap();
        assert_eq!(c, None);
        assert_eq!(ch, Change::ReadReceipts(true));
        let (_, ch) = parse_words(words(false, &["@bob", "notify", "mentions"])).unwrap();
        assert_eq!(ch, Change::Notify(NotifyMode::Mentions));
        let (_, ch) = parse_words(words(false, &["@bob", "notify-content", "off"])).unwrap();
        assert_eq!(ch, Change::NotifyContent(false));
        let p = Change::Typing(true).conversation_params(ConversationRef::Name("t".into()));
        assert_eq!(p.typing, Some(true));
        assert_eq!(p.read_receipts, None);
    }

    #[test]
    fn bad_words_are_usage_errors_that_say_what_to_write() {
        for (default, w, needle) in [
            (true, &["team", "timer", "1d"][..], "with --default"),
            (false, &["timer", "1d"], "CONVERSATION SETTING VALUE"),
            (false, &["team", "colour", "red"], "not a setting"),
            (false, &["team", "typing", "yes"], "not on or off"),
            (false, &["team", "timer", "1y"], "not a duration"),
            (false, &["team", "notify", "loud"], "all, mentions, none"),
            (false, &["@", "typing", "on"], "`@`"),
        ] {
            let e = parse_words(words(default, w)).unwrap_err();
            assert_eq!(e.exit(), Exit::Usage, "{w:?}");
            assert!(e.to_string().contains(needle), "{w:?}: {e}");
        }
        let e = Change::Timer(60).default_params().unwrap_err();
        assert!(e.to_string().contains("no default"), "{e}");
    }
}
