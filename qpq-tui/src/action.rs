//! What flows through the event loop: [`Action`]s come in (terminal events,
//! the worker's results and the daemon's notifications) and `update` turns
//! each into state changes plus [`Effect`]s; a [`Request`] is an effect the
//! worker carries out against qpqd — a [`Call`] of the IPC method table,
//! typed as the table types it, so the TUI keeps no list of methods of its
//! own.

use crossterm::event::{KeyEvent, MouseEvent};
use quicproquo_protocol::ipc::client::CallError;
use quicproquo_protocol::ipc::methods::{AttachParams, StatusResult, VerifyResult};
use quicproquo_protocol::ipc::values::{
    Attachment, Conversation, ConversationId, ConversationSettings, Invitation, Member, Message,
    MessageId, MessageVersion,
};
use std::path::PathBuf;

use crate::attach::PastedFile;
use crate::preview::{Picture, PreviewError};
use quicproquo_protocol::ipc::{Call, IpcErrorCode, Notification};

/// One input to `update`.
// Actions pass one at a time; daemon events (a status among them) are the
// common kind, so boxing them would allocate for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    /// A paste that is one existing file's path (the input thread looked).
    PasteFile {
        text: String,
        file: PastedFile,
    },
    Resize(u16, u16),
    /// The terminal's cell size in pixels changed (a font size change comes
    /// as a resize); sent before that resize.
    CellSize(Option<(u32, u32)>),
    /// An image preview was decoded (or refused).
    Preview {
        id: MessageId,
        result: Result<Picture, PreviewError>,
    },
    Daemon(DaemonEvent),
    /// Time passed (about a second): typing indicators expire, ours stops.
    Tick,
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
    /// `integrity.acknowledge` went through: the status after it, and what
    /// it did, for the status line.
    IntegrityAcknowledged {
        status: StatusResult,
        text: String,
    },
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
    /// `dm.open` or `group.create` answered (or an invitation was
    /// accepted): select it.
    Opened(Conversation),
    /// The invitations waiting.
    Invites(Vec<Invitation>),
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
    /// A failed message was discarded: gone from the history.
    Discarded(MessageId),
    /// `react` or `edit` answered with the message as it is now.
    Updated(Message),
    /// `delete` went through.
    Deleted {
        conversation: ConversationId,
        id: MessageId,
        for_me: bool,
    },
    /// `attach` answered: the message, its attachment uploading.
    Attached(Message),
    /// `attach` was refused (the daemon's message says why); its params,
    /// to send again once a changed key is confirmed.
    AttachFailed {
        params: Box<AttachParams>,
        failure: Failure,
    },
    /// `download` answered (`downloading`, or `downloaded` already).
    Downloading {
        conversation: ConversationId,
        id: MessageId,
        attachment: Attachment,
    },
    DownloadFailed {
        conversation: ConversationId,
        id: MessageId,
        failure: Failure,
    },
    /// `edit` was refused: the text goes back into the input.
    EditFailed {
        conversation: ConversationId,
        id: MessageId,
        text: String,
        failure: Failure,
    },
    /// `message.edits`: the earlier versions, oldest first.
    Edits(Vec<MessageVersion>),
    /// `conversation.settings` answered with the settings as they apply.
    Settings(ConversationSettings),
    Failed(Failure),
    /// `register`, `login` or `unlock` went through.
    AccountReady,
    /// `account.password` went through (the text says so).
    PasswordChanged,
    /// `account.delete` went through: the daemon removes the profile and
    /// stops; the TUI quits.
    AccountDeleted,
    AccountFailed(Failure),
}

/// What `update` asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Request(Request),
    /// Ring the terminal bell.
    Bell,
    /// Draw again: something changed with time alone (a tick).
    Redraw,
    /// Hand a file to the desktop's opener (`xdg-open`, `open`).
    Open(PathBuf),
    /// Decode an image preview off the UI thread; `Action::Preview` answers.
    /// `target` says which sharper copy the terminal's graphics need.
    Decode {
        id: MessageId,
        path: PathBuf,
        max_bytes: u64,
        target: crate::graphics::Target,
    },
    /// Write these bytes to the terminal before the next frame (an image
    /// sent through kitty's graphics protocol).
    Transmit(Vec<u8>),
    Quit,
}

/// A call the worker makes to qpqd.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// One method of the IPC table with its typed params; the worker turns
    /// the answer into the event for that method.
    Call(Call),
    /// A page of history before `before` (`None`: the latest), or with
    /// `until` pages until that message is among them (a search jump). The
    /// worker picks the page size.
    History {
        conversation: ConversationId,
        before: Option<MessageId>,
        until: Option<MessageId>,
    },
    /// The save key: download message `id`'s attachment into `dir` under
    /// its name, made unique there (the worker looks at the directory).
    Save {
        conversation: ConversationId,
        id: MessageId,
        dir: PathBuf,
        name: String,
    },
}

impl Effect {
    /// The effect of calling one IPC method.
    pub fn call(call: Call) -> Effect {
        Effect::Request(Request::Call(call))
    }
}
