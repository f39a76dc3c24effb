//! The openmls provider: RustCrypto for crypto and randomness,
//! `openmls_sqlite_storage` on the daemon's SQLite connection for state.
//!
//! Owns the connection and the engine's own two tables (`qpq_mls_*`). Does not
//! open files: the daemon hands in an open (possibly SQLCipher) connection.
//!
//! Why the provider borrows instead of owning: `SqliteStorageProvider` hides its
//! connection, but the engine needs it for its own tables and to wrap every
//! operation in a savepoint. So [`MlsStore`] owns the `Connection` and lends a
//! short-lived [`Provider`] (a `SqliteStorageProvider<_, &Connection>`, free to
//! build) to each operation.

use openmls_rust_crypto::RustCrypto;
use openmls_sqlite_storage::{Codec, SqliteStorageProvider};
use openmls_traits::OpenMlsProvider;
use rusqlite::Connection;

use super::errors::MlsError;

/// How openmls values are encoded in SQLite: CBOR (RFC 8949), compact and
/// self-describing. It replaced JSON, which wrote every byte of a key as a
/// decimal number (about 3.5x the raw size): a 250-member group's state is
/// megabytes, written at every commit (see BENCHMARKS.md, the 250-member add).
#[derive(Debug, Default)]
pub struct CborCodec;

#[derive(Debug, thiserror::Error)]
#[error("MLS storage encoding: {0}")]
pub struct CodecError(String);

impl Codec for CborCodec {
    type Error = CodecError;

    fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Self::Error> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).map_err(|e| CodecError(e.to_string()))?;
        Ok(out)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        ciborium::from_reader(slice).map_err(|e| CodecError(e.to_string()))
    }
}

pub type Storage<'a> = SqliteStorageProvider<CborCodec, &'a Connection>;

/// The engine's own bookkeeping, next to openmls' tables. `IF NOT EXISTS`
/// keeps opening idempotent; `PRAGMA user_version` is left to the daemon.
const SCHEMA: &str = "
-- version: random, new after every change; see cache.rs.
CREATE TABLE IF NOT EXISTS qpq_mls_groups (
    group_id BLOB PRIMARY KEY NOT NULL,
    suite INTEGER NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
-- Who sat in a leaf until a commit changed or emptied it, so that an
-- application message from a past epoch is attributed to its real sender
-- even after the leaf was reused (openmls keeps past leaves privately).
CREATE TABLE IF NOT EXISTS qpq_mls_past_leaves (
    group_id BLOB NOT NULL,
    leaf INTEGER NOT NULL,
    until_epoch INTEGER NOT NULL,
    username TEXT NOT NULL,
    identity BLOB NOT NULL,
    PRIMARY KEY (group_id, leaf, until_epoch)
) WITHOUT ROWID;
";

/// Crypto plus the SQLite connection all MLS state lives in.
pub struct MlsStore {
    crypto: RustCrypto,
    conn: Connection,
}

impl MlsStore {
    /// Runs openmls' migrations and creates the engine's tables.
    pub fn open(mut conn: Connection) -> Result<Self, MlsError> {
        SqliteStorageProvider::<CborCodec, &mut Connection>::new(&mut conn)
            .run_migrations()
            .map_err(|e| MlsError::Storage(format!("migrations: {e}")))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            crypto: RustCrypto::default(),
            conn,
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn into_connection(self) -> Connection {
        self.conn
    }

    pub fn provider(&self) -> Provider<'_> {
        Provider {
            crypto: &self.crypto,
            conn: &self.conn,
            storage: SqliteStorageProvider::new(&self.conn),
        }
    }

    /// Runs `f` inside a savepoint: everything it wrote is kept if it returns
    /// `Ok`, and nothing if it returns `Err`. openmls writes as it goes (and
    /// `StagedWelcome::new_from_welcome` consumes key material even if the
    /// join is then abandoned), so this is what makes each engine operation
    /// all-or-nothing. A savepoint nests inside a transaction the daemon may
    /// have opened on the same connection, and acts as one otherwise.
    pub fn atomic<T>(
        &self,
        f: impl FnOnce(&Provider<'_>) -> Result<T, MlsError>,
    ) -> Result<T, MlsError> {
        self.conn.execute_batch("SAVEPOINT qpq_mls")?;
        let provider = self.provider();
        match f(&provider) {
            Ok(v) => {
                if let Err(e) = self.conn.execute_batch("RELEASE qpq_mls") {
                    self.rollback();
                    return Err(e.into());
                }
                Ok(v)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Runs `f` in a savepoint that is always rolled back: whatever openmls
    /// wrote (e.g. deleting a key package while reading a Welcome) is
    /// undone, and only `f`'s answer remains.
    pub fn peek<T>(
        &self,
        f: impl FnOnce(&Provider<'_>) -> Result<T, MlsError>,
    ) -> Result<T, MlsError> {
        self.conn.execute_batch("SAVEPOINT qpq_mls")?;
        let out = f(&self.provider());
        self.rollback();
        out
    }

    fn rollback(&self) {
        // If SQLite already rolled the whole transaction back (it does on
        // some I/O errors) the savepoint is gone and this fails: nothing
        // is left to undo then.
        if let Err(e) = self
            .conn
            .execute_batch("ROLLBACK TO qpq_mls; RELEASE qpq_mls")
        {
            tracing::debug!(error = %e, "MLS savepoint rollback");
        }
    }
}

/// What openmls calls a provider, borrowed from an [`MlsStore`].
pub struct Provider<'a> {
    crypto: &'a RustCrypto,
    conn: &'a Connection,
    storage: Storage<'a>,
}

impl<'a> Provider<'a> {
    pub fn connection(&self) -> &'a Connection {
        self.conn
    }
}

impl<'a> OpenMlsProvider for Provider<'a> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = Storage<'a>;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        self.crypto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_is_idempotent_and_atomic_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mls.db");
        let store = MlsStore::open(Connection::open(&path).unwrap()).unwrap();
        let count = |s: &MlsStore| -> i64 {
            s.connection()
                .query_row("SELECT COUNT(*) FROM qpq_mls_groups", [], |r| r.get(0))
                .unwrap()
        };
        let insert = |p: &Provider<'_>, id: u8| {
            p.connection().execute(
                "INSERT INTO qpq_mls_groups (group_id, suite, version) VALUES (?1, 1, 0)",
                [vec![id]],
            )
        };
        let r: Result<(), MlsError> = store.atomic(|p| {
            insert(p, 1)?;
            Err(MlsError::Internal("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(count(&store), 0);
        store.atomic(|p| Ok(insert(p, 2)?)).unwrap();
        assert_eq!(count(&store), 1);
        drop(store);
        let store = MlsStore::open(Connection::open(&path).unwrap()).unwrap();
        assert_eq!(count(&store), 1);
    }
}
