//! Frame render time with 100,000 messages in the open conversation
//! (target ≤ 2 ms), following the newest and scrolled to the middle, and a
//! PgUp through `update`; then the same with 10 % of the messages carrying
//! reactions, a reply's quote or an edit (issue 17), measured in the same
//! run against the plain baseline. `cargo bench -p quicproquo-tui --bench
//! render`.
//! Results and the start-up figure: qpq-tui/BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::tz::TimeZone;
use quicproquo_protocol::ipc::methods::StatusResult;
use quicproquo_protocol::ipc::values::{
    Account, Ciphersuite, ConnectionState, Conversation, ConversationId, ConversationKind,
    KeystoreState, Message, MessageId, MessageMeta, MessageState, Quote, Reaction,
};
use quicproquo_protocol::types::IdentityKey;
use quicproquo_tui::action::{Action, DaemonEvent};
use quicproquo_tui::app::App;
use quicproquo_tui::config::Config;
use quicproquo_tui::render::render;
use quicproquo_tui::timeline::View;
use quicproquo_tui::update::update;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const N: u32 = 100_000;
const CONV: ConversationId = ConversationId([7; 16]);

/// Every tenth message annotated, in turn with reactions, a reply's quote
/// or an edit (with a read receipt on our own).
fn annotations(i: u32) -> MessageMeta {
    let mut meta = MessageMeta::default();
    if i % 10 != 7 {
        return meta;
    }
    match (i / 10) % 3 {
        0 => {
            meta.reactions = vec![
                Reaction {
                    emoji: "👍".into(),
                    by: vec!["alice".into(), "bob".into(), "李小龍".into()],
                },
                Reaction {
                    emoji: "🎉".into(),
                    by: vec!["bob".into()],
                },
            ]
        }
        1 => {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&(i - 1).to_be_bytes());
            meta.reply_to = Some(Quote {
                id: MessageId(id),
                sender: "bob".into(),
                excerpt: format!("message {}", i - 1),
                missing: false,
            });
        }
        _ => {
            meta.edited = true;
            meta.read_by = vec!["bob".into()];
        }
    }
    meta
}

fn app(w: u16, h: u16, annotated: bool) -> App {
    let mut app = App::new(Config::default(), "bench", (w, h));
    app.tz = TimeZone::UTC;
    let status = StatusResult {
        profile: "bench".into(),
        account: Some(Account {
            username: "alice".into(),
            identity: IdentityKey([1; 32]),
        }),
        server: Some("127.0.0.1:7443".into()),
        node: Some("127.0.0.1:7443".into()),
        connection: ConnectionState::Online,
        connection_detail: String::new(),
        storage: Default::default(),
        storage_detail: String::new(),
        keystore: KeystoreState::Passphrase,
        ciphersuite: Ciphersuite::Hybrid,
        outbox: 0,
        unread: 0,
        new_state: false,
        integrity: Default::default(),
        integrity_detail: String::new(),
    };
    update(&mut app, Action::Daemon(DaemonEvent::Connected { status }));
    let conv = Conversation {
        id: CONV,
        name: "team".into(),
        kind: ConversationKind::Group,
        members: vec!["alice".into(), "bob".into(), "李小龍".into()],
        unread: 0,
        ciphersuite: Ciphersuite::Hybrid,
        last_activity_ms: 0,
    };
    update(
        &mut app,
        Action::Daemon(DaemonEvent::Conversations(vec![conv])),
    );
    let senders = ["alice", "bob", "李小龍"];
    let messages: Vec<Message> = (0..N)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            let sender = senders[i as usize % 3];
            Message {
                id: MessageId(id),
                conversation: CONV,
                sender: sender.into(),
                timestamp_ms: 1_767_225_600_000 + u64::from(i) * 40_000,
                text: if i % 5 == 0 {
                    format!("message {i}: a longer one, so that it wraps over two or three rows of the pane, with 日本語 and 😀 in it")
                } else {
                    format!("message {i}")
                },
                outgoing: sender == "alice",
                state: if sender == "alice" {
                    MessageState::Delivered
                } else {
                    MessageState::Received
                },
                failure: None,
                meta: if annotated {
                    annotations(i)
                } else {
                    MessageMeta::default()
                },
            }
        })
        .collect();
    update(
        &mut app,
        Action::Daemon(DaemonEvent::History {
            conversation: CONV,
            before: None,
            messages,
            complete: true,
            target: None,
        }),
    );
    assert_eq!(app.timeline().unwrap().len(), N as usize);
    app
}

fn benches(c: &mut Criterion) {
    for annotated in [false, true] {
        let what = if annotated {
            "100k messages, 10 % annotated"
        } else {
            "100k messages"
        };
        frames(c, what, annotated);
    }
}

fn frames(c: &mut Criterion, what: &str, annotated: bool) {
    let (w, h) = (160, 50);
    let mut app = app(w, h, annotated);
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    c.bench_function(&format!("frame, {what}, newest"), |b| {
        b.iter(|| terminal.draw(|f| render(&app, f)).unwrap().area)
    });
    app.timelines.get_mut(&CONV).unwrap().view = View::At {
        index: N as usize / 2,
        skip: 0,
    };
    c.bench_function(&format!("frame, {what}, scrolled to the middle"), |b| {
        b.iter(|| terminal.draw(|f| render(&app, f)).unwrap().area)
    });
    c.bench_function(&format!("PgUp then PgDn (update), {what}"), |b| {
        b.iter(|| {
            update(
                &mut app,
                Action::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)),
            );
            update(
                &mut app,
                Action::Key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE)),
            );
        })
    });
}

criterion_group!(render_benches, benches);
criterion_main!(render_benches);
