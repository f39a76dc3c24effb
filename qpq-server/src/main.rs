//! `qpq-server`: parse configuration, start the server, and handle signals
//! (SIGINT/SIGTERM: graceful shutdown; SIGHUP: reload the TLS certificate).

use std::io::Write;

use anyhow::Context;
use quicproquo_server::config::{Command, Config, TlsSource};
use quicproquo_server::{admin, banner, lock, ops, server};

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("QPQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only on a terminal: a log file or a pipe gets plain text.
    let colour = quicproquo_protocol::text::colour_allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = ops::parse_cli();
    init_logging();
    if let Some(command) = cli.command.take() {
        let code = match command {
            Command::Ops(c) => ops::run(c, cli).await,
            Command::Admin(args) => admin::cli::run(args, || {
                Config::load(cli)
                    .map(|c| c.data_dir)
                    .map_err(|e| format!("configuration: {e}"))
            }),
        };
        std::process::exit(code);
    }
    let config = Config::load(cli).context("configuration")?;
    // Held until the process ends: `restore` and a second server refuse.
    let _lock = lock::DataDirLock::acquire(&config.data_dir).context("data directory")?;
    let self_signed = matches!(config.tls, TlsSource::SelfSigned { .. });
    // Handlers first: a supervisor may signal as soon as the address is printed.
    let signals = Signals::new()?;
    let running = server::start(config.clone())
        .await
        .context("starting qpq-server")?;

    // stdout may be a pipe nobody reads to the end (a supervisor, a test):
    // a failed write must not take the server down.
    let banner = banner::banner(
        running.local_addr,
        &config.data_dir,
        &running.fingerprint,
        self_signed,
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);

    signals.wait(&running).await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Returns on SIGTERM or SIGINT; reloads the TLS certificate on SIGHUP.
    async fn wait(mut self, running: &server::Running) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => match running.reload_tls() {
                    Ok(fp) => tracing::info!(fingerprint = %fp, "TLS certificate reloaded"),
                    Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the current certificate"),
                },
            }
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn wait(self, _running: &server::Running) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
