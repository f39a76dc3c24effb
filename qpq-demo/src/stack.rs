//! Everything the demo runs, started and stopped in order: a qpq-server and
//! two agents — `you` and `demo-peer` — in this process, each agent with its
//! own home and socket in one temporary directory, both users registered, a
//! DM and the group `#demo` open, and the bot answering for `demo-peer`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quicproquo_protocol::ipc::methods::{method, GroupCreateParams};
use quicproquo_protocol::ipc::values::Ciphersuite;
use quicproquo_testkit::agent::{first_dm, register, wait_for_conversation, wait_for_message};
use quicproquo_testkit::{InProcessDaemon, TestServer, TestkitError};
use tokio::task::JoinHandle;

use crate::bot;

/// The demo's two users.
pub const YOU: &str = "you";
pub const PEER: &str = "demo-peer";
/// The group both are in.
const GROUP: &str = "demo";

pub struct Demo {
    dir: tempfile::TempDir,
    server: TestServer,
    pub you: InProcessDaemon,
    peer: InProcessDaemon,
    bot: JoinHandle<()>,
}

impl Demo {
    /// Starts the server and both agents, registers the users, opens the DM
    /// and `#demo` with a greeting in each, and starts the bot. `progress`
    /// hears about each step.
    pub async fn start(progress: impl Fn(&str)) -> Result<Demo, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("qpq-demo-")
            .tempdir()
            .map_err(TestkitError::io("the temporary directory"))?;
        progress(&format!("temporary directory {}", dir.path().display()));
        let server = TestServer::start_in(&dir.path().join("server")).await?;
        progress(&format!("qpq-server on {}", server.addr));
        let you = agent(dir.path(), YOU).await?;
        let peer = agent(dir.path(), PEER).await?;
        let yc = you.client().await?;
        let pc = peer.client().await?;
        register(&yc, &server, YOU).await?;
        register(&pc, &server, PEER).await?;
        progress("registered `you` and `demo-peer` (post-quantum hybrid MLS)");
        // The bot listens before anything is said, so it misses nothing.
        let sub = pc
            .subscribe(None)
            .await
            .map_err(TestkitError::call("subscribing"))?;
        yc.request::<method::GroupCreate>(GroupCreateParams {
            name: GROUP.to_owned(),
            members: vec![PEER.to_owned()],
            ciphersuite: Ciphersuite::Hybrid,
        })
        .await
        .map_err(TestkitError::call("creating #demo"))?;
        let group = wait_for_conversation(&pc, GROUP).await?;
        bot::say(&pc, group.id, bot::GROUP_GREETING).await;
        // Each conversation has its own queue, so the DM's greeting could
        // overtake this one: wait until it is in, so the DM ends on top.
        wait_for_message(&yc, GROUP, bot::GROUP_GREETING).await?;
        // demo-peer opens the DM with its greeting last, so the DM is on
        // top and its greeting is the first thing you read.
        first_dm(&pc, &yc, bot::DM_GREETING).await?;
        progress("opened a DM and the group #demo");
        let bot = tokio::spawn(bot::answer(pc, sub));
        Ok(Demo {
            dir,
            server,
            you,
            peer,
            bot,
        })
    }

    /// Stops the bot, both agents and the server, removes the directory and
    /// returns its path.
    pub async fn stop(mut self) -> PathBuf {
        self.bot.abort();
        self.you.stop().await;
        self.peer.stop().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server.stop()).await;
        let path = self.dir.path().to_owned();
        drop(self.dir);
        path
    }
}

/// `name`'s agent, in its own home under `dir`.
async fn agent(dir: &Path, name: &str) -> Result<InProcessDaemon, TestkitError> {
    InProcessDaemon::start(&dir.join(name), &format!("demo passphrase ({name})")).await
}
