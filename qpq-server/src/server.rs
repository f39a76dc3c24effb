//! The QUIC driver: binds the endpoint, accepts connections (up to a cap,
//! and a cap per address group), runs one task per request stream, and
//! shuts down gracefully — in-flight requests finish and every answer is
//! acknowledged by the client before connections close (quinn's `close`
//! would discard unsent data). What a request may hold in memory before and
//! after the connection is bound to a session is `admission`'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::wire::{decode_request, encode_response, Request, Response};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::admission::{self, AddressSlot, ConnectionBudget, ConnectionsPerAddress, Refusal};
use crate::config::{Config, Database, NetworkLimits, TlsSource};
use crate::service::{Now, Service};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::tls::{self, ReloadableCert, TlsError};

/// How long the server waits for a client to acknowledge an answer.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// A started server.
pub struct Running {
    pub local_addr: SocketAddr,
    /// SHA-256 of the certificate in use, hex.
    pub fingerprint: String,
    certs: Arc<ReloadableCert>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// Reads the service's parked-`fetchWait` count; a closure because the
    /// service is generic over its store and `Running` is not.
    waiting: Box<dyn Fn() -> usize + Send + Sync>,
    /// Serves `admin.sock` until shutdown, then removes it.
    admin: Option<tokio::task::JoinHandle<()>>,
    /// Where `/metrics` and `/health` are served, if `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
}

impl Running {
    /// Re-reads the TLS certificate and key (SIGHUP); returns the new
    /// fingerprint. Open connections are not affected.
    pub fn reload_tls(&self) -> Result<String, TlsError> {
        self.certs.reload()
    }

    /// How many `fetchWait`s are held waiting for mail right now, so a test
    /// can enqueue only once its waiter is parked.
    pub fn waiting_fetches(&self) -> usize {
        (self.waiting)()
    }

    /// Stops accepting, lets in-flight requests finish, closes connections
    /// once their answers are acknowledged, and waits for all of it.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(admin) = self.admin {
            let _ = admin.await;
        }
    }
}

/// Creates `path` (and its parents), private to the server's user.
pub fn create_private_dir(path: &std::path::Path) -> Result<(), StartError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(|e| StartError::DataDir {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Opens the store, loads TLS, binds and starts serving.
pub async fn start(config: Config) -> Result<Running, StartError> {
    create_private_dir(&config.data_dir)?;
    match &config.database {
        Database::Sqlite(path) => {
            if let Some(parent) = path.parent() {
                create_private_dir(parent)?;
            }
            let db = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&db))
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))??;
            start_with_store(config, store).await
        }
        Database::Postgres(options) => {
            tracing::info!(database = %options, "opening the PostgreSQL database");
            let store = PgStore::open(options).await?;
            share_self_signed(&config.tls, &store).await?;
            start_with_store(config, store).await
        }
    }
}

/// The name of the server secret holding the generated certificate and key.
const SELF_SIGNED_SECRET: &str = "tls_self_signed_pem";

/// With a shared database and no certificate files, every node must present
/// the same self-signed certificate (clients pin its fingerprint, and move
/// between nodes): the first node's generated pair is kept in the database
/// as a server secret and installed in each node's `tls/` directory.
async fn share_self_signed<S: Store>(source: &TlsSource, store: &S) -> Result<(), StartError> {
    let TlsSource::SelfSigned { dir, hostnames } = source else {
        return Ok(());
    };
    let (cert, key) = tls::generate_pem(hostnames)?;
    let shared = store
        .server_secret(SELF_SIGNED_SECRET, format!("{cert}{key}").into_bytes())
        .await?;
    let shared = String::from_utf8(shared)
        .map_err(|_| StoreError::Backend(format!("{SELF_SIGNED_SECRET} is not PEM text")))?;
    let at = shared
        .find("-----BEGIN PRIVATE KEY-----")
        .ok_or_else(|| StoreError::Backend(format!("{SELF_SIGNED_SECRET} holds no key")))?;
    let (cert, key) = shared.split_at(at);
    tls::install_self_signed(dir, cert, key)?;
    Ok(())
}

/// As [`start`] with a given store (tests, and each backend [`start`] opens).
pub async fn start_with_store<S: Store>(config: Config, store: S) -> Result<Running, StartError> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let service = Arc::new(Service::new(store, &config, shutdown_rx.clone()).await?);

    let certs = Arc::new(ReloadableCert::new(config.tls.clone())?);
    let fingerprint = tls::fingerprint_hex(&certs.current());
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls::server_config(certs.clone())?)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quicproquo_protocol_transport(config.idle_timeout);
    admission::stranger_transport(
        &config.network,
        config.max_streams_per_connection,
        &mut transport,
    );
    server_config.transport_config(Arc::new(transport));
    server_config.max_incoming(config.max_connections as usize);

    let endpoint =
        quinn::Endpoint::server(server_config, config.listen).map_err(|e| StartError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    let local_addr = endpoint.local_addr().map_err(|e| StartError::Bind {
        addr: config.listen,
        reason: e.to_string(),
    })?;
    tracing::info!(%local_addr, %fingerprint, "listening");
    let waiting = {
        let service = service.clone();
        Box::new(move || service.delivery().mailboxes().waiting())
    };
    let limits = Limits {
        max_connections: config.max_connections as usize,
        max_streams: config.max_streams_per_connection,
        read_timeout: config.request_read_timeout,
        network: config.network,
    };
    #[cfg(unix)]
    let admin =
        crate::admin::socket::start(&config.data_dir, service.clone(), shutdown_rx.clone()).await;
    #[cfg(not(unix))]
    let admin = None;
    let metrics = match config.metrics_listen {
        Some(addr) => {
            Some(
                crate::metrics::http::bind(addr)
                    .await
                    .map_err(|e| StartError::Bind {
                        addr,
                        reason: format!("metrics: {e}"),
                    })?,
            )
        }
        None => None,
    };
    let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
    let task = tokio::spawn(accept_loop(
        endpoint,
        service.clone(),
        shutdown_rx.clone(),
        limits,
    ));
    // The metrics listener lives exactly as long as the accept loop.
    let task = match metrics {
        Some(l) => crate::metrics::http::serve_beside(l, service, shutdown_rx, task),
        None => task,
    };
    Ok(Running {
        local_addr,
        fingerprint,
        certs,
        shutdown: shutdown_tx,
        task,
        waiting,
        admin,
        metrics_addr,
    })
}

fn quicproquo_protocol_transport(idle: Duration) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(idle).unwrap_or(quinn::VarInt::from_u32(30_000).into()),
    ));
    // Clients keep connections alive; the server pings too, so a client
    // behind a NAT that stops pinging is detected either way.
    t.keep_alive_interval(Some(idle / 3));
    t
}

/// The driver's settings, from [`Config`].
#[derive(Clone, Copy)]
struct Limits {
    max_connections: usize,
    max_streams: u32,
    read_timeout: Duration,
    network: NetworkLimits,
}

async fn accept_loop<S: Store>(
    endpoint: quinn::Endpoint,
    service: Arc<Service<S>>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) {
    let max_connections = limits.max_connections;
    let per_address = ConnectionsPerAddress::new(&limits.network);
    let in_flight = Arc::new(Semaphore::new(limits.network.request_bytes_in_flight));
    let mut conns = JoinSet::new();
    let mut purge = tokio::time::interval(PURGE_INTERVAL);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                while conns.try_join_next().is_some() {}
                if conns.len() >= max_connections {
                    tracing::warn!(peer = %incoming.remote_address(), "connection refused: at max_connections");
                    incoming.refuse();
                    continue;
                }
                let Some(slot) = per_address.admit(incoming.remote_address().ip()) else {
                    tracing::debug!(peer = %incoming.remote_address(), "connection refused: at max_connections_per_address");
                    incoming.refuse();
                    continue;
                };
                let budget = ConnectionBudget::new(&limits.network, limits.max_streams, in_flight.clone());
                conns.spawn(serve_connection(incoming, slot, budget, service.clone(), shutdown.clone(), limits.read_timeout));
            }
            _ = purge.tick() => {
                match service.purge(Now::current()).await {
                    Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired sessions, key packages, idempotency keys, mail and idle groups"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purge failed"),
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    tracing::info!(
        connections = conns.len(),
        "shutting down: draining requests"
    );
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
        conns.abort_all();
    }
    endpoint.close(0u32.into(), b"server shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    tracing::info!("stopped");
}

async fn serve_connection<S: Store>(
    incoming: quinn::Incoming,
    // Held for the connection's life: its place under the address's cap.
    _slot: AddressSlot,
    budget: ConnectionBudget,
    service: Arc<Service<S>>,
    mut shutdown: watch::Receiver<bool>,
    read_timeout: Duration,
) {
    let peer = incoming.remote_address();
    let conn = match incoming.accept() {
        Ok(connecting) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "handshake timed out");
                return;
            }
        },
        Err(e) => {
            tracing::debug!(%peer, error = %e, "refused");
            return;
        }
    };
    tracing::debug!(%peer, "connected");
    let _counted = crate::metrics::connection_opened();
    let old_protocol = speaks_old_protocol(&conn);
    let budget = Arc::new(budget);
    let mut streams = JoinSet::new();
    let closed_by_peer = loop {
        tokio::select! {
            s = conn.accept_bi() => match s {
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(
                        send,
                        recv,
                        Peer { addr: peer, conn: conn.clone(), budget: budget.clone(), old_protocol },
                        service.clone(),
                        read_timeout,
                    ));
                }
                Err(e) => {
                    tracing::debug!(%peer, reason = %e, "connection ended");
                    break true;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            _ = shutdown.changed() => break false,
        }
    };
    // Let every accepted request finish and its answer be acknowledged.
    while streams.join_next().await.is_some() {}
    if !closed_by_peer {
        conn.close(0u32.into(), b"server shutting down");
    }
}

/// Whether the client chose one of `OLD_ALPNS`: an older qpqd, which gets
/// E048 for everything but `health`.
fn speaks_old_protocol(conn: &quinn::Connection) -> bool {
    conn.handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .is_some_and(|alpn| alpn != quicproquo_protocol::ALPN)
}

/// The connection a stream belongs to.
struct Peer {
    addr: SocketAddr,
    conn: quinn::Connection,
    budget: Arc<ConnectionBudget>,
    /// The client chose an old ALPN: everything but `health` gets E048.
    old_protocol: bool,
}

async fn serve_stream<S: Store>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: Peer,
    service: Arc<Service<S>>,
    read_timeout: Duration,
) {
    let read = match tokio::time::timeout(read_timeout, peer.budget.read(&mut recv)).await {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(Refusal::Answer(e))) => {
            let _ = recv.stop(0u32.into());
            Err(e)
        }
        Ok(Err(Refusal::Lost(e))) => {
            tracing::debug!(peer = %peer.addr, error = %e, "stream failed before the request was complete");
            return;
        }
        Err(_) => {
            let _ = recv.stop(0u32.into());
            Err(WireError::new(
                ErrorCode::Malformed,
                format!(
                    "the request was not completed within {} s",
                    read_timeout.as_secs()
                ),
            ))
        }
    };
    let response = match read {
        Ok(read) => answer(&read.bytes, &peer, &service).await,
        // Refused before it was read whole (too large, too slow, busy).
        Err(e) => crate::metrics::undecodable(e),
    };
    let bytes = encode_response(&response);
    if send.write_all(&bytes).await.is_err() || send.finish().is_err() {
        return;
    }
    // Wait until the client has the whole answer, so a shutdown right after
    // cannot discard it.
    let _ = tokio::time::timeout(ACK_TIMEOUT, send.stopped()).await;
}

/// Decodes and handles one request; a login or `authenticate` that succeeds
/// binds the connection to the session.
async fn answer<S: Store>(bytes: &[u8], peer: &Peer, service: &Service<S>) -> Response {
    match decode_request(bytes) {
        Ok(req) if peer.old_protocol && !matches!(req, Request::Health) => {
            Response::Error(WireError::new(
                ErrorCode::UpgradeRequired,
                format!(
                    "this server speaks protocol {}; upgrade qpqd",
                    quicproquo_protocol::PROTOCOL_VERSION
                ),
            ))
        }
        Ok(req) => {
            let kind = req.kind();
            let started = std::time::Instant::now();
            let resp = service.handle(req, peer.addr.ip(), Now::current()).await;
            crate::metrics::request(kind, &resp, started);
            match &resp {
                Response::Error(e) => {
                    tracing::debug!(peer = %peer.addr, kind, code = %e.code, "refused")
                }
                Response::OpaqueLoginFinish { .. } | Response::Authenticate => {
                    peer.budget.bind(&peer.conn)
                }
                _ => {}
            }
            resp
        }
        Err(e) => {
            tracing::debug!(peer = %peer.addr, code = %e.code, "undecodable request");
            crate::metrics::undecodable(e)
        }
    }
}
