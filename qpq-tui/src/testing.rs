//! Fixtures for the unit and snapshot tests: an app with an account, three
//! conversations and a history, in UTC; and a screen dump of a render.

#![allow(clippy::unwrap_used)]

use jiff::tz::TimeZone;
use quicproquo_protocol::ipc::methods::StatusResult;
use quicproquo_protocol::ipc::values::{
    Account, Ciphersuite, ConnectionState, Conversation, ConversationId, ConversationKind,
    KeystoreState, Message, MessageId, MessageState,
};
use quicproquo_protocol::types::IdentityKey;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

use crate::action::{Action, DaemonEvent, Effect};
use crate::app::{App, Loadable, Screen};
use crate::config::Config;
use crate::render::render;
use crate::update::update;

pub const TEAM: ConversationId = ConversationId([1; 16]);
pub const BOB: ConversationId = ConversationId([2; 16]);
pub const WIDE: ConversationId = ConversationId([3; 16]);
/// 2026-01-01 00:00 UTC.
pub const T0: u64 = 1_767_225_600_000;

pub fn status() -> StatusResult {
    StatusResult {
        profile: "default".into(),
        account: Some(Account {
            username: "alice".into(),
            identity: IdentityKey([1; 32]),
        }),
        server: Some("chat.example:7443".into()),
        node: Some("chat.example:7443 (192.0.2.7:7443)".into()),
        connection: ConnectionState::Online,
        connection_detail: String::new(),
        storage: Default::default(),
        storage_detail: String::new(),
        keystore: KeystoreState::Passphrase,
        ciphersuite: Ciphersuite::Hybrid,
        outbox: 0,
        unread: 2,
        new_state: false,
        integrity: Default::default(),
        integrity_detail: String::new(),
    }
}

/// What qpqd reports for a profile with no account yet: no session, so
/// logged out, never online.
pub fn no_account_status() -> StatusResult {
    StatusResult {
        account: None,
        server: None,
        connection: ConnectionState::LoggedOut,
        unread: 0,
        new_state: false,
        ..status()
    }
}

pub fn conversation(
    id: ConversationId,
    name: &str,
    kind: ConversationKind,
    members: &[&str],
    unread: u64,
) -> Conversation {
    Conversation {
        id,
        name: name.into(),
        kind,
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        unread,
        ciphersuite: Ciphersuite::Hybrid,
        last_activity_ms: T0,
    }
}

pub fn message(conv: ConversationId, n: u32, sender: &str, minutes: u64, text: &str) -> Message {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id[15] = conv.0[0];
    let outgoing = sender == "alice";
    Message {
        id: MessageId(id),
        conversation: conv,
        sender: sender.into(),
        timestamp_ms: T0 + minutes * 60_000,
        text: text.into(),
        outgoing,
        state: if outgoing {
            MessageState::Delivered
        } else {
            MessageState::Received
        },
        failure: None,
        meta: Default::default(),
    }
}

/// `m` carrying a file (its text becomes the caption).
pub fn with_file(
    mut m: Message,
    name: &str,
    size: u64,
    content_type: &str,
    state: quicproquo_protocol::ipc::values::TransferState,
) -> Message {
    m.meta.attachment = Some(Box::new(quicproquo_protocol::ipc::values::Attachment {
        name: name.into(),
        size,
        content_type: content_type.into(),
        sha256: "00".repeat(32),
        state,
        path: None,
        error: None,
    }));
    m
}

/// Runs an action, returns the effects.
pub fn act(app: &mut App, action: Action) -> Vec<Effect> {
    update(app, action)
}

pub fn daemon(app: &mut App, ev: DaemonEvent) -> Vec<Effect> {
    update(app, Action::Daemon(ev))
}

/// An app connected as alice with #team (selected, with history), a DM with
/// bob (2 unread) and a group with a wide name.
pub fn app(w: u16, h: u16) -> App {
    let mut app = App::new(Config::default(), "default", (w, h));
    app.tz = TimeZone::UTC;
    daemon(&mut app, DaemonEvent::Connected { status: status() });
    assert_eq!(app.screen, Screen::Main);
    daemon(
        &mut app,
        DaemonEvent::Conversations(vec![
            conversation(
                TEAM,
                "team",
                ConversationKind::Group,
                &["alice", "bob", "carol"],
                0,
            ),
            conversation(BOB, "bob", ConversationKind::Dm, &["alice", "bob"], 2),
            conversation(
                WIDE,
                "日本語チーム",
                ConversationKind::Group,
                &["alice", "李"],
                0,
            ),
        ]),
    );
    assert_eq!(app.selected, Some(TEAM));
    let history = vec![
        message(
            TEAM,
            1,
            "bob",
            9 * 60,
            "Morning! Is the release still on for today?",
        ),
        message(TEAM, 2, "alice", 9 * 60 + 2, "Yes — after the tests pass."),
        message(TEAM, 3, "carol", 24 * 60 + 8 * 60, "Shipped it 🚀"),
        message(TEAM, 4, "alice", 24 * 60 + 8 * 60 + 1, "Thanks!"),
    ];
    daemon(
        &mut app,
        DaemonEvent::History {
            conversation: TEAM,
            before: None,
            messages: history,
            complete: true,
            target: None,
        },
    );
    app
}

/// The app without any conversation loaded yet.
pub fn loading_app(w: u16, h: u16) -> App {
    let mut app = App::new(Config::default(), "default", (w, h));
    app.tz = TimeZone::UTC;
    daemon(&mut app, DaemonEvent::Connected { status: status() });
    assert_eq!(app.conversations, Loadable::Loading);
    app
}

/// The screen as text, one line per row, wide characters once.
pub fn screen(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| render(app, f)).unwrap();
    dump(t.backend().buffer())
}

pub fn dump(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut skip = 0usize;
        let mut line = String::new();
        for x in 0..buf.area.width {
            let sym = buf[(x, y)].symbol();
            if skip > 0 {
                skip -= 1;
                continue;
            }
            line.push_str(sym);
            skip = crate::wrap::width(sym).saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
        // Nothing may overflow: every row is exactly the terminal's width.
        let w: usize = (0..buf.area.width)
            .map(|x| {
                let s = buf[(x, y)].symbol();
                usize::from(!s.is_empty()) * crate::wrap::width(s).max(1)
            })
            .sum::<usize>();
        assert!(w <= usize::from(buf.area.width) * 2, "row {y} is corrupt");
    }
    out
}
