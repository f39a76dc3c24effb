//! `qpq-tui --demo`: the whole stack on one machine with one command. A
//! qpq-server (temporary directory, embedded SQLite) and two agents — `you`
//! and `demo-peer` — run inside this process, each agent with its own data
//! directory and socket, exactly the code `qpqd` runs; the TUI talks to
//! `you`'s agent over its socket like it talks to any qpqd. Both accounts are
//! registered, a DM and a group are opened, and a small bot answers through
//! `demo-peer`'s IPC client whatever you write. Quitting shuts the agents and
//! the server down and removes the directory: nothing keeps running.
//!
//! Running the agents in-process (instead of spawning `qpqd`) is what makes
//! `cargo run --release --bin qpq-tui -- --demo` work on a fresh clone: cargo
//! builds only qpq-tui's binary for that command.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quicproquo_daemon::agent::{Agent, StartOptions};
use quicproquo_daemon::ipc_server;
use quicproquo_daemon::keystore::OsKeyring;
use quicproquo_daemon::lifecycle::{self, ProfileLock};
use quicproquo_protocol::ipc::client::{IpcClient, Subscription};
use quicproquo_protocol::ipc::methods::{
    method, AccountParams, DmOpenParams, GroupCreateParams, NoParams, SendParams,
};
use quicproquo_protocol::ipc::values::{Ciphersuite, ConversationId, ConversationRef, Secret};
use quicproquo_protocol::ipc::Notification;
use quicproquo_protocol::paths::{ensure_private_dir, Paths};
use quicproquo_server::server::Running;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// The demo's two users.
pub const YOU: &str = "you";
pub const PEER: &str = "demo-peer";

#[derive(Debug, thiserror::Error)]
#[error("demo: {0}")]
pub struct DemoError(pub String);

fn fail(what: &str) -> impl Fn(&dyn std::fmt::Display) -> DemoError + '_ {
    move |e| DemoError(format!("{what}: {e}"))
}

/// The paths of a profile whose files all live under `home`.
pub fn paths_in(home: &Path) -> Result<Paths, DemoError> {
    let env: Vec<(&str, OsString)> = vec![
        ("QPQ_DATA_DIR", home.join("data").into()),
        ("XDG_RUNTIME_DIR", home.join("run").into()),
        ("XDG_CONFIG_HOME", home.join("config").into()),
        ("XDG_DATA_HOME", home.join("share").into()),
        ("HOME", home.into()),
    ];
    Paths::resolve_with(None, |k| {
        env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .map_err(|e| fail("paths")(&e))
}

/// An agent running in this process with its own data directory and socket:
/// what `qpqd` does in `main`, minus the signal handling.
pub struct InProcessDaemon {
    pub paths: Paths,
    agent: Arc<Agent>,
    serve: Option<JoinHandle<()>>,
    _lock: ProfileLock,
}

impl InProcessDaemon {
    /// Starts an agent under `home` whose state key comes from `passphrase`
    /// (no OS keyring is touched).
    pub async fn start(home: &Path, passphrase: &str) -> Result<InProcessDaemon, DemoError> {
        let paths = paths_in(home)?;
        let p = paths.clone();
        let (lock, listener) = tokio::task::spawn_blocking(move || {
            ensure_private_dir(&p.data_dir).map_err(|e| fail("data directory")(&e))?;
            ensure_private_dir(&p.runtime_dir).map_err(|e| fail("runtime directory")(&e))?;
            let lock = lifecycle::lock_profile(&p.lock, p.profile.as_str())
                .map_err(|e| fail("profile lock")(&e))?;
            Ok::<_, DemoError>(lock)
        })
        .await
        .map_err(|e| fail("start")(&e))?
        .and_then(|lock| {
            let listener = lifecycle::bind(&paths.socket).map_err(|e| fail("socket")(&e))?;
            Ok((lock, listener))
        })?;
        let passphrase = Some(Zeroizing::new(passphrase.to_owned()));
        let agent = Agent::new(StartOptions {
            profile: paths.profile.as_str().to_owned(),
            data_dir: paths.data_dir.clone(),
            state_file: paths.state_file.clone(),
            passphrase: passphrase.clone(),
            use_ca: false,
            keyring: Arc::new(OsKeyring),
        });
        agent
            .open(passphrase)
            .await
            .map_err(|e| DemoError(format!("opening the agent's state: {e}")))?;
        let serve = tokio::spawn(ipc_server::serve(listener, Arc::clone(&agent)));
        Ok(InProcessDaemon {
            paths,
            agent,
            serve: Some(serve),
            _lock: lock,
        })
    }

    /// A client of this agent.
    pub async fn client(&self) -> Result<IpcClient, DemoError> {
        IpcClient::connect(&self.paths)
            .await
            .map_err(|e| fail("connecting to the agent")(&e))
    }

    /// Stops serving and removes the socket.
    pub async fn stop(&mut self) {
        self.agent.request_shutdown();
        if let Some(serve) = self.serve.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
        }
        let _ = std::fs::remove_file(&self.paths.socket);
    }
}

/// A server on loopback with its data in `dir`.
pub async fn start_server(dir: &Path) -> Result<Running, DemoError> {
    let config = quicproquo_server::config::Config::for_tests(dir);
    quicproquo_server::server::start(config)
        .await
        .map_err(|e| fail("starting qpq-server")(&e))
}

/// Registers `username` on `server` through `client`.
pub async fn register(
    client: &IpcClient,
    server: &Running,
    username: &str,
) -> Result<(), DemoError> {
    client
        .request::<method::Register>(AccountParams {
            server: server.local_addr.to_string(),
            server_fingerprint: quicproquo_protocol::parse_fingerprint(&server.fingerprint),
            username: username.to_owned(),
            password: Secret::new(format!("{username}-demo-password")),
        })
        .await
        .map(|_| ())
        .map_err(|e| fail("registering")(&e))
}

/// Everything the demo started, stopped in reverse order by [`Demo::stop`].
pub struct Demo {
    pub dir: tempfile::TempDir,
    pub server: Option<Running>,
    pub you: InProcessDaemon,
    pub peer: InProcessDaemon,
    bot: JoinHandle<()>,
}

impl Demo {
    /// Starts the server and both agents, registers the users, opens a DM
    /// and the group `#demo`, and starts the bot.
    pub async fn start(progress: impl Fn(&str)) -> Result<Demo, DemoError> {
        let dir = tempfile::Builder::new()
            .prefix("qpq-demo-")
            .tempdir()
            .map_err(|e| fail("temporary directory")(&e))?;
        progress(&format!("temporary directory {}", dir.path().display()));
        let server = start_server(&dir.path().join("server")).await?;
        progress(&format!("qpq-server on {}", server.local_addr));
        let you = InProcessDaemon::start(&dir.path().join(YOU), "demo passphrase (you)").await?;
        let peer =
            InProcessDaemon::start(&dir.path().join("peer"), "demo passphrase (peer)").await?;
        let yc = you.client().await?;
        let pc = peer.client().await?;
        register(&yc, &server, YOU).await?;
        register(&pc, &server, PEER).await?;
        progress("registered `you` and `demo-peer` (post-quantum hybrid MLS)");
        // The bot listens before anything is opened, so it sees the welcome.
        let sub = pc
            .subscribe(None)
            .await
            .map_err(|e| fail("subscribing")(&e))?;
        yc.request::<method::DmOpen>(DmOpenParams {
            username: PEER.to_owned(),
        })
        .await
        .map_err(|e| fail("opening the DM")(&e))?;
        yc.request::<method::GroupCreate>(GroupCreateParams {
            name: "demo".to_owned(),
            members: vec![PEER.to_owned()],
            ciphersuite: Ciphersuite::Hybrid,
        })
        .await
        .map_err(|e| fail("creating #demo")(&e))?;
        progress("opened a DM and the group #demo");
        greet(&pc).await?;
        let bot = tokio::spawn(bot(pc, sub));
        Ok(Demo {
            dir,
            server: Some(server),
            you,
            peer,
            bot,
        })
    }

    /// Stops the bot, both agents and the server; the directory goes with
    /// `self`.
    pub async fn stop(mut self) -> PathBuf {
        self.bot.abort();
        self.you.stop().await;
        self.peer.stop().await;
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), s.shutdown()).await;
        }
        self.dir.path().to_owned()
    }
}

/// Waits until the peer has joined both conversations, then says hello in
/// each.
async fn greet(pc: &IpcClient) -> Result<(), DemoError> {
    for _ in 0..200 {
        let convs = pc
            .request::<method::Conversations>(NoParams {})
            .await
            .map_err(|e| fail("listing conversations")(&e))?;
        if convs.len() >= 2 {
            for c in convs {
                let text = match c.kind {
                    quicproquo_protocol::ipc::values::ConversationKind::Dm => {
                        "Hi, I'm demo-peer, a bot on the other end of a real post-quantum MLS \
                         channel. Write me something and I'll answer. F1 shows the keys."
                    }
                    quicproquo_protocol::ipc::values::ConversationKind::Group => {
                        "Welcome to #demo, a group of two. Try /members, /rekey, /search, \
                         or /group create name demo-peer."
                    }
                };
                say(pc, c.id, text).await;
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(DemoError("demo-peer never saw the DM and #demo".into()))
}

async fn say(pc: &IpcClient, conversation: ConversationId, text: &str) {
    let _ = pc
        .request::<method::Send>(SendParams {
            conversation: ConversationRef::Id(conversation),
            text: text.to_owned(),
            confirm_changed_keys: false,
        })
        .await;
}

/// The peer's answer to `text`.
pub fn reply_to(text: &str) -> String {
    let t = text.trim();
    let lower = t.to_lowercase();
    if lower == "hi" || lower == "hello" || lower.starts_with("hello ") || lower.starts_with("hi ")
    {
        return "Hello! This reply was decrypted and re-encrypted by my own agent.".to_owned();
    }
    let reversed: String = t.chars().rev().collect();
    let words = t.split_whitespace().count();
    format!(
        "Got your {words} word{}: “{t}”. Backwards: “{reversed}”.",
        if words == 1 { "" } else { "s" }
    )
}

/// Answers every message the peer receives.
async fn bot(pc: IpcClient, mut sub: Subscription) {
    while let Ok(n) = sub.next().await {
        let Notification::Message(m) = n else {
            continue;
        };
        let m = m.message;
        if m.outgoing || m.sender == PEER {
            continue;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        say(&pc, m.conversation, &reply_to(&m.text)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bot_answers_with_a_twist() {
        assert!(reply_to("hello").starts_with("Hello!"));
        let r = reply_to("abc def");
        assert!(r.contains("2 words") && r.contains("fed cba"), "{r}");
        assert!(reply_to("日本").contains("本日"));
    }
}
