//! The whole state of the UI. `update` changes it, `render` draws it; no I/O
//! happens here (but for [`App::new`] reading where it runs: the working,
//! home and download directories) and nothing here knows about the
//! terminal or the socket.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use quicproquo_protocol::ipc::methods::{AttachParams, StatusResult, VerifyResult};
use quicproquo_protocol::ipc::notifications::TransferUpdate;
use quicproquo_protocol::ipc::values::Invitation;
use quicproquo_protocol::ipc::values::{
    Ciphersuite, ConnectionState, Conversation, ConversationId, Member, Message, MessageId,
    MessageVersion, TransferDirection,
};

use crate::attach::{PastedFile, Places};
use crate::commands::Completion;
use crate::config::Config;
use crate::input::Editor;
use crate::timeline::Timeline;

/// Something that is being fetched: lists say which state they are in, so
/// "loading" is never shown as "empty".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loadable<T> {
    Loading,
    Ready(T),
    Failed(String),
}

/// The link to qpqd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daemon {
    Connecting,
    Connected,
    /// Gone; the worker retries by itself.
    Gone(String),
}

/// Which full screen is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Waiting for the daemon's first answer.
    Starting,
    /// No account in this profile: register or log in.
    Account(Box<AccountForm>),
    /// The state is locked: the passphrase.
    Unlock(UnlockForm),
    Main,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountMode {
    Register,
    Login,
}

/// The first-run form. Fields: server, fingerprint, username, password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountForm {
    pub mode: AccountMode,
    pub fields: [Editor; 5],
    /// 0 is the mode switch, 1..=5 the fields (the fifth, the password
    /// again, only when creating an account).
    pub focus: usize,
    pub busy: bool,
    pub error: Option<String>,
}

impl AccountForm {
    pub const LABELS: [&'static str; 5] = [
        "Server (host:port)",
        "Server certificate SHA-256 (optional)",
        "Username",
        "Password",
        "Password again",
    ];

    pub fn new(server: &str) -> AccountForm {
        let mut fields: [Editor; 5] = Default::default();
        fields[0].set_text(server);
        AccountForm {
            mode: AccountMode::Register,
            fields,
            focus: 3,
            busy: false,
            error: None,
        }
    }

    /// The form for logging an existing account (logged out) back in:
    /// its server and username filled in, the password focused.
    pub fn login(server: &str, username: &str) -> AccountForm {
        let mut form = AccountForm::new(server);
        form.mode = AccountMode::Login;
        form.fields[2].set_text(username);
        form.focus = 4;
        form
    }

    /// How many fields the mode shows: a new account's password is typed
    /// twice.
    pub fn field_count(&self) -> usize {
        match self.mode {
            AccountMode::Register => 5,
            AccountMode::Login => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnlockForm {
    /// No state exists yet: this passphrase creates it, so it is chosen
    /// (typed twice, long enough) rather than just entered.
    pub new_state: bool,
    pub passphrase: Editor,
    pub again: Editor,
    /// The cursor is on `again`.
    pub on_again: bool,
    pub busy: bool,
    pub error: Option<String>,
}

/// `/passwd` or `/delete-account`: secrets typed in masked fields over the
/// main screen, checked before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountChange {
    pub delete: bool,
    /// `/passwd`: the current password, the new one, the new one again.
    /// `/delete-account`: the username typed out, the password.
    pub fields: [Editor; 3],
    pub focus: usize,
    pub busy: bool,
    pub error: Option<String>,
}

impl AccountChange {
    pub fn new(delete: bool) -> AccountChange {
        AccountChange {
            delete,
            ..AccountChange::default()
        }
    }

    /// The fields' labels; a label ending in `*` is masked.
    pub fn labels(&self) -> &'static [&'static str] {
        if self.delete {
            &["Type your username to confirm", "Password*"]
        } else {
            &["Current password*", "New password*", "New password again*"]
        }
    }
}

/// A box over the main screen that takes the keys while it is up.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Help {
        scroll: usize,
    },
    AccountChange(Box<AccountChange>),
    /// A safety number; `v` marks the key verified.
    Verify(VerifyResult),
    /// A send refused because a member's key changed: `y` sends anyway.
    ConfirmSend {
        conversation: ConversationId,
        text: String,
        /// Members whose key changed, when known.
        changed: Vec<String>,
        /// A refused `attach`, sent again with the confirmation (`text` is
        /// then what the box shows of it).
        attach: Option<Box<AttachParams>>,
    },
    Search {
        query: String,
        results: Loadable<Vec<Message>>,
        selected: usize,
    },
    /// Invitations waiting for the user: `a` accepts the selected one, `d`
    /// declines it.
    Invites {
        list: Vec<Invitation>,
        selected: usize,
    },
    /// The emoji picker for the selected message: one of [`REACTIONS`]
    /// (`/react` takes any other).
    React {
        conversation: ConversationId,
        id: MessageId,
        selected: usize,
    },
    /// "Delete for everyone / for me" on the selected message (for
    /// everyone only on our own).
    Delete {
        conversation: ConversationId,
        id: MessageId,
        own: bool,
    },
    /// A pasted (or dropped) file path: `y` attaches the file to the open
    /// conversation, `n` inserts the pasted text as usual.
    ConfirmAttach {
        conversation: ConversationId,
        file: PastedFile,
        text: String,
    },
    /// An edited message's earlier versions (`message.edits`), oldest
    /// first, then the text it has now.
    Edits {
        current: String,
        versions: Loadable<Vec<MessageVersion>>,
    },
}

/// The picker's emoji, in its order (keys 1–8 pick them directly).
pub const REACTIONS: [&str; 8] = [
    "\u{1F44D}",
    "\u{2764}\u{FE0F}",
    "\u{1F602}",
    "\u{1F62E}",
    "\u{1F622}",
    "\u{1F389}",
    "\u{1F440}",
    "\u{1F64F}",
];

/// A peer's typing indicator disappears this long after its last `typing`.
pub const TYPING_SHOWN: Duration = Duration::from_secs(6);
/// Our `typing on` is repeated at most this often while the user types.
pub const TYPING_REPEAT: Duration = Duration::from_secs(3);
/// Our `typing off` follows this long without a keystroke.
pub const TYPING_IDLE: Duration = Duration::from_secs(5);

/// What Enter does with the input besides sending a new message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compose {
    /// The message answers `id` (shown as "replying to sender: excerpt").
    Reply {
        conversation: ConversationId,
        id: MessageId,
        sender: String,
        excerpt: String,
    },
    /// The input holds the new text of our message `id`.
    Edit {
        conversation: ConversationId,
        id: MessageId,
    },
}

/// Our typing indicator: where it is on, when `typing on` was last sent
/// and when the user last typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnTyping {
    pub conversation: ConversationId,
    pub sent_at: Instant,
    pub last_key: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Info,
    Error,
}

/// A line for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub level: NoticeLevel,
    pub text: String,
    /// Said of something else than the user's last action (someone joined,
    /// the connection came back): it never hides the answer to that action.
    pub news: bool,
}

/// An attachment moving (from `transfer` notifications): what the
/// progress line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub direction: TransferDirection,
    pub done: u64,
    pub total: u64,
    /// When the first notification of this transfer came, and its `done`:
    /// the rate is the average since.
    pub since: Instant,
    pub done_at_start: u64,
    /// Bytes per second, once there is a second notification.
    pub rate: Option<f64>,
}

/// What happens when a download the user asked for ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDownload {
    /// The save key: say where it went.
    Saved,
    /// The open key: hand it to the desktop's opener.
    Open,
}

/// Tab completion in progress: the candidates and which one is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completing {
    pub completion: Completion,
    pub index: usize,
}

pub struct App {
    pub config: Config,
    /// Times are shown in this zone (tests use UTC).
    pub tz: TimeZone,
    pub profile: String,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    pub daemon: Daemon,
    pub status: Option<StatusResult>,
    pub screen: Screen,
    pub conversations: Loadable<Vec<Conversation>>,
    pub selected: Option<ConversationId>,
    pub timelines: HashMap<ConversationId, Timeline>,
    pub members: HashMap<ConversationId, Loadable<Vec<Member>>>,
    pub show_members: bool,
    pub editor: Editor,
    pub overlay: Option<Overlay>,
    pub notice: Option<Notice>,
    /// The latest news that came while the answer to the user's action was
    /// shown: it shows once that answer is dismissed.
    pub held_news: Option<Notice>,
    /// Users whose identity key changed since it was last verified.
    pub changed_keys: HashSet<String>,
    pub completing: Option<Completing>,
    pub quit: bool,
    /// The time of the action being applied: the event loop sets it before
    /// each one (tests move it by hand), so `update` reads no clock.
    pub now: Instant,
    /// Selecting a message (Shift+Up/Down): with an empty input, letters act
    /// on the selected message (`r` reply, `e` react, …).
    pub selecting: bool,
    pub compose: Option<Compose>,
    /// Who is typing where, and when their last `typing` came.
    pub typing: HashMap<ConversationId, Vec<(String, Instant)>>,
    pub own_typing: Option<OwnTyping>,
    /// The conversation last given to `focus` (`None`: not told yet, e.g.
    /// after a reconnect).
    pub focused: Option<Option<ConversationId>>,
    /// The working directory, home and download directory (attachments).
    pub places: Places,
    /// Attachments moving now, by message.
    pub transfers: HashMap<MessageId, Progress>,
    /// Image previews, by message (decoded once; kept while the TUI runs).
    pub previews: HashMap<MessageId, crate::preview::Preview>,
    /// Images already downloaded for a preview (asked once each).
    pub preview_asked: HashSet<MessageId>,
    /// Downloads the user asked for, and what to do when each ends.
    pub after_download: HashMap<MessageId, AfterDownload>,
    /// Transfers that ended before their message arrived (bounded).
    pub stashed_transfers: HashMap<MessageId, TransferUpdate>,
    /// The terminal graphics previews use (chosen at start from the
    /// `graphics` setting and the environment; `None`: half-blocks).
    pub graphics: Option<crate::graphics::Protocol>,
    /// The terminal's cell size in pixels, when it reports one.
    pub cell_px: Option<(u32, u32)>,
    /// The id the next image sent to the terminal gets.
    pub next_image_id: u32,
}

impl App {
    pub fn new(config: Config, profile: impl Into<String>, size: (u16, u16)) -> App {
        let mut places = Places::from_env();
        if let Some(dir) = &config.download_dir {
            places.downloads = dir.clone();
        }
        App {
            config,
            tz: TimeZone::try_system().unwrap_or(TimeZone::UTC),
            profile: profile.into(),
            size,
            daemon: Daemon::Connecting,
            status: None,
            screen: Screen::Starting,
            conversations: Loadable::Loading,
            selected: None,
            timelines: HashMap::new(),
            members: HashMap::new(),
            show_members: false,
            editor: Editor::default(),
            overlay: None,
            notice: None,
            held_news: None,
            changed_keys: HashSet::new(),
            completing: None,
            quit: false,
            now: Instant::now(),
            selecting: false,
            compose: None,
            typing: HashMap::new(),
            own_typing: None,
            focused: None,
            places,
            transfers: HashMap::new(),
            previews: HashMap::new(),
            preview_asked: HashSet::new(),
            after_download: HashMap::new(),
            stashed_transfers: HashMap::new(),
            graphics: None,
            cell_px: None,
            next_image_id: 1,
        }
    }

    /// Our username, once known.
    pub fn me(&self) -> Option<&str> {
        self.status
            .as_ref()
            .and_then(|s| s.account.as_ref())
            .map(|a| a.username.as_str())
    }

    pub fn conversation_list(&self) -> &[Conversation] {
        match &self.conversations {
            Loadable::Ready(list) => list,
            _ => &[],
        }
    }

    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversation_list().iter().find(|c| c.id == id)
    }

    pub fn current(&self) -> Option<&Conversation> {
        self.selected.and_then(|id| self.conversation(id))
    }

    pub fn timeline(&self) -> Option<&Timeline> {
        self.selected.and_then(|id| self.timelines.get(&id))
    }

    /// The connection to the server, as far as known.
    pub fn connection(&self) -> Option<ConnectionState> {
        match self.daemon {
            Daemon::Connected => self.status.as_ref().map(|s| s.connection),
            _ => None,
        }
    }

    /// Is the open conversation post-quantum protected?
    pub fn post_quantum(&self) -> Option<bool> {
        self.current().map(|c| c.ciphersuite == Ciphersuite::Hybrid)
    }

    /// How a conversation is titled: `@bob` for a DM, the name for a group.
    pub fn title(&self, c: &Conversation) -> String {
        use quicproquo_protocol::ipc::values::ConversationKind;
        match c.kind {
            ConversationKind::Dm => {
                let me = self.me();
                let peer = c
                    .members
                    .iter()
                    .find(|m| Some(m.as_str()) != me)
                    .map_or(c.name.as_str(), String::as_str);
                format!("@{}", peer.trim_start_matches('@'))
            }
            ConversationKind::Group => format!("#{}", c.name),
        }
    }

    /// Does the conversation have a member whose key changed?
    pub fn has_changed_key(&self, c: &Conversation) -> bool {
        c.members.iter().any(|m| self.changed_keys.contains(m))
    }

    /// Every username the TUI has seen, for completion.
    pub fn known_users(&self) -> Vec<String> {
        let me = self.me();
        let mut users: Vec<String> = self
            .conversation_list()
            .iter()
            .flat_map(|c| c.members.iter())
            .chain(
                self.members
                    .values()
                    .filter_map(|m| match m {
                        Loadable::Ready(ms) => Some(ms),
                        _ => None,
                    })
                    .flatten()
                    .map(|m| &m.username),
            )
            .filter(|u| Some(u.as_str()) != me)
            .cloned()
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// Who is typing in a conversation now, oldest first.
    pub fn typing_in(&self, id: ConversationId) -> Vec<&str> {
        self.typing.get(&id).map_or_else(Vec::new, |list| {
            list.iter()
                .filter(|(_, at)| self.now.saturating_duration_since(*at) < TYPING_SHOWN)
                .map(|(who, _)| who.as_str())
                .collect()
        })
    }

    /// The answer to the user's own action (it replaces what is shown).
    pub fn info(&mut self, text: impl Into<String>) {
        self.say(NoticeLevel::Info, text.into(), false);
    }

    /// A refusal or a failure (it replaces what is shown).
    pub fn error(&mut self, text: impl Into<String>) {
        self.say(NoticeLevel::Error, text.into(), false);
    }

    /// Something that happened by itself (a member joined, a key changed
    /// elsewhere, the connection came back). It never replaces the answer
    /// to the user's last action, which they may not have read yet: it
    /// waits until that one is dismissed ([`App::dismiss_notice`]).
    pub fn news(&mut self, text: impl Into<String>) {
        self.say(NoticeLevel::Info, text.into(), true);
    }

    /// The user moved on (Esc, a message or a command sent): the notice
    /// goes, and news that waited behind it shows.
    pub fn dismiss_notice(&mut self) {
        self.notice = self.held_news.take();
    }

    fn say(&mut self, level: NoticeLevel, text: String, news: bool) {
        let notice = Notice { level, text, news };
        match &self.notice {
            Some(shown) if news && !shown.news => self.held_news = Some(notice),
            _ => self.notice = Some(notice),
        }
    }
}
