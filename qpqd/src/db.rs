//! Typed access to the state database, one module per table group. Plain
//! functions on a `rusqlite::Connection`: the caller (the core thread) owns
//! the connection and the transactions.

pub mod account;
pub mod actions;
pub mod attachments;
pub mod conversations;
pub mod invitations;
pub mod messages;
pub mod notifications;
pub mod outbox;
pub mod privacy;
pub mod settings;

/// 16 random bytes, shown as 32 hex digits: conversation and message ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 16]);

impl Id {
    pub fn random() -> Self {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Id(b)
    }

    pub fn parse_hex(s: &str) -> Option<Self> {
        hex::decode(s).ok()?.try_into().ok().map(Id)
    }

    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(Id)
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Id({self})")
    }
}

impl rusqlite::ToSql for Id {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(
            rusqlite::types::ValueRef::Blob(&self.0),
        ))
    }
}

impl rusqlite::types::FromSql for Id {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let b = v.as_blob()?;
        Id::from_slice(b).ok_or(rusqlite::types::FromSqlError::InvalidBlobSize {
            expected_size: 16,
            blob_size: b.len(),
        })
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) fn test_db() -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = crate::keystore::tests::FakeKeyring {
        broken: true,
        ..Default::default()
    };
    let (key, _) = crate::keystore::obtain(dir.path(), "t", &broken, Some("test")).expect("key");
    let conn = crate::state::open(&dir.path().join("qpq-state.bin"), &key).expect("open");
    (dir, conn)
}

/// [`test_db`] with one group conversation, `team`, in it.
#[cfg(test)]
pub(crate) fn test_db_with_team() -> (tempfile::TempDir, rusqlite::Connection, Id) {
    let (d, c) = test_db();
    let conv = conversations::Conversation {
        id: Id::random(),
        kind: conversations::Kind::Group,
        name: "team".into(),
        group_id: vec![1; 16],
        peer: None,
        ciphersuite: crate::mls::Suite::Hybrid,
        last_activity_ms: 0,
        active: true,
    };
    conversations::insert(&c, &conv, 0).expect("insert team");
    (d, c, conv.id)
}
