//! The MSE-vs-step training curves.

use super::canvas::{text_width, Canvas};
use super::charts::row_color;
use crate::experiment::ExperimentResult;

/// Mean MSE over seeds (thick) with mean ± one standard deviation (thin), per row.
pub fn mse_curves(r: &ExperimentResult) -> Canvas {
    let (left, top, w, h) = (110i64, 70i64, 760i64, 400i64);
    let legend: Vec<String> = r
        .rows
        .iter()
        .map(|m| format!("{} {:.4}", m.arm.label, m.mse_all.mean))
        .collect();
    let legend_w = legend.iter().map(|l| text_width(l, 2)).max().unwrap_or(0);
    // The legend sits right of the plot, so that it hides no curve.
    let legend_x = left + w + 30;
    let mut c = Canvas::new((legend_x + legend_w + 60) as usize, 540, [255; 3]);
    let ink = [20, 20, 20];
    c.text(
        left,
        20,
        3,
        ink,
        &format!(
            "MSE TO THE OPTIMAL TABLE, ALL NON-TERMINAL STATES ({} SEEDS)",
            r.config.seeds
        ),
    );
    let max_step = r.rows[0].curve.last().map_or(1, |p| p.0).max(1) as f64;
    let max_mse = r
        .rows
        .iter()
        .flat_map(|m| m.curve.iter().map(|p| p.1 + p.2))
        .fold(1e-9, f64::max)
        * 1.05;
    let to_xy = |step: usize, v: f64| {
        (
            left as f64 + step as f64 / max_step * w as f64,
            (top + h) as f64 - v / max_mse * h as f64,
        )
    };
    for i in 0..=4 {
        let y = top + h - i * h / 4;
        c.line(
            (left as f64, y as f64),
            ((left + w) as f64, y as f64),
            1,
            [225, 225, 225],
        );
        let label = format!("{:.3}", max_mse * i as f64 / 4.0);
        c.text(left - 10 - text_width(&label, 2), y - 5, 2, ink, &label);
        let x = left + i * w / 4;
        let label = format!("{:.0}", max_step * i as f64 / 4.0);
        c.text(x - text_width(&label, 2) / 2, top + h + 12, 2, ink, &label);
    }
    c.line(
        (left as f64, top as f64),
        (left as f64, (top + h) as f64),
        2,
        ink,
    );
    c.line(
        (left as f64, (top + h) as f64),
        ((left + w) as f64, (top + h) as f64),
        2,
        ink,
    );
    c.text(left + w / 2 - 20, top + h + 36, 2, ink, "STEP");
    for (k, m) in r.rows.iter().enumerate() {
        let color = row_color(k);
        let pale = color.map(|v| ((v as u16 + 2 * 255) / 3) as u8);
        for (band, width, col) in [(-1.0, 1, pale), (1.0, 1, pale), (0.0, 3, color)] {
            for pair in m.curve.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                c.line(
                    to_xy(a.0, (a.1 + band * a.2).max(0.0)),
                    to_xy(b.0, (b.1 + band * b.2).max(0.0)),
                    width,
                    col,
                );
            }
        }
    }
    let step = 26.min(h / r.rows.len().max(1) as i64);
    for (k, label) in legend.iter().enumerate() {
        let y = top + 8 + k as i64 * step;
        c.fill_rect(legend_x, y - 1, 30, 12, row_color(k));
        c.text(legend_x + 40, y, 2, ink, label);
    }
    c
}
