//! A bare MLS member over the wire: an account (see [`wire`](crate::wire))
//! with an openmls group of its own, driven by hand. For tests of the
//! server's group rules (registration, validated commits, group delivery)
//! without a daemon, and for members that break the rules on purpose.
//!
//! It speaks the project's rules for handshakes: commits and proposals as
//! `PublicMessage`s, the ratchet tree in GroupInfos and Welcomes, the
//! identity key as the MLS signature key, the username as the basic
//! credential.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage, LeafNodeIndex, LeafNodeParameters,
    MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn,
    MlsMessageOut, ProcessedMessageContent, StagedWelcome, PURE_PLAINTEXT_WIRE_FORMAT_POLICY,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::types::SignatureScheme;
use openmls_traits::OpenMlsProvider as _;
use quicproquo_protocol::client::{Client, ClientError};
use quicproquo_protocol::padding;
use quicproquo_protocol::types::IdempotencyKey;
use quicproquo_protocol::wire::{GroupEnqueued, MemberDelivery, Request, Response};

use crate::wire::{self, Account};

/// The hybrid suite the daemon uses by default.
pub const HYBRID: Ciphersuite = Ciphersuite::MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519;
/// The classic suite.
pub const CLASSIC: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// A commit made but not yet accepted: what goes to the server with it.
pub struct Outgoing {
    pub commit: Vec<u8>,
    pub group_info: Vec<u8>,
    pub welcome: Option<Vec<u8>>,
}

/// See the module documentation.
pub struct Member {
    pub account: Account,
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    pub group: Option<MlsGroup>,
}

fn bytes(m: &MlsMessageOut) -> Vec<u8> {
    m.tls_serialize_detached()
        .expect("openmls serializes its messages")
}

impl Member {
    /// A new account on the server behind `client`, with its MLS signer.
    pub async fn register(client: &Client, name: &str) -> Member {
        Self::with_account(wire::register(client, name).await)
    }

    /// A member with a fresh identity key and no account on any server (its
    /// session token is random): for benches that drive a store directly.
    pub fn offline(name: &str) -> Member {
        use quicproquo_protocol::types::{SessionToken, Username};
        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let identity = quicproquo_protocol::types::IdentityKey(signing.verifying_key().to_bytes());
        Self::with_account(Account {
            username: Username::parse(name).expect("a valid test username"),
            password: String::new(),
            signing,
            identity,
            session: quicproquo_protocol::wire::Session {
                token: SessionToken::generate(&mut rand::rngs::OsRng),
                expires_at_ms: 0,
                identity_key: identity,
            },
        })
    }

    fn with_account(account: Account) -> Member {
        let signer = SignatureKeyPair::from_raw(
            SignatureScheme::ED25519,
            account.signing.to_bytes().to_vec(),
            account.identity.0.to_vec(),
        );
        Member {
            account,
            provider: OpenMlsRustCrypto::default(),
            signer,
            group: None,
        }
    }

    fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.account.username.as_str().as_bytes().to_vec())
                .into(),
            signature_key: self.account.identity.0.to_vec().into(),
        }
    }

    pub fn group_id(&self) -> Vec<u8> {
        self.group
            .as_ref()
            .expect("the member is in a group")
            .group_id()
            .as_slice()
            .to_vec()
    }

    /// A key package of ours for `suite`, to be added with.
    pub fn key_package(&self, suite: Ciphersuite) -> KeyPackage {
        KeyPackage::builder()
            .build(suite, &self.provider, &self.signer, self.credential())
            .expect("a key package builds")
            .key_package()
            .clone()
    }

    /// Creates a group with only us in it (with `id`, or a random one) and
    /// returns its GroupInfo with the ratchet tree, for `registerGroup`.
    pub fn create_group(&mut self, suite: Ciphersuite, id: Option<&[u8]>) -> Vec<u8> {
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(suite)
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(true)
            .build();
        let credential = self.credential();
        let group = match id {
            Some(id) => MlsGroup::new_with_group_id(
                &self.provider,
                &self.signer,
                &config,
                openmls::group::GroupId::from_slice(id),
                credential,
            ),
            None => MlsGroup::new(&self.provider, &self.signer, &config, credential),
        }
        .expect("a group is created");
        self.group = Some(group);
        self.group_info()
    }

    /// The group's current GroupInfo, with the ratchet tree.
    pub fn group_info(&self) -> Vec<u8> {
        let g = self.group.as_ref().expect("the member is in a group");
        bytes(
            &g.export_group_info(self.provider.crypto(), &self.signer, true)
                .expect("group info exports"),
        )
    }

    /// Registers our group with the server.
    pub async fn register_group(&self, client: &Client) -> Result<(), ClientError> {
        let call = Request::RegisterGroup {
            auth: self.account.session.token.clone(),
            group_info: self.group_info(),
        };
        expect(client.call(&call).await, |r| {
            matches!(r, Response::RegisterGroup).then_some(())
        })
    }

    /// A commit adding these key packages (pending until merged).
    pub fn add(&mut self, packages: &[KeyPackage]) -> Outgoing {
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().expect("the member is in a group");
        let (commit, welcome, info) = group
            .add_members(provider, signer, packages)
            .expect("add_members");
        Outgoing {
            commit: bytes(&commit),
            group_info: bytes(&MlsMessageOut::from(
                info.expect("a GroupInfo with the add"),
            )),
            welcome: Some(bytes(&welcome)),
        }
    }

    /// A commit removing the member in `leaf` (pending until merged).
    pub fn remove(&mut self, leaf: u32) -> Outgoing {
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().expect("the member is in a group");
        let (commit, _, info) = group
            .remove_members(provider, signer, &[LeafNodeIndex::new(leaf)])
            .expect("remove_members");
        Outgoing {
            commit: bytes(&commit),
            group_info: bytes(&MlsMessageOut::from(
                info.expect("a GroupInfo with the remove"),
            )),
            welcome: None,
        }
    }

    /// A commit re-keying our leaf (pending until merged).
    pub fn self_update(&mut self) -> Outgoing {
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().expect("the member is in a group");
        let bundle = group
            .self_update(provider, signer, LeafNodeParameters::default())
            .expect("self_update");
        let (commit, _, info) = bundle.into_messages();
        Outgoing {
            commit: bytes(&commit),
            group_info: bytes(&info.expect("a GroupInfo with the update")),
            welcome: None,
        }
    }

    /// Applies our pending commit (after the server accepted it).
    pub fn merge(&mut self) {
        let provider = &self.provider;
        let group = self.group.as_mut().expect("the member is in a group");
        group
            .merge_pending_commit(provider)
            .expect("merge_pending_commit");
    }

    /// Forgets our pending commit (the server refused it).
    pub fn discard(&mut self) {
        let provider = &self.provider;
        let group = self.group.as_mut().expect("the member is in a group");
        group
            .clear_pending_commit(provider.storage())
            .expect("clear_pending_commit");
    }

    /// An application message to the group.
    pub fn encrypt(&mut self, text: &[u8]) -> Vec<u8> {
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().expect("the member is in a group");
        bytes(
            &group
                .create_message(provider, signer, text)
                .expect("create_message"),
        )
    }

    /// Joins from a Welcome (unpadded MLSMessage).
    pub fn join(&mut self, welcome: &[u8]) {
        let msg = MlsMessageIn::tls_deserialize_exact(welcome).expect("a Welcome parses");
        let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else {
            panic!("not a Welcome")
        };
        let config = MlsGroupJoinConfig::builder()
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(true)
            .build();
        let group = StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None)
            .expect("the Welcome stages")
            .into_group(&self.provider)
            .expect("the group joins");
        self.group = Some(group);
    }

    /// Processes one group message (unpadded); returns an application
    /// message's plaintext, merges a commit.
    pub fn process(&mut self, message: &[u8]) -> Option<Vec<u8>> {
        let provider = &self.provider;
        let group = self.group.as_mut().expect("the member is in a group");
        let msg = MlsMessageIn::tls_deserialize_exact(message).expect("a message parses");
        let protocol = msg.try_into_protocol_message().expect("a group message");
        let processed = group
            .process_message(provider, protocol)
            .expect("process_message");
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => Some(m.into_bytes()),
            ProcessedMessageContent::StagedCommitMessage(c) => {
                group
                    .merge_staged_commit(provider, *c)
                    .expect("merge_staged_commit");
                None
            }
            ProcessedMessageContent::ProposalMessage(p) => {
                group
                    .store_pending_proposal(provider.storage(), *p)
                    .expect("store_pending_proposal");
                None
            }
            _ => None,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.group
            .as_ref()
            .expect("the member is in a group")
            .epoch()
            .as_u64()
    }

    /// Sends `mls` (unpadded) to our group with `enqueueGroup`.
    pub async fn send(
        &mut self,
        client: &Client,
        mls: &[u8],
        group_info: Option<Vec<u8>>,
        welcome: Option<&[u8]>,
    ) -> Result<GroupEnqueued, ClientError> {
        let group = self.group_id();
        send_to(client, &self.account, &group, mls, group_info, welcome).await
    }

    /// Sends a pending commit and merges it when accepted (discards it when
    /// refused).
    pub async fn commit(
        &mut self,
        client: &Client,
        out: Outgoing,
    ) -> Result<GroupEnqueued, ClientError> {
        let sent = self
            .send(
                client,
                &out.commit,
                Some(out.group_info),
                out.welcome.as_deref(),
            )
            .await;
        match &sent {
            Ok(_) => self.merge(),
            Err(_) => self.discard(),
        }
        sent
    }

    /// Mail waiting for us, unpadded, in order (and acknowledged).
    pub async fn take_mail(&self, client: &Client) -> Vec<Vec<u8>> {
        wire::take_mail(client, &self.account).await
    }
}

/// `enqueueGroup` of `mls` (unpadded) to `group` as `from`.
pub async fn send_to(
    client: &Client,
    from: &Account,
    group: &[u8],
    mls: &[u8],
    group_info: Option<Vec<u8>>,
    welcome: Option<&[u8]>,
) -> Result<GroupEnqueued, ClientError> {
    let call = Request::EnqueueGroup {
        auth: from.session.token.clone(),
        group: group.to_vec(),
        payload: padding::pad(mls),
        idempotency_key: IdempotencyKey(rand::random()),
        group_info,
        welcome: welcome.map(padding::pad),
    };
    expect(client.call(&call).await, |r| match r {
        Response::EnqueueGroup { duplicate, members } => Some(GroupEnqueued {
            duplicate: *duplicate,
            members: members.clone(),
        }),
        _ => None,
    })
}

/// The members a group delivery stored for (seq non-zero).
pub fn delivered(result: &GroupEnqueued) -> Vec<MemberDelivery> {
    result
        .members
        .iter()
        .filter(|m| m.error.is_none())
        .copied()
        .collect()
}

fn expect<T>(
    answer: Result<Response, ClientError>,
    pick: impl FnOnce(&Response) -> Option<T>,
) -> Result<T, ClientError> {
    let r = answer?;
    if let Some(t) = pick(&r) {
        return Ok(t);
    }
    match r {
        Response::Error(e) => Err(ClientError::Server(e)),
        other => panic!("unexpected answer {other:?}"),
    }
}
