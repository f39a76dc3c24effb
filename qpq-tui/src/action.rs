//! What flows through the event loop: [`Action`]s come in (terminal events,
//! the worker's results and the daemon's notifications) and `update` turns
//! each into state changes plus [`Effect`]s; a [`Request`] is an effect the
//! worker carries out against qpqd.

use crossterm::event::{KeyEvent, MouseEvent};
use quicproquo_protocol::ipc::client::CallError;
use quicproquo_protocol::ipc::methods::{AccountParams, StatusResult, VerifyResult};
use quicproquo_protocol::ipc::values::{
    Conversation, ConversationId, Member, Message, MessageId, Secret,
};
use quicproquo_protocol::ipc::{IpcErrorCode, Notification};

/// One input to `update`.
#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize(u16, u16),
    Daemon(DaemonEvent),
}

/// A failed call, as the user needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Option<IpcErrorCode>,
    pub message: String,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            code: None,
            message: message.into(),
        }
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Failure {
        Failure {
            code: e.code(),
            message: match &e {
                CallError::Rpc(obj) => obj.message.clone(),
                other => other.to_string(),
            },
        }
    }
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum DaemonEvent {
    /// Not connected; trying again (`reason` says why).
    Disconnected {
        reason: String,
    },
    /// Connected and subscribed.
    Connected {
        status: StatusResult,
    },
    Status(StatusResult),
    Conversations(Vec<Conversation>),
    ConversationsFailed(Failure),
    Notification(Notification),
    /// A page of history. `before` is what was asked for (`None`: the
    /// latest); `complete` when no older message is left.
    History {
        conversation: ConversationId,
        before: Option<MessageId>,
        messages: Vec<Message>,
        complete: bool,
        /// The message a search jump waits for.
        target: Option<MessageId>,
    },
    HistoryFailed {
        conversation: ConversationId,
        failure: Failure,
    },
    Sent(Message),
    SendFailed {
        conversation: ConversationId,
        text: String,
        failure: Failure,
    },
    /// `dm.open` or `group.create` answered: select it.
    Opened(Conversation),
    Members {
        conversation: ConversationId,
        members: Vec<Member>,
    },
    /// Shown in the member panel only (the list asks on its own).
    MembersFailed {
        conversation: ConversationId,
        failure: Failure,
    },
    Verified {
        result: VerifyResult,
        confirmed: bool,
    },
    SearchResults {
        query: String,
        messages: Vec<Message>,
    },
    /// Something done, for the status line.
    Done(String),
    Failed(Failure),
    /// `register`, `login` or `unlock` went through.
    AccountReady,
    AccountFailed(Failure),
}

/// What `update` asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Request(Request),
    /// Ring the terminal bell.
    Bell,
    /// A desktop notification (when configured).
    Notify {
        title: String,
        body: String,
    },
    Quit,
}

/// A call the worker makes to qpqd.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Status,
    Conversations,
    History {
        conversation: ConversationId,
        before: Option<MessageId>,
        /// Keep loading older pages until this message is among them.
        until: Option<MessageId>,
    },
    Send {
        conversation: ConversationId,
        text: String,
        confirm_changed_keys: bool,
    },
    Read {
        conversation: ConversationId,
        up_to: Option<MessageId>,
    },
    DmOpen(String),
    GroupCreate {
        name: String,
        members: Vec<String>,
    },
    GroupAdd {
        conversation: ConversationId,
        members: Vec<String>,
    },
    GroupRemove {
        conversation: ConversationId,
        members: Vec<String>,
    },
    Leave(ConversationId),
    Rekey(ConversationId),
    Members(ConversationId),
    Verify {
        username: String,
        confirm: bool,
        /// With `confirm`: the number the user was shown.
        safety_number: Option<String>,
    },
    Search(String),
    Register(AccountParams),
    Login(AccountParams),
    Unlock(Secret),
}
