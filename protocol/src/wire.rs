//! The typed face of `schemas/node.capnp`: [`Request`] and [`Response`] and
//! their byte encodings.
//!
//! Decoding validates everything a peer controls — lengths, key sizes,
//! usernames, limits — so code past this module handles only well-formed
//! values. Decoding never panics on any input (there is a fuzz target for it);
//! a failure is a [`WireError`] whose code says what was wrong.
//!
//! [`calls`] lists every request kind with its typed answer ([`Call`]).

use capnp::message::{Builder, ReaderOptions};
use capnp::serialize;

use crate::errors::{ErrorCode, WireError};
use crate::generated::node_capnp as schema;
use crate::limits::{
    MAX_BLOB_CHUNK_BYTES, MAX_FETCH_LIMIT, MAX_KEY_PACKAGES_PER_UPLOAD, MAX_KEY_PACKAGE_BYTES,
    MAX_OPAQUE_MESSAGE_BYTES, MAX_PAYLOAD_BYTES, MAX_RECIPIENTS, MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES,
};
use crate::mls_framing::MAX_GROUP_ID;
use crate::types::{
    BlobId, ChannelId, IdempotencyKey, IdentityKey, InvalidValue, LoginId, SessionToken, Username,
};

pub mod calls;

pub use calls::{
    Ack, Authenticate, BlobCreate, BlobDownload, BlobFinish, BlobStatus, BlobUpload, Call,
    ChangePasswordFinish, ChangePasswordStart, CreateChannel, DeleteAccount, Enqueue, EnqueueGroup,
    Enqueued, Fetch, FetchKeyPackage, FetchWait, GroupEnqueued, Health, KeyPackage, LoginStarted,
    Logout, OpaqueLoginFinish, OpaqueLoginStart, OpaqueRegisterFinish, OpaqueRegisterStart,
    RegisterGroup, Request, ResolveUser, ServerInfo, Session, UnexpectedResponse,
    UploadKeyPackages,
};

/// The default MLS ciphersuite's code point on the wire (the hybrid
/// [`Ciphersuite`](crate::types::Ciphersuite), the one type for suites).
pub const DEFAULT_SUITE: u16 = crate::types::Ciphersuite::Hybrid.code();
/// The classic suite's code point on the wire.
pub const CLASSIC_SUITE: u16 = crate::types::Ciphersuite::Classic.code();

/// Length of the Ed25519 signature proving possession of the identity key.
pub const IDENTITY_PROOF_LEN: usize = 64;

/// The message signed by the identity key at registration, binding it to the
/// username.
pub fn identity_proof_message(username: &Username) -> Vec<u8> {
    let mut m = b"qpq-register-v1\0".to_vec();
    m.extend_from_slice(username.as_str().as_bytes());
    m
}

/// Whom `fetchKeyPackage` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Username(Username),
    Identity(IdentityKey),
}

/// One recipient of an enqueue and the channel it goes through (`None`: the
/// legacy path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub recipient: IdentityKey,
    pub channel: Option<ChannelId>,
}

/// What a group delivery did for one member: stored under `seq`, or refused
/// for that member alone with `error` (e.g. [`ErrorCode::QueueFull`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberDelivery {
    pub member: IdentityKey,
    pub seq: u64,
    pub error: Option<ErrorCode>,
}

/// The limits a client depends on, as `health` reports them (the server's
/// `protocol::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_payload_bytes: u32,
    pub max_recipients: u32,
    pub max_fetch_limit: u32,
    pub fetch_response_bytes: u32,
    pub max_key_packages_per_upload: u32,
    pub max_group_id_bytes: u32,
}

impl Limits {
    /// This build's limits.
    pub fn current() -> Self {
        Self {
            max_payload_bytes: MAX_PAYLOAD_BYTES as u32,
            max_recipients: MAX_RECIPIENTS as u32,
            max_fetch_limit: MAX_FETCH_LIMIT,
            fetch_response_bytes: crate::limits::FETCH_RESPONSE_BUDGET as u32,
            max_key_packages_per_upload: MAX_KEY_PACKAGES_PER_UPLOAD as u32,
            max_group_id_bytes: MAX_GROUP_ID as u32,
        }
    }
}

/// Where a blob's upload stands (every blob request but download answers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlobState {
    /// Declared ciphertext bytes.
    pub size: u64,
    /// Bytes stored: where an upload resumes.
    pub stored: u64,
    /// Complete and downloadable.
    pub finished: bool,
}

/// A message handed out by `fetch`/`fetchWait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub seq: u64,
    pub channel: Option<ChannelId>,
    pub payload: Vec<u8>,
    pub enqueued_at_ms: u64,
    /// Set on an expiry notice (no channel, empty payload): mail we sent
    /// was deleted unfetched.
    pub expired: Option<Expired>,
}

/// What an expiry notice names: the recipient whose copy of our enqueue
/// expired, and that enqueue's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub recipient: IdentityKey,
    pub idempotency_key: IdempotencyKey,
}

impl Request {
    /// The session token, for requests that need one.
    pub fn auth(&self) -> Option<&SessionToken> {
        match self {
            Request::Logout { auth }
            | Request::UploadKeyPackages { auth, .. }
            | Request::FetchKeyPackage { auth, .. }
            | Request::ResolveUser { auth, .. }
            | Request::CreateChannel { auth, .. }
            | Request::Enqueue { auth, .. }
            | Request::Fetch { auth, .. }
            | Request::FetchWait { auth, .. }
            | Request::Ack { auth, .. }
            | Request::RegisterGroup { auth, .. }
            | Request::EnqueueGroup { auth, .. }
            | Request::ChangePasswordStart { auth, .. }
            | Request::ChangePasswordFinish { auth, .. }
            | Request::DeleteAccount { auth, .. }
            | Request::BlobCreate { auth, .. }
            | Request::BlobUpload { auth, .. }
            | Request::BlobStatus { auth, .. }
            | Request::BlobFinish { auth, .. }
            | Request::BlobDownload { auth, .. }
            | Request::Authenticate { auth } => Some(auth),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Error(WireError),
    Health {
        protocol_version: u32,
        server_version: String,
        server_time_ms: u64,
        /// The server's Ed25519 key as an MLS external sender (empty: none).
        removal_key: Vec<u8>,
        limits: Limits,
    },
    OpaqueRegisterStart {
        response: Vec<u8>,
    },
    OpaqueRegisterFinish,
    OpaqueLoginStart {
        login_id: LoginId,
        response: Vec<u8>,
    },
    OpaqueLoginFinish {
        token: SessionToken,
        expires_at_ms: u64,
        identity_key: IdentityKey,
    },
    Logout,
    UploadKeyPackages {
        available: u32,
    },
    FetchKeyPackage {
        key_package: Vec<u8>,
        identity_key: IdentityKey,
        last_resort: bool,
    },
    ResolveUser {
        identity_key: IdentityKey,
    },
    CreateChannel {
        channel: ChannelId,
    },
    Enqueue {
        duplicate: bool,
        seqs: Vec<u64>,
    },
    Fetch(Vec<Envelope>),
    FetchWait(Vec<Envelope>),
    Ack {
        removed: u32,
    },
    RegisterGroup,
    Authenticate,
    EnqueueGroup {
        duplicate: bool,
        members: Vec<MemberDelivery>,
    },
    ChangePasswordStart {
        response: Vec<u8>,
    },
    ChangePasswordFinish,
    DeleteAccount,
    BlobCreate(BlobState),
    BlobUpload(BlobState),
    BlobStatus(BlobState),
    BlobFinish(BlobState),
    BlobDownload {
        data: Vec<u8>,
    },
}

impl From<WireError> for Response {
    fn from(e: WireError) -> Self {
        Response::Error(e)
    }
}

// ---------------------------------------------------------------- decoding

fn malformed(e: impl std::fmt::Display) -> WireError {
    WireError::new(ErrorCode::Malformed, format!("malformed request: {e}"))
}

impl From<capnp::Error> for WireError {
    fn from(_: capnp::Error) -> Self {
        // capnp's own text names its internals (build features, word
        // offsets); the peer learns only that the bytes do not fit the schema.
        malformed("not a Cap'n Proto message of the qpq schema (docs/src/reference/wire.md)")
    }
}

impl From<capnp::NotInSchema> for WireError {
    fn from(_: capnp::NotInSchema) -> Self {
        WireError::new(
            ErrorCode::Malformed,
            "unknown request kind (is the client newer than this server?)",
        )
    }
}

fn reader_options(max_bytes: usize) -> ReaderOptions {
    let mut o = ReaderOptions::new();
    // Every word may be visited about twice (lists of structs); anything more
    // is an amplification attempt.
    o.traversal_limit_in_words(Some(max_bytes / 4));
    o.nesting_limit(16);
    o
}

/// Reads exactly one message from `bytes`; trailing bytes are an error.
fn read_one(
    bytes: &[u8],
    max: usize,
) -> Result<capnp::message::Reader<serialize::NoAllocSliceSegments<'_>>, WireError> {
    if bytes.len() > max {
        return Err(WireError::new(
            ErrorCode::TooLarge,
            format!(
                "message of {} bytes exceeds the limit of {max}",
                bytes.len()
            ),
        ));
    }
    if bytes.is_empty() {
        return Err(malformed(
            "the stream carried no bytes: write one message, then finish the stream",
        ));
    }
    let mut rest = bytes;
    let msg = serialize::read_message_from_flat_slice_no_alloc(&mut rest, reader_options(max))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(msg)
}

fn text<'a>(
    t: capnp::Result<capnp::text::Reader<'a>>,
    field: &'static str,
) -> Result<&'a str, WireError> {
    t?.to_str()
        .map_err(|_| InvalidValue::new(field, "not valid UTF-8").into())
}

fn username(t: capnp::Result<capnp::text::Reader<'_>>) -> Result<Username, WireError> {
    Ok(Username::parse(text(t, "username")?)?)
}

fn auth(a: capnp::Result<schema::auth::Reader<'_>>) -> Result<SessionToken, WireError> {
    let token = a?.get_token()?;
    SessionToken::from_slice(token).map_err(|_| {
        WireError::new(
            ErrorCode::Unauthenticated,
            "missing or malformed session token; log in first",
        )
    })
}

fn opaque_msg(d: &[u8], field: &'static str) -> Result<Vec<u8>, WireError> {
    if d.is_empty() || d.len() > MAX_OPAQUE_MESSAGE_BYTES {
        return Err(WireError::new(
            ErrorCode::InvalidOpaqueMessage,
            format!("{field}: must be 1..={MAX_OPAQUE_MESSAGE_BYTES} bytes"),
        ));
    }
    Ok(d.to_vec())
}

fn clamp_limit(limit: u32) -> u32 {
    if limit == 0 {
        MAX_FETCH_LIMIT
    } else {
        limit.min(MAX_FETCH_LIMIT)
    }
}

/// Decodes a request as the server receives it.
pub fn decode_request(bytes: &[u8]) -> Result<Request, WireError> {
    use schema::request::Which as W;
    let msg = read_one(bytes, MAX_REQUEST_BYTES)?;
    let root: schema::request::Reader = msg.get_root()?;
    Ok(match root.which()? {
        W::Health(()) => Request::Health,
        W::OpaqueRegisterStart(r) => {
            let r = r?;
            Request::OpaqueRegisterStart {
                username: username(r.get_username())?,
                request: opaque_msg(r.get_request()?, "request")?,
            }
        }
        W::OpaqueRegisterFinish(r) => {
            let r = r?;
            let proof = r.get_identity_proof()?;
            Request::OpaqueRegisterFinish {
                username: username(r.get_username())?,
                upload: opaque_msg(r.get_upload()?, "upload")?,
                identity_key: IdentityKey::from_slice(r.get_identity_key()?)?,
                identity_proof: proof.try_into().map_err(|_| {
                    WireError::new(
                        ErrorCode::BadIdentityProof,
                        format!("identity proof must be {IDENTITY_PROOF_LEN} bytes"),
                    )
                })?,
            }
        }
        W::OpaqueLoginStart(r) => {
            let r = r?;
            Request::OpaqueLoginStart {
                username: username(r.get_username())?,
                request: opaque_msg(r.get_request()?, "request")?,
            }
        }
        W::OpaqueLoginFinish(r) => {
            let r = r?;
            Request::OpaqueLoginFinish {
                // A wrong-sized id is malformed (E002) like every other
                // wrong-sized field; E015 is for a well-formed unknown one.
                login_id: LoginId::from_slice(r.get_login_id()?)?,
                finalization: opaque_msg(r.get_finalization()?, "finalization")?,
            }
        }
        W::Logout(r) => Request::Logout {
            auth: auth(r?.get_auth())?,
        },
        W::Authenticate(r) => Request::Authenticate {
            auth: auth(r?.get_auth())?,
        },
        W::UploadKeyPackages(r) => {
            let r = r?;
            let auth = auth(r.get_auth())?;
            let list = r.get_packages()?;
            if list.len() as usize > MAX_KEY_PACKAGES_PER_UPLOAD {
                return Err(WireError::new(
                    ErrorCode::TooManyKeyPackages,
                    format!("at most {MAX_KEY_PACKAGES_PER_UPLOAD} key packages per upload"),
                ));
            }
            let mut packages = Vec::with_capacity(list.len() as usize);
            for p in list.iter() {
                packages.push(key_package(p?)?);
            }
            let lr = r.get_last_resort()?;
            let last_resort = if lr.is_empty() {
                None
            } else {
                Some(key_package(lr)?)
            };
            if packages.is_empty() && last_resort.is_none() {
                return Err(malformed("uploadKeyPackages: no key packages"));
            }
            Request::UploadKeyPackages {
                auth,
                packages,
                last_resort,
            }
        }
        W::FetchKeyPackage(r) => {
            let r = r?;
            use schema::fetch_key_package::Which as T;
            let target = match r.which()? {
                T::Username(u) => UserRef::Username(username(u)?),
                T::IdentityKey(k) => UserRef::Identity(IdentityKey::from_slice(k?)?),
            };
            Request::FetchKeyPackage {
                auth: auth(r.get_auth())?,
                target,
                suite: match r.get_suite() {
                    0 => DEFAULT_SUITE,
                    s => s,
                },
            }
        }
        W::ResolveUser(r) => {
            let r = r?;
            Request::ResolveUser {
                auth: auth(r.get_auth())?,
                username: username(r.get_username())?,
            }
        }
        W::CreateChannel(r) => {
            let r = r?;
            Request::CreateChannel {
                auth: auth(r.get_auth())?,
                peer: IdentityKey::from_slice(r.get_peer_key()?)?,
            }
        }
        W::Enqueue(r) => {
            let r = r?;
            let auth = auth(r.get_auth())?;
            let list = r.get_deliveries()?;
            if list.len() as usize > MAX_RECIPIENTS {
                return Err(WireError::new(
                    ErrorCode::TooManyRecipients,
                    format!("at most {MAX_RECIPIENTS} recipients per enqueue"),
                ));
            }
            let mut deliveries = Vec::with_capacity(list.len() as usize);
            for d in list.iter() {
                deliveries.push(Delivery {
                    recipient: IdentityKey::from_slice(d.get_recipient()?)?,
                    channel: ChannelId::from_optional(d.get_channel_id()?)?,
                });
            }
            Request::Enqueue {
                auth,
                deliveries,
                payload: payload(r.get_payload()?)?,
                idempotency_key: IdempotencyKey::from_slice(r.get_idempotency_key()?)?,
            }
        }
        W::Fetch(r) => {
            let r = r?;
            Request::Fetch {
                auth: auth(r.get_auth())?,
                channel: ChannelId::from_optional(r.get_channel_id()?)?,
                limit: clamp_limit(r.get_limit()),
            }
        }
        W::FetchWait(r) => {
            let r = r?;
            Request::FetchWait {
                auth: auth(r.get_auth())?,
                channel: ChannelId::from_optional(r.get_channel_id()?)?,
                limit: clamp_limit(r.get_limit()),
                timeout_ms: r.get_timeout_ms(),
            }
        }
        W::Ack(r) => {
            let r = r?;
            let list = r.get_seqs()?;
            if list.len() > MAX_FETCH_LIMIT {
                return Err(malformed(format!(
                    "ack: at most {MAX_FETCH_LIMIT} sequence numbers"
                )));
            }
            Request::Ack {
                auth: auth(r.get_auth())?,
                seqs: list.iter().collect(),
            }
        }
        W::RegisterGroup(r) => {
            let r = r?;
            Request::RegisterGroup {
                auth: auth(r.get_auth())?,
                group_info: required(payload(r.get_group_info()?)?, "groupInfo")?,
            }
        }
        W::EnqueueGroup(r) => {
            let r = r?;
            Request::EnqueueGroup {
                auth: auth(r.get_auth())?,
                group: group_id(r.get_group()?)?,
                payload: required(payload(r.get_payload()?)?, "payload")?,
                idempotency_key: IdempotencyKey::from_slice(r.get_idempotency_key()?)?,
                group_info: optional(payload(r.get_group_info()?)?),
                welcome: optional(payload(r.get_welcome()?)?),
            }
        }
        W::ChangePasswordStart(r) => {
            let r = r?;
            Request::ChangePasswordStart {
                auth: auth(r.get_auth())?,
                request: opaque_msg(r.get_request()?, "request")?,
            }
        }
        W::ChangePasswordFinish(r) => {
            let r = r?;
            Request::ChangePasswordFinish {
                auth: auth(r.get_auth())?,
                upload: opaque_msg(r.get_upload()?, "upload")?,
                login_id: LoginId::from_slice(r.get_login_id()?)?,
                finalization: opaque_msg(r.get_finalization()?, "finalization")?,
            }
        }
        W::DeleteAccount(r) => {
            let r = r?;
            Request::DeleteAccount {
                auth: auth(r.get_auth())?,
                login_id: LoginId::from_slice(r.get_login_id()?)?,
                finalization: opaque_msg(r.get_finalization()?, "finalization")?,
            }
        }
        W::BlobCreate(r) => {
            let r = r?;
            Request::BlobCreate {
                auth: auth(r.get_auth())?,
                blob: BlobId::from_slice(r.get_blob_id()?)?,
                group: group_id(r.get_group()?)?,
                size: r.get_size(),
            }
        }
        W::BlobUpload(r) => {
            let r = r?;
            let data = r.get_data()?;
            if data.is_empty() || data.len() > MAX_BLOB_CHUNK_BYTES {
                return Err(WireError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "blobUpload carries 1 to {MAX_BLOB_CHUNK_BYTES} bytes, not {}",
                        data.len()
                    ),
                ));
            }
            Request::BlobUpload {
                auth: auth(r.get_auth())?,
                blob: BlobId::from_slice(r.get_blob_id()?)?,
                offset: r.get_offset(),
                data: data.to_vec(),
            }
        }
        W::BlobStatus(r) => {
            let r = r?;
            Request::BlobStatus {
                auth: auth(r.get_auth())?,
                blob: BlobId::from_slice(r.get_blob_id()?)?,
            }
        }
        W::BlobFinish(r) => {
            let r = r?;
            Request::BlobFinish {
                auth: auth(r.get_auth())?,
                blob: BlobId::from_slice(r.get_blob_id()?)?,
            }
        }
        W::BlobDownload(r) => {
            let r = r?;
            Request::BlobDownload {
                auth: auth(r.get_auth())?,
                blob: BlobId::from_slice(r.get_blob_id()?)?,
                offset: r.get_offset(),
                length: r.get_length().min(MAX_BLOB_CHUNK_BYTES as u32),
            }
        }
    })
}

/// A payload-sized field: at most `MAX_PAYLOAD_BYTES` (E030).
fn payload(d: &[u8]) -> Result<Vec<u8>, WireError> {
    if d.len() > MAX_PAYLOAD_BYTES {
        return Err(WireError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "payload of {} bytes exceeds the limit of {MAX_PAYLOAD_BYTES}",
                d.len()
            ),
        ));
    }
    Ok(d.to_vec())
}

fn required(d: Vec<u8>, field: &'static str) -> Result<Vec<u8>, WireError> {
    if d.is_empty() {
        return Err(malformed(format!("{field} is empty")));
    }
    Ok(d)
}

fn optional(d: Vec<u8>) -> Option<Vec<u8>> {
    (!d.is_empty()).then_some(d)
}

/// An MLS group id: 1 to `MAX_GROUP_ID` bytes (RFC 9420 sets no bound; this
/// is the documented one).
fn group_id(d: &[u8]) -> Result<Vec<u8>, WireError> {
    if d.is_empty() || d.len() > MAX_GROUP_ID {
        return Err(malformed(format!(
            "group id must be 1 to {MAX_GROUP_ID} bytes, not {}",
            d.len()
        )));
    }
    Ok(d.to_vec())
}

fn key_package(d: &[u8]) -> Result<Vec<u8>, WireError> {
    if d.is_empty() {
        return Err(malformed("empty key package"));
    }
    if d.len() > MAX_KEY_PACKAGE_BYTES {
        return Err(WireError::new(
            ErrorCode::KeyPackageTooLarge,
            format!("a key package is at most {MAX_KEY_PACKAGE_BYTES} bytes"),
        ));
    }
    Ok(d.to_vec())
}

fn envelopes(
    list: capnp::struct_list::Reader<'_, schema::envelope::Owned>,
) -> Result<Vec<Envelope>, WireError> {
    let mut out = Vec::with_capacity(list.len() as usize);
    for e in list.iter() {
        let (for_, key) = (e.get_expired_for()?, e.get_expired_key()?);
        let expired = if for_.is_empty() && key.is_empty() {
            None
        } else {
            Some(Expired {
                recipient: IdentityKey::from_slice(for_)?,
                idempotency_key: IdempotencyKey::from_slice(key)?,
            })
        };
        out.push(Envelope {
            seq: e.get_seq(),
            channel: ChannelId::from_optional(e.get_channel_id()?)?,
            payload: e.get_payload()?.to_vec(),
            enqueued_at_ms: e.get_enqueued_at_ms(),
            expired,
        });
    }
    Ok(out)
}

/// Decodes a response as the client receives it.
pub fn decode_response(bytes: &[u8]) -> Result<Response, WireError> {
    use schema::response::Which as W;
    let msg = read_one(bytes, MAX_RESPONSE_BYTES)?;
    let root: schema::response::Reader = msg.get_root()?;
    Ok(match root.which()? {
        W::Error(e) => {
            let e = e?;
            let message = text(e.get_message(), "message")?.to_owned();
            let n = e.get_code();
            let err = match ErrorCode::from_u16(n) {
                Some(code) => WireError {
                    code,
                    message,
                    retry_after_ms: e.get_retry_after_ms(),
                },
                None => WireError::new(ErrorCode::Internal, format!("E{n:03}: {message}")),
            };
            Response::Error(err)
        }
        W::Health(h) => {
            let h = h?;
            let l = h.get_limits()?;
            Response::Health {
                protocol_version: h.get_protocol_version(),
                server_version: text(h.get_server_version(), "serverVersion")?.to_owned(),
                server_time_ms: h.get_server_time_ms(),
                removal_key: h.get_removal_key()?.to_vec(),
                limits: Limits {
                    max_payload_bytes: l.get_max_payload_bytes(),
                    max_recipients: l.get_max_recipients(),
                    max_fetch_limit: l.get_max_fetch_limit(),
                    fetch_response_bytes: l.get_fetch_response_bytes(),
                    max_key_packages_per_upload: l.get_max_key_packages_per_upload(),
                    max_group_id_bytes: l.get_max_group_id_bytes(),
                },
            }
        }
        W::OpaqueRegisterStart(d) => Response::OpaqueRegisterStart {
            response: d?.to_vec(),
        },
        W::OpaqueRegisterFinish(()) => Response::OpaqueRegisterFinish,
        W::OpaqueLoginStart(r) => {
            let r = r?;
            Response::OpaqueLoginStart {
                login_id: LoginId::from_slice(r.get_login_id()?)?,
                response: r.get_response()?.to_vec(),
            }
        }
        W::OpaqueLoginFinish(r) => {
            let r = r?;
            Response::OpaqueLoginFinish {
                token: SessionToken::from_slice(r.get_token()?)?,
                expires_at_ms: r.get_expires_at_ms(),
                identity_key: IdentityKey::from_slice(r.get_identity_key()?)?,
            }
        }
        W::Logout(()) => Response::Logout,
        W::Authenticate(()) => Response::Authenticate,
        W::UploadKeyPackages(r) => Response::UploadKeyPackages {
            available: r?.get_available(),
        },
        W::FetchKeyPackage(r) => {
            let r = r?;
            Response::FetchKeyPackage {
                key_package: r.get_key_package()?.to_vec(),
                identity_key: IdentityKey::from_slice(r.get_identity_key()?)?,
                last_resort: r.get_last_resort(),
            }
        }
        W::ResolveUser(r) => Response::ResolveUser {
            identity_key: IdentityKey::from_slice(r?.get_identity_key()?)?,
        },
        W::CreateChannel(r) => Response::CreateChannel {
            channel: ChannelId::from_slice(r?.get_channel_id()?)?,
        },
        W::Enqueue(r) => {
            let r = r?;
            Response::Enqueue {
                duplicate: r.get_duplicate(),
                seqs: r.get_seqs()?.iter().collect(),
            }
        }
        W::Fetch(m) => Response::Fetch(envelopes(m?.get_messages()?)?),
        W::FetchWait(m) => Response::FetchWait(envelopes(m?.get_messages()?)?),
        W::Ack(r) => Response::Ack {
            removed: r?.get_removed(),
        },
        W::RegisterGroup(()) => Response::RegisterGroup,
        W::EnqueueGroup(r) => {
            let r = r?;
            let mut members = Vec::new();
            for m in r.get_members()?.iter() {
                members.push(MemberDelivery {
                    member: IdentityKey::from_slice(m.get_member()?)?,
                    seq: m.get_seq(),
                    error: match m.get_error() {
                        0 => None,
                        n => Some(ErrorCode::from_u16(n).unwrap_or(ErrorCode::Internal)),
                    },
                });
            }
            Response::EnqueueGroup {
                duplicate: r.get_duplicate(),
                members,
            }
        }
        W::ChangePasswordStart(d) => Response::ChangePasswordStart {
            response: d?.to_vec(),
        },
        W::ChangePasswordFinish(()) => Response::ChangePasswordFinish,
        W::DeleteAccount(()) => Response::DeleteAccount,
        W::BlobCreate(r) => Response::BlobCreate(blob_state(r?)),
        W::BlobUpload(r) => Response::BlobUpload(blob_state(r?)),
        W::BlobStatus(r) => Response::BlobStatus(blob_state(r?)),
        W::BlobFinish(r) => Response::BlobFinish(blob_state(r?)),
        W::BlobDownload(d) => Response::BlobDownload { data: d?.to_vec() },
    })
}

fn blob_state(r: schema::blob_state::Reader<'_>) -> BlobState {
    BlobState {
        size: r.get_size(),
        stored: r.get_stored(),
        finished: r.get_finished(),
    }
}

fn set_blob_state(mut b: schema::blob_state::Builder<'_>, s: &BlobState) {
    b.set_size(s.size);
    b.set_stored(s.stored);
    b.set_finished(s.finished);
}

// ---------------------------------------------------------------- encoding

fn set_auth(mut b: schema::auth::Builder<'_>, token: &SessionToken) {
    b.set_token(token.expose());
}

/// Encodes a request as the client sends it.
pub fn encode_request(req: &Request) -> Vec<u8> {
    let mut msg = Builder::new_default();
    let mut root = msg.init_root::<schema::request::Builder>();
    match req {
        Request::Health => root.set_health(()),
        Request::OpaqueRegisterStart { username, request } => {
            let mut b = root.init_opaque_register_start();
            b.set_username(username.as_str());
            b.set_request(request);
        }
        Request::OpaqueRegisterFinish {
            username,
            upload,
            identity_key,
            identity_proof,
        } => {
            let mut b = root.init_opaque_register_finish();
            b.set_username(username.as_str());
            b.set_upload(upload);
            b.set_identity_key(identity_key.as_bytes());
            b.set_identity_proof(identity_proof);
        }
        Request::OpaqueLoginStart { username, request } => {
            let mut b = root.init_opaque_login_start();
            b.set_username(username.as_str());
            b.set_request(request);
        }
        Request::OpaqueLoginFinish {
            login_id,
            finalization,
        } => {
            let mut b = root.init_opaque_login_finish();
            b.set_login_id(login_id.as_bytes());
            b.set_finalization(finalization);
        }
        Request::Logout { auth } => set_auth(root.init_logout().init_auth(), auth),
        Request::Authenticate { auth } => set_auth(root.init_authenticate().init_auth(), auth),
        Request::UploadKeyPackages {
            auth,
            packages,
            last_resort,
        } => {
            let mut b = root.init_upload_key_packages();
            set_auth(b.reborrow().init_auth(), auth);
            let mut list = b.reborrow().init_packages(packages.len() as u32);
            for (i, p) in packages.iter().enumerate() {
                list.set(i as u32, p);
            }
            if let Some(lr) = last_resort {
                b.set_last_resort(lr);
            }
        }
        Request::FetchKeyPackage {
            auth,
            target,
            suite,
        } => {
            let mut b = root.init_fetch_key_package();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_suite(*suite);
            match target {
                UserRef::Username(u) => b.set_username(u.as_str()),
                UserRef::Identity(k) => b.set_identity_key(k.as_bytes()),
            }
        }
        Request::ResolveUser { auth, username } => {
            let mut b = root.init_resolve_user();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_username(username.as_str());
        }
        Request::CreateChannel { auth, peer } => {
            let mut b = root.init_create_channel();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_peer_key(peer.as_bytes());
        }
        Request::Enqueue {
            auth,
            deliveries,
            payload,
            idempotency_key,
        } => {
            let mut b = root.init_enqueue();
            set_auth(b.reborrow().init_auth(), auth);
            let mut list = b.reborrow().init_deliveries(deliveries.len() as u32);
            for (i, d) in deliveries.iter().enumerate() {
                let mut e = list.reborrow().get(i as u32);
                e.set_recipient(d.recipient.as_bytes());
                if let Some(c) = d.channel {
                    e.set_channel_id(c.as_bytes());
                }
            }
            b.set_payload(payload);
            b.set_idempotency_key(idempotency_key.as_bytes());
        }
        Request::Fetch {
            auth,
            channel,
            limit,
        } => {
            let mut b = root.init_fetch();
            set_auth(b.reborrow().init_auth(), auth);
            if let Some(c) = channel {
                b.set_channel_id(c.as_bytes());
            }
            b.set_limit(*limit);
        }
        Request::FetchWait {
            auth,
            channel,
            limit,
            timeout_ms,
        } => {
            let mut b = root.init_fetch_wait();
            set_auth(b.reborrow().init_auth(), auth);
            if let Some(c) = channel {
                b.set_channel_id(c.as_bytes());
            }
            b.set_limit(*limit);
            b.set_timeout_ms(*timeout_ms);
        }
        Request::Ack { auth, seqs } => {
            let mut b = root.init_ack();
            set_auth(b.reborrow().init_auth(), auth);
            let mut list = b.init_seqs(seqs.len() as u32);
            for (i, s) in seqs.iter().enumerate() {
                list.set(i as u32, *s);
            }
        }
        Request::RegisterGroup { auth, group_info } => {
            let mut b = root.init_register_group();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_group_info(group_info);
        }
        Request::EnqueueGroup {
            auth,
            group,
            payload,
            idempotency_key,
            group_info,
            welcome,
        } => {
            let mut b = root.init_enqueue_group();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_group(group);
            b.set_payload(payload);
            b.set_idempotency_key(idempotency_key.as_bytes());
            if let Some(gi) = group_info {
                b.set_group_info(gi);
            }
            if let Some(w) = welcome {
                b.set_welcome(w);
            }
        }
        Request::ChangePasswordStart { auth, request } => {
            let mut b = root.init_change_password_start();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_request(request);
        }
        Request::ChangePasswordFinish {
            auth,
            upload,
            login_id,
            finalization,
        } => {
            let mut b = root.init_change_password_finish();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_upload(upload);
            b.set_login_id(login_id.as_bytes());
            b.set_finalization(finalization);
        }
        Request::DeleteAccount {
            auth,
            login_id,
            finalization,
        } => {
            let mut b = root.init_delete_account();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_login_id(login_id.as_bytes());
            b.set_finalization(finalization);
        }
        Request::BlobCreate {
            auth,
            blob,
            group,
            size,
        } => {
            let mut b = root.init_blob_create();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_blob_id(blob.as_bytes());
            b.set_group(group);
            b.set_size(*size);
        }
        Request::BlobUpload {
            auth,
            blob,
            offset,
            data,
        } => {
            let mut b = root.init_blob_upload();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_blob_id(blob.as_bytes());
            b.set_offset(*offset);
            b.set_data(data);
        }
        Request::BlobStatus { auth, blob } => {
            let mut b = root.init_blob_status();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_blob_id(blob.as_bytes());
        }
        Request::BlobFinish { auth, blob } => {
            let mut b = root.init_blob_finish();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_blob_id(blob.as_bytes());
        }
        Request::BlobDownload {
            auth,
            blob,
            offset,
            length,
        } => {
            let mut b = root.init_blob_download();
            set_auth(b.reborrow().init_auth(), auth);
            b.set_blob_id(blob.as_bytes());
            b.set_offset(*offset);
            b.set_length(*length);
        }
    }
    serialize::write_message_to_words(&msg)
}

fn set_envelopes(b: schema::mail::Builder<'_>, list: &[Envelope]) {
    let mut l = b.init_messages(list.len() as u32);
    for (i, m) in list.iter().enumerate() {
        let mut e = l.reborrow().get(i as u32);
        e.set_seq(m.seq);
        if let Some(c) = m.channel {
            e.set_channel_id(c.as_bytes());
        }
        e.set_payload(&m.payload);
        e.set_enqueued_at_ms(m.enqueued_at_ms);
        if let Some(x) = m.expired {
            e.set_expired_for(&x.recipient.0);
            e.set_expired_key(&x.idempotency_key.0);
        }
    }
}

/// Encodes a response as the server sends it.
pub fn encode_response(resp: &Response) -> Vec<u8> {
    let mut msg = Builder::new_default();
    let mut root = msg.init_root::<schema::response::Builder>();
    match resp {
        Response::Error(e) => {
            let mut b = root.init_error();
            b.set_code(e.code.as_u16());
            b.set_message(e.message.as_str());
            b.set_retry_after_ms(e.retry_after_ms);
        }
        Response::Health {
            protocol_version,
            server_version,
            server_time_ms,
            removal_key,
            limits,
        } => {
            let mut b = root.init_health();
            b.set_protocol_version(*protocol_version);
            b.set_server_version(server_version.as_str());
            b.set_server_time_ms(*server_time_ms);
            b.set_removal_key(removal_key);
            let mut l = b.init_limits();
            l.set_max_payload_bytes(limits.max_payload_bytes);
            l.set_max_recipients(limits.max_recipients);
            l.set_max_fetch_limit(limits.max_fetch_limit);
            l.set_fetch_response_bytes(limits.fetch_response_bytes);
            l.set_max_key_packages_per_upload(limits.max_key_packages_per_upload);
            l.set_max_group_id_bytes(limits.max_group_id_bytes);
        }
        Response::OpaqueRegisterStart { response } => root.set_opaque_register_start(response),
        Response::OpaqueRegisterFinish => root.set_opaque_register_finish(()),
        Response::OpaqueLoginStart { login_id, response } => {
            let mut b = root.init_opaque_login_start();
            b.set_login_id(login_id.as_bytes());
            b.set_response(response);
        }
        Response::OpaqueLoginFinish {
            token,
            expires_at_ms,
            identity_key,
        } => {
            let mut b = root.init_opaque_login_finish();
            b.set_token(token.expose());
            b.set_expires_at_ms(*expires_at_ms);
            b.set_identity_key(identity_key.as_bytes());
        }
        Response::Logout => root.set_logout(()),
        Response::Authenticate => root.set_authenticate(()),
        Response::UploadKeyPackages { available } => {
            root.init_upload_key_packages().set_available(*available)
        }
        Response::FetchKeyPackage {
            key_package,
            identity_key,
            last_resort,
        } => {
            let mut b = root.init_fetch_key_package();
            b.set_key_package(key_package);
            b.set_identity_key(identity_key.as_bytes());
            b.set_last_resort(*last_resort);
        }
        Response::ResolveUser { identity_key } => root
            .init_resolve_user()
            .set_identity_key(identity_key.as_bytes()),
        Response::CreateChannel { channel } => root
            .init_create_channel()
            .set_channel_id(channel.as_bytes()),
        Response::Enqueue { duplicate, seqs } => {
            let mut b = root.init_enqueue();
            b.set_duplicate(*duplicate);
            let mut l = b.init_seqs(seqs.len() as u32);
            for (i, s) in seqs.iter().enumerate() {
                l.set(i as u32, *s);
            }
        }
        Response::Fetch(list) => set_envelopes(root.init_fetch(), list),
        Response::FetchWait(list) => set_envelopes(root.init_fetch_wait(), list),
        Response::Ack { removed } => root.init_ack().set_removed(*removed),
        Response::RegisterGroup => root.set_register_group(()),
        Response::EnqueueGroup { duplicate, members } => {
            let mut b = root.init_enqueue_group();
            b.set_duplicate(*duplicate);
            let mut l = b.init_members(members.len() as u32);
            for (i, m) in members.iter().enumerate() {
                let mut e = l.reborrow().get(i as u32);
                e.set_member(m.member.as_bytes());
                e.set_seq(m.seq);
                e.set_error(m.error.map_or(0, ErrorCode::as_u16));
            }
        }
        Response::ChangePasswordStart { response } => root.set_change_password_start(response),
        Response::ChangePasswordFinish => root.set_change_password_finish(()),
        Response::DeleteAccount => root.set_delete_account(()),
        Response::BlobCreate(s) => set_blob_state(root.init_blob_create(), s),
        Response::BlobUpload(s) => set_blob_state(root.init_blob_upload(), s),
        Response::BlobStatus(s) => set_blob_state(root.init_blob_status(), s),
        Response::BlobFinish(s) => set_blob_state(root.init_blob_finish(), s),
        Response::BlobDownload { data } => root.set_blob_download(data),
    }
    serialize::write_message_to_words(&msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SessionToken {
        SessionToken::from_slice(&[9; 32]).unwrap()
    }

    pub(super) fn sample_requests() -> Vec<Request> {
        let u = Username::parse("alice").unwrap();
        let k = IdentityKey([3; 32]);
        let c = ChannelId([4; 16]);
        vec![
            Request::Health,
            Request::OpaqueRegisterStart {
                username: u.clone(),
                request: vec![1; 32],
            },
            Request::OpaqueRegisterFinish {
                username: u.clone(),
                upload: vec![2; 100],
                identity_key: k,
                identity_proof: [5; 64],
            },
            Request::OpaqueLoginStart {
                username: u.clone(),
                request: vec![1; 96],
            },
            Request::OpaqueLoginFinish {
                login_id: LoginId([6; 16]),
                finalization: vec![7; 64],
            },
            Request::Logout { auth: token() },
            Request::UploadKeyPackages {
                auth: token(),
                packages: vec![vec![1; 10], vec![2; 20]],
                last_resort: Some(vec![3; 30]),
            },
            Request::UploadKeyPackages {
                auth: token(),
                packages: vec![vec![1; 10]],
                last_resort: None,
            },
            Request::FetchKeyPackage {
                auth: token(),
                target: UserRef::Username(u.clone()),
                suite: DEFAULT_SUITE,
            },
            Request::FetchKeyPackage {
                auth: token(),
                target: UserRef::Identity(k),
                suite: CLASSIC_SUITE,
            },
            Request::ResolveUser {
                auth: token(),
                username: u,
            },
            Request::CreateChannel {
                auth: token(),
                peer: k,
            },
            Request::Enqueue {
                auth: token(),
                deliveries: vec![
                    Delivery {
                        recipient: k,
                        channel: Some(c),
                    },
                    Delivery {
                        recipient: IdentityKey([8; 32]),
                        channel: None,
                    },
                ],
                payload: vec![0xab; 512],
                idempotency_key: IdempotencyKey([1; 16]),
            },
            Request::Fetch {
                auth: token(),
                channel: Some(c),
                limit: 10,
            },
            Request::FetchWait {
                auth: token(),
                channel: None,
                limit: 500,
                timeout_ms: 1000,
            },
            Request::Ack {
                auth: token(),
                seqs: vec![1, 2, 99],
            },
            Request::RegisterGroup {
                auth: token(),
                group_info: vec![0, 1, 0, 4, 9],
            },
            Request::EnqueueGroup {
                auth: token(),
                group: vec![0x42; 32],
                payload: vec![0xab; 512],
                idempotency_key: IdempotencyKey([2; 16]),
                group_info: Some(vec![7; 40]),
                welcome: None,
            },
            Request::EnqueueGroup {
                auth: token(),
                group: vec![0x42; 16],
                payload: vec![0xab; 64],
                idempotency_key: IdempotencyKey([3; 16]),
                group_info: None,
                welcome: Some(vec![5; 80]),
            },
            Request::Authenticate { auth: token() },
            Request::ChangePasswordStart {
                auth: token(),
                request: vec![1; 32],
            },
            Request::ChangePasswordFinish {
                auth: token(),
                upload: vec![2; 100],
                login_id: LoginId([6; 16]),
                finalization: vec![7; 64],
            },
            Request::DeleteAccount {
                auth: token(),
                login_id: LoginId([6; 16]),
                finalization: vec![7; 64],
            },
            Request::BlobCreate {
                auth: token(),
                blob: BlobId([1; 16]),
                group: b"g".to_vec(),
                size: 1 << 30,
            },
            Request::BlobUpload {
                auth: token(),
                blob: BlobId([1; 16]),
                offset: 65552,
                data: vec![8; 100],
            },
            Request::BlobStatus {
                auth: token(),
                blob: BlobId([1; 16]),
            },
            Request::BlobFinish {
                auth: token(),
                blob: BlobId([1; 16]),
            },
            Request::BlobDownload {
                auth: token(),
                blob: BlobId([1; 16]),
                offset: 3,
                length: 4096,
            },
        ]
    }

    #[test]
    fn every_request_round_trips() {
        for req in sample_requests() {
            let bytes = encode_request(&req);
            assert_eq!(decode_request(&bytes).unwrap(), req, "{}", req.kind());
        }
    }

    #[test]
    fn every_response_round_trips() {
        for r in sample_responses() {
            assert_eq!(decode_response(&encode_response(&r)).unwrap(), r);
        }
    }

    /// One response of every kind.
    fn sample_responses() -> Vec<Response> {
        let env = Envelope {
            seq: 7,
            channel: Some(ChannelId([1; 16])),
            payload: vec![1, 2, 3],
            enqueued_at_ms: 1234,
            expired: None,
        };
        vec![
            Response::Error(WireError::rate_limited(250)),
            Response::Health {
                protocol_version: 2,
                server_version: "0.1.0".into(),
                server_time_ms: 1_700_000_000_000,
                removal_key: vec![4; 32],
                limits: Limits::current(),
            },
            Response::OpaqueRegisterStart { response: vec![1] },
            Response::OpaqueRegisterFinish,
            Response::OpaqueLoginStart {
                login_id: LoginId([1; 16]),
                response: vec![2; 10],
            },
            Response::OpaqueLoginFinish {
                token: token(),
                expires_at_ms: 99,
                identity_key: IdentityKey([2; 32]),
            },
            Response::Logout,
            Response::UploadKeyPackages { available: 3 },
            Response::FetchKeyPackage {
                key_package: vec![1],
                identity_key: IdentityKey([2; 32]),
                last_resort: true,
            },
            Response::ResolveUser {
                identity_key: IdentityKey([2; 32]),
            },
            Response::CreateChannel {
                channel: ChannelId([5; 16]),
            },
            Response::Enqueue {
                duplicate: false,
                seqs: vec![1, 2],
            },
            Response::Fetch(vec![env.clone()]),
            Response::FetchWait(vec![
                env,
                Envelope {
                    seq: 8,
                    channel: None,
                    payload: vec![],
                    enqueued_at_ms: 0,
                    expired: Some(Expired {
                        recipient: IdentityKey([9; 32]),
                        idempotency_key: IdempotencyKey([8; 16]),
                    }),
                },
            ]),
            Response::Ack { removed: 2 },
            Response::RegisterGroup,
            Response::EnqueueGroup {
                duplicate: false,
                members: vec![
                    MemberDelivery {
                        member: IdentityKey([1; 32]),
                        seq: 9,
                        error: None,
                    },
                    MemberDelivery {
                        member: IdentityKey([2; 32]),
                        seq: 0,
                        error: Some(ErrorCode::QueueFull),
                    },
                ],
            },
            Response::Authenticate,
            Response::ChangePasswordStart {
                response: vec![3; 64],
            },
            Response::ChangePasswordFinish,
            Response::DeleteAccount,
            Response::BlobCreate(BlobState::default()),
            Response::BlobUpload(BlobState {
                size: 10,
                stored: 5,
                finished: false,
            }),
            Response::BlobStatus(BlobState {
                size: 10,
                stored: 10,
                finished: true,
            }),
            Response::BlobFinish(BlobState {
                size: 0,
                stored: 0,
                finished: true,
            }),
            Response::BlobDownload {
                data: vec![1, 2, 3],
            },
        ]
    }

    #[test]
    fn blob_chunks_are_bounded() {
        let upload = |n: usize| Request::BlobUpload {
            auth: token(),
            blob: BlobId([1; 16]),
            offset: 0,
            data: vec![0; n],
        };
        for n in [0, MAX_BLOB_CHUNK_BYTES + 1] {
            let e = decode_request(&encode_request(&upload(n))).unwrap_err();
            assert_eq!(e.code, ErrorCode::TooLarge, "{n} bytes");
        }
        assert!(decode_request(&encode_request(&upload(MAX_BLOB_CHUNK_BYTES))).is_ok());
        let download = Request::BlobDownload {
            auth: token(),
            blob: BlobId([1; 16]),
            offset: 0,
            length: u32::MAX,
        };
        let Request::BlobDownload { length, .. } =
            decode_request(&encode_request(&download)).unwrap()
        else {
            panic!("a download")
        };
        assert_eq!(
            length as usize, MAX_BLOB_CHUNK_BYTES,
            "a download is cut to a chunk"
        );
    }

    #[test]
    fn truncated_and_garbage_input_is_malformed_not_a_panic() {
        for req in sample_requests() {
            let bytes = encode_request(&req);
            for cut in [0, 1, 4, 8, bytes.len() / 2, bytes.len() - 1] {
                let e = decode_request(&bytes[..cut]).unwrap_err();
                assert_eq!(e.code, ErrorCode::Malformed, "{} cut at {cut}", req.kind());
            }
        }
        let e = decode_request(b"\xff\xff\xff\xffGARBAGE GARBAGE").unwrap_err();
        assert_eq!(e.code, ErrorCode::Malformed);
        let mut extra = encode_request(&Request::Health);
        extra.extend_from_slice(&[0; 8]);
        let e = decode_request(&extra).unwrap_err();
        assert!(e.message.contains("trailing"), "{e}");
    }

    #[test]
    fn a_response_is_not_a_request() {
        // Cap'n Proto carries no root type: a response read as a request is
        // whatever its union tag and pointers spell. A tag past the request
        // union is an unknown kind; some tags line up with a request (an
        // `Error` reads as `health`). Either way nothing half-read comes out:
        // an error, or a request that re-encodes to itself.
        // The response's tag must be past the request union's last member.
        let past = Response::BlobDownload { data: vec![1] };
        let e = decode_request(&encode_response(&past)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Malformed);
        assert!(e.message.contains("unknown request kind"), "{e}");
        for r in sample_responses() {
            if let Ok(req) = decode_request(&encode_response(&r)) {
                let again = decode_request(&encode_request(&req));
                assert_eq!(again.as_ref(), Ok(&req), "{r:?} read as {req:?}");
            }
        }
    }

    #[test]
    fn limits_have_their_own_codes() {
        let too_many = Request::Enqueue {
            auth: token(),
            deliveries: vec![
                Delivery {
                    recipient: IdentityKey([1; 32]),
                    channel: None
                };
                MAX_RECIPIENTS + 1
            ],
            payload: vec![1],
            idempotency_key: IdempotencyKey([1; 16]),
        };
        let e = decode_request(&encode_request(&too_many)).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooManyRecipients);

        let big = Request::Enqueue {
            auth: token(),
            deliveries: vec![],
            payload: vec![0; MAX_PAYLOAD_BYTES + 1],
            idempotency_key: IdempotencyKey([1; 16]),
        };
        let e = decode_request(&encode_request(&big)).unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);

        let huge = vec![0u8; MAX_REQUEST_BYTES + 1];
        assert_eq!(decode_request(&huge).unwrap_err().code, ErrorCode::TooLarge);

        let kps = Request::UploadKeyPackages {
            auth: token(),
            packages: vec![vec![1]; MAX_KEY_PACKAGES_PER_UPLOAD + 1],
            last_resort: None,
        };
        let e = decode_request(&encode_request(&kps)).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooManyKeyPackages);
    }

    #[test]
    fn bad_fields_name_themselves() {
        // A username with upper case is refused with its own code.
        let mut msg = Builder::new_default();
        let mut b = msg
            .init_root::<schema::request::Builder>()
            .init_opaque_login_start();
        b.set_username("Alice");
        b.set_request(&[1u8; 10][..]);
        let e = decode_request(&serialize::write_message_to_words(&msg)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidUsername);

        // A missing token is "unauthenticated", not "malformed".
        let mut msg = Builder::new_default();
        msg.init_root::<schema::request::Builder>().init_fetch();
        let e = decode_request(&serialize::write_message_to_words(&msg)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthenticated);

        // A 15-byte channel id is malformed and says so.
        let mut msg = Builder::new_default();
        let mut f = msg.init_root::<schema::request::Builder>().init_fetch();
        f.reborrow().init_auth().set_token(&[1u8; 32][..]);
        f.set_channel_id(&[1u8; 15][..]);
        let e = decode_request(&serialize::write_message_to_words(&msg)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Malformed);
        assert!(e.message.contains("channel id"), "{e}");
    }

    /// A wrong-sized `loginId` is malformed (E002) like every other
    /// wrong-sized field; it used to get E015 ("unknown login"), so a client
    /// could not tell its own bug from an expired attempt.
    #[test]
    fn a_wrong_sized_login_id_is_malformed() {
        for len in [0usize, 15, 17] {
            let mut msg = Builder::new_default();
            let mut f = msg
                .init_root::<schema::request::Builder>()
                .init_opaque_login_finish();
            f.set_login_id(&vec![1u8; len][..]);
            f.set_finalization(&[1u8; 10][..]);
            let e = decode_request(&serialize::write_message_to_words(&msg)).unwrap_err();
            assert_eq!(e.code, ErrorCode::Malformed, "{len} bytes: {e}");
        }
    }

    /// Decoding errors say what is wrong in the protocol's terms, never
    /// how the decoder was built: an empty stream used to answer "...
    /// compile `capnp` crate with \"unaligned\" feature...".
    #[test]
    fn decoding_errors_show_no_internals() {
        let health = encode_request(&Request::Health);
        let inputs: [&[u8]; 4] = [&[], &health[..3], &health[..9], b"\xff\xff\xff\xffGARBAGE"];
        for bytes in inputs {
            let e = decode_request(bytes).unwrap_err();
            assert_eq!(e.code, ErrorCode::Malformed);
            for internal in ["capnp", "unaligned", "crate", "feature", "word"] {
                assert!(!e.message.contains(internal), "{:?}: {e}", bytes);
            }
        }
    }
}

/// The decoders under random input, on stable Rust: the fuzz targets in
/// `fuzz/` do the same with coverage guidance.
#[cfg(test)]
mod random_input {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn decoders_never_panic_on_random_or_mutated_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9);
        let seeds: Vec<Vec<u8>> = super::tests::sample_requests()
            .iter()
            .map(encode_request)
            .collect();
        for i in 0..20_000 {
            let bytes = if i % 2 == 0 {
                let len = rng.gen_range(0..200);
                (0..len).map(|_| rng.gen()).collect::<Vec<u8>>()
            } else {
                let mut b = seeds[i % seeds.len()].clone();
                for _ in 0..rng.gen_range(1..6) {
                    let at = rng.gen_range(0..b.len());
                    b[at] = rng.gen();
                }
                b
            };
            if let Ok(req) = decode_request(&bytes) {
                assert_eq!(decode_request(&encode_request(&req)).unwrap(), req);
            }
            let _ = decode_response(&bytes);
            let _ = crate::mls_framing::read(&bytes);
            if let Ok(m) = crate::padding::unpad(&bytes) {
                assert_eq!(crate::padding::pad(m), bytes);
            }
        }
    }
}
