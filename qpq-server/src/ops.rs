//! The operator's subcommands besides serving: `check-config`, `health`,
//! `backup` and `restore`. Each reads the configuration as the server would
//! (the server's flags are accepted before or after the subcommand), does
//! its one job and returns the process's exit code: 0 when all is well, 1
//! with one line per problem, 2 for a request this build cannot do here
//! (a PostgreSQL backup: that is `pg_dump`'s).

pub mod backup;
pub mod check_config;
pub mod health;

use clap::{CommandFactory, FromArgMatches};

use crate::config::Cli;

/// `qpq-server <subcommand>`; flattened into `config::Command`.
#[derive(Debug, clap::Subcommand)]
pub enum OpsCommand {
    /// Check the configuration as the server would load it, without serving:
    /// TLS files, data directory, listen addresses, database, settings
    CheckConfig(check_config::Args),
    /// Ask a running server for its health over QUIC (exit 0 when it answers):
    /// for a container HEALTHCHECK or a script
    Health(health::Args),
    /// Copy the SQLite database of a running (or stopped) server into one
    /// consistent file (SQLite's online backup)
    Backup(backup::BackupArgs),
    /// Put a backup in place as the database of a stopped server, after
    /// checking its integrity and schema version
    Restore(backup::RestoreArgs),
}

/// Parses the command line with every server flag global, so
/// `qpq-server check-config --config F` reads as `qpq-server --config F
/// check-config`.
pub fn parse_cli() -> Cli {
    let command = Cli::command().mut_args(|a| a.global(true));
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

/// Runs `command` with the server's flags in `cli`; returns the exit code.
pub async fn run(command: OpsCommand, cli: Cli) -> i32 {
    match command {
        OpsCommand::CheckConfig(args) => check_config::run(args, cli).await,
        OpsCommand::Health(args) => health::run(args, cli).await,
        OpsCommand::Backup(args) => backup::run_backup(args, cli).await,
        OpsCommand::Restore(args) => backup::run_restore(args, cli).await,
    }
}

/// Prints `problem` on standard error as the one line a script reads.
fn problem(problem: impl std::fmt::Display) {
    eprintln!("qpq-server: {problem}");
}
