//! The message pane. Only what is visible is laid out: from the anchor
//! message upwards until the pane is full, so 100,000 loaded messages cost
//! no more per frame than 50.
//!
//! A message's *block* is everything drawn for it: a day separator when the
//! day changes, the "new messages" marker when it is the first unread, then
//! its wrapped text behind a `time state sender` prefix. Scrolling counts
//! rows of blocks, and the selected message is a block, so separators never
//! move the selection.

use std::collections::{HashMap, HashSet};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use quicproquo_protocol::ipc::values::{
    Attachment, Message, MessageId, MessageState, TransferState,
};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{App, Progress};
use crate::graphics::paint::Paint;
use crate::preview::Preview;
use crate::timeline::{LoadState, Timeline, View};
use crate::wrap;

/// What formatting a block needs besides the timeline.
pub struct BlockCtx<'a> {
    pub tz: &'a TimeZone,
    pub me: Option<&'a str>,
    pub changed_keys: &'a HashSet<String>,
    pub width: usize,
    /// Attachments moving now, and image previews, by message.
    pub transfers: &'a HashMap<MessageId, Progress>,
    pub previews: &'a HashMap<MessageId, Preview>,
}

impl<'a> BlockCtx<'a> {
    pub fn new(app: &'a App, width: usize) -> BlockCtx<'a> {
        BlockCtx {
            tz: &app.tz,
            me: app.me(),
            changed_keys: &app.changed_keys,
            width,
            transfers: &app.transfers,
            previews: &app.previews,
        }
    }

    fn nick_width(&self) -> usize {
        (self.width / 5).clamp(4, 12)
    }

    /// The prefix: `HH:MM ` + 2 columns of delivery state + ` ` + nick + ` `.
    fn prefix_width(&self) -> usize {
        6 + 3 + self.nick_width() + 1
    }

    /// Narrow panes put the sender on its own row.
    fn compact(&self) -> bool {
        self.width < self.prefix_width() + 12
    }
}

fn datetime(tz: &TimeZone, ms: u64) -> Option<jiff::civil::DateTime> {
    let ts = Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    Some(tz.to_datetime(ts))
}

fn day_of(tz: &TimeZone, ms: u64) -> Option<jiff::civil::Date> {
    datetime(tz, ms).map(|d| d.date())
}

/// A line of `─` with `label` in the middle, `width` columns.
fn rule(label: &str, width: usize, style: Style) -> Line<'static> {
    let label = wrap::truncate(label, width.saturating_sub(2));
    let lw = wrap::width(&label) + 2;
    if width <= lw {
        return Line::from(Span::styled(label.into_owned(), style));
    }
    let left = (width - lw) / 2;
    let right = width - lw - left;
    Line::from(vec![
        Span::styled("─".repeat(left), style),
        Span::styled(format!(" {label} "), style.add_modifier(Modifier::BOLD)),
        Span::styled("─".repeat(right), style),
    ])
}

const NICK_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Blue,
    Color::LightRed,
    Color::LightCyan,
];

pub fn nick_color(name: &str) -> Color {
    let h = name
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    NICK_COLORS[h as usize % NICK_COLORS.len()]
}

fn state_mark(m: &Message) -> (&'static str, Style) {
    if !m.outgoing {
        return ("  ", Style::default());
    }
    if !m.meta.read_by.is_empty() {
        // Read by someone (`read_by`): the read colour.
        return (
            "✓✓",
            Style::default()
                .fg(Color::LightBlue)
                .add_modifier(Modifier::BOLD),
        );
    }
    match m.state {
        MessageState::Queued => ("… ", Style::default().fg(Color::DarkGray)),
        MessageState::Sent => ("✓ ", Style::default().fg(Color::DarkGray)),
        MessageState::Delivered => ("✓✓", Style::default().fg(Color::Green)),
        MessageState::Failed => ("✗ ", Style::default().fg(Color::Red)),
        // Not fetched before the server deleted it: nothing to retry here.
        MessageState::Expired => ("✗ ", Style::default().fg(Color::Yellow)),
        MessageState::Received => ("  ", Style::default()),
    }
}

/// The rows of message `i`'s block.
pub fn block_lines(
    ctx: &BlockCtx<'_>,
    tl: &Timeline,
    i: usize,
    selected: bool,
) -> Vec<Line<'static>> {
    block(ctx, tl, i, selected).0
}

/// Where an image painted over a preview (iTerm2, sixel) sits: its
/// top-left cell, counted from its block's (or the pane's) top-left, and
/// its size in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageAt {
    pub id: MessageId,
    pub row: usize,
    pub col: usize,
    pub cols: u16,
    pub rows: u16,
}

/// The rows of message `i`'s block, and where its painted image goes (when
/// its whole width fits).
fn block(
    ctx: &BlockCtx<'_>,
    tl: &Timeline,
    i: usize,
    selected: bool,
) -> (Vec<Line<'static>>, Option<ImageAt>) {
    let msgs = tl.messages();
    let Some(m) = msgs.get(i) else {
        return (Vec::new(), None);
    };
    let width = ctx.width.max(1);
    let mut out = Vec::new();
    let dim = Style::default().fg(Color::DarkGray);
    if i == 0 {
        let label = if tl.has_older {
            "loading older messages…"
        } else {
            "start of the conversation"
        };
        out.push(rule(label, width, dim));
    }
    let day = day_of(ctx.tz, m.timestamp_ms);
    let prev_day = i
        .checked_sub(1)
        .and_then(|p| msgs.get(p))
        .and_then(|p| day_of(ctx.tz, p.timestamp_ms));
    if day != prev_day || i == 0 {
        if let Some(d) = day {
            out.push(rule(&d.strftime("%A, %-d %B %Y").to_string(), width, dim));
        }
    }
    if tl.new_marker == Some(m.id) {
        out.push(rule(
            "new messages",
            width,
            Style::default().fg(Color::LightRed),
        ));
    }

    let time = datetime(ctx.tz, m.timestamp_ms).map_or_else(
        || "--:--".to_owned(),
        |d| format!("{:02}:{:02}", d.hour(), d.minute()),
    );
    let own = m.outgoing || ctx.me == Some(m.sender.as_str());
    let nick_style = if own {
        Style::default()
            .fg(Color::Green)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
            .fg(nick_color(&m.sender))
            .add_modifier(Modifier::BOLD)
    };
    let changed = !own && ctx.changed_keys.contains(&m.sender);
    let (mark, mark_style) = state_mark(m);
    let text_style = if m.meta.mentions_me {
        // A message naming us stands out from the conversation.
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    let mut body_style = if m.meta.deleted {
        dim.add_modifier(Modifier::ITALIC)
    } else {
        text_style
    };
    if selected {
        body_style = body_style.add_modifier(Modifier::REVERSED);
    }
    // The text's width: beside the prefix, or the whole row when compact.
    let text_w = if ctx.compact() {
        width
    } else {
        width - ctx.prefix_width()
    };
    let attachment = m.meta.attachment.as_deref().filter(|_| !m.meta.deleted);
    let body = if m.meta.deleted {
        std::borrow::Cow::Borrowed("message deleted")
    } else if let Some(a) = attachment {
        // The file's line, then the caption (if any) below it.
        let line = attachment_line(a, text_w);
        if m.text.is_empty() {
            std::borrow::Cow::Owned(line)
        } else {
            std::borrow::Cow::Owned(format!("{line}\n{}", wrap::sanitize(&m.text)))
        }
    } else {
        wrap::sanitize(&m.text)
    };
    let extra = attachment.map_or_else(Vec::new, |a| attachment_rows(ctx, m, a, text_w));
    // The preview's rows end `extra`; an image is painted over them only
    // when none of its columns is cut.
    let image = match ctx.previews.get(&m.id) {
        Some(Preview::Ready(p)) if attachment.is_some() => p
            .image
            .as_ref()
            .filter(|img| usize::from(img.cols) <= text_w)
            .map(|img| (img.cols, img.rows)),
        _ => None,
    };
    let image_at = |top: usize, col: usize| {
        image.map(|(cols, rows)| ImageAt {
            id: m.id,
            row: top + extra.len().saturating_sub(usize::from(rows)),
            col,
            cols,
            rows,
        })
    };
    let suffix = suffix(ctx, m);
    // The markers wrap with the text, in their own style.
    let text: std::borrow::Cow<'_, str> = if suffix.is_empty() {
        body.clone()
    } else {
        std::borrow::Cow::Owned(format!("{body}{suffix}"))
    };
    let split = body.len();
    let sender = wrap::sanitize(&m.sender);
    let row = |r: std::ops::Range<usize>| -> Vec<Span<'static>> {
        let mut spans = Vec::with_capacity(2);
        let mid = split.clamp(r.start, r.end);
        if mid > r.start {
            spans.push(Span::styled(text[r.start..mid].to_owned(), body_style));
        }
        if r.end > mid {
            spans.push(Span::styled(text[mid..r.end].to_owned(), dim));
        }
        spans
    };

    if ctx.compact() {
        let nick = wrap::truncate(&sender, width.saturating_sub(9 + usize::from(changed)));
        let mut head = vec![
            Span::styled(format!("{time} "), dim),
            Span::styled(mark, mark_style),
            Span::raw(" "),
            Span::styled(nick.into_owned(), nick_style),
        ];
        if changed {
            head.push(Span::styled("!", Style::default().fg(Color::LightRed)));
        }
        out.push(Line::from(head));
        if let Some(q) = quote_line(m, width) {
            out.push(q);
        }
        for r in wrap::wrap(&text, width) {
            out.push(Line::from(row(r)));
        }
        let at = image_at(out.len(), 0);
        out.extend(extra);
        if let Some(r) = reactions_line(m, width) {
            out.push(r);
        }
        return (out, at);
    }

    let nw = ctx.nick_width();
    let nick = wrap::truncate(&sender, nw - usize::from(changed));
    let pad = nw - usize::from(changed) - wrap::width(&nick);
    let indent = " ".repeat(ctx.prefix_width());
    let indented = |line: Line<'static>| {
        let mut spans = vec![Span::raw(indent.clone())];
        spans.extend(line.spans);
        Line::from(spans)
    };
    if let Some(q) = quote_line(m, text_w) {
        out.push(indented(q));
    }
    for (n, r) in wrap::wrap(&text, text_w).into_iter().enumerate() {
        if n == 0 {
            let mut spans = vec![
                Span::styled(format!("{time} "), dim),
                Span::styled(mark, mark_style),
                Span::raw(" "),
                Span::raw(" ".repeat(pad)),
            ];
            if changed {
                spans.push(Span::styled("!", Style::default().fg(Color::LightRed)));
            }
            spans.push(Span::styled(nick.to_string(), nick_style));
            spans.push(Span::raw(" "));
            spans.extend(row(r));
            out.push(Line::from(spans));
        } else {
            out.push(indented(Line::from(row(r))));
        }
    }
    let at = image_at(out.len(), ctx.prefix_width());
    for line in extra {
        out.push(indented(line));
    }
    if let Some(r) = reactions_line(m, text_w) {
        out.push(indented(r));
    }
    (out, at)
}

/// The dimmed markers after a message's text: "(edited)" and when it
/// disappears (`⏱ 09:05`, with the day when it is not the message's).
fn suffix(ctx: &BlockCtx<'_>, m: &Message) -> String {
    let mut s = String::new();
    if m.meta.edited && !m.meta.deleted {
        s.push_str(" (edited)");
    }
    if let Some(at) = m.meta.expires_at_ms.and_then(|ms| datetime(ctx.tz, ms)) {
        let same_day = day_of(ctx.tz, m.timestamp_ms) == Some(at.date());
        let when = if same_day {
            at.strftime("%H:%M").to_string()
        } else {
            at.strftime("%-d %b %H:%M").to_string()
        };
        s.push_str(&format!(" ⏱ {when}"));
    }
    s
}

/// `📎 name · 2.1 MB · image/png` on one row of `width` columns: the name
/// (a peer's, sanitized) gives way first, so size and type stay readable.
fn attachment_line(a: &Attachment, width: usize) -> String {
    /// Columns the name keeps before the type gives way.
    const NAME_MIN: usize = 12;
    let one_line = |s: &str| wrap::sanitize(s).replace('\n', " ");
    let size = crate::attach::human_size(a.size);
    let full = format!(
        " · {size} · {}",
        wrap::truncate(&one_line(&a.content_type), 40)
    );
    let short = format!(" · {size}");
    let room = |tail: &str| width.saturating_sub(3 + wrap::width(tail));
    let name_w = wrap::width(&one_line(&a.name));
    // The type gives way when that lets the whole name show, or when the
    // name would be left too little room beside it.
    let tail = if name_w <= room(&full) {
        full
    } else if name_w <= room(&short) || room(&full) < NAME_MIN {
        short
    } else {
        full
    };
    let room = width.saturating_sub(3 + wrap::width(&tail)).max(8);
    let line = format!("📎 {}{tail}", wrap::truncate(&one_line(&a.name), room));
    wrap::truncate(&line, width.max(1)).into_owned()
}

/// The rows under an attachment: how its transfer goes or ended, then the
/// image preview.
fn attachment_rows(
    ctx: &BlockCtx<'_>,
    m: &Message,
    a: &Attachment,
    width: usize,
) -> Vec<Line<'static>> {
    let dim = Style::default().fg(Color::DarkGray);
    let red = Style::default().fg(Color::Red);
    let why = |default: &str| {
        a.error.as_deref().map_or_else(
            || default.to_owned(),
            |e| wrap::sanitize(e).replace('\n', " "),
        )
    };
    let status = match a.state {
        TransferState::Uploading | TransferState::Downloading => {
            Some((progress_line(ctx.transfers.get(&m.id), a.state, width), dim))
        }
        TransferState::Downloaded if !m.outgoing => a.path.as_deref().map(|p| {
            let p = wrap::sanitize(p).replace('\n', " ");
            let room = width.saturating_sub(2);
            (format!("↓ {}", wrap::truncate_start(&p, room)), dim)
        }),
        TransferState::Failed => {
            let what = if m.outgoing { "upload" } else { "download" };
            Some((format!("✗ {what} failed: {}", why("stopped")), red))
        }
        TransferState::Corrupt => Some((
            format!(
                "✗ corrupt: {}; nothing was kept",
                why("failed its integrity check")
            ),
            red,
        )),
        TransferState::Expired => Some((
            "expired: the server no longer has this file".to_owned(),
            Style::default().fg(Color::Yellow),
        )),
        _ => None,
    };
    let mut out: Vec<Line<'static>> = status
        .map(|(text, style)| {
            Line::from(Span::styled(
                wrap::truncate(&text, width.max(1)).into_owned(),
                style,
            ))
        })
        .into_iter()
        .collect();
    match ctx.previews.get(&m.id) {
        Some(Preview::Ready(p)) => out.extend(p.lines(width)),
        Some(Preview::Failed(e)) => out.push(Line::from(Span::styled(
            wrap::truncate(&format!("(no preview: {e})"), width.max(1)).into_owned(),
            dim,
        ))),
        Some(Preview::Decoding) | None => {}
    }
    out
}

/// `uploading ████░░░░ 42 % · 12.3 MB/s`, or the verb alone before the
/// first notification; the bar shrinks (then goes) in a narrow pane.
fn progress_line(p: Option<&Progress>, state: TransferState, width: usize) -> String {
    let Some(p) = p else {
        return if state == TransferState::Uploading {
            "uploading…".to_owned()
        } else {
            "downloading…".to_owned()
        };
    };
    let words = crate::update::progress_words(p);
    let bar = width.saturating_sub(wrap::width(&words) + 1).min(16);
    if bar < 4 {
        return words;
    }
    let filled = (u128::from(p.done.min(p.total)) * bar as u128)
        .checked_div(u128::from(p.total))
        .map_or(bar, |n| n as usize);
    let (verb, rest) = words.split_once(' ').unwrap_or((&words, ""));
    format!(
        "{verb} {}{} {rest}",
        "█".repeat(filled),
        "░".repeat(bar - filled)
    )
}

/// The row above a reply: `↱ alice: first words`, dimmed, one row.
fn quote_line(m: &Message, width: usize) -> Option<Line<'static>> {
    let q = m.meta.reply_to.as_ref()?;
    let dim = Style::default().fg(Color::DarkGray);
    let excerpt = if q.missing {
        "(unknown message)".to_owned()
    } else if q.excerpt.is_empty() {
        // The daemon sends no excerpt of a deleted original.
        "(message deleted)".to_owned()
    } else {
        wrap::sanitize(&q.excerpt).replace('\n', " ")
    };
    let text = format!("↱ {}: {excerpt}", wrap::sanitize(&q.sender));
    Some(Line::from(Span::styled(
        wrap::truncate(&text, width).into_owned(),
        dim,
    )))
}

/// The row under a message with reactions: `👍 2 alice, bob  🎉 1 carol`,
/// cut to one row however many there are, so a block's height never
/// depends on how many reacted.
fn reactions_line(m: &Message, width: usize) -> Option<Line<'static>> {
    if m.meta.reactions.is_empty() {
        return None;
    }
    let mut s = String::new();
    for r in &m.meta.reactions {
        if !s.is_empty() {
            s.push_str("  ");
        }
        s.push_str(&format!("{} {} {}", r.emoji, r.by.len(), r.by.join(", ")));
        if wrap::width(&s) > width {
            break;
        }
    }
    let s = wrap::sanitize(&s).replace('\n', " ");
    Some(Line::from(Span::styled(
        wrap::truncate(&s, width).into_owned(),
        Style::default().fg(Color::Gray),
    )))
}

pub fn block_height(ctx: &BlockCtx<'_>, tl: &Timeline, i: usize) -> usize {
    block_lines(ctx, tl, i, false).len().max(1)
}

/// The rows visible in a pane `height` rows tall, top to bottom, and the
/// index of the topmost message any row of which shows.
pub fn visible_lines(
    ctx: &BlockCtx<'_>,
    tl: &Timeline,
    height: usize,
) -> (Vec<Line<'static>>, usize) {
    let (lines, top, _) = visible(ctx, tl, height);
    (lines, top)
}

/// [`visible_lines`], and the painted images wholly among them (rows
/// counted from the first visible row).
fn visible(
    ctx: &BlockCtx<'_>,
    tl: &Timeline,
    height: usize,
) -> (Vec<Line<'static>>, usize, Vec<ImageAt>) {
    if tl.is_empty() || height == 0 {
        return (Vec::new(), 0, Vec::new());
    }
    let (mut idx, skip, selected) = match tl.view {
        View::Follow => (tl.len() - 1, 0, None),
        View::At { index, skip } => {
            let index = index.min(tl.len() - 1);
            (index, skip, Some(index))
        }
    };
    let mut blocks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut images = Vec::new();
    let mut rows = 0;
    let top;
    loop {
        let (block, image) = block(ctx, tl, idx, selected == Some(idx));
        rows += block.len();
        // Counted from the bottom of the last block for now.
        images.extend(image.map(|i| (rows - i.row, i)));
        blocks.push(block);
        if rows >= height + skip || idx == 0 {
            top = idx;
            break;
        }
        idx -= 1;
    }
    let mut lines: Vec<Line<'static>> = blocks.into_iter().rev().flatten().collect();
    let total = lines.len();
    lines.truncate(total.saturating_sub(skip));
    let start = lines.len().saturating_sub(height);
    let end = lines.len();
    let images = images
        .into_iter()
        .filter_map(|(from_bottom, i)| {
            let row = total - from_bottom;
            (row >= start && row + usize::from(i.rows) <= end).then(|| ImageAt {
                row: row - start,
                ..i
            })
        })
        .collect();
    (lines.split_off(start), top, images)
}

/// Draws the pane: the conversation's messages, or which state it is in.
/// Returns the images to paint over previews wholly in the pane.
pub fn render(app: &App, f: &mut Frame<'_>, area: Rect) -> Vec<Paint> {
    if area.height == 0 || area.width == 0 {
        return Vec::new();
    }
    let dim = Style::default().fg(Color::DarkGray);
    let placeholder = |f: &mut Frame<'_>, text: &str| {
        f.render_widget(
            Paragraph::new(Line::from(Span::styled(text.to_owned(), dim)))
                .wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
    };
    let Some(tl) = app.timeline() else {
        let text = match &app.conversations {
            crate::app::Loadable::Ready(list) if list.is_empty() => {
                "No conversation open. Start one: /dm user, or /group create name [users]."
            }
            crate::app::Loadable::Ready(_) => "Select a conversation (Alt+Up/Down, Ctrl+P/N).",
            crate::app::Loadable::Loading => "Loading conversations…",
            crate::app::Loadable::Failed(_) => "Conversations could not be loaded.",
        };
        placeholder(f, text);
        return Vec::new();
    };
    if tl.is_empty() {
        let text = match &tl.load {
            LoadState::NotLoaded | LoadState::Loading => "Loading messages…".to_owned(),
            LoadState::Loaded => "No messages yet. Say hello!".to_owned(),
            LoadState::Failed(e) => format!("The history could not be loaded: {e}"),
        };
        placeholder(f, &text);
        return Vec::new();
    }
    let ctx = BlockCtx::new(app, usize::from(area.width));
    let (lines, _, images) = visible(&ctx, tl, usize::from(area.height));
    // Chat style: the newest message sits on the bottom row.
    let pad = usize::from(area.height).saturating_sub(lines.len());
    let mut all = vec![Line::default(); pad];
    all.extend(lines);
    f.render_widget(Paragraph::new(all), area);
    // Within the pane by construction: rows among the visible ones, columns
    // within the text's width.
    let mut paints: Vec<Paint> = images
        .into_iter()
        .filter_map(|i| {
            Some(Paint {
                id: i.id,
                rect: Rect {
                    x: area.x + u16::try_from(i.col).ok()?,
                    y: area.y + u16::try_from(pad + i.row).ok()?,
                    width: i.cols,
                    height: i.rows,
                },
            })
        })
        .filter(|p| area.intersection(p.rect) == p.rect)
        .collect();
    if tl.unseen_below > 0 && matches!(tl.view, View::At { .. }) {
        let text = format!(" ↓ {} new below (PgDn) ", tl.unseen_below);
        let w = (wrap::width(&text) as u16).min(area.width);
        let r = Rect {
            x: area.right() - w,
            y: area.bottom() - 1,
            width: w,
            height: 1,
        };
        f.render_widget(
            Paragraph::new(text).style(Style::default().fg(Color::Black).bg(Color::Yellow)),
            r,
        );
        paints.retain(|p| p.rect.intersection(r).is_empty());
    }
    paints
}
