//! Drawing: `render(&App, &mut Frame)` reads the state and draws it, with no
//! side effects (no loads, no state changes). One file per part of the
//! screen; [`layout`] decides where each part goes.

pub mod layout;
pub mod messages;

mod account;
mod conversations;
mod input;
mod overlay;
mod status;

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::app::{App, Screen};

/// Draws the whole screen.
pub fn render(app: &App, f: &mut Frame<'_>) {
    let area = f.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    match &app.screen {
        Screen::Starting => {
            status::render(app, f, layout::areas(app, area).status);
            let body = Rect {
                height: area.height.saturating_sub(1),
                ..area
            };
            let text = match &app.daemon {
                crate::app::Daemon::Gone(reason) => {
                    format!("qpqd is not reachable: {reason}\nRetrying by itself… (Ctrl+Q quits)")
                }
                _ => "Connecting to qpqd…".to_owned(),
            };
            f.render_widget(
                Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
                body,
            );
        }
        Screen::Account(form) => account::render_account(app, form, f, area),
        Screen::Unlock(form) => account::render_unlock(app, form, f, area),
        Screen::Main => render_main(app, f, area),
    }
}

fn render_main(app: &App, f: &mut Frame<'_>, area: Rect) {
    let a = layout::areas(app, area);
    if let Some(list) = a.list {
        conversations::render(app, f, list);
    }
    render_header(app, f, a.header);
    messages::render(app, f, a.messages);
    if let Some(members) = a.members {
        conversations::render_members(app, f, members);
    }
    input::render(app, f, a.input_title, a.input);
    status::render(app, f, a.status);
    if let Some(o) = &app.overlay {
        overlay::render(app, o, f, area);
    }
}

/// The conversation's title, its protection and any changed keys.
fn render_header(app: &App, f: &mut Frame<'_>, area: Rect) {
    if area.height == 0 {
        return;
    }
    let Some(c) = app.current() else {
        f.render_widget(Block::default().borders(Borders::BOTTOM), area);
        return;
    };
    let mut spans = vec![Span::styled(
        crate::wrap::sanitize(&app.title(c)).into_owned(),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    match app.post_quantum() {
        Some(true) => spans.push(Span::styled(
            "  PQ✓",
            Style::default()
                .fg(Color::Green)
                .add_modifier(Modifier::BOLD),
        )),
        Some(false) => spans.push(Span::styled(
            "  classic (not post-quantum)",
            Style::default().fg(Color::Yellow),
        )),
        None => {}
    }
    if c.kind == quicproquo_protocol::ipc::values::ConversationKind::Group {
        spans.push(Span::styled(
            format!("  {} members", c.members.len()),
            Style::default().fg(Color::DarkGray),
        ));
    }
    let changed: Vec<&String> = c
        .members
        .iter()
        .filter(|m| app.changed_keys.contains(*m))
        .collect();
    if let Some(first) = changed.first() {
        spans.push(Span::styled(
            format!("  ! {first}'s key changed: /verify {first}"),
            Style::default()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
        ));
    }
    f.render_widget(
        Paragraph::new(Line::from(spans)).style(Style::default().bg(Color::Reset)),
        area,
    );
}

#[cfg(test)]
mod tests;
