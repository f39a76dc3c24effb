//! `qpq-tui [--profile NAME]`: the full-screen quicproquo chat. Starts qpqd
//! when it is not running. The one-command demo is its own binary,
//! `qpq-demo` (crate `qpq-demo/`), so this one ships no server.

use std::time::Instant;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use quicproquo_protocol::ipc::client::DaemonLauncher;
use quicproquo_protocol::paths::Paths;
use quicproquo_tui::config::Config;
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
    /// Moved: the demo is its own binary (`cargo run --release --bin qpq-demo`)
    #[arg(long, hide = true)]
    demo: bool,
    /// Quit as soon as the conversations (or the first-run form) are drawn,
    /// and print how long the first frames took
    #[arg(long, hide = true)]
    exit_after_first_frame: bool,
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let cli = Cli::parse();
    if cli.demo {
        Cli::command()
            .error(
                ErrorKind::UnknownArgument,
                "the demo is its own program now: `cargo run --release --bin qpq-demo` \
                 (or `qpq-demo` where it is installed)",
            )
            .exit();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let times = runtime.block_on(chat(&cli, started))?;
    if cli.exit_after_first_frame {
        let ms = |d: std::time::Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        eprintln!(
            "first frame after {}; conversations drawn after {}",
            ms(times.first_frame),
            times.ready.map_or_else(|| "(never)".to_owned(), ms)
        );
    }
    // Background tasks (the daemon connection) end with the runtime; do not
    // wait for their timeouts.
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
