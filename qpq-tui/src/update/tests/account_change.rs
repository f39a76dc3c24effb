//! `/passwd` and `/delete-account`: a box of masked fields, checked before
//! anything is sent.

use quicproquo_protocol::ipc::methods::{AccountDeleteParams, PasswordChangeParams};
use quicproquo_protocol::ipc::values::Secret;

use super::*;

#[test]
fn passwd_asks_the_current_password_and_a_new_one_twice() {
    let mut app = app(100, 30);
    typed(&mut app, "/passwd");
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(
        screen(&app).contains("Change the password"),
        "{}",
        screen(&app)
    );

    typed(&mut app, "old password");
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "short");
    key(&mut app, KeyCode::Enter);
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(screen(&app).contains("at least 10"), "{}", screen(&app));
    typed(&mut app, " but long now");
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "short but long noW");
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(screen(&app).contains("differ"), "{}", screen(&app));
    typed(&mut app, "short but long now");
    assert_eq!(
        requests(&key(&mut app, KeyCode::Enter)),
        [Request::Call(Call::AccountPassword(PasswordChangeParams {
            current_password: Secret::new("old password"),
            new_password: Secret::new("short but long now"),
        }))]
    );
    assert!(!screen(&app).contains("old password"), "masked");

    // A wrong current password comes back in the box, which stays open.
    daemon(
        &mut app,
        DaemonEvent::AccountFailed(Failure::new("the current password is not right")),
    );
    assert!(screen(&app).contains("not right"), "{}", screen(&app));
    assert!(matches!(app.overlay, Some(Overlay::AccountChange(_))));
    daemon(&mut app, DaemonEvent::PasswordChanged);
    assert!(app.overlay.is_none());
}

#[test]
fn delete_account_needs_the_username_typed_out() {
    let mut app = app(100, 30);
    typed(&mut app, "/delete-account");
    key(&mut app, KeyCode::Enter);
    assert!(
        screen(&app).contains("cannot be undone"),
        "{}",
        screen(&app)
    );
    typed(&mut app, "alcie");
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "the password");
    assert!(requests(&key(&mut app, KeyCode::Enter)).is_empty());
    assert!(
        screen(&app).contains("nothing was deleted"),
        "{}",
        screen(&app)
    );
    for _ in 0..5 {
        key(&mut app, KeyCode::Backspace);
    }
    typed(&mut app, "alice");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        requests(&key(&mut app, KeyCode::Enter)),
        [Request::Call(Call::AccountDelete(AccountDeleteParams {
            password: Secret::new("the password"),
        }))]
    );
    assert!(daemon(&mut app, DaemonEvent::AccountDeleted).contains(&Effect::Quit));

    // Esc cancels without sending anything.
    let mut app = crate::testing::app(100, 30);
    typed(&mut app, "/delete-account");
    key(&mut app, KeyCode::Enter);
    assert!(requests(&key(&mut app, KeyCode::Esc)).is_empty());
    assert!(app.overlay.is_none());
}
