//! A server in a temporary directory and logged-in test users.

use std::net::SocketAddr;

use ed25519_dalek::{Signer, SigningKey};
use quicproquo_protocol::client::{Client, ClientError, Session, Trust};
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::padding;
use quicproquo_protocol::types::{IdempotencyKey, IdentityKey, Username};
use quicproquo_protocol::wire::{identity_proof_message, Delivery, Request, Response};
use quicproquo_server::config::Config;
use quicproquo_server::server::{self, Running};
use rand::RngCore;

pub struct TestServer {
    /// Kept so the directory lives as long as the server.
    pub _dir: tempfile::TempDir,
    pub config: Config,
    pub running: Option<Running>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(dir.path());
        tweak(&mut config);
        let running = server::start(config.clone()).await.expect("server starts");
        Self {
            _dir: dir,
            config,
            running: Some(running),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.as_ref().expect("running").local_addr
    }

    pub fn pin(&self) -> Trust {
        let fp = &self.running.as_ref().expect("running").fingerprint;
        Trust::Pin(quicproquo_protocol::parse_fingerprint(fp).expect("hex fingerprint"))
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr(), "localhost", self.pin())
            .await
            .expect("connect")
    }

    /// Graceful stop, then start again on the same port and data directory.
    pub async fn restart(&mut self) {
        let addr = self.addr();
        self.running.take().expect("running").shutdown().await;
        self.config.listen = addr;
        self.running = Some(server::start(self.config.clone()).await.expect("restart"));
    }

    pub async fn register(&self, name: &str) -> User {
        let client = self.client().await;
        let username = Username::parse(name).expect("valid name");
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let identity = IdentityKey(signing.verifying_key().to_bytes());
        let proof = signing.sign(&identity_proof_message(&username)).to_bytes();
        let password = format!("{name} correct horse battery staple");
        client
            .register(&username, password.as_bytes(), identity, proof)
            .await
            .expect("register");
        let session = client
            .login(&username, password.as_bytes())
            .await
            .expect("login");
        assert_eq!(session.identity_key, identity);
        User {
            username,
            password,
            identity,
            session,
            client,
        }
    }
}

pub struct User {
    pub username: Username,
    pub password: String,
    pub identity: IdentityKey,
    pub session: Session,
    pub client: Client,
}

pub fn code(r: Result<Response, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Server(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

pub fn idem() -> IdempotencyKey {
    let mut k = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut k);
    IdempotencyKey(k)
}

/// A padded MLS PrivateMessage framing with the given content type (1
/// application, 3 commit); the server reads only the framing.
pub fn mls_payload(group: &[u8], epoch: u64, content_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 1, 0, 2, group.len() as u8];
    m.extend_from_slice(group);
    m.extend_from_slice(&epoch.to_be_bytes());
    m.push(content_type);
    m.extend_from_slice(body);
    padding::pad(&m)
}

pub fn app_message(body: &[u8]) -> Vec<u8> {
    mls_payload(b"test-group-0001", 1, 1, body)
}

impl User {
    pub fn auth(&self) -> quicproquo_protocol::types::SessionToken {
        self.session.token.clone()
    }

    pub async fn call(&self, req: Request) -> Result<Response, ClientError> {
        self.client.call(&req).await
    }

    pub async fn channel_with(&self, peer: &User) -> quicproquo_protocol::types::ChannelId {
        match self
            .call(Request::CreateChannel {
                auth: self.auth(),
                peer: peer.identity,
            })
            .await
            .expect("createChannel")
        {
            Response::CreateChannel { channel } => channel,
            other => panic!("{other:?}"),
        }
    }

    pub async fn send(
        &self,
        to: &User,
        channel: quicproquo_protocol::types::ChannelId,
        payload: Vec<u8>,
    ) -> Result<Response, ClientError> {
        self.call(Request::Enqueue {
            auth: self.auth(),
            deliveries: vec![Delivery {
                recipient: to.identity,
                channel: Some(channel),
            }],
            payload,
            idempotency_key: idem(),
        })
        .await
    }

    pub async fn fetch_all(&self) -> Vec<quicproquo_protocol::wire::Envelope> {
        match self
            .call(Request::Fetch {
                auth: self.auth(),
                channel: None,
                limit: 0,
            })
            .await
            .expect("fetch")
        {
            Response::Fetch(m) => m,
            other => panic!("{other:?}"),
        }
    }
}
