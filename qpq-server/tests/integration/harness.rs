//! The test kit's server, and logged-in users who each keep a connection.

use quicproquo_protocol::client::{Client, ClientError};
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::padding;
use quicproquo_protocol::types::IdempotencyKey;
use quicproquo_protocol::wire::{Delivery, Request, Response};
use quicproquo_testkit::wire;
pub use quicproquo_testkit::TestServer;
use rand::RngCore;

/// `srv.register(name)`: a user registered and logged in on its own
/// connection.
pub trait Register {
    async fn register(&self, name: &str) -> User;
}

impl Register for TestServer {
    async fn register(&self, name: &str) -> User {
        let client = self.client().await;
        let account = wire::register(&client, name).await;
        User { account, client }
    }
}

pub struct User {
    pub account: wire::Account,
    pub client: Client,
}

/// `alice.username`, `alice.identity`, `alice.session`: the account's.
impl std::ops::Deref for User {
    type Target = wire::Account;

    fn deref(&self) -> &wire::Account {
        &self.account
    }
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

/// What the per-recipient path carries now that group messages go through
/// `enqueueGroup`: an MLS message of no group (a Welcome framing).
pub fn app_message(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 1, 0, 3];
    m.extend_from_slice(body);
    padding::pad(&m)
}

impl User {
    pub fn auth(&self) -> quicproquo_protocol::types::SessionToken {
        self.session.token.clone()
    }

    pub async fn call(&self, req: Request) -> Result<Response, ClientError> {
        self.client.call(&req).await
    }

    pub async fn channel_with(&self, peer: &User) -> quicproquo_protocol::types::ChannelId {
        wire::first_dm(&self.client, self, peer).await
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

    /// A fetchWait for all of this user's mail, held up to `timeout_ms`.
    pub async fn fetch_wait(&self, timeout_ms: u32) -> Result<Response, ClientError> {
        self.call(Request::FetchWait {
            auth: self.auth(),
            channel: None,
            limit: 0,
            timeout_ms,
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

/// Sends `bytes` on a new stream of `client` and returns the error answered.
pub async fn raw_error(client: &Client, bytes: &[u8]) -> (ErrorCode, String) {
    let raw = client
        .call_raw(bytes)
        .await
        .expect("an answer, not a reset");
    match quicproquo_protocol::wire::decode_response(&raw).expect("a decodable answer") {
        Response::Error(e) => (e.code, e.message),
        other => panic!("expected an error, got {other:?}"),
    }
}
