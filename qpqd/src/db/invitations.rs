//! Invitations waiting for the user's consent, the group mail that arrives
//! for them meanwhile, and the setting that decides which invitations need
//! no asking.
//!
//! An invitation is a Welcome we read but did not process: we are already a
//! leaf of that group (the inviter used our key package), so its Welcome
//! and the key package's private keys are kept, and the group's messages
//! are held here, in arrival order, until the user accepts (they are then
//! processed after the Welcome, so nothing sent in between is lost) or
//! declines (they are dropped). A declined invitation keeps its row, without
//! the Welcome, so later mail for that group is dropped too.

use quicproquo_protocol::ipc::values::AutoAccept;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::conversations::Kind;
use super::Id;

/// An invitation as it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: Id,
    pub group_id: Vec<u8>,
    pub welcome: Vec<u8>,
    pub inviter: String,
    pub inviter_key: [u8; 32],
    pub name: String,
    pub kind: Kind,
    /// Everyone in the group as the Welcome names them, us included.
    pub members: Vec<(String, [u8; 32])>,
    pub received_ms: u64,
}

/// What became of an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    /// Declined; its notice and removal request are sent (or being sent).
    Declined,
}

const COLUMNS: &str =
    "id, group_id, welcome, inviter, inviter_key, name, kind, members, received_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<Invitation> {
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            format!("bad {what} in invitations").into(),
        )
    };
    let group: Vec<u8> = r.get(1)?;
    let key: Vec<u8> = r.get(4)?;
    let kind: String = r.get(6)?;
    let members: String = r.get(7)?;
    let members: Vec<(String, String)> =
        serde_json::from_str(&members).map_err(|_| bad(7, "members"))?;
    Ok(Invitation {
        id: r.get(0)?,
        group_id: group,
        welcome: r.get(2)?,
        inviter: r.get(3)?,
        inviter_key: key.try_into().map_err(|_| bad(4, "inviter key"))?,
        name: r.get(5)?,
        kind: if kind == "dm" { Kind::Dm } else { Kind::Group },
        members: members
            .into_iter()
            .map(|(name, key)| {
                let key = hex::decode(key)
                    .ok()
                    .and_then(|k| k.try_into().ok())
                    .ok_or_else(|| bad(7, "member key"))?;
                Ok((name, key))
            })
            .collect::<rusqlite::Result<_>>()?,
        received_ms: r.get::<_, i64>(8)? as u64,
    })
}

/// Keeps a new invitation; `false` if one for that group exists already (a
/// redelivered Welcome, or a group we declined).
pub fn insert(c: &Connection, inv: &Invitation) -> rusqlite::Result<bool> {
    let members: Vec<(&str, String)> = inv
        .members
        .iter()
        .map(|(n, k)| (n.as_str(), hex::encode(k)))
        .collect();
    let members = serde_json::to_string(&members).expect("strings serialize");
    let n = c.execute(
        &format!(
            "INSERT OR IGNORE INTO invitations ({COLUMNS}, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending')"
        ),
        params![
            inv.id,
            &inv.group_id[..],
            inv.welcome,
            inv.inviter,
            &inv.inviter_key[..],
            inv.name,
            inv.kind.as_str(),
            members,
            inv.received_ms as i64
        ],
    )?;
    Ok(n == 1)
}

/// Invitations waiting for the user, oldest first.
pub fn pending(c: &Connection) -> rusqlite::Result<Vec<Invitation>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE state = 'pending' ORDER BY received_ms, rowid"
    ))?;
    let rows = st.query_map([], row)?;
    rows.collect()
}

/// A pending invitation by its id.
pub fn pending_by_id(c: &Connection, id: Id) -> rusqlite::Result<Option<Invitation>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM invitations WHERE id = ?1 AND state = 'pending'"),
        [id],
        row,
    )
    .optional()
}

/// Whether we hold an invitation for `group`, and in what state.
pub fn state_of_group(c: &Connection, group: &[u8]) -> rusqlite::Result<Option<State>> {
    let state: Option<String> = c
        .query_row(
            "SELECT state FROM invitations WHERE group_id = ?1",
            [group],
            |r| r.get(0),
        )
        .optional()?;
    Ok(state.map(|s| {
        if s == "pending" {
            State::Pending
        } else {
            State::Declined
        }
    }))
}

/// Most invitations waiting at once: anyone can invite, so what waits is
/// bounded; past it a new invitation is refused (and said).
pub const MAX_PENDING: usize = 20;
/// Most messages held for one invitation, and their bytes: past either,
/// what arrives is dropped and counted, and accepting says so.
pub const MAX_HELD_MESSAGES: usize = 1_000;
pub const MAX_HELD_BYTES: usize = 8 * 1024 * 1024;

/// How many invitations wait.
pub fn pending_count(c: &Connection) -> rusqlite::Result<usize> {
    c.query_row(
        "SELECT count(*) FROM invitations WHERE state = 'pending'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
}

/// Holds a message for the group of a pending invitation, within
/// [`MAX_HELD_MESSAGES`] and [`MAX_HELD_BYTES`]; `false` when it was
/// dropped (and counted) instead.
pub fn hold(c: &Connection, group: &[u8], bytes: &[u8]) -> rusqlite::Result<bool> {
    let (n, size): (i64, i64) = c.query_row(
        "SELECT count(*), coalesce(sum(length(bytes)), 0) FROM held_mail WHERE group_id = ?1",
        [group],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if n as usize >= MAX_HELD_MESSAGES || size as usize + bytes.len() > MAX_HELD_BYTES {
        c.execute(
            "UPDATE invitations SET dropped = dropped + 1 WHERE group_id = ?1",
            [group],
        )?;
        return Ok(false);
    }
    c.execute(
        "INSERT INTO held_mail (group_id, bytes) VALUES (?1, ?2)",
        params![group, bytes],
    )?;
    Ok(true)
}

/// How many messages for `group` were dropped while it waited.
pub fn dropped(c: &Connection, group: &[u8]) -> rusqlite::Result<u64> {
    c.query_row(
        "SELECT dropped FROM invitations WHERE group_id = ?1",
        [group],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|n| n.unwrap_or(0).max(0) as u64)
}

/// The messages held for `group`, in arrival order, removed.
pub fn take_held(c: &Connection, group: &[u8]) -> rusqlite::Result<Vec<Vec<u8>>> {
    let held: Vec<Vec<u8>> = c
        .prepare("SELECT bytes FROM held_mail WHERE group_id = ?1 ORDER BY seq")?
        .query_map([group], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    c.execute("DELETE FROM held_mail WHERE group_id = ?1", [group])?;
    Ok(held)
}

/// Accepted: the invitation is gone (the group is a conversation now).
pub fn remove(c: &Connection, id: Id) -> rusqlite::Result<()> {
    c.execute("DELETE FROM invitations WHERE id = ?1", [id])?;
    Ok(())
}

/// Declined: the Welcome and the held mail are dropped; the row stays so
/// that later mail for the group is dropped too.
pub fn mark_declined(c: &Connection, id: Id) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE invitations SET state = 'declined', welcome = x'', members = '[]' WHERE id = ?1",
        [id],
    )?;
    c.execute(
        "DELETE FROM held_mail WHERE group_id = (SELECT group_id FROM invitations WHERE id = ?1)",
        [id],
    )?;
    Ok(())
}

/// Which invitations are accepted without asking (default: from contacts).
pub fn auto_accept(c: &Connection) -> rusqlite::Result<AutoAccept> {
    let v: Option<String> = c
        .query_row(
            "SELECT value FROM settings WHERE key = 'auto_accept'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or(AutoAccept::Contacts))
}

pub fn set_auto_accept(c: &Connection, mode: AutoAccept) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO settings (key, value) VALUES ('auto_accept', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [serde_json::to_string(&mode).expect("a word serializes")],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(group: u8) -> Invitation {
        Invitation {
            id: Id::random(),
            group_id: vec![group; 16],
            welcome: vec![1, 2, 3],
            inviter: "bob".into(),
            inviter_key: [2; 32],
            name: "team".into(),
            kind: Kind::Group,
            members: vec![("bob".into(), [2; 32]), ("alice".into(), [1; 32])],
            received_ms: 5,
        }
    }

    #[test]
    fn invitations_hold_mail_until_accepted_or_declined() {
        let (_d, c) = crate::db::test_db();
        let team = invitation(7);
        assert!(insert(&c, &team).unwrap());
        assert!(!insert(&c, &invitation(7)).unwrap(), "one per group");
        assert_eq!(pending(&c).unwrap(), std::slice::from_ref(&team));
        assert_eq!(state_of_group(&c, &[7; 16]).unwrap(), Some(State::Pending));
        hold(&c, &[7; 16], b"one").unwrap();
        hold(&c, &[7; 16], b"two").unwrap();
        hold(&c, &[8; 16], b"other").unwrap();
        assert_eq!(
            take_held(&c, &[7; 16]).unwrap(),
            [b"one".to_vec(), b"two".to_vec()]
        );
        assert!(take_held(&c, &[7; 16]).unwrap().is_empty());

        hold(&c, &[7; 16], b"three").unwrap();
        mark_declined(&c, team.id).unwrap();
        assert_eq!(pending_by_id(&c, team.id).unwrap(), None);
        assert_eq!(state_of_group(&c, &[7; 16]).unwrap(), Some(State::Declined));
        assert!(take_held(&c, &[7; 16]).unwrap().is_empty(), "dropped");
        assert_eq!(take_held(&c, &[8; 16]).unwrap(), [b"other".to_vec()]);
    }

    /// Anyone can invite: what waits is bounded, and what was dropped is
    /// counted so accepting can say so.
    #[test]
    fn held_mail_is_bounded_and_drops_are_counted() {
        let (_d, c) = crate::db::test_db();
        insert(&c, &invitation(3)).unwrap();
        for _ in 0..MAX_HELD_MESSAGES {
            assert!(hold(&c, &[3; 16], b"x").unwrap());
        }
        assert!(!hold(&c, &[3; 16], b"one too many").unwrap());
        assert!(!hold(&c, &[3; 16], b"and another").unwrap());
        assert_eq!(dropped(&c, &[3; 16]).unwrap(), 2);
        assert_eq!(take_held(&c, &[3; 16]).unwrap().len(), MAX_HELD_MESSAGES);

        insert(&c, &invitation(4)).unwrap();
        assert!(hold(&c, &[4; 16], &vec![0; MAX_HELD_BYTES]).unwrap());
        assert!(!hold(&c, &[4; 16], b"over the bytes").unwrap());
        assert_eq!(dropped(&c, &[4; 16]).unwrap(), 1);
        assert_eq!(pending_count(&c).unwrap(), 2);
    }

    #[test]
    fn auto_accept_defaults_to_contacts_and_is_kept() {
        let (_d, c) = crate::db::test_db();
        assert_eq!(auto_accept(&c).unwrap(), AutoAccept::Contacts);
        set_auto_accept(&c, AutoAccept::None).unwrap();
        set_auto_accept(&c, AutoAccept::Verified).unwrap();
        assert_eq!(auto_accept(&c).unwrap(), AutoAccept::Verified);
    }
}
