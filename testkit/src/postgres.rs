//! A throwaway PostgreSQL for the tests of the PostgreSQL store: the
//! installed server binaries (`/usr/lib/postgresql/<version>/bin`), a
//! cluster made by `initdb` in a temporary directory (as user `postgres`
//! through `runuser` when the tests run as root, since `initdb` refuses
//! root), listening on 127.0.0.1 on a free port with its socket in that
//! directory, `fsync` and `synchronous_commit` on as in production (the
//! load bench measures on it). Only [`Postgres::new_schema`]'s connections
//! turn `synchronous_commit` off: the conformance suite makes thousands of
//! one-message transactions that would each wait for an fsync of this
//! machine's disk, minutes in all, and nothing there kills the database.
//!
//! One server per test process, started on first use ([`for_test`]) and
//! shared; each test takes a database ([`Postgres::new_database`]) or, for
//! speed, a schema of one shared database ([`Postgres::new_schema`]).
//!
//! It never outlives the test process: the server runs under a small `sh`
//! supervisor whose standard input is a pipe from this process; when the
//! process ends (however it ends) the pipe closes, `read` returns, and the
//! supervisor stops the server and removes its directory.
//!
//! Where no PostgreSQL is installed, [`for_test`] skips the test through
//! [`crate::skip`] (a failure under `QPQ_TEST_REQUIRE_ALL=1`, as in CI).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running server of this test process.
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    next: AtomicUsize,
    /// Holds the pipe the supervisor reads; never dropped (a static), so the
    /// pipe closes only when the process exits.
    _supervisor: Mutex<Child>,
}

/// The database [`Postgres::new_schema`] makes its schemas in.
const SHARED_DATABASE: &str = "qpq_tests";

static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();

/// The shared server, started on first call; `None` (after a printed skip
/// notice, or a panic when skips are forbidden) where none can run.
pub fn for_test(test: &str) -> Option<&'static Postgres> {
    match SHARED.get_or_init(start) {
        Ok(pg) => Some(pg),
        Err(why) => {
            crate::skip::skip(test, why);
            None
        }
    }
}

/// The directory of the newest installed PostgreSQL's programs
/// (`QPQ_TEST_PG_BIN` overrides it).
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("QPQ_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

#[cfg(unix)]
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// `program args…` in `dir`, as user `postgres` when this process is root
/// (which may not be allowed into the test's own working directory, e.g.
/// a checkout under /root).
fn as_server_user(program: &Path, dir: &Path) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.current_dir(dir);
    c
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = crate::process::output_blocking(cmd).map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn start() -> Result<Postgres, String> {
    let bin = find_bin().ok_or("no PostgreSQL server installed (no /usr/lib/postgresql/*/bin/initdb; Debian: apt-get install postgresql)")?;
    let dir = tempfile::Builder::new()
        .prefix("qpq-pg-")
        .tempdir()
        .map_err(|e| format!("a temporary directory: {e}"))?
        // The supervisor removes it when the server stops.
        .keep();
    if is_root() {
        run(
            Command::new("chown").arg("postgres:").arg(&dir),
            "chown of the cluster directory to postgres",
        )?;
    }
    let data = dir.join("data");
    run(
        as_server_user(&bin.join("initdb"), &dir)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]),
        "initdb",
    )?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("a free port: {e}"))?
        .port();
    let script = "\"$1\" -D \"$2/data\" -p \"$3\" -k \"$2\" -c listen_addresses=127.0.0.1 \
                  -c max_connections=500 -c fsync=on >\"$2/log\" 2>&1 & pid=$!; \
                  read _ignored; kill -INT $pid; wait $pid; rm -rf \"$2\"";
    let supervisor = as_server_user(Path::new("sh"), &dir)
        .args(["-c", script, "qpq-pg-supervisor"])
        .arg(bin.join("postgres"))
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let pg = Postgres {
        port,
        bin,
        next: AtomicUsize::new(0),
        _supervisor: Mutex::new(supervisor),
    };
    let deadline = Instant::now() + crate::WAIT;
    while pg.psql("postgres", "SELECT 1").is_err() {
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!(
                "postgres did not accept connections within {:?}: {log}",
                crate::WAIT
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pg.psql("postgres", &format!("CREATE DATABASE {SHARED_DATABASE}"))?;
    Ok(pg)
}

impl Postgres {
    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` as the superuser `postgres` (trust auth).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs `sql` in `database` with psql; its output (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        run(
            Command::new(self.bin.join("psql"))
                .args(["-X", "-Atq", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    database,
                ])
                .args(["-c", sql]),
            "psql",
        )
    }

    fn fresh_name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// A new, empty database; returns its name (for [`Postgres::url`] and
    /// [`Postgres::psql`]). Use one where several stores must share
    /// notifications with nobody else (LISTEN/NOTIFY is per database).
    pub fn new_database(&self) -> String {
        let name = self.fresh_name("db");
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        name
    }

    /// A new, empty schema of a shared database; returns a URL whose
    /// connections use it (`search_path`) and do not wait for their commits
    /// to reach the disk (see the module docs). Much faster than a database.
    pub fn new_schema(&self) -> String {
        let name = self.fresh_name("s");
        self.psql(SHARED_DATABASE, &format!("CREATE SCHEMA {name}"))
            .expect("CREATE SCHEMA");
        format!(
            "{}?options=-c%20search_path%3D{name}%20-c%20synchronous_commit%3Doff",
            self.url(SHARED_DATABASE)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server started by a test process stops when that process exits
    /// (here: a child run of this same test).
    #[test]
    fn the_server_goes_with_the_test_process() {
        if std::env::var_os("QPQ_PG_CHILD").is_some() {
            if let Some(pg) = for_test("the child") {
                println!("port={}", pg.port());
            }
            return;
        }
        if find_bin().is_none() {
            crate::skip::skip(
                "the_server_goes_with_the_test_process",
                "no PostgreSQL server installed",
            );
            return;
        }
        let me = std::env::current_exe().expect("this test binary");
        let out = crate::process::output_blocking(
            Command::new(&me)
                .args([
                    "--exact",
                    "--nocapture",
                    "postgres::tests::the_server_goes_with_the_test_process",
                ])
                .env("QPQ_PG_CHILD", "1"),
        )
        .expect("run the child");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let port: u16 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("port="))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the child reports its port: {stdout}"));
        let deadline = Instant::now() + crate::WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "postgres on port {port} outlived its test process"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
