//! Where a profile's files live: the one resolver every binary uses.
//!
//! `qpqd`, `qpq-ctl` and `qpq-tui` must agree on the socket path without
//! talking to each other, so the rules live here and nowhere else:
//!
//! | field | path |
//! |---|---|
//! | `data_dir` | `$QPQ_DATA_DIR/<profile>/`, else `$XDG_DATA_HOME/quicproquo/<profile>/` |
//! | `config_dir` | `$XDG_CONFIG_HOME/quicproquo/` |
//! | `runtime_dir` | `$XDG_RUNTIME_DIR/quicproquo/`, else `<data root>/.run/` |
//! | `socket` | `runtime_dir/<profile>.sock` |
//! | `spawn_lock` | `runtime_dir/<profile>.spawn.lock` |
//! | `lock`, `state_file`, `log_file` | `data_dir/qpqd.lock`, `qpq-state.bin`, `qpqd.log` |
//!
//! The data root is `$QPQ_DATA_DIR`, else `$XDG_DATA_HOME/quicproquo`.
//! Without `XDG_RUNTIME_DIR` (cron, `su`, containers) the socket lives in
//! the user's own data root, not in `/tmp`: a fixed name under `/tmp` can be
//! created first by any other user, who then owns the directory the
//! front-ends connect through. `.run` cannot collide with a profile (a
//! profile name has no dot). Front-ends still check the directory and the
//! daemon's uid before they send anything (`ipc::client::trust`).
//!
//! When `QPQ_DATA_DIR` is set, the socket and spawn lock are named
//! `<profile>-<8 hex>` instead, the hex being a hash of the data directory:
//! two installations (or two tests running in parallel) that use the same
//! profile name in different data directories must not share a socket.
//!
//! Resolving reads the environment through an injected lookup
//! ([`Paths::resolve_with`]) so tests never touch the process environment;
//! when an XDG variable is unset the platform default comes from the
//! `directories` crate. Nothing here creates a file except
//! [`ensure_private_dir`] (and [`make_file_private`] changes only modes).

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The profile used when neither `--profile` nor `QPQ_PROFILE` names one.
pub const DEFAULT_PROFILE: &str = "default";
/// The longest profile name accepted.
pub const MAX_PROFILE_LEN: usize = 32;
/// The directory name under the XDG base directories.
pub const APP_DIR: &str = "quicproquo";
/// The longest socket path accepted: `sun_path` holds 104 bytes on macOS and
/// the BSDs (108 on Linux), including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 103;

/// The one name a profile may not have: the server's default data directory
/// sits where that profile's would.
pub const RESERVED_PROFILE: &str = "server";
/// The state database's file name in a profile's data directory.
pub const STATE_FILE: &str = "qpq-state.bin";
/// The runtime directory's name under the data root when `XDG_RUNTIME_DIR`
/// is unset; not a valid profile name, so no profile can own it.
pub const FALLBACK_RUNTIME_DIR: &str = ".run";

/// A validated profile name: 1 to 32 of `a-z`, `0-9`, `_`, `-`, not
/// [`RESERVED_PROFILE`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Profile(String);

impl Profile {
    pub fn parse(name: &str) -> Result<Self, PathError> {
        let invalid = |reason: &'static str| PathError::InvalidProfile {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > MAX_PROFILE_LEN {
            return Err(invalid("it is longer than 32 characters"));
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if !name.chars().all(allowed) {
            return Err(invalid(
                "it contains a character other than a-z, 0-9, '_' and '-'",
            ));
        }
        if name == RESERVED_PROFILE {
            return Err(invalid(
                "it is the server's default data directory ($XDG_DATA_HOME/quicproquo/server); pick another name",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self(DEFAULT_PROFILE.to_owned())
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Profile {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, PathError> {
        Self::parse(s)
    }
}

/// Every path one profile uses. Build it with [`Paths::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub profile: Profile,
    /// The profile's private data: state, history, logs. Created 0700.
    pub data_dir: PathBuf,
    /// Shared configuration of all profiles.
    pub config_dir: PathBuf,
    /// Sockets and spawn locks of all profiles. Created 0700.
    pub runtime_dir: PathBuf,
    /// The daemon's IPC socket.
    pub socket: PathBuf,
    /// Held by the running daemon: one `qpqd` per profile.
    pub lock: PathBuf,
    /// Held by a front-end while it starts the daemon: one start at a time.
    pub spawn_lock: PathBuf,
    /// Left by a daemon stopped on purpose (`shutdown`, `qpq-ctl daemon
    /// stop`): front-ends do not start it again on their own until it is
    /// started explicitly (or the runtime directory is cleared at boot).
    pub stopped_marker: PathBuf,
    pub state_file: PathBuf,
    pub log_file: PathBuf,
}

/// Why paths could not be resolved or a directory is not safe to use.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error(
        "invalid profile name {name:?}: {reason} (a profile is 1 to 32 of a-z, 0-9, '_' and '-')"
    )]
    InvalidProfile { name: String, reason: &'static str },
    #[error("{var} is not usable: {reason}")]
    InvalidVar { var: &'static str, reason: String },
    #[error(
        "cannot find the home directory; set XDG_DATA_HOME and XDG_CONFIG_HOME, or QPQ_DATA_DIR"
    )]
    NoHome,
    #[error(
        "socket path {} is {len} bytes, longer than a Unix socket allows ({MAX_SOCKET_PATH}); \
         set XDG_RUNTIME_DIR to a shorter directory{}",
        path.display(),
        if *under_data_dir {
            " (XDG_RUNTIME_DIR is unset, so the socket is under the data directory; \
             a shorter QPQ_DATA_DIR or XDG_DATA_HOME also works)"
        } else {
            ""
        }
    )]
    SocketPathTooLong {
        path: PathBuf,
        len: usize,
        /// The socket is in the fallback directory under the data root.
        under_data_dir: bool,
    },
    #[error("refusing to use {}: {problem}", path.display())]
    NotPrivate { path: PathBuf, problem: String },
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Paths {
    /// Resolves the paths of `profile` (else `QPQ_PROFILE`, else `default`)
    /// from the process environment.
    pub fn resolve(profile: Option<&str>) -> Result<Paths, PathError> {
        Self::resolve_with(profile, |name| std::env::var_os(name))
    }

    /// [`Paths::resolve`] with the environment read through `env`. An empty
    /// variable counts as unset, and so does a relative XDG directory (the
    /// XDG spec says to ignore those).
    pub fn resolve_with(
        profile: Option<&str>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Paths, PathError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let xdg = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());

        let profile = match profile {
            Some(name) => Profile::parse(name)?,
            None => match var("QPQ_PROFILE") {
                Some(name) => {
                    let name = name
                        .into_string()
                        .map_err(|bad| PathError::InvalidProfile {
                            name: bad.to_string_lossy().into_owned(),
                            reason: "it is not UTF-8",
                        })?;
                    Profile::parse(&name)?
                }
                None => Profile::default(),
            },
        };

        let base_dirs = || directories::BaseDirs::new().ok_or(PathError::NoHome);
        let data_override = match var("QPQ_DATA_DIR") {
            // Absolute and without `.`, doubled or trailing slashes, so that
            // spellings of one directory name one socket.
            Some(dir) => Some(
                std::path::absolute(&dir)
                    .map_err(|e| PathError::InvalidVar {
                        var: "QPQ_DATA_DIR",
                        reason: e.to_string(),
                    })?
                    .components()
                    .collect::<PathBuf>(),
            ),
            None => None,
        };
        let data_root = match (&data_override, xdg("XDG_DATA_HOME")) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => dir.join(APP_DIR),
            (None, None) => base_dirs()?.data_dir().join(APP_DIR),
        };
        let config_dir = match xdg("XDG_CONFIG_HOME") {
            Some(dir) => dir.join(APP_DIR),
            None => base_dirs()?.config_dir().join(APP_DIR),
        };
        let xdg_runtime = xdg("XDG_RUNTIME_DIR");
        let under_data_dir = xdg_runtime.is_none();
        let runtime_dir = match xdg_runtime {
            Some(dir) => dir.join(APP_DIR),
            None => data_root.join(FALLBACK_RUNTIME_DIR),
        };

        let data_dir = data_root.join(profile.as_str());
        let instance = match &data_override {
            None => profile.as_str().to_owned(),
            Some(root) => {
                let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
                format!("{}-{}", profile, hex::encode(&digest[..4]))
            }
        };
        let socket = runtime_dir.join(format!("{instance}.sock"));
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(PathError::SocketPathTooLong {
                path: socket,
                len,
                under_data_dir,
            });
        }

        Ok(Paths {
            spawn_lock: runtime_dir.join(format!("{instance}.spawn.lock")),
            stopped_marker: runtime_dir.join(format!("{instance}.stopped")),
            lock: data_dir.join("qpqd.lock"),
            state_file: data_dir.join(STATE_FILE),
            log_file: data_dir.join("qpqd.log"),
            profile,
            data_dir,
            config_dir,
            runtime_dir,
            socket,
        })
    }
}

/// Creates `path` as a directory only this user can enter (0700), creating
/// missing parents with default permissions; an existing one is accepted
/// only if this user owns it and neither group nor others have any access.
/// A symlink is followed and its target checked.
pub fn ensure_private_dir(path: &Path) -> Result<(), PathError> {
    let io_err = |action| {
        move |source| PathError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err("create the parent directory"))?;
    }
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create the directory")(e)),
    }
    check_private_dir(path)
}

/// Takes group and other permissions off an existing file (files made
/// 0644 by older versions); best effort, as the 0700 directory around it
/// keeps others out anyway.
pub fn make_file_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
    }
}

/// Checks that `path` is a directory owned by this user with no group or
/// other permission bits.
pub fn check_private_dir(path: &Path) -> Result<(), PathError> {
    let not_private = |problem: String| PathError::NotPrivate {
        path: path.to_owned(),
        problem,
    };
    let stat = rustix::fs::stat(path).map_err(|e| PathError::Io {
        path: path.to_owned(),
        action: "inspect the directory",
        source: e.into(),
    })?;
    let file_type = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if file_type != rustix::fs::FileType::Directory {
        return Err(not_private("it exists and is not a directory".to_owned()));
    }
    let me = rustix::process::getuid().as_raw();
    if stat.st_uid != me {
        return Err(not_private(format!(
            "it is owned by uid {}, not by this user (uid {me})",
            stat.st_uid
        )));
    }
    let mode = stat.st_mode & 0o777;
    if mode & 0o077 != 0 {
        return Err(not_private(format!(
            "its permissions are {mode:04o}, so group or others can reach it; \
             it must be private to you (chmod 700 {})",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    const XDG: &[(&str, &str)] = &[
        ("XDG_DATA_HOME", "/home/u/.local/share"),
        ("XDG_CONFIG_HOME", "/home/u/.config"),
        ("XDG_RUNTIME_DIR", "/run/user/1000"),
    ];

    /// A directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "qpq-paths-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn xdg_layout() {
        let p = Paths::resolve_with(None, env(XDG)).unwrap();
        assert_eq!(p.profile.as_str(), "default");
        assert_eq!(
            p.data_dir,
            Path::new("/home/u/.local/share/quicproquo/default")
        );
        assert_eq!(p.config_dir, Path::new("/home/u/.config/quicproquo"));
        assert_eq!(p.runtime_dir, Path::new("/run/user/1000/quicproquo"));
        assert_eq!(
            p.socket,
            Path::new("/run/user/1000/quicproquo/default.sock")
        );
        assert_eq!(
            p.spawn_lock,
            Path::new("/run/user/1000/quicproquo/default.spawn.lock")
        );
        assert_eq!(p.lock, p.data_dir.join("qpqd.lock"));
        assert_eq!(p.state_file, p.data_dir.join("qpq-state.bin"));
        assert_eq!(p.log_file, p.data_dir.join("qpqd.log"));
    }

    #[test]
    fn profile_argument_beats_environment() {
        let mut vars = XDG.to_vec();
        vars.push(("QPQ_PROFILE", "work"));
        let p = Paths::resolve_with(None, env(&vars)).unwrap();
        assert_eq!(p.profile.as_str(), "work");
        assert_eq!(p.socket, Path::new("/run/user/1000/quicproquo/work.sock"));
        let p = Paths::resolve_with(Some("alice"), env(&vars)).unwrap();
        assert_eq!(p.profile.as_str(), "alice");
        assert!(p.data_dir.ends_with("quicproquo/alice"));
    }

    #[test]
    fn empty_and_relative_variables_count_as_unset() {
        let mut vars = XDG.to_vec();
        vars.push(("QPQ_PROFILE", ""));
        vars.push(("QPQ_DATA_DIR", ""));
        vars[2] = ("XDG_RUNTIME_DIR", "relative/run");
        let p = Paths::resolve_with(None, env(&vars)).unwrap();
        assert_eq!(p.profile.as_str(), "default");
        assert_eq!(
            p.runtime_dir,
            Path::new("/home/u/.local/share/quicproquo/.run")
        );
    }

    /// Regression: without `XDG_RUNTIME_DIR` the socket directory was
    /// `/tmp/quicproquo-<uid>`, which any other user could create first and
    /// then serve a fake daemon from. Now it is under the user's own data
    /// root, and made private there.
    #[test]
    fn without_xdg_runtime_dir_the_socket_is_private_under_the_data_dir() {
        let tmp = TempDir::new("fallback");
        let data = tmp.0.join("share");
        let data = data.to_str().unwrap();
        let p = Paths::resolve_with(
            None,
            env(&[("XDG_DATA_HOME", data), ("XDG_CONFIG_HOME", "/c")]),
        )
        .unwrap();
        let root = tmp.0.join("share/quicproquo");
        assert_eq!(p.runtime_dir, root.join(".run"));
        assert_eq!(p.socket, root.join(".run/default.sock"));
        assert!(!p.socket.starts_with("/tmp/quicproquo-"));
        // `.run` is no profile's directory.
        assert!(Profile::parse(FALLBACK_RUNTIME_DIR).is_err());
        // What qpqd and a starting front-end do with it: a private directory.
        ensure_private_dir(&p.runtime_dir).unwrap();
        assert_eq!(mode(&p.runtime_dir), 0o700);
        check_private_dir(&p.runtime_dir).unwrap();

        // With QPQ_DATA_DIR, under that.
        let p = Paths::resolve_with(
            None,
            env(&[("QPQ_DATA_DIR", "/srv/q"), ("XDG_CONFIG_HOME", "/c")]),
        )
        .unwrap();
        assert_eq!(p.runtime_dir, Path::new("/srv/q/.run"));

        // A data directory too deep for a socket path: a clear refusal.
        let deep = format!("/{}", "d".repeat(100));
        let err = Paths::resolve_with(
            None,
            env(&[("QPQ_DATA_DIR", &deep), ("XDG_CONFIG_HOME", "/c")]),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PathError::SocketPathTooLong { .. }), "{text}");
        assert!(
            text.contains("XDG_RUNTIME_DIR") && text.contains("data directory"),
            "{text}"
        );
    }

    #[test]
    fn data_dir_override_holds_profiles_and_gets_its_own_socket() {
        let mut vars = XDG.to_vec();
        vars.push(("QPQ_DATA_DIR", "/srv/qpq-a"));
        let a = Paths::resolve_with(Some("bob"), env(&vars)).unwrap();
        assert_eq!(a.data_dir, Path::new("/srv/qpq-a/bob"));
        assert_eq!(a.config_dir, Path::new("/home/u/.config/quicproquo"));
        let name = a.socket.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("bob-") && name.ends_with(".sock"),
            "{name}"
        );
        assert_eq!(name.len(), "bob-".len() + 8 + ".sock".len());
        assert_eq!(
            a.spawn_lock.file_name().unwrap().to_str().unwrap(),
            name.replace(".sock", ".spawn.lock")
        );

        vars.pop();
        vars.push(("QPQ_DATA_DIR", "/srv/qpq-b"));
        let b = Paths::resolve_with(Some("bob"), env(&vars)).unwrap();
        assert_ne!(a.socket, b.socket);
        assert_eq!(a.runtime_dir, b.runtime_dir);
        // Stable: the same directory always names the same socket, however spelled.
        let again = Paths::resolve_with(Some("bob"), env(&vars)).unwrap();
        assert_eq!(b, again);
        vars.pop();
        vars.push(("QPQ_DATA_DIR", "/srv//./qpq-b/"));
        let respelled = Paths::resolve_with(Some("bob"), env(&vars)).unwrap();
        assert_eq!(b, respelled);
    }

    #[test]
    fn relative_data_dir_is_made_absolute() {
        let vars = [
            ("QPQ_DATA_DIR", "rel/data"),
            ("XDG_CONFIG_HOME", "/c"),
            ("XDG_RUNTIME_DIR", "/r"),
        ];
        let p = Paths::resolve_with(None, env(&vars)).unwrap();
        assert!(p.data_dir.is_absolute());
        assert!(p.data_dir.ends_with("rel/data/default"));
    }

    #[test]
    fn profile_names_are_validated() {
        for good in ["default", "a", "work_2", "x-y", "servers", &"z".repeat(32)] {
            assert!(Profile::parse(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            (&"z".repeat(33) as &str, "longer than 32"),
            ("Alice", "a-z, 0-9"),
            ("a/b", "a-z, 0-9"),
            ("..", "a-z, 0-9"),
            ("é", "a-z, 0-9"),
            // It would share the server's default data directory.
            ("server", "server's default data directory"),
        ] {
            let err = Profile::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        let err = Paths::resolve_with(Some("../etc"), env(XDG)).unwrap_err();
        assert!(matches!(err, PathError::InvalidProfile { .. }));
        let mut vars = XDG.to_vec();
        vars.push(("QPQ_PROFILE", "Bad Name"));
        let err = Paths::resolve_with(None, env(&vars)).unwrap_err();
        assert!(err.to_string().contains("\"Bad Name\""), "{err}");
    }

    #[test]
    fn overlong_socket_path_is_refused() {
        let long = format!("/{}", "r".repeat(120));
        let vars = [
            ("XDG_DATA_HOME", "/d"),
            ("XDG_CONFIG_HOME", "/c"),
            ("XDG_RUNTIME_DIR", long.as_str()),
        ];
        let err = Paths::resolve_with(None, env(&vars)).unwrap_err();
        assert!(matches!(err, PathError::SocketPathTooLong { .. }), "{err}");
        assert!(err.to_string().contains("XDG_RUNTIME_DIR"));
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_dir_is_created_0700_with_parents() {
        let tmp = TempDir::new("create");
        let dir = tmp.0.join("a/b/quicproquo");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // Existing and private: accepted again.
        ensure_private_dir(&dir).unwrap();
    }

    #[test]
    fn private_dir_refuses_group_or_other_bits() {
        let tmp = TempDir::new("perm");
        let dir = tmp.0.join("open");
        fs::create_dir(&dir).unwrap();
        for bits in [0o750, 0o705, 0o770, 0o777, 0o701] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(bits)).unwrap();
            let err = ensure_private_dir(&dir).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, PathError::NotPrivate { .. }), "{text}");
            assert!(text.contains(&dir.display().to_string()), "{text}");
            assert!(text.contains(&format!("{bits:04o}")), "{text}");
            // Refused, not repaired.
            assert_eq!(mode(&dir), bits);
        }
    }

    #[test]
    fn private_dir_refuses_a_file() {
        let tmp = TempDir::new("file");
        let file = tmp.0.join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let err = ensure_private_dir(&file).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn private_dir_refuses_another_owner() {
        let me = rustix::process::getuid().as_raw();
        let tmp = TempDir::new("owner");
        let dir = if me == 0 {
            // As root, hand a private directory to `nobody`.
            let dir = tmp.0.join("theirs");
            fs::create_dir(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
            rustix::fs::chown(&dir, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
            dir
        } else {
            // Otherwise `/` is someone else's.
            PathBuf::from("/")
        };
        let err = ensure_private_dir(&dir).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("owned by uid"), "{text}");
        assert!(text.contains(&dir.display().to_string()), "{text}");
    }

    #[test]
    fn private_dir_follows_symlinks_and_checks_the_target() {
        let tmp = TempDir::new("link");
        let target = tmp.0.join("target");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        let link = tmp.0.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(ensure_private_dir(&link).is_err());
        fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
        ensure_private_dir(&link).unwrap();
    }
}
