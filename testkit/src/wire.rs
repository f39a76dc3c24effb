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
    register_with(client, name, SigningKey::generate(&mut rand::rngs::OsRng)).await
}

/// [`register`] with a given identity key (e.g. one an attacker also
/// uses under another name).
pub async fn register_with(client: &Client, name: &str, signing: SigningKey) -> Account {
    let username = Username::parse(name).expect("a valid username");
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

/// A padded MLS PrivateMessage framing for `group` at `epoch` with the
/// given content type (1 application, 3 commit) and an opaque body: all the
/// server reads of a message. What an attacker with an account sends.
pub fn mls_framing(group: &[u8], epoch: u64, content_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 1, 0, 2, group.len() as u8];
    m.extend_from_slice(group);
    m.extend_from_slice(&epoch.to_be_bytes());
    m.push(content_type);
    m.extend_from_slice(body);
    quicproquo_protocol::padding::pad(&m)
}

/// Everything in `who`'s mailbox (unpadded), in order, acknowledged.
pub async fn take_mail(client: &Client, who: &Account) -> Vec<Vec<u8>> {
    let auth = who.session.token.clone();
    let mail = client
        .request(quicproquo_protocol::wire::Fetch {
            auth: auth.clone(),
            channel: None,
            limit: 500,
        })
        .await
        .expect("fetch");
    let seqs = mail.iter().map(|e| e.seq).collect();
    client
        .request(quicproquo_protocol::wire::Ack { auth, seqs })
        .await
        .expect("ack");
    mail.iter()
        .map(|e| {
            quicproquo_protocol::padding::unpad(&e.payload)
                .expect("padded mail")
                .to_vec()
        })
        .collect()
}

fn random_key() -> quicproquo_protocol::types::IdempotencyKey {
    quicproquo_protocol::types::IdempotencyKey(rand::random())
}

/// Fills `victim`'s mailbox to `MAX_QUEUE_DEPTH` with junk from `from`
/// (through their DM channel, as any account may): the next mail for the
/// victim is refused with E032 until the victim fetches.
pub async fn fill_mailbox(client: &Client, from: &Account, victim: IdentityKey) {
    use quicproquo_protocol::limits::{MAX_QUEUE_DEPTH, MAX_RECIPIENTS};
    use quicproquo_protocol::wire::Delivery;
    let channel = match client
        .call(&Request::CreateChannel {
            auth: from.session.token.clone(),
            peer: victim,
        })
        .await
        .expect("createChannel")
    {
        Response::CreateChannel { channel } => channel,
        other => panic!("createChannel answered {other:?}"),
    };
    let mut left = MAX_QUEUE_DEPTH;
    while left > 0 {
        let n = left.min(MAX_RECIPIENTS);
        let delivery = Delivery {
            recipient: victim,
            channel: Some(channel),
        };
        client
            .call(&Request::Enqueue {
                auth: from.session.token.clone(),
                deliveries: vec![delivery; n],
                payload: quicproquo_protocol::padding::pad(b"\0\x01\0\x03junk welcome"),
                idempotency_key: random_key(),
            })
            .await
            .expect("the mailbox takes mail below its bound");
        left -= n;
    }
}

/// Claims `epoch` of `group` for a commit nobody receives (an enqueue with
/// no deliveries carrying a commit framing): the server then refuses every
/// real commit at or below it as stale (E033) — the audit's known gap 1.
pub async fn claim_epoch(client: &Client, from: &Account, group: &[u8], epoch: u64) {
    client
        .call(&Request::Enqueue {
            auth: from.session.token.clone(),
            deliveries: Vec::new(),
            payload: mls_framing(group, epoch, 3, b"forged commit"),
            idempotency_key: random_key(),
        })
        .await
        .expect("the server accepts a bare commit claim");
}
