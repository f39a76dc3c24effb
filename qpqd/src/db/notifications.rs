//! The notification log: every notification gets a persisted, strictly
//! increasing sequence number, so a front-end that reconnects (after its own
//! restart or the daemon's) asks for what it missed and loses nothing.
//!
//! What the log keeps (the rule docs/src/reference/ipc.md states): the
//! newest `agent::NOTIFICATIONS_KEPT` notifications ([`prune`] drops the
//! rest), and of a `message` notification only the message's id and
//! metadata — its text is blanked when logged and read from the history
//! when replayed, so a message gone from the history is gone from the log.

use rusqlite::{params, Connection};

/// Appends one notification; returns its sequence number.
pub fn append(
    c: &Connection,
    method: &str,
    params_json: &str,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    c.execute(
        "INSERT INTO notifications (method, params, created_ms) VALUES (?1, ?2, ?3)",
        params![method, params_json, now_ms as i64],
    )?;
    Ok(c.last_insert_rowid() as u64)
}

/// Notifications after `since` and up to `upto`, oldest first: `(seq,
/// method, params json)`. Sequence numbers past `i64::MAX` (which no log
/// reaches) are read as "after everything", never wrapped to a negative.
pub fn since(
    c: &Connection,
    since: u64,
    upto: u64,
    limit: u32,
) -> rusqlite::Result<Vec<(u64, String, String)>> {
    let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut st = c.prepare(
        "SELECT seq, method, params FROM notifications WHERE seq > ?1 AND seq <= ?2
         ORDER BY seq LIMIT ?3",
    )?;
    let rows = st.query_map(params![bound(since), bound(upto), limit], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
}

/// Deletes the notifications up to and including `upto`.
pub fn prune(c: &Connection, upto: u64) -> rusqlite::Result<usize> {
    let upto = i64::try_from(upto).unwrap_or(i64::MAX);
    c.execute("DELETE FROM notifications WHERE seq <= ?1", [upto])
}

pub fn latest(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row("SELECT coalesce(max(seq), 0) FROM notifications", [], |r| {
        r.get::<_, i64>(0).map(|n| n as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_increase_and_resume() {
        let (_d, c) = crate::db::test_db();
        assert_eq!(latest(&c).unwrap(), 0);
        let a = append(&c, "message", "{}", 1).unwrap();
        let b = append(&c, "connection", "{}", 2).unwrap();
        assert!(b > a);
        assert_eq!(latest(&c).unwrap(), b);
        let after_a = since(&c, a, u64::MAX, 10).unwrap();
        assert_eq!(after_a.len(), 1);
        assert_eq!(after_a[0].0, b);
        assert_eq!(after_a[0].1, "connection");
        assert!(since(&c, b, u64::MAX, 10).unwrap().is_empty());
        assert!(since(&c, 0, a, 10).unwrap().len() == 1, "up to `upto`");
        // Past the newest (once read as -1 and replaying everything).
        assert!(since(&c, u64::MAX, u64::MAX, 10).unwrap().is_empty());
        assert_eq!(prune(&c, a).unwrap(), 1);
        assert_eq!(since(&c, 0, u64::MAX, 10).unwrap().len(), 1);
    }
}
