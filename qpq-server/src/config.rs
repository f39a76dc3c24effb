//! The server's configuration, in one typed struct.
//!
//! Sources, later ones winning: built-in defaults, `qpq-server.toml` (path by
//! `--config`, default `<data dir>/qpq-server.toml`, optional), `QPQ_*`
//! environment variables, command-line flags. Everything is validated once,
//! here; an error names the key and the file. No other module reads the
//! environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::store::postgres::options::{PgOptions, UrlError};

/// qpq-server: accounts (OPAQUE), key packages, delivery queues and DM
/// channels for quicproquo clients, over QUIC.
///
/// With no configuration it creates its data directory, the SQLite database
/// qpq.db, a self-signed TLS certificate and the OPAQUE server setup, then
/// prints the address it listens on and the certificate fingerprint clients
/// pin. Every flag can also be set in qpq-server.toml or by the QPQ_*
/// variable named below.
#[derive(Debug, Parser)]
#[command(name = "qpq-server", version)]
pub struct Cli {
    /// Configuration file [default: DATA_DIR/qpq-server.toml; optional]
    #[arg(long, env = "QPQ_SERVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and UDP port to listen on [default: 127.0.0.1:7443]
    #[arg(long, env = "QPQ_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for qpq.db, the TLS certificate and key [default: $XDG_DATA_HOME/quicproquo/server]
    #[arg(long, env = "QPQ_SERVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The server's data directory under its old variable, `QPQ_DATA_DIR`,
    /// which the clients read as the parent of their profiles: still
    /// honoured when `QPQ_SERVER_DATA_DIR` and `--data-dir` are not given,
    /// with a deprecation notice.
    #[arg(long = "legacy-data-dir", env = "QPQ_DATA_DIR", hide = true)]
    pub legacy_data_dir: Option<PathBuf>,
    /// SQLite database file, or a postgres:// URL to share one PostgreSQL
    /// database between several servers [default: DATA_DIR/qpq.db]
    #[arg(long, env = "QPQ_DATABASE")]
    pub database: Option<PathBuf>,
    /// TLS certificate chain (PEM), e.g. a Let's Encrypt fullchain.pem [default: a self-signed one in DATA_DIR/tls/]
    #[arg(long, env = "QPQ_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) belonging to --tls-cert
    #[arg(long, env = "QPQ_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Host names and addresses written into a generated self-signed certificate
    /// [default: localhost,127.0.0.1,::1]
    #[arg(long, env = "QPQ_TLS_HOSTNAMES", value_delimiter = ',')]
    pub tls_hostnames: Option<Vec<String>>,
    /// Refuse enqueue without a DM channel id (the legacy, unchecked path) [default: true]
    #[arg(long, env = "QPQ_REQUIRE_CHANNEL_AUTHZ")]
    pub require_channel_authz: Option<bool>,
    /// Maximum simultaneous client connections [default: 10000]
    #[arg(long, env = "QPQ_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// Maximum concurrent requests (streams) per connection [default: 128]
    #[arg(long, env = "QPQ_MAX_STREAMS")]
    pub max_streams_per_connection: Option<u32>,
    /// Close a connection after this many seconds without traffic [default: 30]
    #[arg(long, env = "QPQ_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Lifetime of a login session, in days [default: 30]
    #[arg(long, env = "QPQ_SESSION_TTL_DAYS")]
    pub session_ttl_days: Option<u64>,
    /// Serve Prometheus metrics and a load balancer's health check over
    /// HTTP on this address, e.g. 127.0.0.1:9464 [default: off]
    #[arg(long, env = "QPQ_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Without a subcommand the server starts.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `qpq-server` does instead of serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Operator commands for the running server (list, disable, delete
    /// users; revoke sessions; queue sizes) over its admin socket
    Admin(crate::admin::cli::AdminArgs),
    #[command(flatten)]
    Ops(crate::ops::OpsCommand),
}

/// The keys of `qpq-server.toml`; all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database: Option<PathBuf>,
    require_channel_authz: Option<bool>,
    max_connections: Option<u32>,
    max_streams_per_connection: Option<u32>,
    idle_timeout_secs: Option<u64>,
    session_ttl_days: Option<u64>,
    metrics_listen: Option<SocketAddr>,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    quotas: FileQuotas,
    #[serde(default)]
    network: FileNetwork,
}

/// The `[quotas]` table: what one account may make the server keep.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuotas {
    mailbox_mib: Option<u64>,
    sender_share_mib: Option<u64>,
    mail_ttl_days: Option<u64>,
    key_packages_per_requester_per_hour: Option<u32>,
    blob_max_mib: Option<u64>,
    blob_quota_mib: Option<u64>,
}

/// `[network]`: what strangers and connections may hold (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNetwork {
    max_connections_per_address: Option<u32>,
    streams_before_login: Option<u32>,
    connection_request_bytes: Option<usize>,
    request_bytes_in_flight: Option<usize>,
    ipv6_prefix_len: Option<u8>,
    pending_logins_per_address: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    hostnames: Option<Vec<String>>,
}

/// Where the server keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file: the embedded default, `DATA_DIR/qpq.db`.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://` URL), which
    /// any number of server nodes may share. Displays without its password.
    Postgres(Box<PgOptions>),
}

impl Database {
    /// A `postgres://` / `postgresql://` URL, or else the path of an SQLite file.
    pub fn parse(given: PathBuf) -> Result<Database, UrlError> {
        match given.to_str() {
            Some(s) if PgOptions::is_postgres_url(s) => {
                Ok(Database::Postgres(Box::new(s.parse()?)))
            }
            _ => Ok(Database::Sqlite(given)),
        }
    }

    /// The SQLite file, if that is the store.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }
}

/// The file's path, or the URL without its password.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(options) => write!(f, "{options}"),
        }
    }
}

/// Where the TLS identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Generated once and kept in `<data dir>/tls/`.
    SelfSigned {
        dir: PathBuf,
        hostnames: Vec<String>,
    },
    /// Operator-supplied files (a CA-issued chain); re-read on SIGHUP.
    Files { cert: PathBuf, key: PathBuf },
}

/// Rate limits (defaults: `quicproquo_protocol::limits`). Benchmarks lift
/// them; operators keep the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub login_per_account_per_minute: u32,
    pub login_per_address_per_minute: u32,
    pub registrations_per_address_per_hour: u32,
    pub requests_per_second_per_account: u32,
    pub request_burst_per_account: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        use quicproquo_protocol::limits as l;
        Self {
            login_per_account_per_minute: l::LOGIN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE,
            login_per_address_per_minute: l::LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE,
            registrations_per_address_per_hour: l::REGISTRATIONS_PER_ADDRESS_PER_HOUR,
            requests_per_second_per_account: l::REQUESTS_PER_SECOND_PER_ACCOUNT,
            request_burst_per_account: l::REQUEST_BURST_PER_ACCOUNT,
        }
    }
}

impl RateLimits {
    /// No effective limit (benchmarks and load tests).
    pub fn unlimited() -> Self {
        let n = u32::MAX / 2;
        Self {
            login_per_account_per_minute: n,
            login_per_address_per_minute: n,
            registrations_per_address_per_hour: n,
            requests_per_second_per_account: n,
            request_burst_per_account: n,
        }
    }
}

/// Storage bounds per account (the `[quotas]` table of `qpq-server.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Bytes of undelivered mail one mailbox holds (E032 past it).
    pub mailbox_bytes: u64,
    /// Bytes one sender may have waiting in one mailbox (E032 past it), so
    /// one sender cannot fill a mailbox for everyone else.
    pub sender_share_bytes: u64,
    /// Undelivered mail older than this is deleted.
    pub mail_ttl: Duration,
    /// One-time key packages of one user handed to one requester per hour;
    /// past it the requester gets the user's last-resort package.
    pub key_packages_per_requester_per_hour: u32,
    /// Attachments (issue 18): the largest blob and one user's storage.
    pub blobs: crate::blobs::BlobLimits,
}

const MIB: u64 = 1024 * 1024;
const DAY_SECS: u64 = 24 * 3600;

impl Default for Quotas {
    fn default() -> Self {
        Self {
            mailbox_bytes: 512 * MIB,
            sender_share_bytes: 32 * MIB,
            mail_ttl: Duration::from_secs(30 * DAY_SECS),
            key_packages_per_requester_per_hour: 10,
            blobs: crate::blobs::BlobLimits::default(),
        }
    }
}

/// Bounds on what the network side holds (the `[network]` table); see
/// `admission` and the book's server configuration page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkLimits {
    /// Live connections per source address group.
    pub max_connections_per_address: u32,
    /// Concurrent streams of a connection without a session (at most
    /// `max_streams_per_connection`, which applies once bound).
    pub streams_before_login: u32,
    /// Request bytes in flight on one bound connection (and its QUIC
    /// flow-control window); at least one largest request.
    pub connection_request_bytes: usize,
    /// Request bytes in flight on the whole server.
    pub request_bytes_in_flight: usize,
    /// IPv6 addresses are grouped by this prefix for connection caps and
    /// rate limits (one customer usually holds a whole /64).
    pub ipv6_prefix_len: u8,
    /// OPAQUE logins started and not finished, per address group.
    pub pending_logins_per_address: u32,
}

impl Default for NetworkLimits {
    fn default() -> Self {
        Self {
            max_connections_per_address: 32,
            streams_before_login: 8,
            connection_request_bytes: 16 * 1024 * 1024,
            request_bytes_in_flight: 512 * 1024 * 1024,
            ipv6_prefix_len: 64,
            pending_logins_per_address: 64,
        }
    }
}

impl Quotas {
    /// The file's `[quotas]` over the defaults, each checked.
    fn load(file: FileQuotas, source: &str) -> Result<Quotas, ConfigError> {
        let d = Quotas::default();
        let src = || source.to_string();
        let mailbox_mib = file.mailbox_mib.unwrap_or(d.mailbox_bytes / MIB);
        if !(16..=1024 * 1024).contains(&mailbox_mib) {
            return Err(invalid(
                "quotas.mailbox_mib",
                src(),
                "must be between 16 and 1048576 (a mailbox must hold a few 4 MiB messages)",
            ));
        }
        let share_mib = file.sender_share_mib.unwrap_or(d.sender_share_bytes / MIB);
        if !(8..=mailbox_mib).contains(&share_mib) {
            return Err(invalid(
                "quotas.sender_share_mib",
                src(),
                "must be at least 8 (two 4 MiB messages) and at most quotas.mailbox_mib",
            ));
        }
        let ttl_days = file
            .mail_ttl_days
            .unwrap_or(d.mail_ttl.as_secs() / DAY_SECS);
        if !(1..=365).contains(&ttl_days) {
            return Err(invalid(
                "quotas.mail_ttl_days",
                src(),
                "must be between 1 and 365",
            ));
        }
        let per_hour = file
            .key_packages_per_requester_per_hour
            .unwrap_or(d.key_packages_per_requester_per_hour);
        if !(1..=1000).contains(&per_hour) {
            return Err(invalid(
                "quotas.key_packages_per_requester_per_hour",
                src(),
                "must be between 1 and 1000",
            ));
        }
        let blob_max_mib = file
            .blob_max_mib
            .unwrap_or(crate::blobs::DEFAULT_MAX_FILE_BYTES / MIB);
        if !(1..=64 * 1024).contains(&blob_max_mib) {
            return Err(invalid(
                "quotas.blob_max_mib",
                src(),
                "must be between 1 and 65536",
            ));
        }
        let blob_quota_mib = file.blob_quota_mib.unwrap_or(d.blobs.quota_bytes / MIB);
        if !(blob_max_mib..=1024 * 1024).contains(&blob_quota_mib) {
            return Err(invalid(
                "quotas.blob_quota_mib",
                src(),
                "must be at least quotas.blob_max_mib (one largest file) and at most 1048576",
            ));
        }
        Ok(Quotas {
            blobs: crate::blobs::BlobLimits::for_files(blob_max_mib * MIB, blob_quota_mib * MIB),
            mailbox_bytes: mailbox_mib * MIB,
            sender_share_bytes: share_mib * MIB,
            mail_ttl: Duration::from_secs(ttl_days * DAY_SECS),
            key_packages_per_requester_per_hour: per_hour,
        })
    }
}

impl NetworkLimits {
    fn from_file(
        f: &FileNetwork,
        streams_after_login: u32,
        src: &str,
    ) -> Result<Self, ConfigError> {
        let d = Self::default();
        let n = Self {
            max_connections_per_address: f
                .max_connections_per_address
                .unwrap_or(d.max_connections_per_address),
            streams_before_login: f.streams_before_login.unwrap_or(d.streams_before_login),
            connection_request_bytes: f
                .connection_request_bytes
                .unwrap_or(d.connection_request_bytes),
            request_bytes_in_flight: f
                .request_bytes_in_flight
                .unwrap_or(d.request_bytes_in_flight),
            ipv6_prefix_len: f.ipv6_prefix_len.unwrap_or(d.ipv6_prefix_len),
            pending_logins_per_address: f
                .pending_logins_per_address
                .unwrap_or(d.pending_logins_per_address),
        };
        let bad = |key, reason: String| Err(invalid(key, src.to_string(), &reason));
        use quicproquo_protocol::limits::MAX_REQUEST_BYTES;
        if n.max_connections_per_address == 0 {
            return bad(
                "network.max_connections_per_address",
                "must be at least 1".into(),
            );
        }
        if !(1..=streams_after_login).contains(&n.streams_before_login) {
            return bad(
                "network.streams_before_login",
                format!("must be between 1 and max_streams_per_connection ({streams_after_login})"),
            );
        }
        if n.connection_request_bytes < MAX_REQUEST_BYTES {
            return bad(
                "network.connection_request_bytes",
                format!("must be at least one largest request, {MAX_REQUEST_BYTES} bytes"),
            );
        }
        if n.request_bytes_in_flight < n.connection_request_bytes {
            return bad(
                "network.request_bytes_in_flight",
                "must be at least network.connection_request_bytes".into(),
            );
        }
        if !(32..=128).contains(&n.ipv6_prefix_len) {
            return bad(
                "network.ipv6_prefix_len",
                "must be between 32 and 128".into(),
            );
        }
        if n.pending_logins_per_address == 0 {
            return bad(
                "network.pending_logins_per_address",
                "must be at least 1".into(),
            );
        }
        Ok(n)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    pub tls: TlsSource,
    pub require_channel_authz: bool,
    pub max_connections: u32,
    pub max_streams_per_connection: u32,
    pub idle_timeout: Duration,
    /// How long a client may take to send one request (once it has opened
    /// the stream). Not in the file or on the command line: always
    /// [`REQUEST_READ_TIMEOUT`], except in tests that do not wait that long.
    pub request_read_timeout: Duration,
    pub session_ttl: Duration,
    pub rate_limits: RateLimits,
    pub quotas: Quotas,
    pub network: NetworkLimits,
    /// Where `/metrics` and `/health` are served over HTTP; `None`: off.
    pub metrics_listen: Option<SocketAddr>,
}

/// The time allowed to send one request: long enough for 4 MiB on a slow
/// link, short enough that a client cannot hold a stream open for nothing.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("invalid `{key}` (from {source_name}): {reason}")]
    Invalid {
        key: &'static str,
        source_name: String,
        reason: String,
    },
    #[error("no data directory: set QPQ_SERVER_DATA_DIR or --data-dir (no home directory found)")]
    NoDataDir,
}

/// The default data directory: `$XDG_DATA_HOME/quicproquo/server` (or the
/// platform's equivalent).
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("chat", "quicproquo", "quicproquo")
        .map(|d| d.data_dir().join("server"))
}

impl Config {
    /// Builds the configuration from defaults, the file and `cli` (which
    /// clap already merged with the environment).
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        // The data directory decides where the default config file is, so it
        // can only come from the flag, the environment or the default.
        let cli_dir = match (cli.data_dir.clone(), cli.legacy_data_dir.clone()) {
            (Some(dir), _) => Some(dir),
            (None, Some(dir)) => {
                tracing::warn!(
                    "QPQ_DATA_DIR names the server's data directory for the last time: \
                     set QPQ_SERVER_DATA_DIR instead (clients read QPQ_DATA_DIR as the \
                     parent of their profiles)"
                );
                Some(dir)
            }
            (None, None) => None,
        };
        let early_dir = cli_dir.clone().or_else(default_data_dir);
        let (file, file_name) = match &cli.config {
            Some(path) => (read_file(path, true)?, path.display().to_string()),
            None => match &early_dir {
                Some(dir) => {
                    let path = dir.join("qpq-server.toml");
                    (read_file(&path, false)?, path.display().to_string())
                }
                None => (FileConfig::default(), String::new()),
            },
        };
        let src = |from_cli: bool| {
            if from_cli {
                "command line or environment".to_string()
            } else {
                file_name.clone()
            }
        };

        let data_dir = cli_dir
            .or(file.data_dir)
            .or(early_dir)
            .ok_or(ConfigError::NoDataDir)?;
        let database = match (cli.database, file.database) {
            (Some(given), _) => Database::parse(given)
                .map_err(|e| invalid("database", src(true), &e.to_string()))?,
            (None, Some(given)) => Database::parse(given)
                .map_err(|e| invalid("database", src(false), &e.to_string()))?,
            (None, None) => Database::Sqlite(data_dir.join("qpq.db")),
        };
        let tls = match (cli.tls_cert, cli.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            _ => match (file.tls.cert, file.tls.key) {
                (Some(cert), Some(key)) => TlsSource::Files { cert, key },
                (None, None) => TlsSource::SelfSigned {
                    dir: data_dir.join("tls"),
                    hostnames: cli.tls_hostnames.or(file.tls.hostnames).unwrap_or_else(|| {
                        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
                    }),
                },
                (Some(_), None) | (None, Some(_)) => {
                    return Err(ConfigError::Invalid {
                        key: "tls.cert / tls.key",
                        source_name: file_name,
                        reason: "set both or neither".into(),
                    })
                }
            },
        };
        let max_connections = pick(cli.max_connections, file.max_connections, 10_000);
        if max_connections.0 == 0 {
            return Err(invalid(
                "max_connections",
                src(max_connections.1),
                "must be at least 1",
            ));
        }
        let max_streams = pick(
            cli.max_streams_per_connection,
            file.max_streams_per_connection,
            128,
        );
        if !(1..=10_000).contains(&max_streams.0) {
            return Err(invalid(
                "max_streams_per_connection",
                src(max_streams.1),
                "must be between 1 and 10000",
            ));
        }
        let idle = pick(cli.idle_timeout_secs, file.idle_timeout_secs, 30);
        if !(15..=600).contains(&idle.0) {
            return Err(invalid(
                "idle_timeout_secs",
                src(idle.1),
                "must be between 15 and 600 (clients send keep-alives every 10 s)",
            ));
        }
        let ttl = pick(cli.session_ttl_days, file.session_ttl_days, 30);
        if !(1..=365).contains(&ttl.0) {
            return Err(invalid(
                "session_ttl_days",
                src(ttl.1),
                "must be between 1 and 365",
            ));
        }
        let quotas = Quotas::load(file.quotas, &file_name)?;
        let network = NetworkLimits::from_file(&file.network, max_streams.0, &file_name)?;
        Ok(Config {
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7443))),
            data_dir,
            database,
            tls,
            require_channel_authz: cli
                .require_channel_authz
                .or(file.require_channel_authz)
                .unwrap_or(true),
            max_connections: max_connections.0,
            max_streams_per_connection: max_streams.0,
            idle_timeout: Duration::from_secs(idle.0),
            request_read_timeout: REQUEST_READ_TIMEOUT,
            session_ttl: Duration::from_secs(ttl.0 * 24 * 3600),
            rate_limits: RateLimits::default(),
            quotas,
            network,
            metrics_listen: cli.metrics_listen.or(file.metrics_listen),
        })
    }

    /// A configuration for tests: loopback on a free port, everything in `dir`.
    pub fn for_tests(dir: &Path) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.to_path_buf(),
            database: Database::Sqlite(dir.join("qpq.db")),
            tls: TlsSource::SelfSigned {
                dir: dir.join("tls"),
                hostnames: vec!["localhost".into()],
            },
            require_channel_authz: true,
            max_connections: 10_000,
            max_streams_per_connection: 128,
            idle_timeout: Duration::from_secs(30),
            request_read_timeout: REQUEST_READ_TIMEOUT,
            session_ttl: Duration::from_secs(24 * 3600),
            rate_limits: RateLimits::default(),
            quotas: Quotas::default(),
            network: NetworkLimits::default(),
            metrics_listen: None,
        }
    }
}

/// The first value given, and whether it came from the command line.
fn pick<T>(cli: Option<T>, file: Option<T>, default: T) -> (T, bool) {
    match (cli, file) {
        (Some(v), _) => (v, true),
        (None, Some(v)) => (v, false),
        (None, None) => (default, false),
    }
}

fn invalid(key: &'static str, source_name: String, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        source_name,
        reason: reason.into(),
    }
}

fn read_file(path: &Path, required: bool) -> Result<FileConfig, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(FileConfig::default())
        }
        Err(e) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["qpq-server"];
        v.extend_from_slice(args);
        Cli::parse_from(v)
    }

    #[test]
    fn defaults_then_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let c = Config::load(cli(&["--data-dir", d])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7443".parse().unwrap());
        assert_eq!(c.database, Database::Sqlite(dir.path().join("qpq.db")));
        assert!(c.require_channel_authz);
        assert!(matches!(c.tls, TlsSource::SelfSigned { .. }));

        std::fs::write(
            dir.path().join("qpq-server.toml"),
            "listen = \"0.0.0.0:9000\"\nrequire_channel_authz = false\n[tls]\ncert = \"/x/fullchain.pem\"\nkey = \"/x/privkey.pem\"\n",
        )
        .unwrap();
        let c = Config::load(cli(&["--data-dir", d])).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        assert!(!c.require_channel_authz);
        assert_eq!(
            c.tls,
            TlsSource::Files {
                cert: "/x/fullchain.pem".into(),
                key: "/x/privkey.pem".into()
            }
        );

        let c = Config::load(cli(&["--data-dir", d, "--listen", "127.0.0.1:1"])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(c.quotas, Quotas::default());

        std::fs::write(
            dir.path().join("qpq-server.toml"),
            "[quotas]\nmailbox_mib = 64\nsender_share_mib = 16\nmail_ttl_days = 7\n\
             key_packages_per_requester_per_hour = 3\n",
        )
        .unwrap();
        let q = Config::load(cli(&["--data-dir", d])).unwrap().quotas;
        assert_eq!(
            (
                q.mailbox_bytes,
                q.sender_share_bytes,
                q.mail_ttl,
                q.key_packages_per_requester_per_hour
            ),
            (64 * MIB, 16 * MIB, Duration::from_secs(7 * DAY_SECS), 3)
        );
    }

    #[test]
    fn blob_limits_are_file_sizes_with_room_for_chunk_tags() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let path = dir.path().join("qpq-server.toml");
        std::fs::write(&path, "[quotas]\nblob_max_mib = 10\nblob_quota_mib = 50\n").unwrap();
        let b = Config::load(cli(&["--data-dir", d])).unwrap().quotas.blobs;
        assert_eq!(b.quota_bytes, 50 * MIB);
        // A 10 MiB file in the smallest chunks (the most tags) still fits.
        assert_eq!(
            b.max_blob_bytes,
            quicproquo_protocol::blob::ciphertext_len(10 * MIB, 1024).unwrap()
        );
        std::fs::write(&path, "[quotas]\nblob_max_mib = 10\nblob_quota_mib = 5\n").unwrap();
        let e = Config::load(cli(&["--data-dir", d]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("quotas.blob_quota_mib"), "{e}");
    }

    #[test]
    fn database_is_a_path_or_a_postgres_url() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let url = "postgres://qpq:s3cret@db.example/qpq?sslmode=require&pool_size=8";
        let c = Config::load(cli(&["--data-dir", d, "--database", url])).unwrap();
        let Database::Postgres(pg) = &c.database else {
            panic!("{:?}", c.database)
        };
        assert_eq!(pg.pool_size(), 8);
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");

        std::fs::write(
            dir.path().join("qpq-server.toml"),
            "database = \"postgresql://qpq:s3cret@db.example/qpq?sslmode=bogus\"\n",
        )
        .unwrap();
        let e = Config::load(cli(&["--data-dir", d]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`database`") && e.contains("sslmode"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");

        let c = Config::load(cli(&["--data-dir", d, "--database", "/srv/q.db"])).unwrap();
        assert_eq!(c.database, Database::Sqlite("/srv/q.db".into()));
    }

    #[test]
    fn errors_name_the_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qpq-server.toml");
        let d = dir.path().to_str().unwrap();

        std::fs::write(&path, "listn = \"0.0.0.0:1\"\n").unwrap();
        let e = Config::load(cli(&["--data-dir", d]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listn") && e.contains("qpq-server.toml"), "{e}");

        std::fs::write(&path, "listen = \"nonsense\"\n").unwrap();
        let e = Config::load(cli(&["--data-dir", d]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen") && e.contains("qpq-server.toml"), "{e}");

        std::fs::write(&path, "idle_timeout_secs = 1\n").unwrap();
        let e = Config::load(cli(&["--data-dir", d]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("idle_timeout_secs") && e.contains("qpq-server.toml"),
            "{e}"
        );

        std::fs::write(&path, "[quotas]\nsender_share_mib = 4\n").unwrap();
        let e = Config::load(cli(&["--data-dir", d]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("quotas.sender_share_mib"), "{e}");

        std::fs::write(&path, "[tls]\ncert = \"/a.pem\"\n").unwrap();
        let e = Config::load(cli(&["--data-dir", d]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls.cert"), "{e}");

        let e = Config::load(cli(&["--config", "/nonexistent/qpq-server.toml"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/qpq-server.toml"), "{e}");
    }
}
