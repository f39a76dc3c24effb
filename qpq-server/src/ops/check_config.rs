//! `qpq-server check-config`: loads the configuration as the server would
//! and checks what a start would trip on, without serving: the settings
//! (ranges, as `Config::load` checks them), the data directory, the TLS
//! certificate and key, the listen addresses, and the database. It prints
//! one `ok` line per check on standard output and one line per problem on
//! standard error; the exit code is 0 without a problem, 1 with one.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::backup::{schema_version, sqlite_database};
use super::problem;
use crate::config::{Cli, Config, TlsSource};
use crate::store::sqlite::SCHEMA_VERSION;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not try to bind the listen addresses (to check the configuration
    /// of a server that is running and holds them)
    #[arg(long)]
    pub no_bind: bool,
}

/// The checks' findings.
#[derive(Debug, Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: impl std::fmt::Display) {
        println!("ok       {what}");
    }

    fn problem(&mut self, what: impl std::fmt::Display) {
        self.problems += 1;
        problem(what);
    }

    fn check(&mut self, result: Result<String, String>) {
        match result {
            Ok(what) => self.ok(what),
            Err(what) => self.problem(what),
        }
    }
}

pub async fn run(args: Args, cli: Cli) -> i32 {
    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            problem(e);
            return 1;
        }
    };
    let report = tokio::task::spawn_blocking(move || check(&config, args.no_bind)).await;
    match report {
        Ok(r) if r.problems == 0 => 0,
        Ok(_) => 1,
        Err(e) => {
            problem(e);
            1
        }
    }
}

fn check(config: &Config, no_bind: bool) -> Report {
    let mut r = Report::default();
    r.ok("settings: every value is in range");
    r.check(writable_dir(&config.data_dir, "data directory"));
    r.check(tls(&config.tls));
    if no_bind {
        r.ok(format!(
            "listen {} (UDP): not bound (--no-bind)",
            config.listen
        ));
    } else {
        r.check(bind_udp(config.listen));
        if let Some(addr) = config.metrics_listen {
            r.check(bind_tcp(addr));
        }
    }
    if config.metrics_listen.is_none() {
        r.ok("metrics: off (metrics_listen is not set)");
    }
    r.check(database(config));
    r
}

/// `dir` exists and takes a new file, or the nearest existing parent does
/// (the server creates the rest).
fn writable_dir(dir: &Path, what: &str) -> Result<String, String> {
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => existing = Path::new("."),
        }
    }
    if !existing.is_dir() {
        return Err(format!(
            "{what} {}: {} is not a directory",
            dir.display(),
            existing.display()
        ));
    }
    let probe = existing.join(format!(".qpq-check-config-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| {
            format!(
                "{what} {}: cannot write in {}: {e}",
                dir.display(),
                existing.display()
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(if existing == dir {
        format!("{what} {}: writable", dir.display())
    } else {
        format!(
            "{what} {}: will be created (in {})",
            dir.display(),
            existing.display()
        )
    })
}

fn tls(source: &TlsSource) -> Result<String, String> {
    let (cert, key) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned { dir, .. } => {
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !cert.exists() && !key.exists() {
                return Ok(format!(
                    "TLS: a self-signed certificate will be generated in {}",
                    dir.display()
                ));
            }
            (cert, key)
        }
    };
    // Both exist (or are named): load them as the server does, which
    // checks that the key belongs to the certificate.
    let loaded = crate::tls::load(source).map_err(|e| format!("TLS: {e}"))?;
    Ok(format!(
        "TLS: {} and {} are readable and match (fingerprint {})",
        cert.display(),
        key.display(),
        crate::tls::fingerprint_hex(&loaded)
    ))
}

fn bind_udp(addr: SocketAddr) -> Result<String, String> {
    UdpSocket::bind(addr)
        .map(|_| format!("listen {addr} (UDP): can be bound"))
        .map_err(|e| {
            format!("listen {addr} (UDP): cannot bind: {e} (use --no-bind while the server runs)")
        })
}

fn bind_tcp(addr: SocketAddr) -> Result<String, String> {
    TcpListener::bind(addr)
        .map(|_| format!("metrics_listen {addr} (TCP): can be bound"))
        .map_err(|e| format!("metrics_listen {addr} (TCP): cannot bind: {e}"))
}

fn database(config: &Config) -> Result<String, String> {
    let Some(path) = sqlite_database(config) else {
        return postgres(config);
    };
    if !path.exists() {
        let parent = path.parent().unwrap_or(Path::new("."));
        return writable_dir(parent, "database directory").map(|_| {
            format!(
                "database {}: will be created (schema version {SCHEMA_VERSION})",
                path.display()
            )
        });
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("database {}: cannot open: {e}", path.display()))?;
    let version = schema_version(&conn, path).map_err(|e| format!("database: {e}"))?;
    Ok(if version == SCHEMA_VERSION {
        format!(
            "database {}: schema version {version}, current",
            path.display()
        )
    } else {
        format!(
            "database {}: schema version {version}, migrated to {SCHEMA_VERSION} at the next start",
            path.display()
        )
    })
}

/// PostgreSQL: reachable with the configured URL and TLS mode, and at a
/// schema version this binary can run (an older one is migrated at start).
/// Runs on the blocking pool of the command's runtime.
fn postgres(config: &Config) -> Result<String, String> {
    let crate::config::Database::Postgres(options) = &config.database else {
        return Err("database: neither an SQLite file nor a PostgreSQL URL".into());
    };
    let probe = crate::store::postgres::PgStore::probe(options);
    let (version, current) = tokio::runtime::Handle::current()
        .block_on(probe)
        .map_err(|e| format!("database: {e}"))?;
    match version.cmp(&current) {
        std::cmp::Ordering::Equal => Ok(format!(
            "database {options}: schema version {version}, current"
        )),
        std::cmp::Ordering::Less => Ok(format!(
            "database {options}: schema version {version}, migrated to {current} at the next start"
        )),
        std::cmp::Ordering::Greater => Err(format!(
            "database {options}: schema version {version} is newer than this server's {current}: \
             upgrade qpq-server"
        )),
    }
}
