//! The core thread: the one owner of the state database and the MLS engine
//! (they share one connection, so a received message's MLS processing and its
//! history row commit together). Async code sends it jobs and awaits the
//! result — the same pattern as the server's SQLite writer. The agent's flows
//! send *named* operations (`outbox::queue_outgoing`, `inbox::store_incoming`,
//! …), one trip per step; [`CoreHandle::trips`] counts the trips so tests and
//! benches can hold the flows to their budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::mls::{Identity, MlsEngine, MlsError};

/// Before an account exists there is only the database; after, the engine
/// owns the connection.
pub struct Core {
    bare: Option<Connection>,
    engine: Option<MlsEngine>,
    /// The database's commit counter as of the last committed transaction
    /// (`integrity`): read without a trip by whoever writes the counter
    /// file.
    committed: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("no account in this profile: register or log in first")]
    NoAccount,
    #[error(transparent)]
    Mls(#[from] MlsError),
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
}

impl CoreError {
    /// Why the state cannot be written now, when that is the failure: the
    /// disk is full, an I/O error, the database busy or locked. Such a
    /// failure says nothing about the message or call that met it — the same
    /// work succeeds once the cause is gone — so the inbox must not give up
    /// on (and acknowledge) what it was storing.
    pub fn storage_unavailable(&self) -> Option<String> {
        match self {
            CoreError::Db(e) if unavailable(e) => Some(e.to_string()),
            CoreError::Mls(MlsError::StorageUnavailable(why)) => Some(why.clone()),
            _ => None,
        }
    }
}

/// Whether `e` is SQLite failing to read or write (a condition of the
/// machine), as opposed to a statement or its data being wrong.
pub fn unavailable(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(
            DiskFull
                | SystemIoFailure
                | DatabaseBusy
                | DatabaseLocked
                | OutOfMemory
                | CannotOpen
                | ReadOnly
                | FileLockingProtocolFailed
        )
    )
}

/// Test builds only (`QPQ_TEST_DISK_FULL`): lets the state file grow no more,
/// so every write that needs a new page fails with SQLite's real "database
/// or disk is full". Compacted first, so no free page is left to reuse.
#[cfg(debug_assertions)]
pub fn simulate_full_disk(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("VACUUM")?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
}

impl Core {
    pub fn new(conn: Connection) -> Self {
        // `state::open` gives every state the counter table (schema 6);
        // 0 only for a connection opened some other way.
        let counter = crate::integrity::db_counter(&conn).unwrap_or(0);
        Self {
            bare: Some(conn),
            engine: None,
            committed: Arc::new(AtomicU64::new(counter)),
        }
    }

    /// The commit counter this core publishes after each transaction.
    pub fn commit_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.committed)
    }

    pub fn db(&self) -> &Connection {
        match (&self.engine, &self.bare) {
            (Some(e), _) => e.connection(),
            (None, Some(c)) => c,
            (None, None) => unreachable!("the core always holds its connection"),
        }
    }

    pub fn engine_ref(&self) -> Option<&MlsEngine> {
        self.engine.as_ref()
    }

    pub fn has_engine(&self) -> bool {
        self.engine.is_some()
    }

    pub fn engine(&mut self) -> Result<&mut MlsEngine, CoreError> {
        self.engine.as_mut().ok_or(CoreError::NoAccount)
    }

    /// Hands the connection to an MLS engine for `identity`.
    pub fn attach(&mut self, identity: Identity) -> Result<(), CoreError> {
        if self.engine.is_some() {
            return Ok(());
        }
        let conn = self.bare.take().ok_or(CoreError::NoAccount)?;
        match MlsEngine::new(conn, identity) {
            Ok(e) => {
                self.engine = Some(e);
                Ok(())
            }
            Err(e) => {
                // The engine consumed the connection: without it the core
                // cannot go on, and continuing would lose data.
                tracing::error!(error = %e, "cannot open the MLS store; stopping");
                std::process::exit(70);
            }
        }
    }

    /// Runs `f` in one transaction: all of it or none of it is stored.
    /// Every transaction advances the commit counter (`integrity`): a lost
    /// transaction then shows as a counter below the one recorded outside.
    pub fn atomically<T, E: From<rusqlite::Error>>(
        &mut self,
        f: impl FnOnce(&mut Core) -> Result<T, E>,
    ) -> Result<T, E> {
        self.db().execute_batch("BEGIN IMMEDIATE")?;
        match f(self).and_then(|v| Ok((v, crate::integrity::advance(self.db())?))) {
            Ok((v, counter)) => {
                if let Err(e) = self.db().execute_batch("COMMIT") {
                    let _ = self.db().execute_batch("ROLLBACK");
                    return Err(e.into());
                }
                self.committed.store(counter, Ordering::SeqCst);
                Ok(v)
            }
            Err(e) => {
                let _ = self.db().execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Runs `f` in a savepoint inside the current transaction: if it fails,
    /// what it wrote (its own rows and openmls' writes, which share the
    /// connection) is rolled back and the rest of the transaction stands.
    pub fn savepoint<T, E: From<rusqlite::Error>>(
        &mut self,
        f: impl FnOnce(&mut Core) -> Result<T, E>,
    ) -> Result<T, E> {
        self.db().execute_batch("SAVEPOINT item")?;
        match f(self) {
            Ok(v) => {
                self.db().execute_batch("RELEASE item")?;
                Ok(v)
            }
            Err(e) => {
                self.db().execute_batch("ROLLBACK TO item; RELEASE item")?;
                Err(e)
            }
        }
    }
}

type Job = Box<dyn FnOnce(&mut Core) + Send>;

/// A handle to the core thread; cheap to clone.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<Job>,
    trips: Arc<AtomicU64>,
}

impl CoreHandle {
    /// Moves `core` onto its own thread. The thread ends when every handle
    /// is dropped.
    pub fn spawn(core: Core) -> std::io::Result<(CoreHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("qpqd-core".into())
            .spawn(move || {
                let mut core = core;
                while let Ok(job) = rx.recv() {
                    job(&mut core);
                }
            })?;
        Ok((
            CoreHandle {
                tx,
                trips: Arc::new(AtomicU64::new(0)),
            },
            thread,
        ))
    }

    /// Runs `f` on the core thread and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> T + Send + 'static,
    ) -> T {
        self.trips.fetch_add(1, Ordering::Relaxed);
        let (reply, wait) = oneshot::channel();
        let job: Job = Box::new(move |core| {
            let _ = reply.send(f(core));
        });
        if self.tx.send(job).is_err() {
            panic!("the core thread has stopped");
        }
        wait.await.expect("the core thread answers every job")
    }

    /// How many jobs have been sent to the core thread so far.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
}
