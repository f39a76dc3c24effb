//! A qpq user whose MLS is mls-rs, an implementation independent of
//! openmls: it registers over the wire with an Ed25519 identity key that is
//! also its MLS signature key (the credential is a basic one holding the
//! username, as `qpqd`'s), uploads key packages of the classic suite (mls-rs
//! has no X-Wing), creates and joins groups, commits and sends text in the
//! daemon's payload format. Only what the interoperability tests need:
//! everything lives in memory and ends with the value.
//!
//! It follows the rules of the validating server (issue 14): a group is
//! registered (`registerGroup`, its GroupInfo with the ratchet tree) before
//! anything is sent to it; everything goes to the group in one
//! `enqueueGroup`; handshakes are plaintext (PublicMessage) so that the
//! server can check them, and a commit carries the GroupInfo of the epoch
//! it creates and, if it adds, the padded Welcome. Group names stay out of
//! the public group context: the context says only "group", and the adder
//! sends the name encrypted ([`Payload::GroupName`]) after each add, as the
//! daemon does.

use std::collections::HashMap;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use mls_rs::client_builder::{
    BaseConfig, PaddingMode, WithCryptoProvider, WithIdentityProvider, WithMlsRules,
};
use mls_rs::crypto::{SignaturePublicKey, SignatureSecretKey};
use mls_rs::extension::ExtensionType;
use mls_rs::group::{CommitEffect, CommitOutput, Member, ReceivedMessage};
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::identity::SigningIdentity;
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules, EncryptionOptions};
use mls_rs::{CipherSuite, Extension, ExtensionList, Group, MlsMessage};
use mls_rs_crypto_openssl::OpensslCryptoProvider;
use quicproquo_daemon::db::Id;
use quicproquo_daemon::payload::{ConversationInfo, Payload};
use quicproquo_protocol::client::{Client, ClientError};
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::padding;
use quicproquo_protocol::types::{IdempotencyKey, SessionToken, Username};
use quicproquo_protocol::wire::{self, UserRef};

use crate::wire::{register_with, Account};
use crate::TestServer;

/// The one suite both implementations have:
/// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
pub const CLASSIC: CipherSuite = CipherSuite::CURVE25519_AES128;

/// The daemon's group context extension saying what a conversation is
/// (`qpqd`'s `mls::group::CONVERSATION_INFO_EXTENSION`, not exported: this
/// copy is the interoperability contract, written down twice on purpose).
pub const CONVERSATION_INFO_EXTENSION: u16 = 0xF0A1;

/// The last_resort key package extension (0x000A in the IANA registry);
/// mls-rs names it only behind a feature we do not build.
const LAST_RESORT: ExtensionType = ExtensionType::new(0x000A);

type Config = WithIdentityProvider<
    BasicIdentityProvider,
    WithCryptoProvider<OpensslCryptoProvider, WithMlsRules<DefaultMlsRules, BaseConfig>>,
>;

#[derive(Debug, thiserror::Error)]
pub enum MlsRsError {
    #[error("mls-rs: {0}")]
    Mls(#[from] mls_rs::error::MlsError),
    #[error("the server: {0}")]
    Server(#[from] ClientError),
    #[error("{0}")]
    Protocol(String),
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

impl MlsRsError {
    /// The server's error code, if the server refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            MlsRsError::Server(ClientError::Server(e)) => Some(e.code),
            _ => None,
        }
    }
}

pub type Result<T, E = MlsRsError> = std::result::Result<T, E>;

/// Something this user received and processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A Welcome took us into `group`.
    Joined {
        group: Vec<u8>,
        inviter: String,
        /// The creator's conversation info, if the group context has one.
        info: Option<ConversationInfo>,
    },
    /// An application message (the daemon's payload format).
    Message {
        group: Vec<u8>,
        from: String,
        payload: Payload,
    },
    /// A commit took `group` to `epoch`.
    Commit {
        group: Vec<u8>,
        from: String,
        epoch: u64,
    },
    /// A commit removed us from `group`.
    Removed { group: Vec<u8> },
    /// A proposal, cached for our next commit.
    Proposal { group: Vec<u8> },
    /// Mail that could not be processed, and why (a test asserts on it).
    Failed { seq: u64, error: String },
}

/// A registered, logged-in qpq user speaking MLS through mls-rs.
pub struct MlsRsUser {
    pub account: Account,
    client: Client,
    mls: mls_rs::Client<Config>,
    groups: HashMap<Vec<u8>, Group<Config>>,
    /// The groups' names, as created or received.
    names: HashMap<Vec<u8>, String>,
    /// Everything received so far, in order.
    pub received: Vec<Received>,
}

impl MlsRsUser {
    /// Registers `name` on `server` with a fresh identity key.
    pub async fn register(server: &TestServer, name: &str) -> MlsRsUser {
        Self::register_posing_as(server, name, name).await
    }

    /// Registers `name`, but its MLS credential says `credential_name`
    /// (with `name`'s key): an impostor, as an attacker with its own MLS
    /// stack would make one.
    pub async fn register_posing_as(
        server: &TestServer,
        name: &str,
        credential_name: &str,
    ) -> MlsRsUser {
        let client = server.client().await;
        let account =
            register_with(&client, name, SigningKey::generate(&mut rand::rngs::OsRng)).await;
        let mls = mls_client(&account, credential_name);
        MlsRsUser {
            account,
            client,
            mls,
            groups: HashMap::new(),
            names: HashMap::new(),
            received: Vec::new(),
        }
    }

    pub fn username(&self) -> &str {
        self.account.username.as_str()
    }

    /// Uploads `n` one-use key packages and a last-resort one; returns how
    /// many one-use packages the server holds.
    pub async fn upload_key_packages(&mut self, n: usize) -> Result<u32> {
        let packages = (0..n)
            .map(|_| self.key_package(ExtensionList::new()))
            .collect::<Result<Vec<_>>>()?;
        let mut last_resort = ExtensionList::new();
        last_resort.set(Extension::new(LAST_RESORT, Vec::new()));
        let last_resort = Some(self.key_package(last_resort)?);
        Ok(self
            .client
            .request(wire::UploadKeyPackages {
                auth: self.token(),
                packages,
                last_resort,
            })
            .await?)
    }

    fn key_package(&self, extensions: ExtensionList) -> Result<Vec<u8>> {
        Ok(self
            .mls
            .generate_key_package_message(extensions, ExtensionList::new(), None)?
            .to_bytes()?)
    }

    /// Creates a group called `name` with `id` (any length mls-rs allows;
    /// its own ids are 32 bytes) whose context says it is a group, as a
    /// daemon's does, and registers it with the server.
    pub async fn create_group(&mut self, id: Vec<u8>, name: &str) -> Result<()> {
        let mut context = ExtensionList::new();
        context.set(Extension::new(
            ExtensionType::new(CONVERSATION_INFO_EXTENSION),
            ConversationInfo::Group { name: None }.encode(),
        ));
        let group =
            self.mls
                .create_group_with_id(id.clone(), context, ExtensionList::new(), None)?;
        let group_info = group.group_info_message(true)?.to_bytes()?;
        self.client
            .request(wire::RegisterGroup {
                auth: self.token(),
                group_info,
            })
            .await?;
        self.groups.insert(id.clone(), group);
        self.names.insert(id, name.to_owned());
        Ok(())
    }

    /// Adds `username` (one of their classic key packages from the server)
    /// to `group`: the commit to the members, the Welcome to the new one.
    pub async fn add(&mut self, group: &[u8], username: &str) -> Result<()> {
        let name = Username::parse(username).map_err(|e| MlsRsError::Protocol(e.to_string()))?;
        let package = self
            .client
            .request(wire::FetchKeyPackage {
                auth: self.token(),
                target: UserRef::Username(name),
                suite: CLASSIC.raw_value(),
            })
            .await?;
        let package = MlsMessage::from_bytes(&package.key_package)?;
        let g = self.group_mut(group)?;
        let commit = g.commit_builder().add_member(package)?.build()?;
        self.publish(group, commit).await?;
        match self.names.get(group).cloned() {
            Some(name) => self.send_payload(group, &Payload::GroupName { name }).await,
            None => Ok(()),
        }
    }

    /// Removes `username` from `group` (a commit).
    pub async fn remove(&mut self, group: &[u8], username: &str) -> Result<()> {
        let g = self.group_mut(group)?;
        let leaf = leaf_of(g, username)?;
        let commit = g.commit_builder().remove_member(leaf)?.build()?;
        self.publish(group, commit).await
    }

    /// Asks to leave `group`: a proposal to remove our own leaf, which
    /// another member commits (RFC 9420 §12.4: nobody commits their own
    /// removal), as a daemon's leave does.
    pub async fn leave(&mut self, group: &[u8]) -> Result<()> {
        let g = self.group_mut(group)?;
        let me = g.current_member_index();
        let proposal = g.propose_remove(me, Vec::new())?.to_bytes()?;
        self.send(group, &proposal, None, None).await
    }

    /// An empty commit: a new epoch with fresh keys for our leaf (an
    /// update), and any proposals we received.
    pub async fn update(&mut self, group: &[u8]) -> Result<()> {
        let commit = self.group_mut(group)?.commit(Vec::new())?;
        self.publish(group, commit).await
    }

    /// Sends `text` to `group` as the daemons' text payload.
    pub async fn send_text(&mut self, group: &[u8], text: &str) -> Result<()> {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.send_payload(group, &Payload::text(Id::random(), ts, text))
            .await
    }

    /// Sends `payload` to `group` as an application message.
    pub async fn send_payload(&mut self, group: &[u8], payload: &Payload) -> Result<()> {
        let message = self
            .group_mut(group)?
            .encrypt_application_message(&payload.encode(), Vec::new())?
            .to_bytes()?;
        self.send(group, &message, None, None).await
    }

    /// Sends our commit (pending in mls-rs) with the GroupInfo of the epoch
    /// it creates and the Welcome for those it adds; merges it once the
    /// server took it, drops it if the server refused it (the group stays
    /// where it was, to process what came first and try again).
    async fn publish(&mut self, group: &[u8], commit: CommitOutput) -> Result<()> {
        let g = self.group_mut(group)?;
        // The GroupInfo exists only in the new epoch: merge into a copy.
        let mut next = g.clone();
        next.apply_pending_commit()?;
        // The new epoch's, ratchet tree included: the server's copy of the
        // group, which it checks the next commit against.
        let group_info = next.group_info_message(true)?.to_bytes()?;
        let welcome = match commit.welcome_messages.first() {
            Some(w) => Some(w.to_bytes()?),
            None => None,
        };
        let message = commit.commit_message.to_bytes()?;
        let sent = self.send(group, &message, Some(group_info), welcome).await;
        let g = self.group_mut(group)?;
        match sent {
            Ok(()) => *g = next,
            Err(_) => g.clear_pending_commit(),
        }
        sent
    }

    /// One MLS message to `group`, padded; the server fans it out to the
    /// other members (and a commit's Welcome to those it adds).
    async fn send(
        &self,
        group: &[u8],
        message: &[u8],
        group_info: Option<Vec<u8>>,
        welcome: Option<Vec<u8>>,
    ) -> Result<()> {
        self.client
            .request(wire::EnqueueGroup {
                auth: self.token(),
                group: group.to_vec(),
                payload: padding::pad(message),
                idempotency_key: IdempotencyKey(rand::random()),
                group_info,
                welcome: welcome.map(|w| padding::pad(&w)),
            })
            .await?;
        Ok(())
    }

    /// Fetches (waiting up to `wait` for mail) and processes what came, in
    /// order; acknowledges it. Failures are recorded as
    /// [`Received::Failed`], not returned: the mail was read.
    pub async fn receive(&mut self, wait: Duration) -> Result<Vec<Received>> {
        let envelopes = self
            .client
            .request(wire::FetchWait {
                auth: self.token(),
                channel: None,
                limit: 100,
                timeout_ms: wait.as_millis() as u32,
            })
            .await?;
        let mut out = Vec::new();
        for e in &envelopes {
            out.push(
                self.process(&e.payload)
                    .unwrap_or_else(|error| Received::Failed {
                        seq: e.seq,
                        error: error.to_string(),
                    }),
            );
        }
        if !envelopes.is_empty() {
            self.client
                .request(wire::Ack {
                    auth: self.token(),
                    seqs: envelopes.iter().map(|e| e.seq).collect(),
                })
                .await?;
        }
        self.received.extend(out.iter().cloned());
        Ok(out)
    }

    /// Receives until something received so far matches `want` (for at
    /// most [`crate::WAIT`]); returns the first match.
    pub async fn wait_for(
        &mut self,
        what: &str,
        want: impl Fn(&Received) -> bool,
    ) -> Result<Received> {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            if let Some(r) = self.received.iter().find(|r| want(r)) {
                return Ok(r.clone());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(MlsRsError::Timeout(format!(
                    "{what} (received: {:?})",
                    self.received
                )));
            }
            self.receive(left.min(Duration::from_secs(5))).await?;
        }
    }

    /// Receives until `group`'s members are `usernames` (in leaf order).
    pub async fn wait_for_members(&mut self, group: &[u8], usernames: &[&str]) -> Result<()> {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let now = self.members(group)?;
            if now == usernames {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(MlsRsError::Timeout(format!(
                    "members {usernames:?} (now {now:?})"
                )));
            }
            self.receive(left.min(Duration::from_secs(5))).await?;
        }
    }

    /// Waits for the text message `text` in `group`.
    pub async fn wait_for_text(&mut self, group: &[u8], text: &str) -> Result<String> {
        let got = self
            .wait_for(&format!("{text:?}"), |r| match r {
                Received::Message {
                    group: g,
                    payload: Payload::Text { text: t, .. },
                    ..
                } => g == group && t == text,
                _ => false,
            })
            .await?;
        match got {
            Received::Message { from, .. } => Ok(from),
            _ => unreachable!("matched a message"),
        }
    }

    fn process(&mut self, padded: &[u8]) -> Result<Received> {
        let bytes = padding::unpad(padded).map_err(|e| MlsRsError::Protocol(e.to_string()))?;
        let message = MlsMessage::from_bytes(bytes)?;
        if message.wire_format() == mls_rs::WireFormat::Welcome {
            let (group, joined) = self.mls.join_group(None, &message, None)?;
            let inviter = username_at(&group, joined.sender)?;
            let info = group
                .context()
                .extensions
                .get(ExtensionType::new(CONVERSATION_INFO_EXTENSION))
                .map(|e| ConversationInfo::decode(e.extension_data()))
                .transpose()
                .map_err(|e| MlsRsError::Protocol(e.to_string()))?;
            let id = group.group_id().to_vec();
            if let Some(ConversationInfo::Group { name: Some(name) }) = &info {
                self.names.insert(id.clone(), name.clone());
            }
            self.groups.insert(id.clone(), group);
            return Ok(Received::Joined {
                group: id,
                inviter,
                info,
            });
        }
        let id = message
            .group_id()
            .ok_or_else(|| MlsRsError::Protocol(format!("unexpected {:?}", message.wire_format())))?
            .to_vec();
        let g = self.group_mut(&id)?;
        Ok(match g.process_incoming_message(message)? {
            ReceivedMessage::ApplicationMessage(m) => {
                let from = username_at(g, m.sender_index)?;
                let payload =
                    Payload::decode(m.data()).map_err(|e| MlsRsError::Protocol(e.to_string()))?;
                if let Payload::GroupName { name } = &payload {
                    self.names.insert(id.clone(), name.clone());
                }
                Received::Message {
                    from,
                    payload,
                    group: id,
                }
            }
            ReceivedMessage::Commit(c) => {
                if let CommitEffect::Removed { .. } = c.effect {
                    self.groups.remove(&id);
                    return Ok(Received::Removed { group: id });
                }
                Received::Commit {
                    from: username_at(g, c.committer)?,
                    epoch: g.current_epoch(),
                    group: id,
                }
            }
            ReceivedMessage::Proposal(_) => Received::Proposal { group: id },
            other => {
                return Err(MlsRsError::Protocol(format!(
                    "unexpected message in a group: {other:?}"
                )))
            }
        })
    }

    fn group_mut(&mut self, id: &[u8]) -> Result<&mut Group<Config>> {
        self.groups.get_mut(id).ok_or_else(|| not_in(id))
    }

    fn group(&self, id: &[u8]) -> Result<&Group<Config>> {
        self.groups.get(id).ok_or_else(|| not_in(id))
    }

    /// The usernames in `group`, in leaf order (ours included).
    pub fn members(&self, group: &[u8]) -> Result<Vec<String>> {
        self.group(group)?
            .roster()
            .members_iter()
            .map(|m| username_of(&m.signing_identity))
            .collect()
    }

    /// The ciphersuites `username`'s leaf in `group` says its client
    /// supports (RFC 9420 §7.2).
    pub fn suites_of(&self, group: &[u8], username: &str) -> Result<Vec<u16>> {
        Ok(member_named(self.group(group)?, username)?
            .capabilities
            .cipher_suites
            .iter()
            .map(|s| s.raw_value())
            .collect())
    }

    /// The group's name, once created or received.
    pub fn name(&self, group: &[u8]) -> Option<&str> {
        self.names.get(group).map(String::as_str)
    }

    /// The group's current epoch.
    pub fn epoch(&self, group: &[u8]) -> Option<u64> {
        self.groups.get(group).map(|g| g.current_epoch())
    }

    fn token(&self) -> SessionToken {
        self.account.session.token.clone()
    }
}

/// The mls-rs client of `account`: its identity key signs, the credential
/// holds `credential_name` (its username unless it poses as someone); leaves list our extensions (a member must support
/// every group context extension, and a key package may carry the
/// last-resort extension only if its leaf lists it).
fn mls_client(account: &Account, credential_name: &str) -> mls_rs::Client<Config> {
    let credential = BasicCredential::new(credential_name.as_bytes().to_vec());
    let identity = SigningIdentity::new(
        credential.into_credential(),
        SignaturePublicKey::new(account.signing.verifying_key().to_bytes().to_vec()),
    );
    // The OpenSSL provider reads an Ed25519 secret as seed and public key.
    let secret = SignatureSecretKey::new(account.signing.to_keypair_bytes().to_vec());
    let rules = DefaultMlsRules::new()
        .with_commit_options(CommitOptions::new().with_ratchet_tree_extension(true))
        // Handshakes in plaintext, for the server to validate.
        .with_encryption_options(EncryptionOptions::new(false, PaddingMode::StepFunction));
    mls_rs::Client::builder()
        .mls_rules(rules)
        .crypto_provider(OpensslCryptoProvider::default())
        .identity_provider(BasicIdentityProvider::new())
        .extension_types([ExtensionType::new(CONVERSATION_INFO_EXTENSION), LAST_RESORT])
        // Within what openmls accepts for a key package's lifetime.
        .key_package_lifetime(Duration::from_secs(30 * 24 * 3600))
        .signing_identity(identity, secret, CLASSIC)
        .build()
}

/// The leaf of `username` in `g`.
fn leaf_of(g: &Group<Config>, username: &str) -> Result<u32> {
    member_named(g, username).map(|m| m.index)
}

fn member_named(g: &Group<Config>, username: &str) -> Result<Member> {
    g.roster()
        .members_iter()
        .find(|m| username_of(&m.signing_identity).is_ok_and(|u| u == username))
        .ok_or_else(|| MlsRsError::Protocol(format!("{username} is not in the group")))
}

fn not_in(group: &[u8]) -> MlsRsError {
    MlsRsError::Protocol(format!("not in group {}", hex(group)))
}

fn username_at(g: &Group<Config>, leaf: u32) -> Result<String> {
    let m = g
        .member_at_index(leaf)
        .ok_or_else(|| MlsRsError::Protocol(format!("no member at leaf {leaf}")))?;
    username_of(&m.signing_identity)
}

fn username_of(identity: &SigningIdentity) -> Result<String> {
    let basic = identity
        .credential
        .as_basic()
        .ok_or_else(|| MlsRsError::Protocol("not a basic credential".into()))?;
    String::from_utf8(basic.identifier().to_vec())
        .map_err(|_| MlsRsError::Protocol("a username that is not UTF-8".into()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
