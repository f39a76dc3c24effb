//! The profile's one account: identity seed, server, pinned certificate,
//! session token.

use rusqlite::{params, Connection, OptionalExtension};
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct Account {
    pub username: String,
    /// Ed25519 secret seed of the identity key.
    pub identity_seed: Zeroizing<[u8; 32]>,
    pub server: String,
    pub server_name: String,
    pub server_fingerprint: Option<[u8; 32]>,
    pub use_ca: bool,
    pub token: Option<Zeroizing<[u8; 32]>>,
    pub token_expires_ms: Option<u64>,
    /// Stored by `register` before the server created the account; cleared
    /// once it did and we logged in (a retried `register` or a `login`
    /// completes it after a crash).
    pub registration_pending: bool,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("server", &self.server)
            .field("identity_seed", &"***")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

fn arr32(v: Option<Vec<u8>>) -> Option<[u8; 32]> {
    v.and_then(|b| b.try_into().ok())
}

pub fn get(c: &Connection) -> rusqlite::Result<Option<Account>> {
    c.query_row(
        "SELECT username, identity_seed, server, server_name, server_fingerprint, use_ca, token,
                token_expires_ms, registration_pending
           FROM account WHERE id = 1",
        [],
        |r| {
            let seed: Vec<u8> = r.get(1)?;
            let seed: [u8; 32] = seed.try_into().map_err(|_| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Blob,
                    "identity seed is not 32 bytes".into(),
                )
            })?;
            Ok(Account {
                username: r.get(0)?,
                identity_seed: Zeroizing::new(seed),
                server: r.get(2)?,
                server_name: r.get(3)?,
                server_fingerprint: arr32(r.get(4)?),
                use_ca: r.get(5)?,
                token: arr32(r.get(6)?).map(Zeroizing::new),
                token_expires_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                registration_pending: r.get(8)?,
            })
        },
    )
    .optional()
}

pub fn put(c: &Connection, a: &Account, now_ms: u64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO account (id, username, identity_seed, server, server_name, server_fingerprint,
                              use_ca, token, token_expires_ms, created_ms, registration_pending)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET username = ?1, identity_seed = ?2, server = ?3,
             server_name = ?4, server_fingerprint = ?5, use_ca = ?6, token = ?7, token_expires_ms = ?8,
             registration_pending = ?10",
        params![
            a.username,
            &a.identity_seed[..],
            a.server,
            a.server_name,
            a.server_fingerprint.as_ref().map(|f| &f[..]),
            a.use_ca,
            a.token.as_ref().map(|t| &t[..]),
            a.token_expires_ms.map(|v| v as i64),
            now_ms as i64,
            a.registration_pending
        ],
    )?;
    Ok(())
}

/// Forgets a registration the server refused (the name taken, say), so the
/// profile can register another; an account that exists is never touched.
pub fn forget_pending(c: &Connection) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM account WHERE id = 1 AND registration_pending = 1",
        [],
    )?;
    Ok(())
}

pub fn set_token(
    c: &Connection,
    token: Option<&[u8; 32]>,
    expires_ms: Option<u64>,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE account SET token = ?1, token_expires_ms = ?2 WHERE id = 1",
        params![token.map(|t| &t[..]), expires_ms.map(|v| v as i64)],
    )?;
    Ok(())
}

/// The last-resort key package of `suite` we uploaded, if younger than
/// `max_age_ms`.
pub fn last_resort(
    c: &Connection,
    suite: u16,
    now_ms: u64,
    max_age_ms: u64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    c.query_row(
        "SELECT package FROM last_resort_key_packages WHERE suite = ?1 AND created_ms >= ?2",
        params![suite, now_ms.saturating_sub(max_age_ms) as i64],
        |r| r.get(0),
    )
    .optional()
}

/// The last-resort package of `suite`, whatever its age, and that age.
pub fn last_resort_with_age(
    c: &Connection,
    suite: u16,
    now_ms: u64,
) -> rusqlite::Result<Option<(Vec<u8>, u64)>> {
    c.query_row(
        "SELECT package, created_ms FROM last_resort_key_packages WHERE suite = ?1",
        params![suite],
        |r| {
            Ok((
                r.get(0)?,
                now_ms.saturating_sub(r.get::<_, i64>(1)?.max(0) as u64),
            ))
        },
    )
    .optional()
}

pub fn set_last_resort(
    c: &Connection,
    suite: u16,
    package: &[u8],
    now_ms: u64,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO last_resort_key_packages (suite, package, created_ms) VALUES (?1, ?2, ?3)",
        params![suite, package, now_ms as i64],
    )?;
    Ok(())
}

/// When one-time key packages of `suite` were last uploaded (kept in
/// `settings`, so no schema step is needed).
pub fn key_packages_uploaded(c: &Connection, suite: u16) -> rusqlite::Result<Option<u64>> {
    let value: Option<String> = c
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [uploaded_key(suite)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()))
}

pub fn set_key_packages_uploaded(c: &Connection, suite: u16, now_ms: u64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![uploaded_key(suite), now_ms.to_string()],
    )?;
    Ok(())
}

fn uploaded_key(suite: u16) -> String {
    format!("key_packages_uploaded_ms.{suite}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_token_update() {
        let (_d, c) = crate::db::test_db();
        assert!(get(&c).unwrap().is_none());
        let a = Account {
            username: "alice".into(),
            identity_seed: Zeroizing::new([7; 32]),
            server: "127.0.0.1:7443".into(),
            server_name: "localhost".into(),
            server_fingerprint: Some([1; 32]),
            use_ca: false,
            token: None,
            token_expires_ms: None,
            registration_pending: false,
        };
        put(&c, &a, 1).unwrap();
        set_token(&c, Some(&[9; 32]), Some(99)).unwrap();
        let got = get(&c).unwrap().unwrap();
        assert_eq!(got.username, "alice");
        assert_eq!(*got.identity_seed, [7; 32]);
        assert_eq!(got.token.as_deref(), Some(&[9u8; 32]));
        assert_eq!(got.token_expires_ms, Some(99));
        assert!(!format!("{got:?}").contains("7, 7"), "secrets in Debug");
    }
}
