//! Frame render time with 100,000 messages in the open conversation
//! (target ≤ 2 ms), following the newest and scrolled to the middle, and a
//! PgUp through `update`. `cargo bench -p quicproquo-tui --bench render`.
//! Results and the start-up figure: qpq-tui/BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::tz::TimeZone;
use quicproquo_protocol::ipc::methods::StatusResult;
use quicproquo_protocol::ipc::values::{
    Account, Ciphersuite, ConnectionState, Conversation, ConversationId, ConversationKind,
    KeystoreState, Message, MessageId, MessageState,
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

fn app(w: u16, h: u16) -> App {
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
                meta: Default::default(),
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
    let (w, h) = (160, 50);
    let mut app = app(w, h);
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    c.bench_function("frame, 100k messages, newest", |b| {
        b.iter(|| terminal.draw(|f| render(&app, f)).unwrap().area)
    });
    app.timelines.get_mut(&CONV).unwrap().view = View::At {
        index: N as usize / 2,
        skip: 0,
    };
    c.bench_function("frame, 100k messages, scrolled to the middle", |b| {
        b.iter(|| terminal.draw(|f| render(&app, f)).unwrap().area)
    });
    c.bench_function("PgUp then PgDn (update), 100k messages", |b| {
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
