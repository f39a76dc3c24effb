# quicproquo client <-> server protocol (qpqd <-> qpq-server).
#
# The wire page of the book, docs/src/reference/wire.md, describes the whole
# protocol for an implementer: stream rules, close codes, limits, OPAQUE and
# the order of checks.
#
# Transport: QUIC (ALPN "qpq/2") with TLS 1.3. One request per bidirectional
# stream: the client writes one `Request` message (standard Cap'n Proto
# serialization, unpacked) and finishes its side; the server answers one
# `Response` and finishes. Calls never block each other.
#
# Every field named `auth` carries the session token issued by
# opaqueLoginFinish. Errors come back as `Response.error` with a stable code
# (docs/src/reference/errors.md).
#
# Sessions are bound to the connection: until a successful opaqueLoginFinish
# or `authenticate` on it, a connection is a stranger's, and the server reads
# at most 64 KiB of a request (E003 past it), allows few concurrent streams
# and a small flow-control window. Once bound, requests up to the full size
# are read and more streams are allowed. Every request still carries its own
# `auth`, checked on its own: binding only lifts the stranger's limits.
#
# The Rust code generated from this file is committed
# (protocol/src/generated/node_capnp.rs); regenerate it with
#   QPQ_REGEN_CAPNP=1 cargo build -p quicproquo-protocol
@0xfb2a3b07874d0f04;

struct Auth {
  token @0 :Data;            # 32 bytes
}

struct Request {
  union {
    health @0 :Void;
    opaqueRegisterStart @1 :OpaqueRegisterStart;
    opaqueRegisterFinish @2 :OpaqueRegisterFinish;
    opaqueLoginStart @3 :OpaqueLoginStart;
    opaqueLoginFinish @4 :OpaqueLoginFinish;
    logout @5 :Logout;
    uploadKeyPackages @6 :UploadKeyPackages;
    fetchKeyPackage @7 :FetchKeyPackage;
    resolveUser @8 :ResolveUser;
    createChannel @9 :CreateChannel;
    enqueue @10 :Enqueue;
    fetch @11 :Fetch;
    fetchWait @12 :FetchWait;
    ack @13 :Ack;
    registerGroup @14 :RegisterGroup;
    enqueueGroup @15 :EnqueueGroup;
    authenticate @16 :Authenticate;
    changePasswordStart @17 :ChangePasswordStart;
    changePasswordFinish @18 :ChangePasswordFinish;
    deleteAccount @19 :DeleteAccount;
    blobCreate @20 :BlobCreate;
    blobUpload @21 :BlobUpload;
    blobStatus @22 :BlobRef;
    blobFinish @23 :BlobRef;
    blobDownload @24 :BlobDownload;
  }
}

struct Response {
  union {
    error @0 :Error;
    health @1 :Health;
    opaqueRegisterStart @2 :Data;          # opaque-ke RegistrationResponse
    opaqueRegisterFinish @3 :Void;
    opaqueLoginStart @4 :LoginStarted;
    opaqueLoginFinish @5 :LoginFinished;
    logout @6 :Void;
    uploadKeyPackages @7 :KeyPackagesStored;
    fetchKeyPackage @8 :KeyPackageFetched;
    resolveUser @9 :UserResolved;
    createChannel @10 :ChannelCreated;
    enqueue @11 :Enqueued;
    fetch @12 :Mail;
    fetchWait @13 :Mail;
    ack @14 :Acked;
    registerGroup @15 :Void;
    enqueueGroup @16 :GroupEnqueued;
    authenticate @17 :Void;
    changePasswordStart @18 :Data;         # opaque-ke RegistrationResponse
    changePasswordFinish @19 :Void;
    deleteAccount @20 :Void;
    blobCreate @21 :BlobState;
    blobUpload @22 :BlobState;
    blobStatus @23 :BlobState;
    blobFinish @24 :BlobState;
    blobDownload @25 :Data;              # the bytes asked for (fewer at the end)
  }
}

struct Error {
  code @0 :UInt16;           # E001 = 1, ... (stable catalogue)
  message @1 :Text;
  retryAfterMs @2 :UInt32;   # set with E004 (rate limited)
}

struct Health {
  protocolVersion @0 :UInt32;  # 2; a client speaking another version stops and says so
  serverVersion @1 :Text;
  serverTimeMs @2 :UInt64;     # the server's clock, unix time in ms (clients warn on skew)
  removalKey @3 :Data;         # Ed25519 public key of the server as an MLS external sender:
                               # every group lists it in external_senders from creation
  limits @4 :Limits;
}

# Limits a client depends on; the server enforces them (protocol::limits).
struct Limits {
  maxPayloadBytes @0 :UInt32;
  maxRecipients @1 :UInt32;          # per enqueue, and members per group minus one
  maxFetchLimit @2 :UInt32;          # envelopes per fetch answer
  fetchResponseBytes @3 :UInt32;     # bytes per fetch answer (the first envelope always fits)
  maxKeyPackagesPerUpload @4 :UInt32;
  maxGroupIdBytes @5 :UInt32;
}

# --- accounts (OPAQUE, ristretto255, Argon2id stretching on the client) ---

struct OpaqueRegisterStart {
  username @0 :Text;
  request @1 :Data;          # opaque-ke RegistrationRequest
}

struct OpaqueRegisterFinish {
  username @0 :Text;
  upload @1 :Data;           # opaque-ke RegistrationUpload
  identityKey @2 :Data;      # Ed25519 public key, 32 bytes
  identityProof @3 :Data;    # Ed25519 signature (64 bytes) by identityKey over
                             # "qpq-register-v1\0" || username
}

struct OpaqueLoginStart {
  username @0 :Text;
  request @1 :Data;          # opaque-ke CredentialRequest
}

struct LoginStarted {
  loginId @0 :Data;          # 16 bytes; names this attempt in opaqueLoginFinish
  response @1 :Data;         # opaque-ke CredentialResponse
}

struct OpaqueLoginFinish {
  loginId @0 :Data;
  finalization @1 :Data;     # opaque-ke CredentialFinalization
}

struct LoginFinished {
  token @0 :Data;            # session token (32 bytes); send it as Auth.token
  expiresAtMs @1 :UInt64;    # unix time in ms
  identityKey @2 :Data;      # the identity key bound at registration
}

struct Logout {
  auth @0 :Auth;
}

# Binds this connection to the session (after a reconnect, when the client
# holds a token already): lifts the stranger's limits above. E010 if the
# token is not valid.
struct Authenticate {
  auth @0 :Auth;
}

# --- account management (a logged-in user; each change proves the password) ---
#
# Both changes below carry a login the caller has just run with
# opaqueLoginStart (for the session's own username) and finished on its side:
# the server finishes it as proof of the current password, without issuing
# a session. A stolen session token alone can neither change the password
# nor delete the account.

struct ChangePasswordStart {
  auth @0 :Auth;
  request @1 :Data;          # opaque-ke RegistrationRequest for the new password
}

struct ChangePasswordFinish {
  auth @0 :Auth;
  upload @1 :Data;           # opaque-ke RegistrationUpload for the new password
  loginId @2 :Data;          # proof of the current password: a login started
  finalization @3 :Data;     # with it, and its CredentialFinalization
}
# On success every other session of the account is ended; this one stays.

struct DeleteAccount {
  auth @0 :Auth;
  loginId @1 :Data;          # proof of the password, as in ChangePasswordFinish
  finalization @2 :Data;
}
# Deletes the account, its sessions, key packages, mailbox and DM channels;
# the username is never registered again.

# --- key packages and directory ---

struct UploadKeyPackages {
  auth @0 :Auth;
  packages @1 :List(Data);   # one-time MLS KeyPackages (MLSMessage), all of one ciphersuite
  lastResort @2 :Data;       # empty: keep the current last-resort package of that suite
}

struct KeyPackagesStored {
  available @0 :UInt32;      # one-time packages of that suite now stored
}

struct FetchKeyPackage {
  auth @0 :Auth;
  union {
    username @1 :Text;
    identityKey @2 :Data;
  }
  suite @3 :UInt16;          # MLS ciphersuite; 0 means the default, 0x004F (X-Wing hybrid)
}

struct KeyPackageFetched {
  keyPackage @0 :Data;
  identityKey @1 :Data;
  lastResort @2 :Bool;       # true: the shared last-resort package (not consumed)
}

struct ResolveUser {
  auth @0 :Auth;
  username @1 :Text;
}

struct UserResolved {
  identityKey @0 :Data;
}

# --- DM channels (createChannel (auth :Auth, peerKey :Data) -> (channelId :Data)) ---

struct CreateChannel {
  auth @0 :Auth;
  peerKey @1 :Data;          # the peer's identity key
}

struct ChannelCreated {
  channelId @0 :Data;        # 16 bytes; the same for both members, in either order
}

# --- delivery ---

struct Delivery {
  recipient @0 :Data;        # identity key of the mailbox
  channelId @1 :Data;        # 16 bytes: authorized against the channel's members;
                             # empty: the legacy path (only if the server allows it)
}

struct Enqueue {
  auth @0 :Auth;
  deliveries @1 :List(Delivery);
  payload @2 :Data;          # padded MLS message (protocol::padding)
  idempotencyKey @3 :Data;   # 16 bytes chosen by the client; a retry is stored once
}

struct Enqueued {
  duplicate @0 :Bool;        # true: this idempotency key was already stored
  seqs @1 :List(UInt64);     # per delivery, in order (empty if duplicate)
}

struct Fetch {
  auth @0 :Auth;
  channelId @1 :Data;        # empty: the caller's whole mailbox
  limit @2 :UInt32;          # 0: the server's maximum
}

struct FetchWait {
  auth @0 :Auth;
  channelId @1 :Data;
  limit @2 :UInt32;
  timeoutMs @3 :UInt32;      # held open until mail arrives or this passes
}

struct Envelope {
  seq @0 :UInt64;
  channelId @1 :Data;
  payload @2 :Data;
  enqueuedAtMs @3 :UInt64;
  # An expiry notice, which the server puts in a sender's mailbox when mail
  # it sent was not fetched in time (the server's `quotas.mail_ttl_days`) and
  # was deleted: the recipient (32 bytes) whose copy expired and the
  # idempotency key (16 bytes) of the enqueue. Both empty on ordinary mail;
  # a notice has no channel and an empty payload, and is acknowledged like
  # mail.
  expiredFor @4 :Data;
  expiredKey @5 :Data;
}

struct Mail {
  messages @0 :List(Envelope);
}

struct Ack {
  auth @0 :Auth;
  seqs @1 :List(UInt64);
}

struct Acked {
  removed @0 :UInt32;
}

# --- groups the server validates (docs/src/reference/wire.md) ---
#
# Handshake messages (commits, proposals) to a group travel as MLS
# PublicMessages so the server can check them against the group's public
# state; application messages stay PrivateMessages.

struct RegisterGroup {
  auth @0 :Auth;
  groupInfo @1 :Data;        # MLSMessage(GroupInfo), with the ratchet tree extension,
                             # signed by the caller, whose identity key is a leaf
}

struct EnqueueGroup {
  auth @0 :Auth;
  group @1 :Data;            # the MLS group id (1 to limits.maxGroupIdBytes bytes)
  payload @2 :Data;          # padded MLS message of that group
  idempotencyKey @3 :Data;   # 16 bytes; a retry is stored once
  groupInfo @4 :Data;        # with a commit: MLSMessage(GroupInfo) of the epoch it
                             # creates (ratchet tree extension included); else empty
  welcome @5 :Data;          # with a commit that adds members: the padded
                             # MLSMessage(Welcome), delivered to them alone; else empty
}

struct GroupEnqueued {
  duplicate @0 :Bool;        # true: this idempotency key was already stored
  members @1 :List(MemberDelivery);   # one per recipient (empty if duplicate)
}

struct MemberDelivery {
  member @0 :Data;           # identity key of the mailbox
  seq @1 :UInt64;            # its sequence number there; 0 if not stored
  error @2 :UInt16;          # 0: stored; else the code, e.g. 32 (mailbox full)
}

# --- attachments (issue 18): encrypted files, stored as opaque blobs ---
#
# A blob is a file's ciphertext (the key, name and type travel inside MLS).
# It belongs to the group it was created in: only an account that is a member
# of that group (the server's validated state) may create it there, see its
# status or download it; only its creator uploads and finishes it. Uploads
# are resumable: blobStatus tells how many bytes are stored.

struct BlobCreate {
  auth @0 :Auth;
  blobId @1 :Data;           # 16 random bytes chosen by the uploader; the same
                             # create again (same group and size) is accepted
  group @2 :Data;            # the MLS group id (1 to limits.maxGroupIdBytes bytes)
  size @3 :UInt64;           # ciphertext bytes; within the operator's limit and
                             # the caller's quota (E052, E053)
}

struct BlobUpload {
  auth @0 :Auth;
  blobId @1 :Data;
  offset @2 :UInt64;         # where `data` starts; at most the stored length
                             # (bytes already stored are a retry; past it: E055)
  data @3 :Data;             # 1 byte to 1 MiB
}

struct BlobRef {
  auth @0 :Auth;
  blobId @1 :Data;
}

struct BlobDownload {
  auth @0 :Auth;
  blobId @1 :Data;
  offset @2 :UInt64;
  length @3 :UInt32;         # at most 1 MiB (more is cut to 1 MiB)
}

struct BlobState {
  size @0 :UInt64;           # declared ciphertext bytes
  stored @1 :UInt64;         # bytes stored: where an upload resumes
  finished @2 :Bool;         # complete and downloadable
}
