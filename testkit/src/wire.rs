//! Accounts over the wire protocol, for tests and benches of the server
//! alone: an identity key, its proof, OPAQUE registration and a login, then
//! the DM channel between two accounts.

use ed25519_dalek::{Signer, SigningKey};
use quicproquo_protocol::client::{Client, ClientError, Session};
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

/// Fills `victim`'s mailbox with junk from `from` (through their DM
/// channel, as any account may) until the server answers E032: the next
/// mail for the victim is refused until the victim fetches. Since issue 15
/// one sender fills only its share of a mailbox, so the server must run
/// with `quotas.sender_share_bytes` as large as `quotas.mailbox_bytes`
/// (and both small: the junk is 4 MiB messages).
pub async fn fill_mailbox(client: &Client, from: &Account, victim: IdentityKey) {
    use quicproquo_protocol::errors::ErrorCode;
    use quicproquo_protocol::limits::MAX_PAYLOAD_BYTES;
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
    // Large junk first, then ever smaller, until even the smallest padded
    // message (256 bytes) is refused: then no real message fits either.
    let mut sent = 0;
    for body in [MAX_PAYLOAD_BYTES - 64 * 1024, 1 << 20, 1 << 16, 1 << 12, 16] {
        // Not a group's message (those go through enqueueGroup): a Welcome
        // framing, which the per-recipient path takes.
        let mut welcome = vec![0, 1, 0, 3];
        welcome.resize(4 + body, 0);
        let junk = quicproquo_protocol::padding::pad(&welcome);
        loop {
            let r = client
                .call(&Request::Enqueue {
                    auth: from.session.token.clone(),
                    deliveries: vec![Delivery {
                        recipient: victim,
                        channel: Some(channel),
                    }],
                    payload: junk.clone(),
                    idempotency_key: random_key(),
                })
                .await;
            match r {
                Ok(_) => sent += 1,
                Err(ClientError::Server(e)) if e.code == ErrorCode::QueueFull => break,
                Err(e) => panic!("the mailbox takes mail below its bound: {e}"),
            }
            assert!(
                sent < 2_000,
                "2,000 junk messages and the mailbox is not full: are the quotas small?"
            );
        }
    }
}
