//! Driving a program in tmux: start it in a detached session of a private
//! tmux server (`-L`), type, read the screen, resize, and kill the server on
//! drop so nothing is left running.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use quicproquo_testkit::process::output_blocking;

pub struct Tmux;

impl Tmux {
    /// `Some` when `tmux` runs.
    pub fn available() -> Option<Tmux> {
        output_blocking(Command::new("tmux").arg("-V"))
            .ok()
            .filter(|o| o.status.success())
            .map(|_| Tmux)
    }

    /// Runs `program` with the profile under `home` (see
    /// `quicproquo_testkit::home`) in a `w`×`h` terminal.
    pub fn start(&self, program: &str, home: &Path, w: u16, h: u16) -> std::io::Result<Session> {
        self.start_with(program, home, w, h, Path::new("/nonexistent/qpqd"), "")
    }

    /// [`Tmux::start`] with `daemon` as the qpqd the program may start
    /// (`QPQ_DAEMON`) and `exports` (shell `export` lines) before it runs.
    pub fn start_with(
        &self,
        program: &str,
        home: &Path,
        w: u16,
        h: u16,
        daemon: &Path,
        exports: &str,
    ) -> std::io::Result<Session> {
        // One tmux server per session: tests of one binary run in parallel.
        static SESSIONS: AtomicUsize = AtomicUsize::new(0);
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let socket = format!("qpqtest-{}-{n}", std::process::id());
        let script = home.join("run-tui.sh");
        let log = home.join("tui.stderr");
        let q = |p: &Path| format!("'{}'", p.display());
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n{}{exports}export QPQ_DAEMON={}\n{} 2>{}\necho $? >{}\n",
                quicproquo_testkit::home::shell_exports(home),
                q(daemon),
                q(Path::new(program)),
                q(&log),
                q(&home.join("tui.status")),
            ),
        )?;
        let session = Session {
            socket,
            log,
            status: home.join("tui.status"),
        };
        let out = session.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            "sh",
            &script.display().to_string(),
        ])?;
        if !out.status.success() {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        // Keep the pane after the program exits, to tell exit from crash.
        let _ = session.tmux(&["set-option", "-t", "t", "remain-on-exit", "on"]);
        Ok(session)
    }
}

pub struct Session {
    socket: String,
    log: PathBuf,
    /// Where the script writes the program's exit status.
    status: PathBuf,
}

impl Session {
    fn tmux(&self, args: &[&str]) -> std::io::Result<Output> {
        output_blocking(Command::new("tmux").arg("-L").arg(&self.socket).args(args))
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]).unwrap();
    }

    /// Pastes `text` as a terminal does (bracketed, since the program asked
    /// for it), the way a dropped file's path arrives.
    pub fn paste(&self, text: &str) {
        self.tmux(&["set-buffer", "--", text]).unwrap();
        self.tmux(&["paste-buffer", "-p", "-d", "-t", "t"]).unwrap();
    }

    /// Presses keys by tmux name (`Enter`, `C-q`, `F1`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args).unwrap();
    }

    pub fn resize(&self, w: u16, h: u16) {
        let out = self
            .tmux(&[
                "resize-window",
                "-t",
                "t",
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string(),
            ])
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn wait_for(&self, text: &str) -> String {
        self.wait_until(|s| s.contains(text)).await
    }

    /// Polls the screen (the test's side; the TUI itself never polls) until
    /// `ok`, for at most 20 s.
    pub async fn wait_until(&self, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..200 {
            last = self.screen();
            if ok(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        panic!("the screen never got there:\n{last}\nstderr of qpq-tui:\n{log}");
    }

    /// Waits until the program exited by itself, successfully.
    pub async fn wait_for_exit(&mut self) {
        for _ in 0..100 {
            if let Ok(status) = std::fs::read_to_string(&self.status) {
                assert_eq!(status.trim(), "0", "qpq-tui exited with status {status}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("qpq-tui did not exit:\n{}", self.screen());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
