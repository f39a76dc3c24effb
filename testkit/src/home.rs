//! A home: one profile's data, runtime (socket), configuration and XDG data
//! directories, all under one directory, and the environment variables that
//! point a `qpqd`, `qpq-ctl` or `qpq-tui` process there. Every test user
//! and the demo's users live in one, so nothing touches a real profile.

use std::ffi::OsString;
use std::path::Path;

use quicproquo_protocol::paths::{PathError, Paths};

/// A root for homes, under `/tmp`: socket paths must stay short, whatever
/// `TMPDIR` says.
pub fn root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("qpq")
        .tempdir_in("/tmp")
        .expect("a temporary directory in /tmp")
}

/// The variables that put a profile's files under `home`.
pub fn env(home: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("QPQ_DATA_DIR", home.join("data").into()),
        ("XDG_RUNTIME_DIR", home.join("run").into()),
        ("XDG_CONFIG_HOME", home.join("config").into()),
        ("XDG_DATA_HOME", home.join("share").into()),
        ("HOME", home.into()),
    ]
}

/// The default profile's paths in `home`, as a process given [`env()`] would
/// resolve them.
pub fn paths(home: &Path) -> Result<Paths, PathError> {
    let env = env(home);
    Paths::resolve_with(None, |k| {
        env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
}

/// [`env()`] as `export` lines of a shell script, for a program started by
/// something that cannot pass an environment (tmux).
pub fn shell_exports(home: &Path) -> String {
    env(home)
        .iter()
        .map(|(k, v)| format!("export {k}='{}'\n", Path::new(v).display()))
        .collect()
}
