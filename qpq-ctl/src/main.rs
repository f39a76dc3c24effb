//! `qpq-ctl`: the scriptable face of quicproquo. Every call the daemon
//! `qpqd` offers (docs/src/reference/ipc.md), as a command for shell scripts,
//! cron jobs and CI: stable words, `--json` output, documented exit statuses
//! (docs/src/reference/qpq-ctl.md).
//!
//! Owns the command line ([`cli`]), how results look ([`output`]), what the
//! user types ([`input`]), the exit statuses ([`exit`]) and the commands
//! ([`commands`]). It holds no secret beyond one call and no state but the
//! `recv` cursor: identity, groups, history and the server connection belong
//! to qpqd, which qpq-ctl reaches through the shared IPC client
//! (`quicproquo_protocol::ipc::client`) and starts on demand ([`session`]).
//!
//! One current-thread tokio runtime: a command is a handful of calls on one
//! socket.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod duration;
mod error;
mod exit;
mod input;
mod output;
mod report;
mod session;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that exit 0; the rest are
            // usage errors (2). A closed stdout is not worth a word.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let json = cli.json;
    // The one environment variable qpq-ctl itself reads (no-color.org);
    // the rest is clap's (`QPQ_SERVER`) and the shared path resolver's.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let mut out = output::Out::new(json, no_color);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report::error(
                &error::CtlError::io("starting the async runtime", e),
                json,
                no_color,
            );
            return exit::Exit::Failure.into();
        }
    };
    let result = runtime
        .block_on(commands::run(cli, &mut out))
        .and_then(|status| out.flush().map(|()| status));
    // Nothing left to wait for: a blocked stdin reader must not hold the exit.
    runtime.shutdown_background();
    match result {
        Ok(status) => status.into(),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            report::error(&e, json, no_color);
            e.exit().into()
        }
    }
}
