//! `qpqd [--profile NAME] [--foreground]`: the quicproquo agent. One per
//! profile; front-ends start it on demand. Stops on SIGTERM/SIGINT or the
//! `shutdown` IPC call, flushing state.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use quicproquo_daemon::agent::{Agent, AgentError, StartOptions};
use quicproquo_daemon::keystore::OsKeyring;
use quicproquo_daemon::{ipc_server, lifecycle, notifier};
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
    // Started, however: front-ends may start it on their own again.
    match std::fs::remove_file(&paths.stopped_marker) {
        Ok(()) => tracing::info!("started after being stopped on purpose"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, "could not clear the stopped-on-purpose mark"),
    }

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
    // How soon a silent node is given up for another; tests shorten it.
    let node_timeout = std::env::var("QPQ_TEST_NODE_TIMEOUT_MS")
        .ok()
        .filter(|_| cfg!(debug_assertions))
        .and_then(|v| v.parse().ok())
        .map_or(
            quicproquo_protocol::client::DEFAULT_IDLE_TIMEOUT,
            std::time::Duration::from_millis,
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
        node_timeout,
    });
    // Before the state opens: the catch-up it starts notifies too.
    notifier::start(&agent, notifier_config(&paths));
    match agent.open(passphrase).await {
        Ok(()) => {}
        Err(AgentError::Locked(reason)) => {
            tracing::warn!(%reason, "starting locked; waiting for `unlock`");
        }
        Err(e) => anyhow::bail!("opening the state: {e}"),
    }
    tracing::info!(profile, socket = %paths.socket.display(), "qpqd ready");

    let server = tokio::spawn(ipc_server::serve(listener, agent.clone()));
    let why = wait_for_stop(&agent, &paths).await;
    agent.request_shutdown();
    // A deleted profile is gone, not stopped: there is nothing to keep from starting.
    if why == Stop::Requested && !agent.profile_deleted() {
        // Stopped on purpose: front-ends must not start it again behind
        // the user's back. Marked before the socket goes, so a front-end
        // that finds no socket finds the mark.
        if let Err(e) = write_private(&paths.stopped_marker) {
            tracing::warn!(error = %e, "could not mark the daemon as stopped on purpose");
        }
    }
    let _ = server.await;
    // Every background task finishes its current step (a transaction in
    // flight completes) before the process exits.
    agent.stopped().await;
    let _ = std::fs::remove_file(&paths.socket);
    if agent.profile_deleted() {
        // After the state is closed, so nothing writes into it again.
        match std::fs::remove_dir_all(&paths.data_dir) {
            Ok(()) => eprintln!("qpqd: the account was deleted; profile `{profile}` removed"),
            Err(e) => anyhow::bail!(
                "the account was deleted, but removing {} failed: {e}; remove it by hand",
                paths.data_dir.display()
            ),
        }
        return Ok(());
    }
    tracing::info!("qpqd stopped");
    Ok(())
}

/// How the daemon notifies: the profile's qpqd.toml, `QPQ_NOTIFY_COMMAND`
/// and the session bus. A configuration that cannot be read turns
/// notifications off (said in the log) rather than stopping the daemon or
/// guessing what it meant.
fn notifier_config(paths: &Paths) -> notifier::Config {
    let file = notifier::config_file(paths);
    let command = std::env::var("QPQ_NOTIFY_COMMAND").ok();
    let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok();
    let mut config = match notifier::Config::load(&file, command.as_deref(), bus) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "notifications are off until this is fixed");
            return notifier::Config::off();
        }
    };
    // Tests shorten the notify command's deadline; a release build never
    // reads it.
    if let Some(ms) = std::env::var("QPQ_TEST_NOTIFY_DEADLINE_MS")
        .ok()
        .filter(|_| cfg!(debug_assertions))
        .and_then(|v| v.parse().ok())
    {
        config.command_deadline = std::time::Duration::from_millis(ms);
    }
    config
}

/// Why the daemon stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `shutdown` over IPC (`qpq-ctl daemon stop`): on purpose.
    Requested,
    /// SIGTERM or SIGINT.
    Signal,
    /// Its socket or data directory was removed: nobody can reach it, and
    /// its state may be gone; a daemon must not run on unseen.
    Vanished,
}

async fn wait_for_stop(agent: &Agent, paths: &Paths) -> Stop {
    let mut stop = agent.shutdown_signal();
    let vanished = async {
        loop {
            tokio::time::sleep(VANISHED_CHECK).await;
            if !paths.socket.exists() || !paths.data_dir.exists() {
                tracing::warn!(
                    socket = %paths.socket.display(),
                    data_dir = %paths.data_dir.display(),
                    "the socket or the data directory was removed; stopping"
                );
                return;
            }
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            return tokio::select! {
                _ = term.recv() => Stop::Signal,
                _ = int.recv() => Stop::Signal,
                _ = stop.wait_for(|s| *s) => Stop::Requested,
                () = vanished => Stop::Vanished,
            };
        }
    }
    tokio::select! {
        _ = stop.wait_for(|s| *s) => Stop::Requested,
        () = vanished => Stop::Vanished,
    }
}

/// How often the daemon checks that its socket and data directory are
/// still there.
const VANISHED_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Creates (or truncates) `path` as an empty file only this user can read.
fn write_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}
