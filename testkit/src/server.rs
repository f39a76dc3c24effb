//! The test server: `qpq-server`'s own code in this process, on a loopback
//! port the system picks, with its SQLite database and self-signed
//! certificate in a directory of its own (or a PostgreSQL database:
//! [`TestServer::start_with`] and set `config.database`).

use std::net::SocketAddr;
use std::path::Path;

use quicproquo_protocol::client::{Client, Trust};
use quicproquo_protocol::Fingerprint;
use quicproquo_server::config::{Config, Database, RateLimits};
use quicproquo_server::server::{self, Running};

use crate::TestkitError;

pub struct TestServer {
    /// The configuration it runs with; `listen` is the port it got, so a
    /// restart comes back on the same address.
    pub config: Config,
    /// `None` between [`TestServer::stop`] and [`TestServer::start_again`].
    pub running: Option<Running>,
    pub addr: SocketAddr,
    /// The certificate's SHA-256, hex, as `qpq-server` prints it.
    pub fingerprint: String,
    /// Removed with the server, unless the caller owns the directory.
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server in a new temporary directory. Rate limits are lifted: every
    /// test user connects from the same loopback address, and agents log in
    /// again on every reconnect. (Tests of the limits set them with
    /// [`TestServer::start_with`].)
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// [`TestServer::start`] with `configure` applied to the configuration.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory for the server");
        let mut server = Self::start_configured(dir.path(), configure)
            .await
            .expect("the test server starts");
        server._dir = Some(dir);
        server
    }

    /// [`TestServer::start`] on a database named by URL (`postgres://…`, a
    /// node of a shared database) instead of its own SQLite file; its TLS
    /// identity still lives in a new temporary directory.
    pub async fn start_on_database(url: &str) -> TestServer {
        let database = Database::parse(url.into()).expect("a valid database URL");
        Self::start_with(|c| c.database = database).await
    }

    /// A server whose data lives in `dir`, which the caller owns and removes.
    pub async fn start_in(dir: &Path) -> Result<TestServer, TestkitError> {
        Self::start_configured(dir, |_| {}).await
    }

    async fn start_configured(
        dir: &Path,
        configure: impl FnOnce(&mut Config),
    ) -> Result<TestServer, TestkitError> {
        let mut config = Config::for_tests(dir);
        config.rate_limits = RateLimits::unlimited();
        // Every client of a test comes from one loopback address.
        config.network.max_connections_per_address = u32::MAX;
        config.network.pending_logins_per_address = u32::MAX;
        configure(&mut config);
        let running = server::start(config.clone()).await?;
        config.listen = running.local_addr;
        Ok(TestServer {
            addr: running.local_addr,
            fingerprint: running.fingerprint.clone(),
            running: Some(running),
            config,
            _dir: None,
        })
    }

    /// The certificate fingerprint a client pins.
    pub fn pin(&self) -> Fingerprint {
        quicproquo_protocol::parse_fingerprint(&self.fingerprint)
            .expect("qpq-server reports its fingerprint in hex")
    }

    pub fn trust(&self) -> Trust {
        Trust::Pin(self.pin())
    }

    /// A new QUIC connection that pins the certificate.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr, "localhost", self.trust())
            .await
            .expect("connect to the test server")
    }

    /// Waits until `n` `fetchWait`s are held by the server, so what a test
    /// does next is known to take the wake-up path, not the first read.
    pub async fn parked_fetches(&self, n: usize) -> Result<(), TestkitError> {
        crate::agent::eventually("the fetchWait is parked", || async {
            let running = self.running.as_ref()?;
            (running.waiting_fetches() >= n).then_some(())
        })
        .await
    }

    /// The server's SQLite file (what [`TestServer::queued_mail`] and
    /// [`TestServer::account_identity`] read).
    fn sqlite_path(&self) -> &Path {
        self.config
            .database
            .sqlite_path()
            .expect("this test server's store is SQLite (not PostgreSQL)")
    }

    /// How many messages wait in all mailboxes (read from the database, as
    /// an operator could): 0 once every recipient fetched and acknowledged.
    pub fn queued_mail(&self) -> usize {
        let db = rusqlite::Connection::open(self.sqlite_path()).expect("the server's database");
        db.query_row("SELECT count(*) FROM mail", [], |r| r.get::<_, i64>(0))
            .expect("count the mail") as usize
    }

    /// How many messages wait in `username`'s mailbox (read from the
    /// database, as an operator could): what a test counts to see what a
    /// daemon sent while the recipient was away.
    pub fn queued_mail_for(&self, username: &str) -> usize {
        let db = rusqlite::Connection::open(self.sqlite_path()).expect("the server's database");
        db.query_row(
            "SELECT count(*) FROM mail m JOIN accounts a ON a.identity_key = m.recipient
              WHERE a.username = ?1",
            [username],
            |r| r.get::<_, i64>(0),
        )
        .expect("count the mail") as usize
    }

    /// The identity key the server holds for `username` (read from the
    /// database, as an operator could); `None` before it registered.
    pub fn account_identity(&self, username: &str) -> Option<[u8; 32]> {
        let db = rusqlite::Connection::open(self.sqlite_path()).expect("the server's database");
        db.query_row(
            "SELECT identity_key FROM accounts WHERE username = ?1",
            [username],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .ok()
        .and_then(|k| k.try_into().ok())
    }

    /// Graceful shutdown; the data stays.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Starts again on the same address and data directory (a new
    /// certificate if its files were removed).
    pub async fn start_again(&mut self) {
        // The port was free when the server stopped, but until it is bound
        // again the kernel may give it to any socket asking for an
        // ephemeral one (a daemon reconnecting meanwhile, another test):
        // such a socket lets it go within a connection attempt, so try
        // again until then (CI saw "Address already in use" once).
        let deadline = std::time::Instant::now() + crate::WAIT;
        let running = loop {
            match server::start(self.config.clone()).await {
                Err(server::StartError::Bind { reason, .. })
                    if reason.contains("in use") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => break other.expect("the test server starts again"),
            }
        };
        self.fingerprint = running.fingerprint.clone();
        self.running = Some(running);
    }

    /// [`TestServer::stop`], then [`TestServer::start_again`].
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }
}
