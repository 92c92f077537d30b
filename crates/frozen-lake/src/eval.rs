//! Scores for a trained policy: distance to the optimal table, success, coverage.

use rand::rngs::StdRng;

use crate::env::{FrozenLake, N_ACTIONS};
use crate::episode::sample_episode;
use crate::map::Tile;

/// Mean over `states` and the four actions of `(π(a|s) − π*(a|s))²`.
pub fn mse(probs: &[[f64; N_ACTIONS]], optimal: &[[f64; N_ACTIONS]], states: &[usize]) -> f64 {
    let total: f64 = states
        .iter()
        .flat_map(|&s| (0..N_ACTIONS).map(move |a| (probs[s][a] - optimal[s][a]).powi(2)))
        .sum();
    total / (states.len() * N_ACTIONS) as f64
}

/// What sampled episodes of one policy did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollouts {
    /// Fraction of episodes that reached the goal.
    pub success_rate: f64,
    /// Per state: how many times it was occupied, the start included.
    pub visits: Vec<usize>,
    /// Fraction of the non-hole cells visited at least once over all episodes.
    pub coverage: f64,
}

/// Runs `episodes` episodes *sampling* actions from `probs`: a greedy policy on
/// deterministic ice would walk one path, so sampling is what shows how widely each
/// method spreads its probability (the paper's "exploration").
pub fn rollouts(
    env: &mut FrozenLake,
    probs: &[[f64; N_ACTIONS]],
    episodes: usize,
    rng: &mut StdRng,
) -> Rollouts {
    let mut visits = vec![0; env.map.n_states()];
    let mut successes = 0;
    for _ in 0..episodes {
        let e = sample_episode(env, probs, rng);
        for &s in e.trajectory.states.iter().chain([&e.end]) {
            visits[s] += 1;
        }
        successes += usize::from(e.success);
    }
    let safe: Vec<usize> = (0..visits.len())
        .filter(|&s| env.map.tiles[s] != Tile::Hole)
        .collect();
    let coverage = safe.iter().filter(|&&s| visits[s] > 0).count() as f64 / safe.len() as f64;
    Rollouts {
        success_rate: successes as f64 / episodes.max(1) as f64,
        visits,
        coverage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Map, MAP_ROUTE};
    use rand::SeedableRng;

    #[test]
    fn mse_of_a_uniform_policy_against_a_one_hot_one() {
        // (3/4)² + 3·(1/4)² = 12/16, over 4 actions: 3/16.
        let uniform = vec![[0.25; 4]];
        assert!((mse(&uniform, &[[1.0, 0.0, 0.0, 0.0]], &[0]) - 3.0 / 16.0).abs() < 1e-12);
    }

    #[test]
    fn the_optimal_table_always_succeeds_on_the_left_route() {
        // Route map, deterministic: always-left at S, down the left column, right into G.
        let mut env = FrozenLake::new(Map::parse(MAP_ROUTE).unwrap(), false, 100);
        let mut probs = vec![[0.0; 4]; 25];
        for (s, a) in [(2, 0), (1, 0), (0, 1), (5, 1), (10, 1), (15, 1), (20, 2)] {
            probs[s][a] = 1.0;
        }
        let r = rollouts(&mut env, &probs, 10, &mut StdRng::seed_from_u64(0));
        assert_eq!(r.success_rate, 1.0);
        assert_eq!(r.visits[2], 10);
        assert_eq!(r.visits[21], 10);
        assert_eq!(r.visits[3], 0);
        assert!(
            (r.coverage - 8.0 / 16.0).abs() < 1e-12,
            "8 of 16 safe cells"
        );
    }
}
