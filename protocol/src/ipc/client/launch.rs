//! Starting `qpqd` on demand, the way gpg-agent and tmux are started.
//!
//! `connect_or_start`: try to connect; if nobody answers, take an exclusive
//! lock on `paths.spawn_lock`, try again (another front-end may have started
//! the daemon meanwhile), else launch it and poll-connect with back-off until
//! it answers, it exits, or the start timeout passes; then release the lock.
//! The lock makes ten front-ends starting at once produce one daemon; the
//! daemon's own lock (`paths.lock`) still guards against any other way of
//! starting two.
//!
//! The lock is `flock(2)` through rustix rather than std's `File::try_lock`:
//! same semantics on Linux (std uses `flock` there too), and it keeps the
//! workspace's `rust-version` (1.85, older than std's file locks) honest.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::fs::FlockOperation;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::{ClientOptions, ConnectError, IpcClient};
use crate::backoff::Backoff;
use crate::paths::{ensure_private_dir, Paths};

/// The daemon's file name.
pub const DAEMON_PROGRAM: &str = "qpqd";
/// Extra time a front-end waits for the spawn lock beyond the start timeout
/// of the one holding it.
const LOCK_MARGIN: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

type LaunchFn = dyn Fn(&Paths) -> io::Result<Option<Child>> + Send + Sync;

/// How a front-end starts the daemon. It returns the child when it has one,
/// so a daemon that dies at start-up is reported at once instead of after
/// the timeout.
pub struct DaemonLauncher {
    launch: Box<LaunchFn>,
}

impl std::fmt::Debug for DaemonLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DaemonLauncher")
    }
}

impl DaemonLauncher {
    /// Any way of starting a daemon (tests start an in-process fake).
    pub fn new(
        launch: impl Fn(&Paths) -> io::Result<Option<Child>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            launch: Box::new(launch),
        }
    }

    /// Runs `<program> --profile <profile>` detached, the program found by
    /// `locate` when a start is needed.
    pub fn with_locator(locate: impl Fn() -> io::Result<PathBuf> + Send + Sync + 'static) -> Self {
        Self::new(move |paths| spawn_detached(&locate()?, paths).map(Some))
    }

    /// The real `qpqd`: `$QPQ_DAEMON`, else next to this executable, else on
    /// `PATH` (see [`locate_daemon`]).
    pub fn qpqd() -> Self {
        Self::with_locator(|| {
            let exe = std::env::current_exe().ok();
            locate_daemon(|name| std::env::var_os(name), exe.as_deref())
        })
    }

    pub fn launch(&self, paths: &Paths) -> io::Result<Option<Child>> {
        (self.launch)(paths)
    }
}

/// Finds the daemon: `QPQ_DAEMON` when set (an override wins), else `qpqd`
/// next to `current_exe` (or one level up, for test binaries in cargo's
/// `deps/`), else the first executable `qpqd` on `PATH`.
pub fn locate_daemon(
    env: impl Fn(&str) -> Option<OsString>,
    current_exe: Option<&Path>,
) -> io::Result<PathBuf> {
    if let Some(program) = env("QPQ_DAEMON").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(program));
    }
    let beside = current_exe
        .and_then(Path::parent)
        .into_iter()
        .flat_map(|dir| {
            let up = (dir.file_name() == Some("deps".as_ref()))
                .then(|| dir.parent())
                .flatten();
            std::iter::once(dir).chain(up)
        });
    let path = env("PATH").unwrap_or_default();
    let on_path: Vec<PathBuf> = std::env::split_paths(&path).collect();
    beside
        .chain(on_path.iter().map(PathBuf::as_path))
        .map(|dir| dir.join(DAEMON_PROGRAM))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{DAEMON_PROGRAM} was found neither next to {} nor on PATH; \
                     set QPQ_DAEMON to its path",
                    current_exe.map_or_else(|| "this program".into(), |p| p.display().to_string())
                ),
            )
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Starts `<program> --profile <profile>` in its own process group (so the
/// terminal's signals to the front-end do not reach it) with stdin, stdout
/// and stderr on `/dev/null`; it logs to `paths.log_file`. The child is
/// reaped by tokio if dropped.
pub fn spawn_detached(program: &Path, paths: &Paths) -> io::Result<Child> {
    Command::new(program)
        .arg("--profile")
        .arg(paths.profile.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))
}

/// See the module docs.
pub(super) async fn connect_or_start(
    paths: &Paths,
    launcher: &DaemonLauncher,
    opts: &ClientOptions,
) -> Result<IpcClient, ConnectError> {
    match IpcClient::connect_with(paths, opts).await {
        Err(ConnectError::NotRunning { .. }) => {}
        done => return done,
    }
    // A daemon the user stopped stays stopped until started explicitly;
    // one that was never started, or that crashed, is started.
    if paths.stopped_marker.exists() {
        if !opts.start_stopped {
            return Err(ConnectError::StoppedOnPurpose {
                marker: paths.stopped_marker.clone(),
            });
        }
        match std::fs::remove_file(&paths.stopped_marker) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConnectError::Launch(e)),
        }
    }
    let _lock = spawn_lock(paths, opts.start_timeout + LOCK_MARGIN).await?;
    match IpcClient::connect_with(paths, opts).await {
        Err(ConnectError::NotRunning { .. }) => {}
        done => return done,
    }
    let mut child = launcher.launch(paths).map_err(ConnectError::Launch)?;
    let deadline = Instant::now() + opts.start_timeout;
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    loop {
        tokio::time::sleep(backoff.wait()).await;
        match IpcClient::connect_with(paths, opts).await {
            Err(ConnectError::NotRunning { .. }) => {}
            done => return done,
        }
        if let Some(child) = child.as_mut() {
            if let Some(status) = child.try_wait().map_err(ConnectError::Launch)? {
                return Err(ConnectError::DaemonExited {
                    status,
                    log: paths.log_file.clone(),
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(ConnectError::StartTimeout {
                timeout: opts.start_timeout,
                log: paths.log_file.clone(),
            });
        }
    }
}

/// Takes the exclusive lock on `paths.spawn_lock`, creating the runtime
/// directory (0700) and the file (0600) if needed. Released when the file is
/// dropped; the file itself stays (removing it would race with a waiter).
async fn spawn_lock(paths: &Paths, timeout: Duration) -> Result<File, ConnectError> {
    let runtime_dir = paths.runtime_dir.clone();
    let path = paths.spawn_lock.clone();
    let lock_err = |source| ConnectError::Lock {
        lock: paths.spawn_lock.clone(),
        source,
    };
    // Directory checks and open are blocking calls: keep them off the worker.
    let file = tokio::task::spawn_blocking(move || {
        ensure_private_dir(&runtime_dir)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| ConnectError::Lock {
                lock: path,
                source: e,
            })
    })
    .await
    .map_err(|e| lock_err(io::Error::other(e)))??;

    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    loop {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(lock_err(e.into())),
        }
        if Instant::now() >= deadline {
            return Err(ConnectError::LockTimeout {
                timeout,
                lock: paths.spawn_lock.clone(),
            });
        }
        tokio::time::sleep(backoff.wait()).await;
    }
}
