//! `daemon start | stop | status`.
//!
//! `stop` waits until the daemon has really exited (its socket gone and its
//! process ended), so `daemon stop && daemon start` never races the old
//! daemon's profile lock. The pid comes from the daemon's lock file, which
//! the running daemon writes.

use std::path::Path;
use std::time::Duration;

use quicproquo_protocol::ipc::client::{CallError, IpcClient};
use quicproquo_protocol::ipc::methods::{method, NoParams};
use quicproquo_protocol::paths::Paths;
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::DaemonCommand;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{Out, Table};
use crate::session::Session;

/// How long `stop` waits for the daemon to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug, Serialize)]
struct DaemonState {
    running: bool,
    profile: String,
    socket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<u32>,
    /// `start`: whether this call started it; `stop`: whether it stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<bool>,
}

impl DaemonState {
    fn new(paths: &Paths, client: Option<&IpcClient>) -> DaemonState {
        DaemonState {
            running: client.is_some(),
            profile: paths.profile.to_string(),
            socket: paths.socket.display().to_string(),
            pid: client.and_then(|_| read_pid(&paths.lock)),
            daemon_version: client.map(|c| c.hello().daemon_version.clone()),
            protocol: client.map(|c| c.hello().protocol),
            changed: None,
        }
    }

    fn describe(&self) -> String {
        if !self.running {
            return format!("qpqd is not running for profile `{}`", self.profile);
        }
        let mut t = Table::plain();
        t.row(["profile:", &self.profile]);
        if let Some(pid) = self.pid {
            t.row(["pid:", &pid.to_string()]);
        }
        if let Some(v) = &self.daemon_version {
            t.row(["version:", v]);
        }
        t.row(["socket:", &self.socket]);
        let text = t.render(&crate::output::Style {
            json: false,
            color: false,
        });
        format!("qpqd is running\n{}", text.trim_end())
    }
}

/// The state as JSON, or for people: `headline` instead of the description
/// when given.
fn print(out: &mut Out, state: &DaemonState, headline: Option<&str>) -> Result<(), CtlError> {
    if out.is_json() {
        return out.json(state);
    }
    match headline {
        Some(h) => out.line(h),
        None => out.line(&state.describe()),
    }
}

pub async fn run(session: &Session, out: &mut Out, cmd: DaemonCommand) -> Result<Exit, CtlError> {
    let paths = session.paths();
    match cmd {
        DaemonCommand::Status => {
            let client = session.try_connect_running().await?;
            print(out, &DaemonState::new(paths, client.as_ref()), None)?;
            Ok(if client.is_some() {
                Exit::Ok
            } else {
                Exit::DaemonUnreachable
            })
        }
        DaemonCommand::Start => {
            let (client, started) = match session.try_connect_running().await? {
                Some(c) => (c, false),
                None => (session.start().await?, true),
            };
            let mut state = DaemonState::new(paths, Some(&client));
            state.changed = Some(started);
            if started && !out.is_json() {
                out.line("started qpqd")?;
            }
            print(out, &state, None)?;
            Ok(Exit::Ok)
        }
        DaemonCommand::Stop => {
            let Some(client) = session.try_connect_running().await? else {
                let mut state = DaemonState::new(paths, None);
                state.changed = Some(false);
                print(out, &state, None)?;
                return Ok(Exit::Ok);
            };
            let pid = read_pid(&paths.lock);
            match client.request::<method::Shutdown>(NoParams {}).await {
                // The daemon may close the socket before its answer arrives.
                Ok(_) | Err(CallError::Disconnected) => {}
                Err(e) => return Err(e.into()),
            }
            drop(client);
            wait_for_exit(session, pid).await?;
            let mut state = DaemonState::new(paths, None);
            state.changed = Some(true);
            let headline = format!("stopped qpqd for profile `{}`", state.profile);
            print(out, &state, Some(&headline))?;
            Ok(Exit::Ok)
        }
    }
}

async fn wait_for_exit(session: &Session, pid: Option<u32>) -> Result<(), CtlError> {
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let answering = session.try_connect_running().await.ok().flatten().is_some();
        if !answering && !pid.is_some_and(alive) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CtlError::io(
                "stopping qpqd",
                std::io::Error::other(format!(
                    "it was asked to stop but is still running after {} s{}",
                    STOP_TIMEOUT.as_secs(),
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                )),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The pid the running daemon wrote into its lock file.
fn read_pid(lock: &Path) -> Option<u32> {
    std::fs::read_to_string(lock).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live process (a zombie, exited but not yet reaped by
/// its parent, counts as gone).
fn alive(pid: u32) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last `)`.
        return stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X');
    }
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_free_pid_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX - 1));
    }
}
