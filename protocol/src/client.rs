//! The async QUIC client for qpq-server (feature `client`): one connection,
//! one bidirectional stream per call. qpqd, the integration tests and the
//! load generator all use it, so the wire handling exists once.
//!
//! Server authentication is either a pinned certificate fingerprint (the
//! default for a self-signed server), trust on first use (the caller stores
//! [`Client::server_fingerprint`] and pins it from then on), or the system's
//! CA roots (`QPQ_USE_CA_CERT=1`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::errors::WireError;
use crate::limits::MAX_RESPONSE_BYTES;
use crate::wire::{self, decode_response, encode_request, Call, Request, Response};

pub use crate::wire::Session;

pub use crate::{cert_fingerprint as fingerprint, parse_fingerprint, Fingerprint};

/// How the server's certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The leaf certificate must have this SHA-256 fingerprint.
    Pin(Fingerprint),
    /// Accept any certificate (the handshake signature is still verified);
    /// the caller pins [`Client::server_fingerprint`] for next time.
    FirstUse,
    /// Verify the chain against the operating system's CA roots.
    SystemRoots,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("connection lost: {0}")]
    Connection(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with an error from the catalogue.
    #[error("{0}")]
    Server(WireError),
    #[error("undecodable response: {0}")]
    Decode(WireError),
    /// The server answered with a response of another kind.
    #[error(transparent)]
    Unexpected(#[from] wire::UnexpectedResponse),
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Transport settings shared with the server: keep-alive well below the idle
/// timeout, so a quiet connection stays up through NATs.
pub fn transport_config() -> quinn::TransportConfig {
    transport_config_with_idle(DEFAULT_IDLE_TIMEOUT)
}

/// How long a silent peer is waited for before its connection counts as lost.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// [`transport_config`] with another idle timeout; keep-alive stays at a
/// third of it, so a live but quiet peer never reaches it.
pub fn transport_config_with_idle(idle: Duration) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // Beyond QUIC's range (about 146 years) is as good as never.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    t.keep_alive_interval(Some(idle / 3));
    t
}

#[derive(Debug)]
struct PinVerifier {
    pin: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) => {
                let got = fingerprint(end_entity);
                if got == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "server certificate changed: pinned fingerprint {}, server presented {}",
                        hex::encode(pin),
                        hex::encode(got)
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS primitives of client and server: aws-lc-rs, whose default key
/// exchange order (crate feature `prefer-post-quantum`) puts the hybrid
/// X25519MLKEM768 first, so recorded traffic — logins, tokens, metadata —
/// does not fall to a future quantum computer; X25519 stays as the fallback.
pub fn tls_provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn client_config(
    trust: &Trust,
    alpn: &[u8],
    provider: Arc<CryptoProvider>,
    idle: Duration,
) -> Result<quinn::ClientConfig, ClientError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut tls = match trust {
        Trust::SystemRoots => {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            for cert in loaded.certs {
                // A malformed system root is skipped, like every TLS client does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(ClientError::Tls(
                    "QPQ_USE_CA_CERT is set but no system CA certificates were found".into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Pin(_) | Trust::FirstUse => {
            let pin = match trust {
                Trust::Pin(p) => Some(*p),
                _ => None,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinVerifier { pin, provider }))
                .with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(Arc::new(transport_config_with_idle(idle)));
    Ok(cfg)
}

/// A connection to qpq-server.
pub struct Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    /// Whether the connection is bound to a session (a login or an
    /// `authenticate` on it succeeded): until then the server reads only
    /// small requests and allows few streams (docs/src/reference/wire.md).
    bound: AtomicBool,
    /// Time allowed for one call, on top of a fetchWait's own timeout.
    pub call_timeout: Duration,
}

impl Client {
    /// Connects to `addr`, expecting a certificate for `server_name`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
    ) -> Result<Self, ClientError> {
        Self::connect_with_alpn(addr, server_name, trust, crate::ALPN).await
    }

    /// As [`Client::connect`] with another ALPN (tests use it to check that a
    /// wrong one is refused).
    pub async fn connect_with_alpn(
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
        alpn: &[u8],
    ) -> Result<Self, ClientError> {
        Self::connect_with_tls(addr, server_name, trust, alpn, tls_provider()).await
    }

    /// As [`Client::connect`], counting the server as gone once it has been
    /// silent for `idle` (the handshake included) instead of
    /// [`DEFAULT_IDLE_TIMEOUT`]: qpqd, holding several nodes' addresses,
    /// moves to another node that much sooner.
    pub async fn connect_with_idle(
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
        idle: Duration,
    ) -> Result<Self, ClientError> {
        Self::connect_inner(addr, server_name, trust, crate::ALPN, tls_provider(), idle).await
    }

    /// As [`Client::connect_with_alpn`] with other TLS primitives (tests use
    /// it to offer classical key exchange only).
    pub async fn connect_with_tls(
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
        alpn: &[u8],
        provider: CryptoProvider,
    ) -> Result<Self, ClientError> {
        Self::connect_inner(
            addr,
            server_name,
            trust,
            alpn,
            provider,
            DEFAULT_IDLE_TIMEOUT,
        )
        .await
    }

    async fn connect_inner(
        addr: SocketAddr,
        server_name: &str,
        trust: Trust,
        alpn: &[u8],
        provider: CryptoProvider,
        idle: Duration,
    ) -> Result<Self, ClientError> {
        let err = |reason: String| ClientError::Connect { addr, reason };
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().expect("valid literal")
        } else {
            "0.0.0.0:0".parse().expect("valid literal")
        };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| err(e.to_string()))?;
        endpoint.set_default_client_config(client_config(&trust, alpn, Arc::new(provider), idle)?);
        let connecting = endpoint
            .connect(addr, server_name)
            .map_err(|e| err(e.to_string()))?;
        let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .map_err(|_| err("handshake timed out".into()))?
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            endpoint,
            conn,
            bound: AtomicBool::new(false),
            call_timeout: Duration::from_secs(30),
        })
    }

    /// SHA-256 of the certificate the server presented.
    pub fn server_fingerprint(&self) -> Option<Fingerprint> {
        let any = self.conn.peer_identity()?;
        let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
        certs.first().map(|c| fingerprint(c))
    }

    /// Sends one request and returns its typed answer:
    /// `client.request(wire::Ack { auth, seqs })` is the number removed. A
    /// catalogue error from the server is `Err(ClientError::Server)`, an
    /// answer of another kind `Err(ClientError::Unexpected)`.
    pub async fn request<C: Call>(&self, call: C) -> Result<C::Response, ClientError> {
        let answer = self.call(&call.request()).await?;
        Ok(C::response(answer)?)
    }

    /// Sends one request and returns the server's answer, whatever its kind;
    /// a catalogue error from the server is `Err(ClientError::Server)`.
    ///
    /// The untyped escape hatch: prefer [`Client::request`], which checks
    /// the answer's kind. This is for tests that send what a typed call
    /// cannot, and for callers not converted yet.
    ///
    /// The first request with a session token on a connection not bound yet
    /// is preceded by `authenticate` with that token, so every caller (qpqd
    /// after a reconnect, tests) binds the connection without knowing it.
    pub async fn call(&self, req: &Request) -> Result<Response, ClientError> {
        if let Some(auth) = req.auth() {
            if !self.bound.load(Ordering::Relaxed) && !matches!(req, Request::Authenticate { .. }) {
                self.exchange(&Request::Authenticate { auth: auth.clone() })
                    .await?;
            }
        }
        self.exchange(req).await
    }

    async fn exchange(&self, req: &Request) -> Result<Response, ClientError> {
        let extra = match req {
            Request::FetchWait { timeout_ms, .. } => Duration::from_millis(u64::from(*timeout_ms)),
            _ => Duration::ZERO,
        };
        let bytes = self
            .call_raw_timeout(&encode_request(req), self.call_timeout + extra)
            .await?;
        match decode_response(&bytes).map_err(ClientError::Decode)? {
            Response::Error(e) => Err(ClientError::Server(e)),
            other => {
                if matches!(
                    other,
                    Response::Authenticate | Response::OpaqueLoginFinish { .. }
                ) {
                    self.bound.store(true, Ordering::Relaxed);
                }
                Ok(other)
            }
        }
    }

    /// Sends raw bytes on a new stream and returns the raw answer.
    pub async fn call_raw(&self, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.call_raw_timeout(bytes, self.call_timeout).await
    }

    async fn call_raw_timeout(
        &self,
        bytes: &[u8],
        limit: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let lost = |e: &dyn std::fmt::Display| ClientError::Connection(e.to_string());
        let exchange = async {
            let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| lost(&e))?;
            match send.write_all(bytes).await {
                // The server refused the request before reading it all
                // (too large, or a budget full): its answer says why.
                Err(quinn::WriteError::Stopped(_)) => {}
                other => {
                    other.map_err(|e| lost(&e))?;
                    send.finish().map_err(|e| lost(&e))?;
                }
            }
            recv.read_to_end(MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| lost(&e))
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| ClientError::Timeout(limit))?
    }

    /// True once the connection has been closed or lost.
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// The underlying connection (for tests and the load generator).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Closes the connection and waits (briefly) for the server to learn of it.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Runs an OPAQUE step that stretches the password with Argon2id (tens of
/// milliseconds) off the async workers.
async fn with_ksf<T: Send + 'static>(
    f: impl FnOnce(&crate::opaque::Stretch) -> T + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(move || f(&crate::opaque::ksf()))
        .await
        .map_err(|e| ClientError::Connection(e.to_string()))
}

fn client_opaque_error(e: opaque_ke::errors::ProtocolError) -> ClientError {
    // The only client-side failure a wrong password can cause is on the
    // server (E011); a local failure means a malformed server answer.
    ClientError::Decode(WireError::new(
        crate::errors::ErrorCode::InvalidOpaqueMessage,
        format!("OPAQUE: {e}"),
    ))
}

impl Client {
    /// Registers `username` with OPAQUE and binds `identity_key`, proved by
    /// `proof` = the identity key's Ed25519 signature over
    /// [`crate::wire::identity_proof_message`].
    pub async fn register(
        &self,
        username: &crate::types::Username,
        password: &[u8],
        identity_key: crate::types::IdentityKey,
        proof: [u8; crate::wire::IDENTITY_PROOF_LEN],
    ) -> Result<(), ClientError> {
        use opaque_ke::{
            ClientRegistration, ClientRegistrationFinishParameters, RegistrationResponse,
        };
        use rand::rngs::OsRng;

        use crate::opaque::Suite;

        let password = zeroize::Zeroizing::new(password.to_vec());
        let start = ClientRegistration::<Suite>::start(&mut OsRng, &password)
            .map_err(client_opaque_error)?;
        let response = self
            .request(wire::OpaqueRegisterStart {
                username: username.clone(),
                request: start.message.serialize().to_vec(),
            })
            .await?;
        let response =
            RegistrationResponse::<Suite>::deserialize(&response).map_err(client_opaque_error)?;
        let state = start.state;
        let upload = with_ksf(move |ksf| {
            state
                .finish(
                    &mut OsRng,
                    &password,
                    response,
                    ClientRegistrationFinishParameters::new(Default::default(), Some(ksf)),
                )
                .map(|f| f.message.serialize().to_vec())
        })
        .await?
        .map_err(client_opaque_error)?;
        self.request(wire::OpaqueRegisterFinish {
            username: username.clone(),
            upload,
            identity_key,
            identity_proof: proof,
        })
        .await
    }

    /// Logs in with OPAQUE; the password never leaves this process.
    pub async fn login(
        &self,
        username: &crate::types::Username,
        password: &[u8],
    ) -> Result<Session, ClientError> {
        use opaque_ke::{ClientLogin, ClientLoginFinishParameters, CredentialResponse};
        use rand::rngs::OsRng;

        use crate::opaque::{Suite, CONTEXT};

        let password = zeroize::Zeroizing::new(password.to_vec());
        let start =
            ClientLogin::<Suite>::start(&mut OsRng, &password).map_err(client_opaque_error)?;
        let wire::LoginStarted { login_id, response } = self
            .request(wire::OpaqueLoginStart {
                username: username.clone(),
                request: start.message.serialize().to_vec(),
            })
            .await?;
        let response =
            CredentialResponse::<Suite>::deserialize(&response).map_err(client_opaque_error)?;
        let state = start.state;
        let finished = with_ksf(move |ksf| {
            state
                .finish(
                    &mut OsRng,
                    &password,
                    response,
                    ClientLoginFinishParameters::new(Some(CONTEXT), Default::default(), Some(ksf)),
                )
                .map(|f| f.message.serialize().to_vec())
        })
        .await?;
        let finalization = match finished {
            Ok(f) => f,
            // A wrong password makes the envelope fail to open here, before
            // the server is told; report it as the server would.
            Err(opaque_ke::errors::ProtocolError::InvalidLoginError) => {
                return Err(ClientError::Server(WireError::bare(
                    crate::errors::ErrorCode::LoginFailed,
                )))
            }
            Err(e) => return Err(client_opaque_error(e)),
        };
        self.request(wire::OpaqueLoginFinish {
            login_id,
            finalization,
        })
        .await
    }
}
