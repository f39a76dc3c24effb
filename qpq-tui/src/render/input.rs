//! The editor box: a title row with the conversation and the key hints,
//! then the wrapped text with the cursor.

use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::App;
use crate::config::KeyAction;
use crate::wrap;

pub fn render(app: &App, f: &mut Frame<'_>, title: Rect, area: Rect) {
    let dim = Style::default().fg(Color::DarkGray);
    if title.height > 0 {
        let target = app
            .current()
            .map_or_else(|| "no conversation".to_owned(), |c| app.title(c));
        let keys = &app.config.keys;
        // A letter is shown as typed (`s`), not as the label's capital.
        let letter = |action: KeyAction| {
            let h = keys.hint(action);
            if h.chars().count() == 1 {
                h.to_lowercase()
            } else {
                h
            }
        };
        let on_file = app.selecting
            && app.editor.is_empty()
            && app.timeline().is_some_and(|tl| {
                tl.selected()
                    .and_then(|i| tl.messages().get(i))
                    .is_some_and(|m| m.meta.attachment.is_some() && !m.meta.deleted)
            });
        let hint = if on_file {
            format!(
                " {} save file · {} open file ",
                letter(KeyAction::SaveAttachment),
                letter(KeyAction::OpenAttachment),
            )
        } else {
            format!(
                " {} send · {} newline · {} help ",
                keys.hint(KeyAction::Send),
                keys.hint(KeyAction::Newline),
                keys.hint(KeyAction::Help),
            )
        };
        let w = usize::from(title.width);
        // What is under way beats where it goes: a reply's quote or an
        // edit, then who is typing there.
        let typing = app.selected.map(|c| app.typing_in(c)).unwrap_or_default();
        let head = if let Some(c) = &app.compose {
            format!(
                "── {} (Esc cancels) ",
                wrap::sanitize(&crate::update::compose_banner(c)).replace('\n', " ")
            )
        } else if !typing.is_empty() {
            format!(
                "── to {} · {} ",
                wrap::sanitize(&target),
                wrap::sanitize(&typing_words(&typing))
            )
        } else {
            format!("── to {} ", wrap::sanitize(&target))
        };
        let head = wrap::truncate(&head, w).into_owned();
        let rest = w.saturating_sub(wrap::width(&head));
        let hint = if wrap::width(&hint) + 2 <= rest {
            hint
        } else {
            String::new()
        };
        let fill = rest.saturating_sub(wrap::width(&hint));
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(head, dim),
                Span::styled("─".repeat(fill), dim),
                Span::styled(hint, dim),
            ])),
            title,
        );
    }
    if area.height == 0 || area.width == 0 {
        return;
    }
    let layout = app.editor.layout(usize::from(area.width));
    let height = usize::from(area.height);
    let (cx, cy) = layout.cursor;
    let first = cy.saturating_sub(height - 1);
    let lines: Vec<Line<'static>> = layout
        .lines
        .into_iter()
        .skip(first)
        .take(height)
        .map(Line::from)
        .collect();
    if lines.len() == 1 && app.editor.is_empty() && app.overlay.is_none() {
        f.render_widget(
            Paragraph::new(Span::styled("Type a message, or /help", dim)),
            area,
        );
    } else {
        f.render_widget(Paragraph::new(lines), area);
    }
    if app.overlay.is_none() {
        let x = area.x + (cx as u16).min(area.width - 1);
        let y = area.y + ((cy - first) as u16).min(area.height - 1);
        f.set_cursor_position(Position { x, y });
    }
}

/// "alice is typing…", "alice and bob are typing…", "3 people are typing…".
pub fn typing_words(who: &[&str]) -> String {
    match who {
        [] => String::new(),
        [one] => format!("{one} is typing…"),
        [a, b] => format!("{a} and {b} are typing…"),
        more => format!("{} people are typing…", more.len()),
    }
}
