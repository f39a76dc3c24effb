//! `qpq-server` as its own process, for benches that measure it from the
//! outside (its resident memory, a `kill -9`): started on a free loopback
//! port, with the address and fingerprint it prints read back. Tests use
//! the in-process [`crate::TestServer`]; this is for figures.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use quicproquo_protocol::client::{Client, Trust};
use quicproquo_protocol::Fingerprint;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `qpq-server` binary next to this executable's directory
/// (`target/release/qpq-server` for a bench in `target/release/deps/`);
/// `QPQ_SERVER_BIN` overrides it. Exits with a hint when there is none.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("QPQ_SERVER_BIN").map(PathBuf::from) {
        return bin;
    }
    let exe = std::env::current_exe().expect("own executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("qpq-server"))
        .filter(|p| p.is_file());
    match bin {
        Some(b) => b,
        None => {
            eprintln!(
                "qpq-server binary not found next to {} (expected target/release/qpq-server): \
                 run `cargo build --profile bench -p quicproquo-server` first",
                exe.display()
            );
            std::process::exit(2);
        }
    }
}

/// A running `qpq-server` process.
pub struct ServerProcess {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
}

impl ServerProcess {
    /// Starts `bin` on `data_dir` (and `database`, a PostgreSQL URL, if
    /// given) with `config` as its `qpq-server.toml`, listening on a free
    /// loopback port, and reads the address and fingerprint it prints.
    pub async fn start(bin: &Path, data_dir: &Path, database: Option<&str>, config: &str) -> Self {
        std::fs::write(data_dir.join("qpq-server.toml"), config).expect("write qpq-server.toml");
        let mut command = Command::new(bin);
        if let Some(url) = database {
            command.args(["--database", url]);
        }
        let mut child = command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("QPQ_SERVER_DATA_DIR", data_dir)
            .env("QPQ_LOG", "warn")
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn qpq-server");
        let pid = child.id().expect("running");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let (mut addr, mut fingerprint) = (None, None);
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("qpq-server listening on ") {
                    addr = a.parse().ok();
                }
                if let Some(f) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
                    fingerprint = quicproquo_protocol::parse_fingerprint(f);
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("qpq-server printed its address and fingerprint");
        // Keep draining, so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            pid,
            addr: addr.expect("address line"),
            fingerprint: fingerprint.expect("fingerprint line"),
        }
    }

    pub fn trust(&self) -> Trust {
        Trust::Pin(self.fingerprint)
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr, "localhost", self.trust())
            .await
            .expect("connect to qpq-server")
    }

    /// The server's resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid, "VmRSS:")
    }

    /// The server's peak resident set size so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.pid, "VmHWM:")
    }

    /// `kill -9`, then reap.
    pub async fn kill9(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 {} failed", self.pid);
        let _ = self.child.wait().await;
    }

    /// SIGTERM (graceful shutdown), SIGKILL if it takes more than 20 s.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// A `kB` line of `/proc/<pid>/status` (e.g. `VmRSS:`, `VmHWM:`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} line for {pid}"))
}
