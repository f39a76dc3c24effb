//! An attacker with an ordinary account: a wire client with a registered
//! account (no daemon, so none of the daemon's checks) and MLS engines whose
//! credentials say whatever it likes. It fetches its victims' key packages,
//! makes groups with forged members, and delivers the Welcomes and messages
//! through the server over its own DM channels, as any user can.

use ed25519_dalek::SigningKey;
use quicproquo_daemon::mls::{GroupId, Identity, MlsEngine, Suite};
use quicproquo_daemon::payload::ConversationInfo;
use quicproquo_protocol::client::{Client, ClientError};
use quicproquo_protocol::padding;
use quicproquo_protocol::types::{IdempotencyKey, IdentityKey, Username};
use quicproquo_protocol::wire::{self, Delivery, UserRef};

use crate::wire::{register, Account};
use crate::TestServer;

/// A registered account driven by hand.
pub struct Attacker {
    pub client: Client,
    pub account: Account,
}

/// A group the attacker made, and the Welcome for the users it added.
pub struct Forged {
    pub engine: MlsEngine,
    pub group: GroupId,
    pub welcome: Vec<u8>,
}

impl Attacker {
    /// Registers `name` on `server`.
    pub async fn register(server: &TestServer, name: &str) -> Attacker {
        let client = server.client().await;
        let account = register(&client, name).await;
        Attacker { client, account }
    }

    /// An MLS engine (in memory) whose credential names `claimed` but holds
    /// `key`: the attacker's own key under someone else's name, or another
    /// key of its own.
    pub fn engine(claimed: &str, key: &SigningKey) -> MlsEngine {
        let conn = rusqlite::Connection::open_in_memory().expect("an in-memory database");
        let username = Username::parse(claimed).expect("a valid username");
        MlsEngine::new(conn, Identity::new(username, key.clone())).expect("an MLS engine")
    }

    /// A key package of `victim`'s from the server, and their identity key.
    pub async fn key_package(&self, victim: &str) -> (Vec<u8>, IdentityKey) {
        let kp = self
            .client
            .request(wire::FetchKeyPackage {
                auth: self.account.session.token.clone(),
                target: UserRef::Username(Username::parse(victim).expect("a valid username")),
                suite: Suite::Hybrid.code(),
            })
            .await
            .expect("fetchKeyPackage");
        (kp.key_package, kp.identity_key)
    }

    /// A group made by `engine` with `info`, whose id `accept` likes (e.g.
    /// lower than a group it wants to shadow), with `key_packages` added:
    /// the Welcome is ready to deliver.
    pub fn forge_group(
        mut engine: MlsEngine,
        info: &ConversationInfo,
        key_packages: &[Vec<u8>],
        accept: impl Fn(&GroupId) -> bool,
    ) -> Forged {
        let group = loop {
            let g = engine
                .create_group_with_info(Suite::Hybrid, Some(&info.encode()), &[])
                .expect("create a group");
            if accept(&g) {
                break g;
            }
            engine.forget(g).expect("forget a group");
        };
        let staged = engine
            .add_members(group, key_packages)
            .expect("add the victims");
        engine.merge_pending(group).expect("merge the add");
        Forged {
            engine,
            group,
            welcome: staged.welcome.expect("a Welcome"),
        }
    }

    /// Publishes key packages made by `engine`, so that a daemon adding the
    /// attacker's account adds `engine`'s credential.
    pub async fn publish_key_packages(&self, engine: &mut MlsEngine, n: usize) {
        let packages = engine.key_packages(Suite::Hybrid, n).expect("key packages");
        self.client
            .request(wire::UploadKeyPackages {
                auth: self.account.session.token.clone(),
                packages,
                last_resort: None,
            })
            .await
            .expect("uploadKeyPackages");
    }

    /// Everything in the attacker's mailbox (unpadded), acknowledged.
    pub async fn take_mail(&self) -> Vec<Vec<u8>> {
        crate::wire::take_mail(&self.client, &self.account).await
    }

    /// Delivers `mls` (padded) to `to` over the attacker's DM channel with
    /// them, as the server lets any user.
    pub async fn deliver(&self, to: IdentityKey, mls: &[u8]) -> Result<(), ClientError> {
        let auth = self.account.session.token.clone();
        let channel = self
            .client
            .request(wire::CreateChannel {
                auth: auth.clone(),
                peer: to,
            })
            .await?;
        self.client
            .request(wire::Enqueue {
                auth,
                deliveries: vec![Delivery {
                    recipient: to,
                    channel: Some(channel),
                }],
                payload: padding::pad(mls),
                idempotency_key: IdempotencyKey(rand::random()),
            })
            .await?;
        Ok(())
    }
}
