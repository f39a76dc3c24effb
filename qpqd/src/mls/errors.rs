//! Everything the MLS engine can refuse, as one enum the daemon maps to
//! stable codes, and the translation from openmls' per-operation errors.
//!
//! openmls reports most outcomes the daemon must act on (stale commit, message
//! from an epoch we no longer keep, replay, eviction) as nested validation
//! errors; they are picked out here so that callers never match on openmls
//! types or error strings.

use openmls::error::LibraryError;
use openmls::framing::errors::{MessageDecryptionError, SecretTreeError};
use openmls::prelude::{MlsGroupStateError, ProcessMessageError, ValidationError};
use quicproquo_protocol::types::Epoch;

use super::group::GroupId;

#[derive(Debug, thiserror::Error)]
pub enum MlsError {
    #[error("no MLS group {0}")]
    UnknownGroup(GroupId),
    #[error("group {0} already exists here")]
    GroupExists(GroupId),
    /// We were removed from the group (or left): it can no longer be used.
    #[error("not a member of group {0} any more")]
    NotMember(GroupId),
    /// An application message from an epoch whose keys we no longer hold
    /// (older than `max_past_epochs`, before we joined, or a generation
    /// outside the out-of-order window).
    #[error(
        "message for group {group} is from epoch {}, too old to decrypt at epoch {}",
        message.0,
        current.0
    )]
    TooOld {
        group: GroupId,
        message: Epoch,
        current: Epoch,
    },
    /// The message is from an epoch we have not reached: a commit is missing
    /// (process the group's messages in server order).
    #[error(
        "message for group {group} is from future epoch {} (we are at {})",
        message.0,
        current.0
    )]
    FutureEpoch {
        group: GroupId,
        message: Epoch,
        current: Epoch,
    },
    /// A commit or proposal for an epoch we have already left: a duplicate,
    /// or one that lost the race for its epoch. Safe to drop.
    #[error(
        "handshake message for group {group} is for past epoch {} (we are at {})",
        message.0,
        current.0
    )]
    StaleHandshake {
        group: GroupId,
        message: Epoch,
        current: Epoch,
    },
    /// The message was already decrypted once (its key is deleted for forward
    /// secrecy): a duplicate delivery. Safe to drop.
    #[error("message for group {0} was already processed")]
    Replay(GroupId),
    /// Decryption failed with keys we do hold: corrupted or forged.
    #[error("message for group {0} does not decrypt")]
    Undecryptable(GroupId),
    /// A commit of ours waits for the server's verdict: call `merge_pending`
    /// (accepted) or `clear_pending` (refused) first.
    #[error("group {0} has a commit waiting for the server")]
    PendingCommit(GroupId),
    #[error("group {0} has no pending commit")]
    NoPendingCommit(GroupId),
    /// openmls refuses to send application messages while proposals are
    /// queued: commit them (`commit_pending_proposals`) first.
    #[error("group {0} has proposals waiting for a commit")]
    PendingProposals(GroupId),
    /// The bytes are not the MLS structure expected here.
    #[error("malformed MLS message: {0}")]
    Malformed(String),
    /// Well-formed, but MLS validation refused it (signature, membership tag,
    /// commit contents, ...).
    #[error("MLS message rejected: {0}")]
    Rejected(String),
    #[error("process() takes group messages; pass a Welcome to join()")]
    UnexpectedWelcome,
    /// A Welcome none of our key packages can open (meant for someone else,
    /// or its key package was already used).
    #[error("welcome is not for any of our key packages")]
    WelcomeNotForUs,
    #[error("unsupported ciphersuite 0x{0:04x}")]
    UnsupportedSuite(u16),
    #[error("unsupported proposal: {0}")]
    UnsupportedProposal(String),
    /// A credential that is not a basic credential holding a valid username
    /// with a 32-byte Ed25519 key.
    #[error("invalid credential: {0}")]
    InvalidCredential(String),
    #[error("invalid key package: {0}")]
    InvalidKeyPackage(String),
    #[error("{0} is not a member of the group")]
    MemberNotFound(String),
    /// Removing oneself is done with `leave` (a proposal another member commits).
    #[error("cannot remove ourselves; use leave")]
    RemoveSelf,
    /// SQLite (or openmls' use of it) failed; the operation had no effect.
    #[error("MLS storage: {0}")]
    Storage(String),
    /// SQLite could not read or write (disk full, I/O error, busy): the
    /// operation had no effect and may succeed later
    /// ([`crate::core::unavailable`]).
    #[error("MLS storage unavailable: {0}")]
    StorageUnavailable(String),
    /// openmls refused an operation for a reason the engine does not
    /// distinguish further (the text says which).
    #[error("MLS operation refused: {0}")]
    Refused(String),
    /// A bug (ours or openmls'): an invariant did not hold.
    #[error("MLS internal error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for MlsError {
    fn from(e: rusqlite::Error) -> Self {
        if crate::core::unavailable(&e) {
            MlsError::StorageUnavailable(e.to_string())
        } else {
            MlsError::Storage(e.to_string())
        }
    }
}

impl From<LibraryError> for MlsError {
    fn from(e: LibraryError) -> Self {
        MlsError::Internal(e.to_string())
    }
}

/// Maps the group-state errors every openmls operation can return.
pub(crate) fn state_error(group: GroupId, e: MlsGroupStateError) -> MlsError {
    match e {
        MlsGroupStateError::UseAfterEviction => MlsError::NotMember(group),
        MlsGroupStateError::PendingCommit => MlsError::PendingCommit(group),
        MlsGroupStateError::NoPendingCommit => MlsError::NoPendingCommit(group),
        MlsGroupStateError::PendingProposal => MlsError::PendingProposals(group),
        other => MlsError::Internal(other.to_string()),
    }
}

/// Maps an openmls operation error whose enum has `GroupStateError`,
/// `StorageError` and `LibraryError` variants; the rest becomes `Refused`.
macro_rules! op_error {
    ($group:expr, $err:expr, $ty:ident) => {{
        let group = $group;
        match $err {
            $ty::GroupStateError(e) => $crate::mls::errors::state_error(group, e),
            $ty::StorageError(e) => e.into(),
            $ty::LibraryError(e) => e.into(),
            other => $crate::mls::errors::MlsError::Refused(other.to_string()),
        }
    }};
}
pub(crate) use op_error;

/// Where a message stood relative to the group when processing failed.
pub(crate) struct ProcessContext {
    pub group: GroupId,
    pub message: Epoch,
    pub current: Epoch,
    pub max_past_epochs: u64,
}

pub(crate) fn process_error(
    cx: &ProcessContext,
    e: ProcessMessageError<rusqlite::Error>,
) -> MlsError {
    let group = cx.group;
    let too_old = || MlsError::TooOld {
        group,
        message: cx.message,
        current: cx.current,
    };
    match e {
        ProcessMessageError::StorageError(e) => e.into(),
        ProcessMessageError::LibraryError(e) => e.into(),
        ProcessMessageError::GroupStateError(e) => state_error(group, e),
        ProcessMessageError::ValidationError(v) => match v {
            ValidationError::WrongEpoch if cx.message > cx.current => MlsError::FutureEpoch {
                group,
                message: cx.message,
                current: cx.current,
            },
            ValidationError::WrongEpoch => MlsError::StaleHandshake {
                group,
                message: cx.message,
                current: cx.current,
            },
            ValidationError::NoPastEpochData => too_old(),
            ValidationError::UnableToDecrypt(d) => match d {
                // Raised both for an epoch no longer in the past-secrets store
                // (group/mls_group/mod.rs `message_secrets_and_leaves`) and for
                // a generation outside the sender ratchet's out-of-order window
                // (tree/sender_ratchet.rs).
                MessageDecryptionError::SecretTreeError(SecretTreeError::TooDistantInThePast) => {
                    too_old()
                }
                MessageDecryptionError::SecretTreeError(SecretTreeError::SecretReuseError) => {
                    MlsError::Replay(group)
                }
                // framing/validation.rs maps a missing past epoch to a plain
                // AEAD error on one path; tell that apart by the distance.
                MessageDecryptionError::AeadError
                    if cx.message < cx.current
                        && cx.current.0 - cx.message.0 > cx.max_past_epochs =>
                {
                    too_old()
                }
                MessageDecryptionError::LibraryError(e) => e.into(),
                _ => MlsError::Undecryptable(group),
            },
            ValidationError::LibraryError(e) => e.into(),
            other => MlsError::Rejected(other.to_string()),
        },
        other => MlsError::Rejected(other.to_string()),
    }
}
