//! The first-run screen (register or log in) and the unlock screen.

use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::app::{AccountForm, AccountMode, App, UnlockForm};
use crate::input::Editor;
use crate::wrap;
use quicproquo_protocol::limits::MIN_PASSPHRASE_CHARS;

fn frame_box(f: &mut Frame<'_>, area: Rect, title: &str, rows: u16) -> Rect {
    let w = area.width.min(64);
    let h = (rows + 2).min(area.height.saturating_sub(1));
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height.saturating_sub(1) - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title.to_owned())
        .border_style(Style::default().fg(Color::Cyan));
    let inner = block.inner(r);
    f.render_widget(block, r);
    inner
}

/// One field: label row, then the value (masked for secrets).
pub(super) fn field_line(editor: &Editor, secret: bool, width: usize) -> (String, usize) {
    let text = if secret {
        "•".repeat(editor.text().chars().count())
    } else {
        wrap::sanitize(editor.text()).replace('\n', " ")
    };
    let cursor = if secret {
        editor.text()[..editor.cursor()].chars().count()
    } else {
        wrap::width(&editor.text()[..editor.cursor()])
    };
    // Scroll long values so the cursor stays visible.
    let total = wrap::width(&text);
    if total < width {
        return (text, cursor);
    }
    let skip = cursor.saturating_sub(width.saturating_sub(1));
    let mut used = 0;
    let mut out = String::new();
    for g in unicode_segmentation::UnicodeSegmentation::graphemes(text.as_str(), true) {
        let w = wrap::grapheme_width(g);
        if used >= skip {
            out.push_str(g);
        }
        used += w;
    }
    (wrap::truncate(&out, width).into_owned(), cursor - skip)
}

pub fn render_account(app: &App, form: &AccountForm, f: &mut Frame<'_>, area: Rect) {
    super::status::render(app, f, super::layout::areas(app, area).status);
    let inner = frame_box(f, area, " Welcome to quicproquo ", 16);
    let focus = Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD);
    let dim = Style::default().fg(Color::DarkGray);
    let w = usize::from(inner.width);
    let mut lines = vec![
        Line::from(format!("Profile `{}` has no account yet.", app.profile)),
        Line::default(),
    ];
    let (reg, log) = match form.mode {
        AccountMode::Register => ("[ Create an account ]", "  Log in  "),
        AccountMode::Login => ("  Create an account  ", "[ Log in ]"),
    };
    let mode_style = if form.focus == 0 {
        focus
    } else {
        Style::default()
    };
    lines.push(Line::from(vec![
        Span::styled(reg, mode_style),
        Span::raw("  "),
        Span::styled(log, mode_style),
    ]));
    let mut cursor = None;
    for (i, label) in AccountForm::LABELS
        .iter()
        .enumerate()
        .take(form.field_count())
    {
        let focused = form.focus == i + 1;
        lines.push(Line::from(Span::styled(
            (*label).to_owned(),
            if focused { focus } else { dim },
        )));
        let (value, cx) = field_line(&form.fields[i], i >= 3, w.saturating_sub(2));
        if focused {
            cursor = Some((cx + 2, lines.len()));
        }
        lines.push(Line::from(format!("> {value}")));
    }
    lines.push(Line::default());
    if form.busy {
        lines.push(Line::from(Span::styled(
            "Working…",
            Style::default().fg(Color::Yellow),
        )));
    } else if let Some(e) = &form.error {
        lines.push(Line::from(Span::styled(
            e.clone(),
            Style::default().fg(Color::LightRed),
        )));
    } else {
        lines.push(Line::default());
    }
    lines.push(Line::from(Span::styled(
        "Tab next · ←/→ mode · Enter go · Ctrl+Q quit",
        dim,
    )));
    f.render_widget(Paragraph::new(lines), inner);
    if let Some((x, y)) = cursor {
        if (y as u16) < inner.height && inner.width > 0 {
            f.set_cursor_position(Position {
                x: inner.x + (x as u16).min(inner.width - 1),
                y: inner.y + y as u16,
            });
        }
    }
}

pub fn render_unlock(app: &App, form: &UnlockForm, f: &mut Frame<'_>, area: Rect) {
    super::status::render(app, f, super::layout::areas(app, area).status);
    let (title, height) = if form.new_state {
        (" Choose a passphrase ", 12)
    } else {
        (" Unlock ", 7)
    };
    let inner = frame_box(f, area, title, height);
    let w = usize::from(inner.width);
    let focus = Style::default().fg(Color::Yellow);
    let dim = Style::default().fg(Color::DarkGray);
    let (value, cx) = field_line(&form.passphrase, true, w.saturating_sub(2));
    let mut lines = if form.new_state {
        vec![
            Line::from("No keyring found: choose a passphrase for"),
            Line::from(format!("profile `{}`'s state.", app.profile)),
            Line::from(format!(
                "At least {MIN_PASSPHRASE_CHARS} characters. It cannot be recovered:"
            )),
            Line::from("forget it and everything qpqd keeps is lost."),
        ]
    } else {
        vec![
            Line::from(format!(
                "Profile `{}`: qpqd needs the passphrase",
                app.profile
            )),
            Line::from("that encrypts its state."),
        ]
    };
    lines.push(Line::from(Span::styled(
        "Passphrase",
        if form.on_again { dim } else { focus },
    )));
    let mut cursor = (cx, lines.len());
    lines.push(Line::from(format!("> {value}")));
    if form.new_state {
        let (again, ax) = field_line(&form.again, true, w.saturating_sub(2));
        lines.push(Line::from(Span::styled(
            "Passphrase again",
            if form.on_again { focus } else { dim },
        )));
        if form.on_again {
            cursor = (ax, lines.len());
        }
        lines.push(Line::from(format!("> {again}")));
    }
    lines.push(Line::default());
    if form.busy {
        lines.push(Line::from("Unlocking…"));
    } else if let Some(e) = &form.error {
        lines.push(Line::from(Span::styled(
            e.clone(),
            Style::default().fg(Color::LightRed),
        )));
    }
    lines.push(Line::from(Span::styled(
        if form.new_state {
            "Tab other field · Enter next/create · Ctrl+Q quit"
        } else {
            "Enter unlock · Ctrl+Q quit"
        },
        dim,
    )));
    f.render_widget(Paragraph::new(lines), inner);
    let (x, y) = cursor;
    if (y as u16) < inner.height && inner.width > 0 {
        f.set_cursor_position(Position {
            x: inner.x + ((x + 2) as u16).min(inner.width - 1),
            y: inner.y + y as u16,
        });
    }
}
