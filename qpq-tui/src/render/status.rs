//! The status bar: account and server (the node in use, when the server
//! has several), the connection (to qpqd and to the
//! server), whether the conversation is post-quantum protected, and the
//! latest notice.

use quicproquo_protocol::ipc::methods::StatusResult;
use quicproquo_protocol::ipc::values::{ConnectionState, StorageState};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{App, Daemon, NoticeLevel};
use crate::config::KeyAction;
use crate::wrap;

/// The server as the bar names it: the node in use when the profile lists
/// several (the whole list says nothing about where the daemon is), else
/// the server as given.
fn server_shown(status: &StatusResult) -> Option<&str> {
    match (status.server.as_deref(), status.node.as_deref()) {
        (Some(list), Some(node)) if list.contains(',') => Some(node),
        (server, _) => server,
    }
}

pub fn render(app: &App, f: &mut Frame<'_>, area: Rect) {
    if area.height == 0 {
        return;
    }
    let bar = Style::default().bg(Color::Rgb(40, 40, 48)).fg(Color::Gray);
    let mut spans = Vec::new();
    let account = match (app.me(), app.status.as_ref().and_then(server_shown)) {
        (Some(me), Some(server)) => format!(" {me}@{server} "),
        (Some(me), None) => format!(" {me} "),
        _ => format!(" {} ", app.profile),
    };
    spans.push(Span::styled(
        wrap::sanitize(&account).into_owned(),
        bar.add_modifier(Modifier::BOLD),
    ));
    let (conn, color) = match (&app.daemon, app.connection()) {
        (Daemon::Connecting, _) => ("◌ starting qpqd", Color::Yellow),
        (Daemon::Gone(_), _) => ("✗ qpqd gone, retrying", Color::LightRed),
        (Daemon::Connected, Some(ConnectionState::Online)) => ("● online", Color::Green),
        (Daemon::Connected, Some(ConnectionState::Reconnecting)) => {
            ("◌ reconnecting", Color::Yellow)
        }
        (Daemon::Connected, Some(ConnectionState::Offline)) => ("○ offline", Color::LightRed),
        (Daemon::Connected, Some(ConnectionState::LoggedOut)) => ("○ logged out", Color::LightRed),
        (Daemon::Connected, None) => ("● qpqd", Color::Green),
    };
    spans.push(Span::styled("│ ", bar));
    spans.push(Span::styled(conn, bar.fg(color)));
    match app.post_quantum() {
        Some(true) => {
            spans.push(Span::styled(" │ ", bar));
            spans.push(Span::styled(
                "PQ✓ X25519+ML-KEM-768",
                bar.fg(Color::Green).add_modifier(Modifier::BOLD),
            ));
        }
        Some(false) => {
            spans.push(Span::styled(" │ ", bar));
            spans.push(Span::styled("classic X25519", bar.fg(Color::Yellow)));
        }
        None => {}
    }
    if app
        .status
        .as_ref()
        .is_some_and(|s| s.storage == StorageState::Failing)
    {
        // Mail is kept on the server until it can be stored; the detail
        // (`status.storage_detail`) is in `qpq-ctl status`.
        spans.push(Span::styled(" │ ", bar));
        spans.push(Span::styled(
            "⚠ cannot store mail (disk?)",
            bar.fg(Color::LightRed).add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(out) = app.status.as_ref().map(|s| s.outbox).filter(|n| *n > 0) {
        spans.push(Span::styled(format!(" │ {out} queued"), bar));
    }
    spans.push(Span::styled(" │ ", bar));
    match &app.notice {
        Some(n) => {
            let style = match n.level {
                NoticeLevel::Info => bar.fg(Color::White),
                NoticeLevel::Error => bar.fg(Color::LightRed).add_modifier(Modifier::BOLD),
            };
            let one_line = n.text.replace('\n', " ");
            spans.push(Span::styled(wrap::sanitize(&one_line).into_owned(), style));
        }
        None => spans.push(Span::styled(
            format!("{} help", app.config.keys.hint(KeyAction::Help)),
            bar,
        )),
    }
    f.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}
