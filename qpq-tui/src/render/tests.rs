//! TestBackend snapshots (insta) of every screen, and sizes down to 1×1:
//! nothing panics, and each part drawn alone on a blank screen leaves every
//! cell outside its area blank.

#![allow(clippy::unwrap_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use insta::assert_snapshot;
use quicproquo_protocol::ipc::methods::VerifyResult;

use ratatui::backend::TestBackend;
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Span;
use ratatui::{Frame, Terminal};

use super::{account, conversations, input, layout, messages, overlay, status};
use crate::action::{Action, DaemonEvent};
use crate::app::{AccountForm, App, Overlay, Screen, UnlockForm};
use crate::testing::*;

fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        act(app, key(KeyCode::Char(c)));
    }
}

#[test]
fn main_screen() {
    let mut app = app(100, 20);
    typed(&mut app, "draft");
    assert_snapshot!(screen(&app));
}

#[test]
fn main_screen_with_members_and_a_changed_key() {
    let mut app = app(100, 16);
    app.show_members = true;
    daemon(
        &mut app,
        DaemonEvent::Members {
            conversation: TEAM,
            members: vec![
                quicproquo_protocol::ipc::values::Member {
                    username: "bob".into(),
                    identity: quicproquo_protocol::types::IdentityKey([2; 32]),
                    verified: true,
                    key_changed: false,
                    deleted: false,
                },
                quicproquo_protocol::ipc::values::Member {
                    username: "carol".into(),
                    identity: quicproquo_protocol::types::IdentityKey([3; 32]),
                    verified: false,
                    key_changed: true,
                    deleted: false,
                },
            ],
        },
    );
    assert_snapshot!(screen(&app));
}

#[test]
fn a_deleted_account_is_shown_as_such_in_the_member_list() {
    let mut app = app(100, 16);
    app.show_members = true;
    let member = |name: &str, deleted: bool| quicproquo_protocol::ipc::values::Member {
        username: name.into(),
        identity: quicproquo_protocol::types::IdentityKey([2; 32]),
        verified: false,
        key_changed: false,
        deleted,
    };
    daemon(
        &mut app,
        DaemonEvent::Members {
            conversation: TEAM,
            members: vec![member("bob", false), member("carol", true)],
        },
    );
    let shown = screen(&app);
    assert!(shown.contains("carol (deleted"), "{shown}");
    assert!(!shown.contains("bob (deleted"), "{shown}");
}

#[test]
fn a_long_header_drops_the_member_count_then_ends_with_an_ellipsis() {
    let mut app = app(100, 16);
    app.changed_keys.insert("carol".into());
    let header = |app: &App| screen(app).lines().next().unwrap().to_owned();
    let full = "│#team  PQ✓  3 members  ! carol's key changed: /verify carol";
    assert!(header(&app).ends_with(full), "{}", header(&app));
    app.size = (70, 16);
    let h = header(&app);
    assert!(
        h.ends_with("│#team  PQ✓  ! carol's key changed: /verify carol"),
        "{h}"
    );
    app.size = (60, 16);
    let h = header(&app);
    assert!(
        h.ends_with("│#team  PQ✓  ! carol's key changed: /verify …"),
        "{h}"
    );
}

#[test]
fn the_status_bar_says_when_mail_cannot_be_stored() {
    let mut app = app(120, 16);
    let bar = |app: &App| screen(app).lines().last().unwrap().to_owned();
    assert!(!bar(&app).contains("cannot store mail"), "{}", bar(&app));
    if let Some(st) = app.status.as_mut() {
        st.storage = quicproquo_protocol::ipc::values::StorageState::Failing;
        st.storage_detail = "database or disk is full".into();
    }
    assert!(bar(&app).contains("⚠ cannot store mail"), "{}", bar(&app));
}

#[test]
fn the_status_bar_names_the_node_in_use_when_the_server_has_several() {
    let mut app = app(120, 16);
    let bar = |app: &App| screen(app).lines().last().unwrap().to_owned();
    assert!(bar(&app).contains("@chat.example:7443 "), "{}", bar(&app));
    if let Some(st) = app.status.as_mut() {
        st.server = Some("a.example:7443,b.example:7443".into());
        st.node = Some("b.example:7443".into());
    }
    assert!(bar(&app).contains("@b.example:7443 "), "{}", bar(&app));
    assert!(!bar(&app).contains("a.example"), "{}", bar(&app));
    // Offline (no node): the list as given.
    if let Some(st) = app.status.as_mut() {
        st.node = None;
    }
    assert!(
        bar(&app).contains("@a.example:7443,b.example:7443 "),
        "{}",
        bar(&app)
    );
}

#[test]
fn fit_cuts_at_a_grapheme_and_keeps_the_styles() {
    let red = Style::default().fg(Color::LightRed);
    let spans = vec![Span::raw("#日本"), Span::styled("  ! 李", red)];
    assert_eq!(super::fit(spans.clone(), 11), spans);
    assert_eq!(
        super::fit(spans.clone(), 8),
        [
            Span::raw("#日本"),
            Span::styled("  ", red),
            Span::styled("…", red)
        ]
    );
    // `本` fits in five columns, but not with the `…` after it.
    assert_eq!(
        super::fit(spans.clone(), 5),
        [Span::raw("#日"), Span::raw("…")]
    );
    assert_eq!(super::fit(spans, 0), []);
}

#[test]
fn first_run_screen() {
    let mut app = loading_app(80, 24);
    daemon(&mut app, DaemonEvent::Status(no_account_status()));
    assert!(matches!(app.screen, Screen::Account(_)));
    typed(&mut app, "alice");
    act(&mut app, key(KeyCode::Tab));
    typed(&mut app, "pw");
    assert_snapshot!(screen(&app));
}

#[test]
fn help_overlay() {
    let mut app = app(100, 36);
    act(&mut app, key(KeyCode::F(1)));
    assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
    assert_snapshot!(screen(&app));
    let help: String = crate::render::overlay::help_lines(&app)
        .iter()
        .flat_map(|l| l.spans.iter().map(|s| s.content.to_string()))
        .collect();
    assert!(help.contains("qpq-ctl doctor"), "F1 points at doctor");
}

#[test]
fn long_wrapped_message_and_wide_characters() {
    let mut app = app(60, 20);
    let long = "This is a long message that has to wrap over several lines of the \
                message pane without breaking words unless a word is itself too long: \
                supercalifragilisticexpialidociousandthensomemoreletters.";
    let wide = "日本語のテキストは二列の幅で表示されます。絵文字も😀👍🏽 e\u{301}t\u{e9} combining.";
    for (i, text) in [long, wide].iter().enumerate() {
        daemon(
            &mut app,
            DaemonEvent::Notification(quicproquo_protocol::ipc::Notification::Message(
                quicproquo_protocol::ipc::notifications::NewMessage {
                    seq: quicproquo_protocol::ipc::values::Seq(10 + i as u64),
                    message: message(TEAM, 20 + i as u32, "李小龍", 2 * 24 * 60 + i as u64, text),
                },
            )),
        );
    }
    assert_snapshot!(screen(&app));
}

#[test]
fn loading_is_not_empty() {
    let app = loading_app(60, 8);
    let s = screen(&app);
    assert!(s.contains("Loading"), "{s}");
    assert_snapshot!(s);
    let mut app = app_with_no_conversations();
    app.size = (60, 8);
    let s = screen(&app);
    assert!(s.contains("No") && s.contains("/dm user"), "{s}");
}

fn app_with_no_conversations() -> App {
    let mut app = loading_app(60, 8);
    daemon(&mut app, DaemonEvent::Conversations(vec![]));
    app
}

#[test]
fn daemon_gone_keeps_the_screen_and_says_so() {
    let mut app = app(80, 10);
    daemon(
        &mut app,
        DaemonEvent::Disconnected {
            reason: "the connection to qpqd is closed".into(),
        },
    );
    let s = screen(&app);
    assert!(s.contains("qpqd gone, retrying"), "{s}");
    assert!(s.contains("Thanks!"), "the conversation stays up: {s}");
}

#[test]
fn verify_and_confirm_overlays() {
    let mut app = app(80, 20);
    daemon(
        &mut app,
        DaemonEvent::Verified {
            result: VerifyResult {
                username: "bob".into(),
                safety_number: "12345 67890 12345 67890 12345 67890".into(),
                verified: false,
                key_changed: true,
                matches_directory: true,
            },
            confirmed: false,
        },
    );
    assert_snapshot!("verify", screen(&app));
    app.overlay = Some(Overlay::ConfirmSend {
        conversation: TEAM,
        text: "the launch code".into(),
        changed: vec!["bob".into()],
        attach: None,
    });
    assert_snapshot!("confirm_send", screen(&app));
}

#[test]
fn tiny_terminal() {
    let app = app(20, 5);
    assert_snapshot!(screen(&app));
}

/// The cells `draw` changed on a blank `size` screen outside `allowed`.
fn strays(size: (u16, u16), allowed: &[Rect], draw: impl FnOnce(&mut Frame<'_>)) -> Vec<Position> {
    let mut t = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
    t.draw(draw).unwrap();
    let buf = t.backend().buffer();
    buf.area
        .positions()
        .filter(|p| !allowed.iter().any(|r| r.contains(*p)))
        .filter(|p| buf[*p] != Cell::default())
        .collect()
}

/// A part of the screen: its name, the area it may draw in, how to draw it.
type Part<'a> = (&'static str, Vec<Rect>, Box<dyn Fn(&mut Frame<'_>) + 'a>);

/// Each part of the main screen, drawn alone, leaves every cell outside its
/// area blank; the overlays and the account screens, given an area inset in
/// the screen, leave the margin blank.
fn assert_each_part_stays_in_its_area(app: &App, form: &App) {
    let size = app.size;
    let full = Rect::new(0, 0, size.0, size.1);
    let a = layout::areas(app, full);
    let mut parts: Vec<Part<'_>> = vec![
        (
            "header",
            vec![a.header],
            Box::new(|f| super::render_header(app, f, a.header)),
        ),
        (
            "messages",
            vec![a.messages],
            Box::new(|f| {
                messages::render(app, f, a.messages);
            }),
        ),
        (
            "input",
            vec![a.input_title, a.input],
            Box::new(|f| input::render(app, f, a.input_title, a.input)),
        ),
        (
            "status",
            vec![a.status],
            Box::new(|f| status::render(app, f, a.status)),
        ),
    ];
    if let Some(list) = a.list {
        parts.push((
            "list",
            vec![list],
            Box::new(move |f| conversations::render(app, f, list)),
        ));
    }
    if let Some(members) = a.members {
        parts.push((
            "members",
            vec![members],
            Box::new(move |f| conversations::render_members(app, f, members)),
        ));
    }
    let inset = Rect::new(1, 1, size.0.saturating_sub(2), size.1.saturating_sub(2));
    if let Some(o) = &app.overlay {
        parts.push((
            "overlay",
            vec![inset],
            Box::new(move |f| overlay::render(app, o, f, inset)),
        ));
    }
    if let Screen::Account(account) = &form.screen {
        parts.push((
            "account",
            vec![inset],
            Box::new(move |f| account::render_account(form, account, f, inset)),
        ));
    }
    let unlock = UnlockForm::default();
    parts.push((
        "unlock",
        vec![inset],
        Box::new(move |f| account::render_unlock(form, &unlock, f, inset)),
    ));
    for (name, allowed, draw) in parts {
        let out = strays(size, &allowed, draw);
        assert!(
            out.is_empty(),
            "{name} at {size:?} ({allowed:?}) drew outside at {out:?}"
        );
    }
}

#[test]
fn every_size_renders_and_each_part_stays_in_its_area() {
    let mut app = app(1, 1);
    let mut form = loading_app(1, 1);
    form.screen = Screen::Account(Box::new(AccountForm::new("h:1")));
    let verify = Overlay::Verify(VerifyResult {
        username: "bob".into(),
        safety_number: "12345 67890 12345 67890 12345 67890".into(),
        verified: false,
        key_changed: true,
        matches_directory: false,
    });
    let confirm = Overlay::ConfirmSend {
        conversation: TEAM,
        text: "the launch code".into(),
        changed: vec!["bob".into()],
        attach: None,
    };
    for w in [1, 2, 5, 10, 19, 20, 33, 49, 50, 69, 70, 120] {
        for h in [1, 2, 3, 4, 5, 8, 13, 30] {
            app.size = (w, h);
            form.size = (w, h);
            for overlay in [
                None,
                Some(Overlay::Help { scroll: 0 }),
                Some(verify.clone()),
                Some(confirm.clone()),
            ] {
                app.overlay = overlay;
                app.show_members = h % 2 == 0;
                screen(&app);
                assert_each_part_stays_in_its_area(&app, &form);
            }
            screen(&form);
        }
    }
}

/// A damaged or rolled-back state: a banner in place of the conversation's
/// title says so and what to type, the status line gives the daemon's
/// words once, `/ack-integrity` asks the daemon, and the banner goes once
/// the status says `ok`.
#[test]
fn an_integrity_finding_shows_a_banner_until_acknowledged() {
    use quicproquo_protocol::ipc::methods::NoParams;
    use quicproquo_protocol::ipc::values::IntegrityState;
    use quicproquo_protocol::ipc::Call;

    let mut app = app(110, 12);
    let mut held = status();
    held.integrity = IntegrityState::Rollback;
    held.integrity_detail = "the state was rolled back: acknowledge it".into();
    daemon(&mut app, DaemonEvent::Status(held));
    let shown = screen(&app);
    assert!(
        shown.contains("⚠ state rolled back — sending held: /ack-integrity")
            && shown.contains("/ack-integrity"),
        "{shown}"
    );
    assert!(
        app.notice
            .as_ref()
            .is_some_and(|n| n.text.contains("acknowledge it")),
        "{:?}",
        app.notice
    );

    typed(&mut app, "/ack-integrity");
    let fx = act(&mut app, key(KeyCode::Enter));
    assert!(
        fx.contains(&crate::action::Effect::call(Call::IntegrityAcknowledge(
            NoParams {}
        ))),
        "{fx:?}"
    );
    daemon(
        &mut app,
        DaemonEvent::IntegrityAcknowledged {
            status: status(),
            text: "Acknowledged: 1 conversation(s) re-keyed; sending again.".into(),
        },
    );
    let shown = screen(&app);
    assert!(!shown.contains("/ack-integrity"), "{shown}");
    assert!(shown.contains("Acknowledged"), "{shown}");
}

/// #team's history with every issue-17 annotation: a reply to bob, our
/// message read by carol with reactions, bob's edited, one deleted, one that
/// mentions us and disappears.
fn annotated_app(w: u16, h: u16) -> App {
    use quicproquo_protocol::ipc::values::{Quote, Reaction};
    let mut app = app(w, h);
    let tl = app.timelines.get_mut(&TEAM).unwrap();
    let ids: Vec<_> = tl.messages().iter().map(|m| m.id).collect();
    let mut reply = message(TEAM, 5, "carol", 24 * 60 + 8 * 60 + 5, "Which tests?");
    reply.meta.reply_to = Some(Quote {
        id: ids[1],
        sender: "alice".into(),
        excerpt: "Yes — after the tests pass.".into(),
        missing: false,
    });
    reply.meta.reactions = vec![
        Reaction {
            emoji: "👍".into(),
            by: vec!["alice".into(), "bob".into()],
        },
        Reaction {
            emoji: "🎉".into(),
            by: vec!["bob".into()],
        },
    ];
    let mut mention = message(TEAM, 6, "bob", 24 * 60 + 8 * 60 + 6, "@alice can you look?");
    mention.meta.mentions_me = true;
    mention.meta.expires_at_ms = Some(T0 + (24 * 60 + 9 * 60 + 6) * 60_000);
    tl.push(reply);
    tl.push(mention);
    tl.edit(&ids[0], "Morning! Is the release on for today?");
    tl.delete_for_everyone(&ids[2]);
    tl.read(&ids[3], "carol");
    app
}

#[test]
fn replies_reactions_edits_deletes_mentions_and_read_ticks() {
    let app = annotated_app(100, 20);
    assert_snapshot!(screen(&app));
    // What a text dump does not show: the mention's and the read tick's
    // colours.
    let mut t = Terminal::new(TestBackend::new(100, 20)).unwrap();
    t.draw(|f| super::render(&app, f)).unwrap();
    let buf = t.backend().buffer();
    let find = |needle: &str| {
        let text = dump(buf);
        let row = text.lines().position(|l| l.contains(needle)).unwrap();
        let line: String = (0..100)
            .map(|x| buf[(x, row as u16)].symbol().to_owned())
            .collect();
        let col = line.find(needle).unwrap();
        // Columns: characters before it (all one column wide here).
        let x = line[..col].chars().count() as u16;
        buf[(x, row as u16)].clone()
    };
    assert_eq!(find("@alice can").fg, Color::Yellow, "a mention stands out");
    assert_eq!(find("✓✓").fg, Color::LightBlue, "read, in the read colour");
}

#[test]
fn narrow_annotated_messages() {
    let app = annotated_app(40, 24);
    assert_snapshot!(screen(&app));
}

#[test]
fn typing_line() {
    use quicproquo_protocol::ipc::notifications::TypingUpdate;
    use quicproquo_protocol::ipc::values::Seq;
    use quicproquo_protocol::ipc::Notification;
    let mut app = app(100, 12);
    for by in ["bob", "carol"] {
        daemon(
            &mut app,
            DaemonEvent::Notification(Notification::Typing(TypingUpdate {
                seq: Seq(1),
                conversation: TEAM,
                by: by.into(),
                on: true,
            })),
        );
    }
    assert_snapshot!(screen(&app));
}

#[test]
fn timer_notice() {
    use quicproquo_protocol::ipc::notifications::TimerUpdate;
    use quicproquo_protocol::ipc::values::Seq;
    use quicproquo_protocol::ipc::Notification;
    let mut app = app(120, 12);
    daemon(
        &mut app,
        DaemonEvent::Notification(Notification::Timer(TimerUpdate {
            seq: Seq(1),
            conversation: crate::testing::BOB,
            by: "bob".into(),
            seconds: 8 * 3600,
        })),
    );
    assert_snapshot!(screen(&app));
}

#[test]
fn emoji_picker_and_delete_prompt() {
    let mut app = annotated_app(100, 20);
    let shift_up = Action::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::SHIFT));
    act(&mut app, shift_up.clone());
    act(&mut app, shift_up);
    act(&mut app, key(KeyCode::Char('e')));
    act(&mut app, key(KeyCode::Right));
    assert_snapshot!("emoji_picker", screen(&app));
    act(&mut app, key(KeyCode::Esc));
    act(&mut app, key(KeyCode::Char('d')));
    assert_snapshot!("delete_prompt", screen(&app));
}

#[test]
fn replying_banner() {
    let mut app = annotated_app(100, 14);
    act(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::SHIFT)),
    );
    act(&mut app, key(KeyCode::Char('r')));
    typed(&mut app, "on it");
    assert_snapshot!(screen(&app));
}

/// However many reacted, the reactions are one row cut to the pane: a
/// block's height (what scrolling and the frame measure) does not grow.
#[test]
fn many_reactions_are_one_row() {
    use quicproquo_protocol::ipc::values::Reaction;
    let mut app = app(80, 20);
    let id = app.timeline().unwrap().messages()[0].id;
    let tl = app.timelines.get_mut(&TEAM).unwrap();
    for (n, e) in ["👍", "🎉", "👀", "🙏", "😂", "😮"].iter().enumerate() {
        for who in 0..=n * 8 {
            tl.react(&id, e, &format!("user{who}"), false);
        }
    }
    let r: &Vec<Reaction> = &tl.get(&id).unwrap().meta.reactions;
    assert_eq!(r.len(), 6);
    let ctx = messages::BlockCtx::new(&app, 60);
    let tl = app.timeline().unwrap();
    let lines = messages::block_lines(&ctx, tl, 0, false);
    let rows: Vec<String> = lines
        .iter()
        .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
        .collect();
    let reaction_rows = rows.iter().filter(|r| r.contains("👍")).count();
    assert_eq!(reaction_rows, 1, "{rows:#?}");
    assert!(
        rows.iter().all(|r| crate::wrap::width(r) <= 60),
        "{rows:#?}"
    );
    assert!(
        rows.iter().any(|r| r.ends_with('…')),
        "cut, not wrapped: {rows:#?}"
    );
}

/// #team with files: bob's image (a preview), alice's upload under way,
/// one expired, one corrupt, and a hostile name.
fn attachments_app(w: u16, h: u16) -> App {
    use quicproquo_protocol::ipc::values::{TransferDirection, TransferState};
    let mut app = app(w, h);
    // Nothing is fetched for these: the fixture draws, it does not download.
    app.config.image_previews = false;
    let at = 48 * 60;
    let mut image = with_file(
        message(TEAM, 10, "bob", at, "the view from here"),
        "view.png",
        2_100_000,
        "image/png",
        TransferState::Downloaded,
    );
    if let Some(a) = image.meta.attachment.as_mut() {
        a.path = Some("/home/alice/.local/share/qpq/downloads/view.png".into());
    }
    let uploading = with_file(
        message(TEAM, 11, "alice", at + 1, ""),
        "slides.pdf",
        48_000_000,
        "application/pdf",
        TransferState::Uploading,
    );
    let expired = with_file(
        message(TEAM, 12, "carol", at + 2, "old notes"),
        "notes.txt",
        1_200,
        "text/plain",
        TransferState::Expired,
    );
    let mut corrupt = with_file(
        message(TEAM, 13, "bob", at + 3, ""),
        "data.csv",
        999,
        "text/csv",
        TransferState::Corrupt,
    );
    if let Some(a) = corrupt.meta.attachment.as_mut() {
        a.error = Some("sha-256 mismatch".into());
    }
    let hostile_name = format!("\u{1b}[2J\u{202e}gnp.{}\u{7}.exe", "x".repeat(300));
    let hostile = with_file(
        message(TEAM, 14, "bob", at + 4, "open me\u{1b}]0;pwned\u{7}"),
        &hostile_name,
        5,
        "image/png\u{1b}[31m",
        TransferState::Available,
    );
    for (n, m) in [image.clone(), uploading.clone(), expired, corrupt, hostile]
        .into_iter()
        .enumerate()
    {
        daemon(
            &mut app,
            DaemonEvent::Notification(quicproquo_protocol::ipc::Notification::Message(
                quicproquo_protocol::ipc::notifications::NewMessage {
                    seq: quicproquo_protocol::ipc::values::Seq(n as u64 + 1),
                    message: m,
                },
            )),
        );
    }
    app.transfers.insert(
        uploading.id,
        crate::app::Progress {
            direction: TransferDirection::Up,
            done: 20_160_000,
            total: 48_000_000,
            since: app.now,
            done_at_start: 0,
            rate: Some(12_300_000.0),
        },
    );
    // A 6×4-pixel picture: red over blue, then a transparent corner.
    let red = Some([255, 0, 0]);
    let blue = Some([0, 0, 255]);
    let rows = vec![
        vec![red; 6],
        vec![blue; 6],
        vec![red, red, red, None, None, None],
        vec![None; 6],
    ];
    app.previews.insert(
        image.id,
        crate::preview::Preview::Ready(crate::preview::Picture::from_rows(rows)),
    );
    app
}

#[test]
fn attachment_lines_progress_states_and_previews() {
    let app = attachments_app(100, 24);
    let shown = screen(&app);
    assert_snapshot!(shown);
    assert!(
        shown.contains("📎 view.png · 2.1 MB · image/png"),
        "{shown}"
    );
    assert!(shown.contains("uploading ██████░░░░░░░░░░ 42 % · 12.3 MB/s"));
    assert!(shown.contains("expired: the server no longer has this file"));
    assert!(shown.contains("✗ corrupt: sha-256 mismatch; nothing was kept"));
    // The hostile name: nothing reaches the terminal raw, it is cut to one
    // row, and size and type stay visible after it.
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{202e}'));
    let row = shown.lines().find(|l| l.contains("gnp.")).unwrap();
    assert!(
        row.contains("…") && row.ends_with("· 5 B · image/png�[31m"),
        "{row:?}"
    );
    // The preview's colours: red over blue in one half-block cell.
    let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
    t.draw(|f| super::render(&app, f)).unwrap();
    let buf = t.backend().buffer();
    let (x, y) = (0..24u16)
        .flat_map(|y| (0..100u16).map(move |x| (x, y)))
        .find(|&(x, y)| buf[(x, y)].symbol() == "▀")
        .unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Rgb(255, 0, 0));
    assert_eq!(buf[(x, y)].bg, Color::Rgb(0, 0, 255));
}

#[test]
fn a_selected_file_shows_its_keys() {
    let mut app = attachments_app(100, 24);
    let title = |app: &App| {
        screen(app)
            .lines()
            .find(|l| l.contains("── to #team"))
            .unwrap()
            .to_owned()
    };
    assert!(title(&app).contains("Enter send"), "{}", title(&app));
    // The newest message (the hostile name) carries a file.
    crate::testing::act(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::SHIFT)),
    );
    assert!(
        title(&app).ends_with("s save file · v open file"),
        "{}",
        title(&app)
    );
}

#[test]
fn narrow_attachments() {
    let app = attachments_app(40, 30);
    assert_snapshot!(screen(&app));
}

#[test]
fn a_pasted_file_asks() {
    let mut app = app(100, 16);
    crate::testing::act(
        &mut app,
        Action::PasteFile {
            text: "/tmp/report.pdf".into(),
            file: crate::attach::PastedFile {
                path: "/tmp/report.pdf".into(),
                size: 2_100_000,
            },
        },
    );
    let shown = screen(&app);
    assert!(
        shown.contains("Attach report.pdf (2.1 MB) to #team?"),
        "{shown}"
    );
    assert_snapshot!(shown);
}

/// [`attachments_app`] in an iTerm2 or sixel terminal: bob's picture has an
/// image to paint over its 6×2 cells.
fn painted_app(w: u16, h: u16) -> (App, quicproquo_protocol::ipc::values::MessageId) {
    let mut app = attachments_app(w, h);
    let (id, preview) = app
        .previews
        .iter_mut()
        .next()
        .map(|(id, p)| (*id, p))
        .unwrap();
    let crate::preview::Preview::Ready(pic) = preview else {
        panic!("the fixture's preview is ready");
    };
    pic.image = Some(crate::graphics::Image {
        cols: 6,
        rows: 2,
        bytes: b"<IMG>".to_vec(),
    });
    (app, id)
}

fn paints(
    app: &App,
    w: u16,
    h: u16,
) -> (Vec<crate::graphics::paint::Paint>, Terminal<TestBackend>) {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut paints = Vec::new();
    t.draw(|f| paints = super::render_with_images(app, f))
        .unwrap();
    (paints, t)
}

#[test]
fn an_image_is_painted_only_where_its_preview_is_whole_and_uncovered() {
    let (mut app, id) = painted_app(100, 24);
    let (found, t) = paints(&app, 100, 24);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, id);
    let r = found[0].rect;
    assert_eq!((r.width, r.height), (6, 2));
    // Over the half-blocks, which stay beneath it in ratatui's buffer.
    let buf = t.backend().buffer();
    assert_eq!(buf[(r.x, r.y)].symbol(), "▀");
    assert_eq!(buf[(r.x, r.y)].fg, Color::Rgb(255, 0, 0));
    assert_eq!(buf[(r.x + 3, r.y + 1)].symbol(), " ");
    assert_eq!(buf[(r.x - 1, r.y)].symbol(), " ", "its left edge");

    // Scrolled so that its bottom row is cut: half-blocks only.
    let tl = app.timelines.get_mut(&TEAM).unwrap();
    let index = tl.messages().iter().position(|m| m.id == id).unwrap();
    tl.view = crate::timeline::View::At { index, skip: 1 };
    let (found, t) = paints(&app, 100, 24);
    assert_eq!(found, []);
    let shown = screen(&app);
    assert!(shown.contains('▀'), "the half-blocks still show: {shown}");
    let _ = t;
    // Its top row cut: none either. Followed, the preview keeps its
    // distance from the bottom, so a shorter terminal moves it up.
    app.timelines.get_mut(&TEAM).unwrap().view = crate::timeline::View::Follow;
    let pane_top = |h: u16| layout::areas(&app, Rect::new(0, 0, 100, h)).messages.y;
    let from_bottom = 24 - r.y;
    let h = from_bottom + pane_top(24) - 1;
    assert_eq!(pane_top(h), pane_top(24), "the same layout");
    let (found, t) = paints(&app, 100, h);
    assert_eq!(found, [], "cut at the top");
    let row2 = t.backend().buffer()[(r.x, pane_top(h))].clone();
    assert_eq!((row2.symbol(), row2.fg), ("▀", Color::Rgb(255, 0, 0)));
    let (found, _) = paints(&app, 100, h + 1);
    assert_eq!(found.len(), 1, "one row more: whole again");

    // A box over it: none.
    app.overlay = Some(Overlay::Help { scroll: 0 });
    let (found, t) = paints(&app, 100, 24);
    let covered = t.backend().buffer()[(r.x, r.y)].symbol() != "▀";
    assert!(covered, "the help box covers the preview");
    assert_eq!(found, []);
    app.overlay = None;

    // Narrower than the image: cut, so none.
    let (mut app, _) = painted_app(100, 24);
    if let Some(crate::preview::Preview::Ready(p)) = app.previews.values_mut().next() {
        p.image.as_mut().unwrap().cols = 200;
    }
    assert_eq!(paints(&app, 100, 24).0, []);
}

/// What the loop writes to the terminal: the backend's bytes and the
/// loop's own (images), in one stream, and the latter one write apiece.
#[derive(Clone, Default)]
struct Wire {
    bytes: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
    sent: std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>,
}

impl std::io::Write for Wire {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.bytes.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl crate::event_loop::Outside for Wire {
    fn bell(&mut self) {}
    fn open(&mut self, _: &std::path::Path) {}
    fn decode(
        &mut self,
        _: quicproquo_protocol::ipc::values::MessageId,
        _: std::path::PathBuf,
        _: u64,
        _: crate::graphics::Target,
    ) {
    }
    fn transmit(&mut self, bytes: &[u8]) {
        self.bytes.borrow_mut().extend_from_slice(bytes);
        self.sent.borrow_mut().push(bytes.to_vec());
    }
}

/// The loop paints an image once after the frame that shows it, leaves it
/// alone while nothing moves, and erases it (rewriting its rows from the
/// frame) when it is covered.
#[tokio::test]
async fn the_loop_paints_after_the_frame_and_erases_what_went() {
    use crate::graphics::paint;
    let (mut app, _) = painted_app(100, 24);
    let (found, _) = paints(&app, 100, 24);
    let rect = found[0].rect;
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (req_tx, _req_rx) = tokio::sync::mpsc::channel(64);
    let mut out = Wire::default();
    let mut frames = 0;
    let (help, quit) = (
        KeyEvent::new(KeyCode::F(1), KeyModifiers::NONE),
        KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL),
    );
    let steps = [
        // A keystroke that changes the input, not the pane.
        Action::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE)),
        Action::Key(help),
        Action::Key(quit),
    ];
    crate::event_loop::run(&mut terminal, &mut app, &mut rx, &req_tx, &mut out, |_| {
        frames += 1;
        if let Some(step) = steps.get(frames - 1) {
            tx.try_send(step.clone()).unwrap();
        }
        false
    })
    .await
    .unwrap();
    assert_eq!(frames, 3, "the first frame, the keystroke's, help's");
    let mut first = paint::SAVE.to_vec();
    first.extend(paint::erase(&[]));
    let mut image = paint::at(rect, b"<IMG>");
    image.extend_from_slice(paint::RESTORE);
    let mut gone = paint::SAVE.to_vec();
    gone.extend(paint::erase(&[rect.y, rect.y + 1]));
    // Painted after the first frame; nothing after the keystroke's; its
    // rows erased (and redrawn) when help covers it, nothing painted.
    assert_eq!(
        *out.sent.borrow(),
        [first, image, gone, paint::RESTORE.to_vec()]
    );
    // The rows were written again from the frame: help's box shows there.
    let buf = terminal.backend().buffer();
    assert_ne!(buf[(rect.x, rect.y)].symbol(), "▀");
}

/// The same through crossterm's real backend, frame and painting in one
/// byte stream as the terminal gets it: the image comes after the frame,
/// with the cursor saved around it, and when covered its rows are erased,
/// then rewritten from the frame, before the cursor is restored.
#[tokio::test]
async fn the_terminal_gets_frame_then_image_then_the_rows_rewritten() {
    let (mut app, _) = painted_app(100, 24);
    let rect = paints(&app, 100, 24).0[0].rect;
    let stream = Wire::default();
    let mut terminal = Terminal::with_options(
        ratatui::backend::CrosstermBackend::new(stream.clone()),
        ratatui::TerminalOptions {
            viewport: ratatui::Viewport::Fixed(Rect::new(0, 0, 100, 24)),
        },
    )
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (req_tx, _req_rx) = tokio::sync::mpsc::channel(64);
    let mut out = stream.clone();
    let mut frames = 0;
    let mut after_first = 0;
    crate::event_loop::run(&mut terminal, &mut app, &mut rx, &req_tx, &mut out, |_| {
        frames += 1;
        let key = if frames == 1 {
            after_first = stream.bytes.borrow().len();
            KeyEvent::new(KeyCode::F(1), KeyModifiers::NONE)
        } else {
            KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL)
        };
        tx.try_send(Action::Key(key)).unwrap();
        false
    })
    .await
    .unwrap();
    let bytes = stream.bytes.borrow().clone();
    let find = |from: usize, what: &[u8]| {
        bytes[from..]
            .windows(what.len())
            .position(|w| w == what)
            .map(|i| i + from)
    };
    // First frame: the frame's own text, then the image, last.
    let image = format!("\x1b7\x1b[{};{}H<IMG>\x1b8", rect.y + 1, rect.x + 1);
    let at = find(0, image.as_bytes()).expect("the image is painted");
    assert!(find(0, b"here").unwrap() < at, "after the text");
    assert_eq!(
        at + image.len(),
        after_first,
        "written last in the first frame"
    );
    // Help covers it: its rows erased, rewritten, and nothing painted.
    let erase = format!(
        "\x1b7\x1b[{};1H\x1b[2K\x1b[{};1H\x1b[2K",
        rect.y + 1,
        rect.y + 2
    );
    let e = find(after_first, erase.as_bytes()).expect("its rows are erased");
    let restore = find(e, b"\x1b8").unwrap();
    let rewrite = &bytes[e + erase.len()..restore];
    assert!(
        find(e, format!("\x1b[{};1H", rect.y + 1).as_bytes()).unwrap() < restore,
        "the erased rows are written again from their first column"
    );
    assert!(rewrite.len() > 100, "{}", String::from_utf8_lossy(rewrite));
    assert!(
        find(after_first, b"<IMG>").is_none(),
        "not painted under help"
    );
}
