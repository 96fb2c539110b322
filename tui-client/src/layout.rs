//! Where each pane goes for a terminal size. Shared by rendering and by `App` (which needs
//! the timeline's size to scroll by pages), so the two can never disagree.

use ratatui::layout::Rect;

/// Widest the room list gets, in columns.
pub const SIDEBAR_WIDE: u16 = 18;
/// The room list on narrow terminals (40 to 59 columns).
pub const SIDEBAR_NARROW: u16 = 11;
/// The member list's width.
pub const MEMBERS_WIDTH: u16 = 16;
/// Most rows the input line grows to.
pub const MAX_INPUT_ROWS: u16 = 6;

/// The panes of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// Top line: room name and member count.
    pub title: Rect,
    /// Room list (zero-sized when too narrow).
    pub sidebar: Rect,
    /// The timeline.
    pub timeline: Rect,
    /// Member list (zero-sized when hidden or too narrow).
    pub members: Rect,
    /// Connection status and notices.
    pub status: Rect,
    /// The input line(s).
    pub input: Rect,
}

/// Lays out a `size` (columns, rows) screen.
pub fn areas(size: (u16, u16), show_members: bool, input_rows: u16) -> Areas {
    let (width, height) = size;
    let input_rows = input_rows.clamp(1, MAX_INPUT_ROWS.min(height / 4).max(1));
    let body_top = 1.min(height);
    let bottom = height.saturating_sub(input_rows + 1);
    let body_height = bottom.saturating_sub(body_top);
    let sidebar_width = match width {
        60.. => SIDEBAR_WIDE,
        40..60 => SIDEBAR_NARROW,
        _ => 0,
    };
    let members_width = if show_members && width >= 70 {
        MEMBERS_WIDTH
    } else {
        0
    };
    // One column of each side pane is its separator line; one blank column keeps text off it.
    let left_gap = u16::from(sidebar_width > 0);
    let right_gap = u16::from(members_width > 0);
    let timeline_x = sidebar_width + left_gap;
    let timeline_width = width.saturating_sub(sidebar_width + left_gap + right_gap + members_width);
    // Tiny terminals (a pane being split, a resize in progress) must never put a pane
    // outside the screen: every area is clipped to it.
    let screen = Rect::new(0, 0, width, height);
    Areas {
        title: Rect::new(0, 0, width, body_top).intersection(screen),
        sidebar: Rect::new(0, body_top, sidebar_width, body_height).intersection(screen),
        timeline: Rect::new(timeline_x, body_top, timeline_width, body_height).intersection(screen),
        members: Rect::new(
            timeline_x + timeline_width + right_gap,
            body_top,
            members_width,
            body_height,
        )
        .intersection(screen),
        status: Rect::new(0, bottom, width, 1).intersection(screen),
        input: Rect::new(0, bottom + 1, width, input_rows).intersection(screen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panes_fit_side_by_side_at_80_columns() {
        let a = areas((80, 24), true, 1);
        assert_eq!(
            a.sidebar.width + 1 + a.timeline.width + 1 + a.members.width,
            80
        );
        assert_eq!(a.members.right(), 80);
        assert_eq!(a.timeline.height, 21);
        assert_eq!((a.status.y, a.input.y), (22, 23));
    }

    #[test]
    fn narrow_screens_drop_the_member_list_first() {
        let a = areas((40, 12), true, 1);
        assert_eq!(a.members.width, 0);
        assert_eq!(a.sidebar.width, SIDEBAR_NARROW);
        assert_eq!(a.timeline.height, 9);
    }

    #[test]
    fn the_input_grows_but_leaves_the_timeline_room() {
        let a = areas((80, 24), false, 20);
        assert_eq!(a.input.height, 6);
        let small = areas((40, 12), false, 20);
        assert_eq!(small.input.height, 3);
    }
}
