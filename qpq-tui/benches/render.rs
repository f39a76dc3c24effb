//! Frame render time with 100,000 messages in the open conversation
//! (target ≤ 2 ms), following the newest and scrolled to the middle, and a
//! PgUp through `update`; then the same with 10 % of the messages carrying
//! reactions, a reply's quote or an edit (issue 17), and with 10 % carrying
//! a file (issue 18: the 📎 line, a progress line, states, and half-block
//! image previews on a third of them), measured in the same run against the
//! plain baseline. `cargo bench -p quicproquo-tui --bench
//! render`.
//! Results and the start-up figure: BENCHMARKS.md at the repository root.

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::tz::TimeZone;
use quicproquo_protocol::ipc::methods::StatusResult;
use quicproquo_protocol::ipc::values::{
    Account, Attachment, Ciphersuite, ConnectionState, Conversation, ConversationId,
    ConversationKind, KeystoreState, Message, MessageId, MessageMeta, MessageState, Quote,
    Reaction, TransferDirection, TransferState,
};
use quicproquo_protocol::types::IdentityKey;
use quicproquo_tui::action::{Action, DaemonEvent};
use quicproquo_tui::app::{App, Progress};
use quicproquo_tui::config::Config;
use quicproquo_tui::preview::{Picture, Preview};
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

/// What the messages carry besides their text.
#[derive(Clone, Copy, PartialEq)]
enum Extra {
    Plain,
    Annotated,
    /// Every tenth message a file: in turn an image with its preview, a
    /// file moving (progress line), an expired one.
    Files,
}

fn attachment(i: u32) -> Option<Box<Attachment>> {
    if i % 10 != 3 {
        return None;
    }
    let (name, content_type, state) = match (i / 10) % 3 {
        0 => ("photo.png", "image/png", TransferState::Downloaded),
        1 => ("slides.pdf", "application/pdf", TransferState::Downloading),
        _ => ("notes.txt", "text/plain", TransferState::Expired),
    };
    Some(Box::new(Attachment {
        name: format!("{i}-{name}"),
        size: 2_100_000 + u64::from(i),
        content_type: content_type.into(),
        sha256: "00".repeat(32),
        state,
        path: Some(format!("/home/alice/Downloads/{i}-{name}")),
        error: None,
    }))
}

/// A preview the size of the largest: 40×16 pixels of a gradient.
fn picture() -> Picture {
    Picture::from_rows(
        (0..16u8)
            .map(|y| (0..40u8).map(|x| Some([x * 6, y * 16, 128])).collect())
            .collect(),
    )
}

fn app(w: u16, h: u16, extra: Extra) -> App {
    let mut app = App::new(Config::default(), "bench", (w, h));
    // Previews are placed by hand below; nothing is downloaded.
    app.config.image_previews = false;
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
                meta: match extra {
                    Extra::Plain => MessageMeta::default(),
                    Extra::Annotated => annotations(i),
                    Extra::Files => MessageMeta {
                        attachment: attachment(i),
                        ..MessageMeta::default()
                    },
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
    if extra == Extra::Files {
        let files: Vec<(MessageId, TransferState)> = app
            .timeline()
            .unwrap()
            .messages()
            .iter()
            .filter_map(|m| Some((m.id, m.meta.attachment.as_ref()?.state)))
            .collect();
        let now = app.now;
        for (id, state) in files {
            match state {
                TransferState::Downloaded => {
                    app.previews.insert(id, Preview::Ready(picture()));
                }
                TransferState::Downloading => {
                    app.transfers.insert(
                        id,
                        Progress {
                            direction: TransferDirection::Down,
                            done: 900_000,
                            total: 2_100_000,
                            since: now,
                            done_at_start: 0,
                            rate: Some(12_300_000.0),
                        },
                    );
                }
                _ => {}
            }
        }
    }
    app
}

fn benches(c: &mut Criterion) {
    for (extra, what) in [
        (Extra::Plain, "100k messages"),
        (Extra::Annotated, "100k messages, 10 % annotated"),
        (Extra::Files, "100k messages, 10 % with files"),
    ] {
        frames(c, what, extra);
    }
}

fn frames(c: &mut Criterion, what: &str, extra: Extra) {
    let (w, h) = (160, 50);
    let mut app = app(w, h, extra);
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
