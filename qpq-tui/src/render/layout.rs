//! Where each part of the main screen goes for a terminal size. `update`
//! uses the same function to know how tall a page is, so scrolling and
//! drawing always agree.

use ratatui::layout::Rect;

use crate::app::App;

/// The conversation list is hidden below this width.
const LIST_MIN_WIDTH: u16 = 50;
/// The member panel is shown only from this width.
const MEMBERS_MIN_WIDTH: u16 = 70;
/// The editor grows up to this many lines.
pub const INPUT_MAX_LINES: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub list: Option<Rect>,
    /// The conversation's title row.
    pub header: Rect,
    /// The messages themselves.
    pub messages: Rect,
    pub members: Option<Rect>,
    /// The editor's top border row (title and hints).
    pub input_title: Rect,
    pub input: Rect,
    pub status: Rect,
}

pub fn areas(app: &App, area: Rect) -> Areas {
    let status = Rect {
        y: area.bottom().saturating_sub(1),
        height: area.height.min(1),
        ..area
    };
    let above = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    let list_w = if area.width >= LIST_MIN_WIDTH {
        (area.width / 4).clamp(16, 28)
    } else {
        0
    };
    let members_w = if app.show_members && area.width >= MEMBERS_MIN_WIDTH {
        (area.width / 5).clamp(14, 24)
    } else {
        0
    };
    let list = (list_w > 0).then_some(Rect {
        width: list_w,
        ..above
    });
    let right = Rect {
        x: above.x + list_w,
        width: above.width - list_w,
        ..above
    };
    // The editor: as many lines as the text needs, within limits, plus its
    // title row; never more than half the height.
    let inner_w = usize::from(right.width.max(1));
    let lines = app
        .editor
        .layout(inner_w)
        .lines
        .len()
        .clamp(1, INPUT_MAX_LINES);
    let max_input = (right.height / 2).max(1);
    let input_h = (lines as u16).min(max_input.saturating_sub(1).max(1));
    let title_h = u16::from(right.height > input_h + 1);
    let input = Rect {
        y: right.bottom().saturating_sub(input_h),
        height: input_h.min(right.height),
        ..right
    };
    let input_title = Rect {
        y: input.y.saturating_sub(title_h),
        height: title_h,
        ..right
    };
    let middle = Rect {
        height: input_title.y.saturating_sub(right.y),
        ..right
    };
    let members = (members_w > 0).then_some(Rect {
        x: middle.right().saturating_sub(members_w),
        width: members_w,
        ..middle
    });
    let middle = Rect {
        width: middle.width - members_w,
        ..middle
    };
    let header_h = u16::from(middle.height >= 3);
    let header = Rect {
        height: header_h,
        ..middle
    };
    let messages = Rect {
        y: middle.y + header_h,
        height: middle.height - header_h,
        ..middle
    };
    Areas {
        list,
        header,
        messages,
        members,
        input_title,
        input,
        status,
    }
}

/// The message pane's size for the app's terminal size.
pub fn message_pane(app: &App) -> (usize, usize) {
    let a = areas(
        app,
        Rect {
            x: 0,
            y: 0,
            width: app.size.0,
            height: app.size.1,
        },
    );
    (
        usize::from(a.messages.width),
        usize::from(a.messages.height),
    )
}
