//! `qpq-server backup` and `qpq-server restore` for the embedded SQLite
//! store.
//!
//! Backup runs beside a serving server: it opens the database read-only on
//! its own connection and copies it with SQLite's online backup API in a
//! single step, which is one read transaction, so in WAL mode the copy is
//! the database as of one commit while the server keeps writing. The copy
//! goes to a temporary file next to the target (mode 0600), is fsynced,
//! renamed into place and its directory fsynced: a crash leaves either the
//! old file or the whole new one.
//!
//! Restore needs the server stopped (it takes the data directory's lock,
//! see `lock`), checks the backup (`PRAGMA integrity_check`, a qpq schema
//! no newer than this build's), and puts it in place the same way, removing
//! the old database's `-wal` and `-shm` first: a WAL left beside a
//! different database file would be replayed into it.
//!
//! Attachments (issue 18) live beside the database in `<data dir>/blobs/`.
//! Backup copies them after the database into `<out>.blobs/`
//! (`file_blobs::snapshot`: their metadata as of one transaction, then each
//! finished blob, hard-linked when it can be — a finished blob is never
//! written again). After the database, so every message in the backup names
//! a blob finished before it was sent, which the later copy holds unless it
//! expired meanwhile. Unfinished uploads are left out: their uploaders start
//! over. The directory is written as `<out>.blobs.partial-<pid>` and renamed
//! into place. Restore puts `<from>.blobs/` back as the blob directory the
//! same way (refusing, without `--force`, to replace blobs that are there);
//! a backup without one leaves the blob directory as it is.
//!
//! PostgreSQL is backed up with its own tools (`pg_dump`, base backups),
//! which include the blobs (they are rows there); both commands say so and
//! exit 2 when the database is a PostgreSQL URL.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::problem;
use crate::config::{Cli, Config};
use crate::lock::DataDirLock;
use crate::store::file_blobs::{self, Snapshot};
use crate::store::sqlite::SCHEMA_VERSION;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to write (replaced if it exists; mode 0600)
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file to restore
    #[arg(long)]
    pub from: PathBuf,
    /// Replace an existing database (by default restore only fills an empty place)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("database {path}: {reason}")]
    Sqlite { path: PathBuf, reason: String },
    #[error("{0}")]
    Refused(String),
}

/// What a backup or restore moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    pub schema_version: usize,
    /// The attachments copied with it (none where there were none).
    pub blobs: Snapshot,
}

/// The SQLite file `config` names, or `None` for a PostgreSQL URL.
pub(crate) fn sqlite_database(config: &Config) -> Option<&Path> {
    config.database.sqlite_path()
}

const POSTGRES: &str = "the database is PostgreSQL: back it up with pg_dump or a base backup \
                        (the book's Backup and restore page says how)";

/// The configuration and its SQLite file; else the exit code, after
/// saying why (1: a bad configuration, 2: the database is PostgreSQL).
fn load_sqlite(cli: Cli) -> Result<(Config, PathBuf), i32> {
    let config = Config::load(cli).map_err(|e| {
        problem(e);
        1
    })?;
    let db = sqlite_database(&config)
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            problem(POSTGRES);
            2
        })?;
    Ok((config, db))
}

pub async fn run_backup(args: BackupArgs, cli: Cli) -> i32 {
    let (config, db) = match load_sqlite(cli) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let out = args.out.clone();
    let blob_dir = file_blobs::dir_in(&config.data_dir);
    let done = tokio::task::spawn_blocking(move || {
        let mut copied = backup(&db, &out)?;
        copied.blobs = backup_blobs(&blob_dir, &out)?;
        Ok::<_, BackupError>(copied)
    })
    .await;
    match done {
        Ok(Ok(c)) => {
            println!(
                "backed up {} ({} bytes, schema version {}) to {}, and {} attachments ({} bytes)",
                config.database,
                c.bytes,
                c.schema_version,
                args.out.display(),
                c.blobs.blobs,
                c.blobs.bytes,
            );
            0
        }
        Ok(Err(e)) => {
            problem(e);
            1
        }
        Err(e) => {
            problem(e);
            1
        }
    }
}

pub async fn run_restore(args: RestoreArgs, cli: Cli) -> i32 {
    let (config, db) = match load_sqlite(cli) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let data_dir = config.data_dir.clone();
    let from = args.from.clone();
    let done =
        tokio::task::spawn_blocking(move || restore(&from, &data_dir, &db, args.force)).await;
    match done {
        Ok(Ok(c)) => {
            println!(
                "restored {} ({} bytes, schema version {}) as {}, and {} attachments ({} bytes)",
                args.from.display(),
                c.bytes,
                c.schema_version,
                config.database,
                c.blobs.blobs,
                c.blobs.bytes,
            );
            0
        }
        Ok(Err(e)) => {
            problem(e);
            1
        }
        Err(e) => {
            problem(e);
            1
        }
    }
}

fn file_err(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> BackupError + '_ {
    move |e| BackupError::Sqlite {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Copies the database at `db` into `out` (see the module docs). Blocks.
pub fn backup(db: &Path, out: &Path) -> Result<Copied, BackupError> {
    if !db.is_file() {
        // Opening would create an empty database: refuse instead.
        return Err(BackupError::Refused(format!(
            "there is no database at {} (check --data-dir / --database)",
            db.display()
        )));
    }
    let src =
        Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql_err(db))?;
    src.busy_timeout(Duration::from_secs(30))
        .map_err(sql_err(db))?;
    let schema_version = schema_version(&src, db)?;
    let tmp = temporary_beside(out)?;
    let copied = (|| {
        let mut dst = Connection::open(&tmp).map_err(sql_err(&tmp))?;
        crate::store::sqlite::copy_in_one_step(&src, &mut dst).map_err(sql_err(db))?;
        dst.close().map_err(|(_, e)| sql_err(&tmp)(e))?;
        put_in_place(&tmp, out)
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(Copied {
        bytes: copied?,
        schema_version,
        blobs: Snapshot::default(),
    })
}

/// Where a backup at `out` keeps its attachments.
pub fn blobs_beside(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".blobs");
    PathBuf::from(name)
}

/// Copies the blob directory's finished blobs to [`blobs_beside`] `out`
/// (see the module doc); nothing when the server never stored one. Blocks.
pub fn backup_blobs(blob_dir: &Path, out: &Path) -> Result<Snapshot, BackupError> {
    if !blob_dir.join(file_blobs::DB_FILE).is_file() {
        return Ok(Snapshot::default());
    }
    let target = blobs_beside(out);
    replace_dir(&target, |tmp| {
        file_blobs::snapshot(blob_dir, tmp).map_err(|e| BackupError::File {
            path: blob_dir.to_path_buf(),
            reason: e.to_string(),
        })
    })
}

/// Fills a new private directory beside `target` with `fill`, then puts it
/// in place of `target` (renaming an old one aside and removing it after),
/// fsyncing the parent: a crash leaves the old directory or the new one.
fn replace_dir<T>(
    target: &Path,
    fill: impl FnOnce(&Path) -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    let aside = |what: &str| {
        let mut name = target.as_os_str().to_owned();
        name.push(format!(".{what}-{}", std::process::id()));
        PathBuf::from(name)
    };
    let (tmp, old) = (aside("partial"), aside("old"));
    let _ = std::fs::remove_dir_all(&tmp);
    crate::server::create_private_dir(&tmp).map_err(|e| BackupError::Refused(e.to_string()))?;
    let filled = fill(&tmp).and_then(|value| {
        let had_old = target.exists();
        if had_old {
            std::fs::rename(target, &old).map_err(file_err(target))?;
        }
        std::fs::rename(&tmp, target).map_err(file_err(target))?;
        sync_parent(target)?;
        if had_old {
            std::fs::remove_dir_all(&old).map_err(file_err(&old))?;
        }
        Ok(value)
    });
    if filled.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    filled
}

/// Puts the backup `from` in place as `db` in `data_dir` (see the module
/// docs). Blocks.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    db: &Path,
    force: bool,
) -> Result<Copied, BackupError> {
    let _lock = DataDirLock::acquire(data_dir).map_err(|e| BackupError::Refused(e.to_string()))?;
    if !from.is_file() {
        return Err(BackupError::Refused(format!(
            "there is no backup at {}",
            from.display()
        )));
    }
    let schema_version = {
        let conn = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql_err(from))?;
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(sql_err(from))?;
        if check != "ok" {
            return Err(BackupError::Refused(format!(
                "{} fails SQLite's integrity check: {check}",
                from.display()
            )));
        }
        schema_version(&conn, from)?
    };
    if db.exists() && !force {
        return Err(BackupError::Refused(format!(
            "a database already exists at {}; pass --force to replace it",
            db.display()
        )));
    }
    let (blobs_from, blob_dir) = (blobs_beside(from), file_blobs::dir_in(data_dir));
    let with_blobs = blobs_from.join(file_blobs::DB_FILE).is_file();
    if with_blobs && blob_dir.exists() && !force {
        return Err(BackupError::Refused(format!(
            "attachments already exist at {}; pass --force to replace them",
            blob_dir.display()
        )));
    }
    if let Some(parent) = db.parent() {
        crate::server::create_private_dir(parent)
            .map_err(|e| BackupError::Refused(e.to_string()))?;
    }
    let tmp = temporary_beside(db)?;
    let copied = (|| {
        let mut src = File::open(from).map_err(file_err(from))?;
        let mut dst = OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(file_err(&tmp))?;
        std::io::copy(&mut src, &mut dst).map_err(file_err(&tmp))?;
        dst.flush().map_err(file_err(&tmp))?;
        drop(dst);
        for suffix in ["-wal", "-shm"] {
            let mut side = db.as_os_str().to_owned();
            side.push(suffix);
            match std::fs::remove_file(&side) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(file_err(Path::new(&side))(e)),
            }
        }
        put_in_place(&tmp, db)
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let bytes = copied?;
    let blobs = if with_blobs {
        // The same copy as a backup's, from the backup's directory: only
        // finished blobs whose files are there come back.
        replace_dir(&blob_dir, |tmp| {
            file_blobs::snapshot(&blobs_from, tmp).map_err(|e| BackupError::File {
                path: blobs_from.clone(),
                reason: e.to_string(),
            })
        })?
    } else {
        Snapshot::default()
    };
    Ok(Copied {
        bytes,
        schema_version,
        blobs,
    })
}

/// The schema version of a qpq database, refusing one newer than this build
/// or a file that is not a qpq database.
pub(crate) fn schema_version(conn: &Connection, path: &Path) -> Result<usize, BackupError> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err(path))?;
    if version == 0 {
        return Err(BackupError::Refused(format!(
            "{} is not a qpq-server database (schema version 0)",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(BackupError::Refused(format!(
            "{} has schema version {version}; this qpq-server knows up to {SCHEMA_VERSION} \
             (use the newer qpq-server that wrote it)",
            path.display()
        )));
    }
    Ok(version)
}

/// A new, empty, private file next to `target`, to be renamed onto it.
fn temporary_beside(target: &Path) -> Result<PathBuf, BackupError> {
    let name = target
        .file_name()
        .ok_or_else(|| BackupError::Refused(format!("{} names no file", target.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".partial-{}", std::process::id()));
    let tmp = target.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&tmp).map_err(file_err(&tmp))?;
    Ok(tmp)
}

/// fsyncs `tmp`, renames it onto `target` and fsyncs the directory; returns
/// the size.
fn put_in_place(tmp: &Path, target: &Path) -> Result<u64, BackupError> {
    let f = File::open(tmp).map_err(file_err(tmp))?;
    f.sync_all().map_err(file_err(tmp))?;
    let bytes = f.metadata().map_err(file_err(tmp))?.len();
    std::fs::rename(tmp, target).map_err(file_err(target))?;
    sync_parent(target)?;
    Ok(bytes)
}

/// fsyncs the directory `target` is in, so a rename into it is durable.
fn sync_parent(target: &Path) -> Result<(), BackupError> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(file_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_refuses_what_is_not_a_sound_qpq_database() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = data.join("qpq.db");

        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not SQLite at all, just some bytes").unwrap();
        let e = restore(&junk, &data, &db, false).unwrap_err().to_string();
        assert!(e.contains("junk.db"), "{e}");

        let empty = dir.path().join("empty.db");
        Connection::open(&empty).unwrap();
        let e = restore(&empty, &data, &db, false).unwrap_err().to_string();
        assert!(e.contains("not a qpq-server database"), "{e}");

        let newer = dir.path().join("newer.db");
        let c = Connection::open(&newer).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        let e = restore(&newer, &data, &db, false).unwrap_err().to_string();
        assert!(e.contains("knows up to"), "{e}");
        assert!(!db.exists(), "nothing was put in place");

        let e = backup(&db, &dir.path().join("out.db"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no database"), "{e}");
    }

    /// A file that passes restore's checks: the current schema version on
    /// an otherwise empty database (restore does not look further).
    fn stand_in_database(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION)
            .unwrap();
    }

    #[tokio::test]
    async fn attachments_are_backed_up_finished_only_and_restored() {
        use crate::blobs::{BlobId, BlobStore};
        use crate::store::conformance::blobs;
        use crate::store::file_blobs::FileBlobStore;

        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = data.join("qpq.db");
        stand_in_database(&db);
        let store = FileBlobStore::open(&file_blobs::dir_in(&data)).unwrap();
        let kept = blobs::upload(&store, 1, b"a finished attachment").await;
        let unfinished = BlobId([9; 16]);
        store
            .create(blobs::new_blob(unfinished, 1, 10))
            .await
            .unwrap();
        store
            .append(unfinished, blobs::owner(1), 0, b"half".to_vec())
            .await
            .unwrap();

        let out = dir.path().join("backup.db");
        backup(&db, &out).unwrap();
        let copied = backup_blobs(&file_blobs::dir_in(&data), &out).unwrap();
        assert_eq!(copied.blobs, 1, "only the finished blob");
        assert_eq!(copied.bytes, b"a finished attachment".len() as u64);
        // The server keeps serving while (and after) it is copied.
        assert_eq!(
            store.read(kept, 0, 100).await.unwrap(),
            b"a finished attachment"
        );
        // Backing up again replaces the copy and leaves nothing aside.
        backup_blobs(&file_blobs::dir_in(&data), &out).unwrap();
        let beside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("partial") || n.contains(".old-"))
            .collect();
        assert!(beside.is_empty(), "{beside:?}");

        let second = dir.path().join("second");
        let restored = restore(&out, &second, &second.join("qpq.db"), false).unwrap();
        assert_eq!(restored.blobs, copied);
        let back = FileBlobStore::open(&file_blobs::dir_in(&second)).unwrap();
        assert_eq!(
            back.read(kept, 0, 100).await.unwrap(),
            b"a finished attachment"
        );
        assert_eq!(back.info(unfinished).await.unwrap(), None);
        drop(back);

        // Again over it: refused without --force, then replaced with it.
        let e = restore(&out, &second, &second.join("qpq.db"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--force"), "{e}");
        let again = restore(&out, &second, &second.join("qpq.db"), true).unwrap();
        assert_eq!(again.blobs.blobs, 1);
    }

    #[tokio::test]
    async fn a_backup_of_a_server_without_attachments_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = dir.path().join("backup.db");
        let none = backup_blobs(&file_blobs::dir_in(&data), &out).unwrap();
        assert_eq!(none, Snapshot::default());
        assert!(!blobs_beside(&out).exists());
    }

    #[test]
    fn restore_refuses_while_the_data_directory_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let _server = DataDirLock::acquire(&data).unwrap();
        let e = restore(&dir.path().join("b.db"), &data, &data.join("qpq.db"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("stop it first"), "{e}");
    }
}
