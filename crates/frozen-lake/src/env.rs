//! The environment with Gymnasium's `FrozenLake-v1` semantics.

use rand::Rng;

use crate::map::{Map, Tile};

/// Gymnasium's action numbering.
pub const LEFT: usize = 0;
pub const DOWN: usize = 1;
pub const RIGHT: usize = 2;
pub const UP: usize = 3;
pub const N_ACTIONS: usize = 4;

/// One possible outcome of an action: `(probability, next state, reward, terminated)`,
/// like an entry of Gymnasium's `env.P[s][a]`.
pub type Outcome = (f64, usize, f64, bool);

/// What `step` returns, as Gymnasium's 5-tuple minus `info`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepResult {
    pub observation: usize,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
}

/// A Frozen Lake episode runner. Randomness comes only from the RNG passed in.
#[derive(Debug, Clone)]
pub struct FrozenLake {
    pub map: Map,
    /// Slippery ice: the intended move with probability 1/3, each perpendicular move 1/3.
    pub is_slippery: bool,
    /// Truncate after this many steps (Gymnasium's `TimeLimit`: 100 for 4×4, 200 for 8×8).
    pub max_episode_steps: usize,
    state: usize,
    elapsed: usize,
}

impl FrozenLake {
    pub fn new(map: Map, is_slippery: bool, max_episode_steps: usize) -> Self {
        let state = map.start();
        Self {
            map,
            is_slippery,
            max_episode_steps,
            state,
            elapsed: 0,
        }
    }

    /// Every outcome of `action` in `state`. Terminal states loop on themselves with
    /// reward 0, as in Gymnasium. Slippery moves are listed `a−1, a, a+1` (mod 4).
    pub fn transitions(&self, state: usize, action: usize) -> Vec<Outcome> {
        if self.map.tiles[state].is_terminal() {
            return vec![(1.0, state, 0.0, true)];
        }
        let outcome = |a: usize, p: f64| {
            let next = self.map.intended_move(state, a);
            let tile = self.map.tiles[next];
            (
                p,
                next,
                if tile == Tile::Goal { 1.0 } else { 0.0 },
                tile.is_terminal(),
            )
        };
        if self.is_slippery {
            [(action + 3) % 4, action, (action + 1) % 4]
                .iter()
                .map(|&a| outcome(a, 1.0 / 3.0))
                .collect()
        } else {
            vec![outcome(action, 1.0)]
        }
    }

    /// Starts an episode at `S`; returns the observation.
    pub fn reset(&mut self) -> usize {
        self.state = self.map.start();
        self.elapsed = 0;
        self.state
    }

    /// Takes `action`, drawing the slip (if any) from `rng`.
    pub fn step(&mut self, action: usize, rng: &mut impl Rng) -> StepResult {
        let outcomes = self.transitions(self.state, action);
        let mut u: f64 = rng.random();
        let mut chosen = outcomes[outcomes.len() - 1];
        for o in &outcomes {
            if u < o.0 {
                chosen = *o;
                break;
            }
            u -= o.0;
        }
        let (_, next, reward, terminated) = chosen;
        self.state = next;
        self.elapsed += 1;
        let truncated = !terminated && self.elapsed >= self.max_episode_steps;
        StepResult {
            observation: next,
            reward,
            terminated,
            truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::MAP_4X4;
    use rand::{rngs::StdRng, SeedableRng};

    fn lake(slippery: bool) -> FrozenLake {
        FrozenLake::new(Map::parse(MAP_4X4).unwrap(), slippery, 100)
    }

    #[test]
    fn deterministic_moves_on_the_4x4_map() {
        let mut env = lake(false);
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(env.reset(), 0);
        // Walls keep the agent in place.
        assert_eq!(env.step(LEFT, &mut rng).observation, 0);
        assert_eq!(env.step(UP, &mut rng).observation, 0);
        // Right, right, down, down, down, right: 0 → 1 → 2 → 6 → 10 → 14 → 15 (goal).
        for (a, want) in [(RIGHT, 1), (RIGHT, 2), (DOWN, 6), (DOWN, 10), (DOWN, 14)] {
            let r = env.step(a, &mut rng);
            assert_eq!((r.observation, r.reward, r.terminated), (want, 0.0, false));
        }
        let r = env.step(RIGHT, &mut rng);
        assert_eq!(
            (r.observation, r.reward, r.terminated, r.truncated),
            (15, 1.0, true, false)
        );
        // Falling in the hole at (1, 1) terminates with no reward.
        env.reset();
        let r = env.step(DOWN, &mut rng);
        assert_eq!(r.observation, 4);
        let r = env.step(RIGHT, &mut rng);
        assert_eq!((r.observation, r.reward, r.terminated), (5, 0.0, true));
    }

    #[test]
    fn truncates_after_the_step_limit() {
        let mut env = FrozenLake::new(Map::parse(MAP_4X4).unwrap(), false, 3);
        let mut rng = StdRng::seed_from_u64(0);
        env.reset();
        let flags: Vec<bool> = (0..3).map(|_| env.step(LEFT, &mut rng).truncated).collect();
        assert_eq!(flags, vec![false, false, true]);
    }

    #[test]
    fn slip_frequencies_are_one_third_each() {
        // From state 5's neighbour 9 = (2, 1) every move lands on a distinct cell:
        // down → 13, left → 8, right → 10, up → 5. Intending down must give 13, 8
        // or 10 with 1/3 each; 30 000 draws put each within ±0.015 (> 5 standard deviations).
        let mut env = lake(true);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0usize; 16];
        let n = 30_000;
        for _ in 0..n {
            env.state = 9;
            counts[env.step(DOWN, &mut rng).observation] += 1;
        }
        for s in [13, 8, 10] {
            let f = counts[s] as f64 / n as f64;
            assert!((f - 1.0 / 3.0).abs() < 0.015, "state {s}: {f}");
        }
        assert_eq!(
            counts[13] + counts[8] + counts[10],
            n,
            "never the opposite way"
        );
    }
}
