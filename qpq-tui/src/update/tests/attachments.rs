//! Issue 18 in the chat: `/attach` (paths resolved, Tab completion), a
//! pasted file's prompt, `transfer` notifications, the save and open keys,
//! and image previews asked for by themselves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quicproquo_protocol::ipc::methods::{AttachParams, DownloadParams};
use quicproquo_protocol::ipc::notifications::TransferUpdate;
use quicproquo_protocol::ipc::values::{Attachment, MessageId, TransferDirection, TransferState};

use super::*;
use crate::app::AfterDownload;
use crate::attach::{PastedFile, Places};
use crate::graphics::{Protocol, Target};
use crate::preview::{Picture, Preview};

fn places(app: &mut App, cwd: &Path) {
    app.places = Places {
        cwd: cwd.to_owned(),
        home: Some(PathBuf::from("/home/al")),
        downloads: PathBuf::from("/home/al/Downloads"),
    };
}

fn attach_call(fx: &[Effect]) -> Option<AttachParams> {
    requests(fx).into_iter().find_map(|r| match r {
        Request::Call(Call::Attach(p)) => Some(p),
        _ => None,
    })
}

fn download_call(fx: &[Effect]) -> Option<DownloadParams> {
    requests(fx).into_iter().find_map(|r| match r {
        Request::Call(Call::Download(p)) => Some(p),
        _ => None,
    })
}

fn transfer(app: &mut App, id: MessageId, state: TransferState, done: u64) -> Vec<Effect> {
    let path = (state == TransferState::Downloaded).then(|| "/dl/report.pdf".to_owned());
    daemon(
        app,
        DaemonEvent::Notification(Notification::Transfer(TransferUpdate {
            seq: Seq(900 + done),
            conversation: TEAM,
            id,
            direction: TransferDirection::Down,
            state,
            done,
            total: 1000,
            path,
            error: (state == TransferState::Expired).then(|| "gone since Tuesday".to_owned()),
        })),
    )
}

/// A file from bob, newest in #team.
fn file_from_bob(app: &mut App, n: u32, name: &str, ctype: &str, size: u64) -> MessageId {
    let m = with_file(
        message(TEAM, n, "bob", 48 * 60, "the slides"),
        name,
        size,
        ctype,
        TransferState::Available,
    );
    let id = m.id;
    incoming(app, u64::from(n), m);
    id
}

fn notice(app: &App) -> String {
    app.notice
        .as_ref()
        .map(|n| n.text.clone())
        .unwrap_or_default()
}

#[test]
fn attach_resolves_the_path_and_the_answer_comes_back_at_once() {
    let mut app = app(100, 20);
    places(&mut app, Path::new("/work/here"));
    typed(&mut app, "/attach ~/my\\ slides.pdf for Monday");
    let fx = key(&mut app, KeyCode::Enter);
    let p = attach_call(&fx).expect("an attach call");
    assert_eq!(p.path, "/home/al/my slides.pdf");
    assert_eq!(p.caption, "for Monday");
    assert_eq!(p.conversation, TEAM.into());
    assert!(app.editor.is_empty());
    assert!(notice(&app).contains("Attaching my slides.pdf"));

    typed(&mut app, "/attach notes.txt");
    let p = attach_call(&key(&mut app, KeyCode::Enter)).unwrap();
    assert_eq!(
        p.path, "/work/here/notes.txt",
        "relative to the TUI's directory"
    );

    // The answer: our message, uploading, in the timeline.
    let m = with_file(
        message(TEAM, 50, "alice", 48 * 60, ""),
        "notes.txt",
        10,
        "text/plain",
        TransferState::Uploading,
    );
    daemon(&mut app, DaemonEvent::Attached(m.clone()));
    assert_eq!(app.timeline().unwrap().newest().unwrap().id, m.id);

    // The daemon's refusal, in its words.
    daemon(
        &mut app,
        DaemonEvent::AttachFailed {
            params: Box::new(p.clone()),
            failure: Failure {
                code: Some(IpcErrorCode::FileError),
                message: "/work/here/x: no such file".into(),
            },
        },
    );
    assert_eq!(notice(&app), "Not attached: /work/here/x: no such file");
    // A changed key asks, as a send does; `y` attaches anyway.
    daemon(
        &mut app,
        DaemonEvent::AttachFailed {
            params: Box::new(p.clone()),
            failure: Failure {
                code: Some(IpcErrorCode::IdentityChanged),
                message: "bob's key changed".into(),
            },
        },
    );
    assert!(
        matches!(&app.overlay, Some(Overlay::ConfirmSend { text, attach: Some(_), .. }) if text == "📎 notes.txt"),
        "{:?}",
        app.overlay
    );
    let again = attach_call(&key(&mut app, KeyCode::Char('y'))).unwrap();
    assert!(again.confirm_changed_keys);
    assert_eq!(again.path, p.path);
    // An unclosed quote is refused before the daemon.
    typed(&mut app, "/attach \"x");
    assert!(attach_call(&key(&mut app, KeyCode::Enter)).is_none());
    assert!(notice(&app).contains("quote"));
}

#[test]
fn a_small_upload_that_ends_before_attach_answers_is_not_lost() {
    let mut app = app(100, 20);
    let m = with_file(
        message(TEAM, 51, "alice", 48 * 60, ""),
        "tiny.txt",
        3,
        "text/plain",
        TransferState::Uploading,
    );
    daemon(
        &mut app,
        DaemonEvent::Notification(Notification::Transfer(TransferUpdate {
            seq: Seq(5),
            conversation: TEAM,
            id: m.id,
            direction: TransferDirection::Up,
            state: TransferState::Uploaded,
            done: 3,
            total: 3,
            path: None,
            error: None,
        })),
    );
    daemon(&mut app, DaemonEvent::Attached(m.clone()));
    let a = app.timeline().unwrap().get(&m.id).unwrap();
    assert_eq!(
        a.meta.attachment.as_ref().unwrap().state,
        TransferState::Uploaded
    );
}

#[test]
fn tab_completes_the_path_after_attach() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["report.pdf", "report-old.pdf", "zeta.txt"] {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    let mut app = app(100, 20);
    places(&mut app, dir.path());
    typed(&mut app, "/attach rep");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.editor.text(), "/attach report");
    assert_eq!(notice(&app), "report-old.pdf  report.pdf");
    typed(&mut app, ".");
    key(&mut app, KeyCode::Tab);
    assert_eq!(
        app.editor.text(),
        "/attach report.pdf ",
        "one file: a space after"
    );
    // In the caption, Tab completes nothing.
    typed(&mut app, "ze");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.editor.text(), "/attach report.pdf ze");
}

#[test]
fn a_pasted_file_asks_before_attaching() {
    let mut app = app(100, 20);
    let file = PastedFile {
        path: PathBuf::from("/tmp/report.pdf"),
        size: 2_100_000,
    };
    let paste = |text: &str| Action::PasteFile {
        text: text.into(),
        file: file.clone(),
    };
    act(&mut app, paste("'/tmp/report.pdf'"));
    assert!(matches!(app.overlay, Some(Overlay::ConfirmAttach { .. })));
    assert!(app.editor.is_empty(), "not inserted while it asks");
    let p = attach_call(&key(&mut app, KeyCode::Char('y'))).unwrap();
    assert_eq!(p.path, "/tmp/report.pdf");
    assert!(app.overlay.is_none());

    // n inserts the pasted text as usual.
    act(&mut app, paste("'/tmp/report.pdf'"));
    let fx = key(&mut app, KeyCode::Char('n'));
    assert!(attach_call(&fx).is_none());
    assert_eq!(app.editor.text(), "'/tmp/report.pdf'");

    // Pasted into a command being typed: part of it, no question.
    app.editor.take();
    typed(&mut app, "/attach ");
    act(&mut app, paste("/tmp/report.pdf"));
    assert!(app.overlay.is_none());
    assert_eq!(app.editor.text(), "/attach /tmp/report.pdf");
}

#[test]
fn transfers_move_the_progress_line_and_end_plainly() {
    let mut app = app(100, 20);
    let id = file_from_bob(&mut app, 60, "report.pdf", "application/pdf", 1000);
    transfer(&mut app, id, TransferState::Downloading, 0);
    app.now += Duration::from_secs(1);
    transfer(&mut app, id, TransferState::Downloading, 500);
    let p = app.transfers[&id];
    assert_eq!(
        crate::update::progress_words(&p),
        "downloading 50 % · 500 B/s"
    );
    let state = |app: &App| {
        app.timeline()
            .unwrap()
            .get(&id)
            .unwrap()
            .meta
            .attachment
            .clone()
            .unwrap()
    };
    assert_eq!(state(&app).state, TransferState::Downloading);
    transfer(&mut app, id, TransferState::Downloaded, 1000);
    assert!(app.transfers.is_empty());
    let a: Attachment = *state(&app);
    assert_eq!(a.state, TransferState::Downloaded);
    assert_eq!(a.path.as_deref(), Some("/dl/report.pdf"));

    transfer(&mut app, id, TransferState::Expired, 0);
    assert_eq!(state(&app).state, TransferState::Expired);
    assert!(
        notice(&app).contains("report.pdf has expired") && notice(&app).contains("Tuesday"),
        "{}",
        notice(&app)
    );
}

#[test]
fn save_and_open_keys_act_on_a_selected_attachment() {
    let mut app = app(100, 20);
    let id = file_from_bob(&mut app, 61, "report.pdf", "application/pdf", 1000);
    // Typed while writing: the letters are text.
    typed(&mut app, "so");
    assert_eq!(app.editor.text(), "so");
    app.editor.take();

    shift_up(&mut app);
    let fx = key(&mut app, KeyCode::Char('s'));
    let save = requests(&fx)
        .into_iter()
        .find(|r| matches!(r, Request::Save { .. }))
        .expect("a save");
    assert_eq!(
        save,
        Request::Save {
            conversation: TEAM,
            id,
            dir: app.places.downloads.clone(),
            name: "report.pdf".into()
        }
    );
    transfer(&mut app, id, TransferState::Downloaded, 1000);
    assert_eq!(notice(&app), "Saved report.pdf to /dl/report.pdf");

    // Open: downloaded already, so at once.
    let fx = key(&mut app, KeyCode::Char('v'));
    assert!(fx.contains(&Effect::Open(PathBuf::from("/dl/report.pdf"))));

    // Not downloaded yet: downloaded first, opened when the answer says so.
    let other = file_from_bob(&mut app, 62, "b.pdf", "application/pdf", 10);
    shift_up(&mut app);
    let fx = key(&mut app, KeyCode::Char('v'));
    let d = download_call(&fx).expect("a download");
    assert_eq!((d.id, d.path.as_deref()), (other, None));
    assert_eq!(app.after_download.get(&other), Some(&AfterDownload::Open));
    let mut a = app
        .timeline()
        .unwrap()
        .get(&other)
        .unwrap()
        .meta
        .attachment
        .as_deref()
        .cloned()
        .unwrap();
    a.state = TransferState::Downloaded;
    a.path = Some("/data/downloads/b.pdf".into());
    let fx = daemon(
        &mut app,
        DaemonEvent::Downloading {
            conversation: TEAM,
            id: other,
            attachment: a,
        },
    );
    assert!(fx.contains(&Effect::Open(PathBuf::from("/data/downloads/b.pdf"))));

    // A message without a file says so.
    let plain = message(TEAM, 63, "bob", 48 * 60, "just text");
    incoming(&mut app, 63, plain);
    shift_up(&mut app);
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(notice(&app), "That message has no attachment.");
}

fn shift_up(app: &mut App) {
    // From the newest: Esc follows again, Shift+Up selects the newest.
    key(app, KeyCode::Esc);
    press(app, KeyCode::Up, KeyModifiers::SHIFT);
}

#[test]
fn images_are_downloaded_and_decoded_for_their_preview() {
    let mut app = app(100, 20);
    let id = file_from_bob(&mut app, 70, "cat.png", "image/png", 50_000);
    // Shown (the newest, followed): downloaded once, to the daemon's place.
    let asked: Vec<_> = app.preview_asked.iter().copied().collect();
    assert_eq!(asked, [id]);
    transfer(&mut app, id, TransferState::Downloading, 10);
    let fx = transfer(&mut app, id, TransferState::Downloaded, 1000);
    assert!(
        fx.contains(&Effect::Decode {
            id,
            path: PathBuf::from("/dl/report.pdf"),
            max_bytes: 10 << 20,
            target: Target::HalfBlocks,
        }),
        "{fx:?}"
    );
    assert_eq!(app.previews.get(&id), Some(&Preview::Decoding));
    let pic = Picture::from_rows(vec![vec![Some([1, 2, 3])]; 2]);
    act(
        &mut app,
        Action::Preview {
            id,
            result: Ok(pic.clone()),
        },
    );
    assert_eq!(app.previews.get(&id), Some(&Preview::Ready(pic)));

    // Too large, not an image, or previews off: nothing is fetched.
    let big = file_from_bob(&mut app, 71, "huge.png", "image/png", 11 << 20);
    let pdf = file_from_bob(&mut app, 72, "a.pdf", "application/pdf", 10);
    assert!(!app.preview_asked.contains(&big) && !app.preview_asked.contains(&pdf));
    app.config.image_previews = false;
    let off = file_from_bob(&mut app, 73, "dog.gif", "image/gif", 10);
    assert!(!app.preview_asked.contains(&off));
}

#[test]
fn a_preview_download_that_fails_stays_quiet() {
    let mut app = app(100, 20);
    let id = file_from_bob(&mut app, 74, "cat.png", "image/png", 50_000);
    app.notice = None;
    daemon(
        &mut app,
        DaemonEvent::DownloadFailed {
            conversation: TEAM,
            id,
            failure: Failure {
                code: Some(IpcErrorCode::Expired),
                message: "expired".into(),
            },
        },
    );
    assert!(app.notice.is_none(), "{:?}", app.notice);
    assert!(matches!(app.previews.get(&id), Some(Preview::Failed(_))));
    let a = app.timeline().unwrap().get(&id).unwrap();
    assert_eq!(
        a.meta.attachment.as_ref().unwrap().state,
        TransferState::Expired
    );
}

fn decode_target(fx: &[Effect]) -> Option<Target> {
    fx.iter().find_map(|e| match e {
        Effect::Decode { target, .. } => Some(*target),
        _ => None,
    })
}

/// iTerm2 and sixel images are made for the terminal's cell size; sixel
/// (painted pixel for pixel) only when the terminal reports it.
#[test]
fn iterm2_and_sixel_images_are_made_for_the_cell_size() {
    let cases = [
        (
            Protocol::Iterm2,
            Some((8, 16)),
            Target::Iterm2 { cell_px: (8, 16) },
        ),
        (Protocol::Iterm2, None, Target::Iterm2 { cell_px: (10, 20) }),
        (
            Protocol::Sixel,
            Some((8, 16)),
            Target::Sixel { cell_px: (8, 16) },
        ),
        (Protocol::Sixel, None, Target::HalfBlocks),
    ];
    for (n, (protocol, cell_px, want)) in cases.into_iter().enumerate() {
        let mut app = app(100, 20);
        app.graphics = Some(protocol);
        app.cell_px = cell_px;
        let id = file_from_bob(&mut app, 80 + n as u32, "cat.png", "image/png", 50_000);
        let fx = transfer(&mut app, id, TransferState::Downloaded, 1000);
        assert_eq!(decode_target(&fx), Some(want));
    }
}

/// A font size change: sixel images are made again for the new cells.
#[test]
fn new_cell_sizes_make_the_images_again() {
    let mut app = app(100, 20);
    app.graphics = Some(Protocol::Sixel);
    app.cell_px = Some((8, 16));
    let id = file_from_bob(&mut app, 90, "cat.png", "image/png", 50_000);
    transfer(&mut app, id, TransferState::Downloaded, 1000);
    let mut pic = Picture::from_rows(vec![vec![Some([1, 2, 3])]; 2]);
    pic.image = Some(crate::graphics::Image {
        cols: 1,
        rows: 1,
        bytes: b"\x1bPq\x1b\\".to_vec(),
    });
    act(
        &mut app,
        Action::Preview {
            id,
            result: Ok(pic),
        },
    );
    let fx = act(&mut app, Action::CellSize(Some((8, 16))));
    assert_eq!(decode_target(&fx), None, "unchanged");
    let fx = act(&mut app, Action::CellSize(Some((10, 20))));
    assert_eq!(
        decode_target(&fx),
        Some(Target::Sixel { cell_px: (10, 20) })
    );
    // The terminal stopped saying: half-blocks.
    act(
        &mut app,
        Action::Preview {
            id,
            result: Ok(Picture::from_rows(vec![])),
        },
    );
    let fx = act(&mut app, Action::CellSize(None));
    assert_eq!(decode_target(&fx), None, "a half-block picture is kept");
}

#[test]
fn in_a_kitty_terminal_the_image_is_sent_before_it_is_placed() {
    let mut app = app(100, 20);
    app.graphics = Some(Protocol::Kitty);
    let id = file_from_bob(&mut app, 75, "cat.png", "image/png", 50_000);
    let fx = transfer(&mut app, id, TransferState::Downloaded, 1000);
    assert_eq!(decode_target(&fx), Some(Target::Kitty(1)));
    assert_eq!(app.next_image_id, 2, "each image its own id");
    let mut pic = Picture::from_rows(vec![vec![Some([1, 2, 3])]; 2]);
    pic.send = Some(b"\x1b_Ga=T;AAAA\x1b\\".to_vec());
    let fx = act(
        &mut app,
        Action::Preview {
            id,
            result: Ok(pic),
        },
    );
    assert!(fx.contains(&Effect::Transmit(b"\x1b_Ga=T;AAAA\x1b\\".to_vec())));
    match app.previews.get(&id) {
        Some(Preview::Ready(p)) => assert!(p.send.is_none(), "sent once, not kept"),
        other => panic!("{other:?}"),
    }
}
