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

use ratatui::buffer::Cell;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use quicproquo_protocol::ipc::values::IntegrityState;

use crate::app::{App, Screen};
use crate::graphics::paint::{self, Paint};

/// Draws the whole screen.
pub fn render(app: &App, f: &mut Frame<'_>) {
    render_with_images(app, f);
}

/// Draws the whole screen, and returns the images (iTerm2, sixel) to paint
/// over it afterwards: those wholly in the message pane with nothing drawn
/// over their cells (an overlay, the "new below" badge).
pub fn render_with_images(app: &App, f: &mut Frame<'_>) -> Vec<Paint> {
    let area = f.area();
    if area.width == 0 || area.height == 0 {
        return Vec::new();
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
        Screen::Main => return render_main(app, f, area),
    }
    Vec::new()
}

fn render_main(app: &App, f: &mut Frame<'_>, area: Rect) -> Vec<Paint> {
    let a = layout::areas(app, area);
    if let Some(list) = a.list {
        conversations::render(app, f, list);
    }
    match app
        .status
        .as_ref()
        .filter(|s| s.integrity != IntegrityState::Ok)
    {
        Some(s) => render_integrity_banner(s.integrity, f, a.header),
        None => render_header(app, f, a.header),
    }
    let images: Vec<(Paint, Vec<Cell>)> = messages::render(app, f, a.messages)
        .into_iter()
        .map(|p| (p, paint::snapshot(f.buffer_mut(), p.rect)))
        .collect();
    if let Some(members) = a.members {
        conversations::render_members(app, f, members);
    }
    input::render(app, f, a.input_title, a.input);
    status::render(app, f, a.status);
    if let Some(o) = &app.overlay {
        overlay::render(app, o, f, area);
    }
    images
        .into_iter()
        .filter(|(p, cells)| paint::snapshot(f.buffer_mut(), p.rect) == *cells)
        .map(|(p, _)| p)
        .collect()
}

/// In place of the conversation's title while the daemon holds sending
/// after a damaged or rolled-back state: what happened and what to type.
fn render_integrity_banner(state: IntegrityState, f: &mut Frame<'_>, area: Rect) {
    if area.height == 0 {
        return;
    }
    let what = match state {
        IntegrityState::Corrupt => "state damaged",
        IntegrityState::Rollback => "state rolled back",
        IntegrityState::CounterInvalid => "state counter tampered with",
        IntegrityState::CounterMissing => "state counter missing",
        IntegrityState::Ok => return,
    };
    // The command first: a narrow terminal cuts the end.
    let text = format!("⚠ {what} — sending held: /ack-integrity (messages may be missing)");
    let style = Style::default()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    f.render_widget(
        Paragraph::new(Line::from(fit(
            vec![Span::raw(text)],
            usize::from(area.width),
        )))
        .style(style),
        area,
    );
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
    let count = (c.kind == quicproquo_protocol::ipc::values::ConversationKind::Group).then(|| {
        Span::styled(
            format!("  {} members", c.members.len()),
            Style::default().fg(Color::DarkGray),
        )
    });
    let changed: Vec<&String> = c
        .members
        .iter()
        .filter(|m| app.changed_keys.contains(*m))
        .collect();
    let warning = changed.first().map(|first| {
        Span::styled(
            format!("  ! {first}'s key changed: /verify {first}"),
            Style::default()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
        )
    });
    // The member count gives way first, so the changed-key hint keeps the
    // whole command to type; what still does not fit is cut with `…`.
    let max = usize::from(area.width);
    let fits = |spans: &[Span<'_>]| {
        spans
            .iter()
            .map(|s| crate::wrap::width(&s.content))
            .sum::<usize>()
            <= max
    };
    let with_count: Vec<Span<'_>> = spans
        .iter()
        .cloned()
        .chain(count)
        .chain(warning.clone())
        .collect();
    let spans = if fits(&with_count) || warning.is_none() {
        with_count
    } else {
        spans.into_iter().chain(warning).collect()
    };
    f.render_widget(
        Paragraph::new(Line::from(fit(spans, max))).style(Style::default().bg(Color::Reset)),
        area,
    );
}

/// `spans` cut to `max` columns, the cut marked with `…` (a paragraph alone
/// would clip mid-word with no sign that anything is missing).
fn fit(spans: Vec<Span<'static>>, max: usize) -> Vec<Span<'static>> {
    let line: String = spans.iter().map(|s| s.content.as_ref()).collect();
    if crate::wrap::width(&line) <= max {
        return spans;
    }
    // `truncate` picks the grapheme boundary; the spans keep their styles
    // up to it.
    let cut = crate::wrap::truncate(&line, max);
    let mut left = cut.strip_suffix('…').unwrap_or(&cut).len();
    let mut out = Vec::new();
    let mut style = Style::default();
    for s in spans {
        if left == 0 {
            break;
        }
        let n = left.min(s.content.len());
        left -= n;
        style = s.style;
        out.push(Span::styled(s.content[..n].to_owned(), s.style));
    }
    if max > 0 {
        out.push(Span::styled("…", style));
    }
    out
}

#[cfg(test)]
mod tests;
