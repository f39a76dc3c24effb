//! The notification log: every notification gets a persisted, strictly
//! increasing sequence number, so a front-end that reconnects (after its own
//! restart or the daemon's) asks for what it missed and loses nothing.

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

/// Notifications after `since`, oldest first: `(seq, method, params json)`.
pub fn since(
    c: &Connection,
    since: u64,
    limit: u32,
) -> rusqlite::Result<Vec<(u64, String, String)>> {
    let mut st = c.prepare(
        "SELECT seq, method, params FROM notifications WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![since as i64, limit], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
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
        let after_a = since(&c, a, 10).unwrap();
        assert_eq!(after_a.len(), 1);
        assert_eq!(after_a[0].0, b);
        assert_eq!(after_a[0].1, "connection");
        assert!(since(&c, b, 10).unwrap().is_empty());
    }
}
