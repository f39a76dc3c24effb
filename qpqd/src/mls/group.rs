//! Groups as the daemon sees them: creating one, joining one from a Welcome,
//! listing them and their members, forgetting one.
//!
//! Commits (add, remove, update, leave) and the pending-commit protocol live in
//! `commit.rs`; messages in `message.rs`.

use crate::mls::SuiteExt as _;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    BasicCredential, Capabilities, Extension, ExtensionType, Extensions, ExternalSender, MlsGroup,
    MlsMessageBodyIn, MlsMessageIn, StagedWelcome, UnknownExtension, Welcome, WelcomeError,
    PURE_PLAINTEXT_WIRE_FORMAT_POLICY,
};
use openmls_traits::random::OpenMlsRand;
use openmls_traits::OpenMlsProvider;
use quicproquo_protocol::mls_framing::MAX_GROUP_ID;
use quicproquo_protocol::types::{Epoch, IdentityKey, Username};
use rusqlite::{params, OptionalExtension};

use super::cache;
use super::errors::MlsError;
use super::identity::Member;
use super::provider::Provider;
use super::suite::Suite;
use super::{join_config, MlsEngine, MAX_PAST_EPOCHS};

/// An MLS group id: 1 to [`GroupId::MAX_LEN`] bytes (RFC 9420 sets no
/// bound; this is the protocol's). qpq creates 16 random bytes; other
/// implementations pick other lengths (mls-rs: 32).
///
/// `Copy` and small, as the daemon passes it around freely and every
/// `MlsError` carries one: ids of up to 32 bytes are kept inline;
/// longer ones are interned once per process (`intern`).
#[derive(Clone, Copy)]
pub struct GroupId {
    len: u16,
    repr: Repr,
}

#[derive(Clone, Copy)]
enum Repr {
    Inline([u8; INLINE]),
    Interned(&'static [u8]),
}

/// Longest id kept inline: openmls' 16 bytes and mls-rs' 32.
const INLINE: usize = 32;

/// Most distinct ids longer than [`INLINE`] one process keeps; past it such
/// ids are refused like over-long ones. Each costs at most
/// `MAX_GROUP_ID` bytes for the life of the process, so this bounds what
/// peers sending odd group ids can make us hold.
const MAX_INTERNED: usize = 4096;

/// The one copy of a long group id, leaked for the life of the process so
/// that [`GroupId`] stays `Copy`; `None` once [`MAX_INTERNED`] are held.
fn intern(bytes: &[u8]) -> Option<&'static [u8]> {
    static LONG_IDS: OnceLock<Mutex<BTreeSet<&'static [u8]>>> = OnceLock::new();
    let mut ids = LONG_IDS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(kept) = ids.get(bytes) {
        return Some(kept);
    }
    if ids.len() >= MAX_INTERNED {
        return None;
    }
    let kept: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
    ids.insert(kept);
    Some(kept)
}

impl GroupId {
    /// The length of the ids qpq creates.
    pub const LEN: usize = 16;
    /// The longest id accepted.
    pub const MAX_LEN: usize = MAX_GROUP_ID;

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > MAX_GROUP_ID {
            return None;
        }
        let repr = if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Repr::Inline(inline)
        } else {
            Repr::Interned(intern(bytes)?)
        };
        Some(Self {
            len: bytes.len() as u16,
            repr,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline(b) => &b[..usize::from(self.len)],
            Repr::Interned(b) => b,
        }
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    pub(crate) fn to_openmls(self) -> openmls::group::GroupId {
        openmls::group::GroupId::from_slice(self.as_bytes())
    }

    pub(crate) fn from_openmls(id: &openmls::group::GroupId) -> Result<Self, MlsError> {
        Self::from_slice(id.as_slice()).ok_or_else(|| {
            MlsError::Malformed(format!(
                "group id of {} bytes (accepted: 1 to {})",
                id.as_slice().len(),
                Self::MAX_LEN
            ))
        })
    }
}

impl PartialEq for GroupId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for GroupId {}

impl std::hash::Hash for GroupId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialOrd for GroupId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({})", self.to_hex())
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What a Welcome put us into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub group: GroupId,
    pub suite: Suite,
    pub epoch: Epoch,
    /// The member who added us.
    pub inviter: Member,
    /// Everyone, us included, in leaf order.
    pub members: Vec<Member>,
    /// The creator's `CONVERSATION_INFO_EXTENSION`, if the group has one.
    /// Unverified application data: the caller parses and bounds it.
    pub info: Option<Vec<u8>>,
}

/// Names a member to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Username(Username),
    Identity(IdentityKey),
}

impl Who {
    pub(crate) fn matches(&self, m: &Member) -> bool {
        match self {
            Who::Username(u) => &m.username == u,
            Who::Identity(k) => &m.identity == k,
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Username(u) => write!(f, "{u}"),
            Who::Identity(k) => write!(f, "{k}"),
        }
    }
}

/// A group context extension of ours, in RFC 9420's private-use range
/// (0xF000–0xFFFF): what the conversation is (a DM or a group), set by the
/// creator, so a new member knows the moment it joins. The group context is
/// public — the server keeps each group's GroupInfo — so it says nothing
/// more (the group's name travels encrypted; see `payload.rs`).
pub const CONVERSATION_INFO_EXTENSION: u16 = 0xF0A1;

/// Leaf capabilities of everything we create: our two suites, the
/// last-resort key package extension, which a key package may only carry
/// if its leaf lists it (key_packages/key_package_in.rs `validate`), and [`CONVERSATION_INFO_EXTENSION`], since every member must
/// support each group context extension (openmls refuses the add otherwise).
///
/// The ciphersuites are ours alone (RFC 9420 §7.2: a leaf lists what its
/// client supports; openmls would list its 13 defaults, inviting a peer to
/// build a group we cannot join).
pub(crate) fn capabilities() -> Capabilities {
    Capabilities::builder()
        .ciphersuites(Suite::ALL.into_iter().map(|s| s.ciphersuite()).collect())
        .extensions(vec![
            ExtensionType::LastResort,
            ExtensionType::Unknown(CONVERSATION_INFO_EXTENSION),
        ])
        .build()
}

/// The credential the server's removal key is listed under.
pub const SERVER_SENDER_NAME: &[u8] = b"qpq-server";

/// The external sender entry for the server's removal key (an Ed25519
/// public key, 32 bytes).
fn server_sender(removal_key: &[u8]) -> Result<ExternalSender, MlsError> {
    if removal_key.len() != 32 {
        return Err(MlsError::Refused(format!(
            "the server's removal key has {} bytes; an Ed25519 key has 32",
            removal_key.len()
        )));
    }
    Ok(ExternalSender::new(
        removal_key.to_vec().into(),
        BasicCredential::new(SERVER_SENDER_NAME.to_vec()).into(),
    ))
}

pub(crate) fn members_of(g: &MlsGroup) -> Result<Vec<Member>, MlsError> {
    g.members().map(|m| Member::from_openmls(&m)).collect()
}

/// Adds the group to our table; returns its first version (see cache.rs).
fn remember_group(p: &Provider<'_>, group: GroupId, suite: Suite) -> Result<i64, MlsError> {
    let version = cache::new_version(p)?;
    p.connection().execute(
        "INSERT INTO qpq_mls_groups (group_id, suite, version) VALUES (?1, ?2, ?3)",
        params![group.as_bytes(), suite.code(), version],
    )?;
    Ok(version)
}

fn forget_state(p: &Provider<'_>, g: &mut MlsGroup, group: GroupId) -> Result<(), MlsError> {
    g.delete(p.storage())?;
    for table in ["qpq_mls_groups", "qpq_mls_past_leaves"] {
        p.connection().execute(
            &format!("DELETE FROM {table} WHERE group_id = ?1"),
            [group.as_bytes()],
        )?;
    }
    Ok(())
}

fn welcome_error(e: WelcomeError<rusqlite::Error>) -> MlsError {
    match e {
        WelcomeError::NoMatchingKeyPackage => MlsError::WelcomeNotForUs,
        WelcomeError::StorageError(e) => e.into(),
        WelcomeError::LibraryError(e) => e.into(),
        WelcomeError::UnsupportedCiphersuite(cs) => MlsError::UnsupportedSuite(u16::from(cs)),
        other => MlsError::Rejected(other.to_string()),
    }
}

impl MlsEngine {
    /// Creates a group with only us in it, under a fresh random id, with no
    /// conversation info and no external sender.
    pub fn create_group(&mut self, suite: Suite) -> Result<GroupId, MlsError> {
        self.create_group_with_info(suite, None, &[])
    }

    /// [`MlsEngine::create_group`] with `info` as the group's
    /// `CONVERSATION_INFO_EXTENSION`, which every member gets in its
    /// [`Joined::info`], and `removal_key` (the server's Ed25519 key, from
    /// `health`) as the group's one external sender, so that the server can
    /// later propose removing a member (a revoked device). An empty key means
    /// the server offers none: the group then lists no external sender, and
    /// cannot gain one later without a GroupContextExtensions commit.
    pub fn create_group_with_info(
        &mut self,
        suite: Suite,
        info: Option<&[u8]>,
        removal_key: &[u8],
    ) -> Result<GroupId, MlsError> {
        let mut list = Vec::new();
        if let Some(bytes) = info {
            list.push(Extension::Unknown(
                CONVERSATION_INFO_EXTENSION,
                UnknownExtension(bytes.to_vec()),
            ));
        }
        if !removal_key.is_empty() {
            list.push(Extension::ExternalSenders(vec![server_sender(
                removal_key,
            )?]));
        }
        let extensions = Extensions::from_vec(list)
            .map_err(|e| MlsError::Internal(format!("group context extensions: {e}")))?;
        let identity = &self.identity;
        let (group, version, g) = self.store.atomic(|p| {
            let bytes: [u8; 16] = p
                .rand()
                .random_array()
                .map_err(|e| MlsError::Internal(format!("randomness: {e:?}")))?;
            let group =
                GroupId::from_slice(&bytes).ok_or_else(|| MlsError::Internal("group id".into()))?;
            let g = MlsGroup::builder()
                .with_group_id(group.to_openmls())
                .ciphersuite(suite.ciphersuite())
                .max_past_epochs(MAX_PAST_EPOCHS)
                .use_ratchet_tree_extension(true)
                .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
                .with_capabilities(capabilities())
                .with_group_context_extensions(extensions)
                .build(p, identity, identity.credential_with_key())
                .map_err(|e| {
                    use openmls::prelude::NewGroupError as E;
                    match e {
                        E::GroupAlreadyExists => MlsError::GroupExists(group),
                        E::StorageError(e) => e.into(),
                        E::LibraryError(e) => e.into(),
                        E::UnsupportedCiphersuite(cs) => MlsError::UnsupportedSuite(u16::from(cs)),
                        other => MlsError::Refused(other.to_string()),
                    }
                })?;
            let version = remember_group(p, group, suite)?;
            Ok((group, version, g))
        })?;
        self.cache.insert(group, version, g);
        Ok(group)
    }

    /// Joins the group a Welcome (serialized `MLSMessage`) invites us to.
    /// Every member's credential must be a qpq one. If we hold the state of
    /// a group with that id that removed us, it is replaced (we were
    /// re-added); an active one is [`MlsError::GroupExists`]. Call
    /// [`MlsEngine::self_update`] soon after, so that our leaf stops using the
    /// keys of the published key package.
    pub fn join(&mut self, welcome: &[u8]) -> Result<Joined, MlsError> {
        let welcome = parse_welcome(welcome)?;
        let cache = &mut self.cache;
        let (joined, version, g) = self.store.atomic(|p| {
            let (staged, read) = stage_welcome(p, welcome, |group, p, claimed| {
                cache.take(group);
                make_room(group, p, claimed)
            })?;
            let g = staged.into_group(p).map_err(welcome_error)?;
            let version = remember_group(p, read.group, read.suite)?;
            let joined = Joined {
                epoch: Epoch(g.epoch().as_u64()),
                ..read
            };
            Ok((joined, version, g))
        })?;
        self.cache.insert(joined.group, version, g);
        Ok(joined)
    }

    /// What joining with this Welcome would give (the group, its inviter,
    /// members and conversation info), without joining: nothing is kept,
    /// the key package stays usable. For deciding whether to join at all.
    pub fn peek_welcome(&self, welcome: &[u8]) -> Result<Joined, MlsError> {
        let welcome = parse_welcome(welcome)?;
        self.store.peek(|p| {
            // The old state goes only inside the savepoint that is undone;
            // the kept copy in the cache stays valid.
            let (staged, read) = stage_welcome(p, welcome, make_room)?;
            Ok(Joined {
                epoch: Epoch(staged.group_context().epoch().as_u64()),
                ..read
            })
        })
    }

    /// Every group we hold state for (including ones we were removed from,
    /// until [`MlsEngine::forget`]).
    pub fn groups(&self) -> Result<Vec<GroupId>, MlsError> {
        let conn = self.store.connection();
        let mut stmt = conn.prepare("SELECT group_id FROM qpq_mls_groups ORDER BY group_id")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|r| {
            let bytes = r?;
            GroupId::from_slice(&bytes)
                .ok_or_else(|| MlsError::Internal("bad group id in qpq_mls_groups".into()))
        })
        .collect()
    }

    pub fn suite(&self, group: GroupId) -> Result<Suite, MlsError> {
        let code: Option<u16> = self
            .store
            .connection()
            .query_row(
                "SELECT suite FROM qpq_mls_groups WHERE group_id = ?1",
                [group.as_bytes()],
                |r| r.get(0),
            )
            .optional()?;
        let code = code.ok_or(MlsError::UnknownGroup(group))?;
        Suite::from_code(code).ok_or(MlsError::UnsupportedSuite(code))
    }

    /// Members in leaf order, us included.
    pub fn members(&self, group: GroupId) -> Result<Vec<Member>, MlsError> {
        self.read_group(group, members_of)
    }

    pub fn epoch(&self, group: GroupId) -> Result<Epoch, MlsError> {
        self.read_group(group, |g| Ok(Epoch(g.epoch().as_u64())))
    }

    /// False once a commit removed us.
    pub fn is_active(&self, group: GroupId) -> Result<bool, MlsError> {
        self.read_group(group, |g| Ok(g.is_active()))
    }

    pub fn has_pending_commit(&self, group: GroupId) -> Result<bool, MlsError> {
        self.read_group(group, |g| Ok(g.pending_commit().is_some()))
    }

    /// Deletes all state of a group (e.g. after we were removed; `join`
    /// also replaces such state by itself when we are re-added).
    pub fn forget(&mut self, group: GroupId) -> Result<(), MlsError> {
        let kept = self.cache.take(group);
        self.store.atomic(|p| {
            let mut g = cache::current(p, group, kept)?;
            forget_state(p, &mut g, group)
        })
    }
}

/// Before joining `group`: an active group of ours with that id is
/// [`MlsError::GroupExists`]; the state of one that removed us (or that we
/// left) is dropped, to start afresh.
fn make_room(
    group: GroupId,
    p: &Provider<'_>,
    claimed: &openmls::group::GroupId,
) -> Result<(), MlsError> {
    match MlsGroup::load(p.storage(), claimed)? {
        Some(old) if old.is_active() => Err(MlsError::GroupExists(group)),
        Some(mut old) => forget_state(p, &mut old, group),
        None => Ok(()),
    }
}

fn parse_welcome(welcome: &[u8]) -> Result<Welcome, MlsError> {
    let msg = MlsMessageIn::tls_deserialize_exact(welcome)
        .map_err(|e| MlsError::Malformed(e.to_string()))?;
    let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else {
        return Err(MlsError::Malformed("not a Welcome".into()));
    };
    Ok(welcome)
}

/// Stages `welcome` and reads what it says (epoch left at 0: the caller
/// knows whether it joins). `collide` sees the claimed group id first, to
/// deal with state of ours it would replace. Every member's credential must
/// be a qpq one, and no username may appear twice.
fn stage_welcome(
    p: &Provider<'_>,
    welcome: Welcome,
    collide: impl FnOnce(GroupId, &Provider<'_>, &openmls::group::GroupId) -> Result<(), MlsError>,
) -> Result<(StagedWelcome, Joined), MlsError> {
    let cs = welcome.ciphersuite();
    let suite = Suite::from_ciphersuite(cs).ok_or(MlsError::UnsupportedSuite(u16::from(cs)))?;
    let builder =
        StagedWelcome::build_from_welcome(p, &join_config(), welcome).map_err(welcome_error)?;
    // Not yet verified; only used to find state of ours it would collide
    // with. The verified id is checked against it below.
    let claimed = builder
        .processed_welcome()
        .unverified_group_info()
        .group_id()
        .clone();
    let group = GroupId::from_openmls(&claimed)?;
    collide(group, p, &claimed)?;
    let staged = builder.build().map_err(welcome_error)?;
    if staged.group_context().group_id() != &claimed {
        return Err(MlsError::Internal("welcome group id changed".into()));
    }
    let members = staged
        .members()
        .map(|m| Member::from_openmls(&m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names: Vec<&Username> = members.iter().map(|m| &m.username).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(MlsError::Rejected(format!(
            "{} is in the group twice",
            w[0]
        )));
    }
    let info = staged
        .group_context()
        .extensions()
        .unknown(CONVERSATION_INFO_EXTENSION)
        .map(|e| e.0.clone());
    let sender = staged.welcome_sender()?;
    let inviter = Member::from_leaf(sender.credential(), sender.signature_key().as_slice())?;
    let read = Joined {
        group,
        suite,
        epoch: Epoch(0),
        inviter,
        members,
        info,
    };
    Ok((staged, read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_of_1_to_256_bytes() {
        assert!(GroupId::from_slice(&[]).is_none());
        let g = GroupId::from_slice(&[0xab; 16]).unwrap();
        assert_eq!(g.to_string(), "ab".repeat(16));
        assert_eq!(GroupId::from_openmls(&g.to_openmls()).unwrap(), g);
        for len in [1, 15, 32, GroupId::MAX_LEN] {
            let id = openmls::group::GroupId::from_slice(&vec![1; len]);
            let g = GroupId::from_openmls(&id).unwrap();
            assert_eq!(g.as_bytes().len(), len);
        }
        assert_ne!(
            GroupId::from_slice(&[1; 16]),
            GroupId::from_slice(&[1; 17]),
            "the length is part of the id"
        );
        let long = GroupId::from_slice(&[2; 200]).unwrap();
        assert_eq!(long, GroupId::from_slice(&[2; 200]).unwrap());
        assert_eq!(long.as_bytes(), [2; 200]);
        assert!(
            std::mem::size_of::<GroupId>() <= 48,
            "small enough to copy around and to carry in errors"
        );
        let long = openmls::group::GroupId::from_slice(&[1; GroupId::MAX_LEN + 1]);
        assert!(matches!(
            GroupId::from_openmls(&long),
            Err(MlsError::Malformed(_))
        ));
    }
}
