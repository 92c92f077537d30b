//! The three pictures: policy arrows per method, visitation heat-maps, MSE curves.

use super::canvas::{text_width, Canvas, Rgb};
use crate::env::N_ACTIONS;
use crate::experiment::ExperimentResult;
use crate::map::{Map, Tile};
use crate::methods::Method;

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [20, 20, 20];
const GREEDY: Rgb = [200, 30, 30];
const CHOSEN: Rgb = [40, 160, 40];
const REJECTED: Rgb = [240, 140, 20];
/// Gymnasium's action directions as (dx, dy) on screen: left, down, right, up.
const DIRS: [(f64, f64); N_ACTIONS] = [(-1.0, 0.0), (0.0, 1.0), (1.0, 0.0), (0.0, -1.0)];

pub fn method_color(m: Method) -> Rgb {
    match m {
        Method::Sft => [31, 119, 180],
        Method::Ift => [214, 39, 40],
        Method::Dpo => [44, 160, 44],
        Method::Orpo => [255, 127, 14],
    }
}

fn tile_color(t: Tile) -> Rgb {
    match t {
        Tile::Start => [200, 225, 255],
        Tile::Frozen => [236, 245, 252],
        Tile::Hole => [30, 40, 70],
        Tile::Goal => [255, 215, 80],
    }
}

/// Grid geometry shared by the two map pictures: `n` panels side by side.
struct Grid {
    cell: i64,
    font: i64,
    panel_w: i64,
    top: i64,
}

const MARGIN: i64 = 20;
const GAP: i64 = 30;

fn grid_canvas(map: &Map, n: usize, footer: &str) -> (Canvas, Grid) {
    let cell = (480 / map.nrow.max(map.ncol) as i64).clamp(36, 96);
    let g = Grid {
        cell,
        font: if cell >= 60 { 2 } else { 1 },
        panel_w: cell * map.ncol as i64,
        top: MARGIN + 40,
    };
    let width = (2 * MARGIN + n as i64 * g.panel_w + (n as i64 - 1) * GAP)
        .max(text_width(footer, 2) + 2 * MARGIN);
    let height = g.top + cell * map.nrow as i64 + 50;
    let mut c = Canvas::new(width as usize, height as usize, WHITE);
    c.text(MARGIN, height - 30, 2, INK, footer);
    (c, g)
}

/// Cell `s` of panel `k`: top-left corner.
fn cell_xy(map: &Map, g: &Grid, k: usize, s: usize) -> (i64, i64) {
    let left = MARGIN + k as i64 * (g.panel_w + GAP);
    (
        left + (s % map.ncol) as i64 * g.cell,
        g.top + (s / map.ncol) as i64 * g.cell,
    )
}

fn draw_tiles(c: &mut Canvas, map: &Map, g: &Grid, k: usize, title: &str) {
    let (x, _) = cell_xy(map, g, k, 0);
    c.text(x, MARGIN, 3, INK, title);
    for s in 0..map.n_states() {
        let (x, y) = cell_xy(map, g, k, s);
        c.fill_rect(x, y, g.cell, g.cell, tile_color(map.tiles[s]));
        c.outline(x, y, g.cell, g.cell, 1, [170, 180, 190]);
    }
}

/// Arrows from each cell's centre, length ∝ probability; the greedy one red, with its percent.
pub fn policies(r: &ExperimentResult) -> Canvas {
    let footer = format!("ARROW LENGTH = P(ACTION), RED = GREEDY (NUMBER = ITS %), MEAN OF {} SEEDS. GREEN/ORANGE = OPTIMAL/SUB-OPTIMAL ROUTE", r.config.seeds);
    let (mut c, g) = grid_canvas(&r.map, r.methods.len() + 1, &footer);
    let mut tables = vec![("OPTIMAL".to_string(), &r.optimal)];
    tables.extend(r.methods.iter().map(|m| {
        (
            format!("{} MSE {:.4}", m.method.name(), m.mse_all.mean),
            &m.mean_probs,
        )
    }));
    for (k, (title, probs)) in tables.into_iter().enumerate() {
        draw_tiles(&mut c, &r.map, &g, k, &title);
        for s in r.map.non_terminal_states() {
            let (x, y) = cell_xy(&r.map, &g, k, s);
            let centre = ((x + g.cell / 2) as f64, (y + g.cell / 2) as f64);
            let greedy =
                (0..N_ACTIONS).fold(0, |b, a| if probs[s][a] > probs[s][b] { a } else { b });
            for (a, (dx, dy)) in DIRS.iter().enumerate() {
                let len = probs[s][a] * (g.cell / 2 - 4) as f64;
                let (color, w) = if a == greedy {
                    (GREEDY, 4)
                } else {
                    ([90, 90, 90], 2)
                };
                c.line(centre, (centre.0 + dx * len, centre.1 + dy * len), w, color);
            }
            c.text(
                x + 3,
                y + 3,
                g.font,
                INK,
                &format!("{:.0}", 100.0 * probs[s][greedy]),
            );
        }
        if k == 0 {
            for (traj, color, inset) in [(&r.chosen, CHOSEN, 2), (&r.rejected, REJECTED, 6)] {
                for &s in &traj.states {
                    let (x, y) = cell_xy(&r.map, &g, 0, s);
                    c.outline(
                        x + inset,
                        y + inset,
                        g.cell - 2 * inset,
                        g.cell - 2 * inset,
                        3,
                        color,
                    );
                }
            }
        }
    }
    c
}

/// Visits per cell over all seeds' sampled episodes, shaded by √(visits / most visits).
pub fn visits(r: &ExperimentResult) -> Canvas {
    let footer = format!(
        "CELL = TIMES OCCUPIED IN {} SAMPLED EPISODES x {} SEEDS, DARKER = MORE",
        r.config.episodes, r.config.seeds
    );
    let (mut c, g) = grid_canvas(&r.map, r.methods.len(), &footer);
    for (k, m) in r.methods.iter().enumerate() {
        let title = format!(
            "{} COVERAGE {:.2} SUCCESS {:.2}",
            m.method.name(),
            m.coverage.mean,
            m.success.mean
        );
        draw_tiles(&mut c, &r.map, &g, k, &title);
        let most = *m.visits.iter().max().unwrap_or(&1) as f64;
        for s in 0..r.map.n_states() {
            let (x, y) = cell_xy(&r.map, &g, k, s);
            let t = (m.visits[s] as f64 / most.max(1.0)).sqrt();
            if r.map.tiles[s] != Tile::Hole {
                let shade = |from: u8, to: u8| (from as f64 + t * (to as f64 - from as f64)) as u8;
                c.fill_rect(
                    x + 1,
                    y + 1,
                    g.cell - 2,
                    g.cell - 2,
                    [shade(255, 180), shade(255, 20), shade(255, 20)],
                );
            }
            let ink = if t > 0.6 || r.map.tiles[s] == Tile::Hole {
                WHITE
            } else {
                INK
            };
            c.text(x + 3, y + 3, g.font, ink, &m.visits[s].to_string());
        }
    }
    c
}

pub use super::curves::mse_curves;
