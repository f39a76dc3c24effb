//! Leaf history: who sat in which leaf of a group, and until which epoch.
//!
//! openmls attributes an application message from a past epoch with the
//! leaves of that epoch, but exposes only the sender's credential, not its
//! signature key. The engine reports senders as username + identity key, so
//! it keeps its own record: whenever a commit empties a leaf or puts someone
//! else in it, the previous occupant is written to `qpq_mls_past_leaves`
//! with the first epoch they no longer held it. Rows older than the
//! past-epoch window can no longer be needed and are pruned.

use std::collections::BTreeMap;

use openmls::prelude::MlsGroup;
use quicproquo_protocol::types::{Epoch, IdentityKey, Username};
use rusqlite::{params, OptionalExtension};

use super::errors::MlsError;
use super::group::GroupId;
use super::identity::Member;
use super::provider::Provider;
use super::MAX_PAST_EPOCHS;

/// One occupied leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub member: Member,
    pub encryption_key: Vec<u8>,
}

/// The occupied leaves of a group, by leaf index.
pub(crate) type Snapshot = BTreeMap<u32, Leaf>;

pub(crate) fn snapshot(g: &MlsGroup) -> Result<Snapshot, MlsError> {
    g.members()
        .map(|m| {
            Ok((
                m.index.u32(),
                Leaf {
                    member: Member::from_openmls(&m)?,
                    encryption_key: m.encryption_key,
                },
            ))
        })
        .collect()
}

/// How the leaves changed across one commit. A leaf whose occupant changed
/// (other username or other identity key) counts as a removal plus an add;
/// one whose occupant kept it with new HPKE keys counts as an update.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Diff {
    pub added: Vec<(u32, Member)>,
    pub removed: Vec<(u32, Member)>,
    pub updated: Vec<(u32, Member)>,
}

pub(crate) fn diff(before: &Snapshot, after: &Snapshot) -> Diff {
    let mut d = Diff::default();
    for (&i, old) in before {
        match after.get(&i) {
            Some(new) if new.member == old.member => {
                if new.encryption_key != old.encryption_key {
                    d.updated.push((i, new.member.clone()));
                }
            }
            _ => d.removed.push((i, old.member.clone())),
        }
    }
    for (&i, new) in after {
        if before.get(&i).is_none_or(|old| old.member != new.member) {
            d.added.push((i, new.member.clone()));
        }
    }
    d
}

fn sql_epoch(e: Epoch) -> Result<i64, MlsError> {
    i64::try_from(e.0).map_err(|_| MlsError::Internal(format!("epoch {} out of range", e.0)))
}

/// Records the leaves a commit vacated; `new_epoch` is the epoch the commit
/// started. Also drops rows no message we could still decrypt can need.
pub(crate) fn record(
    p: &Provider<'_>,
    group: GroupId,
    new_epoch: Epoch,
    removed: &[(u32, Member)],
) -> Result<(), MlsError> {
    let conn = p.connection();
    let until = sql_epoch(new_epoch)?;
    for (leaf, m) in removed {
        conn.execute(
            "INSERT OR REPLACE INTO qpq_mls_past_leaves
                 (group_id, leaf, until_epoch, username, identity)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                group.as_bytes(),
                leaf,
                until,
                m.username.as_str(),
                m.identity.0.as_slice()
            ],
        )?;
    }
    // A message from epoch e is readable only if e >= current - MAX_PAST_EPOCHS,
    // and a row is consulted only for e < until_epoch.
    let horizon = until.saturating_sub(MAX_PAST_EPOCHS as i64);
    conn.execute(
        "DELETE FROM qpq_mls_past_leaves WHERE group_id = ?1 AND until_epoch <= ?2",
        params![group.as_bytes(), horizon],
    )?;
    Ok(())
}

/// Who held `leaf` in `epoch`, if a later commit vacated it. `None` means
/// the current occupant held it then too.
pub(crate) fn past_occupant(
    p: &Provider<'_>,
    group: GroupId,
    leaf: u32,
    epoch: Epoch,
) -> Result<Option<Member>, MlsError> {
    let row: Option<(String, Vec<u8>)> = p
        .connection()
        .query_row(
            "SELECT username, identity FROM qpq_mls_past_leaves
             WHERE group_id = ?1 AND leaf = ?2 AND until_epoch > ?3
             ORDER BY until_epoch ASC LIMIT 1",
            params![group.as_bytes(), leaf, sql_epoch(epoch)?],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(name, key)| {
        let bad = |e: quicproquo_protocol::types::InvalidValue| {
            MlsError::Internal(format!("qpq_mls_past_leaves: {e}"))
        };
        Ok(Member {
            username: Username::parse(&name).map_err(bad)?,
            identity: IdentityKey::from_slice(&key).map_err(bad)?,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str, key: u8, enc: u8) -> Leaf {
        Leaf {
            member: Member {
                username: Username::parse(name).unwrap(),
                identity: IdentityKey([key; 32]),
            },
            encryption_key: vec![enc],
        }
    }

    #[test]
    fn diff_tells_add_remove_update_and_replacement() {
        let before: Snapshot = [
            (0, leaf("alice", 1, 1)),
            (1, leaf("bob", 2, 1)),
            (2, leaf("carol", 3, 1)),
        ]
        .into();
        let after: Snapshot = [
            (0, leaf("alice", 1, 2)), // rekeyed
            (2, leaf("dave", 4, 1)),  // carol's leaf reused
            (3, leaf("erin", 5, 1)),  // new leaf
        ]
        .into();
        let d = diff(&before, &after);
        let names = |v: &[(u32, Member)]| {
            v.iter()
                .map(|(i, m)| format!("{i}:{}", m.username))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&d.updated), ["0:alice"]);
        assert_eq!(names(&d.removed), ["1:bob", "2:carol"]);
        assert_eq!(names(&d.added), ["2:dave", "3:erin"]);
    }
}
