//! A real server (in-process, on loopback) and users who only ever run the
//! `qpq-ctl` binary, each in a home of its own: its own data directory,
//! runtime directory (socket) and passphrase, so each gets its own `qpqd`,
//! started by qpq-ctl on demand exactly as on a user's machine.
//!
//! `qpqd` is a binary of another package, which cargo does not build for
//! this package's tests: [`qpqd`] builds it once per test run with the same
//! cargo, profile and target directory, and the users' qpq-ctl start that
//! one (through `QPQ_DAEMON`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use quicproquo_server::config::{Config, RateLimits};
use quicproquo_server::server::{self, Running};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub const CTL: &str = env!("CARGO_BIN_EXE_qpq-ctl");
/// Long enough for a slow CI machine, short enough to fail a hung test.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `qpqd` binary, built (or found up to date) once per test binary.
pub fn qpqd() -> &'static Path {
    static QPQD: OnceLock<PathBuf> = OnceLock::new();
    QPQD.get_or_init(|| {
        let bin_dir = Path::new(CTL).parent().expect("qpq-ctl has a directory");
        let target_dir = bin_dir
            .parent()
            .expect("the profile directory has a parent");
        let profile = match bin_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo
            .env_clear()
            .envs(std::env::vars_os().filter(|(k, _)| !set_by_cargo_for_tests(k)));
        if std::env::var_os("CARGO_BUILD_JOBS").is_none() {
            // A 2-core machine, shared.
            cargo.env("CARGO_BUILD_JOBS", "2");
        }
        let status = cargo
            .args([
                "build",
                "--quiet",
                "-p",
                "quicproquo-daemon",
                "--bin",
                "qpqd",
            ])
            .arg("--profile")
            .arg(&profile)
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("run cargo to build qpqd");
        assert!(status.success(), "building qpqd failed: {status}");
        let qpqd = bin_dir.join("qpqd");
        assert!(qpqd.is_file(), "{} was not built", qpqd.display());
        qpqd
    })
}

/// Variables cargo sets for the test process. A build started from here
/// must not see them: build scripts watch some (ring reruns when
/// `CARGO_MANIFEST_DIR` changes), and a rebuild of the shared dependencies
/// on every test run would cost minutes.
fn set_by_cargo_for_tests(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    [
        "CARGO_PKG_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
        "CARGO_MANIFEST_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || [
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .contains(&name)
}

/// A root for homes, under /tmp: socket paths must stay short.
pub fn root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("qc")
        .tempdir_in("/tmp")
        .expect("temp dir in /tmp")
}

pub struct Server {
    _dir: tempfile::TempDir,
    running: Option<Running>,
    pub addr: SocketAddr,
    pub fingerprint: String,
}

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("server dir");
        let mut config = Config::for_tests(dir.path());
        config.rate_limits = RateLimits::unlimited();
        let running = server::start(config).await.expect("server starts");
        Server {
            addr: running.local_addr,
            fingerprint: running.fingerprint.clone(),
            running: Some(running),
            _dir: dir,
        }
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// What one qpq-ctl run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit status and returns self.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit status {code}; stdout: {:?}; stderr: {:?}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {:?}", self.stdout))
    }
}

/// One user: a home, a profile, a password; everything through qpq-ctl.
pub struct User {
    pub name: String,
    pub home: PathBuf,
    pub password: String,
    env: Vec<(String, OsString)>,
}

impl User {
    /// One user per name, each registered with `srv`.
    pub async fn registered<const N: usize>(
        root: &Path,
        srv: &Server,
        names: [&str; N],
    ) -> [User; N] {
        let users = names.map(|n| User::new(root, n));
        for u in &users {
            u.register(srv).await;
        }
        users
    }

    /// Opens the DM with `peer`, sends `text`, waits until `peer` has it.
    pub async fn dm_with(&self, peer: &User, text: &str) {
        self.ok(&["dm", &peer.name]).await;
        self.ok(&["send", &format!("@{}", peer.name), text]).await;
        peer.wait_for_text(&format!("@{}", self.name), text).await;
    }

    pub fn new(root: &Path, name: &str) -> User {
        Self::with_passphrase(root, name, Some(&format!("{name}'s state passphrase")))
    }

    /// A user whose daemon gets no `QPQ_PASSPHRASE` (and no keyring: the
    /// environment has no D-Bus session), so it starts locked.
    pub fn with_passphrase(root: &Path, name: &str, passphrase: Option<&str>) -> User {
        let home = root.join(name);
        std::fs::create_dir_all(home.join("run")).expect("home");
        let bin_dir = Path::new(CTL).parent().expect("bin dir");
        let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .expect("PATH");
        let mut env: Vec<(String, OsString)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), home.clone().into()),
            ("QPQ_DATA_DIR".into(), home.join("data").into()),
            ("XDG_RUNTIME_DIR".into(), home.join("run").into()),
            ("XDG_CONFIG_HOME".into(), home.join("config").into()),
            ("QPQ_DAEMON".into(), qpqd().into()),
            ("QPQ_LOG".into(), "info".into()),
            ("TZ".into(), "UTC".into()),
        ];
        if let Some(p) = passphrase {
            env.push(("QPQ_PASSPHRASE".into(), p.into()));
        }
        User {
            name: name.into(),
            home,
            password: format!("{name}'s password"),
            env,
        }
    }

    /// `qpq-ctl` with this user's environment and nothing else.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(CTL);
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// `program` (a shell, a script) with this user's environment.
    pub fn command_for(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("CTL", CTL)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_stdin(args, None).await
    }

    pub async fn run_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        finish(cmd, stdin).await
    }

    /// Runs and expects success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert_eq!(
            r.code, 0,
            "qpq-ctl {args:?} as {} failed: {:?}",
            self.name, r.stderr
        );
        r.stdout
    }

    /// Runs with `--json`, expects success, parses stdout.
    pub async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let r = self.run(&all).await;
        assert_eq!(
            r.code, 0,
            "qpq-ctl {all:?} as {} failed: {:?}",
            self.name, r.stderr
        );
        r.json()
    }

    pub async fn register(&self, srv: &Server) -> Value {
        let addr = srv.addr.to_string();
        let r = self
            .run_stdin(
                &[
                    "--json",
                    "register",
                    "--server",
                    &addr,
                    "--server-fingerprint",
                    &srv.fingerprint,
                    "--password-stdin",
                    &self.name,
                ],
                Some(format!("{}\n", self.password).as_bytes()),
            )
            .await
            .expect(0);
        r.json()
    }

    /// Starts a long-running qpq-ctl (e.g. `recv --follow`) with its
    /// stdout as lines.
    pub fn spawn(&self, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut cmd = self.command();
        cmd.args(args);
        let mut child = cmd.spawn().expect("spawn qpq-ctl");
        let stdout = child.stdout.take().expect("piped stdout");
        (child, BufReader::new(stdout).lines())
    }

    /// Texts of `conversation`'s history.
    pub async fn texts(&self, conversation: &str) -> Vec<String> {
        let v = self
            .json(&["history", conversation, "--limit", "500"])
            .await;
        texts(&v)
    }

    /// Waits until `conversation`'s history holds `text`.
    pub async fn wait_for_text(&self, conversation: &str, text: &str) {
        eventually(&format!("{} receives {text:?}", self.name), || async {
            self.run(&["--json", "history", conversation, "--limit", "500"])
                .await
                .code
                == 0
                && self.texts(conversation).await.iter().any(|t| t == text)
        })
        .await;
    }

    /// The pid of this user's daemon, from its lock file.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.home.join("data/default/qpqd.lock"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for User {
    /// Stops the daemon qpq-ctl started for this user (detached, so nobody
    /// else would), and kills it if it will not stop.
    fn drop(&mut self) {
        let _ = std::process::Command::new(CTL)
            .args(["--no-autostart", "daemon", "stop"])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = self.daemon_pid().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

async fn finish(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn qpq-ctl");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        // qpq-ctl may refuse before reading everything: a broken pipe here
        // is its answer, not a test failure.
        let _ = pipe.write_all(input).await;
        drop(pipe);
    }
    let out = tokio::time::timeout(WAIT * 2, child.wait_with_output())
        .await
        .expect("qpq-ctl finishes")
        .expect("qpq-ctl output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// The `text` of each message in a JSON array.
pub fn texts(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .expect("an array of messages")
        .iter()
        .map(|m| m["text"].as_str().expect("text").to_owned())
        .collect()
}

/// The next line of a followed stream, parsed, within [`WAIT`].
pub async fn next_json(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .expect("reading stdout")
        .expect("the stream goes on");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

/// Polls `check` until it holds, or fails the test after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ends a long-running qpq-ctl with SIGTERM and returns its exit status.
pub async fn terminate(child: &mut Child) -> i32 {
    let pid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        .expect("running child");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    status.code().unwrap_or(-1)
}

/// Whether `pid` runs (a zombie counts as ended).
pub fn process_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}
