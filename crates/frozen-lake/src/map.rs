//! Frozen Lake maps: Gymnasium's standard 4×4 and 8×8, text maps, and the
//! two-route map this experiment is built on.

use serde::{Deserialize, Serialize};

use crate::error::LakeError;

/// One cell, named by its Gymnasium letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tile {
    /// `S`: where every episode starts (frozen).
    Start,
    /// `F`: frozen, safe.
    Frozen,
    /// `H`: a hole; the episode terminates with reward 0.
    Hole,
    /// `G`: the goal; the episode terminates with reward 1.
    Goal,
}

impl Tile {
    /// Whether entering the tile ends the episode.
    pub fn is_terminal(self) -> bool {
        matches!(self, Tile::Hole | Tile::Goal)
    }
}

/// A rectangular map; states are numbered `row * ncol + col` as in Gymnasium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Map {
    pub nrow: usize,
    pub ncol: usize,
    /// Row-major, `nrow * ncol` tiles.
    pub tiles: Vec<Tile>,
}

/// Gymnasium's `MAPS["4x4"]`.
pub const MAP_4X4: &str = "SFFF\nFHFH\nFFFH\nHFFG";

/// Gymnasium's `MAPS["8x8"]`.
pub const MAP_8X8: &str =
    "SFFFFFFF\nFFFFFFFF\nFFFHFFFF\nFFFFFHFF\nFFFHFFFF\nFHHFFFHF\nFHFFHFHF\nFFFHFFFG";

/// The two-route map (see `docs/frozen-lake.md`). A ring of frozen cells around a
/// block of holes: from `S` the left branch reaches `G` in 7 moves, the right
/// branch in 9. With deterministic moves and discount < 1 the left route is the
/// unique optimal one and the right route is strictly worse but still succeeds.
pub const MAP_ROUTE: &str = "FFSFF\nFHHHF\nFHHHF\nFHHHF\nFGFFF";

impl Map {
    /// Parses rows of `S`, `F`, `H`, `G`, one row per line (blank lines and
    /// surrounding spaces ignored). Exactly one `S` and at least one `G`.
    pub fn parse(text: &str) -> Result<Self, LakeError> {
        let rows: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let ncol = rows.first().map_or(0, |r| r.chars().count());
        if rows.is_empty() || ncol == 0 {
            return Err(LakeError::Map("the map is empty".into()));
        }
        let mut tiles = Vec::with_capacity(rows.len() * ncol);
        for (i, row) in rows.iter().enumerate() {
            if row.chars().count() != ncol {
                return Err(LakeError::Map(format!(
                    "row {} has {} cells, expected {ncol}",
                    i + 1,
                    row.chars().count()
                )));
            }
            for c in row.chars() {
                tiles.push(match c {
                    'S' => Tile::Start,
                    'F' => Tile::Frozen,
                    'H' => Tile::Hole,
                    'G' => Tile::Goal,
                    other => {
                        return Err(LakeError::Map(format!(
                            "row {}: unknown cell {other:?}",
                            i + 1
                        )))
                    }
                });
            }
        }
        let starts = tiles.iter().filter(|t| **t == Tile::Start).count();
        if starts != 1 || !tiles.contains(&Tile::Goal) {
            return Err(LakeError::Map(format!(
                "need exactly one S and at least one G, found {starts} S"
            )));
        }
        Ok(Self {
            nrow: rows.len(),
            ncol,
            tiles,
        })
    }

    pub fn n_states(&self) -> usize {
        self.tiles.len()
    }

    /// The observation of the start cell.
    pub fn start(&self) -> usize {
        self.tiles
            .iter()
            .position(|t| *t == Tile::Start)
            .expect("parse checked one S")
    }

    /// States where the agent can act: not a hole, not a goal.
    pub fn non_terminal_states(&self) -> Vec<usize> {
        (0..self.n_states())
            .filter(|&s| !self.tiles[s].is_terminal())
            .collect()
    }

    /// Gymnasium's move: action 0 left, 1 down, 2 right, 3 up; walls keep the agent in place.
    pub fn intended_move(&self, state: usize, action: usize) -> usize {
        let (row, col) = (state / self.ncol, state % self.ncol);
        let (row, col) = match action {
            0 => (row, col.saturating_sub(1)),
            1 => ((row + 1).min(self.nrow - 1), col),
            2 => (row, (col + 1).min(self.ncol - 1)),
            3 => (row.saturating_sub(1), col),
            _ => panic!("action {action} is not in 0..4"),
        };
        row * self.ncol + col
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_standard_maps_and_rejects_bad_ones() {
        let m = Map::parse(MAP_4X4).unwrap();
        assert_eq!((m.nrow, m.ncol, m.start()), (4, 4, 0));
        assert_eq!(m.tiles[5], Tile::Hole);
        assert_eq!(m.tiles[15], Tile::Goal);
        assert_eq!(Map::parse(MAP_8X8).unwrap().n_states(), 64);
        assert!(Map::parse("SF\nF").is_err());
        assert!(Map::parse("SX\nFG").is_err());
        assert!(Map::parse("FF\nFG").is_err());
    }
}
