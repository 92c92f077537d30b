//! The two map pictures: policy arrows per row, visitation heat-maps.

use super::canvas::{Canvas, Rgb};
use super::grid::{corner_label, fit_scale, Grid, ROUTE_BANDS};
use crate::env::N_ACTIONS;
use crate::experiment::ExperimentResult;
use crate::map::{Map, Tile};

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [20, 20, 20];
const GREEDY: Rgb = [200, 30, 30];
const CHOSEN: Rgb = [40, 160, 40];
const REJECTED: Rgb = [240, 140, 20];
/// Gymnasium's action directions as (dx, dy) on screen: left, down, right, up.
const DIRS: [(f64, f64); N_ACTIONS] = [(-1.0, 0.0), (0.0, 1.0), (1.0, 0.0), (0.0, -1.0)];

/// Row `k`'s colour in every picture: matplotlib's tab10 (SFT, IFT, DPO, ORPO keep the
/// colours of the first pictures), then black.
pub fn row_color(k: usize) -> Rgb {
    const PALETTE: [Rgb; 11] = [
        [31, 119, 180],
        [214, 39, 40],
        [44, 160, 44],
        [255, 127, 14],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
        [0, 0, 0],
    ];
    PALETTE[k % PALETTE.len()]
}

fn tile_color(t: Tile) -> Rgb {
    match t {
        Tile::Start => [200, 225, 255],
        Tile::Frozen => [236, 245, 252],
        Tile::Hole => [30, 40, 70],
        Tile::Goal => [255, 215, 80],
    }
}

fn draw_tiles(c: &mut Canvas, map: &Map, g: &Grid, k: usize) {
    for s in 0..map.n_states() {
        let (x, y) = g.cell_xy(k, s);
        c.fill_rect(x, y, g.cell, g.cell, tile_color(map.tiles[s]));
        c.outline(x, y, g.cell, g.cell, 1, [170, 180, 190]);
    }
}

/// Arrows from each cell's centre, length ∝ probability; the greedy one red, its percent
/// in the top-left corner, clear of the arrows and of the optimal panel's route outlines.
pub fn policies(r: &ExperimentResult) -> Canvas {
    let routes = if r.config.setup.is_slippery() {
        "CHOSEN/REJECTED EPISODE OF SEED 0"
    } else {
        "OPTIMAL/SUB-OPTIMAL ROUTE"
    };
    let footer = format!("ARROW LENGTH = P(ACTION), RED = GREEDY (NUMBER = ITS %), MEAN OF {} SEEDS. GREEN/ORANGE = {routes}", r.config.seeds);
    let (mut c, g) = Grid::canvas(&r.map, r.rows.len() + 1, &footer);
    let mut tables = vec![("OPTIMAL".to_string(), String::new(), &r.optimal)];
    tables.extend(r.rows.iter().map(|row| {
        (
            row.arm.label.to_string(),
            format!("MSE {:.4}", row.mse_all.mean),
            &row.mean_probs,
        )
    }));
    for (k, (head, stats, probs)) in tables.into_iter().enumerate() {
        g.title(&mut c, k, &head, &stats, INK);
        draw_tiles(&mut c, &r.map, &g, k);
        if k == 0 {
            let routes = [(Some(&r.chosen), CHOSEN), (r.rejected.as_ref(), REJECTED)];
            for ((traj, color), (inset, thick)) in routes.into_iter().zip(ROUTE_BANDS) {
                for &s in traj.iter().flat_map(|t| &t.states) {
                    let (x, y) = g.cell_xy(0, s);
                    c.outline(
                        x + inset,
                        y + inset,
                        g.cell - 2 * inset,
                        g.cell - 2 * inset,
                        thick,
                        color,
                    );
                }
            }
        }
        for s in r.map.non_terminal_states() {
            let (x, y) = g.cell_xy(k, s);
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
            let label = format!("{:.0}", 100.0 * probs[s][greedy]);
            let (at, scale) = corner_label(g.cell, &label);
            c.text(x + at, y + at, scale, INK, &label);
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
    let (mut c, g) = Grid::canvas(&r.map, r.rows.len(), &footer);
    for (k, row) in r.rows.iter().enumerate() {
        let stats = format!(
            "COVERAGE {:.2} SUCCESS {:.2}",
            row.coverage.mean, row.success.mean
        );
        g.title(&mut c, k, row.arm.label, &stats, INK);
        draw_tiles(&mut c, &r.map, &g, k);
        let most = *row.visits.iter().max().unwrap_or(&1) as f64;
        for s in 0..r.map.n_states() {
            let (x, y) = g.cell_xy(k, s);
            let t = (row.visits[s] as f64 / most.max(1.0)).sqrt();
            if r.map.tiles[s] != Tile::Hole {
                let shade = |from: u8, to: u8| (from as f64 + t * (to as f64 - from as f64)) as u8;
                let fill = [shade(255, 180), shade(255, 20), shade(255, 20)];
                c.fill_rect(x + 1, y + 1, g.cell - 2, g.cell - 2, fill);
            }
            let ink = if t > 0.6 || r.map.tiles[s] == Tile::Hole {
                WHITE
            } else {
                INK
            };
            let label = row.visits[s].to_string();
            c.text(x + 4, y + 4, fit_scale(&label, g.cell - 8, 2), ink, &label);
        }
    }
    c
}

pub use super::curves::mse_curves;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{run, ExperimentConfig};
    use crate::map::{MAP_8X8, MAP_ROUTE};
    use crate::train::TrainConfig;

    #[test]
    fn cell_labels_touch_nothing_but_their_cell_at_every_size() {
        // Route map (96-pixel cells), 8×8 (70) and a 12×12 ring (48, the smallest): around
        // each percentage, in the optimal panel (route outlines) and a trained one (arrows),
        // every pixel is the label's ink or the cell's own colour, with a 1-pixel clear rim.
        let ring: String = (0..12)
            .map(|r| match r {
                0 => "FFFFSFFFFFFF\n".to_string(),
                11 => "FFFGFFFFFFFF\n".to_string(),
                _ => format!("F{}F\n", "H".repeat(10)),
            })
            .collect();
        for text in [MAP_ROUTE, MAP_8X8, &ring] {
            let map = Map::parse(text).unwrap();
            let train = TrainConfig {
                steps: 3,
                ..TrainConfig::default()
            };
            let cfg = ExperimentConfig {
                seeds: 1,
                episodes: 2,
                train,
                ..ExperimentConfig::default()
            };
            let r = run(&map, &cfg).unwrap();
            let c = policies(&r);
            let (_, g) = Grid::canvas(&map, r.rows.len() + 1, "");
            for (k, probs) in [(0, &r.optimal), (1, &r.rows[0].mean_probs)] {
                for s in map.non_terminal_states() {
                    let best = probs[s].iter().cloned().fold(0.0, f64::max);
                    let label = format!("{:.0}", 100.0 * best);
                    let (at, scale) = corner_label(g.cell, &label);
                    let (x, y) = g.cell_xy(k, s);
                    let (x0, y0) = (x + at - 1, y + at - 1);
                    let (x1, y1) = (
                        x + at + super::super::canvas::text_width(&label, scale),
                        y + at + 5 * scale,
                    );
                    for py in y0..=y1 {
                        for px in x0..=x1 {
                            let p = c.pixel(px as usize, py as usize);
                            let rim = px == x0 || py == y0 || px == x1 || py == y1;
                            let own = p == tile_color(map.tiles[s]) || (!rim && p == INK);
                            assert!(
                                own,
                                "cell {} px: panel {k}, state {s}, pixel ({px}, {py}) = {p:?}",
                                g.cell
                            );
                        }
                    }
                }
            }
        }
    }
}
