//! Scrolling the message pane by rows, in terms of [`View`]: pure functions
//! of the timeline, the pane's width and the block heights, shared by key
//! and mouse handling. They measure only the blocks they pass over.

use crate::render::messages::{block_height, BlockCtx};
use crate::timeline::{Timeline, View};

/// Moves the view `rows` rows towards older messages, never past the point
/// where the first message's top reaches the top of a `height`-row pane.
pub fn up(ctx: &BlockCtx<'_>, tl: &Timeline, rows: usize, height: usize) -> View {
    if tl.is_empty() {
        return View::Follow;
    }
    let (mut idx, mut skip) = match tl.view {
        View::Follow => (tl.len() - 1, 0),
        View::At { index, skip } => (index.min(tl.len() - 1), skip),
    };
    let mut r = rows;
    while r > 0 {
        let h = block_height(ctx, tl, idx);
        if skip + 1 < h {
            let d = (h - 1 - skip).min(r);
            skip += d;
            r -= d;
            continue;
        }
        if idx == 0 {
            break;
        }
        idx -= 1;
        skip = 0;
        r -= 1;
    }
    clamp_top(ctx, tl, View::At { index: idx, skip }, height)
}

/// Moves the view `rows` rows towards newer messages; reaching the newest
/// follows it again.
pub fn down(ctx: &BlockCtx<'_>, tl: &Timeline, rows: usize) -> View {
    let View::At { index, skip } = tl.view else {
        return View::Follow;
    };
    let (mut idx, mut skip) = (index.min(tl.len().saturating_sub(1)), skip);
    let mut r = rows;
    while r > 0 {
        if skip > 0 {
            let d = skip.min(r);
            skip -= d;
            r -= d;
            continue;
        }
        if idx + 1 >= tl.len() {
            return View::Follow;
        }
        idx += 1;
        skip = block_height(ctx, tl, idx) - 1;
        r -= 1;
    }
    if idx + 1 >= tl.len() && skip == 0 {
        View::Follow
    } else {
        View::At { index: idx, skip }
    }
}

/// When everything from the first message to the bottom row fits in the
/// pane, there is nothing above to scroll to: show it from the top instead
/// of leaving blank rows (or follow, if it is all there is).
fn clamp_top(ctx: &BlockCtx<'_>, tl: &Timeline, view: View, height: usize) -> View {
    let View::At { index, skip } = view else {
        return view;
    };
    // Each block is at least a row: only short prefixes can fit.
    if index >= height {
        return view;
    }
    let above: usize = (0..=index).map(|i| block_height(ctx, tl, i)).sum::<usize>() - skip;
    if above >= height {
        return view;
    }
    // Find the bottom that shows exactly `height` rows from the top.
    let mut rows = 0;
    for i in 0..tl.len() {
        let h = block_height(ctx, tl, i);
        if rows + h >= height {
            let skip = rows + h - height;
            if i + 1 == tl.len() && skip == 0 {
                return View::Follow;
            }
            return View::At { index: i, skip };
        }
        rows += h;
    }
    View::Follow
}

/// The topmost message index visible for the timeline's view.
pub fn top_index(ctx: &BlockCtx<'_>, tl: &Timeline, height: usize) -> usize {
    if tl.is_empty() {
        return 0;
    }
    let (mut idx, skip) = match tl.view {
        View::Follow => (tl.len() - 1, 0),
        View::At { index, skip } => (index.min(tl.len() - 1), skip),
    };
    let mut rows = 0;
    loop {
        rows += block_height(ctx, tl, idx);
        if rows >= height + skip || idx == 0 {
            return idx;
        }
        idx -= 1;
    }
}
