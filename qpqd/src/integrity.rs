//! Is the state we opened the state we last wrote? Checked once, when the
//! state opens, two ways:
//!
//! 1. **Integrity check**: `PRAGMA cipher_integrity_check` (SQLCipher's
//!    per-page HMACs over the whole database file) and `PRAGMA quick_check`
//!    (the b-tree structure). They catch a damaged database file. They do
//!    not catch a damaged write-ahead log: SQLite checks WAL frames with a
//!    running checksum when it opens the log and silently drops the first
//!    bad frame *and every frame after it* — the state then opens, intact and
//!    consistent, as it was several commits ago. A copy of the files put
//!    back from a backup is just as consistent. Cost: both read every page
//!    of the file, once per start — for a state of 5,000 messages (306
//!    pages, 1.2 MiB) 40–70 ms together on the shared 2-core test machine
//!    in a debug build (`integrity_check_cost`), linear in the file's size.
//! 2. **A monotonic counter kept outside the database**: a one-row table
//!    (`integrity_counter`) is incremented in every transaction
//!    ([`crate::core::Core::atomically`]), and its value is also written to
//!    a small file beside the state (`qpq-state.bin.counter`), MAC'd with a
//!    key derived from the state key (HKDF-SHA256, label
//!    [`COUNTER_LABEL`]) and fsynced. Lost commits take the table's value
//!    below the file's: a rollback. A file whose MAC does not verify was
//!    tampered with (or damaged); a missing file while the database has
//!    counted commits was deleted. A fresh state has no file and a counter
//!    of 0: the file is created then.
//!
//! ## Which commits the file follows
//!
//! The file is written after the commits that precede a server-visible
//! effect whose loss could not be repaired by doing it again:
//!
//! - **a received batch**, before it is acknowledged (`inbox`): the server
//!   deletes acknowledged mail, so a batch lost after its ack is lost for
//!   good. This is the one write per batch (one `pwrite` + `fdatasync` of
//!   56 bytes in place; no core trip): 3.6–3.9 ms on the test machine's
//!   virtual disk, about one SQLite commit there. It delays the ack and the
//!   next fetch, not the batch's notifications (published before it).
//! - **not the outbox's own commits** (`queue_outgoing`, `mark_sent`):
//!   losing one re-sends an entry under the same idempotency key, which the
//!   server de-duplicates, and the peer keeps a message id once; a lost
//!   queued message was never seen by the server. They still advance the
//!   counter, so the next batch's write covers them (and, by the log's
//!   prefix property, everything committed before it).
//!
//! Because SQLite can only lose a *suffix* of its commits (a WAL is replayed
//! up to its first bad frame; a restored copy is an older prefix), one write
//! after a commit covers that commit and every earlier one.
//!
//! ## What an alarm does
//!
//! A finding is recorded in the counter file itself (so it survives a
//! restart until the user acknowledges it, whatever is written meanwhile),
//! shown by `status` (`integrity`), and holds the daemon offline: nothing is
//! sent or received until `integrity.acknowledge`, which re-keys every group
//! and then resets the file (`agent::integrity`).
//!
//! ## Limits
//!
//! A damaged database file stays damaged after the acknowledgement: it is
//! reported again at every start, until the state is replaced. Only each
//! conversation's own group is re-keyed on acknowledgement; the second group
//! of a DM that both users opened at once only receives, so it is not.
//!
//! Someone who restores *both* an old state and its counter file from the
//! same backup is not detected: that needs storage the attacker cannot roll
//! back (a server-side counter, or a TPM). The OS keyring was considered and
//! refused: one D-Bus round trip per received batch. A power cut in the
//! middle of the file's in-place write could in theory tear its 56 bytes
//! (one disk sector): that shows as `counter_invalid`, a false alarm, never
//! as silence.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use rusqlite::Connection;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keystore::StateKey;

/// HKDF label of the counter file's MAC key.
pub const COUNTER_LABEL: &str = "quicproquo state counter v1";
const MAGIC: &[u8; 8] = b"qpqctr1\0";
/// magic (8) | counter (8, big-endian) | alarm (1) | zero (7) | HMAC (32).
const BODY: usize = 24;
const LEN: usize = BODY + 32;

/// What the checks at open found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// The database file failed its integrity check.
    Corrupt,
    /// The database holds fewer commits than the counter file recorded.
    Rollback,
    /// The counter file's MAC does not verify (or it is not a counter file).
    CounterInvalid,
    /// The counter file is gone though the database has counted commits.
    CounterMissing,
}

impl Alarm {
    fn code(self) -> u8 {
        match self {
            Alarm::Corrupt => 1,
            Alarm::Rollback => 2,
            Alarm::CounterInvalid => 3,
            Alarm::CounterMissing => 4,
        }
    }

    /// What was found, as in "an earlier start found the state …".
    fn found(self) -> &'static str {
        match self {
            Alarm::Corrupt => "damaged",
            Alarm::Rollback => "rolled back",
            Alarm::CounterInvalid => "with a tampered counter file",
            Alarm::CounterMissing => "without its counter file",
        }
    }

    fn from_code(code: u8) -> Option<Option<Alarm>> {
        Some(match code {
            0 => None,
            1 => Some(Alarm::Corrupt),
            2 => Some(Alarm::Rollback),
            3 => Some(Alarm::CounterInvalid),
            4 => Some(Alarm::CounterMissing),
            _ => return None,
        })
    }
}

/// An alarm with what the user is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub alarm: Alarm,
    pub detail: String,
}

impl Finding {
    fn new(alarm: Alarm, what: impl std::fmt::Display) -> Self {
        Self {
            alarm,
            detail: format!(
                "{what}. Messages received or sent before the damage may be missing, and they were \
                 already acknowledged to the server. Sending and receiving are held until you \
                 acknowledge this (`qpq-ctl ack-integrity`); then every group is re-keyed first."
            ),
        }
    }
}

/// What the counter file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recorded {
    Missing,
    Invalid(String),
    Valid { counter: u64, alarm: Option<Alarm> },
}

/// The MAC'd counter file beside the state.
pub struct CounterFile {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
}

impl CounterFile {
    /// The counter file of `state_file` (not opened or created yet).
    pub fn new(state_file: &Path, state_key: &StateKey) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(None, state_key.expose());
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(COUNTER_LABEL.as_bytes(), &mut *key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut path = state_file.as_os_str().to_owned();
        path.push(".counter");
        Self {
            path: PathBuf::from(path),
            key,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&*self.key).expect("HMAC takes any key length")
    }

    fn encode(&self, counter: u64, alarm: Option<Alarm>) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&counter.to_be_bytes());
        out[16] = alarm.map_or(0, Alarm::code);
        let mut mac = self.mac();
        mac.update(&out[..BODY]);
        out[BODY..].copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    fn read(&self) -> Recorded {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Recorded::Missing,
            Err(e) => return Recorded::Invalid(format!("cannot be read: {e}")),
        };
        if bytes.len() != LEN || &bytes[..8] != MAGIC {
            return Recorded::Invalid("is not a counter file".into());
        }
        let mut mac = self.mac();
        mac.update(&bytes[..BODY]);
        if mac.verify_slice(&bytes[BODY..]).is_err() {
            return Recorded::Invalid("does not carry a valid MAC".into());
        }
        let counter = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
        match Alarm::from_code(bytes[16]) {
            Some(alarm) if bytes[17..BODY].iter().all(|b| *b == 0) => {
                Recorded::Valid { counter, alarm }
            }
            _ => Recorded::Invalid("holds an unknown record".into()),
        }
    }

    /// Records `counter` (and an alarm, if any), durably: in place with
    /// one `fdatasync` when the file exists, else through a temporary file
    /// renamed into place (and the directory synced). Opened per write, so
    /// a file replaced meanwhile is written, not an unlinked one.
    fn write(&self, counter: u64, alarm: Option<Alarm>) -> std::io::Result<()> {
        let record = self.encode(counter, alarm);
        #[cfg(unix)]
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => {
                use std::os::unix::fs::FileExt;
                f.write_all_at(&record, 0)?;
                f.set_len(LEN as u64)?;
                return f.sync_data();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut opts = OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(&record)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // Best effort where directories cannot be opened (not Unix).
            if let Ok(d) = File::open(dir) {
                d.sync_all()?;
            }
        }
        Ok(())
    }
}

/// Creates the counter table (schema 6) with its one row.
pub const SCHEMA: &str = "CREATE TABLE integrity_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    counter INTEGER NOT NULL
);
INSERT INTO integrity_counter (id, counter) VALUES (1, 0);";

/// The database's counter.
pub fn db_counter(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT counter FROM integrity_counter WHERE id = 1",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// Advances the database's counter inside the caller's transaction and
/// returns the new value (published once the transaction commits).
pub fn advance(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "UPDATE integrity_counter SET counter = counter + 1 WHERE id = 1 RETURNING counter",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// SQLCipher's page HMACs and SQLite's structure check; `Some(problems)`
/// when either reports anything. A check that fails outright (a page so
/// damaged that reading it is an error) is a problem too, not a reason to
/// refuse to open.
fn integrity_problems(conn: &Connection) -> Option<String> {
    let mut problems = Vec::new();
    for pragma in ["PRAGMA cipher_integrity_check", "PRAGMA quick_check"] {
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = conn.prepare(pragma)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        };
        match run() {
            Ok(rows) => problems.extend(rows.into_iter().filter(|r| r != "ok")),
            Err(e) => problems.push(e.to_string()),
        }
    }
    (!problems.is_empty()).then(|| {
        let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        format!("{} problem(s): {}", problems.len(), shown.join("; "))
    })
}

/// Runs both checks on a freshly opened state and records the outcome in
/// the counter file (creating it for a fresh state, recording an alarm so
/// that it outlasts a restart). `None` when everything holds.
pub fn check_at_open(conn: &Connection, file: &CounterFile) -> Result<Option<Finding>, CheckError> {
    let db = db_counter(conn)?;
    let damaged = integrity_problems(conn);
    let recorded = file.read();
    let name = file.path().display().to_string();
    let finding = match (&recorded, damaged) {
        (Recorded::Valid { alarm: Some(a), .. }, _) => Some(Finding::new(
            *a,
            format!(
                "an earlier start found the state {}, and that was not acknowledged yet",
                a.found()
            ),
        )),
        (_, Some(problems)) => Some(Finding::new(
            Alarm::Corrupt,
            format!("the state database failed its integrity check ({problems})"),
        )),
        (Recorded::Invalid(why), None) => Some(Finding::new(
            Alarm::CounterInvalid,
            format!("the state's counter file {name} {why}: it was tampered with or damaged"),
        )),
        (Recorded::Missing, None) if db > 0 => Some(Finding::new(
            Alarm::CounterMissing,
            format!(
                "the state's counter file {name} is missing although the state has recorded \
                 {db} commits: it was deleted, or the state was copied without it"
            ),
        )),
        (Recorded::Valid { counter, .. }, None) if db < *counter => Some(Finding::new(
            Alarm::Rollback,
            format!(
                "the state was rolled back: it holds {db} commits, but {counter} had been \
                 recorded (a damaged write-ahead log, or an older copy of the state put back)"
            ),
        )),
        _ => None,
    };
    let to_record = match (&finding, &recorded) {
        (Some(f), Recorded::Valid { counter, alarm }) if alarm.is_none() => {
            Some(((*counter).max(db), Some(f.alarm)))
        }
        (Some(f), Recorded::Missing | Recorded::Invalid(_)) => Some((db, Some(f.alarm))),
        (None, Recorded::Missing) => Some((db, None)),
        _ => None,
    };
    if let Some((counter, alarm)) = to_record {
        file.write(counter, alarm)
            .map_err(|e| CheckError::Io(format!("{name}: {e}")))?;
    }
    Ok(finding)
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(String),
}

/// The counter file at run time: written after the commits that precede an
/// acknowledgement, held while an alarm stands. Shared by the agent and the
/// core thread (which publishes the database's counter in `committed`).
pub struct Guard {
    file: Mutex<(CounterFile, u64)>,
    committed: Arc<AtomicU64>,
    finding: std::sync::RwLock<Option<Finding>>,
    /// One acknowledgement at a time (each starts the outbox at its end).
    acknowledging: std::sync::atomic::AtomicBool,
}

/// Held while an acknowledgement runs; the next may start once it is
/// dropped (finished or failed).
pub struct Acknowledging<'a>(&'a Guard);

impl Drop for Acknowledging<'_> {
    fn drop(&mut self) {
        self.0.acknowledging.store(false, Ordering::SeqCst);
    }
}

impl Guard {
    /// `committed` is the core's published counter ([`crate::core::Core::commit_counter`]).
    pub fn new(file: CounterFile, committed: Arc<AtomicU64>, finding: Option<Finding>) -> Self {
        let now = committed.load(Ordering::SeqCst);
        Self {
            file: Mutex::new((file, now)),
            committed,
            finding: std::sync::RwLock::new(finding),
            acknowledging: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `None` while another acknowledgement runs.
    pub fn begin_acknowledgement(&self) -> Option<Acknowledging<'_>> {
        self.acknowledging
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| Acknowledging(self))
    }

    /// What the checks at open found, until it is acknowledged.
    pub fn finding(&self) -> Option<Finding> {
        self.finding
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the database's latest committed counter in the file (one
    /// `fdatasync`; nothing when it has not moved). Call after a commit
    /// and before the server sees its effect. Does nothing while an alarm
    /// stands: the file keeps the alarm until it is acknowledged.
    pub fn seal(&self) -> std::io::Result<()> {
        if self.finding().is_some() {
            return Ok(());
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let (file, written) = &mut *guard;
        let now = self.committed.load(Ordering::SeqCst);
        if now <= *written {
            return Ok(());
        }
        file.write(now, None)?;
        *written = now;
        Ok(())
    }

    /// After the acknowledgement (and the re-keying): the file records the
    /// database's counter with no alarm, and sealing resumes.
    pub fn reset(&self) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let (file, written) = &mut *guard;
        let now = self.committed.load(Ordering::SeqCst);
        file.write(now, None)?;
        *written = now;
        *self.finding.write().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::tests::FakeKeyring;

    fn key(dir: &Path) -> StateKey {
        let broken = FakeKeyring {
            broken: true,
            ..Default::default()
        };
        crate::keystore::obtain(dir, "t", &broken, Some("pass"))
            .unwrap()
            .0
    }

    fn opened(dir: &Path) -> (Connection, CounterFile) {
        let k = key(dir);
        let state = dir.join("qpq-state.bin");
        (
            crate::state::open(&state, &k).unwrap(),
            CounterFile::new(&state, &k),
        )
    }

    fn commit(conn: &Connection) -> u64 {
        let tx = conn.unchecked_transaction().unwrap();
        let n = advance(&tx).unwrap();
        tx.commit().unwrap();
        n
    }

    /// A fresh state gets its file; a state whose file followed its
    /// commits opens clean; one that lost commits is a rollback, and stays
    /// one after a restart even once it has committed past the file again.
    #[test]
    fn a_lost_commit_is_a_rollback_and_stays_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, file) = opened(dir.path());
        assert_eq!(check_at_open(&conn, &file).unwrap(), None);
        assert_eq!(
            file.read(),
            Recorded::Valid {
                counter: 0,
                alarm: None
            }
        );
        let n = commit(&conn);
        file.write(n, None).unwrap();
        assert_eq!(check_at_open(&conn, &file).unwrap(), None);

        file.write(n + 1, None).unwrap();
        let f = check_at_open(&conn, &file).unwrap().unwrap();
        assert_eq!(f.alarm, Alarm::Rollback, "{f:?}");
        assert!(f.detail.contains("holds 1 commits, but 2"), "{}", f.detail);
        for _ in 0..3 {
            commit(&conn);
        }
        let again = check_at_open(&conn, &file).unwrap().unwrap();
        assert_eq!(again.alarm, Alarm::Rollback, "{again:?}");
        assert!(
            again.detail.contains("found the state rolled back"),
            "{}",
            again.detail
        );
    }

    /// A flipped bit anywhere in the file, another key's file, and a
    /// deleted file (once the state has counted commits) are each reported.
    #[test]
    fn a_tampered_or_missing_counter_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, file) = opened(dir.path());
        let n = commit(&conn);
        file.write(n, None).unwrap();
        let good = std::fs::read(file.path()).unwrap();
        for byte in [3, 12, 16, 40] {
            let mut bad = good.clone();
            bad[byte] ^= 1;
            std::fs::write(file.path(), &bad).unwrap();
            let f = check_at_open(&conn, &file).unwrap().unwrap();
            assert_eq!(f.alarm, Alarm::CounterInvalid, "byte {byte}: {f:?}");
            std::fs::write(file.path(), &good).unwrap();
        }
        let other = tempfile::tempdir().unwrap();
        let mut foreign = CounterFile::new(file.path(), &key(other.path()));
        foreign.path = file.path().to_owned();
        foreign.write(n + 5, None).unwrap();
        let f = check_at_open(&conn, &file).unwrap().unwrap();
        assert_eq!(f.alarm, Alarm::CounterInvalid, "{f:?}");

        std::fs::remove_file(file.path()).unwrap();
        let f = check_at_open(&conn, &file).unwrap().unwrap();
        assert_eq!(f.alarm, Alarm::CounterMissing, "{f:?}");
    }

    /// A damaged page of the database file (not the log) fails SQLCipher's
    /// page HMAC: `corrupt`, and the state still opens so the user can be
    /// told.
    #[test]
    fn a_damaged_database_page_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("qpq-state.bin");
        let (conn, file) = opened(dir.path());
        conn.execute_batch("CREATE TABLE filler (x BLOB);").unwrap();
        for _ in 0..20 {
            conn.execute("INSERT INTO filler VALUES (randomblob(3000))", [])
                .unwrap();
        }
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&state).unwrap();
        let page = 4096;
        let last = bytes.len() / page - 2;
        bytes[last * page + 200] ^= 0x01;
        std::fs::write(&state, bytes).unwrap();

        let conn = crate::state::open(&state, &key(dir.path())).unwrap();
        let f = check_at_open(&conn, &file).unwrap().unwrap();
        assert_eq!(f.alarm, Alarm::Corrupt, "{f:?}");
        assert!(f.detail.contains("integrity check"), "{}", f.detail);
    }

    /// What the checks at open cost on a state with a few thousand
    /// messages (not a pass/fail test; the figure is in the module doc):
    /// `cargo test -p quicproquo-daemon --lib integrity_check_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn integrity_check_cost() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, file) = opened(dir.path());
        conn.execute_batch(
            "INSERT INTO conversations (id, kind, name, group_id, ciphersuite, created_ms, last_activity_ms)
               VALUES (x'01', 'group', 'team', x'aa', 'hybrid', 0, 0);",
        )
        .unwrap();
        let messages = 5_000;
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..messages {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            tx.execute(
                "INSERT INTO messages (id, conversation, sender, timestamp_ms, text, outgoing, state)
                 VALUES (?1, x'01', 'bob', ?2, ?3, 0, 'received')",
                rusqlite::params![
                    &id[..],
                    i,
                    format!("message {i}: the deploy went out, lunch at noon, see the notes in the doc")
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            assert_eq!(check_at_open(&conn, &file).unwrap(), None);
            let all = t.elapsed();
            let mut each = Vec::new();
            for pragma in ["PRAGMA cipher_integrity_check", "PRAGMA quick_check"] {
                let t = std::time::Instant::now();
                let mut stmt = conn.prepare(pragma).unwrap();
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
                assert_eq!(rows.count(), usize::from(pragma.ends_with("quick_check")));
                each.push(format!("{pragma}: {:?}", t.elapsed()));
            }
            println!(
                "{messages} messages, {pages} pages: checks at open {all:?} ({})",
                each.join(", ")
            );
        }
        // What the counter file adds per acknowledged batch.
        let committed = Arc::new(AtomicU64::new(db_counter(&conn).unwrap()));
        let guard = Guard::new(file, Arc::clone(&committed), None);
        let seals = 200;
        let t = std::time::Instant::now();
        for _ in 0..seals {
            committed.fetch_add(1, Ordering::SeqCst);
            guard.seal().unwrap();
        }
        println!("seal (pwrite + fdatasync): {:?} each", t.elapsed() / seals);
    }
}
