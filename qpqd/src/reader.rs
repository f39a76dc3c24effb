//! The state's read-only second connection, for reads that may take long
//! (full-text search). They run on a blocking thread, not the core thread,
//! so `status`, `send` and the inbox keep being served meanwhile; and each
//! has a deadline, past which SQLite is interrupted. One read at a time:
//! a second search waits for the first (both are bounded).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

/// A shared handle to the read-only connection; cheap to clone.
#[derive(Clone)]
pub struct Reader {
    conn: Arc<Mutex<Connection>>,
    /// Test builds only (`QPQ_TEST_SEARCH_DELAY_MS`): each read first waits
    /// this long, standing in for a search over a large history.
    delay: Duration,
}

/// Why a read gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the search took longer than {} s and was stopped; search for fewer or more distinctive words", .0.as_secs())]
    Deadline(Duration),
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("the read stopped: {0}")]
    Stopped(String),
}

impl Reader {
    pub fn new(conn: Connection, delay: Duration) -> Self {
        Self {
            conn: Arc::new(Mutex::new(conn)),
            delay,
        }
    }

    /// Runs `f` on the read-only connection on a blocking thread; past
    /// `deadline` its statement is interrupted and the answer is
    /// [`ReadError::Deadline`].
    pub async fn run<T: Send + 'static>(
        &self,
        deadline: Duration,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ReadError> {
        let conn = Arc::clone(&self.conn);
        let delay = self.delay;
        let interrupt = conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_interrupt_handle();
        let mut work = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            f(&conn)
        });
        let joined = tokio::select! {
            r = &mut work => r,
            _ = tokio::time::sleep(deadline) => {
                interrupt.interrupt();
                let r = work.await;
                return match r {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) if is_interrupt(&e) => Err(ReadError::Deadline(deadline)),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(ReadError::Stopped(e.to_string())),
                };
            }
        };
        match joined {
            Ok(r) => Ok(r?),
            Err(e) => Err(ReadError::Stopped(e.to_string())),
        }
    }
}

fn is_interrupt(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that would never end is stopped at its deadline, and the
    /// connection serves the next read.
    #[tokio::test]
    async fn a_read_past_its_deadline_is_interrupted() {
        let reader = Reader::new(Connection::open_in_memory().unwrap(), Duration::ZERO);
        let endless = reader
            .run(Duration::from_millis(100), |db| {
                db.query_row(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
                     SELECT count(*) FROM c",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .await;
        assert!(
            matches!(endless, Err(ReadError::Deadline(_))),
            "{endless:?}"
        );
        let next = reader
            .run(Duration::from_secs(5), |db| {
                db.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            })
            .await;
        assert_eq!(next.unwrap(), 1);
    }
}
