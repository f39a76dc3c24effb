//! Conversations (a DM or a group, each one MLS group) and contacts (the
//! identity key pinned per username, its DM channel, verification state).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::Id;
use crate::mls::Suite;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dm,
    Group,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dm => "dm",
            Kind::Group => "group",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: Id,
    pub kind: Kind,
    pub name: String,
    pub group_id: Vec<u8>,
    /// The other user of a DM.
    pub peer: Option<String>,
    pub ciphersuite: Suite,
    pub last_activity_ms: u64,
    pub active: bool,
}

const COLUMNS: &str = "id, kind, name, group_id, peer, ciphersuite, last_activity_ms, active";

fn row(r: &Row<'_>) -> rusqlite::Result<Conversation> {
    let kind: String = r.get(1)?;
    Ok(Conversation {
        id: r.get(0)?,
        kind: if kind == "dm" { Kind::Dm } else { Kind::Group },
        name: r.get(2)?,
        group_id: r.get(3)?,
        peer: r.get(4)?,
        ciphersuite: {
            let name: String = r.get(5)?;
            Suite::parse(&name).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    5,
                    rusqlite::types::Type::Text,
                    format!("unknown ciphersuite `{name}`").into(),
                )
            })?
        },
        last_activity_ms: r.get::<_, i64>(6)? as u64,
        active: r.get(7)?,
    })
}

pub fn insert(c: &Connection, conv: &Conversation, now_ms: u64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO conversations (id, kind, name, group_id, peer, ciphersuite, created_ms, last_activity_ms, active)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        params![
            conv.id,
            conv.kind.as_str(),
            conv.name,
            conv.group_id,
            conv.peer,
            conv.ciphersuite.as_str(),
            now_ms as i64,
            conv.active
        ],
    )?;
    Ok(())
}

pub fn all(c: &Connection) -> rusqlite::Result<Vec<Conversation>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM conversations ORDER BY last_activity_ms DESC, name"
    ))?;
    let rows = st.query_map([], row)?;
    rows.collect()
}

pub fn by_id(c: &Connection, id: Id) -> rusqlite::Result<Option<Conversation>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM conversations WHERE id = ?1"),
        [id],
        row,
    )
    .optional()
}

/// The conversation an MLS group belongs to: the one sending on it, or the
/// one it was merged into (see [`merge_dm_group`]).
pub fn by_group(c: &Connection, group_id: &[u8]) -> rusqlite::Result<Option<Conversation>> {
    let direct = c
        .query_row(
            &format!("SELECT {COLUMNS} FROM conversations WHERE group_id = ?1"),
            [group_id],
            row,
        )
        .optional()?;
    if direct.is_some() {
        return Ok(direct);
    }
    let merged: Option<Id> = c
        .query_row(
            "SELECT conversation FROM conversation_groups WHERE group_id = ?1",
            [group_id],
            |r| r.get(0),
        )
        .optional()?;
    match merged {
        Some(id) => by_id(c, id),
        None => Ok(None),
    }
}

/// A second MLS group for the DM `dm` (both users opened it at once). Both
/// daemons apply the same rule, so they converge without talking: the group
/// with the smaller id is the one sent on; the other stays mapped to the same
/// conversation, so nothing sent on it is lost. Returns the conversation as
/// it is now.
pub fn merge_dm_group(
    c: &Connection,
    dm: &Conversation,
    other_group: &[u8],
) -> rusqlite::Result<Conversation> {
    if other_group == dm.group_id.as_slice() {
        return Ok(dm.clone());
    }
    let (keep, alias) = if other_group < dm.group_id.as_slice() {
        (other_group, dm.group_id.as_slice())
    } else {
        (dm.group_id.as_slice(), other_group)
    };
    c.execute(
        "INSERT OR IGNORE INTO conversation_groups (group_id, conversation) VALUES (?1, ?2)",
        params![alias, dm.id],
    )?;
    c.execute(
        "UPDATE conversations SET group_id = ?2 WHERE id = ?1",
        params![dm.id, keep],
    )?;
    Ok(Conversation {
        group_id: keep.to_vec(),
        ..dm.clone()
    })
}

pub fn dm_with(c: &Connection, peer: &str) -> rusqlite::Result<Option<Conversation>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM conversations WHERE kind = 'dm' AND peer = ?1"),
        [peer],
        row,
    )
    .optional()
}

/// Resolves what a user typed: an id (32 hex digits), `@username` for a
/// DM, or a name (of the conversations with that name, one we are still in
/// before one we left, then the most recently active).
pub fn resolve(c: &Connection, reference: &str) -> rusqlite::Result<Option<Conversation>> {
    if let Some(peer) = reference.strip_prefix('@') {
        return dm_with(c, peer);
    }
    if let Some(id) = Id::parse_hex(reference) {
        if let Some(conv) = by_id(c, id)? {
            return Ok(Some(conv));
        }
    }
    c.query_row(
        &format!(
            "SELECT {COLUMNS} FROM conversations WHERE name = ?1
             ORDER BY active DESC, last_activity_ms DESC LIMIT 1"
        ),
        [reference],
        row,
    )
    .optional()
}

/// Active conversations whose group was made before the server validated
/// groups (schema 13), to re-create (`agent::legacy`).
pub fn legacy(c: &Connection) -> rusqlite::Result<Vec<Conversation>> {
    c.prepare(&format!(
        "SELECT {COLUMNS} FROM conversations WHERE legacy = 1 AND active = 1 ORDER BY id"
    ))?
    .query_map([], row)?
    .collect()
}

/// Moves a conversation to a new group (its legacy group re-created): the
/// history stays; aliases of the old group go.
pub fn replace_group(c: &Connection, id: Id, group: &[u8]) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE conversations SET group_id = ?2, legacy = 0 WHERE id = ?1",
        params![id, group],
    )?;
    c.execute(
        "DELETE FROM conversation_groups WHERE conversation = ?1",
        [id],
    )?;
    Ok(())
}

/// Whether the conversation's group waits to be re-created (`legacy`).
pub fn is_legacy(c: &Connection, id: Id) -> rusqlite::Result<bool> {
    Ok(c.query_row(
        "SELECT legacy FROM conversations WHERE id = ?1",
        [id],
        |r| r.get::<_, bool>(0),
    )
    .optional()?
    .unwrap_or(false))
}

/// The conversation is no longer legacy (its group is gone: nothing to
/// re-create).
pub fn clear_legacy(c: &Connection, id: Id) -> rusqlite::Result<()> {
    c.execute("UPDATE conversations SET legacy = 0 WHERE id = ?1", [id])?;
    Ok(())
}

pub fn set_name(c: &Connection, id: Id, name: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE conversations SET name = ?2 WHERE id = ?1",
        params![id, name],
    )?;
    Ok(())
}

pub fn touch(c: &Connection, id: Id, at_ms: u64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE conversations SET last_activity_ms = max(last_activity_ms, ?2) WHERE id = ?1",
        params![id, at_ms as i64],
    )?;
    Ok(())
}

pub fn set_joined_epoch(c: &Connection, id: Id, epoch: u64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE conversations SET joined_epoch = ?2 WHERE id = ?1",
        params![id, epoch as i64],
    )?;
    Ok(())
}

pub fn joined_epoch(c: &Connection, id: Id) -> rusqlite::Result<u64> {
    c.query_row(
        "SELECT joined_epoch FROM conversations WHERE id = ?1",
        [id],
        |r| r.get::<_, i64>(0),
    )
    .map(|e| e.max(0) as u64)
}

/// Detaches an inactive conversation from its MLS group, so that a new
/// instance of the group (joined again) gets a conversation of its own. The
/// old one keeps its history; its group id becomes a random one that names
/// no group.
pub fn retire_group(c: &Connection, id: Id) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE conversations SET group_id = randomblob(16), active = 0 WHERE id = ?1",
        [id],
    )?;
    c.execute(
        "DELETE FROM conversation_groups WHERE conversation = ?1",
        [id],
    )?;
    Ok(())
}

pub fn set_active(c: &Connection, id: Id, active: bool) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE conversations SET active = ?2 WHERE id = ?1",
        params![id, active],
    )?;
    Ok(())
}

/// A contact: the identity key the server lists for a username (pinned on
/// first use), and what changed since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub username: String,
    pub identity: [u8; 32],
    pub channel: Option<[u8; 16]>,
    /// The key the user confirmed by comparing safety numbers, if any.
    pub verified_key: Option<[u8; 32]>,
    pub key_changed: bool,
}

impl Contact {
    /// The pinned key is the one the user confirmed.
    pub fn verified(&self) -> bool {
        self.verified_key == Some(self.identity)
    }
}

/// How far a (username, key) pair is trusted: `verified` only for the very
/// key the user confirmed; `key_changed` when the key is not the one pinned
/// for the name, or the pinned one changed unconfirmed.
pub fn trust(contact: Option<&Contact>, key: &[u8; 32]) -> (bool, bool) {
    match contact {
        None => (false, false),
        Some(k) => (
            k.verified_key.as_ref() == Some(key) && &k.identity == key,
            &k.identity != key || k.key_changed,
        ),
    }
}

/// Records that the server said `username`'s account was deleted.
pub fn mark_deleted(c: &Connection, username: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO deleted_users (username) VALUES (?1)",
        [username],
    )?;
    Ok(())
}

/// Whether the server said `username`'s account was deleted.
pub fn is_deleted(c: &Connection, username: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM deleted_users WHERE username = ?1")?
        .exists([username])
}

pub fn contact(c: &Connection, username: &str) -> rusqlite::Result<Option<Contact>> {
    c.query_row(
        "SELECT username, identity, channel, verified_key, key_changed FROM contacts WHERE username = ?1",
        [username],
        |r| {
            let identity: Vec<u8> = r.get(1)?;
            let channel: Option<Vec<u8>> = r.get(2)?;
            let verified_key: Option<Vec<u8>> = r.get(3)?;
            Ok(Contact {
                username: r.get(0)?,
                identity: identity.try_into().unwrap_or([0; 32]),
                channel: channel.and_then(|c| c.try_into().ok()),
                verified_key: verified_key.and_then(|k| k.try_into().ok()),
                key_changed: r.get(4)?,
            })
        },
    )
    .optional()
}

/// What pinning an identity key for a username found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    New,
    Same,
    /// The user's key differs from the pinned one: flagged, not accepted
    /// silently (the new key is recorded, `key_changed` set, `verified`
    /// cleared).
    Changed {
        previous: [u8; 32],
    },
}

pub fn pin_identity(c: &Connection, username: &str, identity: &[u8; 32]) -> rusqlite::Result<Pin> {
    match contact(c, username)? {
        None => {
            c.execute(
                "INSERT INTO contacts (username, identity) VALUES (?1, ?2)",
                params![username, &identity[..]],
            )?;
            Ok(Pin::New)
        }
        Some(k) if &k.identity == identity => Ok(Pin::Same),
        Some(k) => {
            c.execute(
                "UPDATE contacts SET previous_identity = identity, identity = ?2, key_changed = 1,
                     verified = 0, channel = NULL WHERE username = ?1",
                params![username, &identity[..]],
            )?;
            Ok(Pin::Changed {
                previous: k.identity,
            })
        }
    }
}

/// Keeps `channel` as our DM channel with `username`, if `identity` is the
/// key pinned for them (a channel to another key is someone else's).
pub fn set_channel_for(
    c: &Connection,
    username: &str,
    identity: &[u8; 32],
    channel: &[u8; 16],
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE contacts SET channel = ?3 WHERE username = ?1 AND identity = ?2",
        params![username, &identity[..], &channel[..]],
    )?;
    Ok(())
}

/// Marks `key` verified for `username`, if it is the key pinned for them
/// (whether it was is the answer): the mark stays with that key.
pub fn set_verified(c: &Connection, username: &str, key: &[u8; 32]) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE contacts SET verified = 1, verified_key = ?2, key_changed = 0
         WHERE username = ?1 AND identity = ?2",
        params![username, &key[..]],
    )?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(name: &str, kind: Kind, peer: Option<&str>) -> Conversation {
        Conversation {
            id: Id::random(),
            kind,
            name: name.into(),
            group_id: Id::random().0.to_vec(),
            peer: peer.map(Into::into),
            ciphersuite: Suite::Hybrid,
            last_activity_ms: 0,
            active: true,
        }
    }

    #[test]
    fn resolve_by_id_name_and_at_user() {
        let (_d, c) = crate::db::test_db();
        let team = conv("team", Kind::Group, None);
        let dm = conv("@bob", Kind::Dm, Some("bob"));
        insert(&c, &team, 1).unwrap();
        insert(&c, &dm, 2).unwrap();
        assert_eq!(resolve(&c, "team").unwrap().unwrap().id, team.id);
        assert_eq!(
            resolve(&c, &team.id.to_string()).unwrap().unwrap().id,
            team.id
        );
        assert_eq!(resolve(&c, "@bob").unwrap().unwrap().id, dm.id);
        assert!(resolve(&c, "@carol").unwrap().is_none());
        assert!(resolve(&c, "nothing").unwrap().is_none());
        // One DM per peer.
        assert!(insert(&c, &conv("@bob", Kind::Dm, Some("bob")), 3).is_err());
        assert_eq!(by_group(&c, &team.group_id).unwrap().unwrap().id, team.id);
    }

    /// Both sides of a DM opened at once merge the two groups the same way:
    /// whichever group each side had first, the smaller id is sent on and
    /// both ids find the one conversation.
    #[test]
    fn a_second_dm_group_merges_into_the_dm_on_both_sides() {
        let (small, large) = (vec![1u8; 16], vec![2u8; 16]);
        for (ours, theirs) in [(&small, &large), (&large, &small)] {
            let (_d, c) = crate::db::test_db();
            let mut dm = conv("@bob", Kind::Dm, Some("bob"));
            dm.group_id = ours.clone();
            insert(&c, &dm, 1).unwrap();
            let merged = merge_dm_group(&c, &dm, theirs).unwrap();
            assert_eq!(merged.group_id, small);
            assert_eq!(by_id(&c, dm.id).unwrap().unwrap().group_id, small);
            for g in [&small, &large] {
                assert_eq!(by_group(&c, g).unwrap().unwrap().id, dm.id);
            }
            assert_eq!(resolve(&c, "@bob").unwrap().unwrap().group_id, small);
            // The same Welcome processed twice changes nothing.
            assert_eq!(merge_dm_group(&c, &merged, theirs).unwrap(), merged);
        }
    }

    #[test]
    fn identity_keys_are_pinned_and_changes_flagged() {
        let (_d, c) = crate::db::test_db();
        assert_eq!(pin_identity(&c, "bob", &[1; 32]).unwrap(), Pin::New);
        assert!(
            !set_verified(&c, "bob", &[2; 32]).unwrap(),
            "not bob's pinned key"
        );
        assert!(set_verified(&c, "bob", &[1; 32]).unwrap());
        assert_eq!(
            trust(contact(&c, "bob").unwrap().as_ref(), &[1; 32]),
            (true, false)
        );
        assert_eq!(
            trust(contact(&c, "bob").unwrap().as_ref(), &[3; 32]),
            (false, true),
            "another key under bob's name is neither verified nor bob's"
        );
        assert_eq!(pin_identity(&c, "bob", &[1; 32]).unwrap(), Pin::Same);
        assert_eq!(
            pin_identity(&c, "bob", &[2; 32]).unwrap(),
            Pin::Changed { previous: [1; 32] }
        );
        let k = contact(&c, "bob").unwrap().unwrap();
        assert!(k.key_changed && !k.verified());
        assert_eq!(k.identity, [2; 32]);
        // The confirmation stays with the key that was confirmed.
        assert_eq!(k.verified_key, Some([1; 32]));
    }
}
