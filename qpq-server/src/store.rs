//! Server storage: the [`Store`] trait and its implementations.
//!
//! Everything the server keeps lives behind this trait: accounts (OPAQUE
//! records bound to identity keys), sessions (hashed tokens), key packages,
//! DM channels, mailboxes and the public MLS state of every group.
//! SQLite ([`sqlite::SqliteStore`], the embedded default) implements it now;
//! PostgreSQL will implement the same trait and must pass the same
//! [`conformance`] suite unchanged.
//!
//! Change events: every write that other parts of the server must learn of
//! (mail for a held `fetchWait`, an ended session, a changed group) is also
//! announced as a [`Change`] after it committed, to every subscriber of
//! [`Store::changes`]. SQLite announces them in-process; PostgreSQL through
//! `NOTIFY`, so that every node sharing the database hears every node's
//! changes.
//!
//! Durability contract: when a write method's future resolves `Ok`, the write
//! is on disk and survives a kill -9 of the server. Implementations batch
//! concurrent writes into one transaction to make that affordable. A call
//! whose future is dropped after it was handed to the backend may still
//! commit: callers that need to know retry with the same idempotency key.

use std::future::Future;

use quicproquo_protocol::types::{ChannelId, Epoch, IdempotencyKey, IdentityKey, Username};

pub mod conformance;
pub mod file_blobs;
pub mod postgres;
pub mod sqlite;

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub username: Username,
    pub identity_key: IdentityKey,
    /// The serialized opaque-ke `ServerRegistration` (the password file).
    pub opaque_record: Vec<u8>,
    pub created_at_ms: u64,
}

/// One recipient of an enqueue and the channel it goes through; the wire
/// type is stored as it is.
pub use quicproquo_protocol::wire::Delivery;

/// Everything one `enqueue` request stores, applied atomically: either the
/// idempotency key and every delivery are stored, or none.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub sender: IdentityKey,
    pub idempotency_key: IdempotencyKey,
    /// Each recipient at most once (the caller refuses repeats).
    pub deliveries: Vec<Delivery>,
    /// The padded payload, stored as received (the server never sees plaintext).
    pub payload: Vec<u8>,
    pub now_ms: u64,
    pub quota: MailQuota,
}

/// Bytes of waiting mail a mailbox may hold, in all and from one sender
/// (each recipient's copy counts the whole payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailQuota {
    pub mailbox_bytes: u64,
    pub sender_bytes: u64,
}

impl MailQuota {
    pub const UNLIMITED: MailQuota = MailQuota {
        mailbox_bytes: u64::MAX,
        sender_bytes: u64::MAX,
    };
}

/// A verified key package as stored: its serialized `MLSMessage` and the end
/// of its lifetime, after which it is never handed out and is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKeyPackage {
    pub data: Vec<u8>,
    pub not_after_ms: u64,
}

/// Which key package `take_key_package` may hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// The oldest unexpired one-time package, else the last-resort one.
    OneTimeFirst,
    /// Only the last-resort package (the requester took its share).
    LastResortOnly,
}

/// The cut-offs of one purge: what ends at or before `now_ms` (sessions,
/// key packages), idempotency keys and undelivered mail older than theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purge {
    pub now_ms: u64,
    pub idempotency_before_ms: u64,
    pub mail_before_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Stored now; one mailbox sequence number per delivery, in order.
    Stored { seqs: Vec<u64> },
    /// The `(sender, idempotency_key)` pair was stored before: nothing was
    /// stored again.
    Duplicate,
}

/// A group the server validates, as stored: its public MLS state (see
/// `groups::public_state`) at `epoch`, and `revision`, which every change
/// (a commit, a proposal) increases; changes are compare-and-swapped on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub revision: u64,
    pub epoch: Epoch,
    pub state: Vec<u8>,
}

/// A group registered by its creator.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub group_id: Vec<u8>,
    pub epoch: Epoch,
    pub state: Vec<u8>,
    /// The creator's GroupInfo (MLSMessage), kept current by every commit.
    pub group_info: Vec<u8>,
    pub now_ms: u64,
}

/// A change of a group's state that a message brings (a commit, a proposal),
/// applied only if the group is still at `from_revision`.
#[derive(Debug, Clone)]
pub struct GroupUpdate {
    pub from_revision: u64,
    pub epoch: Epoch,
    pub state: Vec<u8>,
    /// With a commit: the new epoch's GroupInfo.
    pub group_info: Option<Vec<u8>>,
}

/// Everything one `enqueueGroup` stores, atomically: the idempotency key,
/// the group's new state (if any, compare-and-swapped) and the mail. A
/// recipient whose mailbox is full is skipped (and reported), never the
/// whole request.
#[derive(Debug, Clone)]
pub struct GroupMail {
    pub sender: IdentityKey,
    pub idempotency_key: IdempotencyKey,
    pub group_id: Vec<u8>,
    /// The padded payload, stored once for every recipient.
    pub payload: Vec<u8>,
    pub recipients: Vec<IdentityKey>,
    /// A Welcome (padded) and the members it is for.
    pub welcome: Option<(Vec<u8>, Vec<IdentityKey>)>,
    pub update: Option<GroupUpdate>,
    pub now_ms: u64,
    /// Bounds each recipient's mailbox as for [`NewMail`]; a member past
    /// it is skipped.
    pub quota: MailQuota,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEnqueueOutcome {
    /// Per recipient (the payload's, then the Welcome's), its sequence
    /// number, or `None` where its mailbox (or the sender's share of it)
    /// was full.
    Stored {
        members: Vec<(IdentityKey, Option<u64>)>,
    },
    /// The `(sender, idempotency_key)` pair was stored before.
    Duplicate,
}

/// A message waiting in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Increases with every message stored for the same recipient.
    pub seq: u64,
    pub channel: Option<ChannelId>,
    pub payload: Vec<u8>,
    pub enqueued_at_ms: u64,
    /// Set on an expiry notice (empty payload, no channel): mail this
    /// mailbox's owner sent expired unfetched.
    pub expired: Option<Expired>,
}

pub use quicproquo_protocol::wire::Expired;

/// One account as an operator's listing shows it (`qpq-server admin users`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub username: Username,
    pub identity_key: IdentityKey,
    pub created_at_ms: u64,
    /// Disabled by the operator ([`Store::set_disabled`]).
    pub disabled: bool,
    /// Sessions unexpired at the listing's `now_ms`.
    pub sessions: u32,
    /// Mail waiting in the account's mailbox (expiry notices included).
    pub mail_count: u64,
    pub mail_bytes: u64,
    /// Unexpired key packages stored, one-time and last-resort, every suite.
    pub key_packages: u32,
}

/// The waiting mail of one account's mailbox (`qpq-server admin queues`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSize {
    pub username: Username,
    pub mail_count: u64,
    pub mail_bytes: u64,
}
/// Something stored that caches and waiters, on this node or on another node
/// sharing the database, must learn of. Announced only after it committed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// Mail was stored in this mailbox (wakes its `fetchWait`).
    Mail(IdentityKey),
    /// This one session ended (logout).
    Session([u8; 32]),
    /// Some or all sessions of this account ended, or the account changed
    /// (password, deletion, disabled): every cached session of it must be
    /// checked against the store again.
    Account(Username),
    /// The group's stored state changed and is now at `revision`.
    Group { id: Vec<u8>, revision: u64 },
    /// Changes may have been missed (the database listener reconnected, or a
    /// subscriber lagged): drop every cache and wake every waiter.
    Lost,
}

/// How many changes a subscriber may fall behind before it gets
/// `RecvError::Lagged` (and treats that as [`Change::Lost`]).
pub const CHANGES_BUFFER: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already registered")]
    UsernameTaken,
    #[error("identity key already bound to an account")]
    IdentityKeyTaken,
    #[error("mailbox of {0} is full")]
    QueueFull(IdentityKey),
    /// The sender's share of the recipient's mailbox is used up.
    #[error("the sender's share of the mailbox of {0} is full")]
    ShareFull(IdentityKey),
    #[error("too many key packages stored for this user")]
    TooManyKeyPackages,
    #[error("a group with this id is already registered")]
    GroupExists,
    /// The group changed since its state was read (another commit won).
    #[error("the group's state changed since it was read")]
    GroupChanged,
    /// The account was disabled by the operator: no session is created for it.
    #[error("the account is disabled by the operator")]
    AccountDisabled,
    /// The database failed; the message is for logs, never for clients.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// The server's persistent state. See the module docs for the durability
/// contract; every method is safe to call concurrently.
pub trait Store: Send + Sync + 'static {
    /// Returns the secret stored under `name`, storing `init` first if there
    /// is none. Atomic: concurrent callers (also on other server nodes sharing
    /// the database) all get the same value.
    fn server_secret(
        &self,
        name: &str,
        init: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Fails with `UsernameTaken` or `IdentityKeyTaken` on a conflict; a
    /// username of a deleted account stays taken.
    fn create_account(
        &self,
        account: Account,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn account(
        &self,
        username: &Username,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;
    fn account_by_identity(
        &self,
        key: &IdentityKey,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;
    /// Whether `username` belonged to an account that was deleted (its name
    /// is retired): look-ups answer "deleted" rather than "no such user".
    fn username_retired(
        &self,
        username: &Username,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the account's OPAQUE record and ends every session of the
    /// account except `keep` (the one that changed the password), at once.
    fn change_password(
        &self,
        username: &Username,
        opaque_record: Vec<u8>,
        keep: [u8; 32],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes the account at once: its sessions, key packages, waiting mail
    /// and DM channels go, and its username is retired (never registered
    /// again, so nobody can take over the name its contacts know). Deleting
    /// an unknown account is not an error.
    fn delete_account(
        &self,
        username: &Username,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a session under the SHA-256 hash of its token. Fails with
    /// `AccountDisabled` (storing nothing) for a disabled account.
    fn create_session(
        &self,
        token_hash: [u8; 32],
        username: &Username,
        expires_at_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The account of an unexpired session (never of a disabled account).
    fn session(
        &self,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;
    /// Revokes a session; revoking an unknown one is not an error.
    fn delete_session(
        &self,
        token_hash: [u8; 32],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds one-time key packages of MLS ciphersuite `suite` and, if given,
    /// replaces the owner's last-resort package of that suite. Returns how
    /// many one-time packages of that suite are now stored. Fails with
    /// `TooManyKeyPackages` (storing nothing) past
    /// `limits::MAX_KEY_PACKAGES_STORED` per suite (expired ones not
    /// counted).
    fn add_key_packages(
        &self,
        owner: IdentityKey,
        suite: u16,
        packages: Vec<StoredKeyPackage>,
        last_resort: Option<StoredKeyPackage>,
        now_ms: u64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// With [`Take::OneTimeFirst`], removes and returns the oldest one-time
    /// package of `suite`; when none is left (or with
    /// [`Take::LastResortOnly`]), returns (without removing) the last-resort
    /// package of that suite, flagged `true`. A package whose lifetime ended
    /// at or before `now_ms` is never returned.
    fn take_key_package(
        &self,
        owner: IdentityKey,
        suite: u16,
        now_ms: u64,
        take: Take,
    ) -> impl Future<Output = Result<Option<(Vec<u8>, bool)>, StoreError>> + Send;

    /// The channel of the unordered pair `{a, b}`: the existing one, or a new
    /// one with id `new_id`.
    fn create_channel(
        &self,
        a: IdentityKey,
        b: IdentityKey,
        new_id: ChannelId,
    ) -> impl Future<Output = Result<ChannelId, StoreError>> + Send;
    fn channel_members(
        &self,
        id: ChannelId,
    ) -> impl Future<Output = Result<Option<(IdentityKey, IdentityKey)>, StoreError>> + Send;

    /// Stores one enqueue atomically (see [`NewMail`]). Fails with
    /// `QueueFull` (depth or the mailbox's bytes) or `ShareFull` (the
    /// sender's bytes in one mailbox), storing nothing, when a rule is
    /// broken. Records the sender of every mail row.
    fn enqueue(
        &self,
        mail: NewMail,
    ) -> impl Future<Output = Result<EnqueueOutcome, StoreError>> + Send;
    /// Waiting mail of `recipient` in sequence order, optionally only from one
    /// channel: at most `limit` messages, and no more once `byte_budget` is
    /// exceeded (but always the first one).
    fn fetch(
        &self,
        recipient: IdentityKey,
        channel: Option<ChannelId>,
        limit: u32,
        byte_budget: usize,
    ) -> impl Future<Output = Result<Vec<Mail>, StoreError>> + Send;
    /// Deletes delivered mail of `recipient`; returns how many were removed.
    /// Unknown sequence numbers are ignored (acks are retried).
    fn ack(
        &self,
        recipient: IdentityKey,
        seqs: Vec<u64>,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Deletes what [`Purge`] names as over: expired sessions and key
    /// packages (last-resort ones too), old idempotency keys, and mail
    /// enqueued before `mail_before_ms` (releasing its quota). Each expired
    /// mail with a recorded sender leaves an expiry notice ([`Mail::expired`],
    /// enqueued at `now_ms`) in the sender's mailbox; notices have no sender
    /// and leave none. Returns how many rows went.
    fn purge_expired(&self, purge: Purge) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Stores a new group at revision 1. Fails with `GroupExists` if the id
    /// is taken.
    fn register_group(
        &self,
        group: NewGroup,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A group's current state.
    fn group(
        &self,
        group_id: Vec<u8>,
    ) -> impl Future<Output = Result<Option<StoredGroup>, StoreError>> + Send;
    /// A group's current GroupInfo (for members joining by external commit later).
    fn group_info(
        &self,
        group_id: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// Stores one group message atomically (see [`GroupMail`]). Fails with
    /// `GroupChanged` (storing nothing) when its update's `from_revision` is
    /// no longer current.
    fn enqueue_group(
        &self,
        mail: GroupMail,
    ) -> impl Future<Output = Result<GroupEnqueueOutcome, StoreError>> + Send;
    /// Deletes groups with no message since `idle_before_ms`; returns how many.
    fn purge_idle_groups(
        &self,
        idle_before_ms: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // ----- operator (admin) ------------------------------------------------

    /// Up to `limit` accounts whose username sorts after `after` (bytewise,
    /// as UTF-8), in that order: one page of the operator's listing. Counts
    /// (sessions, key packages) leave out what expired by `now_ms`.
    fn accounts(
        &self,
        after: Option<Username>,
        limit: u32,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<AccountSummary>, StoreError>> + Send;
    /// Disables (or enables again) an account. Disabling ends every session
    /// of it at once; while disabled, `session` finds none and
    /// `create_session` refuses it. Returns `false` (changing nothing) when
    /// there is no such account; setting the state it already has is not an
    /// error (and keeps the first disabling time).
    fn set_disabled(
        &self,
        username: &Username,
        disabled: bool,
        now_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Ends every session of the account at once; returns how many ended
    /// (0 for an unknown account).
    fn end_sessions(
        &self,
        username: &Username,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// The `limit` accounts with the most waiting mail, biggest (in bytes,
    /// then count) first; accounts with an empty mailbox are left out.
    fn mailbox_sizes(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<MailboxSize>, StoreError>> + Send;

    /// Every change committed from now on, by this process or (with a shared
    /// database) by any node. A receiver that lags gets
    /// `RecvError::Lagged`: it must treat that as [`Change::Lost`].
    fn changes(&self) -> tokio::sync::broadcast::Receiver<Change>;
}
