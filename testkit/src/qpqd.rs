//! The test daemon: a real `qpqd` process in a home of its own, with a
//! passphrase (no keyring), logging to a file in the home, killed when
//! dropped. [`qpqd_binary`] finds the binary for any package's tests.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use quicproquo_protocol::ipc::client::{CallError, IpcClient};
use quicproquo_protocol::ipc::methods::{
    self, method, ConversationParams, GroupCreateParams, NoParams, SendParams,
};
use quicproquo_protocol::ipc::values::{
    Ciphersuite, Conversation, ConversationRef, Member, Message,
};
use tokio::process::{Child, Command};

use crate::{agent, home, TestServer};

/// The `qpqd` binary of the build the running test belongs to, built (or
/// found up to date) by cargo once per test process. Cargo builds only the
/// tested package's own binaries for its tests; this builds qpqd with the
/// same cargo, profile and target directory. `QPQ_QPQD_BIN` names another
/// (a bench binary run by hand, without cargo).
pub fn qpqd_binary() -> &'static Path {
    static QPQD: OnceLock<PathBuf> = OnceLock::new();
    QPQD.get_or_init(|| {
        // A bench run as a bare executable names the binary it measures.
        if let Some(bin) = std::env::var_os("QPQ_QPQD_BIN").map(PathBuf::from) {
            return bin;
        }
        let exe = std::env::current_exe().expect("the test's own path");
        // target/<profile>/deps/<test> or target/<profile>/<bin>
        let mut bin_dir = exe.parent().expect("the test has a directory");
        if bin_dir.ends_with("deps") {
            bin_dir = bin_dir.parent().expect("deps has a parent");
        }
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
fn set_by_cargo_for_tests(name: &OsStr) -> bool {
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

/// The environment under which a test daemon gives up a silent node after
/// 1.5 s instead of 30 s (`QPQ_TEST_NODE_TIMEOUT_MS`, debug builds), so a
/// test of moving between the nodes of a deployment takes seconds:
/// `TestDaemon::start_with_env(root, name, &quick_node_moves())`, then
/// [`agent::register_at`] with every node's address.
pub fn quick_node_moves() -> [(&'static str, OsString); 1] {
    [("QPQ_TEST_NODE_TIMEOUT_MS", "1500".into())]
}

/// Test daemons get the session bus (for the keyring) but must not pop up
/// notifications on the desktop of whoever runs the tests: each home's
/// `qpqd.toml` says `desktop = false`, unless the test wrote one first.
fn quiet_desktop(home: &Path) {
    let Ok(paths) = home::paths(home) else { return };
    let file = quicproquo_daemon::notifier::config_file(&paths);
    if !file.exists() {
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&file, "desktop = false\n");
    }
}

/// One user's `qpqd`.
pub struct TestDaemon {
    pub name: String,
    /// `root/name`: see [`crate::home`].
    pub home: PathBuf,
    pub passphrase: String,
    pub child: Option<Child>,
    pub client: IpcClient,
}

impl TestDaemon {
    /// Starts a daemon for `name` in a fresh home under `root`.
    pub async fn start(root: &Path, name: &str) -> TestDaemon {
        Self::start_with_env(root, name, &[]).await
    }

    /// [`TestDaemon::start`] with more environment variables for qpqd.
    pub async fn start_with_env(root: &Path, name: &str, extra: &[(&str, OsString)]) -> TestDaemon {
        let home = root.join(name);
        std::fs::create_dir_all(home.join("run")).expect("the daemon's home");
        let passphrase = format!("{name}'s state passphrase");
        let (child, client) = Self::spawn_with(&home, name, Some(&passphrase), extra).await;
        TestDaemon {
            name: name.into(),
            home,
            passphrase,
            child: Some(child),
            client,
        }
    }

    /// Starts one daemon per name, each registered with `server`.
    pub async fn registered<const N: usize>(
        root: &Path,
        server: &TestServer,
        names: [&str; N],
    ) -> [TestDaemon; N] {
        let mut out = Vec::with_capacity(N);
        for name in names {
            let d = TestDaemon::start(root, name).await;
            d.register(server).await;
            out.push(d);
        }
        out.try_into()
            .unwrap_or_else(|_| unreachable!("one daemon per name"))
    }

    /// Runs qpqd in `home` (without `QPQ_PASSPHRASE` when `passphrase` is
    /// `None`) and connects once its socket answers.
    pub async fn spawn(home: &Path, name: &str, passphrase: Option<&str>) -> (Child, IpcClient) {
        Self::spawn_with(home, name, passphrase, &[]).await
    }

    async fn spawn_with(
        home: &Path,
        name: &str,
        passphrase: Option<&str>,
        extra: &[(&str, OsString)],
    ) -> (Child, IpcClient) {
        let log = std::fs::File::create(home.join(format!("qpqd-{}.log", std::process::id())));
        let mut cmd = Command::new(qpqd_binary());
        cmd.arg("--foreground")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(home::env(home))
            // (A directive naming the user, `qpqd=alice`, was here: not a
            // level, so the whole filter was refused and the daemon logged
            // at `info`; the log file's name says whose it is.)
            .env("QPQ_LOG", "info,quicproquo_daemon=debug")
            .envs(extra.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.map(Stdio::from).unwrap_or(Stdio::null()))
            .kill_on_drop(true);
        if let Some(p) = passphrase {
            cmd.env("QPQ_PASSPHRASE", p);
        }
        // The Secret Service (if any) is reached through the session bus
        // (unless the test gives a bus of its own).
        let own_bus = extra.iter().any(|(k, _)| *k == "DBUS_SESSION_BUS_ADDRESS");
        if let Some(bus) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|_| !own_bus) {
            cmd.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        quiet_desktop(home);
        let child = cmd.spawn().expect("spawn qpqd");
        let paths = home::paths(home).expect("the home's paths");
        let paths = &paths;
        let connected =
            agent::eventually(&format!("qpqd for {name} answers"), move || async move {
                IpcClient::connect(paths).await.ok()
            })
            .await;
        match connected {
            Ok(client) => (child, client),
            Err(e) => panic!("{e}: {:?}", IpcClient::connect(paths).await.err()),
        }
    }

    pub async fn register(&self, server: &TestServer) {
        agent::register(&self.client, server, &self.name)
            .await
            .expect("register");
    }

    /// Stops the daemon gracefully and starts it again.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Stops the daemon gracefully and waits until it has exited, so a
    /// test can change what it finds on the next start.
    pub async fn stop(&mut self) {
        let _ = self.client.request::<method::Shutdown>(NoParams {}).await;
        if let Some(mut c) = self.child.take() {
            tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .expect("qpqd exits after shutdown")
                .expect("wait for qpqd");
        }
    }

    /// Starts the daemon again after [`TestDaemon::stop`].
    pub async fn start_again(&mut self) {
        self.respawn().await;
    }

    /// Starts the daemon again after [`TestDaemon::stop`] with more
    /// environment variables (a fault to inject, say); the next
    /// [`TestDaemon::restart`] goes without them.
    pub async fn start_again_with_env(&mut self, extra: &[(&str, OsString)]) {
        let (child, client) =
            Self::spawn_with(&self.home, &self.name, Some(&self.passphrase), extra).await;
        self.child = Some(child);
        self.client = client;
    }

    /// kill -9, then start again.
    pub async fn kill9_and_restart(&mut self) {
        self.kill9().await;
        self.respawn().await;
    }

    /// kill -9, and wait until the process is gone: nothing is flushed or
    /// checkpointed, so the state's write-ahead log is left as it was.
    /// [`TestDaemon::start_again`] starts it again.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.start_kill().expect("kill qpqd");
            tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .expect("qpqd exits after kill -9")
                .expect("wait for qpqd");
        }
    }

    async fn respawn(&mut self) {
        let (child, client) = Self::spawn(&self.home, &self.name, Some(&self.passphrase)).await;
        self.child = Some(child);
        self.client = client;
    }

    pub async fn dm_open(&self, peer: &str) -> Result<Conversation, CallError> {
        self.client
            .request::<method::DmOpen>(methods::DmOpenParams {
                username: peer.into(),
            })
            .await
    }

    /// Creates a group with `members` and returns it as this user sees it.
    pub async fn create_group(
        &self,
        name: &str,
        members: &[&str],
        ciphersuite: Ciphersuite,
    ) -> Conversation {
        self.client
            .request::<method::GroupCreate>(GroupCreateParams {
                name: name.into(),
                members: members.iter().map(|m| m.to_string()).collect(),
                ciphersuite,
            })
            .await
            .expect("group.create")
    }

    pub async fn send(&self, conv: &str, text: &str) -> Result<Message, CallError> {
        self.client
            .request::<method::Send>(SendParams {
                conversation: ConversationRef::parse(conv).expect("a conversation reference"),
                text: text.into(),
                confirm_changed_keys: false,
                reply_to: None,
            })
            .await
    }

    /// The conversation's history; panics if the call fails (so a check
    /// that something is absent rests on a call that worked).
    pub async fn history(&self, conv: &str) -> Vec<Message> {
        agent::history(&self.client, conv)
            .await
            .unwrap_or_else(|e| panic!("{}: history of {conv}: {e}", self.name))
    }

    pub async fn conversations(&self) -> Vec<Conversation> {
        self.client
            .request::<method::Conversations>(NoParams {})
            .await
            .expect("conversations")
    }

    /// Waits until `conv`'s history holds a message with `text`.
    pub async fn wait_for(&self, conv: &str, text: &str) -> Message {
        match agent::wait_for_message(&self.client, conv, text).await {
            Ok(m) => m,
            Err(e) => panic!(
                "{}: {e}; has {:?}",
                self.name,
                agent::history(&self.client, conv)
                    .await
                    .map(|h| h.into_iter().map(|m| m.text).collect::<Vec<_>>())
            ),
        }
    }

    /// Waits until everything this daemon queued has gone to the server.
    pub async fn wait_outbox_empty(&self) {
        agent::eventually(&format!("{}'s outbox drains", self.name), || async {
            let s = self
                .client
                .request::<method::Status>(NoParams {})
                .await
                .expect("status");
            (s.outbox == 0).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits until a conversation called `name` exists.
    pub async fn wait_for_conversation(&self, name: &str) -> Conversation {
        agent::wait_for_conversation(&self.client, name)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// `verify`: the safety number with `user` for the key they hold in
    /// `conversation` (their DM when `None`); `confirm` marks it verified
    /// if it is still `compared`.
    pub async fn verify(
        &self,
        user: &str,
        conversation: Option<&str>,
        confirm: Option<&str>,
    ) -> Result<methods::VerifyResult, CallError> {
        self.client
            .request::<method::Verify>(methods::VerifyParams {
                username: user.into(),
                confirm: confirm.is_some(),
                safety_number: confirm.map(str::to_owned),
                conversation: conversation
                    .map(|c| ConversationRef::parse(c).expect("a conversation reference")),
            })
            .await
    }

    /// The members of `conv` with their keys and verification state.
    pub async fn member_list(&self, conv: &str) -> Vec<Member> {
        self.client
            .request::<method::Members>(ConversationParams {
                conversation: ConversationRef::parse(conv).expect("a conversation reference"),
            })
            .await
            .unwrap_or_else(|e| panic!("{}: members of {conv}: {e}", self.name))
    }

    pub async fn members(&self, conv: &str) -> Vec<String> {
        self.client
            .request::<method::Members>(ConversationParams {
                conversation: ConversationRef::parse(conv).expect("a conversation reference"),
            })
            .await
            .map(|ms| ms.into_iter().map(|m| m.username).collect())
            .unwrap_or_else(|e| panic!("{}: members of {conv}: {e}", self.name))
    }
}
