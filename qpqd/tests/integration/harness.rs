//! A server in a temporary directory and one `qpqd` process per user.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use quicproquo_protocol::ipc::client::{CallError, IpcClient};
use quicproquo_protocol::ipc::methods::{
    self, method, AccountParams, ConversationParams, HistoryParams, NoParams,
};
use quicproquo_protocol::ipc::values::{Conversation, ConversationRef, Limit, Message, Secret};
use quicproquo_protocol::paths::Paths;
use quicproquo_server::config::Config;
use quicproquo_server::server::{self, Running};
use tokio::process::{Child, Command};

pub const QPQD: &str = env!("CARGO_BIN_EXE_qpqd");

pub struct Server {
    _dir: tempfile::TempDir,
    pub config: Config,
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub fingerprint: String,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    /// [`Server::start`] with `configure` applied to the test config.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        config.rate_limits = quicproquo_server::config::RateLimits::unlimited();
        configure(&mut config);
        let running = server::start(config.clone()).await.unwrap();
        let addr = running.local_addr;
        let fingerprint = running.fingerprint.clone();
        config.listen = addr;
        Server {
            _dir: dir,
            config,
            running: Some(running),
            addr,
            fingerprint,
        }
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Starts the server again on the same address and data directory
    /// (a new certificate if its files were removed).
    pub async fn start_again(&mut self) {
        let running = server::start(self.config.clone()).await.unwrap();
        self.fingerprint = running.fingerprint.clone();
        self.running = Some(running);
    }
}

/// One user's daemon.
pub struct Daemon {
    pub name: String,
    pub home: PathBuf,
    pub passphrase: String,
    pub child: Option<Child>,
    pub client: IpcClient,
}

fn env_for(home: &Path, name: &str) -> Vec<(String, OsString)> {
    vec![
        ("QPQ_DATA_DIR".into(), home.join("data").into()),
        ("XDG_RUNTIME_DIR".into(), home.join("run").into()),
        ("XDG_CONFIG_HOME".into(), home.join("config").into()),
        ("HOME".into(), home.into()),
        (
            "QPQ_LOG".into(),
            format!("info,quicproquo_daemon=debug,qpqd={name}").into(),
        ),
    ]
}

pub fn paths_for(home: &Path) -> Paths {
    let env = env_for(home, "");
    Paths::resolve_with(None, |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap()
}

impl Daemon {
    /// Starts a daemon in a fresh home (passphrase path: no keyring here).
    pub async fn start(root: &Path, name: &str) -> Daemon {
        Self::start_with_env(root, name, &[]).await
    }

    /// [`Daemon::start`] with more environment variables for qpqd.
    pub async fn start_with_env(root: &Path, name: &str, extra: &[(&str, OsString)]) -> Daemon {
        let home = root.join(name);
        std::fs::create_dir_all(home.join("run")).unwrap();
        let passphrase = format!("{name}'s state passphrase");
        let (child, client) = Self::spawn_with(&home, name, Some(&passphrase), extra).await;
        Daemon {
            name: name.into(),
            home,
            passphrase,
            child: Some(child),
            client,
        }
    }

    /// Starts one daemon per name and registers each with `srv`.
    pub async fn registered<const N: usize>(
        root: &Path,
        srv: &Server,
        names: [&str; N],
    ) -> [Daemon; N] {
        let mut out = Vec::with_capacity(N);
        for name in names {
            let d = Daemon::start(root, name).await;
            d.register(srv).await;
            out.push(d);
        }
        out.try_into()
            .unwrap_or_else(|_| unreachable!("one daemon per name"))
    }

    pub async fn spawn(home: &Path, name: &str, passphrase: Option<&str>) -> (Child, IpcClient) {
        Self::spawn_with(home, name, passphrase, &[]).await
    }

    async fn spawn_with(
        home: &Path,
        name: &str,
        passphrase: Option<&str>,
        extra: &[(&str, OsString)],
    ) -> (Child, IpcClient) {
        let mut cmd = Command::new(QPQD);
        cmd.arg("--foreground")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env_for(home, name))
            .envs(extra.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(home.join(format!("qpqd-{}.log", std::process::id())))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .kill_on_drop(true);
        if let Some(p) = passphrase {
            cmd.env("QPQ_PASSPHRASE", p);
        }
        // The Secret Service (if any) is reached through the session bus.
        if let Some(bus) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS") {
            cmd.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        let child = cmd.spawn().expect("spawn qpqd");
        let paths = paths_for(home);
        let mut last = None;
        for _ in 0..200 {
            match IpcClient::connect(&paths).await {
                Ok(c) => return (child, c),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("qpqd for {name} did not come up: {last:?}");
    }

    pub async fn register(&self, srv: &Server) {
        self.client
            .request::<method::Register>(AccountParams {
                server: srv.addr.to_string(),
                server_fingerprint: quicproquo_protocol::parse_fingerprint(&srv.fingerprint),
                username: self.name.clone(),
                password: Secret::new(format!("{} login password", self.name)),
            })
            .await
            .unwrap();
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
        ciphersuite: quicproquo_protocol::ipc::values::Ciphersuite,
    ) -> Conversation {
        self.client
            .request::<method::GroupCreate>(methods::GroupCreateParams {
                name: name.into(),
                members: members.iter().map(|m| m.to_string()).collect(),
                ciphersuite,
            })
            .await
            .unwrap()
    }

    /// Stops the daemon gracefully and starts it again.
    pub async fn restart(&mut self) {
        let _ = self.client.request::<method::Shutdown>(NoParams {}).await;
        if let Some(mut c) = self.child.take() {
            tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .expect("qpqd exits after shutdown")
                .unwrap();
        }
        let (child, client) = Self::spawn(&self.home, &self.name, Some(&self.passphrase)).await;
        self.child = Some(child);
        self.client = client;
    }

    /// kill -9, then start again.
    pub async fn kill9_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.start_kill().unwrap();
            c.wait().await.unwrap();
        }
        let (child, client) = Self::spawn(&self.home, &self.name, Some(&self.passphrase)).await;
        self.child = Some(child);
        self.client = client;
    }

    pub async fn send(&self, conv: &str, text: &str) -> Result<Message, CallError> {
        self.client
            .request::<method::Send>(methods::SendParams {
                conversation: ConversationRef::parse(conv).unwrap(),
                text: text.into(),
                confirm_changed_keys: false,
            })
            .await
    }

    pub async fn history(&self, conv: &str) -> Vec<Message> {
        self.client
            .request::<method::History>(HistoryParams {
                conversation: ConversationRef::parse(conv).unwrap(),
                before: None,
                limit: Limit::new(500).unwrap(),
            })
            .await
            .unwrap_or_default()
    }

    pub async fn conversations(&self) -> Vec<Conversation> {
        self.client
            .request::<method::Conversations>(NoParams {})
            .await
            .unwrap()
    }

    /// Waits until `conv`'s history holds a message with `text`.
    pub async fn wait_for(&self, conv: &str, text: &str) -> Message {
        for _ in 0..300 {
            if let Some(m) = self
                .history(conv)
                .await
                .into_iter()
                .find(|m| m.text == text)
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} never received {text:?} in {conv}; has {:?}",
            self.name,
            self.history(conv)
                .await
                .iter()
                .map(|m| &m.text)
                .collect::<Vec<_>>()
        );
    }

    /// Waits until a conversation called `name` exists.
    pub async fn wait_for_conversation(&self, name: &str) -> Conversation {
        for _ in 0..300 {
            if let Some(c) = self
                .conversations()
                .await
                .into_iter()
                .find(|c| c.name == name)
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never saw conversation {name}", self.name);
    }

    pub async fn members(&self, conv: &str) -> Vec<String> {
        self.client
            .request::<method::Members>(ConversationParams {
                conversation: ConversationRef::parse(conv).unwrap(),
            })
            .await
            .map(|ms| ms.into_iter().map(|m| m.username).collect())
            .unwrap_or_default()
    }
}
