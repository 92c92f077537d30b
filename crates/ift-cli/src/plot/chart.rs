//! A line chart on a [`Canvas`]: axes with "nice" ticks (1, 2 or 5 × 10ᵏ),
//! grid, title, axis labels and a legend.

use crate::canvas::{Canvas, Rgb, BLACK, WHITE};

const WIDTH: usize = 900;
const HEIGHT: usize = 540;
/// Font scale: 5 × 8 glyphs drawn at 10 × 16 pixels.
const TEXT: i64 = 2;
const GRID: Rgb = [225, 225, 225];
/// Plot area margins: left leaves room for seven-character tick labels.
const LEFT: i64 = 110;
const RIGHT: i64 = 30;
const TOP: i64 = 60;
const BOTTOM: i64 = 80;

/// One named line of `(x, y)` points, drawn in order of `x`.
pub struct Series {
    pub name: String,
    pub colour: Rgb,
    pub points: Vec<(f64, f64)>,
    /// Mark each point with a small square: for sparse series such as
    /// evaluations, where a lone point would otherwise be invisible.
    pub markers: bool,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
}

/// Axis range and tick spacing covering `lo..=hi`, aiming at about six ticks.
fn ticks(lo: f64, hi: f64) -> (f64, f64, f64) {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        // A flat series still needs a non-empty axis.
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    };
    let raw = (hi - lo) / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

/// A tick label with just enough decimals to tell neighbours apart;
/// scientific for very small or large values (learning rates).
fn tick_label(v: f64, step: f64, lo: f64, hi: f64) -> String {
    if v.abs() < step * 1e-6 {
        return "0".into();
    }
    let big = lo.abs().max(hi.abs());
    if !(1e-2..1e6).contains(&big) {
        return format!("{v:.1e}");
    }
    let decimals = (-step.log10()).ceil().max(0.0) as usize;
    format!("{v:.decimals$}")
}

impl Chart<'_> {
    pub fn draw(&self) -> Canvas {
        let mut c = Canvas::new(WIDTH, HEIGHT, WHITE);
        let (w, h) = (WIDTH as i64, HEIGHT as i64);
        let (pw, ph) = (w - LEFT - RIGHT, h - TOP - BOTTOM);
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let fold = |f: fn(&(f64, f64)) -> f64, init: f64, pick: fn(f64, f64) -> f64| {
            all().map(f).fold(init, pick)
        };
        let (x0, x1, xs) = ticks(
            fold(|p| p.0, f64::MAX, f64::min),
            fold(|p| p.0, f64::MIN, f64::max),
        );
        let (y0, y1, ys) = ticks(
            fold(|p| p.1, f64::MAX, f64::min),
            fold(|p| p.1, f64::MIN, f64::max),
        );
        let px = |x: f64| LEFT as f64 + (x - x0) / (x1 - x0) * pw as f64;
        let py = |y: f64| (TOP + ph) as f64 - (y - y0) / (y1 - y0) * ph as f64;
        let th = Canvas::text_height(TEXT);

        // Grid and tick labels; index-based so rounding never drops the last tick.
        for i in 0..=((x1 - x0) / xs).round() as i64 {
            let x = x0 + i as f64 * xs;
            let (sx, label) = (px(x).round() as i64, tick_label(x, xs, x0, x1));
            c.fill_rect(sx, TOP, 1, ph, GRID);
            c.fill_rect(sx, TOP + ph, 1, 6, BLACK);
            c.text(
                sx - Canvas::text_width(&label, TEXT) / 2,
                TOP + ph + 10,
                &label,
                TEXT,
                BLACK,
            );
        }
        for i in 0..=((y1 - y0) / ys).round() as i64 {
            let y = y0 + i as f64 * ys;
            let (sy, label) = (py(y).round() as i64, tick_label(y, ys, y0, y1));
            c.fill_rect(LEFT, sy, pw, 1, GRID);
            c.fill_rect(LEFT - 6, sy, 6, 1, BLACK);
            let tw = Canvas::text_width(&label, TEXT);
            c.text(LEFT - 10 - tw, sy - th / 2 + 1, &label, TEXT, BLACK);
        }
        c.fill_rect(LEFT, TOP, 2, ph + 1, BLACK);
        c.fill_rect(LEFT, TOP + ph, pw + 1, 2, BLACK);

        for s in self.series {
            let mut pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (px(x), py(y))).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            for pair in pts.windows(2) {
                c.line(pair[0], pair[1], 2, s.colour);
            }
            if s.markers || pts.len() == 1 {
                for &(x, y) in &pts {
                    c.fill_rect(x.round() as i64 - 4, y.round() as i64 - 4, 9, 9, s.colour);
                }
            }
        }

        let title_x = (w - Canvas::text_width(self.title, TEXT + 1)) / 2;
        c.text(title_x, 14, self.title, TEXT + 1, BLACK);
        c.text(12, TOP - th - 16, self.y_label, TEXT, BLACK);
        let xl = LEFT + (pw - Canvas::text_width(self.x_label, TEXT)) / 2;
        c.text(xl, h - th - 14, self.x_label, TEXT, BLACK);
        self.legend(&mut c, LEFT + pw);
        c
    }

    /// Swatch and name of each series in a framed box at the top right.
    fn legend(&self, c: &mut Canvas, right: i64) {
        let th = Canvas::text_height(TEXT);
        let longest = self
            .series
            .iter()
            .map(|s| Canvas::text_width(&s.name, TEXT))
            .max()
            .unwrap_or(0);
        let (bw, bh) = (longest + 50, self.series.len() as i64 * (th + 8) + 12);
        let (bx, by) = (right - bw - 12, TOP + 12);
        c.fill_rect(bx, by, bw, bh, BLACK);
        c.fill_rect(bx + 1, by + 1, bw - 2, bh - 2, WHITE);
        for (i, s) in self.series.iter().enumerate() {
            let y = by + 10 + i as i64 * (th + 8);
            c.fill_rect(bx + 10, y + th / 2 - 2, 24, 4, s.colour);
            c.text(bx + 42, y, &s.name, TEXT, BLACK);
        }
    }
}
