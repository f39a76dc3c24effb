//! Every request kind with its typed answer, from one table (`calls!`
//! below). It generates:
//! - the [`Request`] enum, one variant per kind with its fields, and
//!   [`Request::kind`];
//! - one struct per kind with the same fields ([`Enqueue`], [`Fetch`], …)
//!   implementing [`Call`], so a caller writes
//!   `client.request(wire::Enqueue { .. })` and gets the typed answer
//!   ([`Enqueued`]) or [`UnexpectedResponse`] — never matching an
//!   "unexpected answer" itself;
//! - [`Response::kind`], for that error.
//!
//! Adding a request kind is one table entry (plus its encoding, decoding and
//! the server's handling).

use super::{
    BlobState, Delivery, Envelope, Limits, MemberDelivery, Response, UserRef, IDENTITY_PROOF_LEN,
};
use crate::types::{
    BlobId, ChannelId, IdempotencyKey, IdentityKey, LoginId, SessionToken, Username,
};

/// A request kind with its typed answer.
pub trait Call: Into<Request> {
    /// The request's name as in the schema.
    const KIND: &'static str;
    /// What a successful answer carries.
    type Response;

    fn request(self) -> Request {
        self.into()
    }

    /// The typed answer, or the error naming what came instead.
    fn response(r: Response) -> Result<Self::Response, UnexpectedResponse>;
}

/// The server answered a request with a response of another kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a {expected} response, got {got}")]
pub struct UnexpectedResponse {
    pub expected: &'static str,
    pub got: &'static str,
}

macro_rules! calls {
    ($(
        $(#[$doc:meta])*
        $kind:ident = $name:literal $({ $($(#[$fdoc:meta])* $field:ident: $fty:ty,)* })?
            -> $out:ty { $answer:pat => $typed:expr }
    )*) => {
        /// A request as the client sends it and the server receives it.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Request {
            $($(#[$doc])* $kind $({ $($(#[$fdoc])* $field: $fty,)* })?,)*
        }

        impl Request {
            /// Every request kind's name, as [`Request::kind`] returns them
            /// (metrics label them all up front).
            pub const KINDS: &'static [&'static str] = &[$($name,)*];

            /// The request's name as in the schema, for logs and metrics.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Request::$kind { .. } => $name,)*
                }
            }
        }

        impl Response {
            /// The response's name as in the schema.
            pub fn kind(&self) -> &'static str {
                match self {
                    Response::Error(_) => "error",
                    $(Response::$kind { .. } => $name,)*
                }
            }
        }

        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub struct $kind {
                $($($(#[$fdoc])* pub $field: $fty,)*)?
            }

            impl From<$kind> for Request {
                #[allow(unused_variables)] // kinds without fields
                fn from(call: $kind) -> Request {
                    Request::$kind $({ $($field: call.$field,)* })?
                }
            }

            impl Call for $kind {
                const KIND: &'static str = $name;
                type Response = $out;

                fn response(r: Response) -> Result<$out, UnexpectedResponse> {
                    match r {
                        $answer => Ok($typed),
                        other => Err(UnexpectedResponse {
                            expected: $name,
                            got: other.kind(),
                        }),
                    }
                }
            }
        )*
    };
}

calls! {
    /// The server's versions; needs no session.
    Health = "health" -> ServerInfo {
        Response::Health { protocol_version, server_version, server_time_ms, removal_key, limits } =>
            ServerInfo { protocol_version, server_version, server_time_ms, removal_key, limits }
    }
    OpaqueRegisterStart = "opaqueRegisterStart" {
        username: Username,
        request: Vec<u8>,
    } -> Vec<u8> { Response::OpaqueRegisterStart { response } => response }
    OpaqueRegisterFinish = "opaqueRegisterFinish" {
        username: Username,
        upload: Vec<u8>,
        identity_key: IdentityKey,
        identity_proof: [u8; IDENTITY_PROOF_LEN],
    } -> () { Response::OpaqueRegisterFinish => () }
    OpaqueLoginStart = "opaqueLoginStart" {
        username: Username,
        request: Vec<u8>,
    } -> LoginStarted {
        Response::OpaqueLoginStart { login_id, response } => LoginStarted { login_id, response }
    }
    OpaqueLoginFinish = "opaqueLoginFinish" {
        login_id: LoginId,
        finalization: Vec<u8>,
    } -> Session {
        Response::OpaqueLoginFinish { token, expires_at_ms, identity_key } =>
            Session { token, expires_at_ms, identity_key }
    }
    Logout = "logout" {
        auth: SessionToken,
    } -> () { Response::Logout => () }
    /// Returns how many one-time packages the server now holds.
    UploadKeyPackages = "uploadKeyPackages" {
        auth: SessionToken,
        packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    } -> u32 { Response::UploadKeyPackages { available } => available }
    FetchKeyPackage = "fetchKeyPackage" {
        auth: SessionToken,
        target: UserRef,
        /// The MLS ciphersuite wanted (a package only joins a group of its suite).
        suite: u16,
    } -> KeyPackage {
        Response::FetchKeyPackage { key_package, identity_key, last_resort } =>
            KeyPackage { key_package, identity_key, last_resort }
    }
    /// Returns the user's identity key.
    ResolveUser = "resolveUser" {
        auth: SessionToken,
        username: Username,
    } -> IdentityKey { Response::ResolveUser { identity_key } => identity_key }
    CreateChannel = "createChannel" {
        auth: SessionToken,
        peer: IdentityKey,
    } -> ChannelId { Response::CreateChannel { channel } => channel }
    Enqueue = "enqueue" {
        auth: SessionToken,
        deliveries: Vec<Delivery>,
        payload: Vec<u8>,
        idempotency_key: IdempotencyKey,
    } -> Enqueued {
        Response::Enqueue { duplicate, seqs } => Enqueued { duplicate, seqs }
    }
    Fetch = "fetch" {
        auth: SessionToken,
        channel: Option<ChannelId>,
        limit: u32,
    } -> Vec<Envelope> { Response::Fetch(envelopes) => envelopes }
    FetchWait = "fetchWait" {
        auth: SessionToken,
        channel: Option<ChannelId>,
        limit: u32,
        timeout_ms: u32,
    } -> Vec<Envelope> { Response::FetchWait(envelopes) => envelopes }
    /// Returns how many messages were removed.
    Ack = "ack" {
        auth: SessionToken,
        seqs: Vec<u64>,
    } -> u32 { Response::Ack { removed } => removed }
    /// Registers a new group with the server from its creator's GroupInfo
    /// (ratchet tree extension included).
    RegisterGroup = "registerGroup" {
        auth: SessionToken,
        group_info: Vec<u8>,
    } -> () { Response::RegisterGroup => () }
    /// One message to a group: the server checks it against the group's
    /// state and stores it for every other member.
    EnqueueGroup = "enqueueGroup" {
        auth: SessionToken,
        group: Vec<u8>,
        payload: Vec<u8>,
        idempotency_key: IdempotencyKey,
        /// With a commit: the GroupInfo of the epoch it creates.
        group_info: Option<Vec<u8>>,
        /// With a commit that adds members: their Welcome.
        welcome: Option<Vec<u8>>,
    } -> GroupEnqueued {
        Response::EnqueueGroup { duplicate, members } => GroupEnqueued { duplicate, members }
    }
    /// Binds the connection to the session, lifting the limits a
    /// connection without one has (request size, streams); a login on the
    /// connection binds it too.
    Authenticate = "authenticate" {
        auth: SessionToken,
    } -> () { Response::Authenticate => () }
    /// Starts an OPAQUE re-registration of the session's account.
    ChangePasswordStart = "changePasswordStart" {
        auth: SessionToken,
        request: Vec<u8>,
    } -> Vec<u8> { Response::ChangePasswordStart { response } => response }
    /// Replaces the password; proven by a login just started with the
    /// current one. Ends every other session of the account.
    ChangePasswordFinish = "changePasswordFinish" {
        auth: SessionToken,
        upload: Vec<u8>,
        login_id: LoginId,
        finalization: Vec<u8>,
    } -> () { Response::ChangePasswordFinish => () }
    /// Deletes the session's account, proven by a login just started with
    /// its password.
    DeleteAccount = "deleteAccount" {
        auth: SessionToken,
        login_id: LoginId,
        finalization: Vec<u8>,
    } -> () { Response::DeleteAccount => () }
    /// Starts an upload of an encrypted file to a group the caller is a
    /// member of (or answers the same upload's state again).
    BlobCreate = "blobCreate" {
        auth: SessionToken,
        blob: BlobId,
        group: Vec<u8>,
        /// Ciphertext bytes.
        size: u64,
    } -> BlobState { Response::BlobCreate(state) => state }
    /// Adds bytes of the caller's upload at `offset` (at most the stored length).
    BlobUpload = "blobUpload" {
        auth: SessionToken,
        blob: BlobId,
        offset: u64,
        data: Vec<u8>,
    } -> BlobState { Response::BlobUpload(state) => state }
    /// How much of a blob is stored (the resume point), for a member.
    BlobStatus = "blobStatus" {
        auth: SessionToken,
        blob: BlobId,
    } -> BlobState { Response::BlobStatus(state) => state }
    /// Seals the caller's complete upload: members may download it.
    BlobFinish = "blobFinish" {
        auth: SessionToken,
        blob: BlobId,
    } -> BlobState { Response::BlobFinish(state) => state }
    /// Up to `length` bytes (at most `MAX_BLOB_CHUNK_BYTES`) of a finished
    /// blob from `offset`, for a member of its group.
    BlobDownload = "blobDownload" {
        auth: SessionToken,
        blob: BlobId,
        offset: u64,
        length: u32,
    } -> Vec<u8> { Response::BlobDownload { data } => data }
}

/// What `health` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub protocol_version: u32,
    pub server_version: String,
    /// The server's clock (unix ms), for a client to notice its own skew.
    pub server_time_ms: u64,
    /// The server's Ed25519 public key as an MLS external sender; groups
    /// list it in `external_senders` from creation.
    pub removal_key: Vec<u8>,
    pub limits: Limits,
}

/// What `enqueueGroup` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEnqueued {
    /// The idempotency key was seen before; nothing was stored again.
    pub duplicate: bool,
    /// One result per recipient: a full mailbox fails that member alone.
    pub members: Vec<MemberDelivery>,
}

/// What `opaqueLoginStart` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStarted {
    pub login_id: LoginId,
    pub response: Vec<u8>,
}

/// A logged-in session: what `opaqueLoginFinish` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token: SessionToken,
    pub expires_at_ms: u64,
    pub identity_key: IdentityKey,
}

/// What `fetchKeyPackage` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackage {
    pub key_package: Vec<u8>,
    pub identity_key: IdentityKey,
    /// The user's last-resort package, handed out again until replaced.
    pub last_resort: bool,
}

/// What `enqueue` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The idempotency key was seen before; nothing was enqueued again.
    pub duplicate: bool,
    /// The recipients' sequence numbers, in the order of the deliveries.
    pub seqs: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_requests;
    use super::*;
    use crate::errors::{ErrorCode, WireError};

    fn token() -> SessionToken {
        SessionToken::from_slice(&[7; 32]).unwrap()
    }

    #[test]
    fn a_typed_call_builds_its_request() {
        let call = Ack {
            auth: token(),
            seqs: vec![1, 2],
        };
        assert_eq!(
            call.request(),
            Request::Ack {
                auth: token(),
                seqs: vec![1, 2]
            }
        );
        assert_eq!(Health {}.request(), Request::Health);
        assert_eq!(<Ack as Call>::KIND, "ack");
    }

    /// The field names of the union in `struct {name}` of the schema.
    fn union_fields(name: &str) -> Vec<String> {
        let schema = include_str!("../../../schemas/node.capnp");
        let body = schema
            .split(&format!("struct {name} {{"))
            .nth(1)
            .and_then(|rest| rest.split("union {").nth(1))
            .and_then(|rest| rest.split('}').next())
            .unwrap_or_else(|| panic!("node.capnp has no union in {name}"));
        body.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| !w.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    /// One sample of every kind, in schema order, named as the schema names
    /// it: the table misses no kind and misspells none.
    #[test]
    fn every_request_kind_is_the_schemas() {
        let mut kinds: Vec<String> = sample_requests()
            .iter()
            .map(|r| r.kind().to_owned())
            .collect();
        kinds.dedup();
        assert_eq!(kinds, union_fields("Request"));
        let mut responses = union_fields("Response");
        assert_eq!(responses.remove(0), "error");
        assert_eq!(responses, kinds, "each kind answers with its own kind");
        assert_eq!(Request::Health.kind(), Health::KIND);
        assert_eq!(
            Response::FetchWait(vec![]).kind(),
            <FetchWait as Call>::KIND
        );
    }

    #[test]
    fn a_typed_call_takes_its_answer() {
        assert_eq!(
            Enqueue::response(Response::Enqueue {
                duplicate: true,
                seqs: vec![4],
            }),
            Ok(Enqueued {
                duplicate: true,
                seqs: vec![4]
            })
        );
        assert_eq!(Ack::response(Response::Ack { removed: 3 }), Ok(3));
        assert_eq!(Logout::response(Response::Logout), Ok(()));
        assert_eq!(Fetch::response(Response::Fetch(vec![])), Ok(vec![]));
    }

    #[test]
    fn a_typed_call_given_another_kind_is_unexpected() {
        assert_eq!(
            Enqueue::response(Response::Ack { removed: 1 }),
            Err(UnexpectedResponse {
                expected: "enqueue",
                got: "ack"
            })
        );
        // Same payload, other kind: fetch and fetchWait are not interchangeable.
        assert_eq!(
            FetchWait::response(Response::Fetch(vec![])),
            Err(UnexpectedResponse {
                expected: "fetchWait",
                got: "fetch"
            })
        );
        let e = ResolveUser::response(Response::Error(WireError::bare(ErrorCode::Internal)))
            .unwrap_err();
        assert_eq!(e.got, "error");
        assert_eq!(e.to_string(), "expected a resolveUser response, got error");
    }
}
