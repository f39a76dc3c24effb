//! The app's behaviour without a terminal or a daemon: keys in, effects
//! and state out.

#![allow(clippy::unwrap_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use quicproquo_protocol::ipc::methods::{
    ConversationParams, DmOpenParams, GroupCreateParams, GroupMembersParams, MessageParams,
    NoParams, ReadParams, SearchParams, SendParams, VerifyParams,
};
use quicproquo_protocol::ipc::notifications::{DeliveryUpdate, NewMessage};
use quicproquo_protocol::ipc::values::{
    Ciphersuite, ConversationId, ConversationRef, DeliveryState, Limit, MessageState, Seq,
};
use quicproquo_protocol::ipc::{Call, IpcErrorCode, Notification};
use ratatui::backend::TestBackend;
use ratatui::style::Modifier;
use ratatui::Terminal;

use crate::action::{Action, DaemonEvent, Effect, Failure, Request};
use crate::app::{App, Daemon, Overlay};
use crate::testing::*;
use crate::timeline::View;

fn press(app: &mut App, code: KeyCode, mods: KeyModifiers) -> Vec<Effect> {
    act(app, Action::Key(KeyEvent::new(code, mods)))
}

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    press(app, code, KeyModifiers::NONE)
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// The params of a call that names only `id`.
fn on(id: ConversationId) -> ConversationParams {
    ConversationParams {
        conversation: id.into(),
    }
}

fn send(text: &str, confirm_changed_keys: bool) -> Request {
    Request::Call(Call::Send(SendParams {
        conversation: TEAM.into(),
        text: text.into(),
        confirm_changed_keys,
        reply_to: None,
    }))
}

/// The requests among the effects, without the hints (`typing`, `focus`)
/// that [`hints`] lists.
fn requests(fx: &[Effect]) -> Vec<Request> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Request(Request::Call(Call::Typing(_) | Call::Focus(_))) => None,
            Effect::Request(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The `typing` and `focus` calls among the effects.
fn hints(fx: &[Effect]) -> Vec<Call> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Request(Request::Call(c @ (Call::Typing(_) | Call::Focus(_)))) => {
                Some(c.clone())
            }
            _ => None,
        })
        .collect()
}

/// The daemon refused `text` for TEAM: a member's identity key changed.
fn refused_for_a_changed_key(app: &mut App, text: &str) -> Vec<Effect> {
    daemon(
        app,
        DaemonEvent::SendFailed {
            conversation: TEAM,
            text: text.into(),
            failure: Failure {
                code: Some(IpcErrorCode::IdentityChanged),
                message: "identity changed".into(),
            },
        },
    )
}

fn incoming(app: &mut App, seq: u64, m: quicproquo_protocol::ipc::values::Message) -> Vec<Effect> {
    daemon(
        app,
        DaemonEvent::Notification(Notification::Message(NewMessage {
            seq: Seq(seq),
            message: m,
        })),
    )
}

#[test]
fn enter_sends_and_up_recalls() {
    let mut app = app(80, 20);
    typed(&mut app, "hello 😀");
    let fx = key(&mut app, KeyCode::Enter);
    assert_eq!(requests(&fx), [send("hello 😀", false)]);
    assert!(app.editor.is_empty());
    key(&mut app, KeyCode::Up);
    assert_eq!(app.editor.text(), "hello 😀");
    key(&mut app, KeyCode::Down);
    assert!(app.editor.is_empty());
    // An empty input sends nothing.
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
}

#[test]
fn alt_or_shift_enter_inserts_a_line_break() {
    let mut app = app(80, 20);
    typed(&mut app, "a");
    press(&mut app, KeyCode::Enter, KeyModifiers::ALT);
    typed(&mut app, "b");
    press(&mut app, KeyCode::Enter, KeyModifiers::SHIFT);
    typed(&mut app, "c");
    assert_eq!(app.editor.text(), "a\nb\nc");
    // Up moves within the text instead of recalling.
    key(&mut app, KeyCode::Up);
    typed(&mut app, "!");
    assert_eq!(app.editor.text(), "a\nb!\nc");
}

#[test]
fn ctrl_q_quits() {
    let mut app = app(80, 20);
    let fx = press(&mut app, KeyCode::Char('q'), KeyModifiers::CONTROL);
    assert!(fx.contains(&Effect::Quit));
    let mut app2 = crate::testing::app(80, 20);
    typed(&mut app2, "/quit");
    assert!(key(&mut app2, KeyCode::Enter).contains(&Effect::Quit));
}

#[test]
fn slash_commands_become_requests() {
    let mut app = app(80, 20);
    let run = |app: &mut App, line: &str| {
        typed(app, line);
        requests(&key(app, KeyCode::Enter))
    };
    assert_eq!(
        run(&mut app, "/dm carol"),
        [Request::Call(Call::DmOpen(DmOpenParams {
            username: "carol".into()
        }))]
    );
    assert_eq!(
        run(&mut app, "/group create ops bob carol"),
        [Request::Call(Call::GroupCreate(GroupCreateParams {
            name: "ops".into(),
            members: vec!["bob".into(), "carol".into()],
            ciphersuite: Ciphersuite::Hybrid,
        }))]
    );
    assert_eq!(
        run(&mut app, "/add dave"),
        [Request::Call(Call::GroupAdd(GroupMembersParams {
            conversation: TEAM.into(),
            members: vec!["dave".into()]
        }))]
    );
    assert_eq!(
        run(&mut app, "/rekey"),
        [Request::Call(Call::GroupRekey(on(TEAM)))]
    );
    assert_eq!(
        run(&mut app, "/leave"),
        [Request::Call(Call::GroupLeave(on(TEAM)))]
    );
    assert_eq!(
        run(&mut app, "/verify bob"),
        [Request::Call(Call::Verify(VerifyParams {
            username: "bob".into(),
            confirm: false,
            safety_number: None,
            conversation: Some(on(TEAM).conversation),
        }))]
    );
    assert_eq!(
        run(&mut app, "/members"),
        [Request::Call(Call::Members(on(TEAM)))]
    );
    assert!(app.show_members);
    assert_eq!(
        run(&mut app, "/search release"),
        [Request::Call(Call::Search(SearchParams {
            query: "release".into(),
            conversation: None,
            limit: Limit::new(100).unwrap(),
            offset: 0,
        }))]
    );
    assert!(matches!(app.overlay, Some(Overlay::Search { .. })));
    key(&mut app, KeyCode::Esc);
    assert!(run(&mut app, "/help").is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
    key(&mut app, KeyCode::Esc);
    // Group commands in a DM are refused locally, the text kept.
    press(&mut app, KeyCode::Down, KeyModifiers::ALT);
    assert_eq!(app.selected, Some(BOB));
    assert!(run(&mut app, "/add dave").is_empty());
    assert!(app.notice.as_ref().unwrap().text.contains("not a group"));
    assert_eq!(app.editor.text(), "/add dave");
    app.editor.take();
    assert!(run(&mut app, "/bogus").is_empty());
    assert!(app
        .notice
        .as_ref()
        .unwrap()
        .text
        .contains("unknown command"));
}

#[test]
fn tab_completes_commands_and_usernames() {
    let mut app = app(80, 20);
    typed(&mut app, "/dm b");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.editor.text(), "/dm bob ");
    app.editor.take();
    typed(&mut app, "/re");
    for next in [
        "/react",
        "/receipts",
        "/rekey",
        "/remove",
        "/retry",
        "/react",
    ] {
        key(&mut app, KeyCode::Tab);
        assert_eq!(app.editor.text(), next);
    }
    app.editor.take();
    typed(&mut app, "/v");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.editor.text(), "/verify ");
    typed(&mut app, "李");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.editor.text(), "/verify 李 ");
}

#[test]
fn unread_counts_bell_and_read_marks() {
    let mut app = app(80, 20);
    // Elsewhere: unread + bell.
    let fx = incoming(&mut app, 1, message(BOB, 50, "bob", 3000, "psst"));
    assert!(fx.contains(&Effect::Bell));
    assert_eq!(app.conversation(BOB).unwrap().unread, 3);
    // Here, at the bottom: read at once, no bell.
    let fx = incoming(&mut app, 2, message(TEAM, 51, "bob", 3001, "here"));
    assert!(!fx.contains(&Effect::Bell));
    assert!(matches!(
        requests(&fx)[..],
        [Request::Call(Call::Read(ReadParams {
            conversation: ConversationRef::Id(TEAM),
            ..
        }))]
    ));
    assert_eq!(app.conversation(TEAM).unwrap().unread, 0);
    // The same message twice counts once.
    let fx = incoming(&mut app, 3, message(BOB, 50, "bob", 3000, "psst"));
    assert!(fx.is_empty());
    assert_eq!(app.conversation(BOB).unwrap().unread, 3);
    // No bell when configured off.
    app.config.bell = false;
    let fx = incoming(&mut app, 4, message(BOB, 52, "bob", 3002, "again"));
    assert!(!fx.contains(&Effect::Bell));
}

#[test]
fn opening_a_conversation_loads_it_marks_new_messages_and_reads_it() {
    let mut app = app(80, 20);
    let fx = press(&mut app, KeyCode::Char('n'), KeyModifiers::CONTROL);
    assert_eq!(app.selected, Some(BOB));
    assert_eq!(
        requests(&fx),
        [Request::History {
            conversation: BOB,
            before: None,
            until: None
        }]
    );
    assert!(screen(&app).contains("Loading messages"));
    let history = vec![
        message(BOB, 1, "bob", 10, "old"),
        message(BOB, 2, "alice", 11, "mine"),
        message(BOB, 3, "bob", 12, "new one"),
        message(BOB, 4, "bob", 13, "new two"),
    ];
    let fx = daemon(
        &mut app,
        DaemonEvent::History {
            conversation: BOB,
            before: None,
            messages: history,
            complete: true,
            target: None,
        },
    );
    assert!(matches!(
        requests(&fx)[..],
        [Request::Call(Call::Read(ReadParams {
            conversation: ConversationRef::Id(BOB),
            up_to: None
        }))]
    ));
    assert_eq!(app.conversation(BOB).unwrap().unread, 0);
    let tl = app.timeline().unwrap();
    assert_eq!(tl.new_marker, Some(tl.messages()[2].id));
    let s = screen(&app);
    let marker = s.find("new messages").unwrap();
    assert!(
        marker < s.find("new one").unwrap() && marker > s.find("mine").unwrap(),
        "{s}"
    );
    // Ctrl+P goes back.
    press(&mut app, KeyCode::Char('p'), KeyModifiers::CONTROL);
    assert_eq!(app.selected, Some(TEAM));
}

fn big_app(n: u32) -> App {
    let mut app = app(80, 20);
    app.timelines.remove(&TEAM);
    let msgs = (0..n)
        .map(|i| {
            // A day separator every 100 messages, some long ones.
            let text = if i % 7 == 0 {
                format!(
                    "message {i} which is long enough to wrap across at least two rows of the pane"
                )
            } else {
                format!("message {i}")
            };
            message(
                TEAM,
                1000 + i,
                if i % 3 == 0 { "alice" } else { "bob" },
                u64::from(i) * 15,
                &text,
            )
        })
        .collect();
    daemon(
        &mut app,
        DaemonEvent::History {
            conversation: TEAM,
            before: None,
            messages: msgs,
            complete: false,
            target: None,
        },
    );
    app
}

/// The text drawn in the message pane with the selection style.
fn highlighted(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| crate::render::render(app, f)).unwrap();
    let buf = t.backend().buffer();
    let pane = crate::render::layout::areas(app, buf.area).messages;
    let mut out = String::new();
    for y in pane.top()..pane.bottom() {
        for x in pane.left()..pane.right() {
            let c = &buf[(x, y)];
            if c.modifier.contains(Modifier::REVERSED) {
                out.push_str(c.symbol());
            }
        }
        out.push(' ');
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn page_keys_scroll_and_the_selection_is_the_message_seen() {
    let mut app = big_app(1000);
    app.timelines.get_mut(&TEAM).unwrap().new_marker =
        Some(app.timeline().unwrap().messages()[990].id);
    assert_eq!(app.timeline().unwrap().view, View::Follow);
    for _ in 0..5 {
        key(&mut app, KeyCode::PageUp);
        let tl = app.timeline().unwrap();
        let i = tl.selected().unwrap();
        let text = tl.messages()[i]
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // The highlighted row is exactly the selected message, whatever
        // separators and markers sit between.
        let hl = highlighted(&app);
        assert!(
            text.starts_with(&hl) || hl.starts_with(&text),
            "{hl:?} vs {text:?}"
        );
        assert!(!hl.is_empty());
    }
    let up5 = app.timeline().unwrap().selected().unwrap();
    assert!(up5 < 990);
    for _ in 0..5 {
        key(&mut app, KeyCode::PageDown);
    }
    assert_eq!(app.timeline().unwrap().view, View::Follow);
    // The wheel too.
    let wheel = |kind| {
        Action::Mouse(MouseEvent {
            kind,
            column: 40,
            row: 5,
            modifiers: KeyModifiers::NONE,
        })
    };
    act(&mut app, wheel(MouseEventKind::ScrollUp));
    assert!(matches!(app.timeline().unwrap().view, View::At { .. }));
    act(&mut app, wheel(MouseEventKind::ScrollDown));
    act(&mut app, wheel(MouseEventKind::ScrollDown));
    assert_eq!(app.timeline().unwrap().view, View::Follow);
}

#[test]
fn history_loads_in_pages_near_the_top_and_keeps_the_selection() {
    let mut app = big_app(150);
    let mut asked = None;
    for _ in 0..40 {
        let fx = key(&mut app, KeyCode::PageUp);
        if let Some(Request::History { before, .. }) = requests(&fx).into_iter().next() {
            asked = before;
            break;
        }
    }
    let tl = app.timeline().unwrap();
    assert_eq!(asked, tl.oldest(), "the next page is before the oldest");
    assert!(tl.loading_older);
    let sel = tl.selected().unwrap();
    let sel_id = tl.messages()[sel].id;
    // No second request while one is out.
    assert_eq!(requests(&key(&mut app, KeyCode::PageUp)), []);
    assert!(app.timeline().unwrap().loading_older);
    let page: Vec<_> = (0..200)
        .map(|i| message(TEAM, 5000 + i, "bob", 1, &format!("older {i}")))
        .collect();
    let sel_now = app.timeline().unwrap().selected().unwrap();
    let sel_now_id = app.timeline().unwrap().messages()[sel_now].id;
    daemon(
        &mut app,
        DaemonEvent::History {
            conversation: TEAM,
            before: asked,
            messages: page,
            complete: true,
            target: None,
        },
    );
    let tl = app.timeline().unwrap();
    assert_eq!(tl.len(), 350);
    assert!(!tl.has_older);
    assert_eq!(tl.messages()[tl.selected().unwrap()].id, sel_now_id);
    let _ = sel_id;
}

#[test]
fn search_jumps_to_a_result_loading_history_when_needed() {
    let mut app = app(80, 20);
    typed(&mut app, "/search ship");
    key(&mut app, KeyCode::Enter);
    let hit = message(TEAM, 3, "carol", 0, "Shipped it 🚀");
    let far = message(BOB, 77, "bob", 0, "shipping soon");
    daemon(
        &mut app,
        DaemonEvent::SearchResults {
            query: "ship".into(),
            messages: vec![hit.clone(), far.clone()],
        },
    );
    assert!(screen(&app).contains("Shipped it"));
    let fx = key(&mut app, KeyCode::Enter);
    assert!(app.overlay.is_none());
    assert!(requests(&fx)
        .iter()
        .all(|r| !matches!(r, Request::History { .. })));
    let tl = app.timeline().unwrap();
    assert_eq!(tl.messages()[tl.selected().unwrap()].id, hit.id);
    // A result in a conversation not loaded yet: load until it is there.
    typed(&mut app, "/search ship");
    key(&mut app, KeyCode::Enter);
    daemon(
        &mut app,
        DaemonEvent::SearchResults {
            query: "ship".into(),
            messages: vec![hit, far.clone()],
        },
    );
    key(&mut app, KeyCode::Down);
    let fx = key(&mut app, KeyCode::Enter);
    assert_eq!(
        requests(&fx),
        [Request::History {
            conversation: BOB,
            before: None,
            until: Some(far.id)
        }]
    );
    daemon(
        &mut app,
        DaemonEvent::History {
            conversation: BOB,
            before: None,
            messages: vec![far.clone(), message(BOB, 78, "bob", 1, "later")],
            complete: true,
            target: Some(far.id),
        },
    );
    let tl = app.timeline().unwrap();
    assert_eq!(tl.selected(), Some(0));
}

#[test]
fn a_changed_key_asks_before_sending() {
    let mut app = app(80, 20);
    typed(&mut app, "secret plans");
    key(&mut app, KeyCode::Enter);
    daemon(
        &mut app,
        DaemonEvent::Notification(Notification::Identity(
            quicproquo_protocol::ipc::notifications::IdentityChange {
                seq: Seq(9),
                username: "bob".into(),
                old_fingerprint: "aa".into(),
                new_fingerprint: "bb".into(),
            },
        )),
    );
    assert!(screen(&app).contains("bob's key changed"));
    refused_for_a_changed_key(&mut app, "secret plans");
    assert!(
        matches!(&app.overlay, Some(Overlay::ConfirmSend { changed, .. }) if changed == &["bob"])
    );
    // Any other key keeps asking; `n` gives the text back.
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    key(&mut app, KeyCode::Char('n'));
    assert!(app.overlay.is_none());
    assert_eq!(app.editor.text(), "secret plans");
    // Again, and this time confirm explicitly.
    key(&mut app, KeyCode::Enter);
    refused_for_a_changed_key(&mut app, "secret plans");
    let fx = key(&mut app, KeyCode::Char('y'));
    assert_eq!(requests(&fx), [send("secret plans", true)]);
}

#[test]
fn delivery_states_and_sent_messages() {
    let mut app = app(80, 20);
    let mut m = message(TEAM, 60, "alice", 4000, "on its way");
    m.state = MessageState::Queued;
    daemon(&mut app, DaemonEvent::Sent(m.clone()));
    let row = |app: &App| {
        let s = screen(app);
        s.lines()
            .find(|l| l.contains("on its way"))
            .unwrap()
            .to_owned()
    };
    assert!(row(&app).ends_with("18:40 …         alice on its way"));
    daemon(
        &mut app,
        DaemonEvent::Notification(Notification::Delivery(DeliveryUpdate {
            seq: Seq(5),
            conversation: TEAM,
            id: m.id,
            state: DeliveryState::Delivered,
            reason: None,
        })),
    );
    assert_eq!(
        app.timeline().unwrap().newest().unwrap().state,
        MessageState::Delivered
    );
    assert!(row(&app).ends_with("18:40 ✓✓        alice on its way"));
}

/// A message the daemon parked shows ✗ with the reason in the status line;
/// `/retry` and `/discard` act on the newest failed message of the open
/// conversation, and are refused where there is none.
#[test]
fn a_failed_message_is_marked_and_can_be_retried_or_discarded() {
    let mut app = app(160, 20);
    let mut m = message(TEAM, 61, "alice", 4000, "refused for good");
    m.state = MessageState::Queued;
    daemon(&mut app, DaemonEvent::Sent(m.clone()));
    let delivery = |state, reason: Option<&str>| {
        DaemonEvent::Notification(Notification::Delivery(DeliveryUpdate {
            seq: Seq(6),
            conversation: TEAM,
            id: m.id,
            state,
            reason: reason.map(str::to_owned),
        }))
    };
    daemon(
        &mut app,
        delivery(DeliveryState::Failed, Some("E020: no such user")),
    );
    let s = screen(&app);
    let row = s.lines().find(|l| l.contains("refused for good")).unwrap();
    assert!(row.contains("✗"), "{s}");
    assert!(s.contains("E020: no such user"), "{s}");
    assert_eq!(
        app.timeline().unwrap().newest().unwrap().failure.as_deref(),
        Some("E020: no such user")
    );

    typed(&mut app, "/retry");
    let fx = key(&mut app, KeyCode::Enter);
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::MessageRetry(MessageParams {
            id: m.id
        }))]
    );
    daemon(&mut app, delivery(DeliveryState::Queued, None));
    assert_eq!(
        app.timeline().unwrap().newest().unwrap().state,
        MessageState::Queued
    );
    // Nothing failed now: refused, and the text stays for fixing.
    typed(&mut app, "/discard");
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(screen(&app).contains("no failed"), "{}", screen(&app));
    app.editor.take();

    daemon(&mut app, delivery(DeliveryState::Failed, Some("E022")));
    typed(&mut app, "/discard");
    let fx = key(&mut app, KeyCode::Enter);
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::MessageDiscard(MessageParams {
            id: m.id
        }))]
    );
    daemon(&mut app, DaemonEvent::Discarded(m.id));
    assert!(!app.timeline().unwrap().contains(&m.id));
}

#[test]
fn the_daemon_going_away_and_coming_back() {
    let mut app = app(80, 20);
    daemon(
        &mut app,
        DaemonEvent::Disconnected {
            reason: "gone".into(),
        },
    );
    assert_eq!(app.daemon, Daemon::Gone("gone".into()));
    // Sending while gone fails visibly and keeps the text.
    daemon(
        &mut app,
        DaemonEvent::SendFailed {
            conversation: TEAM,
            text: "later".into(),
            failure: Failure::new("qpqd is not reachable right now; retrying"),
        },
    );
    assert_eq!(app.editor.text(), "later");
    let fx = daemon(&mut app, DaemonEvent::Connected { status: status() });
    assert_eq!(app.daemon, Daemon::Connected);
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::Conversations(NoParams {}))]
    );
    assert_eq!(app.timeline().unwrap().len(), 4, "the history stays");
}

/// bob re-keys (news from the daemon) just after alice's command was
/// refused: the refusal stays on the status bar until she dismisses it, and
/// the news shows then. (CI once saw "Not attached: …" replaced by
/// "@bob: bob rekeyed" before anyone could read it.)
#[test]
fn news_waits_behind_the_answer_to_the_users_action() {
    use quicproquo_protocol::ipc::notifications::MembershipChange;
    use quicproquo_protocol::ipc::values::MembershipEvent;
    let rekeyed = |app: &mut App, seq: u64| {
        daemon(
            app,
            DaemonEvent::Notification(Notification::Membership(MembershipChange {
                seq: Seq(seq),
                conversation: TEAM,
                event: MembershipEvent::Rekeyed,
                members: vec!["bob".into()],
                by: "bob".into(),
            })),
        );
    };
    let shown = |app: &App| app.notice.as_ref().map(|n| n.text.clone());
    let mut app = app(80, 20);
    // With nothing shown, news shows at once; later news replaces it.
    rekeyed(&mut app, 100);
    assert_eq!(shown(&app).as_deref(), Some("#team: bob rekeyed"));
    typed(&mut app, "/frobnicate");
    key(&mut app, KeyCode::Enter);
    let refusal = shown(&app).expect("the refusal is shown");
    assert!(refusal.contains("frobnicate"), "{refusal}");
    rekeyed(&mut app, 101);
    assert_eq!(shown(&app), Some(refusal), "the refusal is not hidden");
    assert!(
        screen(&app).contains("unknown command /f"),
        "{}",
        screen(&app)
    );
    // Esc dismisses it, and the news that waited shows.
    key(&mut app, KeyCode::Esc);
    assert_eq!(shown(&app).as_deref(), Some("#team: bob rekeyed"));
    key(&mut app, KeyCode::Esc);
    assert_eq!(shown(&app), None);
}

#[test]
fn first_run_registers_then_opens_the_main_screen() {
    let mut app = loading_app(80, 24);
    daemon(&mut app, DaemonEvent::Status(no_account_status()));
    // Username has focus; server is pre-filled.
    assert!(
        requests(&key(&mut app, KeyCode::Enter)).is_empty(),
        "no username yet"
    );
    typed(&mut app, "alice");
    key(&mut app, KeyCode::Tab);
    // A new account's password: long enough, and typed twice.
    typed(&mut app, "hunter2");
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(screen(&app).contains("at least 10"), "{}", screen(&app));
    typed(&mut app, " is long now");
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(screen(&app).contains("differ"), "{}", screen(&app));
    typed(&mut app, "hunter2 is long now");
    let fx = key(&mut app, KeyCode::Enter);
    match &requests(&fx)[..] {
        [Request::Call(Call::Register(p))] => {
            assert_eq!(p.username, "alice");
            assert_eq!(p.server, "127.0.0.1:7443");
            assert_eq!(p.password.expose(), "hunter2 is long now");
        }
        other => panic!("{other:?}"),
    }
    assert!(!screen(&app).contains("hunter2"), "the password is masked");
    let fx = daemon(&mut app, DaemonEvent::AccountReady);
    assert_eq!(requests(&fx), [Request::Call(Call::Status(NoParams {}))]);
    let fx = daemon(&mut app, DaemonEvent::Status(status()));
    assert_eq!(app.screen, crate::app::Screen::Main);
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::Conversations(NoParams {}))]
    );
}

/// After `logout` the account is still there without a session: the TUI
/// asks for the password and logs in (it used to have no way to).
#[test]
fn a_logged_out_account_logs_in_again() {
    let mut app = loading_app(80, 24);
    let mut st = status();
    st.connection = quicproquo_protocol::ipc::values::ConnectionState::LoggedOut;
    let user = st.account.as_ref().unwrap().username.clone();
    let server = st.server.clone().unwrap();
    daemon(&mut app, DaemonEvent::Status(st));
    assert!(screen(&app).contains("Log in"), "{}", screen(&app));
    typed(&mut app, "hunter2");
    let fx = key(&mut app, KeyCode::Enter);
    match &requests(&fx)[..] {
        [Request::Call(Call::Login(p))] => {
            assert_eq!(p.username, user);
            assert_eq!(p.server, server);
            assert_eq!(p.password.expose(), "hunter2");
        }
        other => panic!("{other:?}"),
    }
    let fx = daemon(&mut app, DaemonEvent::AccountReady);
    assert_eq!(requests(&fx), [Request::Call(Call::Status(NoParams {}))]);
    daemon(&mut app, DaemonEvent::Status(status()));
    assert_eq!(app.screen, crate::app::Screen::Main);
}

#[test]
fn resize_at_any_moment() {
    let mut app = big_app(300);
    key(&mut app, KeyCode::PageUp);
    for (w, h) in [(20, 5), (200, 60), (1, 1), (80, 20)] {
        act(&mut app, Action::Resize(w, h));
        let _ = screen(&app);
    }
}

#[test]
fn verify_shows_the_safety_number_and_v_confirms() {
    let mut app = app(80, 20);
    app.changed_keys.insert("bob".into());
    let result = quicproquo_protocol::ipc::methods::VerifyResult {
        username: "bob".into(),
        safety_number: "11111 22222".into(),
        verified: false,
        key_changed: true,
        matches_directory: true,
    };
    daemon(
        &mut app,
        DaemonEvent::Verified {
            result: result.clone(),
            confirmed: false,
        },
    );
    assert!(screen(&app).contains("11111 22222"));
    let fx = key(&mut app, KeyCode::Char('v'));
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::Verify(VerifyParams {
            username: "bob".into(),
            confirm: true,
            safety_number: Some(result.safety_number.clone()),
            conversation: app.current().map(|c| c.id.into()),
        }))]
    );
    assert!(app.overlay.is_none());
    daemon(
        &mut app,
        DaemonEvent::Verified {
            result: quicproquo_protocol::ipc::methods::VerifyResult {
                verified: true,
                key_changed: false,
                ..result
            },
            confirmed: true,
        },
    );
    assert!(!app.changed_keys.contains("bob"));

    // A key the server does not list for the name (an impostor in the open
    // conversation) is said plainly.
    daemon(
        &mut app,
        DaemonEvent::Verified {
            result: quicproquo_protocol::ipc::methods::VerifyResult {
                username: "bob".into(),
                safety_number: "33333 44444".into(),
                verified: false,
                key_changed: true,
                matches_directory: false,
            },
            confirmed: false,
        },
    );
    assert!(
        screen(&app).contains("NOT the key the server lists"),
        "{}",
        screen(&app)
    );
}

/// qpqd notifies the desktop now: the TUI tells it what is shown (`focus`)
/// whenever that changes, and `focus {}` when it quits; it only rings.
#[test]
fn focus_follows_the_shown_conversation_and_only_the_bell_rings() {
    use quicproquo_protocol::ipc::methods::FocusParams;
    let focus = |c: Option<ConversationId>| {
        Call::Focus(FocusParams {
            conversation: c.map(Into::into),
        })
    };
    let mut app = app(80, 20);
    assert_eq!(app.focused, Some(Some(TEAM)), "told when it opened");
    let fx = press(&mut app, KeyCode::Down, KeyModifiers::ALT);
    assert_eq!(hints(&fx), [focus(Some(BOB))]);
    let fx = key(&mut app, KeyCode::PageUp);
    assert!(hints(&fx).is_empty(), "told once per change");
    let fx = incoming(&mut app, 2, message(WIDE, 71, "李", 10, "你好"));
    assert!(fx.contains(&Effect::Bell));
    app.config.bell = false;
    let fx = incoming(&mut app, 3, message(WIDE, 72, "李", 11, "again"));
    assert!(!fx.contains(&Effect::Bell), "the bell is configurable");
    // After a reconnect the new connection is told again.
    daemon(
        &mut app,
        DaemonEvent::Disconnected {
            reason: "gone".into(),
        },
    );
    let fx = daemon(&mut app, DaemonEvent::Connected { status: status() });
    assert_eq!(hints(&fx), [focus(Some(BOB))]);
    let fx = press(&mut app, KeyCode::Char('q'), KeyModifiers::CONTROL);
    assert_eq!(hints(&fx), [focus(None)]);
}

/// An invitation is a prompt: the notification fetches the list (with each
/// member's trust state), the list opens the invitations box, `a` accepts
/// the selected one and `d` declines the next; an impostor member is marked.
#[test]
fn an_invitation_prompts_and_a_accepts_d_declines() {
    use quicproquo_protocol::ipc::methods::{DeclineParams, InvitationParams, NoParams};
    use quicproquo_protocol::ipc::notifications::InvitationUpdate;
    use quicproquo_protocol::ipc::values::{
        ConversationKind, Invitation, InvitationId, InvitationState, Member, Seq,
    };
    use quicproquo_protocol::types::IdentityKey;

    let mut app = app(80, 20);
    let fx = daemon(
        &mut app,
        DaemonEvent::Notification(Notification::Invitation(InvitationUpdate {
            seq: Seq(1),
            id: Some(InvitationId([1; 16])),
            from: "bob".into(),
            name: "ops".into(),
            state: InvitationState::Pending,
            reason: String::new(),
        })),
    );
    assert_eq!(requests(&fx), [Request::Call(Call::Invites(NoParams {}))]);
    let member = |name: &str, verified: bool, key_changed: bool| Member {
        username: name.into(),
        identity: IdentityKey([2; 32]),
        verified,
        key_changed,
        deleted: false,
    };
    let invitation = |id: u8, name: &str| Invitation {
        id: InvitationId([id; 16]),
        from: "bob".into(),
        name: name.into(),
        kind: ConversationKind::Group,
        members: vec![member("bob", true, false), member("carol", false, true)],
        received_ms: 1,
    };
    daemon(
        &mut app,
        DaemonEvent::Invites(vec![invitation(1, "ops"), invitation(2, "lab")]),
    );
    let shown = screen(&app);
    assert!(shown.contains("bob invites you to #ops"), "{shown}");
    assert!(shown.contains("not the key you know"), "{shown}");

    let fx = key(&mut app, KeyCode::Char('a'));
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::Accept(InvitationParams {
            id: InvitationId([1; 16])
        }))]
    );
    assert!(screen(&app).contains("#lab"), "the next one stays shown");
    let fx = key(&mut app, KeyCode::Char('d'));
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::Decline(DeclineParams {
            id: InvitationId([2; 16]),
            reason: None,
        }))]
    );
    assert!(app.overlay.is_none(), "none left");
}

/// A fresh profile without a keyring: the passphrase creates the state, so
/// it is chosen — explained, long enough, typed twice — before `unlock`.
#[test]
fn a_new_state_passphrase_is_chosen_twice() {
    use quicproquo_protocol::ipc::methods::UnlockParams;
    use quicproquo_protocol::ipc::values::KeystoreState;

    let mut app = loading_app(80, 24);
    let mut st = no_account_status();
    st.keystore = KeystoreState::Locked;
    st.new_state = true;
    daemon(&mut app, DaemonEvent::Status(st));
    let shown = screen(&app);
    assert!(shown.contains("No keyring found"), "{shown}");
    assert!(shown.contains("cannot be recovered"), "{shown}");

    typed(&mut app, "short");
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(screen(&app).contains("at least 10"), "{}", screen(&app));
    typed(&mut app, " but now long");
    assert!(
        requests(&key(&mut app, KeyCode::Enter)).is_empty(),
        "Enter moves to the second field"
    );
    typed(&mut app, "short but now lonG");
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(screen(&app).contains("differ"), "{}", screen(&app));
    typed(&mut app, "short but now long");
    assert_eq!(
        requests(&key(&mut app, KeyCode::Enter)),
        [Request::Call(Call::Unlock(UnlockParams {
            passphrase: quicproquo_protocol::ipc::values::Secret::new("short but now long"),
        }))]
    );
}

mod account_change;
mod actions;
mod attachments;
