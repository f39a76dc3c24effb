//! `qpqd [--profile NAME] [--foreground]`: the quicproquo agent. One per
//! profile; front-ends start it on demand. Stops on SIGTERM/SIGINT or the
//! `shutdown` IPC call, flushing state.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use quicproquo_daemon::agent::{Agent, AgentError, StartOptions};
use quicproquo_daemon::keystore::OsKeyring;
use quicproquo_daemon::{ipc_server, lifecycle};
use quicproquo_protocol::paths::{ensure_private_dir, make_file_private, Paths};
use zeroize::Zeroizing;

/// qpqd: holds your quicproquo identity, MLS groups, history and the
/// connection to the server; qpq-tui and qpq-ctl talk to it.
#[derive(Debug, Parser)]
#[command(name = "qpqd", version)]
struct Cli {
    /// Account profile (one daemon and one identity per profile) [default: default]
    #[arg(long, env = "QPQ_PROFILE")]
    profile: Option<String>,
    /// Log to stderr instead of the profile's qpqd.log
    #[arg(long)]
    foreground: bool,
}

fn init_logging(foreground: bool, paths: &Paths) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("QPQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if foreground {
        use std::io::IsTerminal;
        // Colour codes only on a terminal (not when stderr is a file or a
        // pipe, as under a supervisor) and never with NO_COLOR.
        let colour = quicproquo_protocol::text::colour_allowed(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        builder
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .init();
    } else {
        use std::os::unix::fs::OpenOptionsExt;
        // 0600: the log names the server, groups and users whose key changed.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&paths.log_file)
            .with_context(|| format!("opening {}", paths.log_file.display()))?;
        // Made 0644 by versions before this one.
        make_file_private(&paths.log_file);
        builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let paths = Paths::resolve(cli.profile.as_deref()).context("resolving paths")?;
    ensure_private_dir(&paths.data_dir).context("data directory")?;
    ensure_private_dir(&paths.runtime_dir).context("runtime directory")?;
    init_logging(cli.foreground, &paths)?;
    let profile = paths.profile.as_str().to_owned();

    let _lock = lifecycle::lock_profile(&paths.lock, &profile)?;
    lifecycle::harden_process();
    let listener = lifecycle::bind(&paths.socket)?;

    // Read once, here: the rest of the daemon never reads the environment.
    let passphrase = std::env::var("QPQ_PASSPHRASE").ok().map(Zeroizing::new);
    if passphrase.as_ref().is_some_and(|p| p.is_empty()) {
        anyhow::bail!(
            "QPQ_PASSPHRASE is set but empty: unset it to use the OS keyring, or set the passphrase"
        );
    }
    let use_ca = std::env::var("QPQ_USE_CA_CERT").is_ok_and(|v| v == "1" || v == "true");
    // A fault for the tests to inject; a release build never reads it.
    let test_disk_full =
        cfg!(debug_assertions) && std::env::var("QPQ_TEST_DISK_FULL").is_ok_and(|v| v == "1");
    let test_search_delay = std::time::Duration::from_millis(
        std::env::var("QPQ_TEST_SEARCH_DELAY_MS")
            .ok()
            .filter(|_| cfg!(debug_assertions))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let agent = Agent::new(StartOptions {
        profile: profile.clone(),
        data_dir: paths.data_dir.clone(),
        state_file: paths.state_file.clone(),
        passphrase: passphrase.clone(),
        use_ca,
        keyring: Arc::new(OsKeyring),
        test_disk_full,
        test_search_delay,
    });
    match agent.open(passphrase).await {
        Ok(()) => {}
        Err(AgentError::Locked(reason)) => {
            tracing::warn!(%reason, "starting locked; waiting for `unlock`");
        }
        Err(e) => anyhow::bail!("opening the state: {e}"),
    }
    tracing::info!(profile, socket = %paths.socket.display(), "qpqd ready");

    let server = tokio::spawn(ipc_server::serve(listener, agent.clone()));
    wait_for_stop(&agent).await;
    agent.request_shutdown();
    let _ = server.await;
    // Every background task finishes its current step (a transaction in
    // flight completes) before the process exits.
    agent.stopped().await;
    let _ = std::fs::remove_file(&paths.socket);
    tracing::info!("qpqd stopped");
    Ok(())
}

async fn wait_for_stop(agent: &Agent) {
    let mut stop = agent.shutdown_signal();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = stop.wait_for(|s| *s).await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}
