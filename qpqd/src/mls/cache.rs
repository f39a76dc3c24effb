//! Groups kept in memory between calls, and how the engine knows a kept copy
//! is still the state in SQLite.
//!
//! Loading a group decodes its whole ratchet tree from JSON: about 8 ms for
//! 200 hybrid members (release build), which was nearly all of the cost of
//! sending or receiving one message. So the engine keeps each group's
//! `MlsGroup` after a call and reuses it while the database still holds the
//! same state: every successful operation stamps the group's row in
//! `qpq_mls_groups` with a fresh random version, and a kept copy is used only
//! if its version matches the row. A transaction the daemon rolls back around
//! an engine call reverts the stamp, so the next call reloads; a failed call
//! drops its copy (openmls may have changed it half-way before failing).
//! One read of one indexed row per call is the price.

use std::collections::HashMap;

use openmls::prelude::MlsGroup;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::OpenMlsProvider;
use rusqlite::OptionalExtension;

use super::errors::MlsError;
use super::group::GroupId;
use super::provider::Provider;

#[derive(Default)]
pub(crate) struct GroupCache {
    groups: HashMap<GroupId, (i64, MlsGroup)>,
}

impl GroupCache {
    /// Removes and returns the kept copy, if any; it goes back in with
    /// [`GroupCache::insert`] only if the call succeeds.
    pub fn take(&mut self, group: GroupId) -> Option<(i64, MlsGroup)> {
        self.groups.remove(&group)
    }

    pub fn insert(&mut self, group: GroupId, version: i64, g: MlsGroup) {
        self.groups.insert(group, (version, g));
    }

    /// The kept copy, if it is the state in the database at `version`.
    pub fn get(&self, group: GroupId, version: i64) -> Option<&MlsGroup> {
        match self.groups.get(&group) {
            Some((v, g)) if *v == version => Some(g),
            _ => None,
        }
    }
}

/// The group's current version; `UnknownGroup` if we hold no such group.
pub(crate) fn version(p: &Provider<'_>, group: GroupId) -> Result<i64, MlsError> {
    p.connection()
        .query_row(
            "SELECT version FROM qpq_mls_groups WHERE group_id = ?1",
            [group.as_bytes()],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(MlsError::UnknownGroup(group))
}

/// A fresh random version.
pub(crate) fn new_version(p: &Provider<'_>) -> Result<i64, MlsError> {
    let bytes: [u8; 8] = p
        .rand()
        .random_array()
        .map_err(|e| MlsError::Internal(format!("randomness: {e:?}")))?;
    Ok(i64::from_le_bytes(bytes))
}

/// Records that the group's state changed; returns the new version.
pub(crate) fn stamp(p: &Provider<'_>, group: GroupId) -> Result<i64, MlsError> {
    let v = new_version(p)?;
    let n = p.connection().execute(
        "UPDATE qpq_mls_groups SET version = ?2 WHERE group_id = ?1",
        rusqlite::params![group.as_bytes(), v],
    )?;
    if n == 1 {
        Ok(v)
    } else {
        Err(MlsError::UnknownGroup(group))
    }
}

/// The group's state: `kept` if it is current, else loaded from SQLite.
pub(crate) fn current(
    p: &Provider<'_>,
    group: GroupId,
    kept: Option<(i64, MlsGroup)>,
) -> Result<MlsGroup, MlsError> {
    let v = version(p, group)?;
    match kept {
        Some((kv, g)) if kv == v => Ok(g),
        _ => MlsGroup::load(p.storage(), &group.to_openmls())?
            .ok_or_else(|| MlsError::Internal(format!("group {group} has no openmls state"))),
    }
}
