//! Boxes over the main screen: help, a safety number, the confirmation a
//! changed key requires, and search results.

use quicproquo_protocol::ipc::values::ConversationKind;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{AccountChange, App, Loadable, Overlay, REACTIONS};
use crate::commands::COMMANDS;
use crate::config::KeyAction;
use crate::wrap;

/// A box of at most `w`×`h` centred in `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Everything the help box lists: keys (as configured) and commands.
pub fn help_lines(app: &App) -> Vec<Line<'static>> {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut out = vec![Line::from(Span::styled("Keys", bold))];
    for &action in KeyAction::ALL {
        let keys: Vec<String> = app
            .config
            .keys
            .keys_for(action)
            .iter()
            .map(|k| k.label())
            .collect();
        out.push(Line::from(vec![
            Span::styled(
                format!("  {:<24}", keys.join(", ")),
                Style::default().fg(Color::Cyan),
            ),
            Span::raw(action.describe()),
        ]));
    }
    for (keys, what) in [
        ("Up/Down", "in an empty input: recall sent messages"),
        (
            "r e/+ c d",
            "on a selected message: reply, react, edit, delete",
        ),
        (
            "h o",
            "on a selected message: edit history, quoted original",
        ),
        ("@name + Tab", "mention (Tab cycles the names)"),
        ("/attach PATH + Tab", "complete the file's path"),
        ("Paste a file path", "offers to attach the file"),
        ("Mouse wheel", "scroll"),
        ("Ctrl+W / Ctrl+U", "delete a word / to the line start"),
        ("Esc", "close a box, cancel a reply/edit, back to newest"),
    ] {
        out.push(Line::from(vec![
            Span::styled(format!("  {keys:<24}"), Style::default().fg(Color::Cyan)),
            Span::raw(what),
        ]));
    }
    out.push(Line::default());
    out.push(Line::from(Span::styled("Commands (Tab completes)", bold)));
    for c in COMMANDS {
        let usage = format!("/{} {}", c.name, c.args);
        out.push(Line::from(vec![
            Span::styled(format!("  {usage:<30}"), Style::default().fg(Color::Cyan)),
            Span::raw(c.help),
        ]));
    }
    out.push(Line::default());
    out.push(Line::from(vec![
        Span::styled("Trouble? ", bold),
        Span::styled("qpq-ctl doctor", Style::default().fg(Color::Cyan)),
        Span::raw(" in a shell checks everything and names each fix."),
    ]));
    out.push(Line::default());
    out.push(Line::from(Span::styled(
        format!(
            "Keys are set in {} ([keys] table). Esc closes.",
            crate::config::FILE_NAME
        ),
        Style::default().fg(Color::DarkGray),
    )));
    out
}

pub fn render(app: &App, overlay: &Overlay, f: &mut Frame<'_>, area: Rect) {
    match overlay {
        Overlay::AccountChange(form) => render_account_change(form, f, area),
        Overlay::Help { scroll } => {
            let lines = help_lines(app);
            let r = centered(area, 82, lines.len() as u16 + 2);
            let scroll = (*scroll).min(lines.len().saturating_sub(1));
            draw_box(
                f,
                r,
                " Help ",
                Paragraph::new(lines).scroll((scroll as u16, 0)),
                " ↑↓ scroll · Esc close ",
            );
        }
        Overlay::Verify(v) => {
            let mut lines = vec![
                Line::from(format!(
                    "Safety number shared with {}:",
                    wrap::sanitize(&v.username)
                )),
                Line::default(),
                Line::from(Span::styled(
                    format!("  {}", v.safety_number),
                    Style::default().add_modifier(Modifier::BOLD),
                )),
                Line::default(),
                Line::from("Compare it with theirs in person or over a trusted channel."),
            ];
            if !v.matches_directory {
                lines.push(Line::from(Span::styled(
                    "NOT the key the server lists for this name: someone else holds it here. \
                     It cannot be marked verified.",
                    Style::default()
                        .fg(Color::LightRed)
                        .add_modifier(Modifier::BOLD),
                )));
            }
            if v.key_changed {
                lines.push(Line::from(Span::styled(
                    "Their identity key CHANGED since you last trusted it.",
                    Style::default()
                        .fg(Color::LightRed)
                        .add_modifier(Modifier::BOLD),
                )));
            }
            lines.push(Line::from(if v.verified {
                "Status: verified ✓"
            } else {
                "Status: not verified"
            }));
            lines.push(Line::default());
            lines.push(Line::from(Span::styled(
                "v: they match, mark verified · Esc: close",
                Style::default().fg(Color::Cyan),
            )));
            let r = centered(area, 64, lines.len() as u16 + 2);
            draw_box(
                f,
                r,
                " Verify ",
                Paragraph::new(lines).wrap(Wrap { trim: false }),
                "",
            );
        }
        Overlay::ConfirmSend { text, changed, .. } => {
            let who = if changed.is_empty() {
                "A member".to_owned()
            } else {
                changed.join(", ")
            };
            let lines = vec![
                Line::from(Span::styled(
                    format!("{who}: identity key changed."),
                    Style::default()
                        .fg(Color::LightRed)
                        .add_modifier(Modifier::BOLD),
                )),
                Line::default(),
                Line::from("This message was NOT sent:"),
                Line::from(Span::styled(
                    format!(
                        "  {}",
                        wrap::truncate(&wrap::sanitize(text).replace('\n', " "), 56)
                    ),
                    Style::default().fg(Color::DarkGray),
                )),
                Line::default(),
                Line::from("Check the safety number with /verify user first."),
                Line::default(),
                Line::from(Span::styled(
                    "y: send it anyway to the new key · n/Esc: don't send",
                    Style::default().fg(Color::Cyan),
                )),
            ];
            let r = centered(area, 64, lines.len() as u16 + 2);
            draw_box(
                f,
                r,
                " Key changed ",
                Paragraph::new(lines).wrap(Wrap { trim: false }),
                "",
            );
        }
        Overlay::ConfirmAttach {
            conversation, file, ..
        } => {
            let name = crate::attach::own_name(&file.path);
            let to = app
                .conversation(*conversation)
                .map_or_else(|| "this conversation".to_owned(), |c| app.title(c));
            let question = format!(
                "Attach {} ({}) to {}?",
                wrap::sanitize(&name),
                crate::attach::human_size(file.size),
                wrap::sanitize(&to)
            );
            let lines = vec![
                Line::from(Span::styled(
                    wrap::truncate(&question, 60).into_owned(),
                    Style::default().add_modifier(Modifier::BOLD),
                )),
                Line::from(Span::styled(
                    wrap::truncate(&wrap::sanitize(&file.path.to_string_lossy()), 60).into_owned(),
                    Style::default().fg(Color::DarkGray),
                )),
                Line::default(),
                Line::from(Span::styled(
                    "y: attach it · n/Esc: paste the text instead",
                    Style::default().fg(Color::Cyan),
                )),
            ];
            let r = centered(area, 64, lines.len() as u16 + 2);
            draw_box(f, r, " Attach a file ", Paragraph::new(lines), "");
        }
        Overlay::Invites { list, selected } => {
            let dim = Style::default().fg(Color::DarkGray);
            let warn = Style::default()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD);
            let mut lines = Vec::new();
            for (i, inv) in list.iter().enumerate() {
                let style = if i == *selected {
                    Style::default().add_modifier(Modifier::REVERSED)
                } else {
                    Style::default()
                };
                let what = match inv.kind {
                    ConversationKind::Dm => "a DM".to_owned(),
                    ConversationKind::Group => format!("#{}", wrap::sanitize(&inv.name)),
                };
                lines.push(Line::from(Span::styled(
                    wrap::truncate(
                        &format!("{} invites you to {what}", wrap::sanitize(&inv.from)),
                        60,
                    )
                    .into_owned(),
                    style,
                )));
                let members: Vec<Span<'static>> = inv
                    .members
                    .iter()
                    .flat_map(|m| {
                        let (mark, st) = if m.key_changed {
                            (" ! not the key you know", warn)
                        } else if m.verified {
                            (" ✓", Style::default().fg(Color::Green))
                        } else {
                            ("", dim)
                        };
                        [
                            Span::raw(format!("  {}", wrap::sanitize(&m.username))),
                            Span::styled(mark, st),
                        ]
                    })
                    .collect();
                lines.push(Line::from(members));
            }
            lines.push(Line::default());
            lines.push(Line::from(Span::styled(
                "a: accept · d: decline · ↑↓ choose · Esc: later",
                Style::default().fg(Color::Cyan),
            )));
            let r = centered(area, 64, lines.len() as u16 + 2);
            draw_box(
                f,
                r,
                " Invitations ",
                Paragraph::new(lines).wrap(Wrap { trim: false }),
                "",
            );
        }
        Overlay::React { selected, .. } => {
            let mut spans = Vec::new();
            for (i, e) in REACTIONS.iter().enumerate() {
                let style = if i == *selected {
                    Style::default().add_modifier(Modifier::REVERSED)
                } else {
                    Style::default()
                };
                spans.push(Span::styled(format!("{}{e}", i + 1), style));
                spans.push(Span::raw(" "));
            }
            let lines = vec![
                Line::from(spans),
                Line::from(Span::styled(
                    "Again on yours takes it back; /react <emoji> for any other.",
                    Style::default().fg(Color::DarkGray),
                )),
            ];
            let r = centered(area, 62, 4);
            draw_box(
                f,
                r,
                " React ",
                Paragraph::new(lines).wrap(Wrap { trim: false }),
                " ←→ choose · Enter or 1-8 react · Esc close ",
            );
        }
        Overlay::Delete { own, .. } => {
            let bold = Style::default().add_modifier(Modifier::BOLD);
            let mut lines = vec![Line::from("Delete this message?"), Line::default()];
            if *own {
                lines.push(Line::from(vec![
                    Span::styled("  e ", bold),
                    Span::raw("for everyone (a \"message deleted\" marker stays)"),
                ]));
            }
            lines.push(Line::from(vec![
                Span::styled("  m ", bold),
                Span::raw("for me (only from this device's history)"),
            ]));
            let r = centered(area, 60, lines.len() as u16 + 2);
            draw_box(
                f,
                r,
                " Delete ",
                Paragraph::new(lines).wrap(Wrap { trim: false }),
                " Esc keeps it ",
            );
        }
        Overlay::Edits { current, versions } => {
            let dim = Style::default().fg(Color::DarkGray);
            let one_line = |t: &str| wrap::sanitize(t).replace('\n', " ");
            let mut lines: Vec<Line<'static>> = match versions {
                Loadable::Loading => vec![Line::from(Span::styled("Loading…", dim))],
                Loadable::Failed(e) => vec![Line::from(Span::styled(e.clone(), dim))],
                Loadable::Ready(list) => list
                    .iter()
                    .map(|v| {
                        let when = jiff::Timestamp::from_millisecond(
                            i64::try_from(v.timestamp_ms).unwrap_or(i64::MAX),
                        )
                        .map(|t| app.tz.to_datetime(t).strftime("%-d %b %H:%M").to_string())
                        .unwrap_or_default();
                        Line::from(vec![
                            Span::styled(format!("{when:>12} "), dim),
                            Span::raw(one_line(&v.text)),
                        ])
                    })
                    .collect(),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("{:>12} ", "now"), dim),
                Span::styled(
                    one_line(current),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
            ]));
            let r = centered(
                area,
                area.width.saturating_sub(8).max(20),
                (lines.len() as u16 + 2).min(area.height.saturating_sub(2)),
            );
            draw_box(
                f,
                r,
                " Edit history ",
                Paragraph::new(lines).wrap(Wrap { trim: false }),
                " Esc close ",
            );
        }
        Overlay::Search {
            query,
            results,
            selected,
        } => {
            // No query: the mentions list (`/mentions`).
            let title = if query.is_empty() {
                " Mentions of you ".to_owned()
            } else {
                format!(" Search: {} ", wrap::sanitize(query))
            };
            let rows = match results {
                Loadable::Ready(ms) => ms.len().max(1),
                _ => 1,
            };
            let r = centered(
                area,
                area.width.saturating_sub(8).max(20),
                (rows as u16 + 2).min(area.height.saturating_sub(4)).max(3),
            );
            let inner_w = usize::from(r.width.saturating_sub(2));
            let inner_h = usize::from(r.height.saturating_sub(2));
            let dim = Style::default().fg(Color::DarkGray);
            let lines: Vec<Line<'static>> = match results {
                Loadable::Loading => vec![Line::from(Span::styled("Searching…", dim))],
                Loadable::Failed(e) => vec![Line::from(Span::styled(e.clone(), dim))],
                Loadable::Ready(ms) if ms.is_empty() => {
                    let none = if query.is_empty() {
                        "Nobody mentioned you."
                    } else {
                        "No message matches."
                    };
                    vec![Line::from(Span::styled(none, dim))]
                }
                Loadable::Ready(ms) => {
                    let first = selected.saturating_sub(inner_h.saturating_sub(1));
                    ms.iter()
                        .enumerate()
                        .skip(first)
                        .take(inner_h)
                        .map(|(i, m)| {
                            let conv = app
                                .conversation(m.conversation)
                                .map_or_else(|| "?".to_owned(), |c| app.title(c));
                            let text =
                                format!("{conv} {}: {}", m.sender, m.text.replace('\n', " "));
                            let text = wrap::truncate(&wrap::sanitize(&text), inner_w).into_owned();
                            let style = if i == *selected {
                                Style::default().add_modifier(Modifier::REVERSED)
                            } else {
                                Style::default()
                            };
                            Line::from(Span::styled(text, style))
                        })
                        .collect()
                }
            };
            draw_box(
                f,
                r,
                &title,
                Paragraph::new(lines),
                " ↑↓ choose · Enter jump · Esc close ",
            );
        }
    }
}

/// The `/passwd` and `/delete-account` box: masked secrets, the problem
/// with what was typed, what Enter does.
fn render_account_change(form: &AccountChange, f: &mut Frame<'_>, area: Rect) {
    let focus = Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD);
    let dim = Style::default().fg(Color::DarkGray);
    let mut lines = vec![Line::from(if form.delete {
        "This deletes your account on the server (mail waiting there, key packages, \
         sessions; the name is never registered again), then this profile and its \
         history. It cannot be undone."
    } else {
        "A new password for your account. Your other logged-in devices are logged out."
    })];
    lines.push(Line::default());
    for (i, label) in form.labels().iter().enumerate() {
        let secret = label.ends_with('*');
        let style = if form.focus == i { focus } else { dim };
        lines.push(Line::from(Span::styled(
            label.trim_end_matches('*').to_owned(),
            style,
        )));
        let (value, _) = super::account::field_line(&form.fields[i], secret, 56);
        lines.push(Line::from(format!("> {value}")));
    }
    lines.push(Line::default());
    lines.push(match (&form.error, form.busy) {
        (_, true) => Line::from(Span::styled("Working…", Style::default().fg(Color::Yellow))),
        (Some(e), _) => Line::from(Span::styled(
            e.clone(),
            Style::default().fg(Color::LightRed),
        )),
        (None, _) => Line::default(),
    });
    let (title, hint) = if form.delete {
        (
            " Delete the account ",
            " Enter: next / delete · Esc: cancel ",
        )
    } else {
        (
            " Change the password ",
            " Enter: next / change · Esc: cancel ",
        )
    };
    let r = centered(area, 64, lines.len() as u16 + 4);
    draw_box(
        f,
        r,
        title,
        Paragraph::new(lines).wrap(Wrap { trim: false }),
        hint,
    );
}

fn draw_box(f: &mut Frame<'_>, r: Rect, title: &str, body: Paragraph<'_>, hint: &str) {
    f.render_widget(Clear, r);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title.to_owned())
        .title_bottom(hint.to_owned())
        .border_style(Style::default().fg(Color::Cyan));
    let inner = block.inner(r);
    f.render_widget(block, r);
    f.render_widget(body, inner);
}
