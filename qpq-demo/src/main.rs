//! `qpq-demo`: the whole quicproquo stack on one machine with one command,
//! `cargo run --release --bin qpq-demo`. A qpq-server (temporary directory,
//! embedded SQLite) and two agents — `you` and `demo-peer` — run inside this
//! process, the same code `qpq-server` and `qpqd` run, over real QUIC on
//! loopback and real local sockets; the chat (`qpq-tui`'s, as a library)
//! talks to `you`'s agent like it talks to any qpqd, and a bot answers
//! through `demo-peer`'s. Quitting stops the agents and the server and
//! removes the directory: nothing keeps running.
//!
//! Its own crate so that `qpq-tui` — the chat people install — links
//! neither the server nor openmls and SQLCipher; the pieces come from the
//! test kit, which starts them the same way for the tests.

mod bot;
mod stack;

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use quicproquo_tui::config::Config;
use quicproquo_tui::event_loop::{run_terminal, Session};
use quicproquo_tui::worker::Target;

/// qpq-demo: try quicproquo locally — a server and two agents (you and
/// demo-peer) in this process, in a temporary directory removed on quit.
#[derive(Debug, Parser)]
#[command(name = "qpq-demo", version)]
struct Cli {
    /// Quit as soon as the conversations are drawn, and print how long the
    /// first frames took
    #[arg(long, hide = true)]
    exit_after_first_frame: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(demo(cli.exit_after_first_frame))?;
    // The agents' background tasks end with the runtime; do not wait for
    // their timeouts.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

async fn demo(exit_after_first_frame: bool) -> anyhow::Result<()> {
    eprintln!("qpq-demo: starting a local server and two agents…");
    let demo = stack::Demo::start(|step| eprintln!("  {step}")).await?;
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
        "qpq-demo: stopped the agents and the server, removed {}",
        dir.display()
    );
    let times = result?;
    if exit_after_first_frame {
        let ms = |d: std::time::Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        eprintln!(
            "first frame after {}; conversations drawn after {}",
            ms(times.first_frame),
            times.ready.map_or_else(|| "(never)".to_owned(), ms)
        );
    }
    Ok(())
}
