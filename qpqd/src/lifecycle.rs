//! One daemon per profile, and the socket front-ends reach it on.
//!
//! The profile lock is taken before the socket is bound, so two daemons can
//! never serve one profile. A socket file left by a crash is detected by
//! trying to connect to it, and only then removed. The socket is a filesystem
//! socket (never a Linux abstract one, which has no permissions) created
//! 0600 in a 0700 directory, and every accepted connection's peer uid is
//! checked. On Linux the daemon also makes itself non-dumpable: no core
//! dumps and no ptrace of the process holding the keys.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::traits::StreamCommon as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("qpqd is already running for profile `{profile}`{}", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning { profile: String, pid: Option<u32> },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> LifecycleError {
    LifecycleError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The profile lock, held for the daemon's life (released by the OS on any
/// exit, also kill -9).
pub struct ProfileLock {
    _file: File,
}

/// Takes the profile lock or reports who holds it.
pub fn lock_profile(lock_path: &Path, profile: &str) -> Result<ProfileLock, LifecycleError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(lock_path).map_err(|e| io_err(lock_path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut s = String::new();
            let _ = file.read_to_string(&mut s);
            return Err(LifecycleError::AlreadyRunning {
                profile: profile.to_owned(),
                pid: s.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(lock_path, e)),
    }
    // Record our pid for the message another start prints.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    let _ = file.sync_all();
    Ok(ProfileLock { _file: file })
}

/// Binds the profile's socket. Call with the profile lock held.
pub fn bind(socket: &Path) -> Result<Listener, LifecycleError> {
    if socket.exists() {
        // Held lock + existing file = a crashed daemon's leftover, unless
        // something answers on it (then refuse to steal it).
        #[cfg(unix)]
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(io_err(
                socket,
                "another process is serving this socket although the profile lock was free",
            ));
        }
        std::fs::remove_file(socket).map_err(|e| io_err(socket, e))?;
        tracing::info!(socket = %socket.display(), "removed a stale socket");
    }
    let name = socket
        .to_fs_name::<GenericFilePath>()
        .map_err(|e| io_err(socket, e))?;
    let opts = ListenerOptions::new().name(name);
    #[cfg(unix)]
    let opts = {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        opts.mode(0o600)
    };
    opts.create_tokio().map_err(|e| io_err(socket, e))
}

/// Accepts only connections from our own uid.
pub fn peer_allowed(stream: &Stream) -> bool {
    #[cfg(unix)]
    {
        let mine = rustix::process::geteuid().as_raw();
        match stream.peer_creds().map(|c| c.euid()) {
            Ok(Some(uid)) if uid == mine => true,
            Ok(uid) => {
                tracing::warn!(peer_uid = ?uid, "refused a connection from another user");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "refused a connection: no peer credentials");
                false
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = stream;
        true
    }
}

pub async fn accept(listener: &Listener) -> std::io::Result<Stream> {
    listener.accept().await
}

/// No core dumps, no ptrace by other processes of the same user.
pub fn harden_process() {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "could not make the process non-dumpable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_reports_the_first_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qpqd.lock");
        let held = lock_profile(&path, "work").unwrap();
        match lock_profile(&path, "work") {
            Err(LifecycleError::AlreadyRunning { profile, pid }) => {
                assert_eq!(profile, "work");
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("{:?}", other.err()),
        }
        drop(held);
        lock_profile(&path, "work").unwrap();
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_and_permissions_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("p.sock");
        {
            let _l = bind(&sock).unwrap();
        }
        // A leftover file (as after kill -9) is replaced.
        std::fs::write(&sock, b"").unwrap();
        let _l = bind(&sock).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A live socket is not stolen.
        assert!(bind(&sock).is_err());
    }
}
