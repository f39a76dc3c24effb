//! Accounts over the wire protocol, for tests and benches of the server
//! alone: an identity key, its proof, OPAQUE registration and a login, then
//! the DM channel between two accounts.

use ed25519_dalek::{Signer, SigningKey};
use quicproquo_protocol::client::{Client, Session};
use quicproquo_protocol::types::{ChannelId, IdentityKey, Username};
use quicproquo_protocol::wire::{identity_proof_message, Request, Response};

/// A registered, logged-in account.
pub struct Account {
    pub username: Username,
    pub password: String,
    /// The identity key's secret half (an agent would keep it; tests that
    /// play an agent build their MLS identity from it).
    pub signing: SigningKey,
    pub identity: IdentityKey,
    pub session: Session,
}

/// Registers `name` with a fresh identity key through `client`, and logs in.
/// Argon2id runs here, in the client: on a small machine register a few at
/// a time.
pub async fn register(client: &Client, name: &str) -> Account {
    let username = Username::parse(name).expect("a valid username");
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
    assert_eq!(session.identity_key, identity, "login returns the identity");
    Account {
        username,
        password,
        signing,
        identity,
        session,
    }
}

/// The DM channel `from` opens with `to` (what an agent's first DM does on
/// the server).
pub async fn first_dm(client: &Client, from: &Account, to: &Account) -> ChannelId {
    let r = client
        .call(&Request::CreateChannel {
            auth: from.session.token.clone(),
            peer: to.identity,
        })
        .await
        .expect("createChannel");
    match r {
        Response::CreateChannel { channel } => channel,
        other => panic!("createChannel answered {other:?}"),
    }
}
