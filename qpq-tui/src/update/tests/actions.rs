//! Issue 17 in the chat: each key on a selected message and each command
//! becomes the right IPC call, and each notification changes the timeline.

use std::time::Duration;

use quicproquo_protocol::ipc::methods::{
    ConversationSettingsParams, DeleteParams, EditParams, MentionsParams, MessageRefParams,
    ReactParams, TypingParams,
};
use quicproquo_protocol::ipc::notifications::{
    ConversationUpdate, DeleteUpdate, EditUpdate, ReactionUpdate, ReadUpdate, TimerUpdate,
    TypingUpdate,
};
use quicproquo_protocol::ipc::values::{
    ConversationKind, DeleteScope, MessageId, MessageVersion, NotifyMode, Quote, Reaction,
};

use super::*;
use crate::app::{Compose, REACTIONS};

/// Message `n` of #team in the fixture (1 bob, 2 alice, 3 carol, 4 alice).
fn id(n: u32) -> MessageId {
    message(TEAM, n, "x", 0, "").id
}

fn shift(app: &mut App, code: KeyCode) -> Vec<Effect> {
    press(app, code, KeyModifiers::SHIFT)
}

/// Selects the `back`-th newest message of #team (1: the newest).
fn select_back(app: &mut App, back: usize) {
    for _ in 0..back {
        shift(app, KeyCode::Up);
    }
}

fn selected_index(app: &App) -> Option<usize> {
    app.timeline().and_then(|tl| tl.selected())
}

fn note(app: &mut App, n: Notification) -> Vec<Effect> {
    daemon(app, DaemonEvent::Notification(n))
}

#[test]
fn shift_arrows_select_messages_and_letters_act_only_while_selecting() {
    let mut app = app(100, 20);
    select_back(&mut app, 2);
    assert_eq!(selected_index(&app), Some(2), "carol's message");
    assert!(app.selecting);
    shift(&mut app, KeyCode::Down);
    assert_eq!(selected_index(&app), Some(3));
    shift(&mut app, KeyCode::Down);
    assert_eq!(
        app.timeline().unwrap().view,
        View::Follow,
        "past the newest"
    );
    assert!(!app.selecting);
    // Not selecting: `r` is a letter of the message.
    typed(&mut app, "r");
    assert_eq!(app.editor.text(), "r");
    assert!(app.compose.is_none());
    // Selecting with text in the input: letters still type.
    select_back(&mut app, 1);
    typed(&mut app, "e");
    assert_eq!(app.editor.text(), "re");
    assert!(app.overlay.is_none());
}

#[test]
fn r_replies_to_the_selected_message() {
    let mut app = app(100, 20);
    select_back(&mut app, 2);
    key(&mut app, KeyCode::Char('r'));
    assert!(matches!(
        &app.compose,
        Some(Compose::Reply { sender, excerpt, .. }) if sender == "carol" && excerpt == "Shipped it 🚀"
    ));
    assert!(
        screen(&app).contains("replying to carol: Shipped it 🚀"),
        "{}",
        screen(&app)
    );
    typed(&mut app, "great");
    let fx = key(&mut app, KeyCode::Enter);
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::Send(SendParams {
            conversation: TEAM.into(),
            text: "great".into(),
            confirm_changed_keys: false,
            reply_to: Some(id(3)),
        }))]
    );
    assert!(app.compose.is_none());
    // Esc cancels a reply: the next message answers nothing.
    select_back(&mut app, 1);
    key(&mut app, KeyCode::Char('r'));
    key(&mut app, KeyCode::Esc);
    typed(&mut app, "plain");
    assert_eq!(
        requests(&key(&mut app, KeyCode::Enter)),
        [send("plain", false)]
    );
}

#[test]
fn e_opens_the_picker_and_reacting_again_takes_it_back() {
    let mut app = app(100, 20);
    select_back(&mut app, 2);
    key(&mut app, KeyCode::Char('e'));
    assert!(matches!(app.overlay, Some(Overlay::React { .. })));
    key(&mut app, KeyCode::Right);
    let fx = key(&mut app, KeyCode::Enter);
    let react = |emoji: &str, remove: bool| {
        Request::Call(Call::React(ReactParams {
            conversation: TEAM.into(),
            id: id(3),
            emoji: emoji.into(),
            remove,
        }))
    };
    assert_eq!(requests(&fx), [react(REACTIONS[1], false)]);
    assert!(app.overlay.is_none());
    // The answer is the message with our reaction on it.
    let mut m = app.timeline().unwrap().messages()[2].clone();
    m.meta.reactions = vec![Reaction {
        emoji: REACTIONS[0].into(),
        by: vec!["alice".into()],
    }];
    daemon(&mut app, DaemonEvent::Updated(m));
    key(&mut app, KeyCode::Char('+'));
    assert_eq!(
        requests(&key(&mut app, KeyCode::Char('1'))),
        [react(REACTIONS[0], true)]
    );
    // `/react` takes any emoji, on the selected message.
    typed(&mut app, "/react 🦀");
    assert_eq!(
        requests(&key(&mut app, KeyCode::Enter)),
        [react("🦀", false)]
    );
}

#[test]
fn c_edits_only_our_own_messages() {
    let mut app = app(100, 20);
    select_back(&mut app, 2);
    key(&mut app, KeyCode::Char('c'));
    assert!(app.compose.is_none());
    assert!(app.notice.as_ref().unwrap().text.contains("your own"));
    shift(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('c'));
    assert_eq!(app.editor.text(), "Thanks!");
    assert!(screen(&app).contains("editing your message"));
    typed(&mut app, " all");
    let fx = key(&mut app, KeyCode::Enter);
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::Edit(EditParams {
            conversation: TEAM.into(),
            id: id(4),
            text: "Thanks! all".into(),
        }))]
    );
    assert!(app.editor.is_empty() && app.compose.is_none());
    // Esc drops an edit and its text.
    key(&mut app, KeyCode::Esc);
    select_back(&mut app, 1);
    key(&mut app, KeyCode::Char('c'));
    key(&mut app, KeyCode::Esc);
    assert!(app.editor.is_empty() && app.compose.is_none());
}

#[test]
fn d_asks_for_everyone_or_for_me() {
    let mut app = app(100, 20);
    let delete = |n: u32, for_me: bool| {
        Request::Call(Call::Delete(DeleteParams {
            conversation: TEAM.into(),
            id: id(n),
            for_me,
        }))
    };
    select_back(&mut app, 1);
    key(&mut app, KeyCode::Char('d'));
    assert!(matches!(
        app.overlay,
        Some(Overlay::Delete { own: true, .. })
    ));
    assert_eq!(
        requests(&key(&mut app, KeyCode::Char('e'))),
        [delete(4, false)]
    );
    daemon(
        &mut app,
        DaemonEvent::Deleted {
            conversation: TEAM,
            id: id(4),
            for_me: false,
        },
    );
    assert!(app.timeline().unwrap().messages()[3].meta.deleted);
    // A refused edit keeps its text: it comes back into the input.
    daemon(
        &mut app,
        DaemonEvent::EditFailed {
            conversation: TEAM,
            id: id(2),
            text: "my words".into(),
            failure: Failure::new("not allowed"),
        },
    );
    assert_eq!(app.editor.text(), "my words");
    assert!(matches!(app.compose, Some(Compose::Edit { .. })));
    assert!(app
        .notice
        .as_ref()
        .unwrap()
        .text
        .contains("Not edited: not allowed"));
    key(&mut app, KeyCode::Esc);
    assert!(screen(&app).contains("message deleted"), "{}", screen(&app));
    // Someone else's: for me only.
    key(&mut app, KeyCode::Esc);
    select_back(&mut app, 2);
    key(&mut app, KeyCode::Char('d'));
    assert!(requests(&key(&mut app, KeyCode::Char('e'))).is_empty());
    assert!(app.notice.as_ref().unwrap().text.contains("your own"));
    select_back(&mut app, 1);
    key(&mut app, KeyCode::Char('d'));
    assert!(
        requests(&key(&mut app, KeyCode::Esc)).is_empty(),
        "Esc keeps it"
    );
    key(&mut app, KeyCode::Char('d'));
    assert_eq!(
        requests(&key(&mut app, KeyCode::Char('m'))),
        [delete(2, true)]
    );
}

#[test]
fn h_shows_the_edit_history_and_o_jumps_to_the_original() {
    let mut app = app(100, 20);
    {
        let tl = app.timelines.get_mut(&TEAM).unwrap();
        tl.edit(&id(2), "Yes — after the tests pass (all of them).");
        let mut reply = message(TEAM, 5, "bob", 24 * 60 + 9 * 60, "🎉");
        reply.meta.reply_to = Some(Quote {
            id: id(2),
            sender: "alice".into(),
            excerpt: "Yes — after".into(),
            missing: false,
        });
        tl.push(reply);
    }
    select_back(&mut app, 1);
    key(&mut app, KeyCode::Char('o'));
    assert_eq!(selected_index(&app), Some(1), "the original is selected");
    let fx = key(&mut app, KeyCode::Char('h'));
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::MessageEdits(MessageRefParams {
            conversation: TEAM.into(),
            id: id(2),
        }))]
    );
    daemon(
        &mut app,
        DaemonEvent::Edits(vec![MessageVersion {
            text: "Yes — after the tests pass.".into(),
            timestamp_ms: T0 + 9 * 3_600_000,
        }]),
    );
    let shown = screen(&app);
    assert!(shown.contains("Edit history"), "{shown}");
    assert!(shown.contains("after the tests pass."), "{shown}");
    key(&mut app, KeyCode::Esc);
    // A reply whose original is not here says so.
    let tl = app.timelines.get_mut(&TEAM).unwrap();
    let mut lost = message(TEAM, 6, "bob", 24 * 60 + 10 * 60, "re");
    lost.meta.reply_to = Some(Quote {
        id: MessageId([9; 16]),
        sender: "carol".into(),
        excerpt: String::new(),
        missing: true,
    });
    tl.push(lost);
    tl.view = View::Follow;
    select_back(&mut app, 1);
    assert!(requests(&key(&mut app, KeyCode::Char('o'))).is_empty());
    assert!(app
        .notice
        .as_ref()
        .unwrap()
        .text
        .contains("(unknown message)"));
    assert!(screen(&app).contains("↱ carol: (unknown message)"));
}

#[test]
fn notifications_change_the_timeline() {
    let mut app = app(100, 20);
    note(
        &mut app,
        Notification::Reaction(ReactionUpdate {
            seq: Seq(1),
            conversation: TEAM,
            id: id(2),
            emoji: "👍".into(),
            by: "bob".into(),
            removed: false,
        }),
    );
    note(
        &mut app,
        Notification::Edit(EditUpdate {
            seq: Seq(2),
            conversation: TEAM,
            id: id(1),
            by: "bob".into(),
            text: "Morning! Is the release on?".into(),
            timestamp_ms: T0,
        }),
    );
    note(
        &mut app,
        Notification::Read(ReadUpdate {
            seq: Seq(3),
            conversation: TEAM,
            by: "carol".into(),
            up_to: id(4),
        }),
    );
    let msgs = app.timeline().unwrap().messages().to_vec();
    assert_eq!(msgs[1].meta.reactions[0].by, ["bob"]);
    assert_eq!(msgs[0].text, "Morning! Is the release on?");
    assert!(msgs[0].meta.edited);
    assert_eq!(msgs[3].meta.read_by, ["carol"]);
    let shown = screen(&app);
    assert!(shown.contains("👍 1 bob"), "{shown}");
    assert!(shown.contains("(edited)"), "{shown}");
    for (scope, left) in [(DeleteScope::Everyone, 4), (DeleteScope::Me, 3)] {
        note(
            &mut app,
            Notification::Delete(DeleteUpdate {
                seq: Seq(4),
                conversation: TEAM,
                id: id(3),
                by: "carol".into(),
                scope,
            }),
        );
        assert_eq!(app.timeline().unwrap().len(), left, "{scope:?}");
    }
    note(
        &mut app,
        Notification::Delete(DeleteUpdate {
            seq: Seq(5),
            conversation: TEAM,
            id: id(1),
            by: "bob".into(),
            scope: DeleteScope::Expired,
        }),
    );
    assert_eq!(app.timeline().unwrap().len(), 2, "an expired one goes");

    note(
        &mut app,
        Notification::Timer(TimerUpdate {
            seq: Seq(6),
            conversation: TEAM,
            by: "bob".into(),
            seconds: 86_400,
        }),
    );
    assert_eq!(
        app.notice.as_ref().unwrap().text,
        "bob set messages to disappear after 1 day"
    );
    let mut renamed = app.conversation(TEAM).unwrap().clone();
    renamed.name = "launch".into();
    renamed.kind = ConversationKind::Group;
    note(
        &mut app,
        Notification::Conversation(ConversationUpdate {
            seq: Seq(7),
            conversation: renamed,
        }),
    );
    assert!(screen(&app).contains("#launch"), "{}", screen(&app));
}

#[test]
fn typing_shows_for_six_seconds_and_ours_is_sent_at_most_every_three() {
    let mut app = app(100, 20);
    let typing = |by: &str, on: bool| {
        Notification::Typing(TypingUpdate {
            seq: Seq(1),
            conversation: TEAM,
            by: by.into(),
            on,
        })
    };
    note(&mut app, typing("bob", true));
    note(&mut app, typing("alice", true));
    assert!(screen(&app).contains("bob is typing…"), "{}", screen(&app));
    assert_eq!(app.typing_in(TEAM), ["bob"], "our own echo is not shown");
    app.now += Duration::from_secs(5);
    assert!(act(&mut app, Action::Tick).is_empty(), "not yet");
    app.now += Duration::from_secs(1);
    assert_eq!(act(&mut app, Action::Tick), [Effect::Redraw]);
    assert!(!screen(&app).contains("typing"), "{}", screen(&app));
    // Off, or a message from them, ends it at once.
    note(&mut app, typing("carol", true));
    note(&mut app, typing("carol", false));
    assert!(app.typing_in(TEAM).is_empty());

    let on = |on: bool| {
        Call::Typing(TypingParams {
            conversation: TEAM.into(),
            on,
        })
    };
    assert_eq!(hints(&key(&mut app, KeyCode::Char('h'))), [on(true)]);
    app.now += Duration::from_secs(2);
    assert!(hints(&key(&mut app, KeyCode::Char('i'))).is_empty());
    app.now += Duration::from_secs(1);
    assert_eq!(hints(&key(&mut app, KeyCode::Char('!'))), [on(true)]);
    app.now += Duration::from_secs(4);
    assert!(act(&mut app, Action::Tick).is_empty());
    app.now += Duration::from_secs(1);
    assert_eq!(hints(&act(&mut app, Action::Tick)), [on(false)], "5 s idle");
    key(&mut app, KeyCode::Char('?'));
    assert_eq!(hints(&key(&mut app, KeyCode::Enter)), [on(false)], "sent");
    // A command is not typing.
    typed(&mut app, "/he");
    assert!(app.own_typing.is_none());
}

#[test]
fn settings_and_mentions_commands() {
    let mut app = app(100, 20);
    let set = |f: fn(&mut ConversationSettingsParams)| {
        let mut p = ConversationSettingsParams {
            conversation: TEAM.into(),
            read_receipts: None,
            typing: None,
            timer_seconds: None,
            notify: None,
            notify_content: None,
        };
        f(&mut p);
        Request::Call(Call::ConversationSettingsMethod(p))
    };
    for (cmd, want) in [
        ("/receipts on", set(|p| p.read_receipts = Some(true))),
        ("/typing off", set(|p| p.typing = Some(false))),
        ("/timer 1d", set(|p| p.timer_seconds = Some(86_400))),
        ("/timer off", set(|p| p.timer_seconds = Some(0))),
        (
            "/notify mentions",
            set(|p| p.notify = Some(NotifyMode::Mentions)),
        ),
    ] {
        typed(&mut app, cmd);
        assert_eq!(requests(&key(&mut app, KeyCode::Enter)), [want], "{cmd}");
    }
    typed(&mut app, "/mentions");
    let fx = key(&mut app, KeyCode::Enter);
    assert_eq!(
        requests(&fx),
        [Request::Call(Call::Mentions(MentionsParams {
            conversation: None,
            before: None,
            limit: Limit::new(100).unwrap(),
        }))]
    );
    let mut m = message(BOB, 9, "bob", 30, "@alice lunch?");
    m.meta.mentions_me = true;
    daemon(
        &mut app,
        DaemonEvent::SearchResults {
            query: String::new(),
            messages: vec![m.clone()],
        },
    );
    let shown = screen(&app);
    assert!(shown.contains("Mentions of you"), "{shown}");
    assert!(shown.contains("@alice lunch?"), "{shown}");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.selected, Some(BOB), "Enter jumps to it");
}

#[test]
fn at_completes_member_names_and_tab_cycles() {
    let mut app = app(100, 20);
    typed(&mut app, "thanks @");
    press(&mut app, KeyCode::Tab, KeyModifiers::NONE);
    assert_eq!(app.editor.text(), "thanks @bob");
    press(&mut app, KeyCode::Tab, KeyModifiers::NONE);
    assert_eq!(app.editor.text(), "thanks @carol");
    typed(&mut app, " and @ca");
    press(&mut app, KeyCode::Tab, KeyModifiers::NONE);
    assert_eq!(app.editor.text(), "thanks @carol and @carol ");
}
