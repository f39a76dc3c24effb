//! The conversation list (with unread counts and changed-key marks) and the
//! member panel.

use quicproquo_protocol::ipc::values::ConversationKind;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{App, Loadable};
use crate::wrap;

pub fn render(app: &App, f: &mut Frame<'_>, area: Rect) {
    let block = Block::default()
        .borders(Borders::RIGHT)
        .border_style(Style::default().fg(Color::DarkGray));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let dim = Style::default().fg(Color::DarkGray);
    let list = match &app.conversations {
        Loadable::Loading => {
            f.render_widget(Paragraph::new(Span::styled("Loading…", dim)), inner);
            return;
        }
        Loadable::Failed(e) => {
            f.render_widget(
                Paragraph::new(Span::styled(format!("Could not load: {e}"), dim))
                    .wrap(Wrap { trim: true }),
                inner,
            );
            return;
        }
        Loadable::Ready(list) if list.is_empty() => {
            let lines: Vec<Line<'static>> =
                ["No conversations yet.", "/dm user", "/group create name"]
                    .into_iter()
                    .map(|l| Line::from(Span::styled(l, dim)))
                    .collect();
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), inner);
            return;
        }
        Loadable::Ready(list) => list,
    };
    let width = usize::from(inner.width);
    let height = usize::from(inner.height);
    let sel = app
        .selected
        .and_then(|id| list.iter().position(|c| c.id == id))
        .unwrap_or(0);
    // Keep the selected row in view.
    let first = sel.saturating_sub(height.saturating_sub(1));
    let mut lines = Vec::new();
    for c in list.iter().skip(first).take(height) {
        let selected = Some(c.id) == app.selected;
        let changed = app.has_changed_key(c);
        let badge = match (c.unread, changed) {
            (0, false) => String::new(),
            (0, true) => " !".to_owned(),
            (n, false) => format!(" {n}"),
            (n, true) => format!(" ! {n}"),
        };
        let title = wrap::sanitize(&app.title(c)).into_owned();
        let room = width.saturating_sub(wrap::width(&badge));
        let title = wrap::truncate(&title, room).into_owned();
        let pad = room.saturating_sub(wrap::width(&title));
        let mut style = Style::default();
        if c.unread > 0 {
            style = style.add_modifier(Modifier::BOLD);
        }
        if c.kind == ConversationKind::Group {
            style = style.fg(Color::Cyan);
        }
        if selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        let badge_style = if changed {
            style.fg(Color::LightRed)
        } else {
            style.fg(Color::Yellow)
        };
        lines.push(Line::from(vec![
            Span::styled(title, style),
            Span::styled(" ".repeat(pad), style),
            Span::styled(badge, badge_style),
        ]));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

pub fn render_members(app: &App, f: &mut Frame<'_>, area: Rect) {
    let block = Block::default()
        .borders(Borders::LEFT)
        .title(" Members ")
        .border_style(Style::default().fg(Color::DarkGray));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let dim = Style::default().fg(Color::DarkGray);
    let Some(id) = app.selected else {
        return;
    };
    let lines: Vec<Line<'static>> = match app.members.get(&id) {
        None | Some(Loadable::Loading) => vec![Line::from(Span::styled("Loading…", dim))],
        Some(Loadable::Failed(e)) => vec![Line::from(Span::styled(e.clone(), dim))],
        Some(Loadable::Ready(ms)) if ms.is_empty() => {
            vec![Line::from(Span::styled("No members", dim))]
        }
        Some(Loadable::Ready(ms)) => ms
            .iter()
            .map(|m| {
                let (mark, style) = if m.key_changed || app.changed_keys.contains(&m.username) {
                    ("! ", Style::default().fg(Color::LightRed))
                } else if m.verified {
                    ("✓ ", Style::default().fg(Color::Green))
                } else {
                    ("  ", Style::default())
                };
                let (shown, name_style) = if m.deleted {
                    (
                        format!("{} (deleted account)", wrap::sanitize(&m.username)),
                        dim,
                    )
                } else {
                    (wrap::sanitize(&m.username).into_owned(), Style::default())
                };
                let name =
                    wrap::truncate(&shown, usize::from(inner.width).saturating_sub(2)).into_owned();
                Line::from(vec![
                    Span::styled(mark, style),
                    Span::styled(name, name_style),
                ])
            })
            .collect(),
    };
    f.render_widget(Paragraph::new(lines), inner);
}
