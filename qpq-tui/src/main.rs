//! `qpq-tui [--profile NAME]`: the full-screen quicproquo chat. Starts qpqd
//! when it is not running. `qpq-tui --demo` runs a local server and two
//! agents in-process and opens the chat with a bot on the other end.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use quicproquo_protocol::ipc::client::DaemonLauncher;
use quicproquo_protocol::paths::Paths;
use quicproquo_tui::config::Config;
use quicproquo_tui::demo::Demo;
use quicproquo_tui::event_loop::{run_terminal, Session, StartTimes};
use quicproquo_tui::worker::Target;

/// qpq-tui: end-to-end encrypted (post-quantum MLS) chat in the terminal.
/// Keys and commands: F1 or /help inside.
#[derive(Debug, Parser)]
#[command(name = "qpq-tui", version)]
struct Cli {
    /// Account profile (one qpqd and one identity per profile) [default: default]
    #[arg(long, env = "QPQ_PROFILE")]
    profile: Option<String>,
    /// Try everything locally: a server and two agents (you and demo-peer)
    /// in this process, in a temporary directory removed on quit
    #[arg(long)]
    demo: bool,
    /// Quit as soon as the conversations (or the first-run form) are drawn,
    /// and print how long the first frames took
    #[arg(long, hide = true)]
    exit_after_first_frame: bool,
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let times = runtime.block_on(async {
        if cli.demo {
            demo(cli.exit_after_first_frame).await
        } else {
            chat(&cli, started).await
        }
    })?;
    if cli.exit_after_first_frame {
        let ms = |d: std::time::Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        eprintln!(
            "first frame after {}; conversations drawn after {}",
            ms(times.first_frame),
            times.ready.map_or_else(|| "(never)".to_owned(), ms)
        );
    }
    // Background tasks (a daemon connection, the demo's agents) end with
    // the runtime; do not wait for their timeouts.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

async fn chat(cli: &Cli, started: Instant) -> anyhow::Result<StartTimes> {
    let paths = Paths::resolve(cli.profile.as_deref()).context("resolving the profile's paths")?;
    let config = Config::load(&paths.config_dir)?;
    let session = Session {
        config,
        profile: paths.profile.as_str().to_owned(),
        exit_after_first_frame: cli.exit_after_first_frame,
    };
    let target = Target {
        paths,
        launcher: Some(DaemonLauncher::qpqd()),
    };
    Ok(run_terminal(target, session, started).await?)
}

async fn demo(exit_after_first_frame: bool) -> anyhow::Result<StartTimes> {
    eprintln!("qpq-tui demo: starting a local server and two agents…");
    let demo = Demo::start(|step| eprintln!("  {step}")).await?;
    let started = Instant::now();
    let session = Session {
        config: Config::default(),
        profile: "demo".to_owned(),
        exit_after_first_frame,
    };
    let target = Target {
        paths: demo.you.paths.clone(),
        launcher: None,
    };
    let result = run_terminal(target, session, started).await;
    let dir = demo.stop().await;
    eprintln!(
        "qpq-tui demo: stopped the agents and the server, removed {}",
        dir.display()
    );
    Ok(result?)
}
