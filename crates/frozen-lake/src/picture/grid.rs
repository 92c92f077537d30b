//! Geometry shared by the two map pictures: one panel per table, wrapped into lines of
//! panels, and where a label may go so that it stays inside its cell and clear of what
//! else the cell holds, at every cell size.

use super::canvas::{text_width, Canvas, Rgb};
use crate::map::Map;

/// Cell sizes in pixels; large maps get small cells, never below `MIN_CELL`.
pub const MIN_CELL: i64 = 48;
pub const MAX_CELL: i64 = 96;
/// Route outlines in the optimal panel, as `(inset, thickness)`: chosen, then rejected.
pub const ROUTE_BANDS: [(i64, i64); 2] = [(1, 2), (3, 2)];
/// The widest arrow (the greedy one) is 4 pixels: it covers `centre − 2 ..= centre + 1`.
pub const ARROW_HALF: i64 = 2;
const MARGIN: i64 = 20;
const GAP: i64 = 30;
const PER_LINE: usize = 5;
/// Panels are at least this wide, so that their two title lines fit on narrow maps.
const MIN_PANEL_W: i64 = 220;
/// A title line at scale 3, a stats line at scale 2, with spacing.
const TITLE_H: i64 = 15 + 6 + 10 + 10;

/// The largest scale up to `max` at which `text` fits in `room` pixels (1 if none does).
pub fn fit_scale(text: &str, room: i64, max: i64) -> i64 {
    (1..=max)
        .rev()
        .find(|&s| text_width(text, s) <= room)
        .unwrap_or(1)
}

/// A cell's percentage label: the top-left quadrant between the route outlines (which run
/// along the border) and the arrows (which start at the centre). Returns the offset from
/// the cell's corner and the scale: 2 where three digits fit there, else 1.
pub fn corner_label(cell: i64, text: &str) -> (i64, i64) {
    let (inset, thick) = ROUTE_BANDS[1];
    let lo = inset + thick + 1;
    let room = cell / 2 - ARROW_HALF - 1 - lo;
    (lo, fit_scale(text, room, 2).min(room / 5).max(1))
}

pub struct Grid {
    pub cell: i64,
    ncol: usize,
    panel_w: i64,
    panel_h: i64,
    per_line: usize,
}

impl Grid {
    /// A white canvas for `n` panels of `map`, with `footer` under them.
    pub fn canvas(map: &Map, n: usize, footer: &str) -> (Canvas, Grid) {
        let cell = (560 / map.nrow.max(map.ncol) as i64).clamp(MIN_CELL, MAX_CELL);
        let per_line = n.clamp(1, PER_LINE);
        let lines = n.div_ceil(per_line) as i64;
        let panel_w = (cell * map.ncol as i64).max(MIN_PANEL_W);
        let panel_h = TITLE_H + cell * map.nrow as i64 + GAP;
        let width = (2 * MARGIN + per_line as i64 * (panel_w + GAP) - GAP)
            .max(text_width(footer, 2) + 2 * MARGIN);
        let height = MARGIN + lines * panel_h + 20;
        let mut c = Canvas::new(width as usize, height as usize, [255; 3]);
        c.text(MARGIN, height - 30, 2, [20; 3], footer);
        let g = Grid {
            cell,
            ncol: map.ncol,
            panel_w,
            panel_h,
            per_line,
        };
        (c, g)
    }

    /// Top-left corner of panel `k` (its title's corner).
    fn panel(&self, k: usize) -> (i64, i64) {
        let (line, col) = ((k / self.per_line) as i64, (k % self.per_line) as i64);
        (
            MARGIN + col * (self.panel_w + GAP),
            MARGIN + line * self.panel_h,
        )
    }

    /// Top-left corner of cell `s` of panel `k`.
    pub fn cell_xy(&self, k: usize, s: usize) -> (i64, i64) {
        let (x, y) = self.panel(k);
        let (row, col) = ((s / self.ncol) as i64, (s % self.ncol) as i64);
        (x + col * self.cell, y + TITLE_H + row * self.cell)
    }

    /// Panel `k`'s two title lines, each scaled down until it fits the panel's width.
    pub fn title(&self, c: &mut Canvas, k: usize, head: &str, stats: &str, ink: Rgb) {
        let (x, y) = self.panel(k);
        let scale = fit_scale(head, self.panel_w, 3);
        c.text(x, y + 15 - 5 * scale, scale, ink, head);
        c.text(x, y + 21, fit_scale(stats, self.panel_w, 2), ink, stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corner_label_clears_route_outlines_and_arrows_at_every_cell_size() {
        for cell in MIN_CELL..=MAX_CELL {
            let (at, scale) = corner_label(cell, "100");
            let (inset, thick) = ROUTE_BANDS[1];
            assert!(
                at >= inset + thick,
                "cell {cell}: label on the route outline"
            );
            let end = at + text_width("100", scale);
            let bottom = at + 5 * scale;
            assert!(
                end < cell / 2 - ARROW_HALF && bottom < cell / 2 - ARROW_HALF,
                "cell {cell}: label on an arrow"
            );
        }
        assert_eq!(
            corner_label(MAX_CELL, "100").1,
            2,
            "big cells get big digits"
        );
    }
}
