//! Settings a user chooses per conversation (read receipts, typing
//! indicators, the disappearing timer, desktop notifications) and the global
//! defaults a conversation without its own value uses. Stored as name/value
//! text pairs: a new setting needs no schema step.

use quicproquo_protocol::ipc::values::NotifyMode;
use rusqlite::{params, Connection, OptionalExtension};

use super::Id;

pub const READ_RECEIPTS: &str = "read_receipts";
pub const TYPING: &str = "typing";
/// Per conversation only (every member shares it; there is no default).
pub const TIMER_SECONDS: &str = "timer_seconds";
pub const NOTIFY: &str = "notify";
pub const NOTIFY_CONTENT: &str = "notify_content";

/// The global defaults live in the `settings` table under this prefix.
const DEFAULT_PREFIX: &str = "default.";

/// The settings of one conversation as they apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub read_receipts: bool,
    pub typing: bool,
    pub timer_seconds: u64,
    pub notify: NotifyMode,
    pub notify_content: bool,
}

/// The global defaults. Privacy first: no read receipts, no typing
/// indicators, notifications that do not show the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub read_receipts: bool,
    pub typing: bool,
    pub notify: NotifyMode,
    pub notify_content: bool,
}

pub fn conversation_value(
    c: &Connection,
    conversation: Id,
    name: &str,
) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT value FROM conversation_settings WHERE conversation = ?1 AND name = ?2",
        params![conversation, name],
        |r| r.get(0),
    )
    .optional()
}

/// Sets (or with `None`, clears back to the default) a conversation's value.
pub fn set_conversation_value(
    c: &Connection,
    conversation: Id,
    name: &str,
    value: Option<&str>,
) -> rusqlite::Result<()> {
    match value {
        Some(v) => c.execute(
            "INSERT INTO conversation_settings (conversation, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (conversation, name) DO UPDATE SET value = excluded.value",
            params![conversation, name, v],
        )?,
        None => c.execute(
            "DELETE FROM conversation_settings WHERE conversation = ?1 AND name = ?2",
            params![conversation, name],
        )?,
    };
    Ok(())
}

pub fn default_value(c: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT value FROM settings WHERE key = ?1",
        [format!("{DEFAULT_PREFIX}{name}")],
        |r| r.get(0),
    )
    .optional()
}

pub fn set_default_value(c: &Connection, name: &str, value: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![format!("{DEFAULT_PREFIX}{name}"), value],
    )?;
    Ok(())
}

fn parse_bool(v: Option<String>) -> Option<bool> {
    v.and_then(|v| v.parse().ok())
}

fn parse_notify(v: Option<String>) -> Option<NotifyMode> {
    v.and_then(|v| serde_json::from_value(serde_json::Value::String(v)).ok())
}

/// The words `NotifyMode` is stored as (its IPC spelling).
pub fn notify_word(mode: NotifyMode) -> &'static str {
    match mode {
        NotifyMode::All => "all",
        NotifyMode::Mentions => "mentions",
        NotifyMode::None => "none",
    }
}

pub fn defaults(c: &Connection) -> rusqlite::Result<Defaults> {
    Ok(Defaults {
        read_receipts: parse_bool(default_value(c, READ_RECEIPTS)?).unwrap_or(false),
        typing: parse_bool(default_value(c, TYPING)?).unwrap_or(false),
        notify: parse_notify(default_value(c, NOTIFY)?).unwrap_or(NotifyMode::All),
        notify_content: parse_bool(default_value(c, NOTIFY_CONTENT)?).unwrap_or(false),
    })
}

pub fn effective(c: &Connection, conversation: Id) -> rusqlite::Result<Effective> {
    let d = defaults(c)?;
    let own = |name| conversation_value(c, conversation, name);
    Ok(Effective {
        read_receipts: parse_bool(own(READ_RECEIPTS)?).unwrap_or(d.read_receipts),
        typing: parse_bool(own(TYPING)?).unwrap_or(d.typing),
        timer_seconds: own(TIMER_SECONDS)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        notify: parse_notify(own(NOTIFY)?).unwrap_or(d.notify),
        notify_content: parse_bool(own(NOTIFY_CONTENT)?).unwrap_or(d.notify_content),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_value_overrides_the_default_until_cleared() {
        let (_d, c, team) = crate::db::test_db_with_team();
        let e = effective(&c, team).unwrap();
        assert!(
            !e.read_receipts && !e.typing && !e.notify_content,
            "privacy first"
        );
        assert_eq!((e.notify, e.timer_seconds), (NotifyMode::All, 0));
        set_default_value(&c, READ_RECEIPTS, "true").unwrap();
        set_default_value(&c, NOTIFY, notify_word(NotifyMode::Mentions)).unwrap();
        assert!(effective(&c, team).unwrap().read_receipts);
        assert_eq!(effective(&c, team).unwrap().notify, NotifyMode::Mentions);
        set_conversation_value(&c, team, READ_RECEIPTS, Some("false")).unwrap();
        set_conversation_value(&c, team, TIMER_SECONDS, Some("60")).unwrap();
        let e = effective(&c, team).unwrap();
        assert!(!e.read_receipts);
        assert_eq!(e.timer_seconds, 60);
        set_conversation_value(&c, team, READ_RECEIPTS, None).unwrap();
        assert!(
            effective(&c, team).unwrap().read_receipts,
            "back to the default"
        );
    }
}
