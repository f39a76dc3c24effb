//! `doctor`: one command that checks what the first hour depends on and
//! explains each finding — the profile's directories, the daemon, the
//! keystore, the account, the server (reachable, certificate, protocol,
//! clock), the session and the key-package stock. Each check is a line,
//! ✓ or ✗, and a ✗ says how to fix it; the exit status is 1 when any fails.
//!
//! Never starts the daemon: finding it stopped is one of the answers.

use std::path::Path;

use quicproquo_protocol::ipc::methods::{method, DiagnoseResult, NoParams, StatusResult};
use quicproquo_protocol::ipc::values::{
    ConnectionState, IntegrityState, KeystoreState, StorageState,
};
use quicproquo_protocol::paths::check_private_dir;
use serde::Serialize;

use super::word;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{sanitize_line, Out, Paint};
use crate::session::Session;

/// A clock this far from the server's is reported: sessions and message
/// times depend on it.
const CLOCK_TOLERANCE_MS: i64 = 60_000;

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    ok: bool,
    checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, check: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            check,
            ok: true,
            detail: detail.into(),
            fix: None,
        });
    }

    fn fail(&mut self, check: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.checks.push(Check {
            check,
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
}

pub async fn run(session: &Session, out: &mut Out) -> Result<Exit, CtlError> {
    let mut report = Report::default();
    let paths = session.paths();
    directory(&mut report, "data directory", &paths.data_dir);
    directory(&mut report, "runtime directory", &paths.runtime_dir);
    match session.try_connect_running().await {
        Ok(Some(client)) => {
            let version = client.hello().daemon_version.clone();
            if version == env!("CARGO_PKG_VERSION") {
                report.pass(
                    "daemon",
                    format!(
                        "qpqd {version} runs for profile `{}`, as you",
                        paths.profile
                    ),
                );
            } else {
                report.fail(
                    "daemon",
                    format!(
                        "qpqd {} runs, but this qpq-ctl is {}",
                        sanitize_line(&version),
                        env!("CARGO_PKG_VERSION")
                    ),
                    "restart it with the installed version: qpq-ctl daemon stop && qpq-ctl daemon start",
                );
            }
            let status = client.request::<method::Status>(NoParams {}).await?;
            daemon_state(&mut report, &status);
            if status.keystore != KeystoreState::Locked && status.account.is_some() {
                let found = client.request::<method::Diagnose>(NoParams {}).await?;
                server(&mut report, &status, &found);
            }
        }
        Ok(None) if paths.stopped_marker.exists() => report.fail(
            "daemon",
            "qpqd was stopped on purpose (`qpq-ctl daemon stop`); the other checks need it",
            "qpq-ctl daemon start",
        ),
        Ok(None) => report.fail(
            "daemon",
            "qpqd is not running; the other checks need it",
            "qpq-ctl daemon start (any command starts it, too)",
        ),
        Err(e) => report.fail("daemon", e.to_string(), e.hint().unwrap_or_default()),
    }
    report.ok = report.checks.iter().all(|c| c.ok);
    print(out, &report)?;
    Ok(if report.ok { Exit::Ok } else { Exit::Failure })
}

fn directory(report: &mut Report, check: &'static str, dir: &Path) {
    if !dir.exists() {
        report.pass(
            check,
            format!("{} (not made yet: qpqd makes it)", dir.display()),
        );
        return;
    }
    match check_private_dir(dir) {
        Ok(()) => report.pass(check, format!("{} (yours, 0700)", dir.display())),
        Err(e) => report.fail(
            check,
            e.to_string(),
            format!(
                "chmod 700 {} (and own it: it holds your keys)",
                dir.display()
            ),
        ),
    }
}

/// What `status` tells: the keystore, the account, the state's health.
fn daemon_state(report: &mut Report, st: &StatusResult) {
    match st.keystore {
        KeystoreState::Keyring => report.pass("keystore", "the state key is in the OS keyring"),
        KeystoreState::Passphrase => report.pass(
            "keystore",
            "no keyring: the state key comes from a passphrase (QPQ_PASSPHRASE or `qpq-ctl unlock`)",
        ),
        KeystoreState::Locked if st.new_state => report.fail(
            "keystore",
            "no keyring and no state yet: qpqd waits for a passphrase to create it",
            "qpq-ctl unlock (choose a passphrase; it cannot be recovered)",
        ),
        KeystoreState::Locked => report.fail(
            "keystore",
            "locked: no keyring answered and no passphrase was given",
            "qpq-ctl unlock (or start qpqd with QPQ_PASSPHRASE set)",
        ),
    }
    if st.integrity != IntegrityState::Ok {
        report.fail(
            "integrity",
            sanitize_line(&st.integrity_detail),
            "read `qpq-ctl status`, then qpq-ctl ack-integrity",
        );
    }
    if st.storage != StorageState::Ok {
        report.fail(
            "storage",
            sanitize_line(&st.storage_detail),
            "free disk space in the data directory",
        );
    }
    if st.keystore == KeystoreState::Locked {
        return;
    }
    match (&st.account, st.connection) {
        (None, _) => report.fail(
            "account",
            "this profile has no account",
            "qpq-ctl register --server HOST:PORT USERNAME (or `login` on the device that has it)",
        ),
        (Some(a), ConnectionState::LoggedOut) => report.fail(
            "account",
            format!("`{}` is logged out", sanitize_line(&a.username)),
            "qpq-ctl login --server HOST:PORT USERNAME",
        ),
        (Some(a), _) => report.pass(
            "account",
            format!(
                "`{}` on {}",
                sanitize_line(&a.username),
                sanitize_line(st.server.as_deref().unwrap_or("?"))
            ),
        ),
    }
}

/// What `diagnose` found: the server, the clock, the session, key packages.
fn server(report: &mut Report, st: &StatusResult, found: &DiagnoseResult) {
    let address = sanitize_line(st.server.as_deref().unwrap_or("the server"));
    let Some(h) = &found.server else {
        let why = match st.connection_detail.as_str() {
            "" => sanitize_line(&found.server_problem),
            detail => sanitize_line(detail),
        };
        report.fail(
            "server",
            format!("{address} cannot be asked: {why}"),
            "check that the server runs and the address is right; a changed certificate \
             needs `qpq-ctl login --server-fingerprint SHA256`",
        );
        return;
    };
    if h.protocol_version == quicproquo_protocol::PROTOCOL_VERSION {
        report.pass(
            "server",
            format!(
                "{address}: qpq-server {}, protocol {}, certificate {}, round trip {} ms",
                sanitize_line(&h.server_version),
                h.protocol_version,
                if h.trust == "ca" {
                    "verified by the system's CAs"
                } else {
                    "pinned and matching"
                },
                h.round_trip_ms
            ),
        );
    } else {
        report.fail(
            "server",
            format!(
                "{address} speaks protocol {}, this qpq-ctl {}",
                h.protocol_version,
                quicproquo_protocol::PROTOCOL_VERSION
            ),
            "install the version that matches the server's",
        );
    }
    let offset = h.clock_offset_ms;
    let seconds = offset.unsigned_abs() / 1000;
    if offset.abs() <= CLOCK_TOLERANCE_MS {
        report.pass(
            "clock",
            format!("within {} s of the server's", seconds.max(1)),
        );
    } else {
        report.fail(
            "clock",
            format!(
                "this machine's clock is {seconds} s {} the server's",
                if offset > 0 { "behind" } else { "ahead of" }
            ),
            "turn on time synchronisation (e.g. `timedatectl set-ntp true`)",
        );
    }
    if !found.session_valid {
        report.fail(
            "session",
            sanitize_line(&found.session_problem),
            "qpq-ctl login --server HOST:PORT USERNAME",
        );
        return;
    }
    report.pass("session", "the server accepts this profile's session");
    for k in &found.key_packages {
        let suite = word(&k.ciphersuite);
        match k.last_resort_age_ms {
            Some(age) if k.available > 0 => report.pass(
                "key packages",
                format!(
                    "{suite}: {} on the server; last-resort package {} old",
                    k.available,
                    days(age)
                ),
            ),
            _ => report.fail(
                "key packages",
                format!("{suite}: none on the server, so nobody can add you to a {suite} group"),
                "qpqd uploads them when it connects: qpq-ctl daemon stop && qpq-ctl daemon start",
            ),
        }
    }
}

fn days(ms: u64) -> String {
    match ms / 86_400_000 {
        0 => format!("{} h", ms / 3_600_000),
        1 => "1 day".into(),
        n => format!("{n} days"),
    }
}

fn print(out: &mut Out, report: &Report) -> Result<(), CtlError> {
    if out.is_json() {
        return out.json(report);
    }
    let style = out.style();
    for c in &report.checks {
        let mark = if c.ok {
            style.paint(Paint::Bold, "✓")
        } else {
            style.paint(Paint::Warn, "✗")
        };
        out.line(&format!("{mark} {}: {}", c.check, c.detail))?;
        if let Some(fix) = &c.fix {
            out.line(&format!("    fix: {fix}"))?;
        }
    }
    Ok(())
}
