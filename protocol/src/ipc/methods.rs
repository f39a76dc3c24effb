//! Every method of ipc.md with its typed params and result.
//!
//! One table (`methods!` below) generates four faces of it:
//! - [`Call`], one variant per method with its params, for the daemon's
//!   dispatch ([`Call::from_parts`] turns `(method, params)` into one);
//! - [`Handler`], one function per method from typed params to a typed
//!   result, which the daemon implements; [`Call::dispatch`] calls the right
//!   one and turns its result into JSON, so adding a method is one table
//!   entry plus one handler function;
//! - [`Method`] and the markers in [`method`], so a front-end writes
//!   `client.request::<method::Send>(params)` and gets the result type checked;
//! - [`Call::METHODS`], which a test compares with the table in ipc.md.
//!
//! Params refuse unknown fields (a typo is a `-32602` naming the field);
//! results accept them, so a daemon can add a field without breaking an older
//! front-end.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ErrorObject, IpcError, IpcErrorCode};
use super::values::{
    identity_hex, Account, Attachment, AutoAccept, Ciphersuite, ConnectionState, Conversation,
    ConversationRef, ConversationSettings, IntegrityState, Invitation, InvitationId, KeystoreState,
    Limit, Member, Message, MessageId, MessageVersion, NotifyMode, Secret, Seq, Settings,
    StorageState,
};
use super::IPC_PROTOCOL_VERSION;
use crate::types::IdentityKey;
use crate::Fingerprint;

/// A method of the IPC: its name, params and result types.
pub trait Method {
    const NAME: &'static str;
    type Params: Serialize + DeserializeOwned;
    type Result: Serialize + DeserializeOwned;
}

macro_rules! methods {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, fn $handler:ident ($params:ty) -> $result:ty;)*) => {
        /// A request the daemon dispatches on: the method and its typed params.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Call {
            $($(#[$doc])* $variant($params),)*
        }

        /// What the daemon does for each method, one function per method.
        ///
        /// The futures are `Send` because the daemon serves each connection
        /// on its own task. An `Err` is answered as the JSON-RPC error as is.
        pub trait Handler {
            $(
                $(#[$doc])*
                fn $handler(
                    &self,
                    params: $params,
                ) -> impl Future<Output = Result<$result, ErrorObject>> + Send;
            )*
        }

        impl Call {
            /// Every method name, in the order of ipc.md.
            pub const METHODS: &'static [&'static str] = &[$($name,)*];

            pub fn method(&self) -> &'static str {
                match self {
                    $(Call::$variant(_) => $name,)*
                }
            }

            /// Parses `params` (absent, `null` or an object) for `method`.
            /// The error has no id yet; the caller sets it.
            pub fn from_parts(method: &str, params: Option<Value>) -> Result<Call, IpcError> {
                match method {
                    $($name => parse_params::<$params>(method, params).map(Call::$variant),)*
                    _ => Err(IpcError::new(
                        None,
                        IpcErrorCode::MethodNotFound,
                        format!("method not found: `{method}`"),
                    )),
                }
            }

            /// The params as JSON.
            pub fn params(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(Call::$variant(p) => serde_json::to_value(p),)*
                }
            }

            /// Runs the call on `handler`'s function for its method and
            /// returns the result as the JSON-RPC `result`.
            pub async fn dispatch(self, handler: &impl Handler) -> Result<Value, ErrorObject> {
                match self {
                    $(Call::$variant(p) => result_json(handler.$handler(p).await),)*
                }
            }
        }

        /// One marker type per method, for [`Method`].
        pub mod method {
            use super::*;

            $(
                $(#[$doc])*
                #[derive(Debug, Clone, Copy)]
                pub struct $variant;

                impl super::Method for $variant {
                    const NAME: &'static str = $name;
                    type Params = $params;
                    type Result = $result;
                }
            )*
        }
    };
}

methods! {
    /// First call on a connection: versions and profile.
    Hello = "hello", fn hello(HelloParams) -> HelloResult;
    Status = "status", fn status(NoParams) -> StatusResult;
    /// Only when `keystore` is `locked`.
    Unlock = "unlock", fn unlock(UnlockParams) -> Empty;
    /// Only when `status.integrity` is not `ok`: re-keys every group, then
    /// resumes sending and receiving.
    IntegrityAcknowledge = "integrity.acknowledge", fn integrity_acknowledge(NoParams) -> IntegrityAckResult;
    Register = "register", fn register(AccountParams) -> Account;
    Login = "login", fn login(AccountParams) -> Account;
    Logout = "logout", fn logout(NoParams) -> Empty;
    /// A new account password (proven with the current one); the server
    /// ends every other session of the account.
    AccountPassword = "account.password", fn account_password(PasswordChangeParams) -> Empty;
    /// Deletes the account on the server (proven with its password), then
    /// this profile: answered, then the daemon removes its data and exits.
    AccountDelete = "account.delete", fn account_delete(AccountDeleteParams) -> Empty;
    Whoami = "whoami", fn whoami(NoParams) -> WhoamiResult;
    /// What `qpq-ctl doctor` needs from the daemon: the server's `health`
    /// (and the clock offset), whether the session is valid, the key-package
    /// stock.
    Diagnose = "diagnose", fn diagnose(NoParams) -> DiagnoseResult;
    Conversations = "conversations", fn conversations(NoParams) -> Vec<Conversation>;
    /// The DM with a user, the same one every time.
    DmOpen = "dm.open", fn dm_open(DmOpenParams) -> Conversation;
    GroupCreate = "group.create", fn group_create(GroupCreateParams) -> Conversation;
    GroupAdd = "group.add", fn group_add(GroupMembersParams) -> Conversation;
    GroupRemove = "group.remove", fn group_remove(GroupMembersParams) -> Conversation;
    GroupLeave = "group.leave", fn group_leave(ConversationParams) -> Empty;
    GroupRekey = "group.rekey", fn group_rekey(ConversationParams) -> RekeyResult;
    Members = "members", fn members(ConversationParams) -> Vec<Member>;
    /// Returns the message `queued`: durable in the outbox.
    Send = "send", fn send(SendParams) -> Message;
    /// Sends a file (issue 18): the daemon encrypts it into its own spool
    /// (so the file may change or go once this returns) and returns the
    /// message with its attachment `uploading`; the upload goes on in the
    /// background (`transfer` notifications), resumes after a dropped
    /// connection or a restart, and the message is sent when it is done.
    Attach = "attach", fn attach(AttachParams) -> Message;
    /// Fetches, decrypts and checks a message's attachment into a file:
    /// returns it `downloading` at once (or `downloaded` if that file is
    /// already the checked copy); `transfer` notifications follow, the last
    /// one `downloaded`, `corrupt`, `expired` or `failed`. The file appears
    /// at `path` only once its integrity check passed.
    Download = "download", fn download(DownloadParams) -> Attachment;
    /// Adds (or with `remove`, takes back) our reaction to a message;
    /// returns the message with its reactions.
    React = "react", fn react(ReactParams) -> Message;
    /// Replaces the text of one of our messages for every member; returns
    /// it `edited`.
    Edit = "edit", fn edit(EditParams) -> Message;
    /// Deletes a message: ours for everyone, or any for this profile only.
    Delete = "delete", fn delete(DeleteParams) -> Empty;
    /// The earlier versions of an edited message, oldest first.
    MessageEdits = "message.edits", fn message_edits(MessageRefParams) -> Vec<MessageVersion>;
    /// Messages that mention us, newest last, across conversations or in one.
    Mentions = "mentions", fn mentions(MentionsParams) -> Vec<Message>;
    /// The user is (or stopped) typing in a conversation: sent to the
    /// members only where typing indicators are on.
    Typing = "typing", fn typing(TypingParams) -> Empty;
    /// Reads or sets a conversation's settings (read receipts, typing,
    /// disappearing timer, notifications).
    ConversationSettingsMethod = "conversation.settings", fn conversation_settings(ConversationSettingsParams) -> ConversationSettings;
    /// Reads or sets the defaults conversations without their own value use.
    SettingsMethod = "settings", fn settings(SettingsParams) -> Settings;
    /// The conversation a front-end shows (none: it shows none): the daemon
    /// does not notify the desktop of messages there.
    Focus = "focus", fn focus(FocusParams) -> Empty;
    /// Oldest first; at most `MAX_REPLY_BYTES` of messages, so fewer than
    /// `limit` is not the start: page on with `before` until an empty page.
    History = "history", fn history(HistoryParams) -> Vec<Message>;
    /// Best first; at most `MAX_REPLY_BYTES` of messages (page on with
    /// `offset`).
    Search = "search", fn search(SearchParams) -> Vec<Message>;
    Read = "read", fn read(ReadParams) -> ReadResult;
    /// A `failed` message back into the outbox; returns it `queued`.
    MessageRetry = "message.retry", fn message_retry(MessageParams) -> Message;
    /// A `failed` message out of the outbox and the history.
    MessageDiscard = "message.discard", fn message_discard(MessageParams) -> Empty;
    Verify = "verify", fn verify(VerifyParams) -> VerifyResult;
    /// Invitations waiting for the user, oldest first.
    Invites = "invites", fn invites(NoParams) -> Vec<Invitation>;
    /// Joins: the Welcome, then what the group sent meanwhile.
    Accept = "accept", fn accept(InvitationParams) -> Conversation;
    /// Tells the inviter and leaves; forgets the Welcome and its keys.
    Decline = "decline", fn decline(DeclineParams) -> Empty;
    /// Reads (without `mode`) or sets which invitations are accepted without
    /// asking.
    AutoAcceptSetting = "auto_accept", fn auto_accept(AutoAcceptParams) -> AutoAcceptResult;
    /// The latest sequence number; notifications follow.
    Subscribe = "subscribe", fn subscribe(SubscribeParams) -> SubscribeResult;
    /// Answered, then the daemon flushes and exits.
    Shutdown = "shutdown", fn shutdown(NoParams) -> Empty;
}

/// A handler's typed result as the JSON-RPC `result`.
fn result_json<R: Serialize>(result: Result<R, ErrorObject>) -> Result<Value, ErrorObject> {
    serde_json::to_value(result?)
        .map_err(|e| ErrorObject::new(IpcErrorCode::Internal, e.to_string()))
}

fn parse_params<P: DeserializeOwned>(method: &str, params: Option<Value>) -> Result<P, IpcError> {
    let invalid = |detail: String| {
        IpcError::new(
            None,
            IpcErrorCode::InvalidParams,
            format!("invalid params for `{method}`: {detail}"),
        )
    };
    let params = match params {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(obj @ Value::Object(_)) => obj,
        Some(_) => {
            return Err(invalid(
                "params must be an object (parameters are passed by name)".into(),
            ))
        }
    };
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            invalid(inner.to_string())
        } else {
            invalid(format!("`{path}`: {inner}"))
        }
    })
}

/// The params of a method that takes none: absent, `null` or `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The `{}` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloParams {
    /// The front-end's name, e.g. `qpq-ctl`.
    pub client: String,
    pub client_version: String,
    pub protocol: u32,
}

impl HelloParams {
    /// The `-32010` to answer when the client speaks another version.
    pub fn check_version(&self) -> Result<(), ErrorObject> {
        if self.protocol == IPC_PROTOCOL_VERSION {
            Ok(())
        } else {
            Err(ErrorObject::version_mismatch(
                IPC_PROTOCOL_VERSION,
                self.protocol,
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResult {
    pub daemon_version: String,
    pub protocol: u32,
    pub profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResult {
    pub profile: String,
    /// `None` before `register`/`login`.
    pub account: Option<Account>,
    /// The server as `host:port` (or several, comma-separated: the nodes
    /// of one deployment); `None` before `register`/`login`.
    pub server: Option<String>,
    /// The node the connection is to while `online`: the address as
    /// given, and the one it resolved to when they differ
    /// (`chat.example:7443 (192.0.2.7:7443)`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub connection: ConnectionState,
    /// Why the connection is not up, for people (e.g. the server's
    /// certificate no longer matches the pin); empty while online.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub connection_detail: String,
    pub keystore: KeystoreState,
    /// The suite new groups get.
    pub ciphersuite: Ciphersuite,
    /// Messages waiting in the outbox.
    pub outbox: u64,
    /// Unread messages in all conversations.
    pub unread: u64,
    /// With `keystore` `locked`: no state exists yet, so the passphrase
    /// `unlock` is given creates it — front-ends ask for it twice and say
    /// it cannot be recovered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_state: bool,
    /// Whether the state opened as it was last written; anything but `ok`
    /// holds sending and receiving until `integrity.acknowledge`.
    #[serde(default)]
    pub integrity: IntegrityState,
    /// What was found and what it means, for people; empty when `ok`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub integrity_detail: String,
    /// Whether incoming mail can be stored (absent from older daemons: `ok`).
    #[serde(default)]
    pub storage: StorageState,
    /// Why it cannot, for people (e.g. "database or disk is full"); empty
    /// while `ok`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_detail: String,
}

/// What `integrity.acknowledge` did before sending resumed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IntegrityAckResult {
    /// The conversations re-keyed (a self-update commit in each group).
    pub rekeyed: Vec<String>,
    /// The conversations that could not be re-keyed, and why (e.g. a group
    /// whose state was rolled back past a commit: someone must re-add us).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<RekeyFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyFailure {
    pub conversation: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockParams {
    pub passphrase: Secret,
}

/// The params of `register` and `login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountParams {
    /// `host:port`.
    pub server: String,
    /// The server certificate's SHA-256, to pin instead of trusting a CA.
    #[serde(
        default,
        with = "super::values::fingerprint_hex",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_fingerprint: Option<Fingerprint>,
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeParams {
    pub current_password: Secret,
    pub new_password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountDeleteParams {
    pub password: Secret,
}

/// What `diagnose` found; a part that could not be checked says why.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiagnoseResult {
    /// The server's `health` answer; `None` when it could not be asked.
    #[serde(default)]
    pub server: Option<ServerHealth>,
    /// Why the server could not be asked (offline, not logged in, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_problem: String,
    /// The session was accepted by the server just now.
    #[serde(default)]
    pub session_valid: bool,
    /// Why it was not (expired, logged out, …); empty when valid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_problem: String,
    /// One-time key packages on the server, per ciphersuite (empty when the
    /// session is not valid).
    #[serde(default)]
    pub key_packages: Vec<KeyPackageStock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    pub server_version: String,
    pub protocol_version: u32,
    /// The server's clock minus ours (ms), the round trip halved out.
    pub clock_offset_ms: i64,
    pub round_trip_ms: u64,
    /// How the server's certificate is checked: `pinned` (its fingerprint)
    /// or `ca` (the system's roots).
    pub trust: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPackageStock {
    pub ciphersuite: Ciphersuite,
    /// One-time packages the server holds; others can add us while > 0 (and
    /// then through the last-resort package).
    pub available: u32,
    /// Age of the last-resort package (replaced after a week); `None`: none yet.
    #[serde(default)]
    pub last_resort_age_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoamiResult {
    pub username: String,
    #[serde(with = "identity_hex")]
    pub identity: IdentityKey,
    pub server: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmOpenParams {
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCreateParams {
    pub name: String,
    pub members: Vec<String>,
    #[serde(default)]
    pub ciphersuite: Ciphersuite,
}

/// The params of `group.add` and `group.remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMembersParams {
    pub conversation: ConversationRef,
    pub members: Vec<String>,
}

/// The params of methods that name only a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationParams {
    pub conversation: ConversationRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyResult {
    /// The group's MLS epoch after the re-key.
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendParams {
    pub conversation: ConversationRef,
    pub text: String,
    /// Send even though a member's identity key changed (after `-32006`).
    #[serde(default)]
    pub confirm_changed_keys: bool,
    /// The message (in the same conversation) this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachParams {
    pub conversation: ConversationRef,
    /// An absolute path to a regular file the daemon can read (front-ends
    /// resolve a relative path against their own working directory).
    pub path: String,
    /// Text sent with the file (at most `MAX_MESSAGE_TEXT_BYTES`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caption: String,
    /// The name the members see (default: the path's last component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A MIME type (default: guessed from the name's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub confirm_changed_keys: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadParams {
    pub conversation: ConversationRef,
    pub id: MessageId,
    /// An absolute path for the file; absent: the daemon's download
    /// directory (`<data dir>/downloads/`), under the attachment's name made
    /// unique. An existing file there is refused (`-32014`) unless
    /// `overwrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
}

/// A message in a conversation. Message ids are the same for every member
/// (the sender chose it), so a script names a message by its id and its own
/// name for the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRefParams {
    pub conversation: ConversationRef,
    pub id: MessageId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactParams {
    pub conversation: ConversationRef,
    pub id: MessageId,
    /// One emoji (a short grapheme sequence: at most 32 bytes, no spaces or
    /// control characters).
    pub emoji: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditParams {
    pub conversation: ConversationRef,
    pub id: MessageId,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    pub conversation: ConversationRef,
    pub id: MessageId,
    /// Only from this profile's history (any message); else for everyone
    /// (only our own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub for_me: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MentionsParams {
    /// One conversation instead of all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationRef>,
    /// Only mentions older than this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<MessageId>,
    #[serde(default)]
    pub limit: Limit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingParams {
    pub conversation: ConversationRef,
    /// Typing now (the members show it for a few seconds, or until `false`).
    pub on: bool,
}

/// Each field given is set; the answer is every setting as it applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationSettingsParams {
    pub conversation: ConversationRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_receipts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    /// 0 turns disappearing messages off. Sent to every member (a `timer`
    /// notification on each side); at most one year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_content: Option<bool>,
}

/// Each field given is set; the answer is every default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_receipts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_content: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FocusParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    pub conversation: ConversationRef,
    /// Only messages older than this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<MessageId>,
    #[serde(default)]
    pub limit: Limit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    pub query: String,
    /// Search one conversation instead of all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationRef>,
    #[serde(default)]
    pub limit: Limit,
    /// Skip this many of the best matches: the next page after an answer
    /// cut short by [`crate::ipc::MAX_REPLY_BYTES`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    pub conversation: ConversationRef,
    /// Mark read up to and including this message; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<MessageId>,
}

/// One of our messages, by id (`message.retry`, `message.discard`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    pub id: MessageId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadResult {
    /// Unread messages left in the conversation.
    pub unread: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    pub username: String,
    /// Mark the user's current key verified.
    #[serde(default)]
    pub confirm: bool,
    /// With `confirm`: the safety number the user compared. If the current
    /// one differs (the key changed since it was shown), nothing is marked
    /// and the call fails with -32006.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_number: Option<String>,
    /// The conversation whose copy of the user's key is compared: the key
    /// they hold in it, which is what the messages there are encrypted to.
    /// Without it, their DM (or, with no DM, the key the server lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    pub username: String,
    pub safety_number: String,
    /// This key (the one the number is computed from) was confirmed.
    pub verified: bool,
    pub key_changed: bool,
    /// The key is the one the server lists for the name. When not, the
    /// conversation holds someone else under that name: it cannot be
    /// confirmed.
    #[serde(default = "yes")]
    pub matches_directory: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationParams {
    pub id: InvitationId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineParams {
    pub id: InvitationId,
    /// Told to the inviter; at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoAcceptParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AutoAccept>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoAcceptResult {
    pub mode: AutoAccept,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    /// Replay every notification after this one first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Seq>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeResult {
    /// The latest sequence number at the time of the call.
    pub seq: Seq,
}

#[cfg(test)]
mod dispatch_tests;

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::ipc::jsonrpc::{request_line, Id, IncomingRequest};
    use crate::ipc::values::{
        ConversationId, ConversationKind, MessageMeta, MessageState, Quote, Reaction, TransferState,
    };

    fn conv() -> ConversationRef {
        ConversationRef::parse("team").unwrap()
    }

    /// One value of every call, with every optional field set where there is one.
    pub(crate) fn sample_calls() -> Vec<Call> {
        let msg_id = MessageId([9; 16]);
        vec![
            Call::Hello(HelloParams {
                client: "qpq-tui".into(),
                client_version: "0.1.0".into(),
                protocol: 1,
            }),
            Call::Status(NoParams {}),
            Call::Unlock(UnlockParams {
                passphrase: Secret::new("correct horse"),
            }),
            Call::IntegrityAcknowledge(NoParams {}),
            Call::Register(AccountParams {
                server: "chat.example:7000".into(),
                server_fingerprint: Some([0xab; 32]),
                username: "alice".into(),
                password: Secret::new("pw"),
            }),
            Call::Login(AccountParams {
                server: "chat.example:7000".into(),
                server_fingerprint: None,
                username: "alice".into(),
                password: Secret::new("pw"),
            }),
            Call::Logout(NoParams {}),
            Call::AccountPassword(PasswordChangeParams {
                current_password: Secret::new("old password"),
                new_password: Secret::new("new password"),
            }),
            Call::AccountDelete(AccountDeleteParams {
                password: Secret::new("the password"),
            }),
            Call::Whoami(NoParams {}),
            Call::Diagnose(NoParams {}),
            Call::Conversations(NoParams {}),
            Call::DmOpen(DmOpenParams {
                username: "bob".into(),
            }),
            Call::GroupCreate(GroupCreateParams {
                name: "team".into(),
                members: vec!["bob".into(), "carol".into()],
                ciphersuite: Ciphersuite::Classic,
            }),
            Call::GroupAdd(GroupMembersParams {
                conversation: conv(),
                members: vec!["dave".into()],
            }),
            Call::GroupRemove(GroupMembersParams {
                conversation: ConversationRef::Id(ConversationId([1; 16])),
                members: vec!["dave".into()],
            }),
            Call::GroupLeave(ConversationParams {
                conversation: conv(),
            }),
            Call::GroupRekey(ConversationParams {
                conversation: conv(),
            }),
            Call::Members(ConversationParams {
                conversation: ConversationRef::Dm("bob".into()),
            }),
            Call::Send(SendParams {
                conversation: conv(),
                text: "hello \u{1F600}\n\"quoted\"".into(),
                confirm_changed_keys: true,
                reply_to: Some(msg_id),
            }),
            Call::Attach(AttachParams {
                conversation: conv(),
                path: "/home/alice/report.pdf".into(),
                caption: "the report".into(),
                name: Some("report-v2.pdf".into()),
                content_type: Some("application/pdf".into()),
                confirm_changed_keys: true,
                reply_to: Some(msg_id),
            }),
            Call::Download(DownloadParams {
                conversation: conv(),
                id: msg_id,
                path: Some("/tmp/report.pdf".into()),
                overwrite: true,
            }),
            Call::React(ReactParams {
                conversation: conv(),
                id: msg_id,
                emoji: "\u{1F44D}".into(),
                remove: true,
            }),
            Call::Edit(EditParams {
                conversation: conv(),
                id: msg_id,
                text: "fixed".into(),
            }),
            Call::Delete(DeleteParams {
                conversation: conv(),
                id: msg_id,
                for_me: true,
            }),
            Call::MessageEdits(MessageRefParams {
                conversation: conv(),
                id: msg_id,
            }),
            Call::Mentions(MentionsParams {
                conversation: None,
                before: Some(msg_id),
                limit: Limit::new(20).unwrap(),
            }),
            Call::Typing(TypingParams {
                conversation: conv(),
                on: true,
            }),
            Call::ConversationSettingsMethod(ConversationSettingsParams {
                conversation: conv(),
                read_receipts: Some(true),
                typing: None,
                timer_seconds: Some(86_400),
                notify: Some(NotifyMode::Mentions),
                notify_content: Some(false),
            }),
            Call::SettingsMethod(SettingsParams {
                read_receipts: Some(false),
                notify: Some(NotifyMode::All),
                ..SettingsParams::default()
            }),
            Call::Focus(FocusParams {
                conversation: Some(conv()),
            }),
            Call::History(HistoryParams {
                conversation: conv(),
                before: Some(msg_id),
                limit: Limit::new(500).unwrap(),
            }),
            Call::Search(SearchParams {
                query: "lunch".into(),
                conversation: Some(conv()),
                limit: Limit::new(3).unwrap(),
                offset: 6,
            }),
            Call::Read(ReadParams {
                conversation: conv(),
                up_to: Some(msg_id),
            }),
            Call::MessageRetry(MessageParams { id: msg_id }),
            Call::MessageDiscard(MessageParams { id: msg_id }),
            Call::Verify(VerifyParams {
                username: "bob".into(),
                confirm: true,
                safety_number: Some("12345 67890".into()),
                conversation: Some(ConversationRef::parse("team").unwrap()),
            }),
            Call::Invites(NoParams {}),
            Call::Accept(InvitationParams {
                id: InvitationId([3; 16]),
            }),
            Call::Decline(DeclineParams {
                id: InvitationId([3; 16]),
                reason: Some("not now".into()),
            }),
            Call::AutoAcceptSetting(AutoAcceptParams {
                mode: Some(AutoAccept::Verified),
            }),
            Call::Subscribe(SubscribeParams {
                since: Some(Seq(41)),
            }),
            Call::Shutdown(NoParams {}),
        ]
    }

    #[test]
    fn every_call_round_trips_through_a_line() {
        let calls = sample_calls();
        let names: Vec<&str> = calls.iter().map(Call::method).collect();
        assert_eq!(names, Call::METHODS, "sample_calls misses a method");
        for (n, call) in calls.into_iter().enumerate() {
            let id = Id::Num(n as i64);
            let line = request_line(&id, call.method(), &call.params().unwrap()).unwrap();
            let req = IncomingRequest::parse(&line[..line.len() - 1]).unwrap();
            assert_eq!(req.id, id);
            assert_eq!(req.call, call);
        }
    }

    #[test]
    fn optional_params_have_their_defaults() {
        let parse = |method, params| Call::from_parts(method, Some(params)).unwrap();
        assert_eq!(
            parse("history", json!({"conversation": "team"})),
            Call::History(HistoryParams {
                conversation: conv(),
                before: None,
                limit: Limit::DEFAULT,
            })
        );
        assert_eq!(
            parse("group.create", json!({"name": "t", "members": []})),
            Call::GroupCreate(GroupCreateParams {
                name: "t".into(),
                members: vec![],
                ciphersuite: Ciphersuite::Hybrid,
            })
        );
        assert_eq!(
            parse("send", json!({"conversation": "@bob", "text": "x"})),
            Call::Send(SendParams {
                conversation: ConversationRef::Dm("bob".into()),
                text: "x".into(),
                confirm_changed_keys: false,
                reply_to: None,
            })
        );
        assert_eq!(
            parse("settings", json!({})),
            Call::SettingsMethod(SettingsParams::default())
        );
        assert_eq!(
            parse("subscribe", json!({"since": null})),
            Call::Subscribe(SubscribeParams { since: None })
        );
        assert_eq!(
            Call::from_parts("subscribe", None).unwrap(),
            Call::Subscribe(SubscribeParams { since: None })
        );
        assert_eq!(
            parse(
                "login",
                json!({"server": "h:1", "username": "a", "password": "p", "server_fingerprint": "AB:".repeat(31) + "AB"})
            ),
            Call::Login(AccountParams {
                server: "h:1".into(),
                server_fingerprint: Some([0xab; 32]),
                username: "a".into(),
                password: Secret::new("p"),
            })
        );
        let e = Call::from_parts("login", Some(json!({"server": "h:1", "username": "a", "password": "p", "server_fingerprint": "abc"}))).unwrap_err();
        assert_eq!(e.code, IpcErrorCode::InvalidParams);
        assert!(e.message.contains("server_fingerprint"), "{}", e.message);
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let call = Call::from_parts(
            "login",
            Some(json!({"server": "h:1", "username": "a", "password": "hunter2"})),
        )
        .unwrap();
        assert!(!format!("{call:?}").contains("hunter2"));
    }

    #[test]
    fn hello_version_check() {
        let mut hello = HelloParams {
            client: "t".into(),
            client_version: "0".into(),
            protocol: IPC_PROTOCOL_VERSION,
        };
        assert!(hello.check_version().is_ok());
        hello.protocol = 7;
        let e = hello.check_version().unwrap_err();
        assert_eq!(e.code, IpcErrorCode::VersionMismatch.as_i32());
        assert!(
            e.message.contains('7') && e.message.contains('1'),
            "{}",
            e.message
        );
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        let json = serde_json::to_string(&v).unwrap();
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v, "{json}");
    }

    /// A daemon from before `integrity` answers `status` without it: that
    /// reads as `ok`, and the words on the wire are the ones ipc.md lists.
    #[test]
    fn status_integrity_defaults_to_ok_and_uses_the_documented_words() {
        let old = json!({
            "profile": "p", "account": null, "server": null, "connection": "online",
            "keystore": "keyring", "ciphersuite": "hybrid", "outbox": 0, "unread": 0
        });
        let st: StatusResult = serde_json::from_value(old).unwrap();
        assert_eq!(st.integrity, IntegrityState::Ok);
        assert_eq!(st.integrity_detail, "");
        let book = include_str!("../../../docs/src/reference/ipc.md");
        for state in [
            IntegrityState::Ok,
            IntegrityState::Corrupt,
            IntegrityState::Rollback,
            IntegrityState::CounterInvalid,
            IntegrityState::CounterMissing,
        ] {
            let word = serde_json::to_value(state).unwrap();
            let word = word.as_str().unwrap();
            assert!(book.contains(&format!("`{word}`")), "ipc.md lacks `{word}`");
        }
    }

    #[test]
    fn every_result_round_trips() {
        let identity = IdentityKey([3; 32]);
        let account = Account {
            username: "alice".into(),
            identity,
        };
        let conversation = Conversation {
            id: ConversationId([2; 16]),
            name: "team".into(),
            kind: ConversationKind::Group,
            members: vec!["alice".into(), "bob".into()],
            unread: 3,
            ciphersuite: Ciphersuite::Hybrid,
            last_activity_ms: 1_700_000_000_000,
        };
        let message = Message {
            id: MessageId([4; 16]),
            conversation: conversation.id,
            sender: "bob".into(),
            timestamp_ms: 1_700_000_000_001,
            text: "hi".into(),
            outgoing: false,
            state: MessageState::Received,
            failure: None,
            meta: Default::default(),
        };
        round_trip(HelloResult {
            daemon_version: "0.1.0".into(),
            protocol: 1,
            profile: "default".into(),
        });
        round_trip(StatusResult {
            profile: "default".into(),
            account: Some(account.clone()),
            server: Some("h:1,h:2".into()),
            node: Some("h:2 (192.0.2.7:2)".into()),
            connection: ConnectionState::Reconnecting,
            connection_detail: String::new(),
            keystore: KeystoreState::Keyring,
            ciphersuite: Ciphersuite::Hybrid,
            outbox: 2,
            unread: 5,
            new_state: false,
            integrity: IntegrityState::Rollback,
            integrity_detail: "rolled back".into(),
            storage: StorageState::Failing,
            storage_detail: "database or disk is full".into(),
        });
        round_trip(StatusResult {
            profile: "p".into(),
            account: None,
            server: None,
            node: None,
            connection: ConnectionState::LoggedOut,
            connection_detail: String::new(),
            keystore: KeystoreState::Locked,
            ciphersuite: Ciphersuite::Classic,
            outbox: 0,
            unread: 0,
            new_state: false,
            integrity: IntegrityState::Ok,
            integrity_detail: String::new(),
            storage: StorageState::Ok,
            storage_detail: String::new(),
        });
        round_trip(Empty {});
        round_trip(account);
        round_trip(WhoamiResult {
            username: "alice".into(),
            identity,
            server: "h:1".into(),
        });
        round_trip(vec![conversation.clone()]);
        round_trip(conversation);
        round_trip(RekeyResult { epoch: 9 });
        round_trip(vec![Member {
            username: "bob".into(),
            identity,
            verified: false,
            key_changed: true,
            deleted: true,
        }]);
        round_trip(message.clone());
        let annotated = Message {
            meta: MessageMeta {
                reply_to: Some(Quote {
                    id: MessageId([5; 16]),
                    sender: "alice".into(),
                    excerpt: "the deploy".into(),
                    missing: false,
                }),
                reactions: vec![Reaction {
                    emoji: "\u{1F44D}".into(),
                    by: vec!["alice".into(), "bob".into()],
                }],
                edited: true,
                deleted: false,
                mentions_me: true,
                expires_at_ms: Some(1_700_000_086_400),
                read_by: vec!["carol".into()],
                attachment: Some(Box::new(Attachment {
                    name: "report.pdf".into(),
                    size: 5,
                    content_type: "application/pdf".into(),
                    sha256: "ab".repeat(32),
                    state: TransferState::Available,
                    path: None,
                    error: None,
                })),
            },
            ..message.clone()
        };
        round_trip(annotated.clone());
        let wire = serde_json::to_value(&message).unwrap();
        assert!(
            wire.get("reactions").is_none() && wire.get("edited").is_none(),
            "empty annotations stay off the wire: {wire}"
        );
        round_trip(vec![message, annotated]);
        round_trip(vec![MessageVersion {
            text: "first".into(),
            timestamp_ms: 1,
        }]);
        round_trip(ConversationSettings {
            conversation: ConversationId([2; 16]),
            read_receipts: true,
            typing: false,
            timer_seconds: 3600,
            notify: NotifyMode::Mentions,
            notify_content: false,
        });
        round_trip(Settings {
            read_receipts: false,
            typing: false,
            notify: NotifyMode::All,
            notify_content: true,
        });
        round_trip(ReadResult { unread: 0 });
        round_trip(VerifyResult {
            username: "bob".into(),
            safety_number: "12345 67890".into(),
            verified: true,
            key_changed: false,
            matches_directory: false,
        });
        round_trip(SubscribeResult { seq: Seq(12) });
    }

    #[test]
    fn results_accept_fields_from_newer_daemons() {
        let r: HelloResult = serde_json::from_value(json!({
            "daemon_version": "9.0", "protocol": 1, "profile": "p", "features": ["x"]
        }))
        .unwrap();
        assert_eq!(r.profile, "p");
        let _: Empty = serde_json::from_value(json!({"note": 1})).unwrap();
    }

    #[test]
    fn method_markers_match_the_calls() {
        fn name<M: Method>() -> &'static str {
            M::NAME
        }
        assert_eq!(name::<method::DmOpen>(), "dm.open");
        assert_eq!(name::<method::Send>(), "send");
        assert_eq!(name::<method::Shutdown>(), "shutdown");
    }

    /// The Methods table of ipc.md lists exactly the methods of [`Call`].
    #[test]
    fn book_lists_every_method() {
        let book = include_str!("../../../docs/src/reference/ipc.md");
        let in_book = table_names(book, "## Methods");
        let ours: BTreeSet<String> = Call::METHODS.iter().map(|m| (*m).to_owned()).collect();
        assert_eq!(in_book, ours, "ipc.md's method table and Call disagree");
    }

    /// The first-column names (in backticks) of the table under `heading`.
    pub(crate) fn table_names(book: &str, heading: &str) -> BTreeSet<String> {
        let section = book
            .split(&format!("\n{heading}"))
            .nth(1)
            .unwrap_or_else(|| panic!("ipc.md has no {heading:?}"));
        let section = section.split("\n## ").next().unwrap();
        let names: Vec<String> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|l| l.split('`').next().unwrap().to_owned())
            .collect();
        let set: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(set.len(), names.len(), "{heading} lists a name twice");
        set
    }
}
