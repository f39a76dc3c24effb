//! Users who only ever run the `qpq-ctl` binary, each in a home of its own
//! (see `quicproquo_testkit::home`): its own data directory, runtime
//! directory (socket) and passphrase, so each gets its own `qpqd`, started
//! by qpq-ctl on demand exactly as on a user's machine — the test kit's
//! `qpqd_binary`, through `QPQ_DAEMON`. The server is the test kit's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub use quicproquo_testkit::home::root;
use quicproquo_testkit::{home, qpqd_binary};
pub use quicproquo_testkit::{TestServer as Server, WAIT};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub const CTL: &str = env!("CARGO_BIN_EXE_qpq-ctl");

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

    /// Waits until the daemon's connection is up (after a `login`, the
    /// daemon reconnects with the new session; a command that needs the
    /// server fails at once, by design, while it does).
    pub async fn wait_online(&self) {
        eventually(&format!("{}'s daemon is online", self.name), || async {
            let status = self.run(&["status", "--json"]).await;
            status.stdout.contains("\"connection\":\"online\"")
        })
        .await;
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
        let mut env: Vec<(String, OsString)> = home::env(&home)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.extend([
            ("PATH".into(), path),
            ("QPQ_DAEMON".into(), qpqd_binary().into()),
            ("QPQ_LOG".into(), "info".into()),
            ("TZ".into(), "UTC".into()),
        ]);
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

    /// `run` with `dir` as the working directory (where relative paths
    /// given to qpq-ctl are resolved).
    pub async fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.current_dir(dir).args(args);
        finish(cmd, None).await
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

    /// `register` or `login` (`verb`) of `username` on `srv`, the password
    /// on stdin, with JSON output.
    pub async fn account_run(
        &self,
        srv: &Server,
        verb: &str,
        username: &str,
        password: &str,
    ) -> Run {
        let addr = srv.addr.to_string();
        self.run_stdin(
            &[
                "--json",
                verb,
                "--server",
                &addr,
                "--server-fingerprint",
                &srv.fingerprint,
                "--password-stdin",
                username,
            ],
            Some(format!("{password}\n").as_bytes()),
        )
        .await
    }

    pub async fn register(&self, srv: &Server) -> Value {
        let r = self
            .account_run(srv, "register", &self.name, &self.password)
            .await
            .expect(0);
        // Like the test kit's users: every invitation joined without asking,
        // so the tests of other things need no consent step.
        let mode = self.run(&["auto-accept", "everyone"]).await.expect(0);
        assert_eq!(mode.stdout.trim(), "everyone");
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

    /// Waits until a message `id` with an attachment is in this user's
    /// history of any conversation (`recv --since 0` reads them all).
    pub async fn wait_for_file(&self, id: &str) {
        eventually(&format!("{} has the file of {id}", self.name), || async {
            let r = self.run(&["--json", "recv", "--since", "0"]).await;
            r.code == 0
                && r.json().as_array().is_some_and(|all| {
                    all.iter()
                        .any(|m| m["id"] == id && m["attachment"].is_object())
                })
        })
        .await;
    }

    /// Stops this user's daemon and starts it again with `vars` added to
    /// its environment (e.g. a test's transfer delay).
    pub async fn restart_daemon_with(&mut self, vars: &[(&str, &str)]) {
        self.ok(&["daemon", "stop"]).await;
        self.env.extend(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), OsString::from(v))),
        );
        self.ok(&["daemon", "start"]).await;
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
        let _ = quicproquo_testkit::process::output_blocking(
            std::process::Command::new(CTL)
                .args(["--no-autostart", "daemon", "stop"])
                .env_clear()
                .envs(self.env.iter().map(|(k, v)| (k, v))),
        );
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
    let polled = quicproquo_testkit::agent::eventually(what, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    });
    polled.await.unwrap_or_else(|e| panic!("{e}"));
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

/// Whether `program` is on PATH (a test that needs it skips otherwise).
pub fn on_path(program: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join(program).is_file())
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
