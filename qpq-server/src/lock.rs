//! The data directory's lock, `DATA_DIR/qpq-server.lock`: a serving
//! `qpq-server` holds an exclusive OS file lock on it for its whole life, so
//! a second server on the same directory and `qpq-server restore` refuse
//! instead of writing under it. The operating system drops the lock when
//! the process ends however it ends (kill -9 included), so a crash never
//! leaves a stale lock behind; the file itself stays and is harmless.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "qpq-server.lock";

/// Held while the process uses the data directory; released on drop.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another qpq-server is using the data directory {0} (its {LOCK_FILE} is locked); stop it first")]
    Held(PathBuf),
    #[error("lock file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

impl DataDirLock {
    /// Creates `dir` if needed (private) and takes its lock without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |e: &dyn std::fmt::Display| LockError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        crate::server::create_private_dir(dir).map_err(|e| io(&e))?;
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(|e| io(&e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(dir.to_path_buf())),
            Err(TryLockError::Error(e)) => Err(io(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        let e = DataDirLock::acquire(&data).unwrap_err();
        assert!(matches!(e, LockError::Held(_)), "{e}");
        assert!(e.to_string().contains("stop it first"), "{e}");
        drop(first);
        DataDirLock::acquire(&data).unwrap();
    }
}
